"""An S3 Inventory report as the listing of ``s3://bucket/prefix`` (``--inventory MANIFEST``).

A bucket of hundreds of millions of objects takes hours to list with ListObjectsV2; S3 already
writes a daily (or weekly) *inventory report* of it: a ``manifest.json`` naming the report's data
files, each one a gzip'd CSV (or an ORC / Parquet file) with one row per object version. This
source reads that report instead of listing, and yields the same :class:`~indexer.core.ImageRef`
a listed run yields for the same object, so the two kinds of run are interchangeable: an image
indexed by one is "unchanged" for the other.

How the rows become references, and why:

- The CSV files are streamed (gzip -> csv, one row at a time): a report of a billion rows costs
  no more memory than one of ten. Keys are URL-encoded in CSV reports (form encoding: a space is
  ``+``, a ``+`` is ``%2B``), so they are decoded with :func:`urllib.parse.unquote_plus`.
- Only the latest version of each key is an image: rows with ``IsLatest`` false or
  ``IsDeleteMarker`` true (versioned buckets) are skipped, as a listing never shows them.
- Keys outside the prefix, and ``.../`` folder markers, are skipped; with a shard, keys it does
  not own are skipped *before* anything else is asked (inventory files cannot be split by shard:
  every file holds keys of every shard, so each shard reads every file and keeps its rows).
- The rest goes through :meth:`S3Source._ref`, the listing's own code: the same extension filter,
  the same ``etag:`` fingerprint from the inventory's ETag and size. The inventory has no content
  type, so a key without a telling extension is asked for it (HeadObject), exactly as the listing
  does; the inventory has no restore status either, so an object in GLACIER / DEEP_ARCHIVE is
  asked (HeadObject) whether it is restored, as the listing does on stores without
  ``RestoreStatus``. Both keep fingerprints identical to a listed run's.
- A report is a snapshot: objects added after it are not seen until the next report, and ones
  deleted since are read and recorded as missing. A report older than :data:`STALE_AFTER_S`
  is therefore noted in the run's summary (its line, and ``notes`` in ``--json``).

ORC and Parquet reports need ``pyarrow``, which is not a dependency of the indexer: when it is
importable they are read (one record batch at a time); otherwise the run stops with one line
saying how to get it.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import io
import json
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator
from urllib.parse import unquote_plus

from .core import ImageRef
from .errors import ConfigError, FatalError, IndexerError, aws_error_info, translate
from .sources import S3Source, image_extensions

if TYPE_CHECKING:
    from .sharding import Shard

#: An inventory older than this (48 h) is noted on stderr: S3 writes one a day or a week.
STALE_AFTER_S = 48 * 3600.0
#: The columns a report must have for the fingerprint to be the listing's.
_REQUIRED_FIELDS = ("Bucket", "Key", "Size", "ETag")
_FORMATS = ("CSV", "ORC", "Parquet")


def parse_manifest_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/path/manifest.json`` -> (bucket, key); anything else is a usage error."""
    bucket, _, key = uri[len("s3://") :].partition("/") if uri.startswith("s3://") else ("", "", "")
    if not bucket or not key or key.endswith("/"):
        raise ConfigError(f"invalid --inventory {uri!r}: expected s3://bucket/path/manifest.json")
    return bucket, key


@dataclass(frozen=True)
class Manifest:
    """What a report's ``manifest.json`` says: whose objects, where the data files are, their format."""

    source_bucket: str
    destination_bucket: str
    file_format: str
    fields: tuple[str, ...]
    files: tuple[str, ...]
    #: When S3 started the report (seconds since the epoch), None when the manifest does not say.
    created: float | None

    @classmethod
    def parse(cls, text: bytes, uri: str, fallback_bucket: str) -> Manifest:
        """The manifest in ``text``; a malformed one is a one-line FatalError naming ``uri``."""
        try:
            data = json.loads(text)
            file_format = str(data["fileFormat"])
            fields = tuple(name.strip() for name in str(data.get("fileSchema", "")).split(",") if name.strip())
            files = tuple(str(entry["key"]) for entry in data["files"])
            source_bucket = str(data["sourceBucket"])
            stamp = data.get("creationTimestamp")
            created = int(stamp) / 1000.0 if stamp not in (None, "") else None
        except (ValueError, KeyError, TypeError) as exc:
            raise FatalError(f"not an S3 Inventory manifest: {uri}: {type(exc).__name__}: {exc}") from None
        destination = str(data.get("destinationBucket") or fallback_bucket)
        return cls(
            source_bucket=source_bucket,
            destination_bucket=destination.rsplit(":", 1)[-1],  # "arn:aws:s3:::name" -> "name"
            file_format=file_format,
            fields=fields,
            files=files,
            created=created,
        )

    def age_s(self, now: float | None = None) -> float | None:
        """Seconds since the report was made, None when unknown."""
        return None if self.created is None else (time.time() if now is None else now) - self.created


@dataclass
class InventorySource(S3Source):
    """``s3://bucket/prefix`` listed from the S3 Inventory report at ``manifest_uri``.

    Its ``uri`` and ``uri_prefix`` are the listed source's: the same run lease, the same rows,
    and ``--prune`` removes what the report no longer names under the prefix. ``reader`` is
    inherited: images are read from the source bucket as a listed run reads them.
    """

    manifest_uri: str = ""
    shard: Shard | None = None
    _manifest: Manifest | None = field(default=None, init=False, repr=False)

    def manifest(self) -> Manifest:
        """The report's manifest, read once and checked: it must be this bucket's, in a format
        this install can read, with the columns the fingerprint needs."""
        if self._manifest is None:
            manifest = Manifest.parse(self._manifest_bytes(), self.manifest_uri, parse_manifest_uri(self.manifest_uri)[0])
            self._check(manifest)
            self._manifest = manifest
        return self._manifest

    def staleness(self, now: float | None = None) -> str | None:
        """What the run summary says of a report older than :data:`STALE_AFTER_S`, None for a fresh one."""
        age = self.manifest().age_s(now)
        if age is None or age <= STALE_AFTER_S:
            return None
        made = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.manifest().created or 0))
        message = (
            f"the inventory {self.manifest_uri} is {age / 86400:.1f} days old (made {made}): "
            "objects added since are not indexed and objects deleted since are recorded as missing"
        )
        return message

    def walk(self) -> Iterator[ImageRef]:
        manifest = self.manifest()
        extensions = image_extensions()
        for file_key in manifest.files:
            for obj in self._objects(manifest, file_key):
                ref = self._ref(obj, extensions)
                if ref is not None:
                    yield ref

    # -- reading the report ---------------------------------------------------------------

    def _manifest_bytes(self) -> bytes:
        bucket, key = parse_manifest_uri(self.manifest_uri)
        try:
            return bytes(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())
        except Exception as exc:
            if aws_error_info(exc).code in ("NoSuchKey", "NoSuchBucket", "404"):
                raise FatalError(f"inventory manifest not found: {self.manifest_uri}") from None
            raise translate(exc, f"reading the inventory manifest {self.manifest_uri}", listing=True) from None

    def _check(self, manifest: Manifest) -> None:
        if manifest.source_bucket != self.bucket:
            raise ConfigError(
                f"the inventory {self.manifest_uri} is of bucket {manifest.source_bucket!r}, not of {self.bucket!r}"
            )
        if manifest.file_format not in _FORMATS:
            raise FatalError(f"unknown inventory format {manifest.file_format!r} in {self.manifest_uri}: expected CSV, ORC or Parquet")
        if manifest.file_format != "CSV":
            _require_pyarrow(manifest.file_format)
        missing = [name for name in _REQUIRED_FIELDS if name not in manifest.fields and manifest.file_format == "CSV"]
        if missing:
            raise FatalError(
                f"the inventory {self.manifest_uri} lacks {', '.join(missing)}: add them to the inventory configuration"
            )

    def _objects(self, manifest: Manifest, file_key: str) -> Iterator[dict[str, Any]]:
        """The listing-shaped objects (``Key``, ``Size``, ``ETag``, ``StorageClass``) of one data
        file that this source takes: its bucket's latest versions under the prefix, in the shard."""
        rows = self._rows(manifest, file_key)
        try:
            for row in rows:
                obj = self._object(row, manifest.file_format == "CSV")
                if obj is not None:
                    yield obj
        except IndexerError:
            raise
        except (OSError, EOFError, csv.Error, UnicodeDecodeError) as exc:
            raise FatalError(f"unreadable inventory file {self._file_uri(manifest, file_key)}: {exc}") from None
        except Exception as exc:
            raise translate(exc, f"reading the inventory file {self._file_uri(manifest, file_key)}", listing=True) from None

    def _object(self, row: dict[str, str], url_encoded: bool) -> dict[str, Any] | None:
        if row.get("Bucket", self.bucket) != self.bucket:
            return None
        if row.get("IsDeleteMarker", "").lower() == "true" or row.get("IsLatest", "true").lower() == "false":
            return None
        key = unquote_plus(row["Key"]) if url_encoded else row["Key"]
        if not key.startswith(self.prefix):
            return None
        if self.shard is not None and not self.shard.owns(f"s3://{self.bucket}/{key}"):
            return None
        size = row.get("Size") or "0"
        return {"Key": key, "Size": int(size), "ETag": row.get("ETag", ""), "StorageClass": row.get("StorageClass")}

    def _rows(self, manifest: Manifest, file_key: str) -> Iterator[dict[str, str]]:
        try:
            body = self.client.get_object(Bucket=manifest.destination_bucket, Key=file_key)["Body"]
        except Exception as exc:
            if aws_error_info(exc).code in ("NoSuchKey", "NoSuchBucket", "404"):
                raise FatalError(f"inventory file not found: {self._file_uri(manifest, file_key)} (named by {self.manifest_uri})") from None
            raise translate(exc, f"reading the inventory file {self._file_uri(manifest, file_key)}", listing=True) from None
        if manifest.file_format == "CSV":
            return _csv_rows(body, manifest.fields)
        return _arrow_rows(body, manifest.file_format)

    @staticmethod
    def _file_uri(manifest: Manifest, file_key: str) -> str:
        return f"s3://{manifest.destination_bucket}/{file_key}"


def _csv_rows(body: Any, fields: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """One dict per row of a gzip'd, headerless inventory CSV, streamed from ``body``."""
    with gzip.GzipFile(fileobj=body, mode="rb") as unzipped:
        text = io.TextIOWrapper(unzipped, encoding="utf-8", newline="")
        for values in csv.reader(text):
            if values:
                yield dict(zip(fields, values))


def _require_pyarrow(file_format: str) -> None:
    try:
        importlib.import_module("pyarrow")
    except ImportError:
        raise FatalError(
            f"this inventory is in {file_format} format, which needs pyarrow: pip install pyarrow "
            "(or configure the inventory report as CSV)"
        ) from None


def _arrow_rows(body: Any, file_format: str) -> Iterator[dict[str, str]]:
    """Rows of an ORC or Parquet data file, one record batch at a time (needs ``pyarrow``).

    Both formats need a seekable file, so the data file is spooled to a temporary file first
    (a report's files are a few hundred MB at most; the rows are still never all in memory).
    Values come back as strings, as the CSV gives them: the same code makes the references.
    """
    with tempfile.TemporaryFile() as spool:
        for chunk in iter(lambda: body.read(1 << 20), b""):
            spool.write(chunk)
        spool.seek(0)
        yield from _batches_as_rows(_arrow_batches(spool, file_format))


def _arrow_batches(spool: Any, file_format: str) -> Iterable[Any]:
    if file_format == "Parquet":
        parquet: Any = importlib.import_module("pyarrow.parquet")
        return parquet.ParquetFile(spool).iter_batches()
    orc: Any = importlib.import_module("pyarrow.orc")
    reader = orc.ORCFile(spool)
    return (reader.read_stripe(i) for i in range(reader.nstripes))


def _batches_as_rows(batches: Iterable[Any]) -> Iterator[dict[str, str]]:
    """Arrow column names are the schema's in lower case (``key``, ``e_tag``, ``is_latest``...)."""
    names = {"bucket": "Bucket", "key": "Key", "size": "Size", "e_tag": "ETag", "etag": "ETag",
             "storage_class": "StorageClass", "is_latest": "IsLatest", "is_delete_marker": "IsDeleteMarker"}
    for batch in batches:
        for record in batch.to_pylist():
            row = {names[k.lower()]: v for k, v in record.items() if k.lower() in names and v is not None}
            yield {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in row.items()}

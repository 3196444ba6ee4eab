"""Where images come from: an S3 prefix or a local folder, as a *stream* of :class:`ImageRef`.

Nothing here holds a whole listing in memory: the S3 paginator and the directory walk yield one
reference at a time, so a bucket of ten million objects costs no more memory than one of ten.
"""

from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from .engines.base import ImageRef
from .errors import ConfigError, FatalError, ImageError, aws_error_info, fatal_from_aws, image_error_from_aws

#: Extensions that are never images: skipped without asking S3 for a content type.
NOT_IMAGE_EXTENSIONS = frozenset(
    ".txt .json .xml .csv .md .html .htm .pdf .zip .gz .tar .mp4 .mov .avi .mkv .mp3 .wav .doc .docx .xls .xlsx "
    ".xmp .aae .db .ini .log .yml .yaml .toml .py .js .css .raw .cr2 .nef .arw .dng .heic".split()
)


def image_extensions() -> frozenset[str]:
    """Every extension Pillow can *read* (``.jpg .jpeg .png`` and the rest it has a decoder for)."""
    from PIL import Image

    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lower()


class Source(Protocol):
    """A collection of images."""

    uri: str

    def walk(self) -> Iterator[ImageRef]: ...

    def reader(self, ref: ImageRef) -> Callable[[], bytes]: ...


@dataclass
class LocalSource:
    """A local folder, walked recursively. Hidden files and folders (``.thumbnails``) are skipped."""

    root: Path

    @property
    def uri(self) -> str:
        return str(self.root)

    @property
    def uri_prefix(self) -> str:
        """What every URI under this folder starts with (``--prune`` stays inside it)."""
        return str(self.root).rstrip(os.sep) + os.sep

    def check(self) -> None:
        if not self.root.exists():
            raise FatalError(f"source folder not found: {self.root}")
        if not self.root.is_dir():
            raise FatalError(f"source is not a folder: {self.root}")

    def walk(self) -> Iterator[ImageRef]:
        self.check()
        extensions = image_extensions()
        for directory, subdirs, files in os.walk(self.root):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or _extension(name) not in extensions:
                    continue
                path = os.path.join(directory, name)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue  # vanished between listing and stat: nothing to index
                yield ImageRef(
                    uri=path,
                    size=stat.st_size,
                    fingerprint=f"stat:{stat.st_size}:{stat.st_mtime_ns}",
                    content_type=mimetypes.guess_type(name)[0],
                    path=path,
                )

    def reader(self, ref: ImageRef) -> Callable[[], bytes]:
        def read() -> bytes:
            try:
                return Path(ref.path or ref.uri).read_bytes()
            except FileNotFoundError:
                raise ImageError("FileNotFound", f"{ref.uri} disappeared before it was read") from None
            except OSError as exc:
                raise ImageError("ReadError", f"{ref.uri}: {exc.strerror or exc}") from None

        return read


@dataclass
class S3Source:
    """Every object under ``s3://bucket/prefix``, listed with the ListObjectsV2 paginator."""

    bucket: str
    prefix: str
    client: Any

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def uri_prefix(self) -> str:
        return self.uri

    def walk(self) -> Iterator[ImageRef]:
        extensions = image_extensions()
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for obj in page.get("Contents", ()):
                    ref = self._ref(obj, extensions)
                    if ref is not None:
                        yield ref
        except Exception as exc:
            raise self._listing_error(exc) from None

    def _ref(self, obj: dict[str, Any], extensions: frozenset[str]) -> ImageRef | None:
        key: str = obj["Key"]
        if key.endswith("/"):
            return None
        extension = _extension(key)
        content_type = mimetypes.guess_type(key)[0]
        if extension in NOT_IMAGE_EXTENSIONS:
            return None
        if extension not in extensions:
            # No telling extension: ask S3 what the object is (only for these keys).
            content_type = self._content_type(key)
            if not content_type or not content_type.startswith("image/"):
                return None
        return ImageRef(
            uri=f"s3://{self.bucket}/{key}",
            size=int(obj.get("Size", 0)),
            fingerprint="etag:" + str(obj.get("ETag", "")).strip('"'),
            content_type=content_type,
            s3_location=(self.bucket, key),
        )

    def _content_type(self, key: str) -> str | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key).get("ContentType")
        except Exception:
            return None

    def _listing_error(self, exc: Exception) -> Exception:
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        fatal = fatal_from_aws(exc, f"listing {self.uri}")
        if fatal:
            return fatal
        if isinstance(exc, ClientError):
            info = aws_error_info(exc)
            rid = f" (request id {info.request_id})" if info.request_id else ""
            if info.code == "NoSuchBucket":
                return FatalError(f"bucket not found: {self.bucket}{rid}")
            if info.code in ("AccessDenied", "AllAccessDisabled", "403"):
                return FatalError(f"access denied listing {self.uri}{rid}")
            return FatalError(f"cannot list {self.uri}: {info.code}: {info.message}{rid}")
        if isinstance(exc, EndpointConnectionError):
            return FatalError(f"cannot reach the S3 endpoint while listing {self.uri}: {exc}")
        if isinstance(exc, BotoCoreError):
            return FatalError(f"cannot list {self.uri}: {exc}")
        return exc

    def reader(self, ref: ImageRef) -> Callable[[], bytes]:
        bucket, key = ref.s3_location or (self.bucket, "")

        def read() -> bytes:
            try:
                return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
            except Exception as exc:
                fatal = fatal_from_aws(exc, f"reading {ref.uri}")
                if fatal:
                    raise fatal from None
                raise image_error_from_aws(exc) from None

        return read


def parse_source(source: str) -> tuple[str, str, str] | Path:
    """``s3://bucket/prefix`` -> ("s3", bucket, prefix); anything else -> a local folder Path."""
    if source.startswith("s3://"):
        bucket, _, prefix = source[len("s3://") :].partition("/")
        if not bucket:
            raise ConfigError(f"invalid S3 source {source!r}: expected s3://bucket/prefix")
        return ("s3", bucket, prefix)
    if "://" in source:
        raise ConfigError(f"unsupported source {source!r}: use s3://bucket/prefix or a local folder")
    return Path(source).expanduser().resolve()


def open_source(source: str, s3_client_factory: Callable[[], Any]) -> LocalSource | S3Source:
    """The :class:`Source` for a SOURCE argument. The S3 client is made only for S3 sources."""
    parsed = parse_source(source)
    if isinstance(parsed, Path):
        return LocalSource(parsed)
    _, bucket, prefix = parsed
    return S3Source(bucket=bucket, prefix=prefix, client=s3_client_factory())

"""Where images come from: an S3 prefix or a local folder, as a *stream* of :class:`ImageRef`.

Nothing here holds a whole listing in memory: the S3 paginator and the directory walk yield one
reference at a time, so a bucket of ten million objects costs no more memory than one of ten.
"""

from __future__ import annotations

import mimetypes
import os
import stat as stat_module
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .core import ARCHIVED_MARK, ByteReader, ImageRef
from .errors import ConfigError, FatalError, ImageError, IndexerError, aws_error_info, fatal_from_aws, translate

#: Extensions that are never images: skipped without asking S3 for a content type.
NOT_IMAGE_EXTENSIONS = frozenset(
    ".txt .json .xml .csv .md .html .htm .pdf .zip .gz .tar .mp4 .mov .avi .mkv .mp3 .wav .doc .docx .xls .xlsx "
    ".xmp .aae .db .ini .log .yml .yaml .toml .py .js .css .raw .cr2 .nef .arw .dng".split()
)
#: S3 storage classes whose objects cannot be read until restored (GLACIER_IR is instant: readable).
ARCHIVE_STORAGE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
#: Answers meaning "this store does not do OptionalObjectAttributes": list without it.
_OPTIONAL_ATTRIBUTE_REFUSALS = frozenset({"AccessDenied", "InvalidArgument", "NotImplemented", "InvalidRequest"})


def image_extensions() -> frozenset[str]:
    """Every extension a source lists: what Pillow can *read* (``.jpg .jpeg .png`` and the rest it
    has a decoder for), plus :data:`UNDECODED_IMAGE_EXTENSIONS` (recorded as unsupported, not skipped)."""
    from PIL import Image

    Image.init()
    readable = frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)
    return readable | UNDECODED_IMAGE_EXTENSIONS


def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lower()


#: Extensions of image formats Pillow cannot read without a plugin. They are listed anyway, so each
#: such file is recorded as failed with a clear code instead of being skipped without a word.
UNDECODED_IMAGE_EXTENSIONS = frozenset({".heic", ".heif", ".avif"})

#: Bytes read per ``os.read`` call for a local file (1 MiB: few syscalls, little overshoot).
_READ_CHUNK = 1 << 20


def _warn(message: str) -> None:
    """One line on stderr for something the walk had to leave out (cron mails it; no traceback)."""
    print(f"indexer: warning: {message}", file=sys.stderr)


def _is_text_safe(path: str) -> bool:
    """False for a file name that is not valid UTF-8 (it cannot be stored as a URI)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_regular_file(path: str, uri: str) -> bytes:
    """The bytes of ``path`` if it is a regular file, else an :class:`ImageError`.

    The file is opened with ``O_NONBLOCK`` and checked with ``fstat`` *on the open descriptor*, so
    a FIFO, socket or device that took the file's place after the listing is refused instead of
    blocking the worker (and the run) forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageError("FileNotFound", f"{uri} disappeared before it was read", retryable=True) from None
    except PermissionError as exc:
        raise ImageError("PermissionDenied", f"{uri}: {exc.strerror or exc}", retryable=True) from None
    except OSError as exc:
        raise ImageError("ReadError", f"{uri}: {exc.strerror or exc}", retryable=True) from None
    try:
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            raise ImageError("NotARegularFile", f"{uri} is no longer a regular file", retryable=True)
        chunks = []
        while chunk := os.read(fd, _READ_CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise ImageError("ReadError", f"{uri}: {exc.strerror or exc}", retryable=True) from None
    finally:
        os.close(fd)


@dataclass
class LocalSource:
    """A local folder, walked recursively. Hidden files and folders (``.thumbnails``) are skipped.

    Only regular files are taken: a FIFO, socket or device named ``x.jpg`` is skipped (reading a
    FIFO blocks forever). A symlink to a regular file is followed and indexed under the link's
    own path (people link photos into an album folder); symlinked *folders* are not descended
    (``os.walk``'s default: no loops, and ``--prune`` stays inside the tree). Dangling symlinks
    and symlink loops point at no image and are skipped. A file that cannot be read (permission)
    is listed and recorded as failed, never left out silently.
    """

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
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise FatalError(f"source folder is not readable: {self.root}")

    def walk(self) -> Iterator[ImageRef]:
        self.check()
        extensions = image_extensions()
        for directory, subdirs, files in os.walk(self.root, onerror=self._walk_error):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or _extension(name) not in extensions:
                    continue
                ref = self._ref(os.path.join(directory, name))
                if ref is not None:
                    yield ref

    def _walk_error(self, exc: OSError) -> None:
        """A sub-folder the walk cannot enter: say so (its images would otherwise vanish unseen)."""
        if os.path.abspath(exc.filename or "") == str(self.root):
            raise FatalError(f"cannot read source folder {self.root}: {exc.strerror or exc}")
        _warn(f"cannot read folder {exc.filename}: {exc.strerror or exc}; its images were not listed")

    @staticmethod
    def _ref(path: str) -> ImageRef | None:
        """The reference for one directory entry, or None when it is not an image file."""
        if not _is_text_safe(path):
            _warn(f"skipped a file whose name is not valid UTF-8: {path.encode('utf-8', 'backslashreplace').decode()}")
            return None
        try:
            info = os.stat(path)  # follows symlinks: a link to a photo is that photo
        except PermissionError:
            # Listed but not even stat-able (folder without search permission): record it as
            # failed when it is read, rather than dropping it.
            return ImageRef(uri=path, size=0, fingerprint="stat:unreadable", content_type=mimetypes.guess_type(path)[0], path=path)
        except OSError:
            return None  # vanished, dangling symlink or symlink loop: no image there
        if not stat_module.S_ISREG(info.st_mode):
            return None  # FIFO, socket, device, or a folder named like an image
        return ImageRef(
            uri=path,
            size=info.st_size,
            fingerprint=f"stat:{info.st_size}:{info.st_mtime_ns}",
            content_type=mimetypes.guess_type(path)[0],
            path=path,
        )

    def reader(self, ref: ImageRef) -> ByteReader:
        def read() -> bytes:
            return read_regular_file(ref.path or ref.uri, ref.uri)

        return read


@dataclass
class S3Source:
    """Every object under ``s3://bucket/prefix``, listed with the ListObjectsV2 paginator.

    The prefix is S3's: a plain string prefix, so ``s3://b/2024`` also lists ``2024-backup/``;
    end it with ``/`` to mean a folder.

    Objects in an archive storage class (:data:`ARCHIVE_STORAGE_CLASSES`) cannot be read until
    restored, and a restore changes neither their storage class in the listing nor their ETag.
    So the restore state is part of the fingerprint: an unrestored object's ends with
    :data:`~indexer.core.ARCHIVED_MARK` and is recorded ``ObjectArchived`` without a
    call; once restored the fingerprint loses the mark and the next run analyses it. On AWS S3
    the listing itself says which are restored (``OptionalObjectAttributes=["RestoreStatus"]``);
    other stores, or a listing refused that attribute, are asked per archived object (HeadObject).
    """

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
        try:
            for page, listing_tells_restore in self._pages():
                for obj in page.get("Contents", ()):
                    ref = self._ref(obj, extensions, listing_tells_restore)
                    if ref is not None:
                        yield ref
        except IndexerError:
            raise
        except Exception as exc:
            raise self._listing_error(exc) from None

    def _pages(self) -> Iterator[tuple[dict[str, Any], bool]]:
        """Listing pages, and whether they carry each archived object's restore state."""
        from .aws import is_aws_endpoint

        paginator = self.client.get_paginator("list_objects_v2")
        refused: Exception | None = None
        if is_aws_endpoint(getattr(self.client.meta, "endpoint_url", None)):
            pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, OptionalObjectAttributes=["RestoreStatus"]))
            try:
                first = next(pages, None)
            except Exception as exc:
                if aws_error_info(exc).code not in _OPTIONAL_ATTRIBUTE_REFUSALS:
                    raise
                refused = exc  # maybe only the attribute was refused: list without it
            else:
                if first is not None:
                    yield first, True
                    for page in pages:
                        yield page, True
                return
        plain = iter(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix))
        try:
            first = next(plain, None)
        except Exception:
            if refused is not None:
                raise refused from None  # the listing itself is refused: say so, not the retry's error
            raise
        if first is not None:
            yield first, False
        for page in plain:
            yield page, False

    def _ref(self, obj: dict[str, Any], extensions: frozenset[str], listing_tells_restore: bool = False) -> ImageRef | None:
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
        archived = self._archived(obj, key, listing_tells_restore)
        fingerprint = "etag:" + str(obj.get("ETag", "")).strip('"')
        return ImageRef(
            uri=f"s3://{self.bucket}/{key}",
            size=int(obj.get("Size", 0)),
            fingerprint=fingerprint + ARCHIVED_MARK if archived else fingerprint,
            content_type=content_type,
            s3_location=(self.bucket, key),
            archived=archived,
        )

    def _archived(self, obj: dict[str, Any], key: str, listing_tells_restore: bool) -> bool:
        """True for an object in an archive class that is not (yet) restored."""
        if obj.get("StorageClass") not in ARCHIVE_STORAGE_CLASSES:
            return False
        status = obj.get("RestoreStatus")
        if status is not None:
            return bool(status.get("IsRestoreInProgress")) or not status.get("RestoreExpiryDate")
        if listing_tells_restore:
            return True  # the listing names every restored object; this one is not
        try:
            restore = self.client.head_object(Bucket=self.bucket, Key=key).get("Restore") or ""
        except Exception as exc:
            fatal = fatal_from_aws(exc, f"reading s3://{self.bucket}/{key}")
            if fatal:
                raise fatal from None
            return True  # cannot tell: the read would fail the same way; recorded, retried on change
        return 'ongoing-request="false"' not in restore

    def _content_type(self, key: str) -> str | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key).get("ContentType")
        except Exception:
            return None

    def _listing_error(self, exc: Exception) -> Exception:
        from botocore.exceptions import ClientError

        doing = f"listing {self.uri}"
        if isinstance(exc, ClientError):
            info = aws_error_info(exc)
            rid = f" (request id {info.request_id})" if info.request_id else ""
            if info.code == "NoSuchBucket":
                return FatalError(f"bucket not found: {self.bucket}{rid}")
            if info.code in ("AccessDenied", "403"):
                return FatalError(f"access denied listing {self.uri}{rid}: the identity needs s3:ListBucket on {self.bucket}")
        return translate(exc, doing, listing=True)

    def reader(self, ref: ImageRef) -> ByteReader:
        bucket, key = ref.s3_location or (self.bucket, "")

        def read() -> bytes:
            if ref.archived:
                raise ImageError("ObjectArchived", f"{ref.uri} is archived and not restored; nothing was read")
            try:
                return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
            except Exception as exc:
                raise translate(exc, f"reading {ref.uri}") from None

        return read


#: Where a source is: a local folder, or ("s3", bucket, prefix).
ParsedSource = tuple[str, str, str] | Path
#: A collection of images: what a run walks and reads.
Source = LocalSource | S3Source


def parse_source(source: str) -> ParsedSource:
    """``s3://bucket/prefix`` -> ("s3", bucket, prefix); anything else -> a local folder Path.

    A malformed source is a :class:`ConfigError` (usage), raised before anything is opened.
    """
    if source.startswith("s3://"):
        bucket, _, prefix = source[len("s3://") :].partition("/")
        if not bucket:
            raise ConfigError(f"invalid S3 source {source!r}: expected s3://bucket/prefix")
        return ("s3", bucket, prefix)
    if "://" in source:
        raise ConfigError(f"unsupported source {source!r}: use s3://bucket/prefix or a local folder")
    return Path(source).expanduser().resolve()


def open_source(parsed: ParsedSource, s3_client_factory: Callable[[], Any]) -> Source:
    """The source :func:`parse_source` found. The S3 client is made only for S3 sources."""
    if isinstance(parsed, Path):
        return LocalSource(parsed)
    _, bucket, prefix = parsed
    return S3Source(bucket=bucket, prefix=prefix, client=s3_client_factory())

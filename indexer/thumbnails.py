"""Thumbnails for the contact sheet: each image read from its source, turned upright, made small,
and returned as ``data:`` URIs, so the sheet holds its pictures and works offline or mailed.

Each image is read from where it is indexed: a local file directly (only a regular file: a FIFO
named like a photo would block forever), an S3 object through the client the caller supplies
(one ``GetObject``; the factory is called once, only when an S3 image is met). The bytes are
decoded as the engines decode them (:mod:`indexer.engines.decode`: HEIC/HEIF, any Pillow mode to
RGB), turned upright by their EXIF orientation (Rekognition's BoundingBox is relative to the
upright image, so the sheet's boxes land on the faces), and downscaled twice:

* the grid thumbnail, at most :data:`THUMB_SIDE` px on its long side (sharp on a 2x screen at
  the grid's ~220 px cells), JPEG quality :data:`THUMB_QUALITY`;
* the enlarged view, :data:`LARGE_SIDE` to :data:`LARGE_MAX` px on its long side (fills a
  laptop's dialog), JPEG quality :data:`LARGE_QUALITY`.

A JPEG is decoded at the smallest of its decoder's scales (1/2, 1/4, 1/8: Pillow's ``draft``)
that still gives :data:`LARGE_SIDE` px, and a picture that comes out at most :data:`LARGE_MAX`
px is the enlarged one as it is: a 12-megapixel photo (4000 x 3000) decodes straight to
1000 x 750, half the time of a full decode, with no resampling. Most of what remains is the
decoder's entropy decoding, which no scale avoids. Images are made in a thread pool (decoding,
resizing and encoding release the GIL, so threads use every core, and S3 reads overlap), in the
order given, with a progress bar on a terminal. ``bench/contact_sheet.py`` measures the time
and the weight of a 200-photo sheet.

An image that cannot be read or decoded never stops the sheet: its :class:`Thumbnail` carries
the reason (``file not found``, ``S3 NoSuchKey: ...``, ``not an image format Pillow can read``)
and no pictures, and the sheet shows a placeholder with that reason.
"""

from __future__ import annotations

import base64
import io
import math
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .engines.decode import TRANSPOSED_ORIENTATIONS, register_optional_formats, to_rgb, unidentified_image_error
from .errors import IndexerError, translate

#: Long side of a grid thumbnail, px.
THUMB_SIDE = 360
#: Long side of the enlarged view's picture, px: at least this (unless the image is smaller)...
LARGE_SIDE = 1000
#: ...and at most this; a decoded picture in between is used without resampling.
LARGE_MAX = 1250
THUMB_QUALITY = 78
LARGE_QUALITY = 72
#: Images read at once (S3 reads overlap; decoding uses every core).
WORKERS = 8
#: Larger files are not previewed (a placeholder says so): a sheet must not read gigabytes.
MAX_BYTES = 256 * 2**20
#: EXIF tag of the orientation.
_ORIENTATION = 0x0112

#: Makes the S3 client, called at most once (when the first ``s3://`` image is met).
S3ClientFactory = Callable[[], Any]


@dataclass(frozen=True)
class Thumbnail:
    """One image made ready for the sheet: its upright size and two ``data:`` URIs, or the reason
    it could not be read (``problem``; then the URIs and the size are None)."""

    uri: str
    #: The full image's size once turned upright by its EXIF orientation, px.
    width: int | None = None
    height: int | None = None
    #: ``data:image/jpeg;base64,...`` at most :data:`THUMB_SIDE` px on its long side.
    small: str | None = None
    #: The same at most :data:`LARGE_SIDE` px, for the enlarged view.
    large: str | None = None
    #: Why there is no picture (one line), None when there is one.
    problem: str | None = None


def make_thumbnails(
    uris: Sequence[str],
    *,
    s3_client: S3ClientFactory | None = None,
    workers: int = WORKERS,
    progress: bool = False,
) -> list[Thumbnail]:
    """A :class:`Thumbnail` for each URI (a file path or ``s3://bucket/key``), in the same order.

    Never raises for one image: a missing file, a refused S3 read or bytes that are no image give
    a Thumbnail with ``problem`` set. ``progress`` shows a bar on stderr."""
    from tqdm import tqdm

    register_optional_formats()
    reader = _Reader(s3_client)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="thumbnails") as pool:
        futures = [pool.submit(thumbnail_of, uri, reader.read) for uri in uris]
        with tqdm(total=len(futures), desc="thumbnails", unit="img", disable=not progress, leave=False, dynamic_ncols=True) as bar:
            for future in futures:
                future.result()
                bar.update(1)
    return [future.result() for future in futures]


def thumbnail_of(uri: str, read: Callable[[str], bytes]) -> Thumbnail:
    """The Thumbnail of one image whose bytes ``read(uri)`` returns; any failure is its ``problem``."""
    try:
        return thumbnail_from_bytes(uri, read(uri))
    except IndexerError as exc:
        return Thumbnail(uri, problem=_reason(exc))
    except OSError as exc:  # a local file: missing, not readable, a folder...
        return Thumbnail(uri, problem=_os_reason(exc))


def thumbnail_from_bytes(uri: str, data: bytes) -> Thumbnail:
    """Decode, turn upright, downscale twice and encode; bytes that are no image (or a broken
    one) give a Thumbnail with the decoder's reason."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = _upright_size(image)
            scale = LARGE_SIDE / max(image.size)
            if scale < 1:  # JPEG only: decode at the smallest scale that keeps LARGE_SIDE px
                image.draft("RGB", (math.ceil(image.width * scale), math.ceil(image.height * scale)))
            large = _upright(image)
            if max(large.size) > LARGE_MAX:
                large.thumbnail((LARGE_SIDE, LARGE_SIDE), Image.Resampling.BICUBIC, reducing_gap=2.0)
            large_uri = _jpeg_data_uri(large, LARGE_QUALITY)
            # reducing_gap 1: halve by averaging first, then resample (half the time; for a grid
            # thumbnail the difference does not show)
            large.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BICUBIC, reducing_gap=1.0)
            return Thumbnail(uri, width, height, _jpeg_data_uri(large, THUMB_QUALITY), large_uri)
    except UnidentifiedImageError:
        return Thumbnail(uri, problem=unidentified_image_error(data).message)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # truncated, corrupt, too many pixels
        return Thumbnail(uri, problem=f"cannot decode the image: {_one_line(exc)}")


def _upright_size(image: Any) -> tuple[int, int]:
    """The full image's (width, height) once its EXIF orientation is applied (read before
    ``draft`` shrinks it)."""
    width, height = image.size
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # a broken EXIF block: shown as stored, as the engines do
        orientation = 1
    return (height, width) if orientation in TRANSPOSED_ORIENTATIONS else (width, height)


def _upright(image: Any) -> Any:
    """The decoded image as RGB, turned upright by its EXIF orientation (in place: no copy of
    an image that is upright already)."""
    from PIL import ImageOps

    try:
        ImageOps.exif_transpose(image, in_place=True)
    except Exception:  # a broken EXIF block: keep the pixels as stored
        pass
    return to_rgb(image)


def _jpeg_data_uri(image: Any, quality: int) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)  # optimize=True: 3% smaller, twice the time
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class _Reader:
    """Reads an image's bytes from a local file or S3; the S3 client is made once, when first needed."""

    def __init__(self, s3_client: S3ClientFactory | None) -> None:
        import threading

        self._factory = s3_client
        self._client: Any = None
        self._lock = threading.Lock()

    def read(self, uri: str) -> bytes:
        if uri.startswith("s3://"):
            return self._read_s3(uri)
        return _read_file(uri)

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                if self._factory is None:
                    raise IndexerError("no S3 client to read it with")
                self._client = self._factory()  # an IndexerError here is each S3 image's reason
            return self._client

    def _read_s3(self, uri: str) -> bytes:
        bucket, _, key = uri[len("s3://") :].partition("/")
        client = self._s3()
        try:
            answer = client.get_object(Bucket=bucket, Key=key)
            size = int(answer.get("ContentLength") or 0)
            if size > MAX_BYTES:
                answer["Body"].close()
                raise IndexerError(_too_large(size))
            return bytes(answer["Body"].read())
        except IndexerError:
            raise
        except Exception as exc:
            raise translate(exc, f"reading {uri}") from None


def _read_file(path: str) -> bytes:
    """A regular file's bytes (never a FIFO, device or folder: reading those blocks or fails)."""
    with open(path, "rb", opener=_open_regular) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > MAX_BYTES:
            raise IndexerError(_too_large(size))
        return handle.read()


def _open_regular(path: str, flags: int) -> int:
    """``open`` that refuses anything but a regular file, without blocking on a FIFO."""
    fd = os.open(path, flags | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(0, "not a regular file")
    return fd


def _too_large(size: int) -> str:
    return f"too large to preview ({size / 2**20:,.0f} MiB; at most {MAX_BYTES // 2**20} MiB)"


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "not a regular file"
    return f"cannot read the file: {exc.strerror or _one_line(exc)}"


def _reason(exc: IndexerError) -> str:
    """One line: an S3 failure names its code (``S3 NoSuchKey: ...``)."""
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or _one_line(exc)
    return f"S3 {code}: {message}" if code else message


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

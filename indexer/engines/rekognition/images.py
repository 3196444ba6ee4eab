"""The Rekognition engine's image preparation: what Rekognition accepts, at the least cost -
decided from the image's bytes (decoding itself is :mod:`indexer.engines.decode`'s, shared).

Rekognition reads JPEG and PNG S3 objects up to 15 MiB in place (no download, no upload), and
image bytes up to 5 MiB, at least 80 px on each side. What an image *is* comes from its first
bytes, never from its name: a WebP or HEIC called ``.jpg`` is converted, not sent as is to fail.
Everything else - other formats, larger files, local files - is read, rotated upright by its
EXIF orientation, converted, downscaled (never under the minimum side) or upscaled with Pillow
until it fits. What can never fit is an :class:`ImageError` raised *before* any call.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from ...core import ImageRef
from ...errors import ImageError
from ..decode import TRANSPOSED_ORIENTATIONS, register_optional_formats, sniff_format, to_rgb, unidentified_image_error

#: Rekognition's documented limits ("Guidelines and quotas", docs.aws.amazon.com/rekognition/
#: latest/dg/limits.html) say "15 MB" for S3 objects and "5 MB" for bytes. AWS means binary
#: megabytes there: botocore's service model gives ``ImageBlob`` ``max: 5242880`` = 5 * 2**20 for
#: the same page's "5 MB". An S3Object the service still refuses as too large is retried as bytes.
S3_REFERENCE_MAX_BYTES = 15 * 2**20
BYTES_MAX = 5 * 2**20
#: "The minimum image dimensions is 80 pixels for both height and width" (same page). Smaller
#: images are answered ``InvalidParameterException`` (boto/botocore#1366).
MIN_SIDE = 80
#: Images whose short side is at least this are upscaled to MIN_SIDE (at most 4x: a face needs
#: some 20 px to be one); smaller ones are recorded ``ImageTooSmall`` without a call.
MIN_UPSCALE_SIDE = 20
REKOGNITION_FORMATS = frozenset({"JPEG", "PNG"})
#: JPEG qualities tried, in order, once the image cannot shrink further without going under MIN_SIDE.
_QUALITIES = (90, 75, 60, 45)
#: Longest side a JPEG can have (libjpeg's limit, which Pillow enforces): an image that must be
#: re-encoded fits it, or it is recorded as too large; it is never sent to fail.
JPEG_MAX_SIDE = 65500
_HALF_PIXELS = 0.7071  # sqrt(1/2): each downscaling step halves the pixel count


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    width: int
    height: int
    #: True when ``data`` is the original file, untouched.
    original: bool


@dataclass(frozen=True)
class HeaderInfo:
    """What the first bytes of an image say: its real format and upright size (when known)."""

    format: str | None
    width: int | None = None
    height: int | None = None


def probe_header(header: bytes) -> HeaderInfo:
    """Format and upright (width, height) from the first bytes of an image."""
    fmt = sniff_format(header)
    size = dimensions_from_header(header)
    return HeaderInfo(fmt, *(size or (None, None)))


def fits_s3_reference(info: HeaderInfo, size: int) -> bool:
    """True when Rekognition can read this object in place: JPEG/PNG by its bytes, within the
    S3Object size limit, and not known to be under the minimum side."""
    if info.format not in REKOGNITION_FORMATS or size > S3_REFERENCE_MAX_BYTES or size <= 0:
        return False
    return info.width is None or min(info.width, info.height or 0) >= MIN_SIDE


def can_reference_in_s3(ref: ImageRef) -> bool:
    """A first, free filter (no bytes read): an S3 object small enough to be read in place.

    The decision itself is :func:`fits_s3_reference`, on the object's first bytes.
    """
    return ref.s3_location is not None and 0 < ref.size <= S3_REFERENCE_MAX_BYTES


def _open(data: bytes):
    from PIL import Image, UnidentifiedImageError

    register_optional_formats()
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image
    except Image.DecompressionBombError as exc:
        raise ImageError("ImageTooLargeException", f"image too large to decode: {exc}") from None
    except UnidentifiedImageError:
        raise unidentified_image_error(data) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError("InvalidImageFormatException", f"corrupt image: {exc}") from None


def prepare_bytes(data: bytes, max_bytes: int = BYTES_MAX, *, reencode: bool = False) -> PreparedImage:
    """The bytes to send: the original when Rekognition takes it as is, else an upright JPEG.

    The original is kept when it is JPEG/PNG (by its bytes), fits ``max_bytes``, needs no
    rotation and is at least MIN_SIDE on each side, so an image is never recompressed without
    need; ``reencode`` forces a fresh JPEG (the service refused the original's encoding).
    """
    from PIL import ImageOps

    if not data:
        raise ImageError("EmptyObject", "zero-byte file: not an image")
    image = _open(data)
    orientation = image.getexif().get(0x0112, 1)
    upright = ImageOps.exif_transpose(image) if orientation != 1 else image
    width, height = upright.size
    if min(width, height) < MIN_UPSCALE_SIDE:
        raise ImageError(
            "ImageTooSmall", f"{width}x{height} px: under Rekognition's {MIN_SIDE} px minimum and too small to upscale"
        )
    keep = image.format in REKOGNITION_FORMATS and len(data) <= max_bytes and orientation == 1
    if keep and not reencode and min(width, height) >= MIN_SIDE:
        return PreparedImage(data, width, height, original=True)
    return PreparedImage(_jpeg_under(_at_least_min_side(to_rgb(upright)), max_bytes), width, height, original=False)


def _at_least_min_side(image):
    """Upscaled so its short side is MIN_SIDE, when it is under it (callers checked the ratio)."""
    from PIL import Image

    short = min(image.size)
    if short >= MIN_SIDE:
        return image
    scale = MIN_SIDE / short
    size = (max(MIN_SIDE, round(image.width * scale)), max(MIN_SIDE, round(image.height * scale)))
    if max(size) > JPEG_MAX_SIDE:
        raise ImageError(
            "ImageTooLarge", f"{image.width}x{image.height} px: too elongated to reach {MIN_SIDE} px a side within a JPEG's {JPEG_MAX_SIDE} px"
        )
    return image.resize(size, Image.Resampling.LANCZOS)


def _jpeg_under(image, max_bytes: int) -> bytes:
    """Encode as JPEG under ``max_bytes``: halve the pixel count while the short side stays at
    least MIN_SIDE (a 60000x110 panorama stops at 80 px high, never 77), then lower the quality.
    What still does not fit is ``ImageTooLarge`` - recorded, never sent to fail."""
    from PIL import Image

    long = max(image.size)
    if long > JPEG_MAX_SIDE:  # fit a JPEG first, keeping the short side at MIN_SIDE or more
        scale = JPEG_MAX_SIDE / long
        if min(image.size) * scale < MIN_SIDE:
            raise ImageError(
                "ImageTooLarge", f"{image.width}x{image.height} px: a JPEG of at most {JPEG_MAX_SIDE} px would be under {MIN_SIDE} px high"
            )
        image = image.resize((max(MIN_SIDE, int(image.width * scale)), max(MIN_SIDE, int(image.height * scale))), Image.Resampling.LANCZOS)
    while True:
        data = _encode(image, _QUALITIES[0])
        if len(data) <= max_bytes:
            return data
        short = min(image.size)
        scale = max(_HALF_PIXELS, MIN_SIDE / short)
        if scale >= 0.999:
            break  # at the minimum side already: only the quality is left to give
        size = (max(MIN_SIDE, int(image.width * scale)), max(MIN_SIDE, int(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    for quality in _QUALITIES[1:]:
        data = _encode(image, quality)
        if len(data) <= max_bytes:
            return data
    raise ImageError(
        "ImageTooLarge", f"{image.width}x{image.height} px cannot fit Rekognition's {max_bytes} bytes without going under {MIN_SIDE} px"
    )


def _encode(image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def dimensions_from_header(header: bytes) -> tuple[int, int] | None:
    """Upright (width, height) from the first bytes of an image, or None if they don't tell."""
    from PIL import Image

    register_optional_formats()
    try:
        image = Image.open(io.BytesIO(header))
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1) if image.format == "JPEG" else 1
    except Exception:
        return None
    return (height, width) if orientation in TRANSPOSED_ORIENTATIONS else (width, height)

"""Turning an image into what Rekognition accepts, at the least cost.

Rekognition reads JPEG and PNG S3 objects up to 15 MB in place (no download, no upload), and
image bytes up to 5 MB. Everything else - other formats, larger files, local files - is read,
rotated upright by its EXIF orientation, converted and downscaled with Pillow until it fits.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from .engines.base import ImageRef
from .errors import ImageError

S3_REFERENCE_MAX_BYTES = 15 * 1024 * 1024
BYTES_MAX = 5 * 1024 * 1024
REKOGNITION_FORMATS = frozenset({"JPEG", "PNG"})
_REKOGNITION_EXTENSIONS = (".jpg", ".jpeg", ".png")
#: EXIF orientations that rotate by 90 degrees (width and height swap once upright).
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    width: int
    height: int
    #: True when ``data`` is the original file, untouched.
    original: bool


def can_reference_in_s3(ref: ImageRef) -> bool:
    """True when Rekognition can read this object straight from S3 (JPEG/PNG, <= 15 MB)."""
    if ref.s3_location is None or ref.size > S3_REFERENCE_MAX_BYTES:
        return False
    if ref.content_type in ("image/jpeg", "image/png"):
        return True
    return ref.s3_location[1].lower().endswith(_REKOGNITION_EXTENSIONS)


def _open(data: bytes):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageError("InvalidImageFormatException", f"not a readable image: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError("InvalidImageFormatException", f"corrupt image: {exc}") from None


def prepare_bytes(data: bytes, max_bytes: int = BYTES_MAX) -> PreparedImage:
    """The bytes to send: the original when Rekognition takes it as is, else an upright JPEG.

    The original is kept when it is JPEG/PNG, fits ``max_bytes`` and needs no rotation, so an
    image is never recompressed without need.
    """
    from PIL import ImageOps

    image = _open(data)
    orientation = image.getexif().get(0x0112, 1)
    upright = ImageOps.exif_transpose(image) if orientation != 1 else image
    width, height = upright.size
    if image.format in REKOGNITION_FORMATS and len(data) <= max_bytes and orientation == 1:
        return PreparedImage(data, width, height, original=True)
    return PreparedImage(_jpeg_under(upright, max_bytes), width, height, original=False)


def _jpeg_under(image, max_bytes: int) -> bytes:
    """Encode as JPEG, halving the pixel count until the result fits ``max_bytes``."""
    from PIL import Image

    if image.mode not in ("RGB", "L"):
        image = image.convert("RGBA").convert("RGB") if "A" in image.mode or image.mode == "P" else image.convert("RGB")
    while True:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        if buffer.tell() <= max_bytes or min(image.size) < 80:
            return buffer.getvalue()
        scale = 0.7071  # sqrt(1/2): each step halves the pixels
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))), Image.LANCZOS)


def dimensions_from_header(header: bytes) -> tuple[int, int] | None:
    """Upright (width, height) from the first bytes of a JPEG/PNG, or None if they don't tell."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(header))
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1) if image.format == "JPEG" else 1
    except Exception:
        return None
    return (height, width) if orientation in _TRANSPOSED_ORIENTATIONS else (width, height)

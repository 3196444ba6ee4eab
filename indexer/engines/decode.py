"""Image decoding both engines share: HEIC/HEIF through pillow-heif, what bytes really are, any
Pillow mode to RGB, and the error for bytes that are no image.

Neutral ground: the local engine decodes with it, and so does the Rekognition engine's image
preparation (:mod:`indexer.engines.rekognition.images`); neither imports the other.
"""

from __future__ import annotations

import io

from ..errors import ImageError

#: EXIF orientations that rotate by 90 degrees (width and height swap once upright).
TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})
#: ISO-BMFF brands of HEIF/HEIC/AVIF files (bytes 8-12 of the ``ftyp`` box).
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"})

_optional_formats_registered = False
#: Whether a HEIC/HEIF decoder (``pillow-heif``) is installed and registered with Pillow.
heif_available = False


def register_optional_formats() -> None:
    """Teach Pillow HEIC/HEIF (``pillow-heif``) when it is installed; harmless to call twice."""
    global _optional_formats_registered, heif_available
    if _optional_formats_registered:
        return
    _optional_formats_registered = True
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return
    register_heif_opener()
    heif_available = True


def unidentified_image_error(data: bytes) -> ImageError:
    """The error for bytes Pillow cannot identify: a HEIC/HEIF photo the installed decoders cannot
    read is *unsupported* (a clear code a user can act on), anything else is not an image."""
    if sniff_format(data[:64]) == "HEIF":
        why = "its variant is one the HEIF decoder cannot read" if heif_available else "no HEIF decoder installed (pip install pillow-heif)"
        return ImageError("UnsupportedImageFormat", f"HEIC/HEIF image: {why}")
    return ImageError("InvalidImageFormatException", "not an image format Pillow can read")


def sniff_format(header: bytes) -> str | None:
    """The format the bytes really are (``JPEG``, ``PNG``, ``HEIF``, ``WEBP``...), or None."""
    if header.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if header.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(header) >= 12 and header[4:8] == b"ftyp" and header[8:12] in _HEIF_BRANDS:
        return "HEIF"
    if header.startswith(b"RIFF") and header[8:12] == b"WEBP":
        return "WEBP"
    register_optional_formats()
    from PIL import Image

    try:
        with Image.open(io.BytesIO(header)) as image:
            return image.format
    except Exception:
        return None


#: Largest value of a 16-bit sample (PNG/TIFF 16 bits per sample): scaled down to 0-255.
_MAX_16BIT = 65535
#: Pillow's modes for 16-bit greyscale (PNG stores big-endian; TIFF either byte order).
_MODES_16BIT = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
#: Modes that carry transparency: composited on white, as a viewer shows them.
_MODES_WITH_ALPHA = frozenset({"RGBA", "LA", "La", "PA", "RGBa"})


def _deep_to_8bit(im):
    """A 16-bit or 32-bit greyscale image as mode ``L``, scaled by its sample range.

    Pillow's own ``convert`` *clips* these values to 0-255 instead of scaling them, which turns
    a 16-bit photo almost entirely white (99.6% of pixels on a 16-bit portrait). 16-bit modes
    scale by 65535; mode ``I`` (32-bit integers, how some decoders hand over 16-bit data) by 255
    when its values fit 8 bits, else 65535 when they fit 16 bits, else its own maximum; mode ``F``
    (float TIFF) by 1.0 when its values fit 0-1, else its maximum.
    """
    import numpy as np
    from PIL import Image

    values = np.asarray(im, dtype=np.float64)
    if im.mode in _MODES_16BIT:
        ceiling = float(_MAX_16BIT)
    else:
        top = float(values.max()) if values.size else 0.0
        if im.mode == "F" and top <= 1.0:
            ceiling = 1.0
        elif top <= 255:
            ceiling = 255.0
        elif top <= _MAX_16BIT:
            ceiling = float(_MAX_16BIT)
        else:
            ceiling = top
    scaled = np.clip(values * (255.0 / ceiling), 0, 255) + 0.5
    return Image.fromarray(scaled.astype(np.uint8), mode="L")


def to_rgb(im):
    """Any Pillow mode -> RGB: transparency on white, deep greyscale scaled, CMYK and palettes converted."""
    from PIL import Image

    if im.mode == "RGB":
        return im
    if im.mode in _MODES_16BIT or im.mode in ("I", "F"):
        return _deep_to_8bit(im).convert("RGB")
    if im.mode in _MODES_WITH_ALPHA or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    return im.convert("RGB")

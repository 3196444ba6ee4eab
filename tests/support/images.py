"""Real image files generated on the fly: every call with a new seed gives new content."""

from __future__ import annotations

import io
import random

from PIL import Image


#: Default sizes are at least 80 px on each side: Rekognition's documented minimum, which the
#: tests' endpoint enforces as the service does (a smaller fixture would be refused).
def jpeg_bytes(seed: int, size: tuple[int, int] = (120, 80), exif_orientation: int | None = None) -> bytes:
    """A small JPEG of random blocks; distinct seeds give distinct bytes."""
    rng = random.Random(seed)
    image = Image.new("RGB", size)
    block = 8
    for x in range(0, size[0], block):
        for y in range(0, size[1], block):
            image.paste((rng.randrange(256), rng.randrange(256), rng.randrange(256)), (x, y, x + block, y + block))
    buffer = io.BytesIO()
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(buffer, format="JPEG", quality=90, exif=exif)
    else:
        image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def png_bytes(seed: int, size: tuple[int, int] = (80, 80)) -> bytes:
    image = Image.open(io.BytesIO(jpeg_bytes(seed, size)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_bytes(seed: int, fmt: str, size: tuple[int, int] = (96, 80)) -> bytes:
    """Any format Pillow writes (GIF, BMP, TIFF, WEBP...)."""
    image = Image.open(io.BytesIO(jpeg_bytes(seed, size)))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()

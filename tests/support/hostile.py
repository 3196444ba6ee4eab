"""A corpus of hostile image files, generated (small, deterministic) for the hostile-files tests.

Every case is a name, the bytes to store under it, and what the *local* engine must make of it
(``None`` = indexed, else the error code it must record). The Rekognition outcomes depend on the
service's rules and are asserted in the tests. Folder-only cases (FIFO, symlinks, unreadable or
vanishing files) cannot be bytes and are made by :func:`make_folder_specials`.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

#: Rekognition's size limit for S3Object images, 15 MB. The docs do not say whether MB is 10^6
#: or 2^20, so the large case is over the larger reading (15 * 2^20) by a margin.
S3_OBJECT_LIMIT_LARGEST_READING = 15 * 1024 * 1024
#: A PNG whose header claims more pixels than Pillow's bomb guard admits outright (2 x 89.5 Mpx).
BOMB_SIDE = 15000
#: Side of the asymmetric image used for EXIF orientations (width != height shows the swap).
ORIENTED_SIZE = (120, 80)


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    #: The local engine's outcome: None = indexed, else the error code it records.
    local_code: str | None = None
    #: The upright (width, height) the row must record when indexed, if the case checks it.
    upright_size: tuple[int, int] | None = None
    #: True when Rekognition cannot take this as it is (a WebP, a tiny image): the Rekognition
    #: engine must convert it, or record a permanent error without a call.
    rekognition_needs_care: bool = False


def portrait(size: tuple[int, int] = (128, 128)) -> Image.Image:
    """A real face from an installed package (scikit-image's astronaut), cropped and scaled."""
    from skimage import data

    return Image.fromarray(data.astronaut()).crop((140, 0, 360, 220)).resize(size, Image.BILINEAR)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def blocks(seed: int, size: tuple[int, int] = (128, 96)) -> Image.Image:
    """Random coloured blocks: distinct seeds give distinct content (so distinct digests)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, size[1] // 8), max(1, size[0] // 8), 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.NEAREST)


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid 1-bit PNG of side x side pixels (225 Mpx) in about 30 KB: all-black rows, deflated."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def deep_png(image: Image.Image) -> bytes:
    """A 16-bit greyscale PNG (mode I;16) of ``image``: each 8-bit value v becomes v * 257."""
    grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(grey), "PNG")


def oriented_jpeg(orientation: int, seed: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(blocks(seed, ORIENTED_SIZE), "JPEG", quality=90, exif=exif)


def animated_gif(seed: int) -> bytes:
    frames = [blocks(seed + i, (128, 96)).convert("P") for i in range(3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def palette_with_transparency(seed: int) -> bytes:
    image = blocks(seed, (128, 96)).convert("P", palette=Image.ADAPTIVE, colors=16)
    return encode(image, "PNG", transparency=0)


def rgba_png(seed: int) -> bytes:
    image = blocks(seed, (128, 96)).convert("RGBA")
    alpha = Image.linear_gradient("L").resize(image.size)
    image.putalpha(alpha)
    return encode(image, "PNG")


def heic_header() -> bytes:
    """The start of a HEIC file (an ``ftyp`` box, brand ``heic``) with no image data after it."""
    ftyp = b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic"
    return struct.pack(">I", len(ftyp) + 4) + ftyp + b"\x00" * 64


def real_heic(image: Image.Image) -> bytes | None:
    """``image`` as a real HEIC file when ``pillow-heif`` is installed (it encodes too), else None."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return None
    register_heif_opener()
    return encode(image, "HEIF", quality=80)


@lru_cache(maxsize=1)
def large_jpeg() -> bytes:
    """A JPEG just over 15 MB under either reading of MB (noise at quality 100 barely compresses)."""
    rng = np.random.default_rng(15)
    noise = rng.integers(0, 256, (1700, 2600, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "JPEG", quality=100, subsampling=0)
    assert len(data) > S3_OBJECT_LIMIT_LARGEST_READING, len(data)
    return data


def cases(include_large: bool = True) -> list[Case]:
    """Every byte-level case, by file name (also used as the S3 key)."""
    face = portrait()
    truncated = encode(face, "JPEG", quality=90)
    corpus = [
        Case("empty.jpg", b"", local_code="EmptyObject"),
        Case("truncated.jpg", truncated[: len(truncated) // 2], local_code="InvalidImageFormatException"),
        Case("text.jpg", b"this is a text file, not a photo\n" * 4, local_code="InvalidImageFormatException"),
        Case("bomb.png", png_bomb(), local_code="ImageTooLargeException"),
        Case("cmyk.jpg", encode(face.convert("CMYK"), "JPEG", quality=90), upright_size=face.size),
        Case("deep16.png", deep_png(face), upright_size=face.size),
        Case("rgba.png", rgba_png(3), upright_size=(128, 96)),
        Case("palette_transparent.png", palette_with_transparency(4), upright_size=(128, 96)),
        Case("animated.gif", animated_gif(5), upright_size=(128, 96), rekognition_needs_care=True),
        Case("photo.webp", encode(blocks(8), "WEBP"), upright_size=(128, 96), rekognition_needs_care=True),
        Case("webp_named.jpg", encode(blocks(9), "WEBP"), upright_size=(128, 96), rekognition_needs_care=True),
        Case("photo.tiff", encode(blocks(10), "TIFF"), upright_size=(128, 96), rekognition_needs_care=True),
        Case("photo.bmp", encode(blocks(11), "BMP"), upright_size=(128, 96), rekognition_needs_care=True),
        Case("broken.heic", heic_header(), local_code="UnsupportedImageFormat", rekognition_needs_care=True),
        Case("tiny.png", encode(blocks(12, (1, 1)), "PNG"), upright_size=(1, 1), rekognition_needs_care=True),
        Case("small.jpg", encode(blocks(13, (40, 30)), "JPEG"), upright_size=(40, 30), rekognition_needs_care=True),
        Case("with space.jpg", encode(blocks(14), "JPEG"), upright_size=(128, 96)),
        Case("ünïcødé 写真.jpg", encode(blocks(15), "JPEG"), upright_size=(128, 96)),
        Case("plus+sign.jpg", encode(blocks(16), "JPEG"), upright_size=(128, 96)),
        Case("percent%20.jpg", encode(blocks(17), "JPEG"), upright_size=(128, 96)),
        Case("hash#tag.jpg", encode(blocks(18), "JPEG"), upright_size=(128, 96)),
        Case("question?.jpg", encode(blocks(19), "JPEG"), upright_size=(128, 96)),
    ]
    for orientation in range(2, 9):
        width, height = ORIENTED_SIZE
        upright = (height, width) if orientation >= 5 else (width, height)
        corpus.append(Case(f"orientation{orientation}.jpg", oriented_jpeg(orientation, 20 + orientation), upright_size=upright))
    heic = real_heic(face)
    if heic is not None:
        corpus.append(Case("photo.heic", heic, upright_size=face.size, rekognition_needs_care=True))
    if include_large:
        corpus.append(Case("large.jpg", large_jpeg(), upright_size=(2600, 1700), rekognition_needs_care=True))
    return corpus


#: Folder entries that are not image files: none of them may end with a row, or hang the run.
NOT_FILES = ("fifo.jpg", "loop.jpg", "dangling.jpg", "folder.jpg")


def make_folder_specials(folder: Path) -> None:
    """A FIFO named .jpg, a symlink loop, a dangling symlink and a folder named .jpg, in ``folder``."""
    os.mkfifo(folder / "fifo.jpg")
    os.symlink("loop.jpg", folder / "loop.jpg")
    os.symlink("nowhere/missing.jpg", folder / "dangling.jpg")
    (folder / "folder.jpg").mkdir()
    (folder / "folder.jpg" / "inside.txt").write_text("a folder named like a photo")


def write_folder(folder: Path, corpus: list[Case]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for case in corpus:
        (folder / case.name).write_bytes(case.data)

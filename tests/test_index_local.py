"""A local folder through the Rekognition engine: bytes, EXIF orientation, formats, sizes."""

from __future__ import annotations

import io
import os

from PIL import Image

from indexer import api
from indexer.config import load_config
from indexer.engines.rekognition.images import BYTES_MAX, prepare_bytes
from tests.support.faces import face_detail
from tests.support.images import image_bytes, jpeg_bytes


def _config(db_url: str):
    return load_config(flags={"db_url": db_url, "engine": "rekognition", "concurrency": 3}, environ={})


def test_exif_rotated_photo_is_sent_upright(tmp_path, rekognition, sqlite_url, sqlite_store):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "rotated.jpg").write_bytes(jpeg_bytes(21, size=(120, 80), exif_orientation=6))

    summary = api.index(str(tmp_path / "p"), config=_config(sqlite_url))

    assert summary.analyzed == 1
    assert rekognition.calls[0].size == (80, 120), "orientation 6 turns 120x80 into 80x120"
    image = sqlite_store.image(str(tmp_path / "p" / "rotated.jpg"))
    assert (image["width"], image["height"]) == (80, 120)


def test_formats_pillow_reads_are_indexed(tmp_path, rekognition, sqlite_url):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, fmt in enumerate(["BMP", "TIFF", "WEBP", "GIF"]):
        (folder / f"img{i}.{fmt.lower()}").write_bytes(image_bytes(30 + i, fmt))
    summary = api.index(str(folder), config=_config(sqlite_url))
    assert (summary.listed, summary.analyzed, summary.failed) == (4, 4, 0)
    assert all(call.kind == "Bytes" and call.outcome == "ok" for call in rekognition.calls)


def test_unchanged_file_is_skipped_and_touched_file_is_not(tmp_path, rekognition, sqlite_url):
    folder = tmp_path / "p"
    folder.mkdir()
    photo = folder / "a.jpg"
    photo.write_bytes(jpeg_bytes(40))
    rekognition.register(photo.read_bytes(), [face_detail()])
    api.index(str(folder), config=_config(sqlite_url))
    assert api.index(str(folder), config=_config(sqlite_url)).api_calls == 0

    stat = photo.stat()
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert api.index(str(folder), config=_config(sqlite_url)).analyzed == 1


def test_oversize_image_is_downscaled_under_the_bytes_limit():
    noisy = Image.frombytes("RGB", (2600, 2600), os.urandom(2600 * 2600 * 3))
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    assert len(buffer.getvalue()) > BYTES_MAX

    prepared = prepare_bytes(buffer.getvalue())

    assert len(prepared.data) <= BYTES_MAX
    assert not prepared.original
    assert (prepared.width, prepared.height) == (2600, 2600), "dimensions of the original"
    assert Image.open(io.BytesIO(prepared.data)).format == "JPEG"


def test_small_jpeg_is_sent_untouched():
    data = jpeg_bytes(41)
    prepared = prepare_bytes(data)
    assert prepared.original and prepared.data == data

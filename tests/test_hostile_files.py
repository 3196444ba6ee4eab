"""Hostile files through both engines, from a folder and from S3 (issue 9).

For every case of :mod:`tests.support.hostile`: the run completes (exit 0), nothing on stderr is
a traceback, the image ends with exactly one row (indexed, or failed with a code and a one-line
message), what is not an image file (FIFO, symlink loop, dangling symlink, folder) ends with no
row and never blocks, and a re-run spends nothing on permanent failures.
"""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from indexer.cli import app
from indexer.sources import LocalSource, S3Source
from indexer.store.models import images_table
from tests.support import hostile
from tests.support.rekognition_endpoint import digest

runner = CliRunner()
BUCKET = "hostile"
PREFIX = "corpus/"
#: Cases whose bytes are broken: every engine must record them as failed, permanently.
BROKEN = {"empty.jpg", "text.jpg", "broken.heic"}
#: Cases a real service may accept (header readable) or refuse (no pixels to decode).
SERVICE_DECIDES = {"truncated.jpg", "bomb.png"}
#: Under Rekognition's 80-px minimum: upscaled and indexed, or a permanent error without a call.
TINY = {"tiny.png", "small.jpg"}
#: Files the tests remove or replace while the run is between listing and analysis.
VANISHING, OVERWRITTEN, UNREADABLE = "vanishing.jpg", "overwritten.jpg", "unreadable.jpg"
#: A symlink to a regular file: followed, indexed under the link's own path.
LINK = "link_to_photo.jpg"
#: Seconds the FIFO watchdog waits between looks for a reader blocked on the FIFO.
WATCH_INTERVAL = 0.2


@pytest.fixture(scope="module")
def corpus() -> list[hostile.Case]:
    return hostile.cases()


# ------------------------------------------------------------------ helpers


def _rows(db_url: str) -> dict[str, object]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                select(
                    *(images_table.c[name] for name in ("uri", "status", "error_code", "error_message", "retryable",
                                                        "run_id", "width", "height", "fingerprint"))
                )
            ).all()
    finally:
        engine.dispose()
    return {row.uri: row for row in found}


def _index(source: str, engine: str, db_url: str) -> dict:
    result = runner.invoke(app, ["index", source, "--engine", engine, "--db", db_url, "--json", "--concurrency", "4"])
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    assert result.exit_code == 0, (result.exit_code, result.stderr, result.stdout)
    return json.loads(result.stdout)


class FifoWatchdog:
    """Unblocks anyone reading the FIFO (and remembers that someone was): a hang becomes a failure.

    Opening a FIFO for writing with ``O_NONBLOCK`` succeeds only while a reader has it open, so
    the watchdog can tell a blocked reader without ever blocking itself.
    """

    def __init__(self, fifo: Path):
        self.fifo = fifo
        self.reader_seen = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue  # ENXIO: nobody reads it
            self.reader_seen = True
            os.close(fd)  # the reader gets end-of-file and goes on

    def __enter__(self) -> "FifoWatchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _deny_reading(monkeypatch, name: str) -> None:
    """Make ``name`` unreadable to the indexer. Tests run as root, which reads mode-000 files, so
    ``os.open`` is made to fail with EACCES for that one file, as it does for other users."""
    real_open = os.open

    def guarded_open(path, flags, *args, **kwargs):
        if os.fspath(path).endswith(os.sep + name):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)


def _between_listing_and_analysis(monkeypatch, source_class, action) -> None:
    """Run ``action(ref)`` on each reference right after the walk yields it (before any analysis)."""
    real_walk = source_class.walk

    def walk(self):
        for ref in real_walk(self):
            action(ref)
            yield ref

    monkeypatch.setattr(source_class, "walk", walk)


def _folder(tmp_path: Path, corpus: list[hostile.Case]) -> Path:
    folder = (tmp_path / "photos").resolve()
    hostile.write_folder(folder, corpus)
    hostile.make_folder_specials(folder)
    os.symlink("plus+sign.jpg", folder / LINK)
    (folder / VANISHING).write_bytes(hostile.encode(hostile.blocks(90), "JPEG"))
    (folder / OVERWRITTEN).write_bytes(hostile.encode(hostile.blocks(91), "JPEG"))
    (folder / UNREADABLE).write_bytes(hostile.encode(hostile.blocks(92), "JPEG"))
    return folder


def _run_folder(tmp_path, corpus, monkeypatch, engine: str, db_url: str):
    folder = _folder(tmp_path, corpus)
    _deny_reading(monkeypatch, UNREADABLE)
    new_content = hostile.encode(hostile.blocks(93), "JPEG")

    def meddle(ref):
        name = os.path.basename(ref.uri)
        if name == VANISHING:
            os.remove(ref.uri)
        elif name == OVERWRITTEN:
            Path(ref.uri).write_bytes(new_content)

    _between_listing_and_analysis(monkeypatch, LocalSource, meddle)
    with FifoWatchdog(folder / "fifo.jpg") as watchdog:
        first = _index(str(folder), engine, db_url)
    assert not watchdog.reader_seen, "something opened the FIFO for reading (it would block forever)"
    uri = lambda name: str(folder / name)  # noqa: E731
    return first, uri, folder


def _s3_corpus(s3, corpus) -> None:
    s3.create_bucket(Bucket=BUCKET)
    for case in corpus:
        s3.put_object(Bucket=BUCKET, Key=PREFIX + case.name, Body=case.data)
    s3.put_object(Bucket=BUCKET, Key=PREFIX + VANISHING, Body=hostile.encode(hostile.blocks(90), "JPEG"))
    s3.put_object(Bucket=BUCKET, Key=PREFIX + OVERWRITTEN, Body=hostile.encode(hostile.blocks(91), "JPEG"))


def _run_s3(s3, corpus, monkeypatch, engine: str, db_url: str):
    _s3_corpus(s3, corpus)
    new_content = hostile.encode(hostile.blocks(93), "JPEG")

    def meddle(ref):
        key = ref.s3_location[1]
        if key.endswith("/" + VANISHING):
            s3.delete_object(Bucket=BUCKET, Key=key)
        elif key.endswith("/" + OVERWRITTEN):
            s3.put_object(Bucket=BUCKET, Key=key, Body=new_content)

    _between_listing_and_analysis(monkeypatch, S3Source, meddle)
    first = _index(f"s3://{BUCKET}/{PREFIX}", engine, db_url)
    uri = lambda name: f"s3://{BUCKET}/{PREFIX}{name}"  # noqa: E731
    return first, uri, new_content


def _assert_one_line_failure(row) -> None:
    assert row.status == "failed" and row.error_code, row
    assert row.error_message and "\n" not in row.error_message and "Traceback" not in row.error_message, row


def _assert_exactly_these(rows: dict, expected_uris: set[str]) -> None:
    assert set(rows) == expected_uris, {"missing": expected_uris - set(rows), "extra": set(rows) - expected_uris}


def _report(label: str, rows: dict) -> None:
    """Print each case's outcome (``pytest -s`` shows the corpus table for the closing note)."""
    for u, row in sorted(rows.items()):
        outcome = "indexed" if row.status == "indexed" else f"{row.error_code} (retryable={row.retryable})"
        print(f"CORPUS\t{label}\t{u.rsplit('/', 1)[1]}\t{outcome}")


def _assert_corpus_rows(rows, uri, corpus, engine: str) -> None:
    """The per-case outcomes both sources share."""
    for case in corpus:
        row = rows[uri(case.name)]
        if case.name in SERVICE_DECIDES and engine == "rekognition":
            if row.status != "indexed":
                _assert_one_line_failure(row)
        elif case.name in TINY and engine == "rekognition":
            if row.status != "indexed":
                _assert_one_line_failure(row)
                assert row.retryable is False, f"{case.name}: too small is a permanent error"
        elif case.name in BROKEN or (engine == "local" and case.local_code):
            _assert_one_line_failure(row)
            assert row.retryable is False, f"{case.name} is broken for good: it must not be retried"
            if engine == "local":
                assert row.error_code == case.local_code, (case.name, row.error_code)
        else:
            assert row.status == "indexed", (case.name, row.error_code, row.error_message)
            if case.upright_size:
                assert (row.width, row.height) == case.upright_size, (case.name, row.width, row.height)
    broken_heic = rows[uri("broken.heic")]
    assert broken_heic.error_code == "UnsupportedImageFormat" and "HEIC" in broken_heic.error_message, broken_heic
    if uri("photo.heic") in rows:  # a real HEIC (pillow-heif installed): indexed like any photo
        assert rows[uri("photo.heic")].status == "indexed", rows[uri("photo.heic")]


def _permanent(rows) -> set[str]:
    return {u for u, row in rows.items() if row.status == "failed" and row.retryable is False}


# ------------------------------------------------------------------ folder


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["local", "rekognition"])
def test_hostile_folder(engine, corpus, tmp_path, monkeypatch, aws_env, rekognition, models, sqlite_url):
    monkeypatch.setenv("INDEXER_MODELS_DIR", str(models))
    first, uri, folder = _run_folder(tmp_path, corpus, monkeypatch, engine, sqlite_url)
    rows = _rows(sqlite_url)
    _report(f"{engine}/folder", rows)

    expected = {uri(c.name) for c in corpus} | {uri(LINK), uri(VANISHING), uri(OVERWRITTEN), uri(UNREADABLE)}
    _assert_exactly_these(rows, expected)  # no row for the FIFO, the loop, the dangling link, the folder
    _assert_corpus_rows(rows, uri, corpus, engine)
    assert rows[uri(LINK)].status == "indexed", "a symlink to a photo is followed"
    assert rows[uri(OVERWRITTEN)].status == "indexed"
    assert rows[uri(VANISHING)].error_code == "FileNotFound"
    assert rows[uri(UNREADABLE)].error_code == "PermissionDenied"
    _assert_one_line_failure(rows[uri(VANISHING)])
    _assert_one_line_failure(rows[uri(UNREADABLE)])
    assert first["listed"] == len(expected)
    assert first["analyzed"] + first["failed"] == len(expected)
    if engine == "local":
        assert rekognition.count() == 0

    calls_before = rekognition.count()
    again = _index(str(folder), engine, sqlite_url)
    after = _rows(sqlite_url)
    spent = rekognition.calls[calls_before:]
    assert all(call.digest == digest((folder / OVERWRITTEN).read_bytes()) for call in spent), (
        "a re-run calls the engine only for the file that changed",
        [(call.kind, call.outcome, call.size) for call in spent],
    )
    for u in _permanent(rows) | {u for u, row in rows.items() if row.status == "indexed" and not u.endswith(OVERWRITTEN)}:
        assert after[u].run_id == rows[u].run_id, f"{u} was worked on again"
    # Looked at again: the overwritten file (its fingerprint changed) and the unreadable one
    # (a read failure is retryable, and costs no engine call); the vanished one is not listed.
    assert (again["analyzed"], again["failed"]) == (1, 1), again


# ------------------------------------------------------------------ S3


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["local", "rekognition"])
def test_hostile_s3(engine, corpus, s3, monkeypatch, rekognition, models, sqlite_url):
    monkeypatch.setenv("INDEXER_MODELS_DIR", str(models))
    first, uri, new_content = _run_s3(s3, corpus, monkeypatch, engine, sqlite_url)
    rows = _rows(sqlite_url)
    _report(f"{engine}/s3", rows)

    expected = {uri(c.name) for c in corpus} | {uri(VANISHING), uri(OVERWRITTEN)}
    _assert_exactly_these(rows, expected)
    _assert_corpus_rows(rows, uri, corpus, engine)
    _assert_one_line_failure(rows[uri(VANISHING)])
    assert rows[uri(OVERWRITTEN)].status == "indexed"
    assert first["listed"] == len(expected)
    if engine == "local":
        assert rekognition.count() == 0
    else:
        failing = [c for c in rekognition.calls if c.outcome != "ok"]
        allowed = {digest(c.data) for c in corpus if c.name in SERVICE_DECIDES | {"text.jpg"}}
        assert all(call.digest in allowed for call in failing), (
            "a call that had to fail was spent",
            [(call.kind, call.outcome, call.size) for call in failing],
        )

    calls_before = rekognition.count()
    again = _index(f"s3://{BUCKET}/{PREFIX}", engine, sqlite_url)
    after = _rows(sqlite_url)
    spent = rekognition.calls[calls_before:]
    assert all(call.digest == digest(new_content) for call in spent), "re-run calls only for the overwritten object"
    for u in _permanent(rows):
        assert after[u].run_id == rows[u].run_id, f"{u} failed for good yet was tried again"
    assert after[uri(OVERWRITTEN)].status == "indexed"
    assert (again["analyzed"], again["failed"]) == (1, 0), "only the overwritten object is looked at again"


# ------------------------------------------------------------------ decoding (local engine)


def _face_box(models, data: bytes):
    from indexer.core import ImageRef
    from indexer.engines.local.engine import LocalEngine

    ref = ImageRef(uri="mem://x.png", size=len(data), fingerprint="x")
    with LocalEngine(workers=0, models_dir=models, auto_install=False) as engine:
        faces = engine.analyze(ref, lambda: data).face_details
    return [face["BoundingBox"] for face in faces]


def test_16_bit_png_gives_the_same_face_as_its_8_bit_copy(models):
    from skimage import data

    grey8 = Image.fromarray(data.astronaut()).convert("L")
    png8 = hostile.encode(grey8, "PNG")
    png16 = hostile.deep_png(grey8)
    assert Image.open(io.BytesIO(png16)).mode.startswith("I;16"), "the fixture really is 16-bit"

    faces8, faces16 = _face_box(models, png8), _face_box(models, png16)

    assert len(faces8) == 1, faces8
    assert len(faces16) == len(faces8)
    for key in ("Left", "Top", "Width", "Height"):
        assert faces16[0][key] == pytest.approx(faces8[0][key], abs=0.01)


def test_16_bit_decodes_to_the_8_bit_pixels():
    from indexer.engines.local.engine import decode

    grey8 = hostile.portrait().convert("L")
    expected = np.asarray(grey8.convert("RGB"), dtype=int)
    big_endian = Image.frombytes("I;16B", grey8.size, (np.asarray(grey8, dtype=">u2") * 257).tobytes())
    as_int32 = Image.fromarray(np.asarray(grey8, dtype=np.int32) * 257)
    for fmt, image in (("PNG-I;16", None), ("TIFF-I;16B", big_endian), ("TIFF-I", as_int32)):
        data = hostile.deep_png(grey8) if image is None else hostile.encode(image, "TIFF")
        rgb, _, _ = decode(data)
        assert np.abs(rgb.astype(int) - expected).max() <= 1, fmt


def test_transparency_cmyk_and_animation_decode_to_what_a_viewer_shows():
    from indexer.engines.local.engine import decode

    opaque = hostile.blocks(50)
    expected = np.asarray(opaque, dtype=int)
    cmyk, _, _ = decode(hostile.encode(opaque.convert("CMYK"), "JPEG", quality=95))
    assert np.abs(cmyk.astype(int) - expected).mean() < 8, "CMYK JPEG keeps its colours"

    clear = Image.new("RGBA", (90, 90), (0, 0, 0, 0))
    for mode in ("RGBA", "LA"):
        rgb, _, _ = decode(hostile.encode(clear.convert(mode), "PNG"))
        assert rgb.min() == 255, f"fully transparent {mode} shows as the white background"
    palette = Image.new("P", (90, 90), 0)
    palette.putpalette([0, 0, 0, 200, 0, 0])
    palette.paste(1, (0, 0, 45, 90))
    rgb, _, _ = decode(hostile.encode(palette, "PNG", transparency=0))
    assert tuple(rgb[10, 10]) == (200, 0, 0) and tuple(rgb[10, 80]) == (255, 255, 255)

    first, second = Image.new("RGB", (90, 90), (255, 0, 0)), Image.new("RGB", (90, 90), (0, 0, 255))
    gif = hostile.encode(first, "GIF", save_all=True, append_images=[second])
    rgb, _, _ = decode(gif)
    assert rgb[45, 45, 0] > 200 and rgb[45, 45, 2] < 50, "an animation gives its first frame"


#: How each EXIF orientation stores an upright picture, in the words of the EXIF spec (the
#: viewer undoes it): 2 mirrored, 3 upside down, 4 flipped, 5 mirrored along the main diagonal,
#: 6 turned a quarter counter-clockwise, 7 mirrored along the other diagonal, 8 turned clockwise.
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.mark.parametrize("orientation", sorted(STORED_AS))
def test_every_exif_orientation_is_turned_upright(orientation):
    from indexer.engines.local.engine import decode

    upright = Image.new("RGB", (120, 80), (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, 30, 20))  # a red mark in the top-left corner
    stored = upright.transpose(STORED_AS[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    rgb, width, height = decode(hostile.encode(stored, "PNG", exif=exif))

    assert (width, height) == (120, 80) and rgb.shape == (80, 120, 3)
    assert rgb[5, 5, 0] > 200 and rgb[5, 5, 2] < 50, "the mark is back in the top-left corner"
    assert rgb[75, 115, 2] > 200


# ------------------------------------------------------------------ the folder walk and reader


def _read_in_thread(read, seconds: float = 10.0):
    """Call ``read`` in a thread; fail (not hang) if it does not return within ``seconds``."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(read())
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, "reading blocked"
    return outcome[0]


def test_walk_takes_regular_files_and_links_to_them_only(tmp_path):
    folder = tmp_path / "walk"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(hostile.encode(hostile.blocks(1), "JPEG"))
    hostile.make_folder_specials(folder)
    os.symlink("photo.jpg", folder / "link.jpg")
    os.symlink("/dev/zero", folder / "device.jpg")  # endless bytes: never read
    (folder / "sub").mkdir()
    os.symlink(folder, folder / "sub" / "back-to-top")  # a folder loop: not descended
    os.symlink(folder / "photo.jpg", folder / "sub" / "elsewhere.png")

    names = sorted(os.path.relpath(ref.uri, folder) for ref in LocalSource(folder).walk())

    assert names == ["link.jpg", "photo.jpg", os.path.join("sub", "elsewhere.png")]


def test_a_fifo_put_in_a_files_place_after_the_listing_is_refused_without_blocking(tmp_path):
    from indexer.errors import ImageError

    path = tmp_path / "x.jpg"
    path.write_bytes(hostile.encode(hostile.blocks(2), "JPEG"))
    (ref,) = LocalSource(tmp_path).walk()
    path.unlink()
    os.mkfifo(path)

    error = _read_in_thread(LocalSource(tmp_path).reader(ref))

    assert isinstance(error, ImageError) and error.code == "NotARegularFile", error


def test_a_file_replaced_by_a_folder_is_a_read_error(tmp_path):
    from indexer.errors import ImageError

    path = tmp_path / "x.jpg"
    path.write_bytes(b"x")
    (ref,) = LocalSource(tmp_path).walk()
    path.unlink()
    path.mkdir()

    error = _read_in_thread(LocalSource(tmp_path).reader(ref))

    assert isinstance(error, ImageError) and error.code in ("NotARegularFile", "ReadError"), error
    assert "\n" not in error.message


def test_a_folder_the_walk_cannot_enter_is_named_on_stderr(tmp_path, capsys, monkeypatch):
    """Root enters every folder, so the walk's error is injected where ``os.walk`` reports it."""
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "a.jpg").write_bytes(b"x")
    (tmp_path / "open.jpg").write_bytes(b"x")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    names = [os.path.basename(ref.uri) for ref in LocalSource(tmp_path).walk()]

    assert names == ["open.jpg"]
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "cannot read folder" in line and "locked" in line and "Permission denied" in line


def test_a_name_that_is_not_utf8_is_named_on_stderr_and_left_out(tmp_path, capsys):
    os.mkdir(tmp_path / "w")
    with open(os.path.join(os.fsencode(tmp_path / "w"), b"caf\xe9.jpg"), "wb") as out:
        out.write(b"x")
    (tmp_path / "w" / "ok.jpg").write_bytes(b"x")

    names = [os.path.basename(ref.uri) for ref in LocalSource(tmp_path / "w").walk()]

    assert names == ["ok.jpg"]
    assert "not valid UTF-8" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "fork") or os.geteuid() != 0, reason="needs root to drop to another user")
def test_a_really_unreadable_file_is_a_permission_error_for_another_user(tmp_path):
    """Root reads mode-000 files, so a forked child drops to ``nobody`` and reads one for real
    (the code is already imported: the child opens nothing but the file)."""
    from indexer.errors import ImageError
    from indexer.sources import read_regular_file

    path = tmp_path / "secret.jpg"
    path.write_bytes(b"x")
    path.chmod(0)
    tmp_path.chmod(0o755)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = "no error"
        try:
            os.setgid(65534)
            os.setuid(65534)
            read_regular_file(str(path), str(path))
        except ImageError as exc:
            code = f"{exc.code} {exc.retryable}"
        except BaseException as exc:  # noqa: BLE001
            code = type(exc).__name__
        os.write(write_end, code.encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read().decode() == "PermissionDenied True"

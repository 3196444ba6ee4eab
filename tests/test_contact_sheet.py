"""`indexer search --format html` and `indexer show --format html`: the contact sheet.

An index written through ``Store.write`` over real JPEG files generated here (known sizes, one
stored sideways with EXIF orientation 6), and over objects in moto's S3. Each sheet is parsed
with html5lib in strict mode (a parse error fails the test), then read back from its markup:
which images, how many boxes, which BoundingBox each box carries, what the placeholders say.
"""

from __future__ import annotations

import base64
import io
import re
import webbrowser
from pathlib import Path
from typing import Any

import html5lib
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from indexer import api
from indexer.attributes import ALL_ATTRIBUTES
from indexer.cli import app
from indexer.config import load_config
from indexer.contact_sheet import Box, Sheet, image_entry, render_sheet
from indexer.core import Analysis, FaceDescriptors, ImageRef
from indexer.engines.local import embedding
from indexer.store.repository import ImageOutcome, Store
from indexer.thumbnails import LARGE_MAX, LARGE_SIDE, THUMB_SIDE
from tests.support.faces import face_detail
from tests.support.images import jpeg_bytes

runner = CliRunner()
XHTML = "{http://www.w3.org/1999/xhtml}"
#: A file name (and S3 key) made to break markup and scripts if it were not escaped.
HOSTILE = 'x<script>alert(1)</script> "&.jpg'

#: name -> (stored pixel size, EXIF orientation, faces). Boxes are fractions of the upright image.
PHOTOS: dict[str, tuple[tuple[int, int], int | None, list[dict[str, Any]]]] = {
    "a-portrait.jpg": ((400, 300), None, [face_detail(smile=True, box=(0.3, 0.2, 0.25, 0.3))]),
    # stored 300x200, shown upright 200x300: two smiling faces and one that does not smile
    "b-sideways.jpg": ((300, 200), 6, [
        face_detail(smile=True, box=(0.1, 0.1, 0.3, 0.2)),
        face_detail(smile=False, box=(0.3, 0.6, 0.35, 0.25)),
        face_detail(smile=True, box=(0.55, 0.15, 0.3, 0.2)),
    ]),
    "c-not-smiling.jpg": ((320, 240), None, [face_detail(smile=False)]),
    HOSTILE: ((240, 240), None, [face_detail(smile=True, box=(0.123456789, 0.2, 0.3, 0.3))]),
    "e-missing.jpg": ((200, 200), None, [face_detail(smile=True, box=(0.4, 0.4, 0.2, 0.2))]),
}
SMILING = ["a-portrait.jpg", "b-sideways.jpg", "e-missing.jpg", HOSTILE]


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(autouse=True)
def no_browser(monkeypatch):
    """No test ever starts a browser: ``--open`` records what it would have opened."""
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: opened.append(url) or True)
    monkeypatch.delenv("INDEXER_NO_BROWSER", raising=False)
    return opened


def upright(size: tuple[int, int], orientation: int | None) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def write_rows(store: Store, rows: list[tuple[str, tuple[int, int], list[dict[str, Any]]]], descriptors: dict[str, list[bytes]] | None = None) -> None:
    """Each (uri, upright size, faces) as an indexed image, through Store.write."""
    store.record_engine("local", ALL_ATTRIBUTES)
    outcomes = []
    for uri, (width, height), faces in rows:
        vectors = (descriptors or {}).get(uri)
        analysis = Analysis(faces, width, height, descriptors=FaceDescriptors(embedding.DESCRIPTOR_MODEL, vectors) if vectors else None)
        ref = ImageRef(uri=uri, size=1000, fingerprint=f"fp-{uri}", path=None if uri.startswith("s3://") else uri)
        outcomes.append(ImageOutcome(ref=ref, engine="local", analysis=analysis))
    written = store.write(outcomes, run_id=None)
    assert all(outcome.error is None for outcome in written)


@pytest.fixture
def folder_index(tmp_path, sqlite_url, open_store_at) -> tuple[str, Path]:
    """(database URL, photo folder): :data:`PHOTOS` as real files, indexed; e-missing.jpg is
    deleted after indexing."""
    folder = tmp_path / "photos"
    rows = []
    for seed, (name, (size, orientation, faces)) in enumerate(PHOTOS.items()):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(seed, size, exif_orientation=orientation))
        rows.append((str(path), upright(size, orientation), faces))
    write_rows(open_store_at(sqlite_url), rows)
    (folder / "e-missing.jpg").unlink()
    return sqlite_url, folder


# -- reading a sheet back -------------------------------------------------------------------------


def parse(document: str) -> Any:
    """The document's tree; html5lib in strict mode raises on any parse error."""
    return html5lib.HTMLParser(strict=True, tree=html5lib.getTreeBuilder("etree")).parse(document)


def has_class(element: Any, name: str) -> bool:
    return name in (element.get("class") or "").split()


def with_class(root: Any, name: str) -> list[Any]:
    return [element for element in root.iter() if has_class(element, name)]


def text_of(element: Any) -> str:
    return "".join(element.itertext())


def figures(document: str) -> dict[str, Any]:
    """data-uri -> its figure.cs-item."""
    return {figure.get("data-uri"): figure for figure in with_class(parse(document), "cs-item")}


def boxes(figure: Any) -> list[str]:
    return [box.get("data-box") for box in with_class(figure, "cs-box")]


def stored_box(face: dict[str, Any]) -> str:
    box = face["BoundingBox"]
    return ",".join(repr(float(box[key])) for key in ("Left", "Top", "Width", "Height"))


def decoded(data_uri: str) -> Image.Image:
    assert data_uri.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[1])))


def sheet_of(result) -> str:
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path.is_file()
    return path.read_text(encoding="utf-8")


# -- the sheet of a search ------------------------------------------------------------------------


def test_every_matching_image_with_its_matching_faces_boxed_where_stored(folder_index, tmp_path):
    db, folder = folder_index
    out = tmp_path / "sheet.html"
    result = run("search", "smiling", "--format", "html", "--output", str(out), "--db", db)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out}\n", "the sheet's path is the one line on stdout"
    shown = figures(out.read_text(encoding="utf-8"))
    assert list(shown) == sorted(str(folder / name) for name in SMILING), "every match, in URI order, nothing else"
    for name in SMILING:
        _size, _orientation, faces = PHOTOS[name]
        smiling = [face for face in faces if face["Smile"]["Value"]]
        figure = shown[str(folder / name)]
        readable = name != "e-missing.jpg"  # no box over the placeholder of a missing file
        assert boxes(figure) == [stored_box(face) for face in smiling if readable], name
        assert figure.get("data-faces") == str(len(smiling))
        chips = [text_of(face) for face in with_class(figure, "cs-face")]
        assert len(chips) == len(smiling) and all("smiling" in chip for chip in chips)
    assert boxes(shown[str(folder / HOSTILE)]) == ["0.123456789,0.2,0.3,0.3"], "the stored fractions, exactly"


def test_boxes_sit_on_the_upright_picture(folder_index, tmp_path):
    """b-sideways.jpg is stored 300x200 with orientation 6: the thumbnail is upright (portrait),
    and the frame the boxes are placed in has the upright image's aspect ratio."""
    db, folder = folder_index
    document = sheet_of(run("search", "smiling", "--format", "html", "--output", str(tmp_path / "s.html"), "--db", db))
    figure = figures(document)[str(folder / "b-sideways.jpg")]
    (frame,) = with_class(figure, "cs-frame")
    assert "aspect-ratio:200/300" in frame.get("style")
    (img,) = with_class(figure, "cs-img")
    thumbnail = decoded(img.get("src"))
    assert thumbnail.size == (200, 300), "small images are not enlarged; turned upright"
    first = with_class(figure, "cs-box")[0]
    assert first.get("style") == "left:10.0000%;top:10.0000%;width:30.0000%;height:20.0000%"
    assert [text_of(label) for label in with_class(figure, "cs-label")] == ["1", "3"], "numbered as stored: face 2 does not smile"
    assert img.get("alt") == f"{folder / 'b-sideways.jpg'}, 2 matching of 3 faces"


def test_thumbnails_are_downscaled_for_the_grid_and_the_enlarged_view(tmp_path, sqlite_url, open_store_at):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (2400, 1600), (120, 90, 60)).save(path, quality=90)
    write_rows(open_store_at(sqlite_url), [(str(path), (2400, 1600), [face_detail(smile=True)])])
    document = sheet_of(run("search", "smiling", "--format", "html", "--output", str(tmp_path / "s.html"), "--db", sqlite_url))
    (figure,) = figures(document).values()
    (img,) = with_class(figure, "cs-img")
    assert decoded(img.get("src")).size == (THUMB_SIDE, round(THUMB_SIDE * 2 / 3))
    (template,) = with_class(parse(document), "cs-detail")
    (large,) = [element for element in template.iter() if element.tag == XHTML + "img"]
    width, height = decoded(large.get("src")).size
    assert LARGE_SIDE <= width <= LARGE_MAX and height == round(width * 2 / 3)
    assert width == 1200, "decoded at half scale, used as it came"


def test_the_enlarged_view_has_every_face_and_its_attributes(folder_index, tmp_path):
    db, folder = folder_index
    document = sheet_of(run("search", "smiling", "--format", "html", "--output", str(tmp_path / "s.html"), "--db", db))
    index = figures(document)[str(folder / "b-sideways.jpg")].get("data-index")
    (template,) = [t for t in with_class(parse(document), "cs-detail") if t.get("id") == f"cs-detail-{index}"]
    _size, _orientation, faces = PHOTOS["b-sideways.jpg"]
    assert boxes(template) == [stored_box(face) for face in faces], "all three faces, in stored order"
    assert [has_class(box, "cs-match") for box in with_class(template, "cs-box")] == [True, False, True]
    assert "2 other" in text_of(template)
    tables = with_class(template, "cs-attrs")
    assert len(tables) == 3
    rows = {text_of(row[0]): text_of(row[1]) for row in tables[1].iter(XHTML + "tr")}
    assert rows["Smile"] == "false (95%)" and rows["AgeRange"] == "25-35" and rows["Gender"] == "Female (95%)"
    assert rows["BoundingBox"] == "Left 0.3, Top 0.6, Width 0.35, Height 0.25"
    assert rows["Emotions"].startswith("CALM 90, ")
    assert len(with_class(parse(document), "cs-detail")) == len(SMILING), "one enlarged view per image"
    assert document.count("<dialog") == 1


def test_the_header_says_what_was_asked_and_found(folder_index, tmp_path):
    db, _folder = folder_index
    result = run("search", "smiling", "--format", "html", "--explain", "--output", str(tmp_path / "s.html"), "--db", db)
    tree = parse(sheet_of(result))
    assert result.stderr.startswith("query: 'smiling'\n"), "--explain still says it on stderr"
    (query,) = with_class(tree, "cs-query")
    assert "smiling (Smile=true)" in text_of(query) and "Confidence >= 50" in text_of(query)
    (counts,) = with_class(tree, "cs-counts")
    assert text_of(counts) == "4 images, 5 matching faces; 1 image could not be read"
    (made,) = with_class(tree, "cs-made")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", made.get("datetime"))


def test_engine_coverage_warnings_are_on_the_sheet(tmp_path, sqlite_url, open_store_at):
    path = tmp_path / "p.jpg"
    path.write_bytes(jpeg_bytes(1, (200, 100)))
    store = open_store_at(sqlite_url)
    store.record_engine("local@1", frozenset({"BoundingBox", "Smile"}))  # knows no beard
    ref = ImageRef(uri=str(path), size=1, fingerprint="f", path=str(path))
    detail = {key: value for key, value in face_detail(smile=True).items() if key in ("BoundingBox", "Smile")}
    store.write([ImageOutcome(ref=ref, engine="local@1", analysis=Analysis([detail], 200, 100))], run_id=None)
    result = run("search", "smiling with beard", "--format", "html", "--output", str(tmp_path / "s.html"), "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    (warnings,) = with_class(parse((tmp_path / "s.html").read_text()), "cs-warnings")
    assert "Beard" in text_of(warnings) and "indexer:" in result.stderr


# -- escaping and self-containment ----------------------------------------------------------------


def test_a_uri_with_markup_in_it_appears_only_escaped(folder_index, tmp_path):
    db, folder = folder_index
    document = sheet_of(run("search", "smiling", "--format", "html", "--output", str(tmp_path / "s.html"), "--db", db))
    hostile = str(folder / HOSTILE)
    assert "alert(1)</script>" not in document and hostile not in document and '"&.jpg' not in document
    assert document.count("<script") == 1, "the sheet's own script only"
    assert html_escaped(hostile) in document
    figure = figures(document)[hostile]
    assert figure.get("data-uri") == hostile, "the attribute reads back as the URI itself"
    assert text_of(with_class(figure, "cs-uri")[0]) == hostile


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_the_document_refers_to_nothing_outside_itself(folder_index, tmp_path):
    db, _folder = folder_index
    document = sheet_of(run("search", "smiling", "--format", "html", "--output", str(tmp_path / "s.html"), "--db", db))
    tree = parse(document)
    for element in tree.iter():
        for name in ("src", "href", "srcset", "poster", "action", "data"):
            value = element.get(name)
            assert value is None or value.startswith("data:"), (element.tag, name, value[:60])
    assert not [e for e in tree.iter() if e.tag in (XHTML + "link", XHTML + "iframe", XHTML + "object")]
    assert not re.search(r"https?://", document), "no address: not in markup, style or script"
    assert "url(" not in document and "@import" not in document


# -- images that cannot be read -------------------------------------------------------------------


def test_a_missing_file_shows_a_placeholder_with_the_reason_and_the_sheet_is_written(folder_index, tmp_path):
    db, folder = folder_index
    result = run("search", "smiling", "--format", "html", "--output", str(tmp_path / "s.html"), "--db", db)
    document = sheet_of(result)
    figure = figures(document)[str(folder / "e-missing.jpg")]
    assert not with_class(figure, "cs-img")
    (reason,) = with_class(figure, "cs-reason")
    assert text_of(reason) == "could not be read: file not found"
    assert boxes(figure) == [], "no box hides the reason"
    assert len(with_class(figure, "cs-face")) == 1, "its face is still listed under it"
    assert "1 of 4 images could not be read" in result.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == [], "no temporary file left"


def test_bytes_that_are_no_image_and_a_fifo_give_placeholders(tmp_path, sqlite_url, open_store_at):
    import os

    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(jpeg_bytes(3, (200, 200))[:300])
    rows = [(str(path), (200, 200), [face_detail(smile=True)]) for path in (text, fifo, broken)]
    write_rows(open_store_at(sqlite_url), rows)
    result = api.contact_sheet(load_config(flags={"db_url": sqlite_url}), "smiling", output=tmp_path / "s.html")
    assert (result.images, result.faces, result.unreadable) == (3, 3, 3)
    reasons = {uri: text_of(with_class(figure, "cs-reason")[0]) for uri, figure in figures(result.html).items()}
    assert reasons[str(text)] == "could not be read: not an image format Pillow can read"
    assert reasons[str(fifo)] == "could not be read: not a regular file", "a FIFO is never read (it would block)"
    assert reasons[str(broken)].startswith("could not be read: cannot decode the image")


# -- S3 -------------------------------------------------------------------------------------------


def test_s3_images_are_read_through_the_client(s3, sqlite_url, open_store_at, tmp_path):
    s3.create_bucket(Bucket="album")
    key = "2024/" + HOSTILE
    s3.put_object(Bucket="album", Key="2024/sideways.jpg", Body=jpeg_bytes(7, (300, 200), exif_orientation=6))
    s3.put_object(Bucket="album", Key=key, Body=jpeg_bytes(8, (160, 120)))
    rows = [
        ("s3://album/2024/sideways.jpg", (200, 300), [face_detail(smile=True, box=(0.2, 0.1, 0.4, 0.3))]),
        (f"s3://album/{key}", (160, 120), [face_detail(smile=True)]),
        ("s3://album/2024/gone.jpg", (100, 100), [face_detail(smile=True)]),
    ]
    write_rows(open_store_at(sqlite_url), rows)
    result = api.contact_sheet(load_config(flags={"db_url": sqlite_url}), "smiling", output=tmp_path / "s3.html")
    assert (result.images, result.faces, result.unreadable) == (3, 3, 1)
    shown = figures(result.html)
    assert set(shown) == {uri for uri, _size, _faces in rows}
    (img,) = with_class(shown["s3://album/2024/sideways.jpg"], "cs-img")
    assert decoded(img.get("src")).size == (200, 300)
    assert with_class(shown[f"s3://album/{key}"], "cs-img")
    (reason,) = with_class(shown["s3://album/2024/gone.jpg"], "cs-reason")
    assert text_of(reason).startswith("could not be read: S3 NoSuchKey")
    assert "alert(1)</script>" not in result.html


# -- limits ---------------------------------------------------------------------------------------


def test_limit_bounds_the_thumbnails(folder_index, tmp_path):
    db, folder = folder_index
    document = sheet_of(run("search", "smiling", "--format", "html", "--limit", "2", "--output", str(tmp_path / "s.html"), "--db", db))
    assert list(figures(document)) == sorted(str(folder / name) for name in SMILING)[:2]
    assert document.count("data:image/jpeg;base64,") == 4, "two images, each a thumbnail and a large picture"
    (counts,) = with_class(parse(document), "cs-counts")
    assert "the first 2 of 4 matching images" in text_of(counts)


def test_html_shows_200_images_unless_limit_says_otherwise(tmp_path, sqlite_url, open_store_at):
    rows = [(str(tmp_path / f"gone-{i:03}.jpg"), (100, 100), [face_detail(smile=True)]) for i in range(203)]
    write_rows(open_store_at(sqlite_url), rows)
    document = sheet_of(run("search", "smiling", "--format", "html", "--output", str(tmp_path / "a.html"), "--db", sqlite_url))
    assert len(figures(document)) == 200
    assert "the first 200 of 203 matching images" in document
    document = sheet_of(run("search", "smiling", "--format", "html", "--limit", "201", "--output", str(tmp_path / "b.html"), "--db", sqlite_url))
    assert len(figures(document)) == 201, "an explicit --limit wins"
    result = api.contact_sheet(load_config(flags={"db_url": sqlite_url}), "smiling", output=tmp_path / "c.html")
    assert result.images == 200, "the API's default too"
    assert len(run("search", "smiling", "--format", "uris", "--db", sqlite_url).stdout.splitlines()) == 203, "other formats: no limit"


# -- usage ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "bogus"], "bogus"),
        (["--count", "--format", "html"], "--count"),
        (["--output", "x.html"], "--output goes with --format html"),
        (["--open"], "--open goes with --format html"),
        (["--format", "json", "--output", "x.html"], "--output goes with --format html"),
    ],
)
def test_usage_errors(folder_index, args, message):
    db, _folder = folder_index
    result = runner.invoke(app, ["search", "smiling", *args, "--db", db])
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_output_into_a_folder_and_to_a_folder_that_does_not_exist(folder_index, tmp_path, monkeypatch):
    db, _folder = folder_index
    target = tmp_path / "sheets"
    target.mkdir()
    for _ in range(2):
        written = Path(run("search", "smiling", "--format", "html", "--output", str(target), "--db", db).stdout.strip())
    assert written.parent == target and re.fullmatch(r"indexer-sheet-\d{8}-\d{6}(-\d+)?\.html", written.name)
    assert len(list(target.glob("indexer-sheet-*.html"))) == 2, "a second sheet in the same second gets its own name"
    result = runner.invoke(app, ["search", "smiling", "--format", "html", "--output", str(tmp_path / "nope" / "s.html"), "--db", db])
    assert result.exit_code == 2 and "no such folder" in result.stderr
    monkeypatch.chdir(tmp_path)
    written = Path(run("search", "smiling", "--format", "html", "--db", db).stdout.strip())
    assert written.parent == tmp_path and written.name.startswith("indexer-sheet-"), "default: the current folder"


def test_open_starts_the_browser_on_the_file_unless_told_not_to(folder_index, tmp_path, no_browser, monkeypatch):
    db, _folder = folder_index
    out = tmp_path / "s.html"
    assert run("search", "smiling", "--format", "html", "--output", str(out), "--open", "--db", db).exit_code == 0
    assert no_browser == [out.resolve().as_uri()]
    monkeypatch.setenv("INDEXER_NO_BROWSER", "1")
    result = run("search", "smiling", "--format", "html", "--output", str(out), "--open", "--db", db)
    assert result.exit_code == 0 and no_browser == [out.resolve().as_uri()], "nothing launched"
    assert "INDEXER_NO_BROWSER" in result.stderr


def test_other_formats_are_unchanged_by_html(folder_index):
    """JSON Lines from the same search, with and without the sheet's flags existing, are the
    documented shape: uri and faces only (what scripts read)."""
    import json

    db, folder = folder_index
    rows = [json.loads(line) for line in run("search", "smiling", "--format", "json", "--db", db).stdout.splitlines()]
    assert [row["uri"] for row in rows] == sorted(str(folder / name) for name in SMILING)
    assert all(set(row) == {"uri", "faces"} for row in rows)


# -- show -----------------------------------------------------------------------------------------


def test_show_as_html_is_the_image_with_every_face(folder_index, tmp_path):
    db, folder = folder_index
    uri = str(folder / "b-sideways.jpg")
    document = sheet_of(run("show", uri, "--format", "html", "--output", str(tmp_path / "one.html"), "--db", db))
    (figure,) = with_class(parse(document), "cs-item")
    assert has_class(figure, "cs-single") and figure.get("data-uri") == uri
    _size, _orientation, faces = PHOTOS["b-sideways.jpg"]
    assert boxes(figure) == [stored_box(face) for face in faces]
    assert len(with_class(figure, "cs-attrs")) == 3
    (img,) = [element for element in figure.iter() if element.tag == XHTML + "img"]
    assert decoded(img.get("src")).size == (200, 300)
    assert "<dialog" not in document and "<script" not in document, "nothing to open: it is already large"


def test_show_keeps_json_and_table_and_refuses_two_formats(folder_index):
    import json

    db, folder = folder_index
    uri = str(folder / "a-portrait.jpg")
    as_json = run("show", uri, "--json", "--db", db).stdout
    assert run("show", uri, "--format", "json", "--db", db).stdout == as_json
    assert json.loads(as_json)["uri"] == uri
    assert run("show", uri, "--format", "table", "--db", db).stdout == run("show", uri, "--db", db).stdout
    assert runner.invoke(app, ["show", uri, "--json", "--format", "html", "--db", db]).exit_code == 2
    assert runner.invoke(app, ["show", uri, "--format", "bogus", "--db", db]).exit_code == 2
    missing = runner.invoke(app, ["show", str(folder / "nope.jpg"), "--format", "html", "--db", db])
    assert missing.exit_code == 1 and "not in the index" in missing.stderr


# -- --like ---------------------------------------------------------------------------------------


def test_like_shows_each_faces_similarity(tmp_path, sqlite_url, open_store_at):
    """Descriptors at known distances from one face (as tests/test_search_like.py writes them):
    the sheet's chips give each matching face's Similarity."""
    rng = np.random.default_rng(5)
    me = rng.normal(0.0, 0.1, size=embedding.DESCRIPTOR_SIZE)

    def at(distance: float) -> bytes:
        direction = rng.normal(size=embedding.DESCRIPTOR_SIZE)
        return embedding.to_bytes(np.asarray([me + distance * direction / np.linalg.norm(direction)]))[0]

    paths = [tmp_path / name for name in ("me.jpg", "group.jpg")]
    for seed, path in enumerate(paths):
        path.write_bytes(jpeg_bytes(seed, (200, 200)))
    rows = [
        (str(paths[0]), (200, 200), [face_detail(smile=True)]),
        (str(paths[1]), (200, 200), [face_detail(smile=True, box=(0.1, 0.1, 0.2, 0.2)), face_detail(smile=True, box=(0.6, 0.1, 0.2, 0.2))]),
    ]
    vectors = {str(paths[0]): [at(0.0)], str(paths[1]): [at(2.0), at(0.5)]}
    store = open_store_at(sqlite_url)
    write_rows(store, rows, vectors)
    me_id = store.image(str(paths[0]))["faces"][0]["face_id"]
    document = sheet_of(run("search", "--like", f"face:{me_id}", "--format", "html", "--output", str(tmp_path / "s.html"), "--db", sqlite_url))
    shown = figures(document)
    assert list(shown) == [str(paths[0]), str(paths[1])], "best match first"
    similarity = {uri: [text_of(chip) for chip in with_class(figure, "cs-similarity")] for uri, figure in shown.items()}
    assert similarity == {str(paths[0]): ["Similarity 100.00"], str(paths[1]): [f"Similarity {round(embedding.similarity(0.5), 2):.2f}"]}
    assert boxes(shown[str(paths[1])]) == ["0.6,0.1,0.2,0.2"], "only the person's face is boxed"
    (query,) = with_class(parse(document), "cs-query")
    assert f"like: face {me_id}, Similarity >= 80" in text_of(query)


# -- rendering alone ------------------------------------------------------------------------------


def test_render_sheet_escapes_every_string_it_is_given():
    evil = '<img src=x onerror=alert(1)>"&</script>'
    detail = face_detail(smile=True)
    detail["face_id"] = 7
    detail[evil] = {"Value": evil, "Confidence": 99.0}  # an engine's unknown key
    image = image_entry(evil, [detail], None, min_confidence=50, problem=evil)
    sheet = Sheet(title=evil, query=evil, images=[image], image_count=1, face_count=1, warnings=[evil])
    document = render_sheet(sheet)
    parse(document)
    assert "<img src=x" not in document and "</script>" not in document.replace("</script>\n</body>", "")
    assert document.count(html_escaped(evil)) >= 6


def test_a_box_outside_the_image_keeps_its_stored_numbers():
    assert Box.of({"BoundingBox": {"Left": -0.05, "Top": 0.9, "Width": 0.2, "Height": 0.3}}).data == "-0.05,0.9,0.2,0.3"
    assert Box.of({"BoundingBox": {"Left": "x"}}) is None and Box.of({}) is None


def test_a_crowd_lists_its_first_faces_and_folds_the_rest(tmp_path, sqlite_url, open_store_at):
    path = tmp_path / "crowd.png"
    Image.new("RGB", (2600, 1000), (30, 60, 90)).save(path)  # not a JPEG: scaled, not drafted
    faces = [face_detail(smile=True, box=(i / 10, 0.1, 0.05, 0.1)) for i in range(7)]
    write_rows(open_store_at(sqlite_url), [(str(path), (2600, 1000), faces)])
    result = api.contact_sheet(load_config(flags={"db_url": sqlite_url}), "smiling", output=tmp_path / "s.html")
    (figure,) = figures(result.html).values()
    assert len(boxes(figure)) == 7, "every matching face is boxed"
    (folded,) = with_class(figure, "cs-more")
    assert text_of(folded).startswith("3 more faces") and len(with_class(folded, "cs-face")) == 3
    assert len(with_class(figure, "cs-face")) == 7
    (template,) = with_class(parse(result.html), "cs-detail")
    (large,) = [element for element in template.iter() if element.tag == XHTML + "img"]
    assert decoded(large.get("src")).size == (LARGE_SIDE, round(LARGE_SIDE * 1000 / 2600))


def test_thumbnails_show_a_progress_bar_when_asked(tmp_path, capsys):
    from indexer.thumbnails import make_thumbnails

    paths = [tmp_path / f"{i}.jpg" for i in range(3)]
    for i, path in enumerate(paths):
        path.write_bytes(jpeg_bytes(i))
    made = make_thumbnails([str(path) for path in paths], progress=True)
    assert [thumb.problem for thumb in made] == [None, None, None]
    assert "thumbnails" in capsys.readouterr().err
    make_thumbnails([str(path) for path in paths])
    assert capsys.readouterr().err == ""

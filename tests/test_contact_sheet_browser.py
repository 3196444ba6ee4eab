"""The contact sheet as a browser shows it: `indexer search smiling --format html` opened from
its file in headless Chromium, at a desktop and a phone viewport, and checked from the DOM and
from screenshots.

The index is written through ``Store.write`` over photos generated here
(tests/support/browser.py: known upright sizes, faces drawn where their BoundingBox says, one
photo stored sideways with EXIF orientation 6, one unreadable since it was indexed, S3 keys
with markup in their names). What the sheet must show is written down from that table, not
computed by the code under test: which images, how many boxes each, and where each box lands -
within :data:`TOLERANCE_PX` of BoundingBox x the picture's rendered size.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from PIL import Image
from typer.testing import CliRunner

from indexer.cli import app
from indexer.store.repository import Store
from tests.support.browser import (
    HOSTILE_PHOTOS,
    MARKER,
    MARKER_FRACTION,
    PHOTOS,
    Browser,
    ChromiumUnavailable,
    Page,
    Photo,
    ensure_chromium,
)
from tests.support.browser import write_collection as write_photos

pytestmark = pytest.mark.slow

#: name -> (width, height, phone): a laptop, and a phone that honours the page's meta viewport.
VIEWPORTS = {"desktop": (1280, 900, False), "phone": (390, 844, True)}
#: How far a box may be from BoundingBox x the rendered picture (rounding, the 2 px border).
TOLERANCE_PX = 3.0
BUCKET = "photos"
#: A BoundingBox: Left, Top, Width, Height as fractions of the upright image.
Fractions = tuple[float, float, float, float]

#: Everything the tests read from the page in one evaluation: each grid item, its picture's
#: rectangle, its boxes' rectangles, its caption.
GRID_JS = """
Array.from(document.querySelectorAll("main.cs-grid > figure.cs-item")).map(function (item) {
  function rect(el) { var r = el.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }
  var img = item.querySelector("img.cs-img"), reason = item.querySelector(".cs-reason");
  return {
    uri: item.dataset.uri,
    img: img && {rect: rect(img), alt: img.alt, loaded: img.complete && img.naturalWidth > 0, src: img.src.slice(0, 16)},
    reason: reason && reason.textContent,
    boxes: Array.from(item.querySelectorAll(".cs-box")).map(function (box) {
      return {rect: rect(box), data: box.dataset.box, label: box.textContent};
    }),
    shownUri: item.querySelector(".cs-uri").textContent,
    faces: Array.from(item.querySelectorAll("li.cs-face")).map(function (face) {
      return Array.from(face.querySelectorAll(".cs-chip")).map(function (chip) { return chip.textContent; });
    }),
  };
})
"""


@dataclass
class Rendered:
    """A sheet written by the CLI, and the photos it was made from, by URI."""

    path: Path
    photos: dict[str, Photo]
    stdout: str

    def uri(self, name: str) -> str:
        return next(uri for uri, photo in self.photos.items() if photo.name == name)

    @property
    def matching(self) -> dict[str, Photo]:
        """What ``smiling`` finds: every photo with at least one smiling face."""
        return {uri: photo for uri, photo in self.photos.items() if photo.smiling_faces}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module; installed first when missing (see ensure_chromium)."""
    try:
        executable = ensure_chromium()
    except ChromiumUnavailable as exc:
        pytest.skip(f"no browser for the contact sheet test: {exc}")
    chromium = Browser(executable)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def sheet(s3, tmp_path) -> Rendered:
    """The generated collection indexed (local photos and S3 objects), and its `smiling` sheet."""
    s3.create_bucket(Bucket=BUCKET)
    db_url = f"sqlite:///{tmp_path / 'index.db'}"
    with Store.open(db_url) as store:
        photos = write_photos(tmp_path / "pictures", PHOTOS, store)
        photos |= write_photos(tmp_path / "pictures", HOSTILE_PHOTOS, store, s3=s3, bucket=BUCKET)
    output = tmp_path / "sheet.html"
    result = CliRunner().invoke(
        app, ["search", "smiling", "--format", "html", "--output", str(output), "--db", db_url], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return Rendered(output, photos, result.stdout)


@pytest.fixture(params=list(VIEWPORTS))
def page(request, browser: Browser, sheet: Rendered) -> Iterator[Page]:
    """A tab at the viewport, the sheet loaded from its file."""
    width, height, mobile = VIEWPORTS[request.param]
    with browser.page() as tab:
        tab.set_viewport(width, height, mobile=mobile)
        tab.goto(sheet.path.as_uri())
        yield tab


def viewport_of(page: Page) -> tuple[int, int]:
    size = page.evaluate("[window.innerWidth, window.innerHeight]")
    return size[0], size[1]


def expected_rect(picture: list[float], box: Fractions) -> list[float]:
    """BoundingBox (fractions of the upright image) x the picture's rendered rectangle."""
    left, top, width, height = picture
    return [left + box[0] * width, top + box[1] * height, box[2] * width, box[3] * height]


def assert_close(actual: list[float], expected: list[float], what: str) -> None:
    off = max(abs(a - e) for a, e in zip(actual, expected))
    assert off <= TOLERANCE_PX, f"{what}: at {[round(v, 1) for v in actual]}, expected {[round(v, 1) for v in expected]}"


def assert_boxes_on_faces(boxes: list[dict[str, Any]], picture: list[float], expected: list[Fractions], what: str) -> None:
    """One box per expected face, each where BoundingBox x the picture puts it (matched by position
    on the page, left to right), each carrying its BoundingBox exactly."""
    assert len(boxes) == len(expected), f"{what}: {len(boxes)} boxes, expected {len(expected)}"
    for found, box in zip(sorted(boxes, key=lambda b: b["rect"][0]), sorted(expected)):
        assert_close(found["rect"], expected_rect(picture, box), f"{what} box {box}")
        assert [float(v) for v in found["data"].split(",")] == list(box)


def check_screenshot(png: bytes, size: tuple[int, int]) -> Image.Image:
    """A PNG of the viewport's size that shows something (not one flat colour)."""
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size == size
    colours = image.convert("RGB").getcolors(maxcolors=100_000)
    assert colours is None or len(colours) > 200, "the screenshot is nearly blank"
    return image.convert("RGB")


def near(colour: tuple[int, ...], wanted: tuple[int, int, int], slack: int = 45) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(colour, wanted))


def test_every_match_is_shown_with_its_faces_boxed(page: Page, sheet: Rendered, tmp_path) -> None:
    """Every image ``smiling`` finds is on the sheet, upright, with one box per smiling face on
    that face; the photo without a smile is not; the unreadable one shows why; nothing overflows."""
    width, height = viewport_of(page)
    check_screenshot(page.screenshot(), (width, height)).save(tmp_path / "first-screen.png")
    items = page.evaluate(GRID_JS)

    assert {item["uri"] for item in items} == set(sheet.matching)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "the page scrolls sideways"
    for item in items:
        photo = sheet.photos[item["uri"]]
        assert item["shownUri"] == item["uri"]
        expected = [box for box, smiling in photo.faces if smiling]
        if photo.unreadable:
            assert item["img"] is None
            assert "could not be read" in item["reason"]
            assert item["boxes"] == [], "boxes over the placeholder hide its reason"
            continue
        assert item["img"]["loaded"] and item["img"]["src"].startswith("data:image/")
        picture = item["img"]["rect"]
        shown_w, shown_h = photo.size  # upright: EXIF orientation applied
        assert abs(picture[3] - picture[2] * shown_h / shown_w) <= 2, f"{photo.name} is not shown at its upright shape"
        assert_boxes_on_faces(item["boxes"], picture, expected, photo.name)
    assert [b["label"] for b in next(i for i in items if i["uri"] == sheet.uri("family-of-three.jpg"))["boxes"]] == ["1", "3"]


def test_pictures_are_upright_in_the_screenshot(page: Page, sheet: Rendered) -> None:
    """Each thumbnail's upright top-left corner (a magenta square drawn there) is at the top left
    of its picture on screen, and not at the other corners: the sideways-stored photo is turned."""
    for uri, photo in sheet.matching.items():
        if photo.unreadable:
            continue
        selector = f"figure.cs-item[data-uri={json.dumps(uri)}] img.cs-img"
        left, top, w, h = page.evaluate(
            f"""(() => {{ var img = document.querySelector({json.dumps(selector)});
                img.scrollIntoView({{block: "center"}}); var r = img.getBoundingClientRect();
                return [r.left, r.top, r.width, r.height]; }})()"""
        )
        shot = check_screenshot(page.screenshot(), viewport_of(page))
        inset = min(w, h) * MARKER_FRACTION / 3

        def at(fx: float, fy: float) -> tuple[int, ...]:
            return shot.getpixel((int(left + fx * (w - 2 * inset) + inset), int(top + fy * (h - 2 * inset) + inset)))  # type: ignore[return-value]

        assert near(at(0, 0), MARKER), f"{photo.name}: top-left is {at(0, 0)}, not the marker"
        for corner in ((1, 0), (0, 1), (1, 1)):
            assert not near(at(*corner), MARKER), f"{photo.name}: the marker is at corner {corner}"


def test_keys_with_markup_show_as_text(page: Page, sheet: Rendered) -> None:
    """``<script>`` and ``<img onerror>`` in S3 keys are shown as the text they are: no script of
    theirs ran, no element of theirs exists, and the page threw nothing."""
    items = {item["uri"]: item for item in page.evaluate(GRID_JS)}
    for photo in HOSTILE_PHOTOS:
        uri = f"s3://{BUCKET}/{photo.name}"
        assert items[uri]["shownUri"] == uri
        assert items[uri]["img"]["alt"].startswith(uri)
        assert items[uri]["img"]["loaded"]
    assert "<script>alert(1)</script>" in page.evaluate("document.body.textContent")
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.evaluate("document.scripts.length") == 1  # the sheet's own
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"], [onerror]').length") == 0
    assert page.exceptions() == []
    assert page.dialogs() == []  # alert() was never called


def test_chips_and_alt_text_say_it_in_words(page: Page, sheet: Rendered) -> None:
    """Under each boxed face its attributes as words; the alt text names the URI and the faces."""
    items = {item["uri"]: item for item in page.evaluate(GRID_JS)}
    family = items[sheet.uri("family-of-three.jpg")]
    assert family["img"]["alt"] == f"{sheet.uri('family-of-three.jpg')}, 2 matching of 3 faces"
    assert len(family["faces"]) == 2
    for chips in family["faces"]:
        assert "smiling" in chips and "happy" in [c.lower() for c in chips]
    assert "eyeglasses" not in family["faces"][0] and "eyeglasses" not in family["faces"][1]  # face 2 wears them
    assert "eyeglasses" in items[sheet.uri("beach-pair.jpg")]["faces"][1]
    assert items[sheet.uri("beach-pair.jpg")]["img"]["alt"] == f"{sheet.uri('beach-pair.jpg')}, 2 faces"
    assert items[sheet.uri("tall-window.jpg")]["img"]["alt"] == f"{sheet.uri('tall-window.jpg')}, 1 face"
    counts = page.evaluate("document.querySelector('.cs-counts').textContent")
    assert counts.startswith("7 images, 9 matching faces") and "1 image could not be read" in counts


def test_clicking_a_thumbnail_opens_every_face_with_its_attributes(page: Page, sheet: Rendered) -> None:
    """A click on the three-face photo opens the large view: all three faces boxed on it (the one
    that does not smile marked as other), each with its full attributes; Escape closes it."""
    uri = sheet.uri("family-of-three.jpg")
    page.click(f"figure.cs-item[data-uri={json.dumps(uri)}] button.cs-open")
    view = page.evaluate(
        """(() => {
          function rect(el) { var r = el.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }
          var dialog = document.getElementById("cs-view"), img = dialog.querySelector(".cs-large img.cs-img");
          return {
            open: dialog.open, uri: dialog.querySelector(".cs-enlarged-uri").textContent,
            img: rect(img), loaded: img.complete && img.naturalWidth > 0,
            boxes: Array.from(dialog.querySelectorAll(".cs-large .cs-box")).map(function (b) {
              return {rect: rect(b), data: b.dataset.box, label: b.textContent, other: b.classList.contains("cs-other")};
            }),
            faces: Array.from(dialog.querySelectorAll("li.cs-face-detail")).map(function (f) {
              var rows = {};
              f.querySelectorAll("table.cs-attrs tr").forEach(function (tr) { rows[tr.querySelector("th").textContent] = tr.querySelector("td").textContent; });
              return {heading: f.querySelector("h3").textContent, rows: rows};
            }),
          };
        })()"""
    )
    assert view["open"] and view["uri"] == uri and view["loaded"]
    photo = sheet.photos[uri]
    assert_boxes_on_faces(view["boxes"], view["img"], [box for box, _ in photo.faces], "large view")
    assert [b["other"] for b in sorted(view["boxes"], key=lambda b: b["rect"][0])] == [False, True, False]
    assert [f["heading"] for f in view["faces"]] == [
        "Face 1 (matches the query)", "Face 2 (other face, does not match)", "Face 3 (matches the query)"
    ]
    smiles = [f["rows"]["Smile"] for f in view["faces"]]
    assert smiles == ["true (95%)", "false (95%)", "true (95%)"]
    assert [f["rows"]["AgeRange"] for f in view["faces"]] == ["25-33", "32-40", "39-47"]
    assert view["faces"][1]["rows"]["Eyeglasses"] == "true (95%)"
    assert view["faces"][0]["rows"]["Emotions"].startswith("HAPPY 90")
    width, height = viewport_of(page)
    check_screenshot(page.screenshot(), (width, height))

    page.press_key("Escape", "Escape", 27)
    assert page.evaluate("document.getElementById('cs-view').open") is False


def test_nothing_is_fetched_from_outside_the_file(page: Page, sheet: Rendered) -> None:
    """The page asks for nothing but its own file (pictures are data: URIs), and names no web
    address for a browser to fetch: it works offline and mailed."""
    page.click(f"figure.cs-item[data-uri={json.dumps(sheet.uri('beach-pair.jpg'))}] button.cs-open")  # the large view too
    requested = page.requested_urls()
    assert requested and requested[0] == sheet.path.as_uri()
    assert all(url.startswith(("file:", "data:")) for url in requested), requested
    addresses = page.evaluate(
        """Array.from(document.querySelectorAll("[src],[href],[srcset],[poster],[action]")).flatMap(function (el) {
             return ["src", "href", "srcset", "poster", "action"].map(function (a) { return el.getAttribute(a) || ""; });
           }).concat(Array.from(document.querySelectorAll("style")).map(function (s) { return s.textContent; }))"""
    )
    assert not [a for a in addresses if "http:" in a or "https:" in a or "//" in a.split("data:")[0]]
    assert page.exceptions() == []

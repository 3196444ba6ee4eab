"""The contact sheet: one self-contained HTML page of matching photos with their faces marked
(``indexer search QUERY --format html``, ``indexer show URI --format html``).

:func:`render_sheet` turns a :class:`Sheet` into one HTML document that needs nothing else to be
viewed: the style and the script are inline, the pictures are ``data:`` URIs
(:mod:`indexer.thumbnails` makes them), no address outside the file is referred to, so the page
works opened offline or mailed. Rendering is pure (a Sheet in, a string out); :func:`write_sheet`
puts it in a file atomically. Standard library only.

Every string that comes from the index or the user (URIs, query text, warnings, attribute
names and values) goes through :func:`html.escape` before it reaches the markup, attributes
included; numbers are formatted by this module. The one script is a constant: it copies an
image's ``<template>`` into the ``<dialog>`` when its thumbnail is clicked, and puts no data
into markup itself (no ``innerHTML``).

What the page holds, and the names a test or a style sheet can rely on:

* ``header.cs-head``: ``h1``, ``p.cs-counts`` (images and faces shown, the total when the limit
  cut the list, unreadable images), ``pre.cs-query`` (the query as ``--explain`` words it, and
  the ``--like`` line), ``ul.cs-warnings > li`` (engine coverage warnings), ``time.cs-made``.
* ``main.cs-grid``: one ``figure.cs-item`` per image, in the search's order, with ``data-uri``
  (the URI as indexed), ``data-faces`` (matching faces boxed) and ``data-index`` (its position).
  Inside, ``button.cs-open`` (opens the enlarged view) holds ``span.cs-frame``: the picture's
  box at the upright image's aspect ratio, holding ``img.cs-img`` (``alt``: the URI and the
  face count) or, when the image could not be read, ``span.cs-missing`` with
  ``span.cs-reason`` (the reason). Over it, one ``span.cs-box`` per matching face, with
  ``data-face-id`` (the stored face id), ``data-box="left,top,width,height"`` (the stored
  BoundingBox fractions, exactly) and ``span.cs-label`` (the face's number in its image); its
  ``left/top/width/height`` are those fractions as percentages of the frame. Then
  ``figcaption`` with ``span.cs-uri``, ``span.cs-count`` and ``ol.cs-faces >
  li.cs-face[data-face-id]``: the number, then ``span.cs-chip`` words (gender and age range,
  smile, top emotion, eyewear, facial hair; ``span.cs-chip.cs-similarity`` with ``--like``);
  past :data:`FACES_LISTED` faces the rest are in a ``details.cs-more``.
* ``template.cs-detail`` (``id="cs-detail-<index>"``, inert until opened) and one
  ``dialog#cs-view``: the enlarged view, ``div.cs-enlarged`` with the large picture in
  ``span.cs-frame.cs-large``, a ``span.cs-box`` per face of the image, ``cs-match`` (matching,
  solid) or ``cs-other`` (dashed, labelled "other"), and per face ``table.cs-attrs``, every
  attribute the engine stored.
* ``indexer show URI --format html`` (:attr:`Sheet.single`): no grid, no dialog; one
  ``figure.cs-item.cs-single[data-uri]`` with the large picture, every face boxed
  (``span.cs-box[data-face-id][data-box]``) and every attribute listed.

Boxes are drawn on the picture as shown (turned upright by its EXIF orientation), where
Rekognition's BoundingBox, relative to the upright image, puts them; a box reaching past the
edge is cut there. Each box carries its number as text and each chip is a word, so nothing is
said by colour alone.
"""

from __future__ import annotations

import html
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .attributes import AGE, ATTRIBUTES, BOOLEANS, EMOTION, GENDER, Measured
from .errors import ConfigError, FatalError
from .output import shown_similarity

#: The aspect ratio of a frame whose image size is unknown (it could not be read).
_FALLBACK_ASPECT = (4, 3)
#: Faces whose chips a grid card lists; the others are under "N more faces" (a crowd).
FACES_LISTED = 4
_SMILE, _EYEGLASSES, _SUNGLASSES, _BEARD, _MUSTACHE = (
    next(b for b in BOOLEANS if b.key == key) for key in ("Smile", "Eyeglasses", "Sunglasses", "Beard", "Mustache")
)


@dataclass(frozen=True)
class Box:
    """A BoundingBox: fractions of the upright image's width and height (may reach past 0-1)."""

    left: float
    top: float
    width: float
    height: float

    @classmethod
    def of(cls, detail: dict[str, Any]) -> "Box | None":
        """The face's BoundingBox, None when it has none (or not four numbers)."""
        box: Any = detail.get("BoundingBox")
        try:
            return cls(*(float(box[key]) for key in ("Left", "Top", "Width", "Height")))
        except (TypeError, KeyError, ValueError):
            return None

    @property
    def data(self) -> str:
        """``left,top,width,height`` exactly as stored (shortest round-trip form of each float)."""
        return ",".join(repr(value) for value in (self.left, self.top, self.width, self.height))

    @property
    def style(self) -> str:
        """The box positioned over its frame, in percentages."""
        return "left:{:.4f}%;top:{:.4f}%;width:{:.4f}%;height:{:.4f}%".format(
            self.left * 100, self.top * 100, self.width * 100, self.height * 100
        )


@dataclass
class SheetFace:
    """One face as the sheet shows it."""

    face_id: int
    #: Its number in its image (the order faces were stored in), shown on its box.
    number: int
    box: Box | None
    #: A few words (:func:`chips`).
    chips: list[str]
    #: Every stored attribute as (name, text) (:func:`attribute_rows`).
    attributes: list[tuple[str, str]]
    #: Does it match the query (boxed in the grid)? The enlarged view shows the others too.
    matching: bool = True
    #: Its Similarity to the ``--like`` face (0-100), None without ``--like``.
    similarity: float | None = None


@dataclass
class SheetImage:
    """One image: where it is, its upright size, its pictures (or why there are none), its faces."""

    uri: str
    #: Every face shown: the matching ones, and in the enlarged view the image's other faces.
    faces: list[SheetFace]
    #: Faces stored for the image in all.
    face_count: int
    #: The full image's size turned upright (px); None when unknown.
    width: int | None = None
    height: int | None = None
    #: ``data:`` URIs of the grid thumbnail and of the enlarged picture.
    thumbnail: str | None = None
    large: str | None = None
    #: Why the image could not be read (the placeholder's text); None when it was.
    problem: str | None = None

    @property
    def matching(self) -> list[SheetFace]:
        return [face for face in self.faces if face.matching]


@dataclass
class Sheet:
    """Everything a contact sheet shows."""

    #: The page's heading: the query's text, or the image's URI (``show``).
    title: str
    #: The query as understood (``--explain``'s text, plus the ``--like`` line); None for ``show``.
    query: str | None
    images: list[SheetImage]
    #: Matching images and faces shown.
    image_count: int
    face_count: int
    #: Engine coverage (and ``--like``) warnings.
    warnings: list[str] = field(default_factory=list)
    made_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    #: Images matching in all, when the limit cut the list and the number is known.
    total_images: int | None = None
    #: The ``--limit`` applied (None: none).
    limit: int | None = None
    #: ``indexer show``: one image, large, all its faces; no grid.
    single: bool = False

    @property
    def unreadable(self) -> int:
        return sum(1 for image in self.images if image.problem is not None)


# -- what a face shows --------------------------------------------------------------------------


def sheet_face(
    detail: dict[str, Any], number: int, *, min_confidence: float, matching: bool = True, similarity: float | None = None
) -> SheetFace:
    """A stored FaceDetail (plus ``face_id``) as the sheet shows it."""
    return SheetFace(
        face_id=int(detail["face_id"]),
        number=number,
        box=Box.of(detail),
        chips=chips(detail, min_confidence, similarity),
        attributes=attribute_rows(detail, similarity),
        matching=matching,
        similarity=similarity,
    )


def chips(detail: dict[str, Any], min_confidence: float, similarity: float | None = None) -> list[str]:
    """The few words under a face: gender and age range, smile, top emotion, eyewear, facial
    hair (each only when it holds with ``min_confidence``, as the table's summary says it), and
    its Similarity with ``--like``."""
    words = [" ".join(w for w in (GENDER.summary(detail, min_confidence), AGE.summary(detail, min_confidence)) if w)]
    smile = _part(detail, _SMILE.key)
    if smile.get("Value") is not None and float(smile.get("Confidence") or 0) >= min_confidence:
        words.append(_SMILE.said[0] if smile["Value"] else _SMILE.said[1])
    words.append(EMOTION.summary(detail, min_confidence) or "")
    # Rekognition's Eyeglasses also holds for sunglasses: name the kind once.
    words.append(_SUNGLASSES.summary(detail, min_confidence) or _EYEGLASSES.summary(detail, min_confidence) or "")
    words += [_BEARD.summary(detail, min_confidence) or "", _MUSTACHE.summary(detail, min_confidence) or ""]
    if similarity is not None:
        words.append(f"Similarity {shown_similarity(similarity):.2f}")
    return [word for word in words if word]


def attribute_rows(detail: dict[str, Any], similarity: float | None = None) -> list[tuple[str, str]]:
    """Every attribute of a FaceDetail as (name, text): the registry's order first, then any key
    the registry does not know (an engine's extra), each value worded by its shape."""
    rows = [("face ID", f"{detail.get('face_id')} (search --like face:{detail.get('face_id')})")]
    if similarity is not None:
        rows.append(("Similarity", f"{shown_similarity(similarity):.2f}"))
    known = [attribute.key for attribute in ATTRIBUTES]
    extra = sorted(key for key in detail if key not in known and key not in ("face_id", "Similarity"))
    for key in [*known, *extra]:
        if key in detail:
            rows.append((key, _worded(_in_registry_order(key, detail[key]))))
    return rows


def _in_registry_order(key: str, value: Any) -> Any:
    """A measured object's numbers in the registry's order (BoundingBox: Left, Top, Width,
    Height), not the stored JSON's alphabetical one."""
    fields = next((a.fields for a in ATTRIBUTES if a.key == key and isinstance(a, Measured)), ())
    if not fields or not isinstance(value, dict):
        return value
    return {**{name: value[name] for name in fields if name in value}, **value}


def _worded(value: Any) -> str:
    """An attribute's value in a few words, by its shape: ``true (98.0%)``, ``30-38``,
    ``HAPPY 90.0, CALM 3.1``, ``Roll 1.5, Yaw -3.2``, ``5 points``."""
    if isinstance(value, dict):
        if "Value" in value:
            shown = str(value["Value"]).lower() if isinstance(value["Value"], bool) else str(value["Value"])
            confidence = value.get("Confidence")
            return f"{shown} ({_number(confidence)}%)" if confidence is not None else shown
        if set(value) == {"Low", "High"}:
            return f"{value['Low']}-{value['High']}"
        return ", ".join(f"{name} {_number(number)}" for name, number in value.items())
    if isinstance(value, list):
        if value and all(isinstance(item, dict) and "Type" in item and "Confidence" in item for item in value):
            ranked = sorted(value, key=lambda item: -_float(item["Confidence"]))
            return ", ".join(f"{item['Type']} {_number(item['Confidence'])}" for item in ranked)
        return f"{len(value)} points"
    return _number(value)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _number(value: Any) -> str:
    """A number rounded for people (two decimals at most); anything else as text."""
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _part(detail: dict[str, Any], key: str) -> dict[str, Any]:
    value = detail.get(key)
    return value if isinstance(value, dict) else {}


def image_entry(
    uri: str,
    matching: list[dict[str, Any]],
    every_face: list[dict[str, Any]] | None,
    *,
    min_confidence: float,
    width: int | None = None,
    height: int | None = None,
    thumbnail: str | None = None,
    large: str | None = None,
    problem: str | None = None,
    face_count: int | None = None,
) -> SheetImage:
    """A :class:`SheetImage` from an image's matching FaceDetails (each with ``face_id``, and
    ``Similarity`` with ``--like``) and, when known, all its stored faces in their stored order
    (numbered 1, 2, ... in that order, so a face has the same number in the grid and the
    enlarged view)."""
    matched = {int(detail["face_id"]): detail for detail in matching}
    faces_in_order = every_face if every_face is not None else matching
    faces = []
    for number, detail in enumerate(faces_in_order, 1):
        face_id = int(detail["face_id"])
        chosen = matched.get(face_id, detail)
        similarity = chosen.get("Similarity")
        faces.append(
            sheet_face(
                chosen, number, min_confidence=min_confidence, matching=face_id in matched,
                similarity=None if similarity is None else float(similarity),
            )
        )
    count = face_count if face_count is not None else len(faces_in_order)
    return SheetImage(uri, faces, count, width, height, thumbnail, large, problem)


# -- the page -----------------------------------------------------------------------------------


def _e(text: Any) -> str:
    """Text for markup and attribute values: ``& < > " '`` escaped."""
    return html.escape(str(text), quote=True)


def render_sheet(sheet: Sheet) -> str:
    """The whole HTML document of ``sheet``: self-contained (inline style and script, pictures
    as ``data:`` URIs, no address outside the file), every string from the index escaped."""
    body = [_header(sheet)]
    if sheet.single:
        body += [_single(image) for image in sheet.images]
    elif not sheet.images:
        body.append('<main class="cs-grid cs-empty"><p>No image matches.</p></main>')
    else:
        body.append('<main class="cs-grid">')
        body += [_grid_item(image, index) for index, image in enumerate(sheet.images)]
        body.append("</main>")
        body += [_template(image, index) for index, image in enumerate(sheet.images)]
        body.append(_DIALOG)
    title = f"{sheet.title} - indexer" if sheet.title else "indexer contact sheet"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="indexer">\n'
        f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + ("" if sheet.single or not sheet.images else f"\n<script>{_SCRIPT}</script>")
        + "\n</body>\n</html>\n"
    )


def _header(sheet: Sheet) -> str:
    heading = sheet.title or "Contact sheet"
    parts = [f'<header class="cs-head">\n<h1>{_e(heading)}</h1>', f'<p class="cs-counts">{_e(_counts(sheet))}</p>']
    if sheet.query:
        parts.append(
            '<details class="cs-understood" open><summary>The query as understood</summary>'
            f'<pre class="cs-query">{_e(sheet.query)}</pre></details>'
        )
    if sheet.warnings:
        items = "".join(f"<li>{_e(warning)}</li>" for warning in sheet.warnings)
        parts.append(f'<ul class="cs-warnings" aria-label="Warnings">{items}</ul>')
    made = sheet.made_at.astimezone(timezone.utc)
    parts.append(
        f'<p class="cs-foot">Made <time class="cs-made" datetime="{_e(made.isoformat(timespec="seconds"))}">'
        f'{_e(made.strftime("%Y-%m-%d %H:%M:%S UTC"))}</time> by indexer.</p>\n</header>'
    )
    return "\n".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _counts(sheet: Sheet) -> str:
    if sheet.single:
        image = sheet.images[0] if sheet.images else None
        text = _plural(image.face_count if image else 0, "face")
    else:
        text = f"{_plural(sheet.image_count, 'image')}, {_plural(sheet.face_count, 'matching face')}"
        if sheet.total_images is not None and sheet.total_images > sheet.image_count:
            text += f" (the first {sheet.image_count:,} of {sheet.total_images:,} matching images: --limit)"
        elif sheet.limit is not None and sheet.image_count >= sheet.limit:
            text += f" (the first {sheet.limit:,}: --limit; there may be more)"
    if sheet.unreadable:
        text += f"; {_plural(sheet.unreadable, 'image')} could not be read"
    return text


def _aspect(image: SheetImage) -> str:
    """The frame's shape: the upright image's aspect ratio (``--w``/``--h`` let the enlarged
    view fit the screen's height)."""
    width, height = (image.width, image.height) if image.width and image.height else _FALLBACK_ASPECT
    return f"aspect-ratio:{int(width)}/{int(height)};--w:{int(width)};--h:{int(height)}"


def _alt(image: SheetImage) -> str:
    matching = len(image.matching)
    if matching == image.face_count:
        return f"{image.uri}, {_plural(image.face_count, 'face')}"
    return f"{image.uri}, {matching:,} matching of {_plural(image.face_count, 'face')}"


def _picture(image: SheetImage, source: str | None) -> str:
    if image.problem is not None or source is None:
        reason = f"could not be read: {image.problem or 'no picture'}"
        return (
            f'<span class="cs-missing" role="img" aria-label="{_e(image.uri)}: {_e(reason)}">'
            f'<span class="cs-reason">{_e(reason)}</span></span>'
        )
    return f'<img class="cs-img" src="{_e(source)}" alt="{_e(_alt(image))}">'


def _box(face: SheetFace, *, detail: bool = False) -> str:
    if face.box is None:
        return ""
    kind = (" cs-match" if face.matching else " cs-other") if detail else ""
    label = str(face.number) if face.matching else f"{face.number} other"
    return (
        f'<span class="cs-box{kind}" data-face-id="{face.face_id}" data-box="{_e(face.box.data)}" '
        f'style="{face.box.style}"><span class="cs-label">{_e(label)}</span></span>'
    )


def _boxes(image: SheetImage, faces: list[SheetFace], *, detail: bool = False) -> str:
    """The faces' boxes over the picture; none over the placeholder of a picture that could not
    be read (they would only hide the reason)."""
    if image.problem is not None:
        return ""
    return "".join(_box(face, detail=detail) for face in faces)


def _chips(face: SheetFace) -> str:
    spans = []
    for word in face.chips:
        extra = " cs-similarity" if word.startswith("Similarity ") else ""
        spans.append(f'<span class="cs-chip{extra}">{_e(word)}</span>')
    return "".join(spans) or '<span class="cs-chip cs-none">no attribute holds</span>'


def _grid_item(image: SheetImage, index: int) -> str:
    matching = image.matching
    boxes = _boxes(image, matching)
    items = [
        f'<li class="cs-face" data-face-id="{face.face_id}"><span class="cs-num">{face.number}</span>{_chips(face)}</li>'
        for face in matching
    ]
    listed = f'<ol class="cs-faces">{"".join(items[:FACES_LISTED])}</ol>' if items else ""
    if len(items) > FACES_LISTED:  # a crowd: the rest one click away, so the grid stays a grid
        rest = len(items) - FACES_LISTED
        listed += (
            f'<details class="cs-more"><summary>{_plural(rest, "more face")}</summary>'
            f'<ol class="cs-faces">{"".join(items[FACES_LISTED:])}</ol></details>'
        )
    return (
        f'<figure class="cs-item" data-uri="{_e(image.uri)}" data-faces="{len(matching)}" data-index="{index}">'
        f'<button type="button" class="cs-open" data-index="{index}" aria-label="{_e("Enlarge " + _alt(image))}">'
        f'<span class="cs-frame" style="{_aspect(image)}">{_picture(image, image.thumbnail)}{boxes}</span></button>'
        f'<figcaption><span class="cs-uri">{_e(image.uri)}</span>'
        f'<span class="cs-count">{_e(_face_count(image))}</span>{listed}</figcaption></figure>'
    )


def _face_count(image: SheetImage) -> str:
    matching = len(image.matching)
    return _plural(matching, "face") if matching == image.face_count else f"{matching:,} of {_plural(image.face_count, 'face')}"


def _detail(image: SheetImage, *, single: bool = False) -> str:
    """The enlarged view of one image: the large picture, every face boxed, every attribute
    (``single``: ``show``'s page, where no query was asked)."""
    size = f"{image.width:,} x {image.height:,} px" if image.width and image.height else "size unknown"
    boxes = _boxes(image, image.faces, detail=True)
    faces = "".join(_face_detail(face, single=single) for face in image.faces)
    return (
        f'<div class="cs-enlarged"><h2 class="cs-enlarged-uri">{_e(image.uri)}</h2>'
        f'<p class="cs-enlarged-size">{_e(size)}; {_e(_face_count(image))}</p>'
        f'<span class="cs-frame cs-large" style="{_aspect(image)}">{_picture(image, image.large)}{boxes}</span>'
        + (f'<ol class="cs-face-details">{faces}</ol>' if faces else "")
        + "</div>"
    )


def _face_detail(face: SheetFace, *, single: bool = False) -> str:
    state = "" if single else " <small>(matches the query)</small>" if face.matching else " <small>(other face, does not match)</small>"
    rows = "".join(f'<tr><th scope="row">{_e(name)}</th><td>{_e(text)}</td></tr>' for name, text in face.attributes)
    return (
        f'<li class="cs-face-detail" data-face-id="{face.face_id}"><h3>Face {face.number}{state}</h3>'
        f'<p class="cs-chips">{_chips(face)}</p><table class="cs-attrs">{rows}</table></li>'
    )


def _template(image: SheetImage, index: int) -> str:
    return f'<template class="cs-detail" id="cs-detail-{index}">{_detail(image)}</template>'


def _single(image: SheetImage) -> str:
    return f'<main><figure class="cs-item cs-single" data-uri="{_e(image.uri)}" data-faces="{len(image.faces)}">{_detail(image, single=True)}</figure></main>'


_DIALOG = (
    '<dialog id="cs-view" aria-label="Enlarged image">'
    '<form method="dialog"><button class="cs-close" type="submit">Close</button></form>'
    '<div id="cs-view-body"></div></dialog>'
)

#: Clicking a thumbnail copies its template into the dialog; the backdrop or Escape closes it.
_SCRIPT = """
(function () {
  var view = document.getElementById("cs-view"), body = document.getElementById("cs-view-body");
  document.addEventListener("click", function (event) {
    var opener = event.target.closest(".cs-open");
    if (!opener) return;
    var template = document.getElementById("cs-detail-" + opener.getAttribute("data-index"));
    body.replaceChildren(template.content.cloneNode(true));
    view.showModal();
  });
  view.addEventListener("click", function (event) { if (event.target === view) view.close(); });
})();
"""

_STYLE = """
:root{color-scheme:light dark;--bg:#f4f4f2;--fg:#1d1d1b;--muted:#5b5b58;--card:#fff;--line:#d8d8d4;
--box:#ffd60a;--chip:#ecebe6;--warn:#fff3cd;--warnfg:#5c4400}
@media (prefers-color-scheme:dark){:root{--bg:#171716;--fg:#ecece8;--muted:#a8a8a2;--card:#232321;
--line:#3a3a37;--chip:#34342f;--warn:#3d3210;--warnfg:#ffe08a}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.cs-head{padding:16px clamp(10px,3vw,32px) 8px}
h1{font-size:1.35rem;margin:0 0 .3rem;overflow-wrap:anywhere}
.cs-counts{margin:.2rem 0;font-weight:600}
.cs-understood summary{cursor:pointer;color:var(--muted)}
.cs-query{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--card);border:1px solid var(--line);
border-radius:6px;padding:8px 10px;margin:.4rem 0;font-size:.85rem}
.cs-warnings{background:var(--warn);color:var(--warnfg);border-radius:6px;padding:8px 10px 8px 28px;margin:.4rem 0}
.cs-foot{color:var(--muted);font-size:.85rem;margin:.3rem 0}
.cs-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,230px),1fr));gap:14px;
padding:8px clamp(10px,3vw,32px) 40px;align-items:start;margin:0}
@media (max-width:520px){.cs-grid{grid-template-columns:repeat(2,minmax(0,1fr));gap:8px}}
.cs-item{margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;overflow:hidden}
.cs-open{display:block;width:100%;padding:0;margin:0;border:0;background:none;cursor:zoom-in;color:inherit}
.cs-open:focus-visible{outline:3px solid var(--box);outline-offset:-3px}
.cs-frame{position:relative;display:block;width:100%;overflow:hidden;background:#8a8a85}
.cs-img{position:absolute;inset:0;display:block;width:100%;height:100%}
.cs-missing{position:absolute;inset:0;display:flex;align-items:center;justify-content:center;padding:10px;
text-align:center;color:#fff;background:repeating-linear-gradient(45deg,#6d6d69 0 10px,#75756f 10px 20px);font-size:.85rem}
.cs-reason{background:rgba(0,0,0,.55);padding:4px 8px;border-radius:4px;overflow-wrap:anywhere}
.cs-box{position:absolute;display:block;border:2px solid var(--box);box-shadow:0 0 0 1px #000,inset 0 0 0 1px #000;
pointer-events:none}
.cs-box.cs-other{border:2px dashed #fff}
.cs-label{position:absolute;left:-2px;top:100%;background:var(--box);color:#000;font:700 11px/1 system-ui,sans-serif;
padding:2px 4px;white-space:nowrap}
.cs-other .cs-label{background:#fff}
figcaption{padding:6px 8px 8px;font-size:.8rem}
.cs-uri{display:block;overflow-wrap:anywhere;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.75rem}
.cs-count{display:block;color:var(--muted)}
.cs-faces,.cs-face-details{list-style:none;margin:4px 0 0;padding:0}
.cs-face{display:flex;flex-wrap:wrap;gap:3px;align-items:center;margin-top:3px}
.cs-num{display:inline-block;min-width:1.4em;text-align:center;background:var(--box);color:#000;font-weight:700;border-radius:3px;
font-size:.75rem;padding:0 3px}
.cs-chip{display:inline-block;background:var(--chip);border-radius:10px;padding:0 7px;font-size:.75rem;white-space:nowrap}
.cs-similarity{font-weight:700;border:1px solid currentColor}
.cs-none{color:var(--muted)}
#cs-view{width:min(1100px,96vw);max-height:94vh;overflow:auto;padding:12px;border:1px solid var(--line);border-radius:10px;
background:var(--card);color:var(--fg)}
#cs-view::backdrop{background:rgba(0,0,0,.7)}
.cs-close{float:right;font:inherit;padding:4px 12px;cursor:pointer}
.cs-enlarged h2{font-size:1rem;margin:0 0 .2rem;overflow-wrap:anywhere;font-family:ui-monospace,Menlo,Consolas,monospace}
.cs-enlarged-size{margin:0 0 .5rem;color:var(--muted)}
.cs-large{width:min(100%,calc(78vh * var(--w) / var(--h)));margin:0 auto}
.cs-more summary{cursor:pointer;color:var(--muted);margin-top:3px}
.cs-face-details{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,250px),1fr));gap:10px;margin-top:10px}
.cs-face-detail h3{font-size:.95rem;margin:0}
.cs-face-detail h3 small{font-weight:400;color:var(--muted)}
.cs-chips{margin:.2rem 0;display:flex;flex-wrap:wrap;gap:3px}
.cs-attrs{border-collapse:collapse;font-size:.75rem;width:100%}
.cs-attrs th{text-align:left;font-weight:600;padding:1px 6px 1px 0;vertical-align:top;white-space:nowrap}
.cs-attrs td{padding:1px 0;overflow-wrap:anywhere}
.cs-single{margin:0 clamp(10px,3vw,32px) 32px;padding:12px}
"""


# -- the file -----------------------------------------------------------------------------------


def default_output(kind: str, when: datetime, folder: Path | None = None) -> Path:
    """Where a sheet goes without ``--output``: ``./indexer-<kind>-YYYYmmdd-HHMMSS.html`` in the
    current folder (local time, to the second), ``-2``, ``-3``... when that name is taken."""
    folder = folder if folder is not None else Path.cwd()
    stem = f"indexer-{kind}-{when.astimezone().strftime('%Y%m%d-%H%M%S')}"
    path = folder / f"{stem}.html"
    n = 2
    while path.exists():
        path, n = folder / f"{stem}-{n}.html", n + 1
    return path


def output_path(output: Path | None, kind: str, when: datetime) -> Path:
    """The file a sheet is written to: ``output``, or the default name inside it when it is a
    folder, or :func:`default_output` when None. A folder that does not exist is a usage error
    (exit 2), found before any work is done."""
    if output is None:
        return default_output(kind, when)
    output = Path(output).expanduser()
    if output.is_dir():
        return default_output(kind, when, output)
    if not output.parent.is_dir():
        raise ConfigError(f"--output {output}: no such folder {output.parent}")
    return output


def write_sheet(path: Path, document: str) -> Path:
    """Write the document atomically (a new file beside it, then a rename), so a reader never
    sees half a sheet; the file gets the usual permissions (the umask applies)."""
    temporary = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
                out.write(document)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise FatalError(f"cannot write the sheet to {path}: {exc.strerror or exc}") from None
    return path

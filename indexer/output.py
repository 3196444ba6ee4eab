"""How results are written: search matches (table, JSON Lines, CSV, URIs), counts, stats, one image.

JSON Lines, CSV and URIs are for scripts, so their bytes do not change: JSON gives each face as
the engine returned it (Rekognition's FaceDetail plus ``face_id``), CSV one row per face with the
columns the attribute registry (:mod:`indexer.attributes`) names; a search with ``--like`` adds
each face's ``Similarity`` (JSON) and a trailing ``similarity`` column (CSV), and only such a
search, so scripts reading plain searches see the same bytes. The table and ``indexer show``
are for people: a few words per face, the same words in both. Standard library only: the CLI
imports this module to know its formats before anything runs.
"""

from __future__ import annotations

import csv
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Literal, get_args

from .attributes import AGE, ATTRIBUTES, EMOTION, GENDER
from .errors import QueryError

if TYPE_CHECKING:
    from .search import ImageMatch

#: ``html`` is the contact sheet (:mod:`indexer.contact_sheet`): a file of its own, not written
#: here, so adding it changed no byte of the other formats.
Format = Literal["table", "json", "csv", "uris", "html"]
FORMATS: tuple[Format, ...] = get_args(Format)
#: ``indexer show``'s formats: the few words per face, the stored JSON, or a one-image sheet.
ShowFormat = Literal["table", "json", "html"]
#: Images a contact sheet shows unless ``--limit`` says otherwise: each one is read and
#: thumbnailed, so the sheet takes seconds, not minutes, and stays a file one can mail.
SHEET_LIMIT = 200
#: The orders matches are listed in: by URI, or best first by the confidence of their best matching
#: face (:func:`indexer.query.match_confidence`).
Order = Literal["uri", "confidence"]
ORDERS: tuple[Order, ...] = get_args(Order)

#: Flat CSV columns, one row per matching face.
CSV_COLUMNS = ["uri", "face_id", *[column for attribute in ATTRIBUTES for column in attribute.csv_columns]]
#: The column a ``--like`` search adds after :data:`CSV_COLUMNS`: each face's Similarity.
SIMILARITY_COLUMN = "similarity"
#: Decimals a Similarity (0-100) is written with: finer than any threshold anyone sets, and the
#: offline engine's own Similarity is no more precise than that.
SIMILARITY_DECIMALS = 2


def shown_similarity(value: float) -> float:
    """A Similarity as every format writes it."""
    return round(float(value), SIMILARITY_DECIMALS)


def flat_face(uri: str, detail: dict[str, Any]) -> dict[str, Any]:
    """One face as flat CSV columns (empty = unknown)."""
    row: dict[str, Any] = {"uri": uri, "face_id": detail.get("face_id")}
    for attribute in ATTRIBUTES:
        row.update(attribute.csv_cells(detail))
    return row


def face_summary(detail: dict[str, Any], min_confidence: float) -> str:
    """A few words about one face: '30-38 Female smiling eyeglasses HAPPY' (what holds with at
    least ``min_confidence``)."""
    words = [attribute.summary(detail, min_confidence) for attribute in ATTRIBUTES]
    return " ".join(word for word in words if word) or "-"


def _uris(matches: Iterable[ImageMatch], out: IO[str], min_confidence: float, similarity: bool) -> None:
    for match in matches:
        out.write(match.uri + "\n")


def _json_lines(matches: Iterable[ImageMatch], out: IO[str], min_confidence: float, similarity: bool) -> None:
    for match in matches:
        out.write(match.json_line() + "\n")


def _csv(matches: Iterable[ImageMatch], out: IO[str], min_confidence: float, similarity: bool) -> None:
    columns = [*CSV_COLUMNS, SIMILARITY_COLUMN] if similarity else CSV_COLUMNS
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for match in matches:
        for detail in match.faces:
            row = flat_face(match.uri, detail)
            if similarity:
                row[SIMILARITY_COLUMN] = detail.get("Similarity")
            writer.writerow(row)


def _table(matches: Iterable[ImageMatch], out: IO[str], min_confidence: float, similarity: bool) -> None:
    """URI, matching/all faces, (with ``--like``, the best matching face's Similarity,) and the
    first three matching faces' summaries."""
    rows = [
        (m.uri, f"{len(m.stored_faces)}/{m.face_count}",
         *([f"{shown_similarity(m.score):.2f}" if m.score is not None else "-"] if similarity else []),
         "; ".join(face_summary(face.detail(), min_confidence) for face in m.stored_faces[:3])
         + (" ..." if len(m.stored_faces) > 3 else ""))
        for m in matches
    ]
    if not rows:
        return
    header = ("URI", "FACES", *(["SIMILARITY"] if similarity else []), "SUMMARY")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header) - 1)]
    for *cells, summary in [header, *rows]:
        left = f"{cells[0]:<{widths[0]}}  " + "".join(f"{cell:>{width}}  " for cell, width in zip(cells[1:], widths[1:]))
        out.write(f"{left}{summary}".rstrip() + "\n")


_WRITERS: dict[str, Callable[[Iterable[ImageMatch], IO[str], float, bool], None]] = {
    "table": _table,
    "json": _json_lines,
    "csv": _csv,
    "uris": _uris,
}


def format_matches(
    matches: Iterable[ImageMatch], fmt: str, out: IO[str], *, min_confidence: float = 50.0, similarity: bool = False
) -> None:
    """Write matches as ``table`` | ``json`` (JSON Lines) | ``csv`` (one row per face) | ``uris``
    (``html``, the contact sheet, is a file :func:`indexer.api.contact_sheet` writes).

    ``similarity``: the search used ``--like``, so CSV has the ``similarity`` column (even when
    nothing matched: a script reads the header) and the table a SIMILARITY column."""
    write = _WRITERS.get(fmt)
    if write is None:
        raise QueryError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    write(matches, out, min_confidence, similarity)


def format_count(counts: tuple[int, int], out: IO[str]) -> None:
    """``--count``: the numbers of matching images and faces."""
    images, faces = counts
    out.write(f"{images} images, {faces} faces\n")


def format_image(image: dict[str, Any], out: IO[str], *, min_confidence: float) -> None:
    """``indexer show``: the image's row, then a line per face (``--json`` gives it all)."""
    out.write(
        f"{image['uri']}  {image['status']}  engine {image['engine']}  {image['width']}x{image['height']}  "
        f"faces {len(image['faces'])}\n"
    )
    if image["error_code"]:
        out.write(f"  error {image['error_code']}: {image['error_message']}\n")
    for face in image["faces"]:
        out.write(f"  face {face['face_id']}: {face_summary(face, min_confidence)}\n")


def format_stats(data: dict[str, Any], out: IO[str]) -> None:
    """``indexer stats`` for people (``json.dumps(stats(store))`` for scripts)."""
    out.write(
        f"images: {data['images']:,} ({data['indexed']:,} indexed, {data['failed']:,} failed)\n"
        f"faces: {data['faces']:,}\n"
        f"attribute counts are faces whose value holds with Confidence >= {data['min_confidence']:g}; "
        f"coverage is faces with a known value\n"
    )
    for engine, entry in data["engines"].items():
        faces = entry["faces"]
        out.write(
            f"\nengine {engine}: {entry['images']:,} images ({entry['indexed']:,} indexed, {entry['failed']:,} failed), "
            f"{faces:,} faces\n"
        )
        if not faces:
            continue

        def pct(n: int) -> str:
            return f"{100.0 * n / faces:5.1f}%"

        out.write(f"  {'attribute':<14} {'yes':>10} {'no':>10} {'coverage':>16}\n")
        for key, counts in entry["attributes"].items():
            known = entry["coverage"].get(key, 0)
            out.write(f"  {key:<14} {counts['true']:>10,} {counts['false']:>10,} {known:>9,} {pct(known)}\n")
        for attribute in (GENDER, AGE, EMOTION):
            known = entry["coverage"].get(attribute.key, 0)
            parts = ", ".join(f"{name} {n:,}" for name, n in entry[attribute.group].items())
            out.write(f"  {attribute.title}: {parts} (coverage {known:,}, {pct(known).strip()})\n")


def _box(face: dict[str, Any]) -> str:
    """``box left,top,width,height``: a BoundingBox as fractions of the upright image."""
    box = face["BoundingBox"]
    return "box " + ",".join(f"{float(box[key]):.4f}" for key in ("Left", "Top", "Width", "Height"))


def format_comparison(result: dict[str, Any], out: IO[str]) -> None:
    """``indexer compare``: the verdict, a line per match (most alike first), a line per target
    face that did not match, and the source face compared (``--json`` gives CompareFaces' whole
    response)."""
    matches, unmatched = result["FaceMatches"], result["UnmatchedFaces"]
    faces = len(matches) + len(unmatched)
    if not faces:
        out.write("no match: no face in the target\n")
    else:
        found = f"{len(matches)} match{'es' if len(matches) != 1 else ''}" if matches else "no match"
        out.write(f"{found} among {faces} face{'s' if faces != 1 else ''} in the target\n")
    for match in matches:
        out.write(f"match      Similarity {shown_similarity(match['Similarity']):.2f}  {_box(match['Face'])}\n")
    for face in unmatched:
        out.write(f"unmatched  {_box(face)}\n")
    source = result["SourceImageFace"]
    out.write(f"source     {_box(source)}  confidence {float(source['Confidence']):.2f}\n")

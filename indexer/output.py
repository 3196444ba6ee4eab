"""How results are written: search matches (table, JSON Lines, CSV, URIs), counts, stats, one image.

JSON Lines, CSV and URIs are for scripts, so their bytes do not change: JSON gives each face as
the engine returned it (Rekognition's FaceDetail plus ``face_id``), CSV one row per face with the
columns the attribute registry (:mod:`indexer.attributes`) names. The table and ``indexer show``
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

Format = Literal["table", "json", "csv", "uris"]
FORMATS: tuple[Format, ...] = get_args(Format)
#: The orders matches are listed in: by URI, or best first by the confidence of their best matching
#: face (:func:`indexer.query.match_confidence`).
Order = Literal["uri", "confidence"]
ORDERS: tuple[Order, ...] = get_args(Order)

#: Flat CSV columns, one row per matching face.
CSV_COLUMNS = ["uri", "face_id", *[column for attribute in ATTRIBUTES for column in attribute.csv_columns]]


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


def _uris(matches: Iterable[ImageMatch], out: IO[str], min_confidence: float) -> None:
    for match in matches:
        out.write(match.uri + "\n")


def _json_lines(matches: Iterable[ImageMatch], out: IO[str], min_confidence: float) -> None:
    for match in matches:
        out.write(match.json_line() + "\n")


def _csv(matches: Iterable[ImageMatch], out: IO[str], min_confidence: float) -> None:
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for match in matches:
        for detail in match.faces:
            writer.writerow(flat_face(match.uri, detail))


def _table(matches: Iterable[ImageMatch], out: IO[str], min_confidence: float) -> None:
    """URI, matching/all faces, and the first three matching faces' summaries."""
    rows = [
        (m.uri, f"{len(m.stored_faces)}/{m.face_count}",
         "; ".join(face_summary(face.detail(), min_confidence) for face in m.stored_faces[:3])
         + (" ..." if len(m.stored_faces) > 3 else ""))
        for m in matches
    ]
    if not rows:
        return
    header = ("URI", "FACES", "SUMMARY")
    width_uri = max(len(header[0]), *(len(r[0]) for r in rows))
    width_faces = max(len(header[1]), *(len(r[1]) for r in rows))
    for uri, faces, summary in [header, *rows]:
        out.write(f"{uri:<{width_uri}}  {faces:>{width_faces}}  {summary}".rstrip() + "\n")


_WRITERS: dict[str, Callable[[Iterable[ImageMatch], IO[str], float], None]] = {
    "table": _table,
    "json": _json_lines,
    "csv": _csv,
    "uris": _uris,
}


def format_matches(matches: Iterable[ImageMatch], fmt: str, out: IO[str], *, min_confidence: float = 50.0) -> None:
    """Write matches as ``table`` | ``json`` (JSON Lines) | ``csv`` (one row per face) | ``uris``."""
    write = _WRITERS.get(fmt)
    if write is None:
        raise QueryError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    write(matches, out, min_confidence)


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

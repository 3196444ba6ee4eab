"""Face bitsets: counts over the whole index without reading every face.

SQL answers a count by visiting every face that may match: on SQLite about 0.1 us per index entry
and condition, plus a temporary B-tree to count distinct images, so a broad ``--count`` over 1M
faces took 200-600 ms whatever the plan. Here the faces are numbered in image order (position 0
is the first face of the first image) and, for each simple condition at the default threshold,
one Python integer holds a bit per face (an *atom*: "Smile is true", "Emotions is not HAPPY").
A query is then the AND of its terms' bitsets and a count is a popcount: a few milliseconds.

* Each atom's bits are computed by the database with the term's own SQL condition
  (:meth:`indexer.query.BoolTerm.condition` and the like), so bitsets and SQL cannot disagree.
* Ages and face counts are compared, not matched, so they are stored bit-sliced: slice ``i``
  holds bit ``i`` of each face's value (twice the middle of its AgeRange, an integer; its image's
  face count), and a range is a handful of ANDs over the slices (O'Neil and Quass, "Improved
  query performance with variant indexes", SIGMOD 1997).
* The images are counted through two more bitsets, ``same image as the face before`` and
  ``last face of its image``: the matches are smeared forward within each image (a prefix OR
  by doubling), and the last face of each image then says whether any of its faces matched.
* ``--order confidence`` ranks images by a confidence (the weakest of the query's terms on the
  best face). Each confidence column is kept as a *level*, bit-sliced: which of
  :data:`RANK_LEVELS` quantiles of that column the face's value reaches. From the levels, the
  highest cut-off that surely leaves ``limit`` matching images above it is found by a few
  popcounts, and only the images that may be above it (a few thousand faces) are ranked by SQL
  with their real confidences: the same page, without ranking every match.

The bitsets are rebuilt as a whole, after each ``indexer index`` run (:func:`refresh`), and
labelled with the faces' version (``versions`` table, bumped by every write of faces). A search
uses them only when that label is still the faces' version and the query's threshold is the one
they were built at; otherwise it asks SQL, which is slower, never wrong.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import zlib
from array import array
from dataclasses import dataclass
from functools import reduce
from operator import add
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy import case, delete, insert, literal, select
from sqlalchemy.exc import SQLAlchemyError

from .attributes import BOOLEANS, EMOTION, GENDER
from .query import DEFAULT_MIN_CONFIDENCE, AgeTerm, BoolTerm, EmotionTerm, FaceTerm, GenderTerm, Query
from .store.indexed import wide_source
from .store.models import FACES_VERSION, bitsets_table, faces_table, images_table, versions_table

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_bitsets = bitsets_table.c
_versions = versions_table.c

#: The row describing the rest (counts, slice widths, threshold), as JSON.
LAYOUT = "layout"
SAME_IMAGE = "image:same as previous face"
LAST_FACE = "image:last face"
AGE_SLICE = "age x2:bit {}"
FACE_COUNT_SLICE = "face count:bit {}"
#: The image id of every position, as little-endian 64-bit integers.
IMAGE_IDS = "image ids"
RANK_SLICE = "{} level:bit {}"
#: What the bitsets hold, as the layout row records it: bitsets of an older format are rebuilt by
#: the next refresh even when the faces did not change (2: confidence levels added).
LAYOUT_FORMAT = 2
#: Quantile levels per confidence column: the top level then holds about 1/128 of the faces, so
#: ranking a broad query's best images means ranking under a per cent of its matches (at 1M
#: faces, 32 levels left the top level of the broadest terms just over search's 20,000 faces,
#: and 64 left ~14,000 images, whose ranking took PostgreSQL 200-400 ms).
RANK_LEVELS = 128
#: Every atom is one of these terms; ``AgeTerm()`` with no bounds is "the age is known".
_AGE_KNOWN = AgeTerm(None, False, None, False)
#: Faces read per round trip while building (bounds the memory of the Python rows).
_BUILD_CHUNK = 100_000


def atoms() -> tuple[FaceTerm, ...]:
    """The simple conditions kept as bitsets: every value of every yes/no attribute, gender and
    top emotion (negated too: "not happy" is not "not (happy)" when the emotion is unknown)."""
    return (
        *(BoolTerm(boolean.key, value) for boolean in BOOLEANS for value in (True, False)),
        *(GenderTerm(value) for value in GENDER.value_words),
        *(EmotionTerm(value, negated) for value in EMOTION.value_words for negated in (False, True)),
        _AGE_KNOWN,
    )


def score_column(term: FaceTerm) -> str | None:
    """The faces column a term ranks by (``--order confidence``), None when it ranks by none."""
    column = term.confidence(faces_table.c)
    return None if column is None else str(column.name)


#: The column a query with no ranking term ranks by: the detection confidence.
DETECTION_CONFIDENCE = "confidence"


def ranked_columns() -> tuple[str, ...]:
    """Every confidence column kept as levels: those of the atoms, and the detection confidence."""
    names = (score_column(term) for term in atoms())
    return tuple(dict.fromkeys([*(name for name in names if name), DETECTION_CONFIDENCE]))


def atom_name(term: FaceTerm) -> str:
    """The bitset row of an atom: the term as ``--explain`` says it."""
    return term.describe()


class Unavailable(Exception):
    """These bitsets cannot answer the query (SQL must)."""


# -- reading ---------------------------------------------------------------------------------


@dataclass
class FaceBitsets:
    """The bitsets of one faces version, read from the database as a query needs them."""

    conn: Any
    version: int
    faces: int
    max_faces: int
    age_bits: int | None
    face_count_bits: int
    #: Per ranked column, the values its levels start at (level k: value >= thresholds[k - 1]).
    rank_thresholds: dict[str, list[float]]

    def __post_init__(self) -> None:
        self._loaded: dict[str, int] = {}
        #: Every face.
        self.all = (1 << self.faces) - 1

    def get(self, name: str) -> int:
        if name not in self._loaded:
            self._loaded[name] = int.from_bytes(zlib.decompress(self._row(name)), "little")
        return self._loaded[name]

    def _row(self, name: str) -> bytes:
        data = self.conn.execute(
            select(_bitsets.data).where(_bitsets.name == name, _bitsets.faces_version == self.version)
        ).scalar_one_or_none()
        if data is None:  # rebuilt meanwhile, or a bitset this build did not make
            raise Unavailable(name)
        return bytes(data)

    def atom(self, term: FaceTerm) -> int:
        return self.get(atom_name(term))

    def ages(self, lo: float | None, lo_inclusive: bool, hi: float | None, hi_inclusive: bool) -> int:
        """Faces whose age is known and within the bounds (each optional)."""
        if self.age_bits is None:
            raise Unavailable("ages are not all whole or half years")
        known = self.atom(_AGE_KNOWN)
        slices = [self.get(AGE_SLICE.format(i)) for i in range(self.age_bits)]
        # twice the age is an integer: turn each bound into an inclusive integer bound
        low = None if lo is None else (math.floor(2 * lo) + 1 if not lo_inclusive else math.ceil(2 * lo))
        high = None if hi is None else (math.floor(2 * hi) if hi_inclusive else math.ceil(2 * hi) - 1)
        return _between(slices, known, low, high)

    def face_counts(self, lo: int, hi: int | None) -> int:
        """Faces whose image has ``lo <= face_count <= hi`` faces."""
        slices = [self.get(FACE_COUNT_SLICE.format(i)) for i in range(self.face_count_bits)]
        return _between(slices, self.all, lo, hi)

    def matches(self, query: Query) -> int:
        """The faces on which every face term holds, of images the image terms accept."""
        matches = self.all
        for term in query.face_terms:
            matches &= term.bits(self)
        for image_term in query.image_terms:
            matches &= image_term.bits(self)
        return matches

    def count(self, query: Query) -> tuple[int, int]:
        """(matching images, matching faces), as :func:`indexer.search.count` defines them."""
        matches = self.matches(query)
        return self._images(matches), matches.bit_count()

    def image_ids(self, query: Query, most_faces: int) -> list[int] | None:
        """The ids of the matching images, or None when more than ``most_faces`` faces match
        (listing them would cost more than the SQL it saves)."""
        return self._ids(self.matches(query), most_faces)

    def best_image_ids(self, query: Query, limit: int, most_faces: int) -> list[int] | None:
        """The ids of a set of matching images that surely holds the ``limit`` best ranked
        (``--order confidence``), or None when no such set of at most ``most_faces`` faces is found.

        A face's score is the lowest of its ranking columns. For a cut-off ``v``, the faces whose
        every column's level starts at ``v`` or above *surely* score ``v`` or more; those whose
        levels start at ``v`` or below *may*. The highest ``v`` whose sure faces span ``limit``
        images is searched for; every image of the page then scores at least ``v``, so it has a
        face among the maybe faces, whose images are the answer (exact scores are SQL's job).
        When no cut-off leaves ``limit`` images above it, every matching image is a candidate.
        """
        columns = [name for term in query.face_terms if (name := score_column(term))] or [DETECTION_CONFIDENCE]
        columns = list(dict.fromkeys(columns))
        if any(column not in self.rank_thresholds for column in columns):
            raise Unavailable("a ranking column without levels")
        matches = self.matches(query)
        if matches.bit_count() <= limit:  # no narrowing can leave fewer
            return self._ids(matches, most_faces)
        cuts = sorted({value for column in columns for value in self.rank_thresholds[column]})
        low, high, found = 0, len(cuts) - 1, None
        while low <= high:  # the highest cut whose sure faces span ``limit`` images
            middle = (low + high) // 2
            sure = self._at_level(matches, columns, cuts[middle], surely=True)
            if self._images(sure) >= limit:
                found, low = middle, middle + 1
            else:
                high = middle - 1
        if found is None:
            return self._ids(matches, most_faces)
        return self._ids(self._at_level(matches, columns, cuts[found], surely=False), most_faces)

    def _at_level(self, matches: int, columns: list[str], cut: float, *, surely: bool) -> int:
        """``matches`` whose every column surely (or maybe) reaches ``cut``, judged by levels."""
        for column in columns:
            thresholds = self.rank_thresholds[column]
            if surely:  # the lowest level starting at ``cut`` or above
                level = next((k + 1 for k, value in enumerate(thresholds) if value >= cut), None)
                if level is None:
                    return 0
            else:  # the highest level starting at ``cut`` or below (0: every face)
                level = sum(1 for value in thresholds if value <= cut)
            slices = [self.get(RANK_SLICE.format(column, i)) for i in range(len(thresholds).bit_length())]
            matches &= ~_at_most(slices, self.all, level - 1)
        return matches

    def _ids(self, matches: int, most_faces: int) -> list[int] | None:
        """The image ids of the faces ``matches``, or None when there are more than ``most_faces``."""
        if matches.bit_count() > most_faces:
            return None
        if not matches:
            return []
        data = matches.to_bytes((matches.bit_length() + 7) // 8, "little")
        ids = array("q", zlib.decompress(self._row(IMAGE_IDS)))
        if sys.byteorder == "big":
            ids.byteswap()
        positions = (8 * m.start() + bit for m in re.finditer(rb"[^\x00]", data) for bit in range(8) if m[0][0] >> bit & 1)
        return sorted({ids[position] for position in positions})

    def _images(self, matches: int) -> int:
        """How many images have a face among ``matches``: each match is carried forward to the
        later faces of its image (doubling the reach each step), then the last faces count."""
        reach, same = 1, self.get(SAME_IMAGE)  # same: bit p when faces p - reach .. p share an image
        while reach < self.max_faces:
            matches |= (matches << reach) & same
            same &= same << reach
            reach *= 2
        return (matches & self.get(LAST_FACE)).bit_count()


def _at_most(slices: list[int], known: int, bound: int) -> int:
    """The positions of ``known`` whose bit-sliced value is at most ``bound``."""
    if bound < 0:
        return 0
    if bound >= 1 << len(slices):
        return known
    below, equal = 0, known
    for i in reversed(range(len(slices))):
        if bound >> i & 1:
            below |= equal & ~slices[i]
            equal &= slices[i]
        else:
            equal &= ~slices[i]
    return below | equal


def _between(slices: list[int], known: int, low: int | None, high: int | None) -> int:
    """The positions of ``known`` whose value is within the inclusive bounds (None: open)."""
    inside = known if high is None else _at_most(slices, known, high)
    if low is not None:
        inside &= ~_at_most(slices, known, low - 1)
    return inside


def open_bitsets(conn: Any, query: Query) -> FaceBitsets | None:
    """The bitsets, if they describe the faces as they are now and were built at the query's
    threshold; None otherwise (then SQL answers)."""
    row = conn.execute(
        select(_bitsets.faces_version, _bitsets.data)
        .join_from(bitsets_table, versions_table, _versions.version == _bitsets.faces_version)
        .where(_bitsets.name == LAYOUT, _versions.name == FACES_VERSION)
    ).first()
    if row is None:
        return None
    layout = json.loads(zlib.decompress(row.data))
    if layout["threshold"] != query.min_confidence:
        return None
    return FaceBitsets(
        conn,
        row.faces_version,
        layout["faces"],
        layout["max_faces"],
        layout["age_bits"],
        layout["face_count_bits"],
        layout.get("rank_thresholds", {}),
    )


def _answer(conn: Any, query: Query, ask: Callable[[FaceBitsets], _T]) -> _T | None:
    """``ask`` of the bitsets, or None when they cannot answer (then SQL does)."""
    bitsets = open_bitsets(conn, query)
    if bitsets is None:
        return None
    try:
        return ask(bitsets)
    except Unavailable as missing:
        log.debug("bitsets cannot answer %r: %s", query.text, missing)
        return None


def image_ids(conn: Any, query: Query, most_faces: int) -> list[int] | None:
    """The ids of the images matching ``query`` from the bitsets, or None when they cannot
    answer or more than ``most_faces`` faces match."""
    return _answer(conn, query, lambda bitsets: bitsets.image_ids(query, most_faces))


def best_image_ids(conn: Any, query: Query, limit: int, most_faces: int) -> list[int] | None:
    """Ids of images that surely hold the ``limit`` best ranked matches of ``query`` (see
    :meth:`FaceBitsets.best_image_ids`), or None when the bitsets cannot narrow it that far."""
    return _answer(conn, query, lambda bitsets: bitsets.best_image_ids(query, limit, most_faces))


def count(conn: Any, query: Query) -> tuple[int, int] | None:
    """(images, faces) from the bitsets, or None when they cannot answer."""
    return _answer(conn, query, lambda bitsets: bitsets.count(query))


# -- building --------------------------------------------------------------------------------


def refresh(store: Any) -> bool:
    """Rebuild the bitsets unless they already describe the faces; True when rebuilt.

    The faces' version is read *before* the faces: a write committed in between makes the
    bitsets look out of date (and unused), never up to date with faces they lack. Two runs
    refreshing at once: one of them wins; the other's failure is only logged.
    """
    with store.engine.connect() as conn:
        version = conn.execute(select(_versions.version).where(_versions.name == FACES_VERSION)).scalar_one_or_none()
        if version is None:  # a database without the versions row (not migrated): nothing to label
            return False
        built = conn.execute(select(_bitsets.faces_version, _bitsets.data).where(_bitsets.name == LAYOUT)).first()
        if built is not None and built.faces_version == version and _format(built.data) == LAYOUT_FORMAT:
            return False
        rows = _build(conn)
    try:
        with store.engine.begin() as conn:
            conn.execute(delete(bitsets_table))
            conn.execute(
                insert(bitsets_table),
                [{"name": name, "faces_version": version, "data": zlib.compress(data, 1)} for name, data in rows],
            )
    except SQLAlchemyError as exc:  # another run refreshed at the same moment
        log.warning("face bitsets not rebuilt: %s", str(exc).splitlines()[0])
        return False
    return True


def _format(layout: bytes) -> int:
    """The format of the bitsets a stored layout row describes (1: before it was recorded)."""
    return int(json.loads(zlib.decompress(layout)).get("format", 1))


def _atom_bits(c: Any) -> Any:
    """One integer per face: bit ``k`` set when atom ``k`` holds (the database decides, with
    the atom's own SQL condition at the default threshold)."""
    return reduce(
        add,
        [
            case((term.condition(c, DEFAULT_MIN_CONFIDENCE), literal(1 << k)), else_=literal(0))
            for k, term in enumerate(atoms())
        ],
    )


def _face_rows(conn: Any) -> Iterator[list[Any]]:
    """(image id, its face count, age middle, atom bits, ranked confidences) of every face, grouped by image (in
    image id order, from the covering search index: the faces' wide rows are never read)."""
    faces, images = wide_source(conn), images_table.c
    statement = (
        select(
            faces.c.image_id,
            images.face_count,
            faces.c.age_mid,
            _atom_bits(faces.c),
            *(faces.c[name] for name in ranked_columns()),
        )
        .join_from(faces, images_table, images.id == faces.c.image_id)
        .order_by(faces.c.image_id)
    )
    result = conn.execution_options(yield_per=_BUILD_CHUNK).execute(statement)
    yield from result.partitions()


def _build(conn: Any) -> list[tuple[str, bytes]]:
    """Every bitset (and the layout row) of the faces as they are, as (name, bytes) rows."""
    import numpy as np

    width = 4 + len(ranked_columns())
    chunks = [
        np.array([tuple(row) for row in chunk], dtype=np.float64).reshape(-1, width) for chunk in _face_rows(conn)
    ]
    table = np.concatenate(chunks) if chunks else np.zeros((0, width))
    image_id, face_count, age, bits = table[:, :4].T
    n = len(table)

    def packed(mask: Any) -> bytes:
        return np.packbits(mask.astype(bool), bitorder="little").tobytes()

    def sliced(values: Any, name: str) -> tuple[int, list[tuple[str, bytes]]]:
        width = int(values.max()).bit_length() if n else 0
        return width, [(name.format(i), packed((values >> i) & 1)) for i in range(width)]

    same = np.zeros(n, dtype=bool)
    same[1:] = image_id[1:] == image_id[:-1]
    last = np.ones(n, dtype=bool)
    last[:-1] = image_id[:-1] != image_id[1:]
    atom_bits = bits.astype(np.int64)
    rows = [(atom_name(term), packed((atom_bits >> k) & 1)) for k, term in enumerate(atoms())]
    rows += [(SAME_IMAGE, packed(same)), (LAST_FACE, packed(last))]
    rows.append((IMAGE_IDS, image_id.astype("<i8").tobytes()))
    count_bits, count_rows = sliced(face_count.astype(np.int64), FACE_COUNT_SLICE)
    rows += count_rows
    known = ~np.isnan(age)
    doubled = np.where(known, age * 2, 0)
    age_bits: int | None = None
    if np.all(doubled == np.round(doubled)) and np.all(doubled >= 0):
        age_bits, age_rows = sliced(doubled.astype(np.int64), AGE_SLICE)
        rows += age_rows
    rank_thresholds = {}
    for name, values in zip(ranked_columns(), table[:, 4:].T):
        thresholds, level_rows = _levels(values, RANK_SLICE.format(name, "{}"), packed)
        rank_thresholds[name] = thresholds
        rows += level_rows
    runs = np.diff(np.append(np.flatnonzero(~same), n))  # faces per image
    layout = {
        "faces": n,
        "max_faces": int(runs.max()) if n else 0,
        "age_bits": age_bits,
        "face_count_bits": count_bits,
        "threshold": DEFAULT_MIN_CONFIDENCE,
        "rank_thresholds": rank_thresholds,
        "format": LAYOUT_FORMAT,
    }
    return [*rows, (LAYOUT, json.dumps(layout).encode())]


def _levels(values: Any, name: str, packed: Callable[[Any], bytes]) -> tuple[list[float], list[tuple[str, bytes]]]:
    """A confidence column as levels: the distinct quantiles (``RANK_LEVELS`` of them at most)
    its known values start at, and each face's level (how many of them it reaches, 0 when
    unknown) bit-sliced."""
    import numpy as np

    known = values[~np.isnan(values)]
    if not len(known):
        return [], []
    quantiles = np.quantile(known, np.arange(1, RANK_LEVELS) / RANK_LEVELS, method="lower")
    thresholds = sorted({float(value) for value in quantiles})
    levels = np.searchsorted(np.array(thresholds), np.nan_to_num(values, nan=-np.inf), side="right").astype(np.int64)
    return thresholds, [(name.format(i), packed((levels >> i) & 1)) for i in range(len(thresholds).bit_length())]

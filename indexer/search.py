"""Attribute search over the index: matching images, counts, capability warnings, stats, output.

Every statement is built from :mod:`indexer.query`'s compiled SQLAlchemy expressions, so values
from the query are bound parameters. Search must start fast (a person waits for the whole
command): this module and what it imports never load boto3, PIL, numpy or the engines.

How a page of results is found (``order="uri"``, the default): matching images are walked in URI
order through the unique URI index, each one checked with an ``EXISTS`` probe on the faces'
``(image_id, ...)`` index, but only over a bounded prefix of URIs. A common query ("smiling")
fills its page inside that prefix in a few milliseconds. A rare one ("angry men with mustache")
does not; the rest of its page is then found from the faces side (the attribute indexes find the
few matching faces, their images are sorted by URI), which is cheap precisely because it is rare.
Either way the answer is the same: the first ``limit`` matching images in URI order.
"""

from __future__ import annotations

import csv
import json
import weakref
from dataclasses import dataclass, field
from typing import IO, Any, Iterable

from sqlalchemy import and_, case, exists, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.selectable import Alias

from .query import (
    BOOLEANS,
    EMOTIONS,
    AgeTerm,
    BoolTerm,
    EmotionTerm,
    GenderTerm,
    Query,
    face_condition,
    image_conditions,
    match_confidence,
)
from .store.facedetail import stored_detail
from .store.models import IMAGE_FAILED, IMAGE_INDEXED, Face, Image

FORMATS = ("table", "json", "csv", "uris")
ORDERS = ("uri", "confidence")

#: Images scanned in URI order before switching to the faces-side plan (see module docstring).
URI_SCAN_BUDGET = 2000
#: Never walk more images than this in URI order (about the cost of one faces-side pass).
URI_SCAN_MAX = 12000
#: Bound parameters per ``IN (...)`` when fetching the faces of a page.
_CHUNK = 500

_faces = Face.__table__
_images = Image.__table__

#: Covering index of every searchable column behind image_id (migration 0002).
SEARCH_INDEX = "ix_faces_search"


class _IndexedFaces(Alias):
    """``faces AS faces_<index> INDEXED BY <index>`` on SQLite; a plain alias elsewhere.

    SQLite's planner, knowing only average rows per value, prefers an attribute index followed by
    a lookup of every candidate's wide row (the raw JSON); the covering indexes are 10x cheaper.
    Index names come from this module's fixed list, never from a query.
    """

    inherit_cache = True  # the alias name carries the index name, so cached SQL stays right
    index_name: str = ""


@compiles(_IndexedFaces)
def _compile_indexed(element: _IndexedFaces, compiler: Any, **kw: Any) -> str:
    return compiler.visit_alias(element, **kw)


@compiles(_IndexedFaces, "sqlite")
def _compile_indexed_sqlite(element: _IndexedFaces, compiler: Any, **kw: Any) -> str:
    text = compiler.visit_alias(element, **kw)
    if kw.get("asfrom") and element.index_name:
        text += f" INDEXED BY {compiler.preparer.quote(element.index_name)}"
    return text


def _indexed(index: str) -> _IndexedFaces:
    alias = _IndexedFaces._construct(_faces, name=f"f_{index}")
    alias.index_name = index
    return alias


_SEARCH_INDEXES: "weakref.WeakKeyDictionary[Any, frozenset[str]]" = weakref.WeakKeyDictionary()


def _search_indexes(conn: Any) -> frozenset[str]:
    """The search indexes this SQLite database has (one not migrated to 0002 lacks them)."""
    key = conn.engine
    if key not in _SEARCH_INDEXES:
        names = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'faces' AND name LIKE 'ix_faces_%'"
        ).scalars()
        _SEARCH_INDEXES[key] = frozenset(names)
    return _SEARCH_INDEXES[key]


def _term_index(term: Any) -> str | None:
    """The (value, image_id, confidence) index a single term can be answered from, if any."""
    if isinstance(term, BoolTerm):
        return f"ix_faces_{BOOLEANS[term.key][0]}"
    if isinstance(term, GenderTerm):
        return "ix_faces_gender"
    if isinstance(term, EmotionTerm) and not term.negated:
        return "ix_faces_emotion"
    if isinstance(term, AgeTerm) and not term.negated:
        return "ix_faces_age_mid"
    return None


def _faces_source(conn: Any, query: Query, *, probe: bool = False) -> Any:
    """The faces table, or on SQLite an alias forced onto the cheapest covering index.

    One term: its own attribute index (holds value, image id and confidence). Several terms, or a
    probe by image id (``probe``): the covering ``ix_faces_search``.
    """
    if conn.dialect.name != "sqlite":
        return _faces
    available = _search_indexes(conn)
    if not probe and len(query.face_terms) == 1:
        index = _term_index(query.face_terms[0])
        if index in available:
            return _indexed(index)
    if SEARCH_INDEX in available:
        return _indexed(SEARCH_INDEX)
    return _faces


def _wide_source(conn: Any) -> Any:
    """The faces, read through the covering ``ix_faces_search`` on SQLite when it exists."""
    if conn.dialect.name == "sqlite" and SEARCH_INDEX in _search_indexes(conn):
        return _indexed(SEARCH_INDEX)
    return _faces


def _few_faces_per_image(query: Query) -> bool:
    """True when an image term bounds the images to at most two faces ("portraits", "2 faces")."""
    return any(term.hi is not None and term.hi <= 2 and not term.negated for term in query.image_terms)


def _tune(conn: Any, query: Query | None = None) -> None:
    """Per-connection settings for a search.

    SQLite: read the file through mmap (a search touches many pages once; the OS cache keeps
    them between processes). PostgreSQL, several face terms: no bitmap scans for this
    transaction (``SET LOCAL``, undone when the connection goes back to the pool). The planner
    otherwise ANDs the attribute indexes and then fetches every candidate's wide heap row (the
    raw FaceDetail), about 450 ms on 1M faces, where one index-only pass over ``ix_faces_search``
    takes about 110 ms.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA mmap_size = 2147483648")
    elif conn.dialect.name == "postgresql" and query is not None and len(query.face_terms) > 1:
        conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")


@dataclass
class ImageMatch:
    """One matching image: its URI and its matching faces (FaceDetail shape plus ``face_id``)."""

    uri: str
    faces: list[dict[str, Any]] = field(default_factory=list)
    #: Faces stored for the image in all (``faces`` holds only those that matched).
    face_count: int = 0
    engine: str = ""
    #: Best matching face's score with ``order="confidence"``, else None.
    score: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "faces": self.faces}


# -- statements ----------------------------------------------------------------------------------


def _image_filter(query: Query) -> list[Any]:
    return [_images.c.status == literal(IMAGE_INDEXED), *image_conditions(query, _images)]


def _page_by_uri(conn: Any, query: Query, limit: int | None) -> list[tuple[int, str, int, str]]:
    """(id, uri, face_count, engine) of the first ``limit`` matching images in URI order.

    1. Walk the images in URI order (the unique URI index, so no sort and an early stop), one
       index probe each, over the first :data:`URI_SCAN_BUDGET` URIs: a common query fills its
       page there in a few milliseconds. If the matches seen so far say the page will be full
       within :data:`URI_SCAN_MAX` images, walk on over just as many as that needs.
    2. Otherwise what is still missing comes from the other side: the faces' covering indexes
       find the images with a matching face (few, since the walk found few), sorted by URI.
    """
    columns = (_images.c.id, _images.c.uri, _images.c.face_count, _images.c.engine)
    filters = _image_filter(query)
    matching_ids = None
    if query.face_terms:
        source = _faces_source(conn, query)
        matching_ids = select(source.c.image_id).where(face_condition(query, source))

    def rest(after: str | None, n: int | None) -> list[tuple[int, str, int, str]]:
        statement = select(*columns).where(*filters)
        if matching_ids is not None:
            statement = statement.where(_images.c.id.in_(matching_ids))
        if after is not None:
            statement = statement.where(_images.c.uri > literal(after))
        statement = statement.order_by(_images.c.uri)
        if n is not None:
            statement = statement.limit(n)
        return [tuple(row) for row in conn.execute(statement)]

    if limit is None:
        return rest(None, None)

    walk_filters = [
        _images.c.status == literal(IMAGE_INDEXED),
        *image_conditions(query, _images, face_count=_images.c.face_count + literal(0)),
    ]
    if query.face_terms:
        probe_faces = _faces_source(conn, query, probe=True)
        walk_filters.append(
            exists().where(probe_faces.c.image_id == _images.c.id, face_condition(query, probe_faces))
        )

    rows: list[tuple[int, str, int, str]] = []
    after: str | None = None
    walked = 0
    budget = URI_SCAN_BUDGET
    while True:
        # the URI ``budget`` images further on bounds this stretch of the walk (URI index only)
        bound_query = select(_images.c.uri).order_by(_images.c.uri).offset(budget - 1).limit(1)
        if after is not None:
            bound_query = bound_query.where(_images.c.uri > literal(after))
        bound = conn.execute(bound_query).scalar_one_or_none()
        walk = select(*columns).where(*walk_filters)
        if after is not None:
            walk = walk.where(_images.c.uri > literal(after))
        if bound is not None:
            walk = walk.where(_images.c.uri <= literal(bound))
        rows += [tuple(row) for row in conn.execute(walk.order_by(_images.c.uri).limit(limit - len(rows)))]
        walked += budget
        if len(rows) >= limit or bound is None:  # page full, or the walk saw every image
            return rows
        after = bound
        # walk on only while the matches seen so far say it will finish the page soon
        needed = (limit - len(rows)) * walked / max(len(rows), 1)
        if walked + needed > URI_SCAN_MAX:
            return rows + rest(after, limit - len(rows))
        budget = max(int(needed * 1.25), 100)


def _page_by_confidence(conn: Any, query: Query, limit: int | None) -> list[tuple[int, str, int, str, float | None]]:
    """Images ranked by their best matching face: the weakest confidence among the query's
    attribute terms for that face (detection confidence when the query names none)."""
    source = _faces_source(conn, query) if query.face_terms else _faces
    confidences = match_confidence(query, source)
    if not confidences:
        score = source.c.confidence
    elif len(confidences) == 1:
        score = confidences[0]
    else:
        least = func.least if conn.dialect.name == "postgresql" else func.min
        score = least(*confidences)
    per_image = select(source.c.image_id.label("image_id"), func.max(score).label("score")).group_by(
        source.c.image_id
    )
    condition = face_condition(query, source)
    if condition is not None:
        per_image = per_image.where(condition)
    scores = per_image.subquery("scores")
    columns = (_images.c.id, _images.c.uri, _images.c.face_count, _images.c.engine, scores.c.score)
    if query.face_terms:
        statement = select(*columns).join_from(_images, scores, scores.c.image_id == _images.c.id)
    else:
        statement = select(*columns).outerjoin_from(_images, scores, scores.c.image_id == _images.c.id)
    statement = statement.where(*_image_filter(query)).order_by(
        func.coalesce(scores.c.score, literal(-1.0)).desc(), _images.c.uri
    )
    if limit is not None:
        statement = statement.limit(limit)
    return [tuple(row) for row in conn.execute(statement)]


def _faces_of(conn: Any, query: Query, image_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The matching faces (all faces without face terms) of ``image_ids``, in face order."""
    out: dict[int, list[dict[str, Any]]] = {image_id: [] for image_id in image_ids}
    condition = face_condition(query, _faces)
    for start in range(0, len(image_ids), _CHUNK):
        chunk = image_ids[start : start + _CHUNK]
        statement = select(_faces.c.id, _faces.c.image_id, _faces.c.raw).where(_faces.c.image_id.in_(chunk))
        if condition is not None:
            statement = statement.where(condition)
        for face_id, image_id, raw in conn.execute(statement.order_by(_faces.c.image_id, _faces.c.face_index)):
            out[image_id].append(stored_detail(raw, face_id))
    return out


# -- public API ----------------------------------------------------------------------------------


def search(
    store: Any, query: Query, *, limit: int | None = None, order: str = "uri", with_faces: bool = True
) -> list[ImageMatch]:
    """Images matching ``query``: those with at least one face on which every face term holds
    (any image when there are none) and whose image terms hold. Each match carries only its
    matching faces (all of its faces when the query has no face terms). Ordered by URI, or with
    ``order="confidence"`` by the best matching face's weakest term confidence (then URI).
    ``with_faces=False`` leaves ``faces`` empty (``--format uris`` needs no FaceDetails)."""
    if order not in ORDERS:
        from .errors import QueryError

        raise QueryError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}")
    if limit is not None and limit < 0:
        from .errors import QueryError

        raise QueryError(f"--limit must be 0 or more, not {limit}")
    if limit == 0:
        return []
    with store.engine.connect() as conn:
        _tune(conn, query)
        if order == "confidence":
            page = _page_by_confidence(conn, query, limit)
        else:
            page = [(*row, None) for row in _page_by_uri(conn, query, limit)]
        faces = _faces_of(conn, query, [row[0] for row in page]) if with_faces else {row[0]: [] for row in page}
    return [
        ImageMatch(uri=uri, faces=faces[image_id], face_count=face_count, engine=engine, score=score)
        for image_id, uri, face_count, engine, score in page
    ]


def count(store: Any, query: Query) -> tuple[int, int]:
    """(matching images, matching faces). Without face terms, every face of a matching image counts."""
    with store.engine.connect() as conn:
        _tune(conn, query)
        if not query.face_terms:
            statement = select(func.count(), func.coalesce(func.sum(_images.c.face_count), 0)).where(
                *_image_filter(query)
            )
            images, faces = conn.execute(statement).one()
            return int(images), int(faces)
        source = _faces_source(conn, query)
        statement = select(func.count(source.c.image_id.distinct()), func.count()).where(face_condition(query, source))
        if query.image_terms:
            images_ids = select(_images.c.id).where(*_image_filter(query))
            if _few_faces_per_image(query):
                # few images' worth of faces: walk those images (in id order) and probe their faces
                statement = statement.where(source.c.image_id.in_(images_ids))
            else:
                # walk the matching faces and check each one's image
                statement = statement.where((source.c.image_id + literal(0)).in_(images_ids))
        images, faces = conn.execute(statement).one()
        return int(images), int(faces)


def capability_warnings(store: Any, query: Query) -> list[str]:
    """One line per engine whose indexed images can never answer part of ``query``.

    Cheap enough for every search: the engines' recorded attributes, a loose index scan for the
    distinct engines of the images (one index seek per engine), and a count only for engines
    that lack something.
    """
    wanted = query.attributes()
    if not wanted:
        return []
    capabilities = store.engine_attributes()
    warnings = []
    with store.engine.connect() as conn:
        engines: list[str] = []
        current = conn.execute(select(func.min(_images.c.engine))).scalar_one_or_none()
        while current is not None:
            engines.append(current)
            current = conn.execute(
                select(func.min(_images.c.engine)).where(_images.c.engine > literal(current))
            ).scalar_one_or_none()
        for engine in engines:
            missing = sorted(wanted - set(capabilities[engine])) if engine in capabilities else None
            if missing == []:
                continue
            n = conn.execute(
                select(func.count()).where(
                    _images.c.engine == literal(engine), _images.c.status == literal(IMAGE_INDEXED)
                )
            ).scalar_one()
            if not n:
                continue
            images = f"{n:,} image{'s' if n != 1 else ''}"
            if missing is None:
                warnings.append(
                    f"warning: {images} indexed by engine {engine!r}, whose attributes are not recorded, may never "
                    f"match this query; re-indexing them with --engine rekognition would answer it"
                )
            else:
                warnings.append(
                    f"warning: {images} indexed by engine {engine!r} cannot have {', '.join(missing)}, so they never "
                    f"match this query; re-indexing them with --engine rekognition would answer it"
                )
    return warnings


def stats(store: Any, min_confidence: float = 50.0) -> dict[str, Any]:
    """Images, faces, failures, and per engine how many faces hold each attribute (with
    ``Confidence >= min_confidence``) and how many have a known value for it (coverage)."""
    threshold = literal(float(min_confidence))
    with store.engine.connect() as conn:
        _tune(conn)
        source = _wide_source(conn)
        return _stats(conn, source, threshold, float(min_confidence))


def _stats(conn: Any, source: Any, threshold: Any, min_confidence: float) -> dict[str, Any]:
    c = source.c
    columns: list[Any] = [func.count().label("faces")]
    labels: list[tuple[str, str, str]] = []  # (label, group, name)

    def add(label: str, expression: Any, group: str, name: str) -> None:
        columns.append(func.coalesce(func.sum(case((expression, 1), else_=0)), 0).label(label))
        labels.append((label, group, name))

    for key, (stem, _yes, _no) in BOOLEANS.items():
        value, confidence = getattr(c, stem), getattr(c, f"{stem}_confidence")
        add(f"{stem}_known", value.is_not(None), "known", key)
        add(f"{stem}_true", and_(value == literal(True), confidence >= threshold), "true", key)
        add(f"{stem}_false", and_(value == literal(False), confidence >= threshold), "false", key)
    add("gender_known", c.gender.is_not(None), "known", "Gender")
    for gender in ("Male", "Female"):
        add(f"gender_{gender}", and_(c.gender == literal(gender), c.gender_confidence >= threshold), "gender", gender)
    add("age_known", c.age_mid.is_not(None), "known", "AgeRange")
    for name, lo, hi in (("children", None, 13), ("teenagers", 13, 20), ("adults", 18, None), ("seniors", 65, None)):
        parts = [c.age_mid.is_not(None)]
        if lo is not None:
            parts.append(c.age_mid >= literal(lo))
        if hi is not None:
            parts.append(c.age_mid < literal(hi))
        add(f"age_{name}", and_(*parts), "age", name)
    add("emotion_known", c.emotion.is_not(None), "known", "Emotions")
    for emotion in EMOTIONS:
        add(f"emotion_{emotion}", and_(c.emotion == literal(emotion), c.emotion_confidence >= threshold), "emotion", emotion)

    image_rows = conn.execute(
        select(_images.c.engine, _images.c.status, func.count(), func.coalesce(func.sum(_images.c.face_count), 0))
        .group_by(_images.c.engine, _images.c.status)
    ).all()
    face_rows = []
    for engine in sorted({row[0] for row in image_rows}):
        # one pass per engine over the covering index (the faces' wide rows are never read)
        engine_images = select(_images.c.id).where(_images.c.engine == literal(engine))
        row = conn.execute(select(*columns).where(c.image_id.in_(engine_images))).mappings().one()
        face_rows.append({"engine": engine, **row})

    engines: dict[str, dict[str, Any]] = {}

    def engine_entry(name: str) -> dict[str, Any]:
        return engines.setdefault(
            name,
            {"images": 0, "indexed": 0, "failed": 0, "faces": 0, "attributes": {}, "coverage": {}, "gender": {},
             "age": {}, "emotions": {}},
        )

    for engine, status, n, _faces_n in image_rows:
        entry = engine_entry(engine)
        entry["images"] += int(n)
        if status == IMAGE_INDEXED:
            entry["indexed"] += int(n)
        elif status == IMAGE_FAILED:
            entry["failed"] += int(n)
    for row in face_rows:
        entry = engine_entry(row["engine"])
        entry["faces"] = int(row["faces"])
        for label, group, name in labels:
            value = int(row[label])
            if group == "known":
                entry["coverage"][name] = value
            elif group in ("true", "false"):
                entry["attributes"].setdefault(name, {})[group] = value
            elif group == "gender":
                entry["gender"][name] = value
            elif group == "age":
                entry["age"][name] = value
            elif group == "emotion":
                entry["emotions"][name] = value
    return {
        "images": sum(e["images"] for e in engines.values()),
        "indexed": sum(e["indexed"] for e in engines.values()),
        "failed": sum(e["failed"] for e in engines.values()),
        "faces": sum(e["faces"] for e in engines.values()),
        "min_confidence": min_confidence,
        "engines": dict(sorted(engines.items())),
    }


# -- output --------------------------------------------------------------------------------------

#: Flat CSV columns, one row per matching face.
CSV_COLUMNS = (
    ["uri", "face_id", "confidence", "bbox_left", "bbox_top", "bbox_width", "bbox_height", "age_low", "age_high",
     "gender", "gender_confidence"]
    + [name for stem, _y, _n in BOOLEANS.values() for name in (stem, f"{stem}_confidence")]
    + ["emotion", "emotion_confidence", "pose_roll", "pose_yaw", "pose_pitch", "quality_brightness",
       "quality_sharpness"]
)


def _attr(detail: dict[str, Any], key: str, field_name: str) -> Any:
    value = detail.get(key)
    return value.get(field_name) if isinstance(value, dict) else None


def _top_emotion(detail: dict[str, Any]) -> tuple[str, float] | None:
    best = None
    for emotion in detail.get("Emotions") or []:
        kind, confidence = emotion.get("Type"), emotion.get("Confidence")
        if kind is not None and confidence is not None and (best is None or confidence > best[1]):
            best = (str(kind), float(confidence))
    return best


def flat_face(uri: str, detail: dict[str, Any]) -> dict[str, Any]:
    """One face as flat CSV columns (empty = unknown)."""
    top = _top_emotion(detail)
    row: dict[str, Any] = {
        "uri": uri,
        "face_id": detail.get("face_id"),
        "confidence": detail.get("Confidence"),
        "bbox_left": _attr(detail, "BoundingBox", "Left"),
        "bbox_top": _attr(detail, "BoundingBox", "Top"),
        "bbox_width": _attr(detail, "BoundingBox", "Width"),
        "bbox_height": _attr(detail, "BoundingBox", "Height"),
        "age_low": _attr(detail, "AgeRange", "Low"),
        "age_high": _attr(detail, "AgeRange", "High"),
        "gender": _attr(detail, "Gender", "Value"),
        "gender_confidence": _attr(detail, "Gender", "Confidence"),
        "emotion": top[0] if top else None,
        "emotion_confidence": top[1] if top else None,
        "pose_roll": _attr(detail, "Pose", "Roll"),
        "pose_yaw": _attr(detail, "Pose", "Yaw"),
        "pose_pitch": _attr(detail, "Pose", "Pitch"),
        "quality_brightness": _attr(detail, "Quality", "Brightness"),
        "quality_sharpness": _attr(detail, "Quality", "Sharpness"),
    }
    for key, (stem, _y, _n) in BOOLEANS.items():
        value = _attr(detail, key, "Value")
        row[stem] = None if value is None else str(bool(value)).lower()
        row[f"{stem}_confidence"] = _attr(detail, key, "Confidence")
    return row


def face_summary(detail: dict[str, Any], min_confidence: float = 50.0) -> str:
    """A few words about one face: 'Female 34 smiling eyeglasses HAPPY'."""
    words = []
    gender = detail.get("Gender") or {}
    if gender.get("Value") and (gender.get("Confidence") or 0) >= min_confidence:
        words.append(str(gender["Value"]))
    age = detail.get("AgeRange") or {}
    if age.get("Low") is not None and age.get("High") is not None:
        words.append(f"{age['Low']}-{age['High']}")
    for key, label in (("Smile", "smiling"), ("Eyeglasses", "glasses"), ("Sunglasses", "sunglasses"),
                       ("Beard", "beard"), ("Mustache", "mustache"), ("FaceOccluded", "occluded")):
        attribute = detail.get(key) or {}
        if attribute.get("Value") is True and (attribute.get("Confidence") or 0) >= min_confidence:
            words.append(label)
    eyes = detail.get("EyesOpen") or {}
    if eyes.get("Value") is False and (eyes.get("Confidence") or 0) >= min_confidence:
        words.append("eyes closed")
    top = _top_emotion(detail)
    if top and top[1] >= min_confidence:
        words.append(top[0])
    return " ".join(words) or "-"


def format_matches(matches: Iterable[ImageMatch], fmt: str, out: IO[str], *, min_confidence: float = 50.0) -> None:
    """Write matches as ``table`` | ``json`` (JSON Lines) | ``csv`` (one row per face) | ``uris``."""
    if fmt == "uris":
        for match in matches:
            out.write(match.uri + "\n")
    elif fmt == "json":
        for match in matches:
            out.write(json.dumps(match.as_json(), separators=(",", ":"), ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for match in matches:
            for detail in match.faces:
                writer.writerow(flat_face(match.uri, detail))
    elif fmt == "table":
        rows = [
            (m.uri, f"{len(m.faces)}/{m.face_count}",
             "; ".join(face_summary(d, min_confidence) for d in m.faces[:3]) + (" ..." if len(m.faces) > 3 else ""))
            for m in matches
        ]
        if not rows:
            return
        header = ("URI", "FACES", "SUMMARY")
        width_uri = max(len(header[0]), *(len(r[0]) for r in rows))
        width_faces = max(len(header[1]), *(len(r[1]) for r in rows))
        for uri, faces, summary in [header, *rows]:
            out.write(f"{uri:<{width_uri}}  {faces:>{width_faces}}  {summary}".rstrip() + "\n")
    else:
        from .errors import QueryError

        raise QueryError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def format_count(counts: tuple[int, int], out: IO[str]) -> None:
    """``--count``: the numbers of matching images and faces."""
    images, faces = counts
    out.write(f"{images} images, {faces} faces\n")


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
        for group, title, key in (("gender", "gender", "Gender"), ("age", "age", "AgeRange"),
                                  ("emotions", "top emotion", "Emotions")):
            known = entry["coverage"].get(key, 0)
            parts = ", ".join(f"{name} {n:,}" for name, n in entry[group].items())
            out.write(f"  {title}: {parts} (coverage {known:,}, {pct(known).strip()})\n")

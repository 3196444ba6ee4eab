"""Attribute search over the index: matching images, counts, capability warnings, stats, output.

Every statement is built from :mod:`indexer.query`'s compiled SQLAlchemy expressions, so values
from the query are bound parameters. Search must start fast (a person waits for the whole
command): this module and what it imports never load boto3, PIL, numpy or the engines, and the face
bitsets (:mod:`indexer.bitsets`) only when a count, a ranking or a rare query reads them.

How a page of results is found (``order="uri"``, the default): matching images are walked in URI
order through the unique URI index, each one checked with an ``EXISTS`` probe on the faces'
``(image_id, ...)`` index, but only over a bounded prefix of URIs. A common query ("smiling")
fills its page inside that prefix in a few milliseconds. A rare one ("angry men with mustache")
does not; the rest of its page is then found from the faces side (the attribute indexes find the
few matching faces, their images are sorted by URI), which is cheap precisely because it is rare.
Either way the answer is the same: the first ``limit`` matching images in URI order.

``--like`` (``like=``: face id -> Similarity, found by :mod:`indexer.likeness`) starts from the
other end: the few faces of one person, looked up by primary key, narrowed by the face terms on
those same faces and by the image terms on their images, ranked by their best Similarity (or URI).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from sqlalchemy import case, exists, func, literal, select

from .attributes import AGE, BOOLEANS, EMOTION, GENDER, Category, Range, Searchable
from .output import ORDERS, shown_similarity
from .query import (
    AgeTerm,
    BoolTerm,
    EmotionTerm,
    FaceTerm,
    GenderTerm,
    Query,
    face_condition,
    image_conditions,
    match_confidence,
)
from .store.facedetail import StoredFace
from .store.indexed import SEARCH_INDEX, indexed, search_indexes, wide_source
from .store.models import IMAGE_FAILED, IMAGE_INDEXED, faces_table, images_table

#: Images scanned in URI order before switching to the faces-side plan (see module docstring).
URI_SCAN_BUDGET = 2000
#: Never walk more images than this in URI order (about the cost of one faces-side pass).
URI_SCAN_MAX = 12000
#: Matching faces up to which a page is made from the face bitsets' list of matching images
#: (listing 20,000 costs about 20 ms) instead of SQL trying every face the query might match.
RARE_FACES = 20000
#: Bound parameters per ``IN (...)`` when fetching the faces of a page.
_CHUNK = 500

_faces = faces_table
_images = images_table
#: What a page is made of before its faces are read: (id, uri, face_count, engine).
_PAGE_COLUMNS = (_images.c.id, _images.c.uri, _images.c.face_count, _images.c.engine)

def _faces_source(conn: Any, query: Query, *, probe: bool = False, image_order: bool = False) -> Any:
    """The faces table, or on SQLite an alias forced onto the cheapest covering index.

    One term: its own attribute index (holds value, image id and confidence). Several terms, or a
    probe by image id (``probe``): the covering ``ix_faces_search``. ``image_order``: the faces
    must come in image order, which the age index (a range of values) does not give.
    """
    if conn.dialect.name != "sqlite":
        return _faces
    available = search_indexes(conn)
    if not probe and len(query.face_terms) == 1:
        index = query.face_terms[0].index
        if index in available and not (image_order and index == AGE.index):
            return indexed(index)
    if SEARCH_INDEX in available:
        return indexed(SEARCH_INDEX)
    return _faces


def _face_match(query: Query, faces: Any) -> Any:
    """:func:`face_condition` of a query that has face terms (so never None)."""
    condition = face_condition(query, faces)
    assert condition is not None, "only for queries with face terms"
    return condition


def _faceless(query: Query) -> bool:
    """Face terms asked of images that have no faces ("smiling, no faces"): nothing can match,
    and no index would tell the database so quickly (it would try every face)."""
    return bool(query.face_terms) and any(term.hi == 0 and not term.negated for term in query.image_terms)


#: Below this many images matching the image terms, a count walks those images (see :func:`count`).
FEW_IMAGES = 20000


def _few_images(conn: Any, query: Query) -> bool:
    """Do fewer than :data:`FEW_IMAGES` images match the query's image terms ("12 faces", "faces>10")?

    Counted, not guessed: at most that many entries of the face-count index, a millisecond."""
    matching = select(literal(1)).where(*image_conditions(query, _images)).limit(FEW_IMAGES).subquery()
    return conn.execute(select(func.count()).select_from(matching)).scalar_one() < FEW_IMAGES


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
    #: The matching faces as stored; ``faces`` parses them on first use.
    stored_faces: list[StoredFace] = field(default_factory=list)
    #: Faces stored for the image in all (``faces`` holds only those that matched).
    face_count: int = 0
    engine: str = ""
    #: Best matching face's score with ``order="confidence"`` (its Similarity with ``like``), else None.
    score: float | None = None
    #: With ``like``: each matching face's Similarity to the face searched for, by face id.
    similarities: dict[int, float] | None = None

    @property
    def faces(self) -> list[dict[str, Any]]:
        """The matching FaceDetails plus ``face_id`` (and ``Similarity`` with ``like``)."""
        if self.similarities is None:
            return [face.detail() for face in self.stored_faces]
        return [{**face.detail(), "Similarity": self.similarity_of(face.face_id)} for face in self.stored_faces]

    def similarity_of(self, face_id: int) -> float | None:
        """A matching face's Similarity as written out (rounded), None without ``like``."""
        if self.similarities is None:
            return None
        return shown_similarity(self.similarities[face_id])

    def as_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "faces": self.faces}

    def json_line(self) -> str:
        """``as_json()`` as one compact line, the stored faces spliced in unparsed."""
        uri = json.dumps(self.uri, ensure_ascii=False)
        return f'{{"uri":{uri},"faces":[{",".join(self._face_json(face) for face in self.stored_faces)}]}}'

    def _face_json(self, face: StoredFace) -> str:
        """One face's JSON, ``"Similarity"`` spliced in after ``face_id`` with ``like``."""
        text = face.json()
        if self.similarities is None:
            return text
        return f'{text[:-1]},"Similarity":{json.dumps(self.similarity_of(face.face_id))}}}'


# -- statements ----------------------------------------------------------------------------------


def _image_filter(query: Query, *, face_count: Any = None) -> list[Any]:
    """Indexed images whose face count the image terms accept (``face_count``: an expression of
    the column to compare instead, see :func:`indexer.query.image_conditions`)."""
    return [_images.c.status == literal(IMAGE_INDEXED), *image_conditions(query, _images, face_count=face_count)]


def _page_by_uri(conn: Any, query: Query, limit: int | None) -> list[tuple[int, str, int, str]]:
    """(id, uri, face_count, engine) of the first ``limit`` matching images in URI order.

    1. Walk the images in URI order (the unique URI index, so no sort and an early stop), one
       index probe each, over the first :data:`URI_SCAN_BUDGET` URIs: a common query fills its
       page there in a few milliseconds. If the matches seen so far say the page will be full
       within :data:`URI_SCAN_MAX` images, walk on over just as many as that needs.
    2. Otherwise what is still missing comes from the face bitsets' list of the matching images
       when few faces match (:data:`RARE_FACES`), else from the other side: the faces' covering
       indexes find the images with a matching face (few, since the walk found few), by URI.
    """
    filters = _image_filter(query)
    matching_ids = None
    if query.face_terms:
        source = _faces_source(conn, query)
        matching_ids = select(source.c.image_id).where(_face_match(query, source))

    def rest(after: str | None, n: int | None) -> list[tuple[int, str, int, str]]:
        statement = select(*_PAGE_COLUMNS).where(*filters)
        if query.face_terms and query.image_terms and _few_images(conn, query):
            # few images have the face count asked for ("12 faces"): probe each one's faces
            statement = statement.where(_has_matching_face(conn, query))
        elif matching_ids is not None:
            statement = statement.where(_images.c.id.in_(matching_ids))
        if after is not None:
            statement = statement.where(_images.c.uri > literal(after))
        statement = statement.order_by(_images.c.uri)
        if n is not None:
            statement = statement.limit(n)
        return [tuple(row) for row in conn.execute(statement)]

    if limit is None:
        return rest(None, None)

    walk_filters = _image_filter(query, face_count=_images.c.face_count + literal(0))
    if query.face_terms:
        walk_filters.append(_has_matching_face(conn, query))

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
        walk = select(*_PAGE_COLUMNS).where(*walk_filters)
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
            from . import bitsets

            found = bitsets.image_ids(conn, query, RARE_FACES) if query.face_terms else None
            if found is not None:
                return rows + _first_by_uri(conn, found, after, limit - len(rows))
            return rows + rest(after, limit - len(rows))
        budget = max(int(needed * 1.25), 100)


def _has_matching_face(conn: Any, query: Query) -> Any:
    """The image has a face on which every face term holds: one probe of the faces' covering
    index by image id (for walking images one by one)."""
    probe_faces = _faces_source(conn, query, probe=True)
    return exists().where(probe_faces.c.image_id == _images.c.id, _face_match(query, probe_faces))


def _first_by_uri(conn: Any, image_ids: list[int], after: str | None, n: int) -> list[tuple[int, str, int, str]]:
    """(id, uri, face_count, engine) of the first ``n`` of ``image_ids`` after URI ``after``."""
    rows: list[tuple[int, str, int, str]] = []
    for start in range(0, len(image_ids), _CHUNK):
        statement = select(*_PAGE_COLUMNS).where(_images.c.id.in_(image_ids[start : start + _CHUNK]))
        if after is not None:
            statement = statement.where(_images.c.uri > literal(after))
        rows = sorted([*rows, *(tuple(row) for row in conn.execute(statement.order_by(_images.c.uri).limit(n)))],
                      key=lambda row: row[1])[:n]
    return rows


def _page_by_confidence(conn: Any, query: Query, limit: int | None) -> list[tuple[int, str, int, str, float | None]]:
    """Images ranked by their best matching face: the weakest confidence among the query's
    attribute terms for that face (detection confidence when the query names none), then URI.

    With a limit, the face bitsets name the few images that may hold the page (all the matches
    when few, else those whose confidence levels reach the highest cut-off that ``limit`` images
    surely pass: :func:`indexer.bitsets.best_image_ids`) and only those are ranked. Without
    usable bitsets, a query with face terms looks among the ``2 * limit`` best scored images
    first; only when ties or the image terms leave that short is every matching image ranked.
    """
    source = _faces_source(conn, query) if query.face_terms else _faces
    confidences = match_confidence(query, source)
    if not confidences:
        # ranked by detection confidence, which only the covering ix_faces_search also holds
        source = wide_source(conn)
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
    if limit is not None and not query.face_terms and _no_matching_faces(conn, query):
        # "no faces": every matching image ranks unscored, so in URI order
        return [(*row, None) for row in _page_by_uri(conn, query, limit)]
    if limit is not None:
        from . import bitsets

        best = bitsets.best_image_ids(conn, query, limit, RARE_FACES)
        if best is not None:  # rank only the images the bitsets say may be best (few, or the top levels')
            ranked = _ranked(conn, query, per_image.where(_in_ids(conn, source.c.image_id, best)), limit, candidates=best)
            # without face terms a faceless image matches too, unscored: the scored candidates
            # hold the page only when they fill it with scores
            if query.face_terms or (len(ranked) == limit and _score_rank(ranked[-1][4]) > _NO_SCORE):
                return ranked
    if limit is not None and query.face_terms:
        page = _page_among_best(conn, query, source, per_image, limit)
        if page is not None:
            return page
    return _ranked(conn, query, per_image, limit)


def _no_matching_faces(conn: Any, query: Query) -> bool:
    """Whether the bitsets say that no image ``query`` matches has a face."""
    from . import bitsets

    counted = bitsets.count(conn, query)
    return counted is not None and counted[1] == 0


def _in_ids(conn: Any, column: Any, ids: list[int]) -> Any:
    """``column`` is one of ``ids`` (thousands of them), as each database takes a long list best:
    on PostgreSQL one array parameter (binding each id as a parameter of its own cost 2-3 times
    the query), on SQLite a list of parameters (under its limit: at most search's RARE_FACES)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy import BigInteger, any_, bindparam
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == any_(bindparam(None, ids, type_=ARRAY(BigInteger)))
    return column.in_(ids)


def _ranked(
    conn: Any, query: Query, per_image: Any, limit: int | None, *, candidates: list[int] | None = None
) -> list[tuple[int, str, int, str, float | None]]:
    """The matching images joined to their best score (``per_image``), ranked by score, then URI.
    Without face terms every image matches, a faceless one last, unless ``candidates`` (the ids
    of scored images known to hold the page: then only those images are read, by primary key)."""
    scores = per_image.subquery("scores")
    columns = (*_PAGE_COLUMNS, scores.c.score)
    if candidates is not None:
        statement = select(*columns).join_from(_images, scores, scores.c.image_id == _images.c.id)
        if conn.dialect.name == "postgresql":
            # PostgreSQL's planner does not carry the candidates through the join and reads every
            # image row (130 ms at 400k images); SQLite already looks the images up by key (and a
            # second list of ids could pass its limit of 32,766 parameters)
            statement = statement.where(_in_ids(conn, _images.c.id, candidates))
    elif query.face_terms:
        statement = select(*columns).join_from(_images, scores, scores.c.image_id == _images.c.id)
    else:
        statement = select(*columns).outerjoin_from(_images, scores, scores.c.image_id == _images.c.id)
    statement = statement.where(*_image_filter(query)).order_by(_rank(scores.c.score).desc(), _images.c.uri)
    if limit is not None:
        statement = statement.limit(limit)
    return [tuple(row) for row in conn.execute(statement)]


def _page_among_best(
    conn: Any, query: Query, source: Any, per_image: Any, limit: int
) -> list[tuple[int, str, int, str, float | None]] | None:
    """The page ranked among the ``2 * limit`` best scored images, or None when that cannot be
    sure: every image left out scores at most the last candidate's score, so the page is right
    when ``limit`` candidates pass the image filter and the last of them scores more than that."""
    scores = per_image.subquery("scores")
    rank = _rank(scores.c.score)
    best = conn.execute(select(scores.c.image_id, rank).order_by(rank.desc()).limit(2 * limit)).all()
    complete = len(best) < 2 * limit  # every matching image is a candidate
    candidates = per_image.where(source.c.image_id.in_([image_id for image_id, _score in best]))
    page = _ranked(conn, query, candidates, limit)
    if complete or (len(page) == limit and _score_rank(page[-1][4]) > best[-1][1]):
        return page
    return None


#: The rank of an image without a score: below every confidence (0-100).
_NO_SCORE = -1.0


def _rank(score: Any) -> Any:
    """What images are ranked by: the score, an image without one (no faces, or no detection
    confidence stored) last. The same order on SQLite and PostgreSQL, whose NULLs sort apart."""
    return func.coalesce(score, literal(_NO_SCORE))


def _score_rank(score: float | None) -> float:
    """:func:`_rank` of a score read back."""
    return _NO_SCORE if score is None else score


def _faces_of(conn: Any, query: Query, image_ids: list[int]) -> dict[int, list[StoredFace]]:
    """The matching faces (all faces without face terms) of ``image_ids``, in face order."""
    out: dict[int, list[StoredFace]] = {image_id: [] for image_id in image_ids}
    condition = face_condition(query, _faces)
    for start in range(0, len(image_ids), _CHUNK):
        chunk = image_ids[start : start + _CHUNK]
        statement = select(_faces.c.id, _faces.c.image_id, _faces.c.raw).where(_faces.c.image_id.in_(chunk))
        if condition is not None:
            statement = statement.where(condition)
        for face_id, image_id, raw in conn.execute(statement.order_by(_faces.c.image_id, _faces.c.face_index)):
            out[image_id].append(StoredFace(face_id, raw))
    return out


# -- like: the faces of one person ---------------------------------------------------------------

#: (id, uri, face_count, engine) of an image, and the ids of its faces that match.
_Liked = dict[int, tuple[tuple[int, str, int, str], list[int]]]


def _liked(conn: Any, query: Query, like: Mapping[int, float]) -> _Liked:
    """The indexed images whose image terms hold and that have a face of ``like`` on which every
    face term holds, each with those faces' ids. The faces are looked up by primary key, a chunk
    of ids at a time: one person's faces are few, whatever the size of the index."""
    condition = face_condition(query, _faces)
    ids = sorted(like)
    found: _Liked = {}
    for start in range(0, len(ids), _CHUNK):
        statement = (
            select(_faces.c.id, *_PAGE_COLUMNS)
            .join_from(_faces, _images, _images.c.id == _faces.c.image_id)
            .where(_faces.c.id.in_(ids[start : start + _CHUNK]), *_image_filter(query))
        )
        if condition is not None:
            statement = statement.where(condition)
        for face_id, image_id, uri, face_count, engine in conn.execute(statement):
            found.setdefault(image_id, ((image_id, uri, face_count, engine), []))[1].append(face_id)
    return found


def _liked_page(
    found: _Liked, like: Mapping[int, float], order: str, limit: int | None
) -> list[tuple[tuple[int, str, int, str], list[int], float]]:
    """The page: (image row, matching face ids, best Similarity), best Similarity first then URI
    (``order="confidence"``), or by URI."""
    rows = [(row, face_ids, max(like[face_id] for face_id in face_ids)) for row, face_ids in found.values()]
    if order == "confidence":
        rows.sort(key=lambda entry: (-entry[2], entry[0][1]))
    else:
        rows.sort(key=lambda entry: entry[0][1])
    return rows if limit is None else rows[:limit]


def _faces_by_id(conn: Any, face_ids: list[int]) -> dict[int, list[StoredFace]]:
    """The stored faces ``face_ids``, by image id, in face order."""
    out: dict[int, list[StoredFace]] = {}
    ids = sorted(face_ids)
    for start in range(0, len(ids), _CHUNK):
        statement = (
            select(_faces.c.id, _faces.c.image_id, _faces.c.raw)
            .where(_faces.c.id.in_(ids[start : start + _CHUNK]))
            .order_by(_faces.c.image_id, _faces.c.face_index)
        )
        for face_id, image_id, raw in conn.execute(statement):
            out.setdefault(image_id, []).append(StoredFace(face_id, raw))
    return out


def _search_liked(
    conn: Any, query: Query, like: Mapping[int, float], *, limit: int | None, order: str, with_faces: bool
) -> list[ImageMatch]:
    page = _liked_page(_liked(conn, query, like), like, order, limit)
    faces = _faces_by_id(conn, [face_id for _row, face_ids, _best in page for face_id in face_ids]) if with_faces else {}
    return [
        ImageMatch(
            uri=uri,
            stored_faces=faces.get(image_id, []),
            face_count=face_count,
            engine=engine,
            score=best,
            similarities={face_id: like[face_id] for face_id in face_ids},
        )
        for (image_id, uri, face_count, engine), face_ids, best in page
    ]


# -- public API ----------------------------------------------------------------------------------


def search(
    store: Any,
    query: Query,
    *,
    limit: int | None = None,
    order: str = "uri",
    with_faces: bool = True,
    like: Mapping[int, float] | None = None,
) -> list[ImageMatch]:
    """Images matching ``query``: those with at least one face on which every face term holds
    (any image when there are none) and whose image terms hold. Each match carries only its
    matching faces (all of its faces when the query has no face terms). Ordered by URI, or with
    ``order="confidence"`` by the best matching face's weakest term confidence (then URI).
    ``with_faces=False`` leaves ``faces`` empty (``--format uris`` needs no FaceDetails).

    ``like`` (face id -> Similarity): only those faces can match, the face terms holding on them;
    each match carries its matching faces' Similarity, and ``order="confidence"`` ranks by the best."""
    if order not in ORDERS:
        from .errors import QueryError

        raise QueryError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}")
    if limit is not None and limit < 0:
        from .errors import QueryError

        raise QueryError(f"--limit must be 0 or more, not {limit}")
    if limit == 0 or _faceless(query) or (like is not None and not like):
        return []
    with store.engine.connect() as conn:
        _tune(conn, query)
        if like is not None:
            return _search_liked(conn, query, like, limit=limit, order=order, with_faces=with_faces)
        if order == "confidence":
            page = _page_by_confidence(conn, query, limit)
        else:
            page = [(*row, None) for row in _page_by_uri(conn, query, limit)]
        faces = _faces_of(conn, query, [row[0] for row in page]) if with_faces else {row[0]: [] for row in page}
    return [
        ImageMatch(uri=uri, stored_faces=faces[image_id], face_count=face_count, engine=engine, score=score)
        for image_id, uri, face_count, engine, score in page
    ]


def count(store: Any, query: Query, *, like: Mapping[int, float] | None = None) -> tuple[int, int]:
    """(matching images, matching faces). Without face terms, every face of a matching image counts;
    with ``like``, only those faces can match (see :func:`search`)."""
    if _faceless(query) or (like is not None and not like):
        return 0, 0
    with store.engine.connect() as conn:
        _tune(conn, query)
        if like is not None:
            found = _liked(conn, query, like)
            return len(found), sum(len(face_ids) for _row, face_ids in found.values())
        if not query.face_terms:
            statement = select(func.count(), func.coalesce(func.sum(_images.c.face_count), 0)).where(
                *_image_filter(query)
            )
            images, faces = conn.execute(statement).one()
            return int(images), int(faces)
        from . import bitsets

        counted = bitsets.count(conn, query)
        if counted is not None:
            return counted
        # both plans with image terms go by image id: a probe per image, or a lookup per face
        # that goes along the images' pages only when the faces come in image order
        source = _faces_source(conn, query, image_order=bool(query.image_terms))
        statement = select(func.count(source.c.image_id.distinct()), func.count()).where(_face_match(query, source))
        if query.image_terms and _few_images(conn, query):
            # few images: walk them (in id order) and probe each one's faces by image id
            statement = statement.where(source.c.image_id.in_(select(_images.c.id).where(*_image_filter(query))))
        elif query.image_terms:
            # walk the matching faces and look each one's image up by primary key: cheaper than
            # probing a list of the images (``IN``), and ``face_count + 0`` keeps the planner on
            # this side (not walking every image of the face-count index and probing its faces)
            statement = statement.join_from(source, _images, _images.c.id == source.c.image_id).where(
                *_image_filter(query, face_count=_images.c.face_count + literal(0))
            )
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
    with store.engine.connect() as conn:
        _tune(conn)
        return _stats(conn, wide_source(conn), float(min_confidence))


def _counted(c: Any, threshold: float) -> list[tuple[tuple[str, ...], Any]]:
    """What stats counts for an engine: where each count goes in its entry (a path of keys), and
    the condition a face counted there meets. The attributes' own query terms say what holds."""

    def known(attribute: Searchable) -> tuple[tuple[str, ...], Any]:
        return ("coverage", attribute.key), c[attribute.column].is_not(None)

    counted = []
    for boolean in BOOLEANS:
        counted.append(known(boolean))
        counted += [
            (("attributes", boolean.key, str(value).lower()), BoolTerm(boolean.key, value).condition(c, threshold))
            for value in (True, False)
        ]
    by_value: list[tuple[Category | Range, dict[str, FaceTerm]]] = [
        (GENDER, {value: GenderTerm(value) for value in GENDER.value_words}),
        (AGE, {group.name: AgeTerm.of(group) for group in AGE.groups}),
        (EMOTION, {value: EmotionTerm(value) for value in EMOTION.value_words}),
    ]
    for attribute, terms in by_value:
        counted.append(known(attribute))
        counted += [((attribute.group, name), term.condition(c, threshold)) for name, term in terms.items()]
    return counted


def _stats(conn: Any, source: Any, min_confidence: float) -> dict[str, Any]:
    counted = _counted(source.c, min_confidence)
    columns = [func.count(), *[func.coalesce(func.sum(case((condition, 1), else_=0)), 0) for _path, condition in counted]]
    image_rows = conn.execute(
        select(_images.c.engine, _images.c.status, func.count()).group_by(_images.c.engine, _images.c.status)
    ).all()
    engines: dict[str, dict[str, Any]] = {}
    for engine, status, n in image_rows:
        entry = engines.setdefault(engine, {"images": 0, "indexed": 0, "failed": 0, "faces": 0, "attributes": {}, "coverage": {}})
        entry["images"] += int(n)
        if status == IMAGE_INDEXED:
            entry["indexed"] += int(n)
        elif status == IMAGE_FAILED:
            entry["failed"] += int(n)
    for engine, entry in engines.items():
        # one pass per engine over the covering index (the faces' wide rows are never read)
        engine_images = select(_images.c.id).where(_images.c.engine == literal(engine))
        faces, *counts = conn.execute(select(*columns).where(source.c.image_id.in_(engine_images))).one()
        entry["faces"] = int(faces)
        for (path, _condition), n in zip(counted, counts):
            *groups, name = path
            target = entry
            for group in groups:
                target = target.setdefault(group, {})
            target[name] = int(n)
    return {
        "images": sum(e["images"] for e in engines.values()),
        "indexed": sum(e["indexed"] for e in engines.values()),
        "failed": sum(e["failed"] for e in engines.values()),
        "faces": sum(e["faces"] for e in engines.values()),
        "min_confidence": min_confidence,
        "engines": dict(sorted(engines.items())),
    }

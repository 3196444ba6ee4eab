"""Which faces of the index are the person of a given face (``indexer search --like``).

``--like`` names a face: the *largest* face of a photo on disk (``--like me.jpg``, the one a
person means when they hand over a picture of themselves), or a stored face
(``--like face:1234``, the ``face_id`` of ``indexer show`` and ``--format json``). What comes
back is every face of the index at or above a Similarity threshold (0-100, Rekognition's scale,
80 by default), as ``{face id: Similarity}``; :func:`indexer.search.search` then narrows those
faces by the query's terms and makes the page.

Two ways to know who a face is, one per engine:

* **offline** (the default): the index stores a descriptor per face, made at index time by the
  offline engine (:mod:`indexer.engines.local.embedding`), so a search re-analyses nothing of the
  index: only the photo given is analysed (in this process), and the stored descriptors of the
  same model are scanned chunk by chunk (numpy, ~25 MB a chunk), each distance mapped to a
  Similarity by :func:`~indexer.engines.local.embedding.similarity`. A stored face is its own
  descriptor. Faces without one (an older index, images analysed by Rekognition) cannot match:
  a warning says how many.
* **Rekognition** (``--collection NAME``, faces indexed with ``index --collection NAME``):
  SearchFacesByImage for a photo, SearchFaces for a stored face's FaceId, with
  ``FaceMatchThreshold`` = the threshold and the largest ``MaxFaces`` (4096); the FaceIds that
  come back are mapped to stored faces by the store. SearchFaces never returns the face searched
  for, so a stored face is added with Similarity 100, as the offline path has it.

Only the ``--like`` path imports this module: it loads numpy and the engines, which a plain
search never does (tests/test_startup.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .core import Analysis, ImageRef, largest_face
from .engines.local import embedding
from .errors import FatalError, ImageError, QueryError

if TYPE_CHECKING:
    from .engines.rekognition import RekognitionEngine
    from .store.repository import Store

#: How ``--like`` names a stored face: ``face:1234``.
FACE_PREFIX = "face:"
#: The Similarity a face must reach when ``--threshold`` is not given: Rekognition's own default
#: for SearchFaces and SearchFacesByImage, which the offline Similarity is calibrated to mean.
DEFAULT_THRESHOLD = embedding.REKOGNITION_DEFAULT_THRESHOLD
#: A stored face searched for is the same face as itself.
SELF_SIMILARITY = 100.0
#: Rekognition's largest ``MaxFaces`` for the searches (botocore's model: ``max: 4096``).
MAX_COLLECTION_MATCHES = 4096


@dataclass(frozen=True)
class LikeTarget:
    """The face ``--like`` names: the largest face of ``photo``, or the stored face ``face_id``."""

    photo: Path | None = None
    face_id: int | None = None

    def describe(self) -> str:
        return f"face {self.face_id}" if self.face_id is not None else f"the largest face in {self.photo}"


@dataclass
class Likeness:
    """The faces like a target: face id -> Similarity (all at or above the threshold)."""

    similarities: dict[int, float]
    threshold: float
    #: How they were found, for ``--explain``.
    method: str
    warnings: list[str] = field(default_factory=list)


def parse_target(value: str) -> LikeTarget:
    """``--like``'s value: ``face:ID``, or a photo that must exist (checked before any database
    or engine is opened, so a typo costs nothing)."""
    text = value.strip()
    if text.lower().startswith(FACE_PREFIX):
        number = text[len(FACE_PREFIX):].strip()
        if not number.isdigit() or not number.isascii():
            raise QueryError(f"--like {value!r}: a stored face is face:ID, ID a face_id from `indexer show` (e.g. face:1234)")
        return LikeTarget(face_id=int(number))
    if not text:
        raise QueryError("--like needs a photo (a file) or face:ID")
    photo = Path(text).expanduser()
    if not photo.is_file():
        raise QueryError(f"--like: no such photo: {value}" if not photo.exists() else f"--like: not a file: {value}")
    return LikeTarget(photo=photo)


def check_threshold(value: float | None) -> float:
    """The Similarity threshold, :data:`DEFAULT_THRESHOLD` when not given; 0-100 or a usage error."""
    if value is None:
        return DEFAULT_THRESHOLD
    threshold = float(value)
    if not 0.0 <= threshold <= 100.0:  # also refuses NaN
        raise QueryError(f"--threshold must be from 0 to 100, not {value:g}")
    return threshold


# -- offline: the stored descriptors ----------------------------------------------------------


def offline(store: "Store", target: LikeTarget, threshold: float, *, models_dir: Path | None = None) -> Likeness:
    """The faces whose stored descriptor is within ``threshold`` of the target's."""
    if target.face_id is not None:
        stored = store.descriptor_of(target.face_id)
        if stored is None:
            raise FatalError(_why_no_descriptor(store, target.face_id))
        model, vector = stored
    else:
        assert target.photo is not None
        model, vector = photo_descriptor(target.photo, models_dir=models_dir)
    similarities, scanned = scan(store, model, vector, threshold)
    if target.face_id is not None:
        similarities[target.face_id] = SELF_SIMILARITY
    warnings = []
    missing = _face_total(store) - scanned
    if missing > 0:
        warnings.append(
            f"warning: {_faces(missing)} no descriptor, so --like never finds them: run `indexer index` again to add "
            f"them (faces indexed by Rekognition: `indexer index --collection NAME`, then `search --collection NAME`)"
        )
    return Likeness(similarities, threshold, f"offline descriptors ({model})", warnings)


def scan(store: "Store", model: str, vector: bytes, threshold: float) -> tuple[dict[int, float], int]:
    """({face id: Similarity} of the stored descriptors of ``model`` at or above ``threshold``,
    how many descriptors were compared), one chunk of descriptors in memory at a time."""
    query = embedding.from_bytes(vector)[0]
    reach = _prefilter_distance(threshold)
    found: dict[int, float] = {}
    scanned = 0
    for ids, blob in store.descriptors(model):
        matrix = embedding.from_bytes(blob)
        near = _near(query, matrix, reach)
        similarities = embedding.similarity(embedding.distances(query, matrix[near]))
        keep = similarities >= threshold
        found.update(zip(np.asarray(ids, dtype=np.int64)[near][keep].tolist(), similarities[keep].tolist()))
        scanned += len(ids)
    return found, scanned


#: Added to the pre-filter's distance so that float32's rounding never drops a face the exact
#: (float64) Similarity keeps: float32 distances of descriptors this size are off by ~1e-6.
_PREFILTER_MARGIN = 1e-3


def _prefilter_distance(threshold: float) -> float | None:
    """The largest distance whose Similarity can reach ``threshold`` (plus a margin); None when
    every face does (threshold 0)."""
    if threshold <= 0.0:
        return None
    return embedding.distance_for(min(threshold, 100.0 - 1e-9)) + _PREFILTER_MARGIN


def _near(query: np.ndarray, matrix: np.ndarray, reach: float | None) -> np.ndarray:
    """Indices of the rows of ``matrix`` within ``reach`` of ``query``, in float32: a tenth of
    the float64 distances' time, which then run only on the few rows this keeps."""
    if reach is None:
        return np.arange(len(matrix))
    diff = matrix - query
    return np.flatnonzero(np.einsum("ij,ij->i", diff, diff) <= reach * reach)


def photo_descriptor(photo: Path, *, models_dir: Path | None = None) -> tuple[str, bytes]:
    """(model, vector) of the largest face of ``photo``, analysed by the offline engine here, in
    this process (one photo: a pool of workers would cost more than it saves)."""
    from .engines.local import LocalEngine

    with LocalEngine(workers=0, models_dir=models_dir, progress=None) as engine:
        try:
            analysis = engine.analyze(*_photo_input(photo))
        except ImageError as exc:
            raise FatalError(f"--like {photo}: not a usable photo: {exc.message}") from None
    largest = _largest_face(analysis, photo)
    if analysis.descriptors is None:
        raise FatalError(f"--like {photo}: the offline engine made no face descriptor (models too old?)")
    return analysis.descriptors.model, analysis.descriptors.vectors[largest]


def _largest_face(analysis: Analysis, photo: Path) -> int:
    """The index of the largest face of the photo's analysis; a photo without one is an error."""
    if not analysis.face_details:
        raise FatalError(f"--like {photo}: no face in the photo")
    return largest_face(analysis.face_details)


def _photo_input(photo: Path) -> tuple[ImageRef, Any]:
    """The photo as an engine takes it; a file it cannot read is one line naming it."""
    try:
        data = photo.read_bytes()
    except OSError as exc:
        raise FatalError(f"--like: cannot read {photo}: {exc.strerror or exc}") from None
    return ImageRef(uri=str(photo), size=len(data), fingerprint="", path=str(photo)), lambda: data


def _face_row(store: "Store", face_id: int) -> tuple[str, str] | None:
    """(engine, image URI) of a stored face, None when the index has no such face."""
    from sqlalchemy import select

    from .store.models import faces_table, images_table

    with store.engine.connect() as conn:
        row = conn.execute(
            select(images_table.c.engine, images_table.c.uri)
            .join_from(faces_table, images_table, images_table.c.id == faces_table.c.image_id)
            .where(faces_table.c.id == face_id)
        ).one_or_none()
    return None if row is None else (row[0], row[1])


def _no_such_face(face_id: int) -> FatalError:
    return FatalError(f"--like face:{face_id}: no such face in the index (face IDs are the face_id of `indexer show`)")


def _why_no_descriptor(store: "Store", face_id: int) -> str:
    """Why a stored face has no descriptor to search with, and what to do."""
    row = _face_row(store, face_id)
    if row is None:
        raise _no_such_face(face_id)
    engine, uri = row
    in_collection = store.collection_face(face_id)
    if in_collection is not None:
        return (
            f"--like face:{face_id}: the face (in {uri}) has no offline descriptor; it is in the face collection "
            f"{in_collection[0]!r}: add --collection {in_collection[0]}"
        )
    return (
        f"--like face:{face_id}: the face (in {uri}, engine {engine}) has no descriptor: re-index its image with "
        f"the offline engine (`indexer index`), or with `--collection NAME` and search with --collection NAME"
    )


def _face_total(store: "Store") -> int:
    """Faces in the index (each may have a descriptor)."""
    from sqlalchemy import func, select

    from .store.models import faces_table

    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(faces_table)).scalar_one())


def _faces(n: int, verb: str = "have") -> str:
    """``12 faces have`` / ``1 face has`` (``verb``: ``have`` or ``are``)."""
    singular = {"have": "has", "are": "is"}[verb]
    return f"{n:,} face {singular}" if n == 1 else f"{n:,} faces {verb}"


# -- Rekognition: a face collection -----------------------------------------------------------


def in_collection(store: "Store", engine: "RekognitionEngine", collection: str, target: LikeTarget, threshold: float) -> Likeness:
    """The stored faces Rekognition finds like the target in ``collection`` (SearchFacesByImage
    for a photo, SearchFaces for a stored face's FaceId), mapped back to face ids."""
    from .engines.rekognition import faces as rekognition

    rekognition.check_collection_id(collection)
    own: dict[int, float] = {}
    if target.face_id is not None:
        face_id = _collection_face_id(store, collection, target.face_id)
        found = rekognition.search_faces(
            engine.client, collection, face_id, threshold=threshold, max_faces=MAX_COLLECTION_MATCHES, caller=engine.caller
        )
        own[target.face_id] = SELF_SIMILARITY
    else:
        assert target.photo is not None
        ref, read = _photo_input(target.photo)
        try:
            found = rekognition.search_faces_by_image(
                engine, collection, ref, read, threshold=threshold, max_faces=MAX_COLLECTION_MATCHES
            )
        except rekognition.NoFaceError:
            raise FatalError(f"--like {target.photo}: no face in the photo") from None
        except ImageError as exc:
            raise FatalError(f"--like {target.photo}: {exc}") from None
    stored = store.faces_in_collection(collection, [match.face_id for match in found.matches])
    similarities: dict[int, float] = {}
    for match in found.matches:
        face = stored.get(match.face_id)
        if face is not None and match.similarity > similarities.get(face, -1.0):
            similarities[face] = match.similarity
    similarities.update(own)
    warnings = []
    missing = _face_total(store) - _collection_total(store, collection)
    if missing > 0:
        warnings.append(
            f"warning: {_faces(missing, 'are')} not in the face collection {collection!r}, so --like never finds them: "
            f"index their images with `indexer index --collection {collection}`"
        )
    return Likeness(similarities, threshold, f"Rekognition face collection {collection!r}", warnings)


def _collection_total(store: "Store", collection: str) -> int:
    """Stored faces that have a FaceId in ``collection``."""
    from sqlalchemy import func, select

    from .store.models import collection_faces_table

    with store.engine.connect() as conn:
        statement = select(func.count()).where(collection_faces_table.c.collection == collection)
        return int(conn.execute(statement).scalar_one())


def _collection_face_id(store: "Store", collection: str, face_id: int) -> str:
    """The FaceId of stored face ``face_id`` in ``collection``, or one line saying why there is none."""
    where = store.collection_face(face_id)
    if where is None:
        if _face_row(store, face_id) is None:
            raise _no_such_face(face_id)
        hint = (
            "it has an offline descriptor: search without --collection"
            if store.descriptor_of(face_id) is not None
            else f"index its image with `indexer index --collection {collection}`"
        )
        raise FatalError(f"--like face:{face_id}: the face is not in the face collection {collection!r}: {hint}")
    name, rekognition_face_id = where
    if name != collection:
        raise FatalError(f"--like face:{face_id}: the face is in the face collection {name!r}, not {collection!r}")
    return rekognition_face_id

"""The writes and reads on the index: runs, batched image results, fingerprint look-ups, prune.

Writes are batched (one transaction for many images) and each image's faces are replaced in
the same transaction that updates its row, so a reader or a crash never sees an image with
half of its faces, or faces of two different analyses.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

from sqlalchemy import Engine, Row, delete, insert, select, tuple_, update
from sqlalchemy.exc import SQLAlchemyError

from ..core import Analysis, CollectionFaces, ImageRef, RunCounters
from ..errors import ImageError
from .db import check_reachable, create_db_engine
from .facedetail import emotion_rows, face_columns, stored_detail
from .models import (
    FACES_VERSION,
    IMAGE_FAILED,
    IMAGE_INDEXED,
    RUN_RUNNING,
    collection_deletions_table,
    collection_faces_table,
    emotions_table,
    engines_table,
    face_descriptors_table,
    faces_table,
    images_table,
    runs_table,
    versions_table,
)

#: The tables' columns, read often enough to deserve short names.
_runs = runs_table.c
_images = images_table.c
_faces = faces_table.c
_emotions = emotions_table.c
_engines = engines_table.c
_versions = versions_table.c
_descriptors = face_descriptors_table.c
_collection_faces = collection_faces_table.c
_deletions = collection_deletions_table.c

#: Bound parameters per IN (...) look-up: well under SQLite's 32k limit, one round trip each.
LOOKUP_BATCH = 2000


def _faces_changed(conn: Any) -> None:
    """Count one more version of the faces, last in the transaction that changed them: what is
    derived from the faces (:mod:`indexer.bitsets`) then knows it is out of date. Last, because
    on PostgreSQL the row stays locked until the commit, and concurrent writers queue only there."""
    conn.execute(update(versions_table).where(_versions.name == FACES_VERSION).values(version=_versions.version + 1))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class KnownImage(NamedTuple):
    """What the index already holds about a URI: enough to decide whether it needs work."""

    fingerprint: str
    engine: str
    status: str
    retryable: bool | None
    #: The model set that analysed it (``local@2``); None reads as the engine's name (unversioned).
    model_set: str | None = None
    #: The Rekognition collection its faces were indexed into, None when none.
    collection: str | None = None


class ImageOutcome(NamedTuple):
    """One image's result, ready to be written: either an analysis or an error."""

    ref: ImageRef
    engine: str
    analysis: Analysis | None = None
    error: ImageError | None = None
    #: The engine's model set (``Capabilities.model_set``); None means the engine's name.
    model_set: str | None = None

    @property
    def face_count(self) -> int:
        return len(self.analysis.face_details) if self.analysis else 0


def _dialect_insert(conn: Any) -> Any:
    """The database's own INSERT, which has ON CONFLICT; PostgreSQL's dialect module is imported
    only when that is the database (it is not cheap, and a search on SQLite never needs it)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _delete_faces(conn: Any, which: Any) -> None:
    """Delete the faces ``which`` selects (a condition on the faces table) and what hangs off them.

    Explicit rather than through ``ON DELETE CASCADE``: one statement per table over an indexed
    ``face_id IN (...)``, the same on both databases, whatever the connection's pragmas."""
    face_ids = select(_faces.id).where(which)
    for table, column in (
        (emotions_table, _emotions.face_id),
        (face_descriptors_table, _descriptors.face_id),
        (collection_faces_table, _collection_faces.face_id),
    ):
        conn.execute(delete(table).where(column.in_(face_ids)))
    conn.execute(delete(faces_table).where(which))


def _collection_faces_of(conn: Any, which: Any) -> list[tuple[str, str]]:
    """(collection, FaceId) of the faces ``which`` selects."""
    statement = select(_collection_faces.collection, _collection_faces.rekognition_face_id).where(
        _collection_faces.face_id.in_(select(_faces.id).where(which))
    )
    return [(collection, face_id) for collection, face_id in conn.execute(statement)]


def _queue_deletions(conn: Any, gone: Iterable[tuple[str, str]]) -> None:
    """Queue FaceIds no stored face has any more, to be deleted from their collections."""
    rows = [{"collection": c, "rekognition_face_id": f, "queued_at": utcnow()} for c, f in gone]
    if rows:
        statement = _dialect_insert(conn)(collection_deletions_table)
        conn.execute(statement.on_conflict_do_nothing(index_elements=[_deletions.collection, _deletions.rekognition_face_id]), rows)


def _replace_collection_faces(conn: Any, image_id: int, new: CollectionFaces | None) -> None:
    """Before an image's faces are replaced: queue the FaceIds it had and no longer has, and
    unqueue the ones it has again (IndexFaces of the same image under the same ExternalImageId
    returns the same FaceIds, which must then stay in the collection)."""
    kept = {(new.collection, face_id) for face_id in new.face_ids if face_id} if new else set()
    old = _collection_faces_of(conn, _faces.image_id == image_id)
    _queue_deletions(conn, [pair for pair in old if pair not in kept])
    if kept:
        conn.execute(
            delete(collection_deletions_table).where(
                tuple_(_deletions.collection, _deletions.rekognition_face_id).in_(sorted(kept))
            )
        )


def _insert_identities(conn: Any, face_ids: Sequence[int], analysis: Analysis) -> None:
    """The faces' descriptors and collection FaceIds, each beside its stored face."""
    descriptors, indexed = analysis.descriptors, analysis.collection_faces
    if descriptors is not None:
        _check_aligned("descriptors", descriptors.vectors, face_ids)
        rows = [{"face_id": f, "model": descriptors.model, "vector": v} for f, v in zip(face_ids, descriptors.vectors)]
        if rows:
            conn.execute(insert(face_descriptors_table), rows)
    if indexed is not None:
        _check_aligned("FaceIds", indexed.face_ids, face_ids)
        rows = [
            {"collection": indexed.collection, "rekognition_face_id": r, "face_id": f}
            for f, r in zip(face_ids, indexed.face_ids)
            if r
        ]
        if rows:
            conn.execute(insert(collection_faces_table), rows)


class Misaligned(Exception):
    """An engine gave a different number of descriptors or FaceIds than faces."""


def _check_aligned(what: str, values: Sequence[Any], face_ids: Sequence[int]) -> None:
    """An engine must give one of ``what`` per face: a mismatch would tie a vector or a FaceId to
    the wrong face, so the image is not written (``Store.write`` records it as failed)."""
    if len(values) != len(face_ids):
        raise Misaligned(f"the engine gave {len(values)} {what} for {len(face_ids)} faces")


class Store:
    """The index database. Thread-safe: every method takes its own connection from the pool."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, pool_size: int = 5, check: bool = True) -> "Store":
        """Connect (a one-line FatalError if unreachable) and bring the schema to head.
        ``check=False`` leaves the check to the caller's first statement (see ``api.open_index``)."""
        engine = create_db_engine(url, pool_size=pool_size)
        if check or migrate:
            check_reachable(engine)
        if migrate:
            from .migrate import upgrade  # alembic is imported only when a migration may run

            upgrade(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- runs -------------------------------------------------------------------------------

    def begin_run(self, source: str, engine: str, *, job_id: str | None = None, shard: str | None = None) -> int:
        """Record a new run; ``job_id`` and ``shard`` (``I/N``) name a sharded job's copy."""
        now = utcnow()
        with self.engine.begin() as conn:
            return conn.execute(
                insert(runs_table)
                .values(
                    source=source,
                    engine=engine,
                    status=RUN_RUNNING,
                    started_at=now,
                    heartbeat_at=now,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    job_id=job_id,
                    shard=shard,
                    **RunCounters().counters(),
                )
                .returning(_runs.id)
            ).scalar_one()

    def update_run(self, run_id: int, counters: RunCounters) -> None:
        """Record progress and prove the run is alive (the heartbeat)."""
        with self.engine.begin() as conn:
            conn.execute(update(runs_table).where(_runs.id == run_id).values(heartbeat_at=utcnow(), **counters.counters()))

    def finish_run(self, run_id: int, status: str, counters: RunCounters, error: str | None = None) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                update(runs_table)
                .where(_runs.id == run_id)
                .values(status=status, ended_at=now, heartbeat_at=now, error=error, **counters.counters())
            )

    def runs(self, limit: int = 20) -> list[Row[Any]]:
        """The last ``limit`` runs, newest first (rows: ``run.id``, ``run.status``, ...)."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(runs_table).order_by(_runs.id.desc()).limit(limit)).all())

    def job_runs(self, job_id: str) -> list[Row[Any]]:
        """Every run recorded for ``job_id`` (all its shards, re-runs included), oldest first."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(runs_table).where(_runs.job_id == job_id).order_by(_runs.id)).all())

    def run(self, run_id: int) -> Row[Any] | None:
        with self.engine.connect() as conn:
            return conn.execute(select(runs_table).where(_runs.id == run_id)).first()

    @staticmethod
    def run_counters(run: Row[Any]) -> RunCounters:
        """The counters a ``runs`` row recorded (NULL, in a row older than its column, reads 0)."""
        return RunCounters(**{name: getattr(run, name) or 0 for name in RunCounters.names()})

    # -- engines ------------------------------------------------------------------------------

    def record_engine(self, name: str, attributes: Iterable[str]) -> None:
        """Remember which FaceDetail keys engine ``name`` fills (read by search's warnings)."""
        values = {"name": name, "attributes": json.dumps(sorted(attributes)), "updated_at": utcnow()}
        with self.engine.begin() as conn:
            statement = _dialect_insert(conn)(engines_table).values(**values)
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[_engines.name],
                    set_={"attributes": statement.excluded.attributes, "updated_at": statement.excluded.updated_at},
                )
            )

    def engine_attributes(self) -> dict[str, frozenset[str]]:
        """FaceDetail keys each recorded engine fills, by engine name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_engines.name, _engines.attributes)).all()
        return {name: frozenset(json.loads(attributes)) for name, attributes in rows}

    # -- planning -----------------------------------------------------------------------------

    def known(self, uris: Sequence[str]) -> dict[str, KnownImage]:
        """Fingerprint, engine and status of every URI of ``uris`` already in the index.

        One query per :data:`LOOKUP_BATCH` URIs, never one per key: this is the planner's hot path.
        """
        found: dict[str, KnownImage] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(uris), LOOKUP_BATCH):
                chunk = uris[start : start + LOOKUP_BATCH]
                rows = conn.execute(
                    select(
                        _images.uri,
                        _images.fingerprint,
                        _images.engine,
                        _images.model_set,
                        _images.status,
                        _images.retryable,
                        _images.collection,
                    ).where(_images.uri.in_(chunk))
                )
                for uri, fingerprint, engine, model_set, status, retryable, collection in rows:
                    found[uri] = KnownImage(fingerprint, engine, status, retryable, model_set, collection)
        return found

    def mark_seen(self, run_id: int, uris: Sequence[str]) -> None:
        """Note that this run's listing saw ``uris`` (what ``--prune`` keeps)."""
        with self.engine.begin() as conn:
            for start in range(0, len(uris), LOOKUP_BATCH):
                chunk = uris[start : start + LOOKUP_BATCH]
                conn.execute(update(images_table).where(_images.uri.in_(chunk)).values(seen_run_id=run_id))

    def prune(self, uri_prefix: str, run_id: int, owns: Callable[[str], bool] | None = None) -> int:
        """Delete images under ``uri_prefix`` that run ``run_id`` did not see. Faces cascade.

        ``owns`` (a shard's :meth:`~indexer.sharding.Shard.owns`) limits it to the URIs it accepts:
        a shard saw only its own slice, so everything else would look stale. The stale rows are
        filtered in Python (the hash is not SQL), only their ids and URIs are read.
        """
        stale = select(_images.id, _images.uri).where(
            _images.uri.startswith(uri_prefix, autoescape=True),
            (_images.seen_run_id.is_(None)) | (_images.seen_run_id != run_id),
        )
        with self.engine.begin() as conn:
            ids = [image_id for image_id, uri in conn.execute(stale) if owns is None or owns(uri)]
            for start in range(0, len(ids), LOOKUP_BATCH):
                chunk = ids[start : start + LOOKUP_BATCH]
                _queue_deletions(conn, _collection_faces_of(conn, _faces.image_id.in_(chunk)))
                _delete_faces(conn, _faces.image_id.in_(chunk))
                conn.execute(delete(images_table).where(_images.id.in_(chunk)))
            if ids:
                _faces_changed(conn)
        return len(ids)

    # -- writing results ----------------------------------------------------------------------

    def write(self, outcomes: Sequence[ImageOutcome], run_id: int | None) -> list[ImageOutcome]:
        """Write a batch of outcomes in one transaction; returns the outcomes actually written.

        If the batch cannot be written as a whole (one row the database refuses), each image is
        written on its own so one bad row costs only itself, and that image is recorded as
        failed with the database's reason instead of being lost.
        """
        if not outcomes:
            return []
        try:
            with self.engine.begin() as conn:
                for outcome in outcomes:
                    self._write_one(conn, outcome, run_id)
                _faces_changed(conn)
            return list(outcomes)
        except (SQLAlchemyError, Misaligned):
            if len(outcomes) == 1:
                return self._write_as_failure(outcomes[0], run_id)
        written: list[ImageOutcome] = []
        for outcome in outcomes:
            written.extend(self.write([outcome], run_id))
        return written

    def _write_as_failure(self, outcome: ImageOutcome, run_id: int | None) -> list[ImageOutcome]:
        failure = ImageOutcome(
            ref=outcome.ref,
            engine=outcome.engine,
            model_set=outcome.model_set,
            error=ImageError("StoreError", "the index could not store this image's faces", retryable=True),
        )
        with self.engine.begin() as conn:
            self._write_one(conn, failure, run_id)
            _faces_changed(conn)
        return [failure]

    def _write_one(self, conn: Any, outcome: ImageOutcome, run_id: int | None) -> None:
        ref, analysis, error = outcome.ref, outcome.analysis, outcome.error
        values: dict[str, Any] = {
            "uri": ref.uri,
            "fingerprint": ref.fingerprint,
            "size": ref.size,
            "engine": outcome.engine,
            "model_set": outcome.model_set or outcome.engine,
            "indexed_at": utcnow(),
            "run_id": run_id,
            "seen_run_id": run_id,
            "face_count": outcome.face_count,
            "status": IMAGE_FAILED if error else IMAGE_INDEXED,
            "error_code": error.code if error else None,
            "error_message": error.message if error else None,
            "retryable": error.retryable if error else None,
            "width": analysis.width if analysis else None,
            "height": analysis.height if analysis else None,
            "collection": analysis.collection_faces.collection if analysis and analysis.collection_faces else None,
        }
        image_id = self._upsert_image(conn, values)
        _replace_collection_faces(conn, image_id, analysis.collection_faces if analysis else None)
        _delete_faces(conn, _faces.image_id == image_id)
        if not analysis or not analysis.face_details:
            return
        rows = [
            {"image_id": image_id, "face_index": i, "engine": outcome.engine, **face_columns(detail)}
            for i, detail in enumerate(analysis.face_details)
        ]
        face_ids = conn.execute(insert(faces_table).returning(_faces.id, sort_by_parameter_order=True), rows).scalars().all()
        emotions = [
            {"face_id": face_id, "type": kind, "confidence": confidence}
            for face_id, detail in zip(face_ids, analysis.face_details)
            for kind, confidence in emotion_rows(detail)
        ]
        if emotions:
            conn.execute(insert(emotions_table), emotions)
        _insert_identities(conn, face_ids, analysis)

    def _upsert_image(self, conn: Any, values: dict[str, Any]) -> int:
        statement = _dialect_insert(conn)(images_table).values(**values)
        upsert = statement.on_conflict_do_update(
            index_elements=[_images.uri], set_={k: statement.excluded[k] for k in values if k != "uri"}
        ).returning(_images.id)
        return conn.execute(upsert).scalar_one()

    # -- reading ------------------------------------------------------------------------------

    def image(self, uri: str) -> dict[str, Any] | None:
        """One image's row and its faces, each face in Rekognition's own shape plus ``face_id``."""
        with self.engine.connect() as conn:
            image = conn.execute(select(images_table).where(_images.uri == uri)).first()
            if image is None:
                return None
            faces = conn.execute(
                select(_faces.id, _faces.raw).where(_faces.image_id == image.id).order_by(_faces.face_index)
            ).all()
        return {
            "uri": image.uri,
            "status": image.status,
            "engine": image.engine,
            "model_set": image.model_set,
            "fingerprint": image.fingerprint,
            "size": image.size,
            "width": image.width,
            "height": image.height,
            "indexed_at": image.indexed_at.isoformat() if image.indexed_at else None,
            "error_code": image.error_code,
            "error_message": image.error_message,
            "faces": [stored_detail(raw, face_id) for face_id, raw in faces],
        }


    # -- identities: descriptors and collection FaceIds ---------------------------------------

    def descriptor_of(self, face_id: int) -> tuple[str, bytes] | None:
        """(model, vector) of one stored face, None when it has no descriptor."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_descriptors.model, _descriptors.vector).where(_descriptors.face_id == face_id)).first()
        return None if row is None else (row.model, bytes(row.vector))

    def descriptors(self, model: str, *, chunk: int = 50_000) -> Iterator[tuple[list[int], bytes]]:
        """Every descriptor of ``model``, ``chunk`` faces at a time: their face ids and their
        vectors concatenated (one buffer, for ``numpy.frombuffer``). Keyset-paged by face id, so
        memory stays at one chunk and each page is one indexed range read."""
        after = 0
        while True:
            with self.engine.connect() as conn:
                # The driver's own cursor: SQLAlchemy's per-row processing was half the time of
                # a scan (the rows are two plain values). Placeholders in the driver's style.
                mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                cursor.execute(
                    f"SELECT face_id, vector FROM {face_descriptors_table.name} "
                    f"WHERE model = {mark} AND face_id > {mark} ORDER BY face_id LIMIT {int(chunk)}",
                    (model, after),
                )
                rows = cursor.fetchall()
                cursor.close()
            if not rows:
                return
            yield [face_id for face_id, _vector in rows], b"".join(bytes(vector) for _face_id, vector in rows)
            after = rows[-1][0]

    def collection_face(self, face_id: int) -> tuple[str, str] | None:
        """(collection, FaceId) of one stored face, None when it is in no collection."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_collection_faces.collection, _collection_faces.rekognition_face_id).where(
                    _collection_faces.face_id == face_id
                )
            ).first()
        return None if row is None else (row[0], row[1])

    def faces_in_collection(self, collection: str, rekognition_face_ids: Sequence[str]) -> dict[str, int]:
        """FaceId -> stored face id, for the FaceIds of ``collection`` the index holds."""
        found: dict[str, int] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(rekognition_face_ids), LOOKUP_BATCH):
                chunk = list(rekognition_face_ids[start : start + LOOKUP_BATCH])
                rows = conn.execute(
                    select(_collection_faces.rekognition_face_id, _collection_faces.face_id).where(
                        _collection_faces.collection == collection, _collection_faces.rekognition_face_id.in_(chunk)
                    )
                )
                found.update({face_ref: face_id for face_ref, face_id in rows})
        return found

    def queued_deletions(self) -> dict[str, list[str]]:
        """FaceIds to delete from each collection (queued when their faces were replaced or pruned)."""
        queued: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_deletions.collection, _deletions.rekognition_face_id).order_by(
                    _deletions.collection, _deletions.rekognition_face_id
                )
            )
            for collection, face_ref in rows:
                queued.setdefault(collection, []).append(face_ref)
        return queued

    def forget_deletions(self, collection: str, rekognition_face_ids: Sequence[str]) -> None:
        """Unqueue FaceIds once DeleteFaces removed them (or found them already gone)."""
        with self.engine.begin() as conn:
            for start in range(0, len(rekognition_face_ids), LOOKUP_BATCH):
                chunk = list(rekognition_face_ids[start : start + LOOKUP_BATCH])
                conn.execute(
                    delete(collection_deletions_table).where(
                        _deletions.collection == collection, _deletions.rekognition_face_id.in_(chunk)
                    )
                )

"""The schema, as SQLAlchemy Core tables: images, faces (one typed column per FaceDetail attribute), emotions, runs.

Every attribute a query can ask for is a real, typed column, so a search is an indexed SQL
filter, never a scan of JSON. The raw FaceDetail is kept beside them (``faces.raw``) so the exact
shape the engine returned can always be given back, and new columns can be backfilled from it.
A boolean attribute an engine cannot predict stays NULL (unknown), never False.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

from ..attributes import FACE_COLUMNS, SEARCHABLE
from ..attributes import Column as AttributeColumn
from ..core import RunCounters

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

IMAGE_INDEXED = "indexed"
IMAGE_FAILED = "failed"

RUN_RUNNING = "running"
RUN_COMPLETED = "completed"
RUN_FAILED = "failed"
RUN_INTERRUPTED = "interrupted"
RUN_ABANDONED = "abandoned"


metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: One invocation of ``indexer index``: what it was asked, what it did, how it ended. The counter
#: columns are :class:`indexer.core.RunCounters`' fields (``outdated`` came later: NULL in old rows).
runs_table = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", Text, nullable=False),
    Column("engine", String(32), nullable=False),
    Column("status", String(16), nullable=False, default=RUN_RUNNING, index=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("host", String(255)),
    Column("pid", Integer),
    *[Column(name, Integer, nullable=False, default=0) for name in RunCounters.names() if name != "outdated"],
    #: Images re-analysed because an older model set of the engine had indexed them.
    Column("outdated", Integer, default=0),
    Column("error", Text),
    #: The job a sharded run belongs to (``index --job-id``, or the scheduler's; migration 0007).
    Column("job_id", String(255), index=True),
    #: Which slice of the source the run handled (``I/N``); NULL for a whole-source run.
    Column("shard", String(32)),
)

#: One image of a collection, with the fingerprint that makes re-runs incremental.
images_table = Table(
    "images",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uri", Text, nullable=False, unique=True),
    Column("fingerprint", String(128), nullable=False),
    Column("size", BigInteger),
    Column("width", Integer),
    Column("height", Integer),
    Column("engine", String(32), nullable=False, index=True),
    # Which version of the engine's models analysed it (``local@2``); an older one means re-analyse.
    Column("model_set", String(32)),
    Column("status", String(16), nullable=False, index=True),
    # Number of faces stored for this image: image-level queries ("3 or more faces") need no join.
    Column("face_count", Integer, nullable=False, default=0),
    Column("error_code", String(128)),
    Column("error_message", Text),
    # For failures: may the next run try again although the image is unchanged?
    Column("retryable", Boolean),
    Column("indexed_at", DateTime(timezone=True), nullable=False),
    Column("run_id", ForeignKey("runs.id", ondelete="SET NULL")),
    # Last run whose listing saw this image; ``--prune`` removes what the current run did not see.
    Column("seen_run_id", Integer),
    # The Rekognition collection its faces were indexed into (``index --collection``), else NULL:
    # an image indexed without one, or into another, needs indexing into the run's (migration 0006).
    Column("collection", String(255)),
)


def _sql_type(column: AttributeColumn) -> Any:
    """The SQL type of a registry column."""
    return {"float": Float, "smallint": SmallInteger, "boolean": Boolean}.get(column.type) or String(column.length)


#: One detected face: a typed column for every column of the attribute registry
#: (:mod:`indexer.attributes`), plus the raw FaceDetail JSON.
faces_table = Table(
    "faces",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("image_id", ForeignKey("images.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("face_index", SmallInteger, nullable=False),
    Column("engine", String(32), nullable=False),
    *[Column(column.name, _sql_type(column)) for column in FACE_COLUMNS],
    Column("raw", Text, nullable=False),
)

#: Every emotion the engine scored for a face, not only the top one.
emotions_table = Table(
    "emotions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("face_id", ForeignKey("faces.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("type", String(16), nullable=False),
    Column("confidence", Float, nullable=False),
)

#: The capabilities of each engine that has written to this index: recorded by every run, so
#: ``search`` can tell which images can never answer an attribute (``beard`` on images of an
#: engine that does not predict beards) without importing engines. ``attributes`` is a JSON list
#: of the FaceDetail keys the engine fills.
engines_table = Table(
    "engines",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("attributes", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: Versions of the index's contents: ``faces`` goes up by one in every transaction that adds or
#: deletes faces (:meth:`indexer.store.repository.Store.write`, ``prune``), so anything derived
#: from the faces (the face bitsets) can tell whether it still describes them.
versions_table = Table(
    "versions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("version", BigInteger, nullable=False),
)
FACES_VERSION = "faces"

#: The face bitsets (:mod:`indexer.bitsets`): one row per bitset, all built together from the
#: faces at ``faces_version`` (a search uses them only while that is still the faces' version).
bitsets_table = Table(
    "bitsets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("faces_version", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

#: Each face's identity vector from the offline engine (``core.FaceDescriptors``): ``search
#: --like`` compares these and never re-analyses the index. ``model`` names the network: vectors
#: of different models are not comparable.
face_descriptors_table = Table(
    "face_descriptors",
    metadata,
    Column("face_id", ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
    Column("model", String(64), nullable=False, index=True),
    Column("vector", LargeBinary, nullable=False),
)

#: Where ``index --collection`` put each face in a Rekognition collection: its FaceId there.
collection_faces_table = Table(
    "collection_faces",
    metadata,
    Column("collection", String(255), primary_key=True),
    Column("rekognition_face_id", String(36), primary_key=True),
    Column("face_id", ForeignKey("faces.id", ondelete="CASCADE"), nullable=False, index=True),
)

#: FaceIds still in a collection that no stored face has any more (the image was re-indexed or
#: pruned): queued in the transaction that dropped them, deleted from the collection after the
#: run (DeleteFaces), then forgotten. A crash in between leaves them queued, never lost.
collection_deletions_table = Table(
    "collection_deletions",
    metadata,
    Column("collection", String(255), primary_key=True),
    Column("rekognition_face_id", String(36), primary_key=True),
    Column("queued_at", DateTime(timezone=True), nullable=False),
)

#: A lease that keeps two runs over the same database and source from doing the work twice.
locks_table = Table(
    "locks",
    metadata,
    Column("name", String(512), primary_key=True),
    Column("run_id", Integer),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)


# Indexes for attribute search (see search.py; created by migration 0002). Face rows carry the
# raw JSON, so every search is answered from indexes alone (covering), never by fetching rows:
# - one face term: its attribute's (value, image_id, confidence) index, already in image order;
# - several face terms: one index-only pass over ix_faces_search, which holds every searchable
#   column after image_id (also the probe for pages walked in URI order). Migration 0002 put
#   these attributes' columns first; any other searchable attribute follows in registry order.
_SEARCH_INDEX_LEAD = ("Gender", "AgeRange", "Emotions")
_faces = faces_table.c
for _attribute in SEARCHABLE:
    Index(_attribute.index, *[_faces[name] for name in _attribute.index_columns])
_covered = sorted(
    SEARCHABLE,
    key=lambda a: _SEARCH_INDEX_LEAD.index(a.key) if a.key in _SEARCH_INDEX_LEAD else len(_SEARCH_INDEX_LEAD),
)
# The detection confidence last (migration 0004): what --order confidence ranks a face by when the
# query names no term with a confidence of its own.
Index(
    "ix_faces_search",
    _faces.image_id,
    *[_faces[name] for attribute in _covered for name in attribute.search_columns],
    _faces.confidence,
)
Index("ix_images_seen", images_table.c.seen_run_id)
# Image-level terms ("group photos", "not portraits"): answered and counted from this index alone,
# the status included (migration 0005), never from the image rows.
Index("ix_images_face_count_status", images_table.c.face_count, images_table.c.status)

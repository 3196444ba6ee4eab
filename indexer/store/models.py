"""SQLAlchemy models: images, faces (one typed column per FaceDetail attribute), emotions, runs.

Every attribute a query can ask for is a real, typed column, so a search is an indexed SQL
filter, never a scan of JSON. The raw FaceDetail is kept beside them (``faces.raw``) so the exact
shape the engine returned can always be given back, and new columns can be backfilled from it.
A boolean attribute an engine cannot predict stays NULL (unknown), never False.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Boolean FaceDetail attributes: FaceDetail key -> column stem (value in ``stem``,
#: confidence in ``stem_confidence``).
BOOLEAN_ATTRIBUTES: dict[str, str] = {
    "Smile": "smile",
    "Eyeglasses": "eyeglasses",
    "Sunglasses": "sunglasses",
    "Beard": "beard",
    "Mustache": "mustache",
    "EyesOpen": "eyes_open",
    "MouthOpen": "mouth_open",
    "FaceOccluded": "face_occluded",
}

IMAGE_INDEXED = "indexed"
IMAGE_FAILED = "failed"

RUN_RUNNING = "running"
RUN_COMPLETED = "completed"
RUN_FAILED = "failed"
RUN_INTERRUPTED = "interrupted"
RUN_ABANDONED = "abandoned"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Run(Base):
    """One invocation of ``indexer index``: what it was asked, what it did, how it ended."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    engine: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=RUN_RUNNING, index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    listed: Mapped[int] = mapped_column(Integer, default=0)
    skipped_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    analyzed: Mapped[int] = mapped_column(Integer, default=0)
    faces: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    pruned: Mapped[int] = mapped_column(Integer, default=0)
    api_calls: Mapped[int] = mapped_column(Integer, default=0)
    #: Images re-analysed because an older model set of the engine had indexed them.
    outdated: Mapped[int | None] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class Image(Base):
    """One image of a collection, with the fingerprint that makes re-runs incremental."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uri: Mapped[str] = mapped_column(Text, unique=True)
    fingerprint: Mapped[str] = mapped_column(String(128))
    size: Mapped[int | None] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    engine: Mapped[str] = mapped_column(String(32), index=True)
    #: Which version of the engine's models analysed it (``local@2``); an older one means re-analyse.
    model_set: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)
    #: Number of faces stored for this image: image-level queries ("3 or more faces") need no join.
    face_count: Mapped[int] = mapped_column(Integer, default=0, index=True)
    error_code: Mapped[str | None] = mapped_column(String(128))
    error_message: Mapped[str | None] = mapped_column(Text)
    #: For failures: may the next run try again although the image is unchanged?
    retryable: Mapped[bool | None] = mapped_column(Boolean)
    indexed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    #: Last run whose listing saw this image; ``--prune`` removes what the current run did not see.
    seen_run_id: Mapped[int | None] = mapped_column(Integer)

    faces: Mapped[list["Face"]] = relationship(
        back_populates="image", cascade="all, delete-orphan", passive_deletes=True, order_by="Face.face_index"
    )


class Face(Base):
    """One detected face: a typed column for every FaceDetail attribute, plus the raw JSON."""

    __tablename__ = "faces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    face_index: Mapped[int] = mapped_column(SmallInteger)
    engine: Mapped[str] = mapped_column(String(32))

    bbox_left: Mapped[float | None] = mapped_column(Float)
    bbox_top: Mapped[float | None] = mapped_column(Float)
    bbox_width: Mapped[float | None] = mapped_column(Float)
    bbox_height: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)

    age_low: Mapped[int | None] = mapped_column(SmallInteger)
    age_high: Mapped[int | None] = mapped_column(SmallInteger)
    #: Middle of AgeRange, what age queries compare against; stored so it can be indexed.
    age_mid: Mapped[float | None] = mapped_column(Float)
    gender: Mapped[str | None] = mapped_column(String(8))
    gender_confidence: Mapped[float | None] = mapped_column(Float)

    smile: Mapped[bool | None] = mapped_column(Boolean)
    smile_confidence: Mapped[float | None] = mapped_column(Float)
    eyeglasses: Mapped[bool | None] = mapped_column(Boolean)
    eyeglasses_confidence: Mapped[float | None] = mapped_column(Float)
    sunglasses: Mapped[bool | None] = mapped_column(Boolean)
    sunglasses_confidence: Mapped[float | None] = mapped_column(Float)
    beard: Mapped[bool | None] = mapped_column(Boolean)
    beard_confidence: Mapped[float | None] = mapped_column(Float)
    mustache: Mapped[bool | None] = mapped_column(Boolean)
    mustache_confidence: Mapped[float | None] = mapped_column(Float)
    eyes_open: Mapped[bool | None] = mapped_column(Boolean)
    eyes_open_confidence: Mapped[float | None] = mapped_column(Float)
    mouth_open: Mapped[bool | None] = mapped_column(Boolean)
    mouth_open_confidence: Mapped[float | None] = mapped_column(Float)
    face_occluded: Mapped[bool | None] = mapped_column(Boolean)
    face_occluded_confidence: Mapped[float | None] = mapped_column(Float)

    pose_roll: Mapped[float | None] = mapped_column(Float)
    pose_yaw: Mapped[float | None] = mapped_column(Float)
    pose_pitch: Mapped[float | None] = mapped_column(Float)
    quality_brightness: Mapped[float | None] = mapped_column(Float)
    quality_sharpness: Mapped[float | None] = mapped_column(Float)
    eye_direction_yaw: Mapped[float | None] = mapped_column(Float)
    eye_direction_pitch: Mapped[float | None] = mapped_column(Float)
    eye_direction_confidence: Mapped[float | None] = mapped_column(Float)

    #: The face's top emotion (Rekognition type, e.g. HAPPY) and its confidence.
    emotion: Mapped[str | None] = mapped_column(String(16))
    emotion_confidence: Mapped[float | None] = mapped_column(Float)

    raw: Mapped[str] = mapped_column(Text)

    image: Mapped[Image] = relationship(back_populates="faces")
    emotions: Mapped[list["Emotion"]] = relationship(
        back_populates="face", cascade="all, delete-orphan", passive_deletes=True
    )


class Emotion(Base):
    """Every emotion Rekognition scored for a face, not only the top one."""

    __tablename__ = "emotions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)

    face: Mapped[Face] = relationship(back_populates="emotions")


class EngineInfo(Base):
    """The capabilities of each engine that has written to this index.

    Recorded by every run, so ``search`` can tell which images can never answer an attribute
    (``beard`` on images of an engine that does not predict beards) without importing engines.
    """

    __tablename__ = "engines"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: JSON list of the FaceDetail keys this engine fills.
    attributes: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Lock(Base):
    """A lease that keeps two runs over the same database and source from doing the work twice."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    run_id: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# Indexes for attribute search (see search.py; created by migration 0002). Face rows carry the
# raw JSON, so every search is answered from indexes alone (covering), never by fetching rows:
# - one face term: its (value, image_id, confidence) index, already in image order;
# - several face terms: one index-only pass over ix_faces_search, which holds every searchable
#   column after image_id (also the probe for pages walked in URI order).
for _stem in BOOLEAN_ATTRIBUTES.values():
    Index(f"ix_faces_{_stem}", getattr(Face, _stem), Face.image_id, getattr(Face, f"{_stem}_confidence"))
Index("ix_faces_gender", Face.gender, Face.image_id, Face.gender_confidence)
Index("ix_faces_emotion", Face.emotion, Face.image_id, Face.emotion_confidence)
Index("ix_faces_age_mid", Face.age_mid, Face.image_id)
Index(
    "ix_faces_search",
    Face.image_id,
    Face.gender,
    Face.gender_confidence,
    Face.age_mid,
    Face.emotion,
    Face.emotion_confidence,
    *[getattr(Face, name) for stem in BOOLEAN_ATTRIBUTES.values() for name in (stem, f"{stem}_confidence")],
)
Index("ix_images_seen", Image.seen_run_id)

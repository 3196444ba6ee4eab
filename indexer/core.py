"""The values that flow through a run: source -> planner -> engine -> store.

A source lists :class:`ImageRef`\\ s, the planner picks the ones that need work, an engine turns
each into an :class:`Analysis` (Rekognition-shaped :data:`FaceDetail`\\ s), the store writes it,
and :class:`RunCounters` say what the run did. Every stage imports these from here, never from
the stage before it, so no import runs back up the flow (``tests/test_layering.py``).

The records built once and then only read, here and in the modules a search imports
(:class:`ImageRef`, :class:`Analysis`, the configuration, a parsed query, the AWS error table's
rows), are ``NamedTuple``\\ s: as immutable as a frozen dataclass, but a dataclass compiles its
methods when it is defined, 0.5-1 ms at every start on Python 3.11, and the whole ``indexer
search`` process has 1.25x the import time of its two libraries to spend (``bench/startup.py``).
What is mutated (:class:`RunCounters`) or compared by type (the query's terms) stays a dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, NamedTuple

#: One face as Rekognition's ``DetectFaces`` returns it with ``Attributes=["ALL"]``.
FaceDetail = dict[str, Any]

def face_area(face: FaceDetail) -> float:
    """The share of the image a face's BoundingBox covers (0 when it has none)."""
    box = face.get("BoundingBox") or {}
    return float(box.get("Width", 0.0)) * float(box.get("Height", 0.0))


def largest_face(faces: list[FaceDetail]) -> int:
    """The index of the face with the largest BoundingBox: the face Rekognition's CompareFaces and
    SearchFacesByImage take from a source image, and so ``compare`` and ``search --like`` too."""
    return max(range(len(faces)), key=lambda i: face_area(faces[i]))


#: Appended to an archived, unrestored object's fingerprint: the restore is a change to act on.
ARCHIVED_MARK = "+archived"


class ImageRef(NamedTuple):
    """One image of a collection, as the source lists it (no bytes read yet).

    ``fingerprint`` changes whenever the content may have changed: the S3 ETag, or size and
    mtime for a local file. It is what makes runs incremental.
    """

    uri: str
    size: int
    fingerprint: str
    content_type: str | None = None
    #: (bucket, key) for S3 objects, None for local files.
    s3_location: tuple[str, str] | None = None
    #: Absolute path for local files, None for S3 objects.
    path: str | None = None
    #: An S3 object in an archive storage class (GLACIER, DEEP_ARCHIVE) and not restored: it
    #: cannot be read, so it is recorded ``ObjectArchived`` without a call. Its fingerprint then
    #: ends with :data:`ARCHIVED_MARK`, so a restore (which keeps the ETag) changes it.
    archived: bool = False


#: Reads the whole image's bytes when an engine needs them (lazy: Rekognition on S3 never does).
ByteReader = Callable[[], bytes]


class FaceDescriptors(NamedTuple):
    """Who each face is, as numbers: one identity vector per FaceDetail of an :class:`Analysis`,
    in the same order. Two faces of the same person have close vectors (the offline engine's
    ``embedding`` module says how close, and maps the distance to a Similarity 0-100).

    ``model`` names the network that made them: vectors of different models are not comparable,
    so each is stored with it. Each vector is the model's float32 values, little-endian.
    """

    model: str
    vectors: list[bytes]


class CollectionFaces(NamedTuple):
    """Where Rekognition's ``IndexFaces`` put an image's faces: the collection, and each face's
    ``FaceId`` there, one per FaceDetail of the :class:`Analysis`, in the same order (None for a
    face the service detected but did not index)."""

    collection: str
    face_ids: list[str | None]


class Analysis(NamedTuple):
    """What an engine returns for one image."""

    face_details: list[FaceDetail]
    width: int | None = None
    height: int | None = None
    #: Billable calls this analysis made (retries included); 0 for offline engines.
    api_calls: int = 0
    #: Identity vectors of the faces (the offline engine), for "find this person".
    descriptors: FaceDescriptors | None = None
    #: The faces' FaceIds in a Rekognition collection (``index --collection``), for the same.
    collection_faces: CollectionFaces | None = None


def _counter(label: str, *, note_on: str | None = None) -> Any:
    """A counter field and how the summary line names it; ``note_on`` shows it in parentheses
    after that other counter (when not zero) instead of on its own."""
    return field(default=0, metadata={"label": label, "note_on": note_on})


@dataclass
class RunCounters:
    """What a run counted: the one definition the ``runs`` table's columns, the summary line,
    ``--json``, ``indexer runs`` and the API's run dicts follow (their keys in this order)."""

    listed: int = _counter("listed")
    skipped_unchanged: int = _counter("unchanged")
    analyzed: int = _counter("analyzed")
    faces: int = _counter("faces")
    failed: int = _counter("failed")
    pruned: int = _counter("pruned")
    api_calls: int = _counter("api calls")
    #: Of ``analyzed``/``failed``: images planned because an older model set had indexed them.
    outdated: int = _counter("for newer models", note_on="analyzed")

    @staticmethod
    def names() -> tuple[str, ...]:
        """The counters' names, in their order (a subclass's own fields are not counters)."""
        return tuple(counter.name for counter in fields(RunCounters))

    def counters(self) -> dict[str, int]:
        """Every counter by name, in order (the keys of ``--json`` and of the ``runs`` columns)."""
        return {name: getattr(self, name) for name in self.names()}

    def describe(self) -> str:
        """``listed 5, unchanged 2, analyzed 3 (1 for newer models), ...``: the summary line's counters."""
        notes = {counter.metadata["note_on"]: counter for counter in fields(RunCounters) if counter.metadata["note_on"]}
        parts = []
        for counter in fields(RunCounters):
            if counter.metadata["note_on"]:
                continue
            part = f"{counter.metadata['label']} {getattr(self, counter.name)}"
            note = notes.get(counter.name)
            if note is not None and getattr(self, note.name):
                part += f" ({getattr(self, note.name)} {note.metadata['label']})"
            parts.append(part)
        return ", ".join(parts)

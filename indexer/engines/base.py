"""The one interface every analysis engine implements.

An engine turns one image into Rekognition-shaped ``FaceDetails`` (the exact JSON shape of
``DetectFaces`` with ``Attributes=["ALL"]``). Storage and queries only ever see that shape, so an
engine can be added without touching them. What an engine cannot really predict it leaves out of
each FaceDetail (never guessed), and it says so up front in :class:`Capabilities`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

FaceDetail = dict[str, Any]

#: Every attribute key a Rekognition ``FaceDetail`` can carry (``Attributes=["ALL"]``).
ALL_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "BoundingBox",
        "AgeRange",
        "Smile",
        "Eyeglasses",
        "Sunglasses",
        "Gender",
        "Beard",
        "Mustache",
        "EyesOpen",
        "MouthOpen",
        "Emotions",
        "Landmarks",
        "Pose",
        "Quality",
        "Confidence",
        "FaceOccluded",
        "EyeDirection",
    }
)


@dataclass(frozen=True)
class Capabilities:
    """What an engine can answer: the FaceDetail keys it fills (recorded in the store, so
    searches can tell which images can never answer an attribute)."""

    name: str
    attributes: frozenset[str]
    #: Version of the engine's models, bumped whenever they answer differently (new models, new
    #: attributes). Images indexed by another version are re-analysed by the next plain run.
    #: None for an engine whose models the indexer does not control (Rekognition).
    version: int | None = None

    @property
    def model_set(self) -> str:
        """What each image records as the models that analysed it: ``local@2``, ``rekognition``."""
        return self.name if self.version is None else f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ImageRef:
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


#: Appended to an archived, unrestored object's fingerprint: the restore is a change to act on.
ARCHIVED_MARK = "+archived"



@dataclass
class Analysis:
    """What an engine returns for one image."""

    face_details: list[FaceDetail]
    width: int | None = None
    height: int | None = None
    #: Billable calls this analysis made (retries included); 0 for offline engines.
    api_calls: int = 0


#: Reads the whole image's bytes when an engine needs them (lazy: Rekognition on S3 never does).
ByteReader = Callable[[], bytes]


@runtime_checkable
class Engine(Protocol):
    """An analysis engine. Implementations must be safe to call from several threads."""

    name: str
    capabilities: Capabilities

    def analyze(self, image: ImageRef, read_bytes: ByteReader) -> Analysis:
        """Detect faces in one image. Raise :class:`indexer.errors.ImageError` for a bad image."""
        ...

    def close(self) -> None:
        """Release clients, sessions, model handles."""
        ...

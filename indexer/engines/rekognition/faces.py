"""Face comparison and face collections on Rekognition: the client side of ``indexer compare``,
``indexer index --collection NAME`` and ``indexer search --like``.

- ``compare``: :func:`compare_faces` (CompareFaces: the largest face of the source against every
  face of the target), the service's own response, for ``--json``.
- ``index --collection``: :func:`ensure_collection` once per run, then :func:`index_faces` for
  each image *instead of* DetectFaces - IndexFaces with ``DetectionAttributes=["ALL"]`` returns
  the same FaceDetails, so one call per image, not two - with the FaceId of each face beside it.
  Faces are tagged with :func:`external_image_id` of the image's URI. :func:`delete_faces` drops
  the faces a re-index or ``--prune`` replaces, so the collection never holds ghosts.
  :class:`~indexer.engines.rekognition.engine.RekognitionEngine` with ``collection=`` wires these
  into a run.
- ``search --like``: :func:`search_faces_by_image` (an image) or :func:`search_faces` (``face:ID``);
  the matches carry FaceIds, which the store maps back to stored faces.

Images go the way the engine sends DetectFaces' (:meth:`RekognitionEngine.send_images`): an ``S3Object`` where
Rekognition can read it, else prepared bytes, and a refused ``S3Object`` again as bytes. Pacing,
retries and billable-call counts are the engine's :class:`~indexer.ratelimit.RetryingCaller`'s;
failures go through the one table in :mod:`indexer.errors`. Operations without an image (on the
collection itself) have no image to blame: what the table leaves as an image error stops the run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ...core import Analysis, ByteReader, CollectionFaces, FaceDetail, ImageRef
from ...errors import ConfigError, FatalError, ImageError, IndexerError, aws_error_info, translate
from ...ratelimit import CallFailed, RetryingCaller, RetryPolicy

if TYPE_CHECKING:  # the engine imports this module: its names are only needed for annotations here
    from .engine import ImageInput, RekognitionEngine, Sent

#: botocore's model, shape ``CollectionId``: ``[a-zA-Z0-9_.\-]+``, 1 to 255 characters.
COLLECTION_ID_PATTERN = re.compile(r"[a-zA-Z0-9_.\-]+")
COLLECTION_ID_MAX = 255
#: botocore's model, shape ``ExternalImageId``: ``[a-zA-Z0-9_.\-:]+``, 1 to 255 characters.
EXTERNAL_IMAGE_ID_MAX = 255
#: botocore's model, shape ``FaceIdList`` (DeleteFaces' FaceIds): at most 4096 ids a request.
DELETE_FACES_MAX = 4096
#: Similarity at or above which CompareFaces and the searches call two faces a match when the
#: request names none: "The default value is 80%" (botocore's model documentation).
DEFAULT_SIMILARITY = 80.0
#: What IndexFaces is asked to return: every attribute, the same FaceDetails as DetectFaces'.
INDEX_ATTRIBUTES = ["ALL"]
#: The QualityFilter ``index --collection`` gives IndexFaces. The service's default, AUTO, leaves
#: out faces it finds too small, blurred, dark or turned away (they come back as UnindexedFaces),
#: which DetectFaces would report; NONE indexes every face DetectFaces returns, so the stored
#: faces, their attributes and every search stay what a DetectFaces run gives - at the cost of a
#: few poor faces in the collection that match less reliably.
INDEX_QUALITY_FILTER = "NONE"
#: The service's message for an image without a face to compare or search (an
#: InvalidParameterException, like an image under 80 px: only the message tells them apart).
NO_FACES_MESSAGE = "There are no faces in the image. Should be at least 1."

#: Bytes written as themselves in an external image id; every other byte is ``:`` + 2 hex digits.
_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
#: Marks a hashed id. An encoding never holds it: there ``:`` is always followed by two hex digits.
_HASHED = ":_"
_SHA256_HEX = 64
_HEAD_MAX = EXTERNAL_IMAGE_ID_MAX - len(_HASHED) - _SHA256_HEX
_ESCAPED = 3  # ":" and two hex digits


class NoFaceError(ImageError):
    """Rekognition found no face to compare or search with in the image.

    Still the service's ``InvalidParameterException`` (permanent, by the table); the subclass
    lets ``compare`` and ``--like`` say "no face in the image" instead of "invalid parameters".
    """


# -- external image ids ---------------------------------------------------------------------------


def external_image_id(uri: str) -> str:
    """The ``ExternalImageId`` that tags an image's faces: ``uri`` in ``[a-zA-Z0-9_.\\-:]+``.

    Reversible (:func:`uri_from_external_image_id`): the URI's UTF-8 bytes, letters, digits and
    ``_.-`` as themselves, every other byte as ``:`` and two lowercase hex digits
    (``s3://b/k 1.jpg`` -> ``s3:3a:2f:2fb:2fk:201.jpg``). Lone surrogates (undecodable file
    names) survive as their ``surrogatepass`` bytes.

    An encoding over 255 characters is hashed instead: its first characters (cut before an
    escape, to stay readable in ListFaces), ``:_`` - which no encoding holds - and the SHA-256 of
    the URI's bytes. That id is not reversible; the store's FaceId -> face mapping names the image.
    """
    if not uri:
        raise ValueError("an empty URI has no external image id")
    raw = uri.encode("utf-8", "surrogatepass")
    encoded = "".join(chr(byte) if byte in _PLAIN else f":{byte:02x}" for byte in raw)
    if len(encoded) <= EXTERNAL_IMAGE_ID_MAX:
        return encoded
    head = encoded[:_HEAD_MAX]
    escape = head.rfind(":")
    if escape > len(head) - _ESCAPED:
        head = head[:escape]
    return f"{head}{_HASHED}{hashlib.sha256(raw).hexdigest()}"


def uri_from_external_image_id(value: str) -> str | None:
    """The URI :func:`external_image_id` encoded; None for a hashed id (ask the store instead).

    Raises ValueError for a value the encoding cannot have produced.
    """
    if _HASHED in value:
        return None
    raw, i = bytearray(), 0
    while i < len(value):
        char = value[i]
        if char == ":":
            pair = value[i + 1 : i + _ESCAPED]
            if len(pair) != 2 or not all(c in "0123456789abcdef" for c in pair):
                raise ValueError(f"not an encoded external image id: {value!r}")
            raw.append(int(pair, 16))
            i += _ESCAPED
        elif ord(char) in _PLAIN:
            raw.append(ord(char))
            i += 1
        else:
            raise ValueError(f"not an encoded external image id: {value!r}")
    return raw.decode("utf-8", "surrogatepass")


# -- collections ----------------------------------------------------------------------------------


def check_collection_id(name: str) -> str:
    """``name`` when Rekognition takes it as a CollectionId, else a usage error (exit 2) before
    any call: the service would refuse it with a ValidationException on every request."""
    if not (0 < len(name) <= COLLECTION_ID_MAX and COLLECTION_ID_PATTERN.fullmatch(name)):
        raise ConfigError(
            f"invalid collection name {name!r}: Rekognition takes 1-{COLLECTION_ID_MAX} characters "
            "among letters, digits, '_', '.' and '-'"
        )
    return name


def ensure_collection(client: Any, name: str, *, caller: RetryingCaller | None = None) -> bool:
    """Make sure the face collection ``name`` exists; True when this call created it.

    DescribeCollection first, so an identity allowed to index into an existing collection needs
    no ``rekognition:CreateCollection``; a collection another run creates meanwhile
    (``ResourceAlreadyExistsException``) is as good as one this run created.
    """
    check_collection_id(name)
    caller = caller or _single_try()
    try:
        caller.call(lambda: client.describe_collection(CollectionId=name))
        return False
    except CallFailed as failed:
        if _code(failed) != "ResourceNotFoundException":
            raise _service_error(failed, caller, f"describing the face collection {name!r}") from None
    try:
        caller.call(lambda: client.create_collection(CollectionId=name))
        return True
    except CallFailed as failed:
        if _code(failed) == "ResourceAlreadyExistsException":
            return False
        raise _service_error(failed, caller, f"creating the face collection {name!r}") from None


# -- compare ----------------------------------------------------------------------------------------


def compare_faces(
    engine: RekognitionEngine,
    source: ImageInput,
    target: ImageInput,
    *,
    similarity_threshold: float | None = None,
    quality_filter: str | None = None,
) -> dict[str, Any]:
    """CompareFaces: the largest face of ``source`` against each of the 100 largest faces of
    ``target``; the service's own response (``SourceImageFace``, ``FaceMatches`` most alike
    first, ``UnmatchedFaces``), without ``ResponseMetadata``.

    Raises :class:`NoFaceError` when the source has no face, and what the table says otherwise.
    """
    options = _options(SimilarityThreshold=similarity_threshold, QualityFilter=quality_filter)

    def request(images: list[dict[str, Any]]) -> dict[str, Any]:
        return engine.client.compare_faces(SourceImage=images[0], TargetImage=images[1], **options)

    return _without_metadata(_searching(lambda: engine.send_images([source, target], request)).response)


# -- index ------------------------------------------------------------------------------------------


@dataclass
class IndexedFaces:
    """What IndexFaces made of one image: an :class:`~indexer.core.Analysis` plus FaceIds.

    ``face_details`` are DetectFaces-shaped (``DetectionAttributes=["ALL"]``): the indexed faces
    (largest first), then those detected but not indexed (quality bar, MaxFaces, the service's
    100 faces an image) - so the stored faces are the ones DetectFaces would give. ``face_ids[i]``
    is the FaceId of ``face_details[i]``, None for a face not indexed (``unindexed_reasons`` says
    why): such a face is stored with its attributes, and is only missing from the collection.
    """

    collection: str
    face_details: list[FaceDetail]
    face_ids: list[str | None]
    width: int | None = None
    height: int | None = None
    api_calls: int = 0
    unindexed_reasons: list[list[str]] | None = None

    def analysis(self) -> Analysis:
        """What a run stores: the faces, and each face's FaceId in the collection beside it."""
        return Analysis(
            face_details=self.face_details,
            width=self.width,
            height=self.height,
            api_calls=self.api_calls,
            collection_faces=CollectionFaces(self.collection, list(self.face_ids)),
        )


def index_faces(
    engine: RekognitionEngine,
    collection: str,
    image: ImageRef,
    read_bytes: ByteReader,
    *,
    max_faces: int | None = None,
    quality_filter: str | None = None,
) -> IndexedFaces:
    """IndexFaces for one image into ``collection`` (which must exist: :func:`ensure_collection`),
    its faces tagged with :func:`external_image_id` of its URI.

    Indexing the same bytes again under the same external id adds nothing: Rekognition "doesn't
    save duplicate face metadata" and answers the FaceIds it already holds. So a re-index must
    delete only the old FaceIds that are *not* among the new ones, or it deletes what it just
    indexed.
    """
    options = _options(MaxFaces=max_faces, QualityFilter=quality_filter)
    external_id = external_image_id(image.uri)

    def request(images: list[dict[str, Any]]) -> dict[str, Any]:
        return engine.client.index_faces(
            CollectionId=collection, Image=images[0], ExternalImageId=external_id, DetectionAttributes=INDEX_ATTRIBUTES, **options
        )

    sent = engine.send_images([(image, read_bytes)], request)
    records = sent.response.get("FaceRecords", [])
    unindexed = sent.response.get("UnindexedFaces", [])
    width, height = sent.sizes[0]
    return IndexedFaces(
        collection=collection,
        face_details=[record["FaceDetail"] for record in records] + [face["FaceDetail"] for face in unindexed],
        face_ids=[record["Face"]["FaceId"] for record in records] + [None] * len(unindexed),
        width=width,
        height=height,
        api_calls=sent.api_calls,
        unindexed_reasons=[list(face.get("Reasons", [])) for face in unindexed],
    )


# -- search -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceMatch:
    """A face of the collection like the searched one."""

    face_id: str
    similarity: float
    #: The id the face was indexed under, and the image URI it encodes (None when hashed or absent).
    external_image_id: str | None
    image_uri: str | None
    bounding_box: dict[str, float]


@dataclass(frozen=True)
class FaceSearch:
    """A search's matches, most alike first, and what was searched for."""

    matches: list[FaceMatch]
    #: SearchFaces: the face searched for. SearchFacesByImage: the face of the image it used
    #: (the largest) and the confidence that it is one.
    searched_face_id: str | None
    searched_bounding_box: dict[str, float] | None
    searched_confidence: float | None
    api_calls: int
    response: dict[str, Any]


def search_faces_by_image(
    engine: RekognitionEngine,
    collection: str,
    image: ImageRef,
    read_bytes: ByteReader,
    *,
    threshold: float = DEFAULT_SIMILARITY,
    max_faces: int | None = None,
    quality_filter: str | None = None,
) -> FaceSearch:
    """SearchFacesByImage: the collection's faces like the *largest* face of ``image``.

    Raises :class:`NoFaceError` when the image has no face.
    """
    options = _options(FaceMatchThreshold=threshold, MaxFaces=max_faces, QualityFilter=quality_filter)

    def request(images: list[dict[str, Any]]) -> dict[str, Any]:
        return engine.client.search_faces_by_image(CollectionId=collection, Image=images[0], **options)

    sent = _searching(lambda: engine.send_images([(image, read_bytes)], request))
    response = sent.response
    return FaceSearch(
        matches=_matches(response),
        searched_face_id=None,
        searched_bounding_box=response.get("SearchedFaceBoundingBox"),
        searched_confidence=response.get("SearchedFaceConfidence"),
        api_calls=sent.api_calls,
        response=_without_metadata(response),
    )


def search_faces(
    client: Any,
    collection: str,
    face_id: str,
    *,
    threshold: float = DEFAULT_SIMILARITY,
    max_faces: int | None = None,
    caller: RetryingCaller | None = None,
) -> FaceSearch:
    """SearchFaces: the collection's faces like its face ``face_id`` (never the face itself)."""
    caller = caller or _single_try()
    options = _options(FaceMatchThreshold=threshold, MaxFaces=max_faces)
    try:
        response, answered = caller.call(lambda: client.search_faces(CollectionId=collection, FaceId=face_id, **options))
    except CallFailed as failed:
        raise _service_error(failed, caller, f"searching the face collection {collection!r} for face {face_id}") from None
    return FaceSearch(
        matches=_matches(response),
        searched_face_id=response.get("SearchedFaceId", face_id),
        searched_bounding_box=None,
        searched_confidence=None,
        api_calls=answered,
        response=_without_metadata(response),
    )


def _matches(response: dict[str, Any]) -> list[FaceMatch]:
    found = []
    for match in response.get("FaceMatches", []):
        face = match["Face"]
        external_id = face.get("ExternalImageId")
        found.append(
            FaceMatch(
                face_id=face["FaceId"],
                similarity=float(match["Similarity"]),
                external_image_id=external_id,
                image_uri=_uri_or_none(external_id),
                bounding_box=face.get("BoundingBox", {}),
            )
        )
    return sorted(found, key=lambda m: -m.similarity)  # the service's order; kept if it ever is not


def _uri_or_none(external_id: str | None) -> str | None:
    """The URI an id encodes; None for no id, a hashed one, or one indexed by another tool."""
    if external_id is None:
        return None
    try:
        return uri_from_external_image_id(external_id)
    except ValueError:
        return None


def _searching(send: Callable[[], Sent]) -> Sent:
    """``send()``, its "no face in the image" refusal raised as :class:`NoFaceError`."""
    try:
        return send()
    except ImageError as exc:
        if exc.code == "InvalidParameterException" and exc.message.startswith(NO_FACES_MESSAGE.rstrip(".")):
            raise NoFaceError(
                exc.code, exc.message, retryable=False, request_id=exc.request_id, api_calls=exc.api_calls
            ) from None
        raise


# -- delete -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceDeletion:
    deleted: list[str]
    #: Ids the collection did not hold (already deleted: nothing left to do).
    not_found: list[str]
    api_calls: int
    #: Ids the service kept, by reason (``ASSOCIATED_TO_AN_EXISTING_USER``: the face belongs to
    #: a user of the collection, and goes only once it is disassociated from it).
    kept: dict[str, list[str]] = field(default_factory=dict)


#: The one UnsuccessfulFaceDeletion reason that means the face is gone (what the caller wanted).
_FACE_NOT_FOUND = "FACE_NOT_FOUND"


def delete_faces(
    client: Any,
    collection: str,
    face_ids: Iterable[str],
    *,
    caller: RetryingCaller | None = None,
    on_batch: Callable[[list[str]], None] | None = None,
) -> FaceDeletion:
    """DeleteFaces for every id in ``face_ids`` (duplicates once), in requests of at most 4096.

    No ids, no call. An id the collection does not hold is not an error (the goal - that face
    gone - holds); it is reported in ``not_found``. A face the service keeps for another reason
    is reported in ``kept``. ``on_batch(ids)`` is called after each request that succeeded, with
    the ids it settled (deleted or not found), so a caller keeping a queue can forget them at
    once: a later request that fails costs only its own batch.
    """
    caller = caller or _single_try()
    ids = list(dict.fromkeys(face_ids))
    deleted: list[str] = []
    not_found: list[str] = []
    kept: dict[str, list[str]] = {}
    calls = 0
    for start in range(0, len(ids), DELETE_FACES_MAX):
        batch = ids[start : start + DELETE_FACES_MAX]
        try:
            response, answered = caller.call(lambda: client.delete_faces(CollectionId=collection, FaceIds=batch))
        except CallFailed as failed:
            raise _service_error(
                failed, caller, f"deleting {len(batch)} faces from the face collection {collection!r}", spent=calls
            ) from None
        calls += answered
        settled = list(response.get("DeletedFaces", []))
        deleted += settled
        for entry in response.get("UnsuccessfulFaceDeletions", []):
            reasons = entry.get("Reasons") or [_FACE_NOT_FOUND]
            if _FACE_NOT_FOUND in reasons:
                not_found.append(entry["FaceId"])
                settled.append(entry["FaceId"])
            else:
                kept.setdefault(reasons[0], []).append(entry["FaceId"])
        if on_batch is not None:
            on_batch(settled)
    return FaceDeletion(deleted=deleted, not_found=not_found, api_calls=calls, kept=kept)


# -- shared -----------------------------------------------------------------------------------------


def _single_try() -> RetryingCaller:
    """A caller for code that passes none: one attempt, no pacing (as the engine's default)."""
    return RetryingCaller(None, RetryPolicy(max_attempts=1))


def _code(failed: CallFailed) -> str:
    return aws_error_info(failed.cause).code


def _service_error(failed: CallFailed, caller: RetryingCaller, doing: str, *, spent: int = 0) -> IndexerError:
    """The table's verdict on a failed call that carried no image: what it leaves as an image's
    error (an unknown code, a refused parameter, a missing collection) stops the run here."""
    calls = spent + failed.answered
    error = translate(failed.cause, doing, reached_before=caller.reached_service, api_calls=calls)
    if isinstance(error, ImageError):
        return FatalError(f"failed while {doing}: {error.code}: {error.message}", api_calls=calls)
    return error


def _options(**values: Any) -> dict[str, Any]:
    """The optional request members that were given (botocore refuses None)."""
    return {name: value for name, value in values.items() if value is not None}


def _without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}

"""AWS Rekognition ``DetectFaces`` with ``Attributes=["ALL"]`` - or, with ``collection=NAME``
(``indexer index --collection NAME``), ``IndexFaces`` into that face collection instead.

IndexFaces with ``DetectionAttributes=["ALL"]`` returns the same FaceDetails as DetectFaces, so a
run that fills a collection still makes one call per image, and stores each face's FaceId beside
it (:mod:`indexer.engines.rekognition.faces` has the calls and the choices: the external image id
that tags each face with its URI, QualityFilter NONE so every detected face is kept). The
collection is created by :meth:`RekognitionEngine.prepare` when missing; FaceIds a re-index or
``--prune`` replaced are deleted by :meth:`RekognitionEngine.delete_collection_faces`, which the
run calls after its work (:mod:`indexer.pipeline`).

An S3 object is passed as an ``S3Object`` reference (never downloaded) only when Rekognition can
really read it: the S3 endpoint is AWS's own (Rekognition cannot read MinIO, Ceph, R2...), the
bucket is in the Rekognition client's region (asked once per bucket), and the object's first
64 KiB - read anyway for its dimensions - say it is a JPEG/PNG within the S3Object limits.
Everything else is read, made upright and acceptable by :mod:`indexer.engines.rekognition.images`,
and sent as bytes; an ``S3Object`` the service still refuses (unreadable, too large, undecodable)
is retried as bytes before anything is recorded. What can never succeed (zero bytes, an archived
object, an image too small) is recorded without a call.

Pacing, retries and the count of billable calls are the caller's
(:class:`indexer.ratelimit.RetryingCaller`), so botocore itself tries each call once; failures
are translated by the one table in :mod:`indexer.errors`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ...attributes import ALL_ATTRIBUTES
from ...aws import BucketRegions, is_aws_endpoint
from ...core import Analysis, ByteReader, ImageRef
from ...errors import FatalError, ImageError, IndexerError, aws_error_info, translate
from ...ratelimit import CallFailed, RetryingCaller, RetryPolicy
from ..base import Capabilities
from .faces import INDEX_QUALITY_FILTER, check_collection_id, delete_faces, ensure_collection, index_faces
from .images import HeaderInfo, can_reference_in_s3, fits_s3_reference, prepare_bytes, probe_header

log = logging.getLogger(__name__)

CAPABILITIES = Capabilities(name="rekognition", attributes=ALL_ATTRIBUTES)
_HEADER_BYTES = 65536
_DOING = "calling Rekognition"
#: Answers to an ``S3Object`` request after which the same image is sent as bytes instead.
_RETRY_AS_BYTES = frozenset({"InvalidS3ObjectException", "ImageTooLargeException", "InvalidImageFormatException"})
#: After this many ``InvalidS3ObjectException`` in a bucket and no S3Object success there, the
#: bucket's images go straight as bytes (each refusal costs a call; 3 tells a pattern from a fluke).
BYTES_ONLY_AFTER_REFUSALS = 3


def rekognition_reads_s3(rekognition_client: Any, s3_client: Any) -> bool:
    """Whether ``S3Object`` references can work at all with these two clients.

    Real Rekognition reads only AWS S3, so a custom S3 endpoint (``AWS_ENDPOINT_URL_S3``) means
    bytes. When *both* endpoints are custom, they are a stand-in pair (LocalStack, the tests'
    endpoint) whose Rekognition reads that S3: references are tried, and refusals fall back.
    """
    if s3_client is None:
        return False
    s3_url = getattr(getattr(s3_client, "meta", None), "endpoint_url", None)
    rekognition_url = getattr(getattr(rekognition_client, "meta", None), "endpoint_url", None)
    return is_aws_endpoint(s3_url) or not is_aws_endpoint(rekognition_url)


@dataclass
class _BucketState:
    in_place_ok: int = 0
    refused: int = 0


#: One image of a request: what the source listed, and how to read its bytes if they must be sent.
ImageInput = tuple[ImageRef, ByteReader]


@dataclass(frozen=True)
class Sent:
    """A call that carried images: the service's answer, each image's upright (width, height) as
    sent (None when only its S3 header was read and did not tell), and the billable calls spent."""

    response: dict[str, Any]
    sizes: list[tuple[int | None, int | None]]
    api_calls: int


@dataclass(frozen=True)
class _Member:
    image: dict[str, Any]  # the request's Image member: {"S3Object": ...} or {"Bytes": ...}
    width: int | None
    height: int | None


def _check_sendable(image: ImageRef) -> None:
    """What can never succeed, refused before any call."""
    if image.size == 0 and image.s3_location is not None:  # a local file is read: its size may be unknown
        raise ImageError("EmptyObject", "zero-byte object: not an image; nothing was called")
    if image.archived:
        raise ImageError(
            "ObjectArchived",
            "archived (GLACIER/DEEP_ARCHIVE) and not restored: restore it and it is analysed by the next run",
        )


def _as_bytes(read: ByteReader, reencode: bool) -> _Member:
    prepared = prepare_bytes(read(), reencode=reencode)
    return _Member({"Bytes": prepared.data}, prepared.width, prepared.height)


class _Refused(Exception):
    """An ``S3Object`` request refused in a way the same image sent as bytes may not be."""

    def __init__(self, code: str, api_calls: int):
        super().__init__(code)
        self.code = code
        self.api_calls = api_calls


class RekognitionEngine:
    """DetectFaces (or IndexFaces into ``collection``) through boto3; thread-safe (boto3 clients are).

    ``collection`` is checked here (a name Rekognition refuses is a usage error before any call).
    """

    name = "rekognition"
    capabilities = CAPABILITIES

    def __init__(
        self,
        client: Any,
        *,
        s3_client: Any = None,
        caller: RetryingCaller | None = None,
        s3_in_place: bool | None = None,
        collection: str | None = None,
    ):
        self.client = client
        #: The face collection each analysed image's faces are indexed into; None: DetectFaces.
        self.collection = check_collection_id(collection) if collection is not None else None
        self.s3_client = s3_client
        self.caller = caller or RetryingCaller(None, RetryPolicy(max_attempts=1))
        self.s3_in_place = rekognition_reads_s3(client, s3_client) if s3_in_place is None else s3_in_place
        self.region = getattr(getattr(client, "meta", None), "region_name", None)
        self._regions = BucketRegions(s3_client) if s3_client is not None else None
        self._lock = threading.Lock()
        self._buckets: dict[str, _BucketState] = {}

    def prepare(self) -> None:
        """Make sure the face collection exists (DescribeCollection, and CreateCollection when it
        is missing), so a missing permission stops the run before anything is listed.

        Without a collection there is nothing to start: credentials and permissions are checked by
        the first call, whose failure stops the run (:mod:`indexer.errors`) - a check call here
        would only cost one more call per run.
        """
        if self.collection is not None:
            ensure_collection(self.client, self.collection, caller=self.caller)

    # -- analysis ------------------------------------------------------------------------------

    def analyze(self, image: ImageRef, read_bytes: ByteReader) -> Analysis:
        """DetectFaces; or IndexFaces into the collection, which returns the same FaceDetails and
        each face's FaceId (every face DetectFaces would find: QualityFilter NONE, no MaxFaces)."""
        if self.collection is not None:
            return index_faces(self, self.collection, image, read_bytes, quality_filter=INDEX_QUALITY_FILTER).analysis()
        sent = self.send_images([(image, read_bytes)], lambda images: self.client.detect_faces(Image=images[0], Attributes=["ALL"]))
        width, height = sent.sizes[0]
        return Analysis(face_details=sent.response.get("FaceDetails", []), width=width, height=height, api_calls=sent.api_calls)

    def delete_collection_faces(self, face_ids: Sequence[str], on_batch: Callable[[list[str]], None] | None = None) -> int:
        """DeleteFaces of ``face_ids`` from the collection, paced and retried like every call;
        the billable calls made. ``on_batch`` gets the ids each request settled (see
        :func:`~indexer.engines.rekognition.faces.delete_faces`); a failure raises the table's
        :class:`~indexer.errors.IndexerError`, whose ``api_calls`` counts what was spent.

        Faces the service keeps (one associated to a user of the collection) are logged: they
        stay queued, and a later run tries again."""
        if self.collection is None:
            raise ValueError("no face collection: this engine calls DetectFaces")
        deletion = delete_faces(self.client, self.collection, face_ids, caller=self.caller, on_batch=on_batch)
        for reason, kept in deletion.kept.items():
            log.warning(
                "indexer: warning: %d faces not deleted from the face collection %r (%s); tried again by the next run",
                len(kept), self.collection, reason,
            )
        return deletion.api_calls

    def send_images(self, images: Sequence[ImageInput], request: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> Sent:
        """``request(image_members)``, each image sent the way Rekognition takes it at least cost.

        What can never succeed fails before a call. An image goes as ``S3Object`` when Rekognition
        can read it in place (AWS S3, same region, JPEG/PNG by its bytes, within the limits, no
        refusal pattern in its bucket), else as prepared bytes. When the service refuses a
        request that held an ``S3Object`` in a way bytes may not be refused, every image goes
        again as bytes (the answer does not say which image it was), re-encoded after a format
        refusal. DetectFaces (:meth:`analyze`) and the face operations
        (:mod:`indexer.engines.rekognition.faces`) all send their images through here.
        """
        for ref, _read in images:
            _check_sendable(ref)
        references = [self._reference(ref) for ref, _read in images]
        spent, reencode = 0, False
        if any(references):
            members = [reference or _as_bytes(read, False) for reference, (_ref, read) in zip(references, images)]
            try:
                return self._attempt(members, request, spent=0)
            except _Refused as refused:
                for reference, (ref, _read) in zip(references, images):
                    if reference is not None and ref.s3_location is not None:
                        self._note_refusal(ref.s3_location[0], refused.code)
                spent, reencode = refused.api_calls, refused.code == "InvalidImageFormatException"
        try:
            members = [_as_bytes(read, reencode) for _ref, read in images]
        except (ImageError, FatalError) as exc:  # the refused S3Object call was billed whatever comes next
            exc.api_calls += spent
            raise
        return self._attempt(members, request, spent=spent)

    def _reference(self, image: ImageRef) -> _Member | None:
        """The ``S3Object`` member for ``image`` when Rekognition can read it in place, else None."""
        if not self._may_reference(image):
            return None
        bucket, key = image.s3_location  # type: ignore[misc]
        info = self._header(image)
        if not fits_s3_reference(info, image.size):
            return None
        return _Member({"S3Object": {"Bucket": bucket, "Name": key}}, info.width, info.height)

    def _may_reference(self, image: ImageRef) -> bool:
        """S3Object is worth trying: AWS S3 Rekognition can read, same region, no refusal pattern."""
        if not (self.s3_in_place and can_reference_in_s3(image)):
            return False
        bucket = image.s3_location[0]  # type: ignore[index]
        with self._lock:
            state = self._bucket(bucket)
            if state.refused >= BYTES_ONLY_AFTER_REFUSALS and state.in_place_ok == 0:
                return False
        region = self._regions.region(bucket) if self._regions else None
        return region is None or self.region is None or region == self.region

    def _bucket(self, bucket: str) -> _BucketState:
        """What S3Object requests met in ``bucket`` so far (callers hold ``self._lock``)."""
        return self._buckets.setdefault(bucket, _BucketState())

    def _note_refusal(self, bucket: str, code: str) -> None:
        if code == "InvalidS3ObjectException":
            with self._lock:
                self._bucket(bucket).refused += 1

    def _header(self, image: ImageRef) -> HeaderInfo:
        """The object's real format and size, from its first 64 KiB (one ranged GET)."""
        bucket, key = image.s3_location  # type: ignore[misc]
        if self.s3_client is None:
            return HeaderInfo(None)
        try:
            body = self.s3_client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{_HEADER_BYTES - 1}")["Body"]
            return probe_header(body.read())
        except Exception as exc:
            raise translate(exc, f"reading {image.uri}") from None

    def _attempt(self, members: list[_Member], request: Callable[[list[dict[str, Any]]], dict[str, Any]], *, spent: int) -> Sent:
        images = [member.image for member in members]
        referenced = [image["S3Object"]["Bucket"] for image in images if "S3Object" in image]
        try:
            response, answered = self.caller.call(lambda: request(images))
        except CallFailed as failed:
            calls = spent + failed.answered
            code = aws_error_info(failed.cause).code
            if referenced and code in _RETRY_AS_BYTES:
                raise _Refused(code, calls) from None
            raise self._error(failed.cause, calls) from None
        with self._lock:
            for bucket in referenced:
                self._bucket(bucket).in_place_ok += 1
        return Sent(response, [(member.width, member.height) for member in members], spent + answered)

    def _error(self, exc: BaseException, api_calls: int) -> IndexerError:
        """The table's verdict: fatal for the run, usage, or this image's retryable/permanent error."""
        return translate(exc, _DOING, reached_before=self.caller.reached_service, api_calls=api_calls)

    def close(self) -> None:
        pass

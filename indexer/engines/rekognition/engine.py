"""AWS Rekognition ``DetectFaces`` with ``Attributes=["ALL"]``.

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

import threading
from dataclasses import dataclass
from typing import Any

from ...attributes import ALL_ATTRIBUTES
from ...aws import BucketRegions, is_aws_endpoint
from ...core import Analysis, ByteReader, ImageRef
from ...errors import FatalError, ImageError, IndexerError, aws_error_info, translate
from ...ratelimit import CallFailed, RetryingCaller, RetryPolicy
from ..base import Capabilities
from .images import HeaderInfo, can_reference_in_s3, fits_s3_reference, prepare_bytes, probe_header

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


class _Refused(Exception):
    """An ``S3Object`` request refused in a way the same image sent as bytes may not be."""

    def __init__(self, code: str, api_calls: int):
        super().__init__(code)
        self.code = code
        self.api_calls = api_calls


class RekognitionEngine:
    """DetectFaces through boto3; thread-safe (boto3 clients are)."""

    name = "rekognition"
    capabilities = CAPABILITIES

    def __init__(self, client: Any, *, s3_client: Any = None, caller: RetryingCaller | None = None, s3_in_place: bool | None = None):
        self.client = client
        self.s3_client = s3_client
        self.caller = caller or RetryingCaller(None, RetryPolicy(max_attempts=1))
        self.s3_in_place = rekognition_reads_s3(client, s3_client) if s3_in_place is None else s3_in_place
        self.region = getattr(getattr(client, "meta", None), "region_name", None)
        self._regions = BucketRegions(s3_client) if s3_client is not None else None
        self._lock = threading.Lock()
        self._buckets: dict[str, _BucketState] = {}

    def prepare(self) -> None:
        """Nothing to start: the clients exist, and credentials or permissions are checked by the
        first call, whose failure stops the run (:mod:`indexer.errors`) - a check call here would
        only cost one more call per run."""

    # -- analysis ------------------------------------------------------------------------------

    def analyze(self, image: ImageRef, read_bytes: ByteReader) -> Analysis:
        if image.size == 0 and image.s3_location is not None:  # a local file is read: its size may be unknown
            raise ImageError("EmptyObject", "zero-byte object: not an image; nothing was called")
        if image.archived:
            raise ImageError(
                "ObjectArchived",
                "archived (GLACIER/DEEP_ARCHIVE) and not restored: restore it and it is analysed by the next run",
            )
        spent, reencode = 0, False
        if self._may_reference(image):
            bucket, key = image.s3_location  # type: ignore[misc]
            info = self._header(image)
            if fits_s3_reference(info, image.size):
                try:
                    return self._detect({"S3Object": {"Bucket": bucket, "Name": key}}, info.width, info.height)
                except _Refused as refused:
                    self._note_refusal(bucket, refused.code)
                    spent, reencode = refused.api_calls, refused.code == "InvalidImageFormatException"
        try:
            prepared = prepare_bytes(read_bytes(), reencode=reencode)
        except (ImageError, FatalError) as exc:  # the refused S3Object call was billed whatever comes next
            exc.api_calls += spent
            raise
        return self._detect({"Bytes": prepared.data}, prepared.width, prepared.height, spent=spent)

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

    def _detect(self, image: dict[str, Any], width: int | None, height: int | None, *, spent: int = 0) -> Analysis:
        try:
            response, answered = self.caller.call(lambda: self.client.detect_faces(Image=image, Attributes=["ALL"]))
        except CallFailed as failed:
            calls = spent + failed.answered
            code = aws_error_info(failed.cause).code
            if "S3Object" in image and code in _RETRY_AS_BYTES:
                raise _Refused(code, calls) from None
            raise self._error(failed.cause, calls) from None
        if "S3Object" in image:
            with self._lock:
                self._bucket(image["S3Object"]["Bucket"]).in_place_ok += 1
        return Analysis(face_details=response.get("FaceDetails", []), width=width, height=height, api_calls=spent + answered)

    def _error(self, exc: BaseException, api_calls: int) -> IndexerError:
        """The table's verdict: fatal for the run, usage, or this image's retryable/permanent error."""
        return translate(exc, _DOING, reached_before=self.caller.reached_service, api_calls=api_calls)

    def close(self) -> None:
        pass

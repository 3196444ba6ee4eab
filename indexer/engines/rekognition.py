"""AWS Rekognition ``DetectFaces`` with ``Attributes=["ALL"]``.

An S3 object Rekognition can read (JPEG/PNG up to 15 MB, same region) is passed as an
``S3Object`` reference and never downloaded; only its first 64 KiB are read, for the image's
dimensions. Everything else is read, made upright and small enough by :mod:`indexer.images`,
and sent as bytes. Pacing, retries and the count of billable calls are the caller's
(:class:`indexer.ratelimit.RetryingCaller`), so botocore itself tries each call once.
"""

from __future__ import annotations

from typing import Any

from ..errors import ImageError, fatal_from_aws, image_error_from_aws
from ..images import can_reference_in_s3, dimensions_from_header, prepare_bytes
from ..ratelimit import RetryingCaller, RetryPolicy
from .base import ALL_ATTRIBUTES, Analysis, ByteReader, Capabilities, ImageRef

CAPABILITIES = Capabilities(name="rekognition", attributes=ALL_ATTRIBUTES)
_HEADER_BYTES = 65536


class RekognitionEngine:
    """DetectFaces through boto3; thread-safe (boto3 clients are)."""

    name = "rekognition"
    capabilities = CAPABILITIES

    def __init__(self, client: Any, *, s3_client: Any = None, caller: RetryingCaller | None = None):
        self.client = client
        self.s3_client = s3_client
        self.caller = caller or RetryingCaller(None, RetryPolicy(max_attempts=1))

    def analyze(self, image: ImageRef, read_bytes: ByteReader) -> Analysis:
        width = height = None
        if can_reference_in_s3(image):
            bucket, key = image.s3_location  # type: ignore[misc]
            request = {"S3Object": {"Bucket": bucket, "Name": key}}
            width, height = self._s3_dimensions(bucket, key) or (None, None)
        else:
            prepared = prepare_bytes(read_bytes())
            request = {"Bytes": prepared.data}
            width, height = prepared.width, prepared.height
        try:
            response, attempts = self.caller.call(lambda: self.client.detect_faces(Image=request, Attributes=["ALL"]))
        except Exception as exc:
            raise self._error(exc) from None
        return Analysis(face_details=response.get("FaceDetails", []), width=width, height=height, api_calls=attempts)

    def compare_faces(self, source: dict[str, Any], target: dict[str, Any], similarity_threshold: float = 80.0) -> dict[str, Any]:
        """``CompareFaces`` between two Rekognition ``Image`` dicts (S3Object or Bytes)."""
        try:
            response, _ = self.caller.call(
                lambda: self.client.compare_faces(
                    SourceImage=source, TargetImage=target, SimilarityThreshold=similarity_threshold
                )
            )
        except Exception as exc:
            raise self._error(exc) from None
        return response

    def _s3_dimensions(self, bucket: str, key: str) -> tuple[int, int] | None:
        if self.s3_client is None:
            return None
        try:
            body = self.s3_client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{_HEADER_BYTES - 1}")["Body"]
            return dimensions_from_header(body.read())
        except Exception:
            return None  # dimensions are a nicety; the analysis does not depend on them

    @staticmethod
    def _error(exc: Exception) -> Exception:
        """A fatal error for credentials trouble, else this image's (classified) error."""
        fatal = fatal_from_aws(exc, "calling Rekognition")
        if fatal:
            return fatal
        from botocore.exceptions import EndpointConnectionError

        if isinstance(exc, EndpointConnectionError):
            return ImageError("EndpointConnectionError", str(exc), retryable=True)
        error = image_error_from_aws(exc)
        error.attempts = getattr(exc, "attempts", 1)  # type: ignore[attr-defined]
        return error

    def close(self) -> None:
        pass


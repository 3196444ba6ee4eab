"""A local HTTP endpoint that speaks Rekognition's JSON 1.1 protocol, for tests and benchmarks.

moto has no DetectFaces, so this is a small server of our own: boto3 talks to it through
``AWS_ENDPOINT_URL_REKOGNITION`` exactly as it talks to AWS (signing, JSON protocol, error
parsing, retries). Every request is validated against botocore's input shape and every response
against its output shape, so a fixture that AWS could never return fails the test that uses it.

Faces are a function of image *content*: tests register the bytes of an image with the
FaceDetails it should yield. ``S3Object`` images are fetched from the S3 endpoint (moto) - but
only the way the real service can: when that S3 counts as AWS S3 (``s3_is_aws``) and the bucket
is in the endpoint's own ``region``; otherwise the answer is ``InvalidS3ObjectException``, as
AWS gives for a bucket in another region or an object it cannot read. Images are validated as
the service documents (docs.aws.amazon.com/rekognition/latest/dg/limits.html): JPEG/PNG by
content, at most 5 MiB as bytes / 15 MiB as an S3 object, at least 80 px a side. Latency, an
admitted-calls-per-second ceiling, random faults, dropped connections and refusals of every
request after N (AccessDenied, UnrecognizedClient, InvalidSignature, ExpiredToken) can be
switched on to stand in for the real service.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

_MODEL = botocore.session.get_session().get_service_model("rekognition")


def validate(shape_name: str, value: dict[str, Any]) -> None:
    """Raise AssertionError when ``value`` does not fit botocore's ``shape_name``."""
    report = ParamValidator().validate(value, _MODEL.shape_for(shape_name))
    if report.has_errors():
        raise AssertionError(f"{shape_name} does not match botocore's model:\n{report.generate_report()}")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class CallRecord:
    operation: str
    kind: str  # "S3Object" or "Bytes"
    digest: str | None
    size: tuple[int, int] | None
    outcome: str  # "ok" or the error code


@dataclass
class Behaviour:
    latency: float = 0.0
    #: Calls admitted per second; the excess gets ProvisionedThroughputExceededException.
    admit_per_second: float | None = None
    #: Share of calls failed at random with ThrottlingException or InternalServerError.
    fault_rate: float = 0.0
    seed: int = 0


#: Rekognition's documented limits (see the module docstring); AWS's "MB" is binary (botocore
#: models the 5 MB bytes limit as ``max: 5242880``).
BYTES_MAX = 5 * 2**20
S3_OBJECT_MAX = 15 * 2**20
MIN_SIDE = 80
#: Request-wide refusals the endpoint can be switched to, with AWS's status and wording.
REFUSALS: dict[str, tuple[int, str]] = {
    "AccessDeniedException": (
        400,
        "User: arn:aws:iam::123456789012:user/indexer is not authorized to perform: rekognition:DetectFaces "
        "because no identity-based policy allows the rekognition:DetectFaces action",
    ),
    "UnrecognizedClientException": (400, "The security token included in the request is invalid."),
    "InvalidSignatureException": (
        403,
        "Signature expired: 20261129T030000Z is now earlier than 20261129T031000Z (20261129T031500Z - 5 min.)",
    ),
    "ExpiredTokenException": (400, "The security token included in the request is expired"),
}
_UNREADABLE_S3 = "Unable to get object metadata from S3. Check object key, region and/or access permissions."


@dataclass
class FakeRekognition:
    s3_endpoint: str | None = None
    behaviour: Behaviour = field(default_factory=Behaviour)
    #: The region this endpoint serves: it reads S3Object only from buckets in it.
    region: str = "us-east-1"
    #: Whether the S3 endpoint counts as AWS S3 (False: a MinIO/Ceph/R2 stand-in Rekognition
    #: cannot read, so every S3Object is InvalidS3ObjectException).
    s3_is_aws: bool = True
    #: (code, calls allowed first): every request after that many is refused with ``code``.
    refuse: tuple[str, int] | None = None
    #: Close this many connections without answering (a network fault: no answer, no call).
    drop_connections: int = 0
    faces_by_digest: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors_by_digest: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    calls: list[CallRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._admitted: deque[float] = deque()
        self._random = random.Random(self.behaviour.seed)
        self._server: ThreadingHTTPServer | None = None
        self._s3 = None
        #: DetectFaces requests answered so far (for ``refuse_after``).
        self.requests = 0

    # -- set-up --------------------------------------------------------------------------------

    def register(self, content: bytes, faces: list[dict[str, Any]]) -> str:
        """The FaceDetails DetectFaces returns for an image with exactly these bytes."""
        validate("DetectFacesResponse", {"FaceDetails": faces})
        key = digest(content)
        self.faces_by_digest[key] = faces
        return key

    def fail_on(self, content: bytes, code: str, message: str, status: int = 400) -> None:
        """DetectFaces answers this error for an image with these bytes."""
        self.errors_by_digest[digest(content)] = (status, code, message)

    def reset(self) -> None:
        with self._lock:
            self.faces_by_digest.clear()
            self.errors_by_digest.clear()
            self.calls.clear()
            self._admitted.clear()
            self.region, self.s3_is_aws, self.refuse, self.drop_connections = "us-east-1", True, None, 0
            self.requests = 0

    def refuse_after(self, calls: int, code: str) -> None:
        """Answer ``code`` (one of :data:`REFUSALS`) to every request after ``calls`` more."""
        with self._lock:
            self.refuse = (code, self.requests + calls)

    def _take_drop(self) -> bool:
        with self._lock:
            if self.drop_connections > 0:
                self.drop_connections -= 1
                return True
            return False

    def count(self, outcome: str | None = None) -> int:
        with self._lock:
            return sum(1 for c in self.calls if outcome is None or c.outcome == outcome)

    # -- server --------------------------------------------------------------------------------

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if fake._take_drop():
                    self.close_connection = True
                    self.connection.shutdown(2)  # no answer at all: the client sees a closed connection
                    return
                target = self.headers.get("X-Amz-Target", "")
                status, payload = fake.handle(target.rpartition(".")[2], body)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/x-amz-json-1.1")
                    self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (a killed run): nothing to answer

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 256
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # -- the protocol --------------------------------------------------------------------------

    def handle(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if operation != "DetectFaces":
            return 400, {"__type": "UnknownOperationException", "message": operation}
        if self.behaviour.latency:
            time.sleep(self.behaviour.latency)
        refused = self._refusal()
        if refused:
            self._record(operation, "?", None, None, refused[1]["__type"])
            return refused
        rejected = self._limit_or_fault()
        if rejected:
            self._record(operation, "?", None, None, rejected[1]["__type"])
            return rejected
        image = body.get("Image", {})
        request = dict(body)
        kind = "S3Object" if "S3Object" in image else "Bytes"
        try:
            content = self._content(image)
        except LookupError as exc:
            self._record(operation, kind, None, None, "InvalidS3ObjectException")
            return 400, {"__type": "InvalidS3ObjectException", "message": str(exc)}
        if kind == "Bytes":
            request = {**body, "Image": {"Bytes": content}}
        validate("DetectFacesRequest", request)
        key = digest(content)
        size = _image_size(content)
        if key in self.errors_by_digest:
            status, code, message = self.errors_by_digest[key]
            self._record(operation, kind, key, size, code)
            return status, {"__type": code, "message": message}
        invalid = _invalid(content, kind, size)
        if invalid:
            status, code, message = invalid
            self._record(operation, kind, key, size, code)
            return status, {"__type": code, "message": message}
        response = {"FaceDetails": self.faces_by_digest.get(key, [])}
        validate("DetectFacesResponse", response)
        self._record(operation, kind, key, size, "ok")
        return 200, response

    def _refusal(self) -> tuple[int, dict[str, Any]] | None:
        with self._lock:
            self.requests += 1
            if self.refuse is None or self.requests <= self.refuse[1]:
                return None
            code = self.refuse[0]
        status, message = REFUSALS[code]
        return status, {"__type": code, "message": message}

    def _content(self, image: dict[str, Any]) -> bytes:
        if "Bytes" in image:
            return base64.b64decode(image["Bytes"])
        obj = image["S3Object"]
        client = self._s3_client()
        try:
            if not self.s3_is_aws:
                raise LookupError("not AWS S3")
            location = client.get_bucket_location(Bucket=obj["Bucket"]).get("LocationConstraint") or "us-east-1"
            if location != self.region:
                raise LookupError(f"bucket in {location}, endpoint in {self.region}")
            return client.get_object(Bucket=obj["Bucket"], Key=obj["Name"])["Body"].read()
        except Exception as exc:
            raise LookupError(_UNREADABLE_S3) from exc

    def _s3_client(self):
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client(
                "s3",
                endpoint_url=self.s3_endpoint,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._s3

    def _limit_or_fault(self) -> tuple[int, dict[str, Any]] | None:
        behaviour = self.behaviour
        with self._lock:
            if behaviour.admit_per_second:
                now = time.monotonic()
                while self._admitted and now - self._admitted[0] >= 1.0:
                    self._admitted.popleft()
                if len(self._admitted) >= behaviour.admit_per_second:
                    return 400, {"__type": "ProvisionedThroughputExceededException", "message": "Provisioned rate exceeded"}
                self._admitted.append(now)
            if behaviour.fault_rate and self._random.random() < behaviour.fault_rate:
                if self._random.random() < 0.5:
                    return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
                return 500, {"__type": "InternalServerError", "message": "Internal server error"}
        return None

    def _record(self, operation: str, kind: str, key: str | None, size, outcome: str) -> None:
        with self._lock:
            self.calls.append(CallRecord(operation, kind, key, size, outcome))


def _invalid(content: bytes, kind: str, size: tuple[int, int] | None) -> tuple[int, str, str] | None:
    """What the service answers for an image it does not take, in the order it checks."""
    limit = BYTES_MAX if kind == "Bytes" else S3_OBJECT_MAX
    if len(content) > limit:
        return 400, "ImageTooLargeException", "Image size is too large."
    is_jpeg_or_png = content.startswith(b"\xff\xd8\xff") or content.startswith(b"\x89PNG\r\n\x1a\n")
    if size is None or not is_jpeg_or_png:
        return 400, "InvalidImageFormatException", "Request has invalid image format"
    if min(size) < MIN_SIDE:
        return 400, "InvalidParameterException", "Request has invalid parameters"
    return None


def _image_size(content: bytes) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(content)) as image:
            return image.size
    except Exception:
        return None

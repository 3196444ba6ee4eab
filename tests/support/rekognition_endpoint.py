"""A local HTTP endpoint that speaks Rekognition's JSON 1.1 protocol, for tests and benchmarks.

moto has no DetectFaces, so this is a small server of our own: boto3 talks to it through
``AWS_ENDPOINT_URL_REKOGNITION`` exactly as it talks to AWS (signing, JSON protocol, error
parsing, retries). Every request is validated against botocore's input shape and every response
against its output shape, so a fixture that AWS could never return fails the test that uses it.
The constraints botocore's client does not check (maximum lengths and values, patterns, enums)
are checked here as the service checks them: a ``ValidationException`` in AWS's wording.

Faces are a function of image *content*: tests register the bytes of an image with the
FaceDetails it should yield, and optionally who each face is (its identity). ``S3Object`` images
are fetched from the S3 endpoint (moto) - but only the way the real service can: when that S3
counts as AWS S3 (``s3_is_aws``) and the bucket is in the endpoint's own ``region``; otherwise
the answer is ``InvalidS3ObjectException``, as AWS gives for a bucket in another region or an
object it cannot read. Images are validated as the service documents
(docs.aws.amazon.com/rekognition/latest/dg/limits.html): JPEG/PNG by content, at most 5 MiB as
bytes / 15 MiB as an S3 object, at least 80 px a side. Latency, an admitted-calls-per-second
ceiling (per operation, as AWS's quotas are), random faults, dropped connections and refusals of
every request after N (AccessDenied, UnrecognizedClient, InvalidSignature, ExpiredToken) can be
switched on to stand in for the real service.

Operations: DetectFaces, CompareFaces, and face collections (CreateCollection,
DescribeCollection, DeleteCollection, ListCollections, IndexFaces, ListFaces, SearchFaces,
SearchFacesByImage, DeleteFaces), each a handler in :data:`OPERATIONS`. How alike two faces are
is a deterministic function of the identities tests gave them (:func:`similarity`): the same
person scores 99-100, two different people under 20, so a test states who matches whom.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

import botocore.session
from botocore.model import Shape
from botocore.validate import ParamValidator

_MODEL = botocore.session.get_session().get_service_model("rekognition")


def validate(shape_name: str, value: dict[str, Any]) -> None:
    """Raise AssertionError when ``value`` does not fit botocore's ``shape_name`` (types, required
    members, minimums) or breaks a constraint botocore leaves to the service (see
    :func:`constraint_violations`)."""
    shape = _MODEL.shape_for(shape_name)
    report = ParamValidator().validate(value, shape)
    if report.has_errors():
        raise AssertionError(f"{shape_name} does not match botocore's model:\n{report.generate_report()}")
    broken = constraint_violations(shape, value)
    if broken:
        raise AssertionError(f"{shape_name} breaks the model's constraints: {'; '.join(broken)}")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- what the service checks that botocore's client does not --------------------------------------


def constraint_violations(shape: Shape, value: Any, path: str = "") -> list[str]:
    """Every model constraint ``value`` breaks, worded as AWS's request validation words them
    ("Value 'a/b' at 'collectionId' failed to satisfy constraint: Member must satisfy regular
    expression pattern: [a-zA-Z0-9_.\\-]+"). Members are named in lowerCamelCase, list items
    ``faceIds.1.member`` (1-based), as the service names them.

    botocore's client checks types, required members and minimums only; the service also checks
    maximums, patterns and enums. Blobs are left to the image checks (:func:`_invalid`), and a
    pattern Python's ``re`` cannot read (``\\p{L}`` in tag patterns) is not checked.
    """
    if value is None:
        return []
    kind = shape.type_name
    if kind == "structure":
        found = []
        for name, member in shape.members.items():
            if isinstance(value, dict) and name in value:
                found += constraint_violations(member, value[name], _join(path, name))
        return found
    found = [f"Value '{_shown(value, kind)}' at '{path}' failed to satisfy constraint: {rule}" for rule in _broken_rules(shape, value)]
    if kind == "list":
        for i, item in enumerate(value):
            found += constraint_violations(shape.member, item, f"{path}.{i + 1}.member")
    elif kind == "map":
        for key, item in value.items():
            found += constraint_violations(shape.key, key, f"{path}.{key}.key")
            found += constraint_violations(shape.value, item, f"{path}.{key}.value")
    return found


def _broken_rules(shape: Shape, value: Any) -> list[str]:
    meta, kind = shape.metadata, shape.type_name
    rules = []
    if kind in ("string", "list", "map"):
        size, what = len(value), "length"
    elif kind in ("integer", "long", "float", "double"):
        size, what = value, "value"
    else:
        return []
    if "max" in meta and size > meta["max"]:
        rules.append(f"Member must have {what} less than or equal to {meta['max']}")
    if "min" in meta and size < meta["min"]:
        rules.append(f"Member must have {what} greater than or equal to {meta['min']}")
    if kind == "string" and "pattern" in meta and not _matches(meta["pattern"], value):
        rules.append(f"Member must satisfy regular expression pattern: {meta['pattern']}")
    if kind == "string" and "enum" in meta and value not in meta["enum"]:
        rules.append(f"Member must satisfy enum value set: [{', '.join(meta['enum'])}]")
    return rules


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return True  # a Java-only construct (\p{L}): not checked here


def _join(path: str, name: str) -> str:
    camel = name[:1].lower() + name[1:]
    return f"{path}.{camel}" if path else camel


def _shown(value: Any, kind: str) -> str:
    """A value as the service prints it (Java's toString: ``101.0``, ``[a, b]``)."""
    if kind in ("float", "double"):
        return str(float(value))
    if kind == "list":
        return "[" + ", ".join(str(item) for item in value) + "]"
    return str(value)


def validation_message(broken: list[str]) -> str:
    """AWS's ValidationException message for these broken constraints."""
    count = len(broken)
    return f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(broken)


# -- records -----------------------------------------------------------------------------------


@dataclass
class CallRecord:
    operation: str
    #: How each image went, in request order ("S3Object" or "Bytes"; CompareFaces "Bytes+S3Object"
    #: for source+target); "-" for an operation without an image, "?" when refused before reading.
    kind: str
    #: The (first) image's content digest and size.
    digest: str | None
    size: tuple[int, int] | None
    outcome: str  # "ok" or the error code


@dataclass
class Behaviour:
    latency: float = 0.0
    #: Calls admitted per second, per operation; the excess gets ProvisionedThroughputExceededException.
    admit_per_second: float | None = None
    #: Share of calls failed at random with ThrottlingException or InternalServerError.
    fault_rate: float = 0.0
    seed: int = 0


#: Rekognition's documented limits (see the module docstring); AWS's "MB" is binary (botocore
#: models the 5 MB bytes limit as ``max: 5242880``).
BYTES_MAX = 5 * 2**20
S3_OBJECT_MAX = 15 * 2**20
MIN_SIDE = 80
#: What IndexFaces, CreateCollection and the searches report as the collection's face model
#: (the latest version, given to every new collection).
FACE_MODEL_VERSION = "7.0"
#: "IndexFaces returns no more than 100 detected faces in an image, even if you specify a larger
#: value for MaxFaces"; CompareFaces compares "each of the 100 largest faces" of the target
#: (botocore's model documentation of both operations).
LARGEST_FACES = 100
#: The threshold CompareFaces (SimilarityThreshold) and the searches (FaceMatchThreshold) apply
#: when the request gives none: "The default value is 80%" (botocore's model documentation).
DEFAULT_THRESHOLD = 80.0
#: Each operation's QualityFilter when the request gives none (botocore's model documentation:
#: AUTO for IndexFaces, NONE for CompareFaces and SearchFacesByImage).
DEFAULT_QUALITY = {"IndexFaces": "AUTO", "CompareFaces": "NONE", "SearchFacesByImage": "NONE"}
#: AWS does not publish its quality bars. The stand-in's: a face whose detection Confidence is
#: under the bar is filtered out (reason LOW_FACE_QUALITY). Fixtures (Confidence 99.5) pass all.
QUALITY_BARS: dict[str, float | None] = {"NONE": None, "LOW": 50.0, "AUTO": 75.0, "MEDIUM": 75.0, "HIGH": 90.0}
#: ListFaces / ListCollections page when the request gives no MaxResults (or 0, which the model
#: allows): AWS does not document its default page size; this is the stand-in's.
DEFAULT_PAGE = 1000
#: The part of a FaceDetail every face operation returns ("A DEFAULT subset of facial attributes
#: - BoundingBox, Confidence, Pose, Quality, and Landmarks - will always be returned"), and the
#: FaceDetail member each other Attribute value asks for.
DEFAULT_ATTRIBUTES = ("BoundingBox", "Confidence", "Pose", "Quality", "Landmarks")
ATTRIBUTE_MEMBERS = {
    "AGE_RANGE": "AgeRange", "BEARD": "Beard", "EMOTIONS": "Emotions", "EYE_DIRECTION": "EyeDirection",
    "EYEGLASSES": "Eyeglasses", "EYES_OPEN": "EyesOpen", "GENDER": "Gender", "MOUTH_OPEN": "MouthOpen",
    "MUSTACHE": "Mustache", "FACE_OCCLUDED": "FaceOccluded", "SMILE": "Smile", "SUNGLASSES": "Sunglasses",
}
#: CompareFaces describes target faces as ComparedFace: these members of their FaceDetail.
COMPARED_FACE_MEMBERS = tuple(_MODEL.shape_for("ComparedFace").members)
#: Similarity scores of the stand-in (see :func:`similarity`).
SAME_PERSON_MIN, SAME_PERSON_SPREAD, OTHER_PERSON_MAX = 99.0, 0.9, 20.0
ACCOUNT = "123456789012"
#: Request-wide refusals the endpoint can be switched to, with AWS's status and wording.
REFUSALS: dict[str, tuple[int, str]] = {
    "AccessDeniedException": (
        400,
        "User: arn:aws:iam::123456789012:user/indexer is not authorized to perform: rekognition:{operation} "
        "because no identity-based policy allows the rekognition:{operation} action",
    ),
    "UnrecognizedClientException": (400, "The security token included in the request is invalid."),
    "InvalidSignatureException": (
        403,
        "Signature expired: 20261129T030000Z is now earlier than 20261129T031000Z (20261129T031500Z - 5 min.)",
    ),
    "ExpiredTokenException": (400, "The security token included in the request is expired"),
}
_UNREADABLE_S3 = "Unable to get object metadata from S3. Check object key, region and/or access permissions."
#: The service's wording (docs.aws.amazon.com/rekognition/latest/dg/error-handling.html, and the
#: messages boto3 users quote from SearchFacesByImage and SearchFaces).
NO_FACES = "There are no faces in the image. Should be at least 1."
_FACE_NOT_FOUND = "faceId was not found in the collection."
_INVALID_TOKEN = "Invalid Token"
_IMAGE_IDS = uuid.UUID("6f1d0c43-6a0b-4b8e-9a43-5d1c2b0e7a11")  # namespace of ImageIds (uuid5 of the content)


class ServiceError(Exception):
    """An error answer: HTTP status, AWS error code and message."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class DetectedFace:
    """A face the endpoint finds in an image: its FaceDetail, who it is, and which face it is."""

    detail: dict[str, Any]
    identity: str
    #: ``<content digest>:<index>``: this face of this image (one identity may have many).
    instance: str

    @property
    def area(self) -> float:
        box = self.detail.get("BoundingBox", {})
        return float(box.get("Width", 0.0)) * float(box.get("Height", 0.0))

    @property
    def confidence(self) -> float:
        return float(self.detail.get("Confidence", 0.0))


@dataclass(frozen=True)
class IndexedFace:
    """A face in a collection: the ``Face`` record the service returns, and who it is."""

    record: dict[str, Any]
    identity: str
    instance: str


@dataclass
class Collection:
    name: str
    created: float
    faces: dict[str, IndexedFace] = field(default_factory=dict)  # by FaceId, in indexing order


@dataclass(frozen=True)
class RequestImage:
    kind: str  # "S3Object" or "Bytes"
    content: bytes
    digest: str
    size: tuple[int, int] | None


@dataclass
class Call:
    """One request, its images read: what a handler gets."""

    operation: str
    body: dict[str, Any]
    images: dict[str, RequestImage]  # by request member: Image, SourceImage, TargetImage


def similarity(a: DetectedFace | IndexedFace, b: DetectedFace | IndexedFace) -> float:
    """How alike two faces are: a deterministic stand-in for the service's score.

    The same face of the same image: 100. The same identity: 99.0-99.9, varying a little by
    face pair. Different identities: under 20. Symmetric, so CompareFaces and the searches agree.
    """
    if a.instance == b.instance:
        return 100.0
    pair = "|".join(sorted((a.instance, b.instance))).encode()
    unit = int(hashlib.sha256(pair).hexdigest()[:8], 16) / 0xFFFFFFFF
    if a.identity == b.identity:
        return round(SAME_PERSON_MIN + SAME_PERSON_SPREAD * unit, 4)
    return round(OTHER_PERSON_MAX * unit * 0.999, 4)


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
    #: Who each registered face is, by content digest (same order as ``faces_by_digest``).
    identities_by_digest: dict[str, list[str]] = field(default_factory=dict)
    errors_by_digest: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    collections: dict[str, Collection] = field(default_factory=dict)
    calls: list[CallRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._admitted: dict[str, deque[float]] = {}
        self._random = random.Random(self.behaviour.seed)
        self._server: ThreadingHTTPServer | None = None
        self._s3 = None
        #: Pagination tokens handed out: token -> (operation, collection, last key returned).
        self._tokens: dict[str, tuple[str, str | None, str]] = {}
        #: Requests received so far, every operation (for ``refuse_after``).
        self.requests = 0

    # -- set-up --------------------------------------------------------------------------------

    def register(self, content: bytes, faces: list[dict[str, Any]], identities: Iterable[str] | None = None) -> str:
        """The FaceDetails every operation finds in an image with exactly these bytes, and who
        each face is (default: each face a person of its own). Returns the content digest."""
        validate("DetectFacesResponse", {"FaceDetails": faces})
        key = digest(content)
        labels = list(identities) if identities is not None else [f"{key}:{i}" for i in range(len(faces))]
        if len(labels) != len(faces):
            raise ValueError(f"{len(faces)} faces but {len(labels)} identities")
        self.faces_by_digest[key] = faces
        self.identities_by_digest[key] = labels
        return key

    def fail_on(self, content: bytes, code: str, message: str, status: int = 400) -> None:
        """Every operation answers this error for an image with these bytes."""
        self.errors_by_digest[digest(content)] = (status, code, message)

    def create_collection(self, name: str) -> None:
        """A collection that exists before the test's first call (no call recorded)."""
        with self._lock:
            self.collections.setdefault(name, Collection(name, time.time()))

    def expected_similarity(self, a: tuple[bytes, int], b: tuple[bytes, int]) -> float:
        """The Similarity the endpoint gives face ``a[1]`` of image ``a[0]`` against face ``b[1]``
        of image ``b[0]`` (both registered)."""
        return similarity(self._detected(digest(a[0]))[a[1]], self._detected(digest(b[0]))[b[1]])

    def reset(self) -> None:
        with self._lock:
            self.faces_by_digest.clear()
            self.identities_by_digest.clear()
            self.errors_by_digest.clear()
            self.collections.clear()
            self.calls.clear()
            self._admitted.clear()
            self._tokens.clear()
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

    def count(self, outcome: str | None = None, *, operation: str | None = None) -> int:
        """Calls answered so far, by outcome ("ok" or an error code) and operation when given."""
        with self._lock:
            return sum(
                1 for c in self.calls
                if (outcome is None or c.outcome == outcome) and (operation is None or c.operation == operation)
            )

    def billed(self) -> Counter[str]:
        """Answered calls per operation (the project's billable figure: a refusal is an answer)."""
        with self._lock:
            return Counter(c.operation for c in self.calls)

    def face_ids(self, collection: str) -> list[str]:
        """The FaceIds a collection holds, in indexing order (a test's look behind the API)."""
        with self._lock:
            return list(self.collections[collection].faces)

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
        """One request, in the order the service works: refusals (credentials, permission), rate
        and faults, validating the request, reading its images, each image's own errors, then
        the operation itself. Every answer is recorded."""
        handler = OPERATIONS.get(operation)
        if handler is None:
            return 400, {"__type": "UnknownOperationException", "message": operation}
        if self.behaviour.latency:
            time.sleep(self.behaviour.latency)
        call = Call(operation, body, {})
        try:
            self._refusal(operation)
            self._limit_or_fault(operation)
            self._validate_request(call)
            self._read_images(call)
            for image in call.images.values():
                _check_image(image, self.errors_by_digest.get(image.digest))
            response = handler(self, call)
        except ServiceError as error:
            self._record_answer(call, error.code)
            return error.status, {"__type": error.code, "message": error.message}
        validate(f"{operation}Response", response)
        self._record_answer(call, "ok")
        return 200, response

    def _refusal(self, operation: str) -> None:
        with self._lock:
            self.requests += 1
            if self.refuse is None or self.requests <= self.refuse[1]:
                return
            code = self.refuse[0]
        status, message = REFUSALS[code]
        raise ServiceError(code, message.format(operation=operation), status)

    def _limit_or_fault(self, operation: str) -> None:
        behaviour = self.behaviour
        with self._lock:
            if behaviour.admit_per_second:
                admitted = self._admitted.setdefault(operation, deque())
                now = time.monotonic()
                while admitted and now - admitted[0] >= 1.0:
                    admitted.popleft()
                if len(admitted) >= behaviour.admit_per_second:
                    raise ServiceError("ProvisionedThroughputExceededException", "Provisioned rate exceeded")
                admitted.append(now)
            if behaviour.fault_rate and self._random.random() < behaviour.fault_rate:
                if self._random.random() < 0.5:
                    raise ServiceError("ThrottlingException", "Rate exceeded")
                raise ServiceError("InternalServerError", "Internal server error", 500)

    def _read_images(self, call: Call) -> None:
        """Each image of the request into ``call.images``, read as the service reads it."""
        for member in _IMAGE_MEMBERS[call.operation]:
            image = call.body[member]
            kind = "S3Object" if "S3Object" in image else "Bytes"
            try:
                content = self._content(image)
            except LookupError as exc:
                call.images[member] = RequestImage(kind, b"", "", None)
                raise ServiceError("InvalidS3ObjectException", str(exc)) from None
            call.images[member] = RequestImage(kind, content, digest(content), _image_size(content))

    def _validate_request(self, call: Call) -> None:
        """botocore's own checks (a client that skipped them is a test bug: AssertionError), then
        the ones it leaves to the service, answered as the service answers them."""
        shape = _MODEL.operation_model(call.operation).input_shape
        report = ParamValidator().validate(call.body, shape)
        if report.has_errors():
            raise AssertionError(f"{shape.name} does not match botocore's model:\n{report.generate_report()}")
        broken = constraint_violations(shape, call.body)
        if broken:
            raise ServiceError("ValidationException", validation_message(broken))

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

    def _record_answer(self, call: Call, outcome: str) -> None:
        members = _IMAGE_MEMBERS[call.operation]
        if not members:
            self._record(call.operation, "-", None, None, outcome)
            return
        sent = [call.body.get(member) for member in members]
        if not all(isinstance(image, dict) for image in sent) or not call.images:
            self._record(call.operation, "?", None, None, outcome)  # refused before the images were read
            return
        kind = "+".join("S3Object" if "S3Object" in image else "Bytes" for image in sent)
        first = call.images[members[0]]
        self._record(call.operation, kind, first.digest or None, first.size, outcome)

    def _record(self, operation: str, kind: str, key: str | None, size, outcome: str) -> None:
        # Five plain arguments: the benches wrap this method to time each call (bench/_harness.py).
        with self._lock:
            self.calls.append(CallRecord(operation, kind, key, size, outcome))

    # -- faces -----------------------------------------------------------------------------------

    def _detected(self, key: str) -> list[DetectedFace]:
        faces = self.faces_by_digest.get(key, [])
        identities = self.identities_by_digest.get(key, [])
        return [DetectedFace(detail, identity, f"{key}:{i}") for i, (detail, identity) in enumerate(zip(faces, identities))]

    def _largest_first(self, image: RequestImage, quality: str) -> tuple[list[DetectedFace], list[DetectedFace]]:
        """The image's faces, largest bounding box first: (kept, filtered out by ``quality``)."""
        faces = sorted(self._detected(image.digest), key=lambda face: face.area, reverse=True)
        bar = QUALITY_BARS[quality]
        if bar is None:
            return faces, []
        return [f for f in faces if f.confidence >= bar], [f for f in faces if f.confidence < bar]

    def _searched_face(self, call: Call, member: str = "Image") -> DetectedFace:
        """The largest face of an image the operation compares, or the service's refusal."""
        quality = call.body.get("QualityFilter", DEFAULT_QUALITY[call.operation])
        faces, _ = self._largest_first(call.images[member], quality)
        if not faces:
            raise ServiceError("InvalidParameterException", NO_FACES)
        return faces[0]

    def _collection(self, name: str) -> Collection:
        collection = self.collections.get(name)
        if collection is None:
            raise ServiceError("ResourceNotFoundException", f"The collection id: {name} does not exist")
        return collection

    def _matches(self, collection: Collection, face: DetectedFace | IndexedFace, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Collection faces at least ``FaceMatchThreshold`` alike, most alike first, ``MaxFaces`` of them."""
        threshold = body.get("FaceMatchThreshold", DEFAULT_THRESHOLD)
        scored = [
            (similarity(face, indexed), indexed) for face_id, indexed in collection.faces.items()
            if not (isinstance(face, IndexedFace) and indexed.record["FaceId"] == face.record["FaceId"])
        ]
        scored = sorted((pair for pair in scored if pair[0] >= threshold), key=lambda pair: -pair[0])
        return [{"Similarity": score, "Face": dict(indexed.record)} for score, indexed in scored[: body.get("MaxFaces", len(scored))]]

    def _page(self, operation: str, collection: str | None, keys: list[str], body: dict[str, Any]) -> tuple[list[str], str | None]:
        """One page of ``keys`` (sorted) after the request's NextToken, and the next token."""
        after = ""
        if "NextToken" in body:
            state = self._tokens.get(body["NextToken"])
            if state is None or state[:2] != (operation, collection):
                raise ServiceError("InvalidPaginationTokenException", _INVALID_TOKEN)
            after = state[2]
        size = body.get("MaxResults") or DEFAULT_PAGE
        rest = [key for key in keys if key > after]
        page = rest[:size]
        if len(rest) <= size:
            return page, None
        token = uuid.uuid4().hex
        self._tokens[token] = (operation, collection, page[-1])
        return page, token

    # -- operations --------------------------------------------------------------------------------

    def _detect_faces(self, call: Call) -> dict[str, Any]:
        return {"FaceDetails": self.faces_by_digest.get(call.images["Image"].digest, [])}

    def _compare_faces(self, call: Call) -> dict[str, Any]:
        source = self._searched_face(call, "SourceImage")
        quality = call.body.get("QualityFilter", DEFAULT_QUALITY["CompareFaces"])
        targets, _ = self._largest_first(call.images["TargetImage"], quality)
        threshold = call.body.get("SimilarityThreshold", DEFAULT_THRESHOLD)
        scored = [(similarity(source, face), face) for face in targets[:LARGEST_FACES]]
        matches = sorted((pair for pair in scored if pair[0] >= threshold), key=lambda pair: -pair[0])
        return {
            "SourceImageFace": {"BoundingBox": source.detail["BoundingBox"], "Confidence": source.detail["Confidence"]},
            "FaceMatches": [{"Similarity": score, "Face": _compared(face)} for score, face in matches],
            "UnmatchedFaces": [_compared(face) for score, face in scored if score < threshold],
        }

    def _create_collection(self, call: Call) -> dict[str, Any]:
        name = call.body["CollectionId"]
        with self._lock:
            if name in self.collections:
                raise ServiceError("ResourceAlreadyExistsException", f"The collection id: {name} already exists.")
            self.collections[name] = Collection(name, time.time())
        # CreateCollection's ARN has no "arn:" prefix (AWS's own example answer shows it so).
        return {"StatusCode": 200, "CollectionArn": f"aws:rekognition:{self.region}:{ACCOUNT}:collection/{name}", "FaceModelVersion": FACE_MODEL_VERSION}

    def _describe_collection(self, call: Call) -> dict[str, Any]:
        with self._lock:
            collection = self._collection(call.body["CollectionId"])
            return {
                "FaceCount": len(collection.faces),
                "FaceModelVersion": FACE_MODEL_VERSION,
                "CollectionARN": f"arn:aws:rekognition:{self.region}:{ACCOUNT}:collection/{collection.name}",
                "CreationTimestamp": collection.created,
                "UserCount": 0,
            }

    def _delete_collection(self, call: Call) -> dict[str, Any]:
        with self._lock:
            self._collection(call.body["CollectionId"])
            del self.collections[call.body["CollectionId"]]
        return {"StatusCode": 200}

    def _list_collections(self, call: Call) -> dict[str, Any]:
        with self._lock:
            names, token = self._page("ListCollections", None, sorted(self.collections), call.body)
        response: dict[str, Any] = {"CollectionIds": names, "FaceModelVersions": [FACE_MODEL_VERSION] * len(names)}
        return {**response, "NextToken": token} if token else response

    def _index_faces(self, call: Call) -> dict[str, Any]:
        """The largest faces that pass the quality bar, up to MaxFaces (and 100), go into the
        collection; the others come back as UnindexedFaces with the reason. The same image
        indexed again with the same ExternalImageId keeps its faces: "Amazon Rekognition doesn't
        save duplicate face metadata" (the model's documentation), so their FaceIds come back."""
        body, image = call.body, call.images["Image"]
        kept, low_quality = self._largest_first(image, body.get("QualityFilter", DEFAULT_QUALITY["IndexFaces"]))
        limit = min(body.get("MaxFaces", LARGEST_FACES), LARGEST_FACES)
        attributes = body.get("DetectionAttributes", ["DEFAULT"])
        unindexed = [(face, "LOW_FACE_QUALITY") for face in low_quality] + [(face, "EXCEEDS_MAX_FACES") for face in kept[limit:]]
        records = []
        with self._lock:
            collection = self._collection(body["CollectionId"])
            for face in kept[:limit]:
                indexed = self._index_one(collection, face, image, body.get("ExternalImageId"))
                records.append({"Face": dict(indexed.record), "FaceDetail": _with_attributes(face.detail, attributes)})
        return {
            "FaceRecords": records,
            "FaceModelVersion": FACE_MODEL_VERSION,
            "UnindexedFaces": [{"Reasons": [reason], "FaceDetail": _with_attributes(face.detail, attributes)} for face, reason in unindexed],
        }

    def _index_one(self, collection: Collection, face: DetectedFace, image: RequestImage, external_id: str | None) -> IndexedFace:
        if external_id is not None:
            for indexed in collection.faces.values():
                if indexed.instance == face.instance and indexed.record.get("ExternalImageId") == external_id:
                    return indexed
        record = {
            "FaceId": str(uuid.uuid4()),
            "BoundingBox": face.detail["BoundingBox"],
            "ImageId": str(uuid.uuid5(_IMAGE_IDS, image.digest)),
            "Confidence": face.detail["Confidence"],
            "IndexFacesModelVersion": FACE_MODEL_VERSION,
        }
        if external_id is not None:
            record["ExternalImageId"] = external_id
        indexed = IndexedFace(record, face.identity, face.instance)
        collection.faces[record["FaceId"]] = indexed
        return indexed

    def _list_faces(self, call: Call) -> dict[str, Any]:
        body = call.body
        with self._lock:
            collection = self._collection(body["CollectionId"])
            wanted = set(body.get("FaceIds") or collection.faces)
            if "UserId" in body:
                wanted = set()  # the stand-in has no users: no face is associated with one
            ids, token = self._page("ListFaces", collection.name, sorted(wanted & set(collection.faces)), body)
            faces = [dict(collection.faces[face_id].record) for face_id in ids]
        response: dict[str, Any] = {"Faces": faces, "FaceModelVersion": FACE_MODEL_VERSION}
        return {**response, "NextToken": token} if token else response

    def _search_faces(self, call: Call) -> dict[str, Any]:
        body = call.body
        with self._lock:
            collection = self._collection(body["CollectionId"])
            searched = collection.faces.get(body["FaceId"])
            if searched is None:
                raise ServiceError("InvalidParameterException", _FACE_NOT_FOUND)
            matches = self._matches(collection, searched, body)
        return {"SearchedFaceId": body["FaceId"], "FaceMatches": matches, "FaceModelVersion": FACE_MODEL_VERSION}

    def _search_faces_by_image(self, call: Call) -> dict[str, Any]:
        with self._lock:
            collection = self._collection(call.body["CollectionId"])
        face = self._searched_face(call)
        with self._lock:
            matches = self._matches(collection, face, call.body)
        return {
            "SearchedFaceBoundingBox": face.detail["BoundingBox"],
            "SearchedFaceConfidence": face.detail["Confidence"],
            "FaceMatches": matches,
            "FaceModelVersion": FACE_MODEL_VERSION,
        }

    def _delete_faces(self, call: Call) -> dict[str, Any]:
        """Deleted ids, and the others as FACE_NOT_FOUND. DeletedFaces is left out when empty:
        botocore's model gives the list a minimum of one."""
        with self._lock:
            collection = self._collection(call.body["CollectionId"])
            deleted, missing = [], []
            for face_id in dict.fromkeys(call.body["FaceIds"]):
                (deleted if collection.faces.pop(face_id, None) else missing).append(face_id)
        response: dict[str, Any] = {
            "UnsuccessfulFaceDeletions": [{"FaceId": face_id, "Reasons": ["FACE_NOT_FOUND"]} for face_id in missing]
        }
        return {"DeletedFaces": deleted, **response} if deleted else response


#: Each operation the endpoint answers, and its handler.
OPERATIONS: dict[str, Callable[[FakeRekognition, Call], dict[str, Any]]] = {
    "DetectFaces": FakeRekognition._detect_faces,
    "CompareFaces": FakeRekognition._compare_faces,
    "CreateCollection": FakeRekognition._create_collection,
    "DescribeCollection": FakeRekognition._describe_collection,
    "DeleteCollection": FakeRekognition._delete_collection,
    "ListCollections": FakeRekognition._list_collections,
    "IndexFaces": FakeRekognition._index_faces,
    "ListFaces": FakeRekognition._list_faces,
    "SearchFaces": FakeRekognition._search_faces,
    "SearchFacesByImage": FakeRekognition._search_faces_by_image,
    "DeleteFaces": FakeRekognition._delete_faces,
}
#: The request members that carry an image, per operation (from botocore's model).
_IMAGE_MEMBERS: dict[str, tuple[str, ...]] = {
    name: tuple(m for m, s in _MODEL.operation_model(name).input_shape.members.items() if s.name == "Image")
    for name in OPERATIONS
}


def _with_attributes(detail: dict[str, Any], attributes: list[str]) -> dict[str, Any]:
    """The FaceDetail members ``DetectionAttributes`` asks for (DEFAULT's always; ALL: every one)."""
    if "ALL" in attributes:
        return dict(detail)
    wanted = set(DEFAULT_ATTRIBUTES) | {ATTRIBUTE_MEMBERS[a] for a in attributes if a in ATTRIBUTE_MEMBERS}
    return {k: v for k, v in detail.items() if k in wanted}


def _compared(face: DetectedFace) -> dict[str, Any]:
    """A target face as CompareFaces describes it (ComparedFace)."""
    return {k: v for k, v in face.detail.items() if k in COMPARED_FACE_MEMBERS}


def _check_image(image: RequestImage, error: tuple[int, str, str] | None) -> None:
    """A test's registered error for this image, else what the service answers for an image it
    does not take."""
    if error is not None:
        status, code, message = error
        raise ServiceError(code, message, status)
    invalid = _invalid(image.content, image.kind, image.size)
    if invalid is not None:
        status, code, message = invalid
        raise ServiceError(code, message, status)


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

"""``indexer compare SOURCE TARGET``: Rekognition's CompareFaces, on either engine, in its shape.

CompareFaces' semantics (botocore's model documentation of the operation): the *largest* face of
the source image is compared with each of the 100 largest faces of the target image; faces at
least ``SimilarityThreshold`` alike (default 80) are ``FaceMatches``, most alike first, the others
``UnmatchedFaces``; ``SourceImageFace`` says which face of the source was used. A source without a
face is an error (the service's ``InvalidParameterException``); a target without one is no match.

Both engines answer with that one dict, so ``--json`` is the same document whichever ran:

- ``rekognition``: the service's own response (:func:`~indexer.engines.rekognition.faces.compare_faces`),
  one call, images sent as ``S3Object`` where Rekognition can read them, else as upright bytes.
  AWS documents an ``InvalidParameterException`` when *either* image has no face, and the answer
  does not say which: only then is the source looked at alone (one DetectFaces) to tell a
  faceless source (an error) from a faceless target (no match).
- ``local``: the offline engine analyses both images (EXIF-upright, as it always decodes) and
  compares their faces' identity vectors (:mod:`indexer.engines.local.embedding`), whose
  Similarity is calibrated so that a threshold means what it means on Rekognition. Each face is
  described as CompareFaces describes one (``ComparedFace``: its box, confidence, the five
  landmarks CompareFaces returns, pose, quality, emotions, smile).

Every failure is one line naming the image it is about (``source image``/``target image`` and its
path or URI): a path that is no file, or a malformed URI, is a usage error (exit 2); an S3 object
that is not there, an image that cannot be read or used, and a source without a face, exit 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, cast

from .core import ByteReader, FaceDetail, ImageRef, face_area, largest_face
from .errors import ConfigError, FatalError, ImageError, IndexerError, aws_error_info, translate

if TYPE_CHECKING:
    from .engines.base import Engine
    from .engines.local.engine import LocalEngine
    from .engines.rekognition.engine import RekognitionEngine

#: CompareFaces' default ``SimilarityThreshold`` ("The default value is 80%").
DEFAULT_THRESHOLD = 80.0
#: "each of the 100 largest faces detected in the target input image".
LARGEST_TARGET_FACES = 100
#: The members of botocore's ``ComparedFace`` shape: how CompareFaces describes a target face.
COMPARED_FACE_MEMBERS = ("BoundingBox", "Confidence", "Landmarks", "Pose", "Quality", "Emotions", "Smile")
#: The landmarks a CompareFaces answer gives for each face (DetectFaces gives 30).
COMPARED_LANDMARKS = frozenset({"eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose"})
#: The two images of a comparison, as messages name them.
ROLES = ("source", "target")


@dataclass(frozen=True)
class CompareImage:
    """One image of a comparison: which one it is, what it is, and how to read its bytes."""

    role: str  # "source" or "target"
    ref: ImageRef
    read: ByteReader

    @property
    def label(self) -> str:
        """``source image /photos/a.jpg``: how a message names it."""
        return f"{self.role} image {self.ref.uri}"


# -- opening an image -----------------------------------------------------------------------------


def open_image(role: str, spec: str, s3_client: Callable[[], Any]) -> CompareImage:
    """The image ``spec`` names (a file path or ``s3://bucket/key``), checked to exist and be
    readable before any engine is started or called. ``s3_client`` is called only for S3."""
    from .sources import parse_source

    parsed = parse_source(spec)  # "ftp://..." and "s3://" without a bucket: usage errors
    if isinstance(parsed, Path):
        return _local_image(role, parsed)
    _, bucket, key = parsed
    if not key or key.endswith("/"):
        raise ConfigError(f"{role} {spec!r} names no S3 object: expected s3://bucket/key")
    return _s3_image(role, bucket, key, s3_client())


def _local_image(role: str, path: Path) -> CompareImage:
    """A local file, read at once (it is small, and an unreadable file fails before any work)."""
    from .sources import read_regular_file

    if not path.exists():  # a mistyped argument: usage, as ``search --like`` has it
        raise ConfigError(f"{role} image not found: {path}")
    if not path.is_file():
        raise ConfigError(f"{role} image is not a file: {path}")
    try:
        data = read_regular_file(str(path), str(path))
    except ImageError as exc:
        raise FatalError(f"cannot read {role} image {path}: {exc.message}") from None
    ref = ImageRef(uri=str(path), size=len(data), fingerprint="compare", path=str(path))
    return CompareImage(role, ref, lambda: data)


def _s3_image(role: str, bucket: str, key: str, client: Any) -> CompareImage:
    """An S3 object, asked about once (HeadObject: size, type, archive state); its bytes are read
    only if the engine needs them (Rekognition reads a JPEG/PNG in place)."""
    from .sources import ARCHIVE_STORAGE_CLASSES, S3Source

    uri = f"s3://{bucket}/{key}"
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise _s3_error(role, uri, exc) from None
    archived = head.get("StorageClass") in ARCHIVE_STORAGE_CLASSES and 'ongoing-request="false"' not in (head.get("Restore") or "")
    if archived:
        raise FatalError(f"{role} image {uri} is archived ({head['StorageClass']}) and not restored: restore it first")
    ref = ImageRef(
        uri=uri,
        size=int(head.get("ContentLength", 0)),
        fingerprint="etag:" + str(head.get("ETag", "")).strip('"'),
        content_type=head.get("ContentType"),
        s3_location=(bucket, key),
    )
    if ref.size == 0:
        raise FatalError(f"{role} image {uri} is empty (zero bytes): not an image")
    return CompareImage(role, ref, S3Source(bucket=bucket, prefix="", client=client).reader(ref))


def _s3_error(role: str, uri: str, exc: Exception) -> IndexerError:
    """HeadObject's failure as one line: not found and access denied by name, the rest by the table."""
    info = aws_error_info(exc)
    rid = f" (request id {info.request_id})" if info.request_id else ""
    if info.code in ("404", "NoSuchKey", "NoSuchBucket") or info.http_status == 404:
        return FatalError(f"{role} image not found: {uri}{rid}")
    if info.code in ("403", "AccessDenied") or info.http_status == 403:
        return FatalError(f"access denied reading {role} image {uri}{rid}: the identity needs s3:GetObject on it")
    error = translate(exc, f"reading {role} image {uri}")
    if isinstance(error, ImageError):
        return FatalError(f"cannot read {role} image {uri}: {error}")
    return error


# -- comparing -----------------------------------------------------------------------------------


def compare_images(engine: Engine, source: CompareImage, target: CompareImage, *, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """CompareFaces of ``source`` against ``target`` on ``engine``: Rekognition's response shape
    (``SourceImageFace``, ``FaceMatches``, ``UnmatchedFaces``), whichever engine it is."""
    check_threshold(threshold)
    if engine.name == "rekognition":
        return _compare_on_rekognition(cast("RekognitionEngine", engine), source, target, threshold)
    if engine.name == "local":
        return _compare_on_local(cast("LocalEngine", engine), source, target, threshold)
    raise ConfigError(f"the {engine.name!r} engine cannot compare faces")


def check_threshold(threshold: float) -> None:
    """A Similarity threshold outside 0-100 is a usage error (Rekognition's ValidationException)."""
    if not 0.0 <= threshold <= 100.0:
        raise ConfigError(f"threshold must be between 0 and 100, got {threshold:g}")


def _checked_reader(image: CompareImage) -> ByteReader:
    """``image``'s reader, whose failures - and bytes that are no image at all - name the image.

    An engine that sends two images in one request cannot say which one it could not use; a
    reader that is called for one image at a time can."""

    def read() -> bytes:
        from .engines.decode import sniff_format, unidentified_image_error

        try:
            data = image.read()
            if not data:
                raise ImageError("EmptyObject", "zero bytes: not an image")
            if sniff_format(data) is None:  # Pillow reads only the header it needs
                raise unidentified_image_error(data)
        except ImageError as exc:
            raise _image_failure(image, exc) from None
        return data

    return read


def _image_failure(image: CompareImage, exc: ImageError) -> FatalError:
    return FatalError(f"cannot use {image.label}: {exc.code}: {exc.message}", api_calls=exc.api_calls)


def _no_face(image: CompareImage) -> FatalError:
    return FatalError(f"no face in the {image.label}: CompareFaces needs one face in the source to look for")


def _source_face(face: FaceDetail) -> dict[str, Any]:
    """CompareFaces' ``SourceImageFace``: the box and the confidence that it is a face."""
    return {"BoundingBox": face["BoundingBox"], "Confidence": face["Confidence"]}


def compared_face(face: FaceDetail) -> dict[str, Any]:
    """A FaceDetail as CompareFaces describes a face (botocore's ``ComparedFace``)."""
    out = {member: face[member] for member in COMPARED_FACE_MEMBERS if member in face}
    if "Landmarks" in out:
        out["Landmarks"] = [mark for mark in out["Landmarks"] if mark.get("Type") in COMPARED_LANDMARKS]
    return out


# -- Rekognition ------------------------------------------------------------------------------------


def _compare_on_rekognition(engine: RekognitionEngine, source: CompareImage, target: CompareImage, threshold: float) -> dict[str, Any]:
    """One CompareFaces call; a "no face" refusal is pinned on the image that has none."""
    from .engines.rekognition.faces import NoFaceError, compare_faces

    inputs = [(image.ref, _checked_reader(image)) for image in (source, target)]
    try:
        return compare_faces(engine, inputs[0], inputs[1], similarity_threshold=threshold)
    except NoFaceError:
        return _faceless_target_or_error(engine, source, inputs[0])
    except ImageError as exc:
        raise FatalError(
            f"Rekognition could not compare {source.label} with {target.label}: {exc.code}: {exc.message}",
            api_calls=exc.api_calls,
        ) from None


def _faceless_target_or_error(engine: RekognitionEngine, source: CompareImage, source_input: tuple[ImageRef, ByteReader]) -> dict[str, Any]:
    """After "There are no faces in the image": DetectFaces on the source alone. No face there is
    the source's error; a face there means the target had none - no match, as the offline engine
    answers it."""
    try:
        faces = engine.analyze(*source_input).face_details
    except ImageError as exc:
        raise _image_failure(source, exc) from None
    if not faces:
        raise _no_face(source)
    return {"SourceImageFace": _source_face(faces[largest_face(faces)]), "FaceMatches": [], "UnmatchedFaces": []}


# -- offline engine ---------------------------------------------------------------------------------


def _compare_on_local(engine: LocalEngine, source: CompareImage, target: CompareImage, threshold: float) -> dict[str, Any]:
    """Both images analysed, the source's largest face's vector against the target's faces'."""
    import numpy as np

    from .engines.local.embedding import distances, similarity

    source_faces, source_vectors = _analysed(engine, source)
    if not source_faces:
        raise _no_face(source)
    chosen = largest_face(source_faces)
    query = source_vectors[chosen]
    if query is None:
        raise FatalError(f"the offline engine could not describe the largest face of the {source.label}")
    target_faces, target_vectors = _analysed(engine, target)
    order = sorted(range(len(target_faces)), key=lambda i: -face_area(target_faces[i]))[:LARGEST_TARGET_FACES]
    comparable = [i for i in order if target_vectors[i] is not None]
    scores = dict(zip(comparable, similarity(distances(query, np.stack([target_vectors[i] for i in comparable]))))) if comparable else {}
    matches: list[dict[str, Any]] = []
    unmatched: list[dict[str, Any]] = []
    for i in order:
        score = round(float(scores[i]), 4) if i in scores else None
        if score is not None and score >= threshold:
            matches.append({"Similarity": score, "Face": compared_face(target_faces[i])})
        else:
            unmatched.append(compared_face(target_faces[i]))
    matches.sort(key=lambda match: -match["Similarity"])
    return {"SourceImageFace": _source_face(source_faces[chosen]), "FaceMatches": matches, "UnmatchedFaces": unmatched}


def _analysed(engine: LocalEngine, image: CompareImage) -> tuple[list[FaceDetail], list[Any]]:
    """The image's FaceDetails and, for each, its identity vector (None where it has none)."""
    from .engines.local.embedding import from_bytes

    try:
        analysis = engine.analyze(image.ref, _checked_reader(image))
    except ImageError as exc:
        raise _image_failure(image, exc) from None
    faces, descriptors = analysis.face_details, analysis.descriptors
    if faces and (descriptors is None or len(descriptors.vectors) != len(faces)):
        raise FatalError(f"the offline engine gave no face descriptors for the {image.label}: its models cannot compare faces")
    vectors: list[Any] = []
    for raw in descriptors.vectors if descriptors is not None else []:
        try:
            rows = from_bytes(raw)
        except ValueError:
            rows = from_bytes(b"")
        vectors.append(rows[0] if len(rows) == 1 else None)
    return faces, vectors

"""What the index keeps about who each face is: offline descriptors and Rekognition collection
FaceIds, written with the faces, and the queue of FaceIds a collection must forget."""

from __future__ import annotations

import struct

import pytest

from indexer.core import Analysis, CollectionFaces, FaceDescriptors, ImageRef
from indexer.store.repository import ImageOutcome, Store

MODEL = "test-model"


def _face(left: float) -> dict:
    return {"BoundingBox": {"Left": left, "Top": 0.1, "Width": 0.2, "Height": 0.2}, "Confidence": 99.0}


def _vector(seed: float) -> bytes:
    return struct.pack("<4f", seed, seed + 1, seed + 2, seed + 3)


def _write(store: Store, uri: str, lefts: list[float], *, vectors=None, collection=None, fingerprint="v1") -> None:
    analysis = Analysis(
        face_details=[_face(left) for left in lefts],
        descriptors=FaceDescriptors(MODEL, vectors) if vectors is not None else None,
        collection_faces=CollectionFaces(*collection) if collection else None,
    )
    ref = ImageRef(uri=uri, size=10, fingerprint=fingerprint)
    written = store.write([ImageOutcome(ref=ref, engine="test", analysis=analysis)], run_id=None)
    assert len(written) == 1


def _described(store: Store) -> int:
    """How many stored faces have a descriptor (only :data:`MODEL` is ever written here)."""
    return sum(len(ids) for ids, _vectors in store.descriptors(MODEL))


def _face_ids(store: Store, uri: str) -> list[int]:
    image = store.image(uri)
    assert image is not None
    return [face["face_id"] for face in image["faces"]]


def test_descriptors_are_stored_beside_their_faces_and_paged(store):
    _write(store, "a.jpg", [0.1, 0.5], vectors=[_vector(1), _vector(2)])
    _write(store, "b.jpg", [0.3], vectors=[_vector(3)])
    a1, a2 = _face_ids(store, "a.jpg")
    assert store.descriptor_of(a2) == (MODEL, _vector(2))
    pages = list(store.descriptors(MODEL, chunk=2))
    assert [ids for ids, _ in pages] == [[a1, a2], _face_ids(store, "b.jpg")]
    assert b"".join(data for _, data in pages) == _vector(1) + _vector(2) + _vector(3)
    assert list(store.descriptors("another-model")) == []
    assert _described(store) == 3


def test_reindexing_replaces_descriptors(store):
    _write(store, "a.jpg", [0.1, 0.5], vectors=[_vector(1), _vector(2)])
    _write(store, "a.jpg", [0.2], vectors=[_vector(9)], fingerprint="v2")
    (new,) = _face_ids(store, "a.jpg")
    assert store.descriptor_of(new) == (MODEL, _vector(9))
    assert _described(store) == 1


def test_misaligned_descriptors_record_the_image_as_failed_not_half_written(store):
    _write(store, "ok.jpg", [0.1], vectors=[_vector(1)])
    ref = ImageRef(uri="bad.jpg", size=1, fingerprint="v1")
    analysis = Analysis(face_details=[_face(0.1), _face(0.5)], descriptors=FaceDescriptors(MODEL, [_vector(1)]))
    (written,) = store.write([ImageOutcome(ref=ref, engine="test", analysis=analysis)], run_id=None)
    assert written.error is not None and written.error.code == "StoreError"
    image = store.image("bad.jpg")
    assert image is not None and image["status"] == "failed" and image["faces"] == []
    assert _described(store) == 1


def test_collection_faces_map_both_ways(store):
    _write(store, "a.jpg", [0.1, 0.5], collection=("people", ["fid-1", None]))
    first, second = _face_ids(store, "a.jpg")
    assert store.collection_face(first) == ("people", "fid-1")
    assert store.collection_face(second) is None  # detected, not indexed
    assert store.faces_in_collection("people", ["fid-1", "unknown"]) == {"fid-1": first}
    assert store.faces_in_collection("other", ["fid-1"]) == {}
    assert store.known(["a.jpg"])["a.jpg"].collection == "people"


def test_faces_an_image_no_longer_has_are_queued_and_returning_ones_are_not(store):
    _write(store, "a.jpg", [0.1, 0.5], collection=("people", ["fid-1", "fid-2"]))
    # re-indexed: IndexFaces gave fid-1 back (same image, same ExternalImageId) and a new fid-3
    _write(store, "a.jpg", [0.1, 0.7], collection=("people", ["fid-1", "fid-3"]), fingerprint="v2")
    assert store.queued_deletions() == {"people": ["fid-2"]}
    # fid-2 comes back before the queue was drained: it must stay in the collection
    _write(store, "a.jpg", [0.1, 0.5], collection=("people", ["fid-1", "fid-2"]), fingerprint="v3")
    assert store.queued_deletions() == {"people": ["fid-3"]}
    store.forget_deletions("people", ["fid-3"])
    assert store.queued_deletions() == {}


def test_reindexing_without_a_collection_queues_every_old_face_id(store):
    _write(store, "a.jpg", [0.1, 0.5], collection=("people", ["fid-1", "fid-2"]))
    _write(store, "a.jpg", [0.1], fingerprint="v2")
    assert store.queued_deletions() == {"people": ["fid-1", "fid-2"]}
    assert store.known(["a.jpg"])["a.jpg"].collection is None


def test_prune_queues_the_face_ids_of_pruned_images(store):
    run = store.begin_run("s3://b/", "test")
    _write(store, "s3://b/keep.jpg", [0.1], collection=("people", ["fid-k"]))
    _write(store, "s3://b/gone.jpg", [0.1, 0.4], collection=("people", ["fid-g1", "fid-g2"]), vectors=[_vector(1), _vector(2)])
    store.mark_seen(run, ["s3://b/keep.jpg"])
    assert store.prune("s3://b/", run) == 1
    assert store.queued_deletions() == {"people": ["fid-g1", "fid-g2"]}
    assert _described(store) == 0
    assert store.faces_in_collection("people", ["fid-k", "fid-g1"]).keys() == {"fid-k"}


def test_misaligned_face_ids_are_refused(store):
    ref = ImageRef(uri="bad.jpg", size=1, fingerprint="v1")
    analysis = Analysis(face_details=[_face(0.1)], collection_faces=CollectionFaces("people", ["a", "b"]))
    (written,) = store.write([ImageOutcome(ref=ref, engine="test", analysis=analysis)], run_id=None)
    assert written.error is not None
    assert store.faces_in_collection("people", ["a", "b"]) == {}


@pytest.mark.parametrize("count", [0, 1])
def test_a_face_count_of_zero_or_one_writes_no_stray_rows(store, count):
    _write(store, "a.jpg", [0.1] * count, vectors=[_vector(1)] * count, collection=("people", ["f"] * count))
    assert _described(store) == count
    assert store.known(["a.jpg"])["a.jpg"].collection == "people"

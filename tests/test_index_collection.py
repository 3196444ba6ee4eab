"""``indexer index --collection NAME``: IndexFaces instead of DetectFaces, FaceIds beside the
stored faces, and no ghosts left in the collection.

End to end against moto's S3 server, the tests' Rekognition endpoint (which keeps each
collection's faces, validated against botocore's model) and a real database (SQLite and
PostgreSQL). ``rekognition.face_ids(name)`` is the look behind the API: what the collection
really holds, compared with what the index says it holds.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from indexer import api
from indexer.cli import app
from indexer.config import load_config
from indexer.engines.rekognition.faces import INDEX_QUALITY_FILTER, uri_from_external_image_id
from indexer.planner import PlanOptions, needs_work
from indexer.store.repository import KnownImage, Store
from tests.support.faces import face_detail
from tests.support.images import jpeg_bytes
from tests.support.rekognition_endpoint import QUALITY_BARS

PREFIX = "s3://photos/2024/"


def _config(db_url: str, **flags):
    return load_config(flags={"db_url": db_url, "concurrency": 4, "retry_attempts": 1, **flags}, environ={})


def _faces(n: int, **attributes) -> list[dict]:
    return [face_detail(box=(0.02 + 0.09 * i, 0.1, 0.08, 0.1), **attributes) for i in range(n)]


@pytest.fixture
def bucket(s3, rekognition):
    """Three images under 2024/: two with faces (3 and 1), one without."""
    s3.create_bucket(Bucket="photos")
    objects = {"2024/group.jpg": jpeg_bytes(1), "2024/portrait.jpg": jpeg_bytes(2), "2024/landscape.jpg": jpeg_bytes(3)}
    rekognition.register(objects["2024/group.jpg"], _faces(3, smile=True))
    rekognition.register(objects["2024/portrait.jpg"], _faces(1, beard=True))
    for key, body in objects.items():
        s3.put_object(Bucket="photos", Key=key, Body=body)
    return objects


def _stored_face_ids(store: Store, uri: str) -> list[str | None]:
    """The FaceId the index holds for each stored face of ``uri``, in face order."""
    image = store.image(uri)
    assert image is not None, uri
    found = [store.collection_face(face["face_id"]) for face in image["faces"]]
    return [pair[1] if pair else None for pair in found]


def _all_stored(store: Store, uris) -> set[str]:
    return {face_id for uri in uris for face_id in _stored_face_ids(store, uri) if face_id}


def _uris(objects) -> list[str]:
    return [f"s3://photos/{key}" for key in objects]


def _index(db_url: str, **kwargs):
    return api.index(PREFIX, config=_config(db_url), collection=kwargs.pop("collection", "people"), **kwargs)


# -- the first run --------------------------------------------------------------------------------


def test_a_run_creates_the_collection_indexes_each_image_once_and_stores_the_face_ids(bucket, rekognition, db_url, store):
    summary = _index(db_url)

    assert (summary.status, summary.analyzed, summary.faces, summary.failed) == ("completed", 3, 4, 0)
    billed = rekognition.billed()
    assert billed["IndexFaces"] == 3 and "DetectFaces" not in billed, "one IndexFaces per image, never DetectFaces too"
    assert billed["CreateCollection"] == 1
    assert summary.api_calls == 3, "the per-image calls (collection set-up is not billed per image)"
    held = rekognition.face_ids("people")
    assert len(held) == 4 and _all_stored(store, _uris(bucket)) == set(held)
    group = store.image("s3://photos/2024/group.jpg")
    assert [face["Smile"]["Value"] for face in group["faces"]] == [True] * 3, "IndexFaces' FaceDetails have every attribute"
    assert store.known(_uris(bucket))["s3://photos/2024/landscape.jpg"].collection == "people", "a faceless image is in it too"
    assert all(call.kind == "S3Object" for call in rekognition.calls if call.operation == "IndexFaces")


def test_each_face_is_tagged_with_its_image_uri_even_for_hostile_keys(s3, rekognition, db_url, store):
    s3.create_bucket(Bucket="photos")
    key = "2024/été 日本/a b+c:d.jpg"
    body = jpeg_bytes(4)
    rekognition.register(body, _faces(2))
    s3.put_object(Bucket="photos", Key=key, Body=body)

    _index(db_url)

    client = boto3.client("rekognition", region_name="us-east-1")
    listed = client.list_faces(CollectionId="people")["Faces"]
    assert {uri_from_external_image_id(face["ExternalImageId"]) for face in listed} == {f"s3://photos/{key}"}
    assert set(_stored_face_ids(store, f"s3://photos/{key}")) == {face["FaceId"] for face in listed}


def test_every_face_detect_faces_would_find_is_stored_and_indexed(s3, rekognition, db_url, store):
    """QualityFilter NONE: a face the service's AUTO bar would leave out is indexed all the same."""
    s3.create_bucket(Bucket="photos")
    body = jpeg_bytes(5)
    weak = QUALITY_BARS["AUTO"] - 10
    rekognition.register(body, [face_detail(confidence=99.0), face_detail(confidence=weak, box=(0.6, 0.1, 0.1, 0.1))])
    s3.put_object(Bucket="photos", Key="2024/blurry.jpg", Body=body)

    _index(db_url)

    assert INDEX_QUALITY_FILTER == "NONE"
    faces = store.image("s3://photos/2024/blurry.jpg")["faces"]
    assert sorted(face["Confidence"] for face in faces) == [weak, 99.0]
    assert all(_stored_face_ids(store, "s3://photos/2024/blurry.jpg")) and len(rekognition.face_ids("people")) == 2


def test_a_face_the_service_does_not_index_is_stored_without_a_face_id(s3, rekognition, db_url, store):
    """IndexFaces indexes at most 100 faces of an image: the others come back as UnindexedFaces,
    and are stored like any face, only missing from the collection."""
    s3.create_bucket(Bucket="photos")
    body = jpeg_bytes(6, size=(400, 400))
    crowd = [face_detail(box=(0.001 + 0.0098 * (i % 100), 0.01 + 0.3 * (i // 100), 0.009 - 0.00001 * i, 0.009)) for i in range(101)]
    rekognition.register(body, crowd)
    s3.put_object(Bucket="photos", Key="2024/crowd.jpg", Body=body)

    summary = _index(db_url)

    assert summary.faces == 101
    ids = _stored_face_ids(store, "s3://photos/2024/crowd.jpg")
    assert len(ids) == 101 and ids.count(None) == 1
    assert set(filter(None, ids)) == set(rekognition.face_ids("people"))


# -- re-runs ----------------------------------------------------------------------------------------


def test_an_unchanged_rerun_makes_no_image_call(bucket, rekognition, db_url):
    _index(db_url)
    before = rekognition.count()

    summary = _index(db_url)

    assert (summary.skipped_unchanged, summary.analyzed, summary.api_calls, summary.outdated) == (3, 0, 0, 0)
    assert [call.operation for call in rekognition.calls[before:]] == ["DescribeCollection"], "only the collection check"


def test_reindex_gets_the_same_face_ids_back_and_deletes_nothing(bucket, rekognition, db_url, store):
    _index(db_url)
    first = _all_stored(store, _uris(bucket))

    summary = _index(db_url, reindex=True)

    assert summary.analyzed == 3 and summary.api_calls == 3
    assert _all_stored(store, _uris(bucket)) == first == set(rekognition.face_ids("people"))
    assert rekognition.count(operation="DeleteFaces") == 0 and store.queued_deletions() == {}


def test_a_replaced_image_has_its_old_faces_deleted_from_the_collection(bucket, s3, rekognition, db_url, store):
    _index(db_url)
    old = set(_stored_face_ids(store, "s3://photos/2024/group.jpg"))
    replacement = jpeg_bytes(99)
    rekognition.register(replacement, _faces(2, eyeglasses=True))
    s3.put_object(Bucket="photos", Key="2024/group.jpg", Body=replacement)

    summary = _index(db_url)

    assert (summary.analyzed, summary.skipped_unchanged) == (1, 2)
    assert summary.api_calls == 2, "one IndexFaces and one DeleteFaces"
    new = set(_stored_face_ids(store, "s3://photos/2024/group.jpg"))
    assert len(new) == 2 and not new & old
    held = set(rekognition.face_ids("people"))
    assert not held & old, "no ghosts"
    assert held == _all_stored(store, _uris(bucket))
    assert store.queued_deletions() == {}


def test_prune_deletes_the_faces_of_a_vanished_object(bucket, s3, rekognition, db_url, store):
    _index(db_url)
    gone = set(_stored_face_ids(store, "s3://photos/2024/group.jpg"))
    s3.delete_object(Bucket="photos", Key="2024/group.jpg")

    summary = _index(db_url, prune=True)

    assert (summary.pruned, summary.api_calls) == (1, 1)
    assert store.image("s3://photos/2024/group.jpg") is None
    assert not set(rekognition.face_ids("people")) & gone
    assert set(rekognition.face_ids("people")) == _all_stored(store, _uris(bucket)[1:])
    assert store.queued_deletions() == {}


def test_images_indexed_without_a_collection_go_into_it_on_the_next_collection_run(bucket, rekognition, db_url):
    plain = api.index(PREFIX, config=_config(db_url))
    assert plain.analyzed == 3 and rekognition.billed()["DetectFaces"] == 3

    moved = _index(db_url)

    assert (moved.analyzed, moved.outdated, moved.skipped_unchanged) == (3, 3, 0), "counted like a model-set upgrade"
    assert rekognition.billed()["IndexFaces"] == 3 and len(rekognition.face_ids("people")) == 4
    again = _index(db_url)
    assert (again.analyzed, again.outdated, again.api_calls) == (0, 0, 0)
    without = api.index(PREFIX, config=_config(db_url))
    assert (without.analyzed, without.api_calls) == (0, 0), "a run without a collection leaves indexed images alone"


def test_a_run_into_another_collection_indexes_everything_into_it(bucket, rekognition, db_url, store):
    _index(db_url)
    summary = _index(db_url, collection="family")

    assert (summary.analyzed, summary.outdated) == (3, 3)
    assert len(rekognition.face_ids("family")) == 4 and len(rekognition.face_ids("people")) == 4
    assert _all_stored(store, _uris(bucket)) == set(rekognition.face_ids("family"))
    assert set(store.queued_deletions()) == {"people"}, "left for a run into 'people': this run drains its own collection only"


def test_faces_a_plain_reindex_dropped_come_back_on_the_next_collection_run(bucket, rekognition, db_url, store):
    """A DetectFaces re-index drops the FaceIds from the index (queued: this run has no collection
    to delete from); IndexFaces of the same bytes returns the same FaceIds, which are unqueued,
    never deleted."""
    _index(db_url)
    first = set(rekognition.face_ids("people"))
    api.index(PREFIX, config=_config(db_url), reindex=True)
    assert set(store.queued_deletions().get("people", [])) == first
    assert rekognition.count(operation="DeleteFaces") == 0

    summary = _index(db_url)

    assert summary.outdated == 3
    assert set(rekognition.face_ids("people")) == first == _all_stored(store, _uris(bucket))
    assert store.queued_deletions() == {} and rekognition.count(operation="DeleteFaces") == 0


# -- deletions that fail ------------------------------------------------------------------------------


def _refuse_delete_faces(monkeypatch, rekognition) -> None:
    """DeleteFaces answered AccessDeniedException (an IAM policy without rekognition:DeleteFaces);
    every other operation as usual."""
    handle = rekognition.handle

    def refusing(operation, body):
        if operation != "DeleteFaces":
            return handle(operation, body)
        rekognition.refuse_after(0, "AccessDeniedException")
        try:
            return handle(operation, body)
        finally:
            rekognition.refuse = None

    monkeypatch.setattr(rekognition, "handle", refusing)


def test_a_delete_faces_failure_keeps_the_queue_and_the_next_run_drains_it(bucket, s3, rekognition, db_url, store, monkeypatch, caplog):
    _index(db_url)
    old = set(_stored_face_ids(store, "s3://photos/2024/group.jpg"))
    rekognition.register(replacement := jpeg_bytes(98), _faces(1))
    s3.put_object(Bucket="photos", Key="2024/group.jpg", Body=replacement)

    with monkeypatch.context() as patched, caplog.at_level(logging.WARNING):
        _refuse_delete_faces(patched, rekognition)
        refused = _index(db_url)

    assert refused.status == "completed" and refused.analyzed == 1, "the images are indexed: the run completed"
    assert refused.api_calls == 2, "the refused DeleteFaces was answered: it counts"
    assert rekognition.count("AccessDeniedException", operation="DeleteFaces") == 1
    assert old <= set(rekognition.face_ids("people"))
    assert set(store.queued_deletions()["people"]) == old
    assert any("still in the face collection 'people'" in record.getMessage() for record in caplog.records)

    drained = _index(db_url)

    assert (drained.analyzed, drained.api_calls) == (0, 1), "nothing to index; one DeleteFaces"
    assert not set(rekognition.face_ids("people")) & old
    assert store.queued_deletions() == {}


def test_a_stopped_run_leaves_the_queue_alone(bucket, s3, rekognition, db_url, store, monkeypatch):
    _index(db_url)
    rekognition.register(replacement := jpeg_bytes(97), _faces(1))
    s3.put_object(Bucket="photos", Key="2024/group.jpg", Body=replacement)
    with monkeypatch.context() as patched:
        _refuse_delete_faces(patched, rekognition)
        _index(db_url)
    queued = store.queued_deletions()
    assert queued
    stop = threading.Event()
    stop.set()

    stopped = _index(db_url, stop=stop)

    assert stopped.status == "interrupted"
    assert store.queued_deletions() == queued and rekognition.count("ok", operation="DeleteFaces") == 0


def test_faces_already_gone_from_the_collection_are_forgotten(bucket, s3, rekognition, db_url, store):
    """Deleted by hand (or by a run that crashed before forgetting them): FACE_NOT_FOUND settles them."""
    _index(db_url)
    old = _stored_face_ids(store, "s3://photos/2024/group.jpg")
    boto3.client("rekognition", region_name="us-east-1").delete_faces(CollectionId="people", FaceIds=[i for i in old if i])
    rekognition.register(replacement := jpeg_bytes(96), _faces(1))
    s3.put_object(Bucket="photos", Key="2024/group.jpg", Body=replacement)

    summary = _index(db_url)

    assert summary.status == "completed" and store.queued_deletions() == {}


# -- what is refused before anything runs ---------------------------------------------------------------

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--engine", "local"], "--collection needs the rekognition engine"),
        ([], "--collection needs the rekognition engine"),  # a folder defaults to the local engine
        (["--engine", "rekognition", "--collection", "my photos"], "invalid collection name 'my photos'"),
        (["--engine", "rekognition", "--collection", "a/b"], "invalid collection name 'a/b'"),
        (["--engine", "rekognition", "--collection", ""], "invalid collection name ''"),
    ],
)
def test_a_collection_the_run_cannot_fill_is_a_usage_error_before_anything_opens(aws_env, rekognition, tmp_path, extra, message):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(jpeg_bytes(7))
    database = tmp_path / "index.db"
    args = ["--collection", "people", *extra] if "--collection" not in extra else extra

    result = _invoke("index", str(folder), "--db", f"sqlite:///{database}", *args)

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"indexer: error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert rekognition.calls == [] and not database.exists(), "nothing was opened or called"


def test_the_cli_flag_indexes_a_folder_into_the_collection(aws_env, rekognition, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    body = jpeg_bytes(8)
    rekognition.register(body, _faces(2))
    (folder / "a.jpg").write_bytes(body)

    result = _invoke("index", str(folder), "--engine", "rekognition", "--collection", "people", "--db", f"sqlite:///{tmp_path / 'i.db'}", "--json")

    assert result.exit_code == 0, result.output
    assert len(rekognition.face_ids("people")) == 2
    assert [c.kind for c in rekognition.calls if c.operation == "IndexFaces"] == ["Bytes"]


def test_the_collection_setting_comes_from_flag_environment_or_config_file(tmp_path):
    config_file = tmp_path / "config.toml"
    config_file.write_text('[index]\ncollection = "from-file"\n')
    assert load_config(config_file, environ={}).collection == "from-file"
    assert load_config(config_file, environ={"INDEXER_COLLECTION": "from-env"}).collection == "from-env"
    assert load_config(config_file, {"collection": "from-flag"}, environ={"INDEXER_COLLECTION": "x"}).collection == "from-flag"
    assert load_config(environ={"XDG_CONFIG_HOME": str(tmp_path / "none")}).collection is None


def test_an_engine_passed_in_brings_its_own_collection(tmp_path):
    from indexer.errors import ConfigError

    with pytest.raises(ConfigError, match="pass it to the engine"):
        api.index(str(tmp_path), config=_config(f"sqlite:///{tmp_path / 'i.db'}"), engine=object(), collection="people")


def test_a_collection_that_cannot_be_created_stops_the_run_before_listing(bucket, rekognition, db_url, store):
    rekognition.refuse_after(0, "AccessDeniedException")
    from indexer.errors import FatalError

    with pytest.raises(FatalError, match="rekognition:DescribeCollection|not authorized"):
        _index(db_url)
    assert store.runs(1) == [], "no run started"


# -- the planner's rule ---------------------------------------------------------------------------------------


def _known(collection: str | None, status: str = "indexed", engine: str = "rekognition") -> KnownImage:
    return KnownImage("etag:1", engine, status, None if status == "indexed" else False, engine, collection)


def test_the_planner_wants_images_outside_the_runs_collection():
    from indexer.core import ImageRef

    ref = ImageRef(uri="s3://b/a.jpg", size=1, fingerprint="etag:1")
    into_people = PlanOptions("rekognition", model_set="rekognition", collection="people")
    plain = PlanOptions("rekognition", model_set="rekognition")
    assert needs_work(ref, _known(None), into_people), "indexed by DetectFaces"
    assert needs_work(ref, _known("family"), into_people), "in another collection"
    assert not needs_work(ref, _known("people"), into_people)
    assert not needs_work(ref, _known("people"), plain), "a plain run leaves it alone"
    assert not needs_work(ref, _known(None, status="failed"), into_people), "a permanent failure has no faces to add"

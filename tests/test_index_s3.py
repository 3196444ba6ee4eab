"""Indexing an S3 prefix end to end: moto's S3 server + our Rekognition JSON endpoint + a real DB."""

from __future__ import annotations

import pytest

from indexer import api
from indexer.config import load_config
from indexer.errors import FatalError
from tests.support.faces import face_detail
from tests.support.images import image_bytes, jpeg_bytes, png_bytes


def _config(db_url: str, **flags):
    return load_config(flags={"db_url": db_url, "concurrency": 4, **flags}, environ={})


@pytest.fixture
def bucket(s3, rekognition):
    """A bucket with 4 images (2 with faces), a text file and a GIF; returns the expectations."""
    s3.create_bucket(Bucket="photos")
    group, portrait, empty = jpeg_bytes(1), jpeg_bytes(2), png_bytes(3)
    gif = image_bytes(4, "GIF")
    rekognition.register(group, [face_detail(smile=True), face_detail(beard=True, gender="Male"), face_detail()])
    rekognition.register(portrait, [face_detail(sunglasses=True)])
    objects = {
        "2024/group.jpg": group,
        "2024/portrait.JPG": portrait,
        "2024/empty.png": empty,
        "2024/anim.gif": gif,
        "2024/notes.txt": b"not a photo",
        "2023/old.jpg": jpeg_bytes(5),
    }
    for key, body in objects.items():
        s3.put_object(Bucket="photos", Key=key, Body=body)
    return objects


def test_first_run_indexes_every_image_with_the_right_faces(bucket, rekognition, db_url, store):
    summary = api.index("s3://photos/2024/", config=_config(db_url))

    assert summary.status == "completed"
    assert (summary.listed, summary.analyzed, summary.failed, summary.skipped_unchanged) == (4, 4, 0, 0)
    assert summary.faces == 4
    assert summary.api_calls == 4
    # JPEG/PNG are read by Rekognition in place; the GIF had to be converted and sent as bytes.
    kinds = sorted(call.kind for call in rekognition.calls)
    assert kinds == ["Bytes", "S3Object", "S3Object", "S3Object"]

    group = store.image("s3://photos/2024/group.jpg")
    assert group["status"] == "indexed" and group["engine"] == "rekognition"
    assert (group["width"], group["height"]) == (120, 80)
    assert [f["Smile"]["Value"] for f in group["faces"]] == [True, False, False]
    assert group["faces"][1]["Gender"]["Value"] == "Male"
    assert store.image("s3://photos/2023/old.jpg") is None, "outside the prefix"
    assert store.image("s3://photos/2024/notes.txt") is None


def test_unchanged_rerun_makes_zero_engine_calls(bucket, rekognition, db_url):
    api.index("s3://photos/2024/", config=_config(db_url))
    calls_before = rekognition.count()

    summary = api.index("s3://photos/2024/", config=_config(db_url))

    assert rekognition.count() == calls_before
    assert (summary.listed, summary.skipped_unchanged, summary.analyzed, summary.api_calls) == (4, 4, 0, 0)


def test_changed_object_is_analysed_again_and_its_faces_replaced(bucket, s3, rekognition, db_url, store):
    api.index("s3://photos/2024/", config=_config(db_url))
    new_content = jpeg_bytes(99)
    rekognition.register(new_content, [face_detail(eyeglasses=True), face_detail(eyeglasses=True)])
    s3.put_object(Bucket="photos", Key="2024/group.jpg", Body=new_content)

    summary = api.index("s3://photos/2024/", config=_config(db_url))

    assert (summary.analyzed, summary.skipped_unchanged, summary.api_calls) == (1, 3, 1)
    faces = store.image("s3://photos/2024/group.jpg")["faces"]
    assert [f["Eyeglasses"]["Value"] for f in faces] == [True, True]


def test_reindex_analyses_everything_again(bucket, rekognition, db_url, store):
    api.index("s3://photos/2024/", config=_config(db_url))
    summary = api.index("s3://photos/2024/", config=_config(db_url), reindex=True)
    assert (summary.analyzed, summary.skipped_unchanged) == (4, 0)
    assert len(store.image("s3://photos/2024/group.jpg")["faces"]) == 3, "faces replaced, not duplicated"


def test_prune_deletes_only_vanished_images_inside_the_prefix(bucket, s3, rekognition, db_url, store):
    api.index("s3://photos/2024/", config=_config(db_url))
    api.index("s3://photos/2023/", config=_config(db_url))
    s3.delete_object(Bucket="photos", Key="2024/group.jpg")

    without = api.index("s3://photos/2024/", config=_config(db_url))
    assert without.pruned == 0 and store.image("s3://photos/2024/group.jpg") is not None

    summary = api.index("s3://photos/2024/", config=_config(db_url), prune=True)

    assert summary.pruned == 1
    assert store.run(summary.run_id).pruned == 1, "the run record keeps the final counters"
    assert store.image("s3://photos/2024/group.jpg") is None
    assert store.image("s3://photos/2024/portrait.JPG") is not None
    assert store.image("s3://photos/2023/old.jpg") is not None, "prune never leaves the prefix"


def test_a_bad_image_is_recorded_and_the_run_goes_on(bucket, s3, rekognition, db_url, store):
    s3.put_object(Bucket="photos", Key="2024/corrupt.jpg", Body=b"\xff\xd8 this is not really a jpeg")
    summary = api.index("s3://photos/2024/", config=_config(db_url))

    assert summary.status == "completed"
    assert (summary.analyzed, summary.failed) == (4, 1)
    row = store.image("s3://photos/2024/corrupt.jpg")
    assert row["status"] == "failed"
    assert row["error_code"] == "InvalidImageFormatException"
    assert row["faces"] == []
    # A permanent failure is not paid for again while the object is unchanged...
    again = api.index("s3://photos/2024/", config=_config(db_url))
    assert again.api_calls == 0 and again.skipped_unchanged == 5
    # ...unless asked.
    forced = api.index("s3://photos/2024/", config=_config(db_url), retry_failed=True)
    # Retried (not skipped), and still no call: its bytes are no image, so no call can succeed.
    assert forced.skipped_unchanged == 4 and forced.failed == 1 and forced.api_calls == 0


def test_missing_bucket_is_fatal_with_one_clear_line(s3, db_url):
    with pytest.raises(FatalError, match=r"^bucket not found: no-such-bucket"):
        api.index("s3://no-such-bucket/x/", config=_config(db_url))


def test_wrong_credentials_are_fatal(bucket, monkeypatch, db_url, rekognition, store):
    def reject(operation, body):
        return 400, {"__type": "UnrecognizedClientException", "message": "The security token included in the request is invalid."}

    monkeypatch.setattr(rekognition, "handle", reject)
    with pytest.raises(FatalError, match="AWS rejected the credentials while calling Rekognition: UnrecognizedClientException"):
        api.index("s3://photos/2024/", config=_config(db_url))
    run = store.runs(1)[0]
    assert run.status == "failed"


def test_transient_failure_after_retries_is_retried_by_the_next_run(bucket, rekognition, db_url, store):
    """A 500 that outlasts the retries is recorded as retryable; the next run tries it again."""
    flaky = bucket["2024/portrait.JPG"]
    rekognition.fail_on(flaky, "InternalServerError", "Internal server error", status=500)
    config = _config(db_url, retry_attempts=2)

    first = api.index("s3://photos/2024/", config=config)

    assert (first.analyzed, first.failed) == (3, 1)
    assert first.api_calls == 3 + 2, "two tries for the failing image, counted as billable calls"
    row = store.image("s3://photos/2024/portrait.JPG")
    assert (row["status"], row["error_code"]) == ("failed", "InternalServerError")
    assert store.known(["s3://photos/2024/portrait.JPG"])["s3://photos/2024/portrait.JPG"].retryable is True

    rekognition.errors_by_digest.clear()
    second = api.index("s3://photos/2024/", config=config)

    assert (second.analyzed, second.skipped_unchanged, second.failed) == (1, 3, 0)
    assert store.image("s3://photos/2024/portrait.JPG")["faces"][0]["Sunglasses"]["Value"] is True

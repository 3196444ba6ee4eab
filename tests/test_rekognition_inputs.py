"""What reaches Rekognition, and how: S3Object only where the service can read it, bytes
otherwise, decided from the bytes; what can never succeed is recorded without a call.

Against moto's S3 and the tests' Rekognition endpoint, which reads S3Object only from AWS S3 in
its own region and validates formats, sizes and dimensions as the service documents.
"""

from __future__ import annotations

import io
import random
from types import SimpleNamespace

import pytest
from PIL import Image

from indexer import api
from indexer.config import load_config
from indexer.core import ARCHIVED_MARK, ImageRef
from indexer.engines.rekognition.engine import BYTES_ONLY_AFTER_REFUSALS, rekognition_reads_s3
from indexer.engines.rekognition.images import MIN_SIDE, S3_REFERENCE_MAX_BYTES, _jpeg_under, prepare_bytes
from indexer.errors import ImageError
from indexer.planner import PlanOptions, needs_work
from indexer.sources import S3Source
from indexer.store.models import IMAGE_FAILED, IMAGE_INDEXED
from indexer.store.repository import KnownImage
from tests.support.faces import face_detail
from tests.support.images import jpeg_bytes


def _config(db_url: str, **flags):
    return load_config(flags={"db_url": db_url, "concurrency": 2, **flags}, environ={})


def _encoded(fmt: str, size=(120, 90), **save) -> bytes:
    image = Image.open(io.BytesIO(jpeg_bytes(hash(fmt) % 1000, size)))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


@pytest.fixture
def bucket(s3):
    s3.create_bucket(Bucket="photos")
    return s3


# -- where S3Object can go --------------------------------------------------------------------


def test_bucket_in_another_region_goes_as_bytes_without_a_refused_call(s3, rekognition, sqlite_url):
    s3.create_bucket(Bucket="eu-photos", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    bodies = [jpeg_bytes(100 + i) for i in range(4)]
    for i, body in enumerate(bodies):
        rekognition.register(body, [face_detail(beard=True)])
        s3.put_object(Bucket="eu-photos", Key=f"a/{i}.jpg", Body=body)

    summary = api.index("s3://eu-photos/a/", config=_config(sqlite_url))

    assert (summary.analyzed, summary.failed, summary.faces, summary.api_calls) == (4, 0, 4, 4)
    assert [c.kind for c in rekognition.calls] == ["Bytes"] * 4
    assert rekognition.count("InvalidS3ObjectException") == 0


def test_s3object_refused_as_unreadable_is_retried_as_bytes_before_anything_is_recorded(s3, rekognition, sqlite_url, monkeypatch):
    """When the region cannot be learnt, S3Object is tried; the refusal falls back to bytes, and
    after a few refusals the bucket goes straight as bytes."""
    from indexer.aws import BucketRegions

    monkeypatch.setattr(BucketRegions, "region", lambda self, bucket: None)
    s3.create_bucket(Bucket="far-photos", CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
    for i in range(8):
        body = jpeg_bytes(200 + i)
        rekognition.register(body, [face_detail()])
        s3.put_object(Bucket="far-photos", Key=f"{i}.jpg", Body=body)

    summary = api.index("s3://far-photos/", config=_config(sqlite_url, concurrency=1))

    assert (summary.analyzed, summary.failed, summary.faces) == (8, 0, 8)
    refused = rekognition.count("InvalidS3ObjectException")
    assert refused == BYTES_ONLY_AFTER_REFUSALS, "then the bucket goes as bytes"
    assert summary.api_calls == 8 + refused, "a refusal is an answered, billable call"


def test_non_aws_s3_endpoint_never_gets_s3object(bucket, rekognition, sqlite_url, monkeypatch):
    """Real Rekognition with a MinIO/Ceph/R2 store: every image goes as bytes."""
    import indexer.engines.rekognition.engine as engine_module

    rekognition.s3_is_aws = False  # and it would answer InvalidS3ObjectException if asked
    monkeypatch.setattr(engine_module, "is_aws_endpoint", lambda url: url == rekognition.url)
    bodies = [jpeg_bytes(300 + i) for i in range(3)]
    for i, body in enumerate(bodies):
        rekognition.register(body, [face_detail(smile=True)])
        bucket.put_object(Bucket="photos", Key=f"m/{i}.jpg", Body=body)

    summary = api.index("s3://photos/m/", config=_config(sqlite_url))

    assert (summary.analyzed, summary.faces, summary.api_calls) == (3, 3, 3)
    assert {c.kind for c in rekognition.calls} == {"Bytes"}


def test_which_endpoint_pairs_allow_s3object():
    def client(url):
        return SimpleNamespace(meta=SimpleNamespace(endpoint_url=url))

    aws_rek, aws_s3 = client("https://rekognition.eu-west-1.amazonaws.com"), client("https://s3.eu-west-1.amazonaws.com")
    minio, local_rek = client("http://minio.local:9000"), client("http://127.0.0.1:5000")
    assert rekognition_reads_s3(aws_rek, aws_s3) is True
    assert rekognition_reads_s3(aws_rek, minio) is False, "real Rekognition cannot read a custom store"
    assert rekognition_reads_s3(local_rek, minio) is True, "a stand-in pair (LocalStack) reads its own store"
    assert rekognition_reads_s3(aws_rek, None) is False


# -- decided from the bytes -------------------------------------------------------------------


@pytest.mark.parametrize("fmt, save", [("WEBP", {}), ("TIFF", {}), ("BMP", {}), ("GIF", {})])
def test_other_formats_named_jpg_are_converted_not_sent_to_fail(bucket, rekognition, sqlite_url, sqlite_store, fmt, save):
    bucket.put_object(Bucket="photos", Key="x/really.jpg", Body=_encoded(fmt, **save), ContentType="image/jpeg")

    summary = api.index("s3://photos/x/", config=_config(sqlite_url))

    assert (summary.analyzed, summary.failed, summary.api_calls) == (1, 0, 1)
    assert [(c.kind, c.outcome) for c in rekognition.calls] == [("Bytes", "ok")]
    assert (sqlite_store.image("s3://photos/x/really.jpg")["width"], sqlite_store.image("s3://photos/x/really.jpg")["height"]) == (120, 90)


def test_heic_named_jpg_is_converted_through_pillow_heif(bucket, rekognition, sqlite_url):
    pytest.importorskip("pillow_heif")
    bucket.put_object(Bucket="photos", Key="h/phone.jpg", Body=_encoded("HEIF"))
    bucket.put_object(Bucket="photos", Key="h/phone.heic", Body=_encoded("HEIF"))

    summary = api.index("s3://photos/h/", config=_config(sqlite_url))

    assert (summary.listed, summary.analyzed, summary.failed) == (2, 2, 0)
    assert {(c.kind, c.outcome) for c in rekognition.calls} == {("Bytes", "ok")}


def test_heic_without_a_decoder_is_a_clear_permanent_error(monkeypatch):
    import indexer.engines.decode as decode

    decode.register_optional_formats()
    monkeypatch.setattr(decode, "heif_available", False)  # as if pillow-heif were not installed
    unreadable_heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\x01" * 64
    with pytest.raises(ImageError) as raised:
        prepare_bytes(unreadable_heic)
    assert (raised.value.code, raised.value.retryable) == ("UnsupportedImageFormat", False)
    assert "pillow-heif" in raised.value.message


def test_s3object_refused_as_undecodable_is_reencoded_as_bytes(bucket, rekognition, sqlite_url):
    body = jpeg_bytes(400)
    rekognition.fail_on(body, "InvalidImageFormatException", "Request has invalid image format")
    bucket.put_object(Bucket="photos", Key="c/cmyk-ish.jpg", Body=body)

    summary = api.index("s3://photos/c/", config=_config(sqlite_url))

    assert (summary.analyzed, summary.failed, summary.api_calls) == (1, 0, 2)
    assert [(c.kind, c.outcome) for c in rekognition.calls] == [("S3Object", "InvalidImageFormatException"), ("Bytes", "ok")]


def _padded_jpeg(total: int, seed: int) -> bytes:
    """A valid JPEG of exactly ``total`` bytes (data after the end-of-image marker is ignored)."""
    base = jpeg_bytes(seed)
    return base + b"\0" * (total - len(base))


def test_the_s3object_limit_is_15_mebibytes(bucket, rekognition, sqlite_url, sqlite_store):
    """15 MB means 15 * 2**20 bytes: an object of exactly that size is read in place, one byte
    more and it is downloaded, re-encoded and sent as bytes - never a call that must fail."""
    at_limit, over = _padded_jpeg(S3_REFERENCE_MAX_BYTES, 500), _padded_jpeg(S3_REFERENCE_MAX_BYTES + 1, 501)
    rekognition.register(at_limit, [face_detail()])
    bucket.put_object(Bucket="photos", Key="big/at-limit.jpg", Body=at_limit)
    bucket.put_object(Bucket="photos", Key="big/over.jpg", Body=over)

    summary = api.index("s3://photos/big/", config=_config(sqlite_url, concurrency=1))

    assert (summary.analyzed, summary.failed, summary.api_calls) == (2, 0, 2)
    assert sorted((c.kind, c.outcome) for c in rekognition.calls) == [("Bytes", "ok"), ("S3Object", "ok")]
    assert sqlite_store.image("s3://photos/big/at-limit.jpg")["faces"], "read in place: the registered faces"


def test_tiny_images_are_upscaled_or_recorded_without_a_call(bucket, rekognition, sqlite_url, sqlite_store):
    bucket.put_object(Bucket="photos", Key="t/small.jpg", Body=jpeg_bytes(600, (48, 40)))
    bucket.put_object(Bucket="photos", Key="t/icon.png", Body=_encoded("PNG", (12, 12)))

    summary = api.index("s3://photos/t/", config=_config(sqlite_url))

    assert (summary.analyzed, summary.failed, summary.api_calls) == (1, 1, 1)
    assert [(c.kind, c.outcome) for c in rekognition.calls] == [("Bytes", "ok")]
    assert min(rekognition.calls[0].size) == MIN_SIDE, "upscaled to the minimum side"
    small = sqlite_store.image("s3://photos/t/small.jpg")
    assert (small["status"], small["width"], small["height"]) == (IMAGE_INDEXED, 48, 40)
    icon = sqlite_store.image("s3://photos/t/icon.png")
    assert (icon["status"], icon["error_code"]) == (IMAGE_FAILED, "ImageTooSmall")

    again = api.index("s3://photos/t/", config=_config(sqlite_url))
    assert (again.skipped_unchanged, again.api_calls) == (2, 0), "permanent: no call on a re-run"


def test_zero_byte_object_is_recorded_without_a_call(bucket, rekognition, sqlite_url, sqlite_store):
    bucket.put_object(Bucket="photos", Key="z/empty.jpg", Body=b"")

    summary = api.index("s3://photos/z/", config=_config(sqlite_url))

    assert (summary.failed, summary.api_calls, rekognition.count()) == (1, 0, 0)
    assert sqlite_store.image("s3://photos/z/empty.jpg")["error_code"] == "EmptyObject"


def test_panorama_never_goes_under_the_minimum_side():
    """60000x110 used to become 42426x77 (under 80 px: refused by the service)."""
    noise = Image.frombytes("RGB", (60000, 110), random.Random(1).randbytes(60000 * 110 * 3))
    data = _jpeg_under(noise, 5 * 2**20)
    with Image.open(io.BytesIO(data)) as out:
        assert min(out.size) >= MIN_SIDE and len(data) <= 5 * 2**20
        assert out.size[0] / out.size[1] == pytest.approx(60000 / 110, rel=0.02)


# -- archived objects --------------------------------------------------------------------------


def test_glacier_object_is_recorded_without_a_call_and_analysed_once_restored(bucket, rekognition, sqlite_url, sqlite_store):
    body = jpeg_bytes(700)
    rekognition.register(body, [face_detail(sunglasses=True)])
    bucket.put_object(Bucket="photos", Key="g/cold.jpg", Body=body, StorageClass="GLACIER")
    bucket.put_object(Bucket="photos", Key="g/deep.jpg", Body=jpeg_bytes(701), StorageClass="DEEP_ARCHIVE")
    config = _config(sqlite_url)

    first = api.index("s3://photos/g/", config=config)
    assert (first.failed, first.api_calls, rekognition.count()) == (2, 0, 0)
    row = sqlite_store.image("s3://photos/g/cold.jpg")
    assert (row["status"], row["error_code"]) == (IMAGE_FAILED, "ObjectArchived")

    still = api.index("s3://photos/g/", config=config)
    assert (still.skipped_unchanged, still.failed, still.api_calls) == (2, 0, 0), "no call while archived"

    bucket.restore_object(Bucket="photos", Key="g/cold.jpg", RestoreRequest={"Days": 1})
    restored = api.index("s3://photos/g/", config=config)
    assert (restored.analyzed, restored.skipped_unchanged, restored.api_calls) == (1, 1, 1)
    row = sqlite_store.image("s3://photos/g/cold.jpg")
    assert row["status"] == IMAGE_INDEXED and row["faces"][0]["Sunglasses"]["Value"] is True


def test_an_indexed_object_archived_again_is_left_alone():
    ref = ImageRef("s3://b/k.jpg", 10, "etag:abc" + ARCHIVED_MARK, s3_location=("b", "k.jpg"), archived=True)
    indexed = KnownImage("etag:abc", "rekognition", IMAGE_INDEXED, None)
    assert needs_work(ref, indexed, PlanOptions("rekognition")) is False
    assert needs_work(ref, indexed, PlanOptions("rekognition", reindex=True)) is False, "cannot be read: keep the faces"
    failed = KnownImage("etag:abc", "rekognition", IMAGE_FAILED, False)
    restored = ImageRef("s3://b/k.jpg", 10, "etag:abc", s3_location=("b", "k.jpg"))
    assert needs_work(restored, KnownImage("etag:abc" + ARCHIVED_MARK, "rekognition", IMAGE_FAILED, False), PlanOptions("rekognition"))
    assert not needs_work(ref, KnownImage(ref.fingerprint, "rekognition", IMAGE_FAILED, False), PlanOptions("rekognition"))
    assert failed.fingerprint != ref.fingerprint


def test_aws_listing_tells_the_restore_state_without_a_head_per_object():
    """On AWS S3 the listing carries RestoreStatus (OptionalObjectAttributes): no HeadObject."""
    import datetime

    import boto3
    from botocore.stub import Stubber

    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    source = S3Source("b", "", client)
    expiry = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    contents = [
        {"Key": "cold.jpg", "ETag": '"e1"', "Size": 10, "StorageClass": "GLACIER"},
        {"Key": "warm.jpg", "ETag": '"e2"', "Size": 10, "StorageClass": "GLACIER",
         "RestoreStatus": {"IsRestoreInProgress": False, "RestoreExpiryDate": expiry}},
        {"Key": "coming.jpg", "ETag": '"e3"', "Size": 10, "StorageClass": "DEEP_ARCHIVE",
         "RestoreStatus": {"IsRestoreInProgress": True}},
        {"Key": "ir.jpg", "ETag": '"e4"', "Size": 10, "StorageClass": "GLACIER_IR"},
    ]
    with Stubber(client) as stub:
        stub.add_response(
            "list_objects_v2",
            {"Contents": contents, "IsTruncated": False, "KeyCount": 4},
            {"Bucket": "b", "Prefix": "", "OptionalObjectAttributes": ["RestoreStatus"]},
        )
        refs = {ref.uri.rsplit("/", 1)[1]: ref for ref in source.walk()}  # a HeadObject would be unstubbed
    assert {name: ref.archived for name, ref in refs.items()} == {"cold.jpg": True, "warm.jpg": False, "coming.jpg": True, "ir.jpg": False}
    assert refs["cold.jpg"].fingerprint == "etag:e1" + ARCHIVED_MARK and refs["warm.jpg"].fingerprint == "etag:e2"


def test_prepare_bytes_keeps_a_fitting_original_untouched():
    data = jpeg_bytes(800)
    prepared = prepare_bytes(data)
    assert prepared.original and prepared.data == data
    assert not prepare_bytes(data, reencode=True).original


@pytest.mark.parametrize("size, fits", [((25, 30000), False), ((70000, 200), True), ((70000, 85), False)])
def test_images_beyond_a_jpegs_65500_px_are_fitted_or_recorded_never_a_crash(size, fits):
    """Re-encoding must produce a JPEG (libjpeg's 65500 px limit) with 80 px a side, or say
    ImageTooLarge (permanent): an upscaled sliver or a huge panorama is never an unknown crash."""
    import io

    from PIL import Image

    from indexer.errors import ERROR_CODES, Outcome
    from indexer.engines.rekognition.images import JPEG_MAX_SIDE, MIN_SIDE, prepare_bytes

    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(buffer, format="PNG")
    if fits:
        prepared = prepare_bytes(buffer.getvalue(), reencode=True)
        with Image.open(io.BytesIO(prepared.data)) as sent:
            assert max(sent.size) <= JPEG_MAX_SIDE and min(sent.size) >= MIN_SIDE
    else:
        with pytest.raises(ImageError) as raised:
            prepare_bytes(buffer.getvalue(), reencode=True)
        assert raised.value.code == "ImageTooLarge" and ERROR_CODES["ImageTooLarge"].outcome is Outcome.PERMANENT

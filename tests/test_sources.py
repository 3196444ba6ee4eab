"""Sources: which S3 keys and files are images, and listing errors that stop a run."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from indexer.errors import FatalError
from indexer.sources import LocalSource, S3Source, parse_source
from tests.support.images import jpeg_bytes


def test_s3_keys_are_picked_by_extension_then_content_type(s3):
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="p/a.jpg", Body=jpeg_bytes(1))
    s3.put_object(Bucket="bkt", Key="p/b.PNG", Body=jpeg_bytes(2))
    s3.put_object(Bucket="bkt", Key="p/no-extension", Body=jpeg_bytes(3), ContentType="image/jpeg")
    s3.put_object(Bucket="bkt", Key="p/blob", Body=b"{}", ContentType="application/json")
    s3.put_object(Bucket="bkt", Key="p/notes.txt", Body=b"x", ContentType="image/jpeg")
    s3.put_object(Bucket="bkt", Key="p/folder/", Body=b"")
    s3.put_object(Bucket="bkt", Key="other/c.jpg", Body=jpeg_bytes(4))

    refs = list(S3Source("bkt", "p/", s3).walk())

    assert [r.uri for r in refs] == ["s3://bkt/p/a.jpg", "s3://bkt/p/b.PNG", "s3://bkt/p/no-extension"]
    assert all(r.fingerprint.startswith("etag:") and r.s3_location for r in refs)
    assert refs[2].content_type == "image/jpeg"


def test_s3_listing_is_a_lazy_stream(s3):
    s3.create_bucket(Bucket="bkt")
    for i in range(5):
        s3.put_object(Bucket="bkt", Key=f"k{i}.jpg", Body=b"x")
    walk = S3Source("bkt", "", s3).walk()
    assert next(walk).uri == "s3://bkt/k0.jpg"  # a generator: nothing is listed before it is asked


@pytest.mark.parametrize(
    "code, status, message",
    [
        ("AccessDenied", 403, "access denied listing s3://locked/photos/ (request id "),
        ("NoSuchBucket", 404, "bucket not found: locked"),
        ("InvalidAccessKeyId", 403, "AWS rejected the credentials while listing s3://locked/photos/: InvalidAccessKeyId"),
    ],
)
def test_listing_errors_are_fatal_and_say_what_is_wrong(code, status, message):
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("list_objects_v2", service_error_code=code, http_status_code=status, response_meta={"RequestId": "REQ123"})
        with pytest.raises(FatalError) as raised:
            list(S3Source("locked", "photos/", client).walk())
    assert message in str(raised.value)


def test_local_source_skips_hidden_and_non_images(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "a" / "x.JPEG").write_bytes(jpeg_bytes(1))
    (tmp_path / "a" / ".hidden.jpg").write_bytes(jpeg_bytes(2))
    (tmp_path / ".git" / "y.jpg").write_bytes(jpeg_bytes(3))
    (tmp_path / "z.tif").write_bytes(jpeg_bytes(4))
    (tmp_path / "doc.pdf").write_bytes(b"%PDF")
    refs = list(LocalSource(tmp_path).walk())
    assert sorted(r.uri for r in refs) == [str(tmp_path / "a" / "x.JPEG"), str(tmp_path / "z.tif")]
    assert all(r.fingerprint.startswith("stat:") for r in refs)


def test_parse_source():
    assert parse_source("s3://bucket/some/prefix") == ("s3", "bucket", "some/prefix")
    assert parse_source("s3://bucket") == ("s3", "bucket", "")
    assert str(parse_source("relative/dir")).endswith("relative/dir")

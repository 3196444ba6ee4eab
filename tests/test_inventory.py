"""An S3 Inventory report as the listing (``indexer index s3://b/p --inventory MANIFEST``).

Each test publishes a real report into an inventory bucket on the moto S3 server: a manifest.json
and several gzip'd, headerless CSV files with URL-encoded keys, made from what the source bucket
really holds (its ETags, sizes and storage classes as moto lists them).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
import time
from urllib.parse import quote_plus

import pytest

from indexer import api
from indexer.config import load_config
from indexer.errors import ConfigError, FatalError
from indexer.inventory import STALE_AFTER_S, InventorySource
from indexer.sources import S3Source
from tests.support.faces import face_detail
from tests.support.images import image_bytes, jpeg_bytes, png_bytes
from tests.test_cli_index import invoke

SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass"
MANIFEST = "s3://inventory/photos/daily/2026-11-28T01-00Z/manifest.json"
#: Keys whose URL encoding is not the identity: a space, non-ASCII, a literal '+' and '%'.
AWKWARD_KEYS = ("2024/my photo.jpg", "2024/café ü.jpg", "2024/a+b.jpg", "2024/100% real.jpg")


def _config(db_url: str):
    return load_config(flags={"db_url": db_url, "concurrency": 4}, environ={})


@pytest.fixture
def photos(s3, rekognition):
    """The source bucket: images (some with faces), awkward keys, a GLACIER object, an
    extensionless JPEG, a text file, and an image outside the prefix."""
    s3.create_bucket(Bucket="photos")
    s3.create_bucket(Bucket="inventory")
    group = jpeg_bytes(1)
    rekognition.register(group, [face_detail(smile=True), face_detail()])
    objects = {
        "2024/group.jpg": group,
        "2024/empty.png": png_bytes(2),
        "2024/anim.gif": image_bytes(3, "GIF"),
        "2024/notes.txt": b"not a photo",
        "2023/old.jpg": jpeg_bytes(4),
        **{key: jpeg_bytes(10 + i) for i, key in enumerate(AWKWARD_KEYS)},
    }
    for key, body in objects.items():
        s3.put_object(Bucket="photos", Key=key, Body=body)
    s3.put_object(Bucket="photos", Key="2024/frozen.jpg", Body=jpeg_bytes(20), StorageClass="GLACIER")
    s3.put_object(Bucket="photos", Key="2024/noext", Body=jpeg_bytes(21), ContentType="image/jpeg")
    return s3


def _listed_rows(s3, bucket: str = "photos") -> list[list[str]]:
    """One inventory row per object, as S3 writes it: key URL-encoded, ETag unquoted."""
    rows = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", ()):
            rows.append(_row(bucket, obj["Key"], size=obj["Size"], etag=obj["ETag"].strip('"'), storage=obj["StorageClass"]))
    return rows


def _row(bucket, key, *, size=1, etag="0" * 32, storage="STANDARD", latest=True, delete_marker=False) -> list[str]:
    return [
        bucket, quote_plus(key), "v1", str(latest).lower(), str(delete_marker).lower(),
        "" if delete_marker else str(size), "2026-11-28T00:00:00.000Z", "" if delete_marker else etag, storage,
    ]  # fmt: skip


def publish(s3, rows, *, files=3, source_bucket="photos", created=None, file_format="CSV", manifest=MANIFEST) -> str:
    """Write ``rows`` as a report of ``files`` gzip'd CSV files and its manifest; returns its URI."""
    key = manifest[len("s3://inventory/") :]
    folder = key.rsplit("/", 1)[0]
    entries = []
    for n in range(files):
        text = io.StringIO()
        csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows[n::files])
        data = gzip.compress(text.getvalue().encode("utf-8"))
        file_key = f"{folder}/data/part-{n}.csv.gz"
        s3.put_object(Bucket="inventory", Key=file_key, Body=data)
        entries.append({"key": file_key, "size": len(data), "MD5checksum": "unused"})
    created = time.time() if created is None else created
    body = {
        "sourceBucket": source_bucket,
        "destinationBucket": "arn:aws:s3:::inventory",
        "version": "2016-11-30",
        "creationTimestamp": str(int(created * 1000)),
        "fileFormat": file_format,
        "fileSchema": SCHEMA,
        "files": entries,
    }
    s3.put_object(Bucket="inventory", Key=key, Body=json.dumps(body).encode())
    return manifest


def _refs(source) -> dict[str, tuple]:
    return {ref.uri: (ref.size, ref.fingerprint, ref.content_type, ref.archived) for ref in source.walk()}


def test_inventory_lists_exactly_what_the_listing_lists(photos):
    rows = _listed_rows(photos)
    # Versioned-bucket rows a listing never shows, placed after the latest ones they shadow.
    rows += [
        _row("photos", "2024/group.jpg", etag="f" * 32, latest=False),
        _row("photos", "2024/deleted.jpg", delete_marker=True),
        _row("photos", "2024/gone.jpg", latest=False),
    ]
    manifest = publish(photos, rows)

    listed = _refs(S3Source(bucket="photos", prefix="2024/", client=photos))
    inventoried = _refs(InventorySource(bucket="photos", prefix="2024/", client=photos, manifest_uri=manifest))

    assert inventoried == listed
    assert {f"s3://photos/{key}" for key in AWKWARD_KEYS} <= set(inventoried), "keys are URL-decoded"
    assert "s3://photos/2024/noext" in inventoried, "an extensionless image is asked its content type"
    assert inventoried["s3://photos/2024/frozen.jpg"][3] is True, "GLACIER without a restore is archived"
    assert "s3://photos/2024/notes.txt" not in inventoried and "s3://photos/2023/old.jpg" not in inventoried


def test_an_inventory_run_and_a_listed_run_see_no_change_in_each_other(photos, rekognition, db_url):
    manifest = publish(photos, _listed_rows(photos))

    first = api.index("s3://photos/2024/", config=_config(db_url), inventory=manifest)
    listed = api.index("s3://photos/2024/", config=_config(db_url))
    again = api.index("s3://photos/2024/", config=_config(db_url), inventory=manifest)

    assert first.source == listed.source == "s3://photos/2024/", "the same source, the same run lease"
    assert first.listed == listed.listed == again.listed == 9
    assert first.analyzed == 8 and first.failed == 1, "8 read, the GLACIER object recorded archived"
    assert first.faces == 2
    assert (listed.analyzed, listed.skipped_unchanged, listed.api_calls) == (0, 9, 0)
    assert (again.analyzed, again.skipped_unchanged, again.api_calls) == (0, 9, 0)


def test_a_changed_object_in_a_newer_inventory_is_analysed_again(photos, rekognition, db_url, store):
    api.index("s3://photos/2024/", config=_config(db_url))
    new = jpeg_bytes(99)
    rekognition.register(new, [face_detail(), face_detail(), face_detail()])
    photos.put_object(Bucket="photos", Key="2024/my photo.jpg", Body=new)
    manifest = publish(photos, _listed_rows(photos))

    summary = api.index("s3://photos/2024/", config=_config(db_url), inventory=manifest)

    assert (summary.analyzed, summary.skipped_unchanged) == (1, 8)
    assert len(store.image("s3://photos/2024/my photo.jpg")["faces"]) == 3


def test_each_shard_reads_only_its_rows_and_together_they_cover_the_listing(photos):
    from indexer.sharding import Shard

    manifest = publish(photos, _listed_rows(photos), files=2)
    listed = _refs(S3Source(bucket="photos", prefix="2024/", client=photos))

    slices = [
        _refs(InventorySource(bucket="photos", prefix="2024/", client=photos, manifest_uri=manifest, shard=Shard(i, 3)))
        for i in range(3)
    ]

    for i, part in enumerate(slices):
        assert part == {uri: ref for uri, ref in listed.items() if Shard(i, 3).owns(uri)}
    assert sum(len(part) for part in slices) == len(listed)


def test_sharded_inventory_runs_analyse_every_image_once_and_a_listed_run_sees_no_change(photos, rekognition, db_url):
    from indexer.sharding import Shard

    manifest = publish(photos, _listed_rows(photos))

    shards = [api.index("s3://photos/2024/", config=_config(db_url), inventory=manifest, shard=Shard(i, 3)) for i in range(3)]
    listed = api.index("s3://photos/2024/", config=_config(db_url))

    assert sum(s.listed for s in shards) == 9
    assert sum(s.analyzed for s in shards) == 8 and sum(s.failed for s in shards) == 1
    assert (listed.analyzed, listed.skipped_unchanged) == (0, 9)


def test_an_inventory_of_another_bucket_is_refused_in_one_line(photos, db_url):
    manifest = publish(photos, _listed_rows(photos), source_bucket="elsewhere")

    with pytest.raises(ConfigError, match=r"^the inventory s3://inventory/\S+ is of bucket 'elsewhere', not of 'photos'$"):
        api.index("s3://photos/2024/", config=_config(db_url), inventory=manifest)


def test_a_stale_inventory_is_noted_and_a_fresh_one_is_not(photos, rekognition, sqlite_url):
    stale = publish(photos, _listed_rows(photos), created=time.time() - STALE_AFTER_S - 86400)
    result = invoke("index", "s3://photos/2024/", "--inventory", stale, "--db", sqlite_url)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("run 1 completed: s3://photos/2024/")
    assert "; the inventory s3://inventory/" in result.stdout and "is 3.0 days old" in result.stdout
    assert len(result.stdout.strip().splitlines()) == 1, "the summary stays one line under cron"
    as_json = invoke("index", "s3://photos/2024/", "--inventory", stale, "--db", sqlite_url, "--json")
    (note,) = json.loads(as_json.stdout)["notes"]
    assert "is 3.0 days old" in note

    fresh = publish(photos, _listed_rows(photos))
    again = invoke("index", "s3://photos/2024/", "--inventory", fresh, "--db", sqlite_url, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["notes"] == []


@pytest.mark.parametrize(
    ("source", "inventory", "code", "message"),
    [
        ("s3://photos/2024/", "s3://inventory/nope/manifest.json", 1, "inventory manifest not found: s3://inventory/nope/manifest.json"),
        ("s3://photos/2024/", "inventory/manifest.json", 2, "invalid --inventory 'inventory/manifest.json'"),
        ("LOCAL", MANIFEST, 2, "--inventory needs an s3://bucket/prefix source"),
    ],
)
def test_bad_inventory_arguments_are_one_line_with_the_right_exit_code(photos, sqlite_url, tmp_path, source, inventory, code, message):
    source = str(tmp_path) if source == "LOCAL" else source
    result = invoke("index", source, "--inventory", inventory, "--db", sqlite_url)

    assert result.exit_code == code
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_missing_data_file_stops_the_run_with_one_line(photos, sqlite_url):
    manifest = publish(photos, _listed_rows(photos))
    photos.delete_object(Bucket="inventory", Key="photos/daily/2026-11-28T01-00Z/data/part-1.csv.gz")

    with pytest.raises(FatalError, match=r"^inventory file not found: s3://inventory/\S+part-1\.csv\.gz"):
        api.index("s3://photos/2024/", config=_config(sqlite_url), inventory=manifest)


def test_a_parquet_inventory_without_pyarrow_says_how_to_get_it(photos, sqlite_url, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as on an install without the extra
    manifest = publish(photos, [], file_format="Parquet")

    result = invoke("index", "s3://photos/2024/", "--inventory", manifest, "--db", sqlite_url)

    assert result.exit_code == 1
    assert "this inventory is in Parquet format, which needs pyarrow: pip install pyarrow" in result.stderr


def _publish_arrow(s3, rows: list[list[str]], file_format: str) -> str:
    """``rows`` (CSV-shaped) as one ORC or Parquet data file and its manifest, as S3 writes them:
    columns in lower snake case, typed (booleans, sizes as integers), keys *not* URL-encoded."""
    pa = pytest.importorskip("pyarrow", reason="pyarrow writes the ORC/Parquet report")
    from urllib.parse import unquote_plus

    columns = {
        "bucket": [row[0] for row in rows],
        "key": [unquote_plus(row[1]) for row in rows],
        "version_id": [row[2] for row in rows],
        "is_latest": [row[3] == "true" for row in rows],
        "is_delete_marker": [row[4] == "true" for row in rows],
        "size": [int(row[5]) if row[5] else None for row in rows],
        "last_modified_date": [row[6] for row in rows],
        "e_tag": [row[7] or None for row in rows],
        "storage_class": [row[8] for row in rows],
    }
    table = pa.table(columns)
    sink = io.BytesIO()
    if file_format == "Parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, sink)
    else:
        import pyarrow.orc as orc

        orc.write_table(table, sink)
    folder = MANIFEST[len("s3://inventory/") :].rsplit("/", 1)[0]
    file_key = f"{folder}/data/part-0.{file_format.lower()}"
    s3.put_object(Bucket="inventory", Key=file_key, Body=sink.getvalue())
    body = {
        "sourceBucket": "photos",
        "destinationBucket": "arn:aws:s3:::inventory",
        "version": "2016-11-30",
        "creationTimestamp": str(int(time.time() * 1000)),
        "fileFormat": file_format,
        "fileSchema": "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); }"
        if file_format == "Parquet"
        else "struct<bucket:string,key:string,size:bigint,e_tag:string,storage_class:string>",
        "files": [{"key": file_key, "size": len(sink.getvalue()), "MD5checksum": "unused"}],
    }
    s3.put_object(Bucket="inventory", Key=MANIFEST[len("s3://inventory/") :], Body=json.dumps(body).encode())
    return MANIFEST


@pytest.mark.parametrize("file_format", ["Parquet", "ORC"])
def test_a_parquet_or_orc_inventory_lists_what_the_listing_lists(photos, rekognition, sqlite_url, file_format):
    rows = _listed_rows(photos) + [
        _row("photos", "2024/group.jpg", etag="f" * 32, latest=False),
        _row("photos", "2024/deleted.jpg", delete_marker=True),
    ]
    manifest = _publish_arrow(photos, rows, file_format)

    listed = _refs(S3Source(bucket="photos", prefix="2024/", client=photos))
    inventoried = _refs(InventorySource(bucket="photos", prefix="2024/", client=photos, manifest_uri=manifest))
    assert inventoried == listed
    assert {f"s3://photos/{key}" for key in AWKWARD_KEYS} <= set(inventoried), "keys are taken as they are, not decoded"

    first = invoke("index", "s3://photos/2024/", "--inventory", manifest, "--db", sqlite_url, "--json")
    assert first.exit_code == 0, first.stderr
    listed_run = invoke("index", "s3://photos/2024/", "--db", sqlite_url, "--json")
    assert json.loads(listed_run.stdout)["analyzed"] == 0, "the same fingerprints as a listed run"

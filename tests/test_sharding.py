"""Sharded runs (issue 13): which shard owns an image, ``--shard auto``, the leases of N copies,
``--prune`` of one slice, ``runs --job``; and N real ``indexer index --shard i/N`` processes at
once against the moto S3 server, the Rekognition endpoint and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from indexer import api
from indexer.cli import app
from indexer.config import load_config
from indexer.errors import ConfigError
from indexer.locking import index_lock_name, sources_overlap
from indexer.sharding import Shard, job_id_from_environment, job_shards, resolve_shard, shard_from_environment
from indexer.store.models import images_table
from indexer.store.repository import Store
from tests.support.faces import face_detail
from tests.support.images import jpeg_bytes
from tests.support.pg import pg_schema_url

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ the shard of a URI


def test_a_fixed_uri_always_lands_in_the_same_shard():
    uri = "s3://archive/p/000.jpg"
    independent = int.from_bytes(hashlib.sha256(uri.encode("utf-8")).digest()[:8], "big")
    assert independent == 8943861620098999008  # the hash itself must never change
    for count in (1, 2, 3, 7, 64):
        owners = [i for i in range(count) if Shard(i, count).owns(uri)]
        assert owners == [independent % count]


def test_every_uri_is_in_exactly_one_shard_and_the_shards_are_balanced():
    uris = [f"s3://bucket/photos/{i:05d}.jpg" for i in range(1000)]
    for count in (1, 2, 3, 4, 7):
        sizes = Counter()
        for uri in uris:
            owners = [i for i in range(count) if Shard(i, count).owns(uri)]
            assert len(owners) == 1, uri
            sizes[owners[0]] += 1
        assert sum(sizes.values()) == 1000
        assert min(sizes[i] for i in range(count)) > 0.6 * 1000 / count, sizes  # a hash, not a round robin


@pytest.mark.parametrize("text, shard", [("0/1", Shard(0, 1)), ("2/5", Shard(2, 5)), (" 3/4 ", Shard(3, 4))])
def test_shard_parses(text, shard):
    assert Shard.parse(text) == shard
    assert str(shard) == text.strip()


@pytest.mark.parametrize("text", ["3/3", "x", "0/0", "1/", "/3", "-1/3", "1/3/4", "1.0/3", ""])
def test_bad_shard_is_a_one_line_usage_error(text):
    with pytest.raises(ConfigError) as raised:
        Shard.parse(text)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("variable", ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"])
def test_shard_auto_takes_the_index_from_the_scheduler(variable):
    assert shard_from_environment(3, {variable: "2"}) == Shard(2, 3)
    assert resolve_shard("auto", 4, {variable: "0"}) == Shard(0, 4)
    assert resolve_shard("auto", "4", {variable: "3"}) == Shard(3, 4)


@pytest.mark.parametrize(
    "environ, shards, message",
    [
        ({}, 3, "JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX"),
        ({"JOB_COMPLETION_INDEX": "3"}, 3, "JOB_COMPLETION_INDEX=3 is out of range for 3 shards"),
        ({"AWS_BATCH_JOB_ARRAY_INDEX": "x"}, 3, "AWS_BATCH_JOB_ARRAY_INDEX must be a whole number"),
        ({"JOB_COMPLETION_INDEX": "0"}, None, "--shards N or INDEXER_SHARDS"),
        ({"JOB_COMPLETION_INDEX": "0"}, 0, "at least 1"),
    ],
)
def test_shard_auto_errors_say_what_is_missing(environ, shards, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_shard("auto", shards, environ)


def test_the_job_id_comes_from_the_flag_or_the_scheduler():
    assert job_id_from_environment("nightly", {"INDEXER_JOB_ID": "other"}) == "nightly"
    assert job_id_from_environment(None, {"INDEXER_JOB_ID": "faces-2026-11-29"}) == "faces-2026-11-29"
    batch_child = {"AWS_BATCH_JOB_ID": "4c5a-99:3", "AWS_BATCH_JOB_ARRAY_INDEX": "3"}
    assert job_id_from_environment(None, batch_child) == "4c5a-99", "an array child's job is its parent"
    assert job_id_from_environment(None, {"AWS_BATCH_JOB_ID": "4c5a-99"}) == "4c5a-99"
    assert job_id_from_environment(None, {}) is None


def test_job_shards_reports_each_shard_by_its_latest_run():
    runs = [("0/4", "completed"), ("1/4", "abandoned"), ("3/4", "running"), ("1/4", "completed"), ("1/2", "failed"), (None, "completed")]
    report = job_shards(runs)
    assert report["shards"] == 4
    assert report["states"] == {"0/4": "completed", "1/4": "completed", "2/4": "never ran", "3/4": "running"}
    assert report["other_runs"] == 2
    assert job_shards([("0/2", "interrupted")])["states"] == {"0/2": "failed", "1/2": "never ran"}


# ------------------------------------------------------------------ leases


@pytest.mark.parametrize(
    "a, b, overlap",
    [
        (Shard(0, 3), Shard(1, 3), False),  # disjoint slices: the N copies run at once
        (Shard(1, 3), Shard(1, 3), True),  # a second copy of the same shard
        (Shard(0, 3), None, True),  # a whole-source run covers every shard
        (Shard(0, 3), Shard(0, 2), True),  # slices of different N intersect
        (Shard(0, 3), Shard(1, 2), True),
    ],
)
def test_which_shard_leases_overlap(a, b, overlap):
    assert sources_overlap(index_lock_name("s3://b/p/", a), index_lock_name("s3://b/p/", b)) is overlap
    assert sources_overlap(index_lock_name("s3://b/p/", b), index_lock_name("s3://b/p/", a)) is overlap


def test_shard_leases_follow_the_source_overlap_rules():
    assert index_lock_name("s3://b/p/", Shard(1, 3)) == "index:s3://b/p/#1/3"
    assert sources_overlap(index_lock_name("s3://b/p/", Shard(0, 3)), index_lock_name("s3://b/p/x/", Shard(0, 3)))
    assert sources_overlap(index_lock_name("s3://b/", None), index_lock_name("s3://b/p/", Shard(2, 3)))
    assert not sources_overlap(index_lock_name("s3://b/p/", Shard(0, 3)), index_lock_name("s3://c/p/", Shard(0, 3)))
    assert not sources_overlap(index_lock_name("s3://b/p/", Shard(0, 3)), index_lock_name("s3://b/q/", None))


# ------------------------------------------------------------------ the CLI's usage errors


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--shard", "3/3"], "shard index must be 0..2 for 3 shards, got 3"),
        (["--shard", "x"], "--shard must be I/N"),
        (["--shard", "0/0"], "shard count must be at least 1"),
        (["--shard", "auto", "--shards", "3"], "--shard auto found no array index"),
        (["--shard", "auto"], "--shard auto needs the number of shards"),
    ],
)
def test_cli_bad_shard_exits_2_with_one_line(tmp_path, aws_env, flags, message):
    result = CliRunner().invoke(app, ["index", str(tmp_path), "--db", f"sqlite:///{tmp_path / 'i.db'}", *flags])
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_shards_setting_comes_from_the_environment(tmp_path, aws_env, monkeypatch):
    monkeypatch.setenv("INDEXER_SHARDS", "2")
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "2")
    result = CliRunner().invoke(app, ["index", str(tmp_path), "--db", f"sqlite:///{tmp_path / 'i.db'}", "--shard", "auto"])
    assert result.exit_code == 2
    assert "JOB_COMPLETION_INDEX=2 is out of range for 2 shards" in result.stderr


# ------------------------------------------------------------------ in one process


N_BUCKET = 30


@pytest.fixture
def bucket(s3, rekognition) -> dict[str, str]:
    """``N_BUCKET`` images in s3://archive/p/, image i with i % 3 faces: URI -> content digest."""
    s3.create_bucket(Bucket="archive")
    digests = {}
    for i in range(N_BUCKET):
        content = jpeg_bytes(5000 + i)
        digests[f"s3://archive/p/{i:03d}.jpg"] = rekognition.register(content, [face_detail() for _ in range(i % 3)])
        s3.put_object(Bucket="archive", Key=f"p/{i:03d}.jpg", Body=content)
    return digests


def _config(db_url: str, **flags):
    return load_config(flags={"db_url": db_url, "concurrency": 4, **flags}, environ={})


def _uris(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(select(images_table.c.uri)).scalars())


def test_each_shard_lists_and_analyses_only_its_slice(bucket, rekognition, db_url, store):
    job_id = "nightly-1"
    for i in range(3):
        summary = api.index("s3://archive/p/", config=_config(db_url), shard=Shard(i, 3), job_id=job_id)
        slice_ = {uri for uri in bucket if Shard(i, 3).owns(uri)}
        assert summary.status == "completed"
        assert summary.listed == summary.analyzed == len(slice_), "listed counts the shard's own images"
        assert {uri for uri in _uris(store) if Shard(i, 3).owns(uri)} == slice_
    assert _uris(store) == set(bucket)
    assert Counter(call.digest for call in rekognition.calls) == Counter(bucket.values())
    runs = api.runs(_config(db_url))
    assert [(run["job_id"], run["shard"]) for run in runs] == [(job_id, "2/3"), (job_id, "1/3"), (job_id, "0/3")]


def test_prune_in_a_shard_deletes_only_its_own_slice(bucket, s3, rekognition, db_url, store):
    api.index("s3://archive/p/", config=_config(db_url))
    gone = list(bucket)[:12]
    for uri in gone:
        s3.delete_object(Bucket="archive", Key=uri.removeprefix("s3://archive/"))
    shard = Shard(1, 3)

    summary = api.index("s3://archive/p/", config=_config(db_url), shard=shard, prune=True)

    owned_gone = {uri for uri in gone if shard.owns(uri)}
    assert owned_gone and len(owned_gone) < len(gone), "the test needs deleted images in and out of the slice"
    assert summary.pruned == len(owned_gone)
    assert _uris(store) == set(bucket) - owned_gone, "other shards' deleted images wait for their own shard"


def test_a_shard_limiter_starts_at_its_share_of_the_total_tps(aws_env, tmp_path):
    config = load_config(flags={"db_url": f"sqlite:///{tmp_path / 'i.db'}", "tps": 50}, environ={})
    assert api.shard_config(config, Shard(1, 4)).tps == 12.5
    assert api.shard_config(config, None).tps == 50
    engine = api.open_engine("rekognition", api.shard_config(config, Shard(0, 4)))
    try:
        limiter = engine.caller.limiter
        assert limiter.max_rate == limiter.rate == 12.5
    finally:
        engine.close()


def test_runs_job_reports_shards_that_never_ran(bucket, db_url, store):
    api.index("s3://archive/p/", config=_config(db_url), shard=Shard(0, 3), job_id="j-7")
    result = CliRunner().invoke(app, ["runs", "--db", db_url, "--job", "j-7"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "job j-7: 3 shards: 1 completed, 2 never ran"
    assert lines[1:4] == ["  shard 0/3: completed", "  shard 1/3: never ran", "  shard 2/3: never ran"]
    assert lines[4].endswith("[job j-7 shard 0/3]")
    as_json = json.loads(CliRunner().invoke(app, ["runs", "--db", db_url, "--job", "j-7", "--json"]).stdout)
    assert as_json["states"] == {"0/3": "completed", "1/3": "never ran", "2/3": "never ran"}
    assert as_json["runs"][0]["shard"] == "0/3" and as_json["runs"][0]["job_id"] == "j-7"
    missing = CliRunner().invoke(app, ["runs", "--db", db_url, "--job", "nope"])
    assert missing.exit_code == 2 and "no runs recorded for job 'nope'" in missing.stderr


# ------------------------------------------------------------------ N processes at once (PostgreSQL)


@pytest.fixture
def pg_url(open_store_at) -> Iterator[str]:
    """A fresh PostgreSQL schema, migrated before the processes start."""
    with pg_schema_url() as url:
        open_store_at(url)
        yield url


def _start(db_url: str, *flags: str, source: str = "s3://archive/p/") -> subprocess.Popen:
    env = {**os.environ, "INDEXER_BATCH_SIZE": "2", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "indexer", "index", source, "--db", db_url, "--concurrency", "2", "--quiet", *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def _wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise AssertionError("timed out")


def _owned_rows(store: Store, shard: Shard) -> int:
    return sum(1 for uri in _uris(store) if shard.owns(uri))


@pytest.mark.postgres
@pytest.mark.slow
def test_three_shards_at_once_analyse_every_image_exactly_once(bucket, rekognition, pg_url, open_store_at):
    rekognition.behaviour.latency = 0.05
    processes = [_start(pg_url, "--shard", f"{i}/3", "--job-id", "all-3", "--json") for i in range(3)]
    results = [_finish(process) for process in processes]

    for code, _, err in results:
        assert code == 0, err
    summaries = [json.loads(out) for _, out, _ in results]
    assert sum(summary["listed"] for summary in summaries) == N_BUCKET
    assert Counter(call.digest for call in rekognition.calls) == Counter(bucket.values()), "each image once, none missed"
    assert _uris(open_store_at(pg_url)) == set(bucket)
    report = CliRunner().invoke(app, ["runs", "--db", pg_url, "--job", "all-3"])
    assert report.stdout.splitlines()[0] == "job all-3: 3 shards: 3 completed"


@pytest.mark.postgres
@pytest.mark.slow
def test_a_running_shard_excludes_its_copy_and_a_whole_source_run_not_other_shards(bucket, rekognition, pg_url, open_store_at):
    store = open_store_at(pg_url)
    rekognition.behaviour.latency = 2.0
    running = _start(pg_url, "--shard", "0/3", "--concurrency", "1")
    try:
        _wait_for(lambda: _owned_rows(store, Shard(0, 3)) >= 1)
        refused = [_start(pg_url, *flags) for flags in (["--shard", "0/3"], [], ["--shard", "1/2"])]
        for process in refused:
            code, _, err = _finish(process)
            assert code == 75, (process.args, err)
            assert "holds the lock" in err and len(err.strip().splitlines()) == 1
        assert running.poll() is None, "the shard was still running while the others were refused"
        rekognition.behaviour.latency = 0.0
        code, _, err = _finish(_start(pg_url, "--shard", "1/3"))
        assert code == 0, err
    finally:
        running.kill()
        running.wait()


@pytest.mark.postgres
@pytest.mark.slow
def test_a_killed_shard_rerun_alone_finishes_its_slice_without_touching_the_others(bucket, rekognition, pg_url, open_store_at):
    store = open_store_at(pg_url)
    victim = Shard(1, 3)
    rekognition.behaviour.latency = 0.4
    processes = {i: _start(pg_url, "--shard", f"{i}/3", "--job-id", "k-1") for i in range(3)}
    _wait_for(lambda: _owned_rows(store, victim) >= 2)
    processes[1].send_signal(signal.SIGKILL)
    processes[1].wait()
    for i in (0, 2):
        code, _, err = _finish(processes[i])
        assert code == 0, err
    time.sleep(0.5)  # calls the killed process had in flight finish on the endpoint's side
    committed = _owned_rows(store, victim)
    slice_ = {uri for uri in bucket if victim.owns(uri)}
    assert 0 < committed < len(slice_)
    with store.engine.connect() as conn:
        others_before = conn.execute(
            select(images_table.c.uri, images_table.c.indexed_at).where(images_table.c.uri.not_in(slice_))
        ).all()
    states = json.loads(CliRunner().invoke(app, ["runs", "--db", pg_url, "--job", "k-1", "--json"]).stdout)["states"]
    assert states == {"0/3": "completed", "1/3": "failed", "2/3": "completed"}
    calls_before = len(rekognition.calls)
    rekognition.behaviour.latency = 0.0

    code, out, err = _finish(_start(pg_url, "--shard", "1/3", "--job-id", "k-1", "--json"))

    assert code == 0, err
    summary = json.loads(out)
    assert summary["skipped_unchanged"] == committed and summary["analyzed"] == len(slice_) - committed
    slice_digests = {bucket[uri] for uri in slice_}
    assert {call.digest for call in rekognition.calls[calls_before:]} <= slice_digests, "only its own slice"
    assert _uris(store) == set(bucket)
    with store.engine.connect() as conn:
        others_after = conn.execute(
            select(images_table.c.uri, images_table.c.indexed_at).where(images_table.c.uri.not_in(slice_))
        ).all()
    assert sorted(others_after) == sorted(others_before), "the other shards' rows are untouched"
    states = json.loads(CliRunner().invoke(app, ["runs", "--db", pg_url, "--job", "k-1", "--json"]).stdout)["states"]
    assert states == {"0/3": "completed", "1/3": "completed", "2/3": "completed"}

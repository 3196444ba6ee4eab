"""kill -9 at a random moment, SIGTERM mid-run: nothing lost, nothing done twice, honest records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from indexer import api
from indexer.config import load_config
from indexer.store.models import faces_table, images_table
from indexer.store.repository import Store
from tests.support.faces import face_detail
from tests.support.images import jpeg_bytes

pytestmark = pytest.mark.slow  # every test here runs a child index run and stops it

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 60


@pytest.fixture
def slow_bucket(s3, rekognition):
    """60 images, image i has i % 4 faces; DetectFaces takes 100 ms."""
    s3.create_bucket(Bucket="archive")
    expected = {}
    for i in range(N_IMAGES):
        content = jpeg_bytes(1000 + i)
        faces = [face_detail(smile=bool(j % 2)) for j in range(i % 4)]
        rekognition.register(content, faces)
        s3.put_object(Bucket="archive", Key=f"p/{i:03d}.jpg", Body=content)
        expected[f"s3://archive/p/{i:03d}.jpg"] = len(faces)
    rekognition.behaviour.latency = 0.1
    return expected


def _start(db_url: str) -> subprocess.Popen:
    env = {**os.environ, "INDEXER_BATCH_SIZE": "4", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "indexer", "index", "s3://archive/p/", "--db", db_url, "--concurrency", "4", "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _indexed(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(images_table)).scalar_one()


def _wait_for(store: Store, at_least: int, process: subprocess.Popen, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            count = _indexed(store)
        except Exception:
            count = 0  # schema not created yet
        if count >= at_least:
            return count
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} images committed in {timeout}s")


def _check_every_row(store: Store, expected: dict[str, int]) -> None:
    with store.engine.connect() as conn:
        rows = conn.execute(select(images_table.c.uri, images_table.c.status, images_table.c.face_count, images_table.c.id)).all()
        face_counts = dict(conn.execute(select(faces_table.c.image_id, func.count()).group_by(faces_table.c.image_id)).all())
    assert sorted(uri for uri, *_ in rows) == sorted(expected), "every image exactly once"
    for uri, status, face_count, image_id in rows:
        assert status == "indexed", uri
        assert face_count == expected[uri] == face_counts.get(image_id, 0), uri


@pytest.mark.parametrize("kill_after", [5, 23])
def test_kill_9_then_rerun_finishes_exactly_once(slow_bucket, rekognition, sqlite_url, sqlite_store, kill_after):
    process = _start(sqlite_url)
    _wait_for(sqlite_store, kill_after, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(0.5)  # requests the killed process had in flight finish on the endpoint's side
    committed = _indexed(sqlite_store)
    assert 0 < committed < N_IMAGES
    killed_run = sqlite_store.runs(1)[0]
    assert killed_run.status == "running"
    calls_before = rekognition.count()

    summary = api.index("s3://archive/p/", config=load_config(flags={"db_url": sqlite_url, "concurrency": 4}, environ={}))

    assert summary.status == "completed"
    assert summary.skipped_unchanged == committed, "committed work is never redone"
    assert summary.analyzed == N_IMAGES - committed
    assert rekognition.count() - calls_before == N_IMAGES - committed
    assert sqlite_store.run(killed_run.id).status == "abandoned"
    _check_every_row(sqlite_store, slow_bucket)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_gracefully_with_summary_and_exit_code(slow_bucket, sqlite_url, sqlite_store, signum, code):
    process = _start(sqlite_url)
    _wait_for(sqlite_store, 8, process)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == code, stderr
    assert stdout.startswith("run 1 interrupted: s3://archive/p/"), stdout
    run = sqlite_store.run(1)
    assert run.status == "interrupted" and run.ended_at is not None
    assert run.analyzed == _indexed(sqlite_store) < N_IMAGES, "the record matches what was committed"
    assert sqlite_store.runs()[0].id == 1

    summary = api.index("s3://archive/p/", config=load_config(flags={"db_url": sqlite_url, "concurrency": 4}, environ={}))
    assert summary.analyzed == N_IMAGES - run.analyzed
    _check_every_row(sqlite_store, slow_bucket)

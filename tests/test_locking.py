"""No two runs over the same database and source: the lease, its message, its takeover."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from indexer.cli import app
from indexer.errors import LockedError
from indexer.locking import RunLock, abandon_dead_runs, pid_alive, sources_overlap
from indexer.store.models import locks_table, runs_table
from indexer.store.repository import Store, utcnow
from tests.support.images import jpeg_bytes


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_second_holder_is_refused_with_the_holders_identity(store):
    first = RunLock(store, "index:s3://b/p", lease_seconds=60)
    first.acquire()
    first.attach_run(42)

    second = RunLock(store, "index:s3://b/p", lease_seconds=60)
    second.pid = first.pid + 1  # another process on this host, alive as far as the lock can tell
    second_pid_alive = pytest.MonkeyPatch()
    second_pid_alive.setattr("indexer.locking.pid_alive", lambda pid: True)
    try:
        with pytest.raises(LockedError) as raised:
            second.acquire()
    finally:
        second_pid_alive.undo()
    message = str(raised.value)
    assert f"run 42 on host {socket.gethostname()} pid {first.pid}, started " in message

    other_source = RunLock(store, "index:s3://b/other", lease_seconds=60)
    other_source.acquire()  # a different source is not blocked
    first.release()
    second.acquire()  # released: free again


def test_expired_lease_is_taken_over(store):
    crashed = RunLock(store, "index:/photos", lease_seconds=60)
    crashed.host = "another-host"
    crashed.acquire()
    with store.engine.begin() as conn:
        conn.execute(update(locks_table).values(expires_at=utcnow() - timedelta(seconds=1)))

    fresh = RunLock(store, "index:/photos", lease_seconds=60)
    fresh.acquire()

    assert fresh.taken_over is not None and fresh.taken_over.host == "another-host"
    assert fresh.holder().pid == os.getpid() and fresh.holder().host == socket.gethostname()


def test_live_lease_on_another_host_is_respected_until_it_expires(store):
    remote = RunLock(store, "index:/photos", lease_seconds=0.6)
    remote.host = "another-host"
    remote.acquire()
    with pytest.raises(LockedError):
        RunLock(store, "index:/photos").acquire()
    time.sleep(0.7)
    RunLock(store, "index:/photos").acquire()


def test_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(store):
    killed = RunLock(store, "index:/photos", lease_seconds=3600)
    killed.pid = _dead_pid()
    killed.acquire()
    fresh = RunLock(store, "index:/photos")
    fresh.acquire()
    assert fresh.taken_over.pid == killed.pid


def test_heartbeat_keeps_the_lease_alive(store):
    lock = RunLock(store, "index:/photos", lease_seconds=1.0)
    lock.acquire()
    first_expiry = lock.holder().expires_at
    lock.start_heartbeat()
    time.sleep(0.8)
    assert lock.holder().expires_at > first_expiry
    lock.release()
    assert lock.holder() is None


def test_runs_whose_heartbeat_stopped_are_marked_abandoned(store):
    stale = store.begin_run("/photos", "local")
    live = store.begin_run("/photos", "local")
    with store.engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == stale).values(heartbeat_at=utcnow() - timedelta(hours=1), host="elsewhere"))
        conn.execute(update(runs_table).where(runs_table.c.id == live).values(host="elsewhere"))
    assert abandon_dead_runs(store, lease_seconds=60) == [stale]
    assert store.run(stale).status == "abandoned"
    assert store.run(live).status == "running"


def test_cli_exits_75_when_another_run_holds_the_source(tmp_path, aws_env, monkeypatch, open_store_at):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(jpeg_bytes(1))
    db_url = f"sqlite:///{tmp_path / 'i.db'}"
    store = open_store_at(db_url)
    holder = RunLock(store, f"index:{folder.resolve()}", lease_seconds=600)
    holder.host = "nightly-box"
    holder.acquire()
    holder.attach_run(7)

    result = CliRunner().invoke(app, ["index", str(folder), "--engine", "rekognition", "--db", db_url])

    assert result.exit_code == 75
    assert "another run holds the lock on this source: run 7 on host nightly-box pid" in result.stderr
    assert store.runs() == [], "the refused run did no work and left no record"


# ------------------------------------------------------------------ zombies (issue 9)


def _zombie() -> subprocess.Popen:
    """A child killed with SIGKILL and not reaped yet: a zombie, as after ``kill -9`` of a shell child."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    process.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{process.pid}/stat") as stat:
            if stat.read().rpartition(")")[2].split()[0] == "Z":
                return process
        time.sleep(0.01)
    raise AssertionError("the killed child never became a zombie")


def test_a_zombie_is_a_dead_process():
    zombie = _zombie()
    try:
        os.kill(zombie.pid, 0)  # the kernel still answers for it...
        assert pid_alive(zombie.pid) is False  # ...but it has exited
        assert pid_alive(os.getpid()) is True
    finally:
        zombie.wait()
    assert pid_alive(zombie.pid) is False


def test_lease_of_a_zombie_on_this_host_is_taken_over_at_once(store):
    zombie = _zombie()
    try:
        killed = RunLock(store, "index:/photos", lease_seconds=3600)
        killed.pid = zombie.pid
        killed.acquire()
        fresh = RunLock(store, "index:/photos")
        fresh.acquire()
        assert fresh.taken_over.pid == zombie.pid
    finally:
        zombie.wait()


@pytest.mark.slow
def test_rerun_right_after_kill_9_of_a_child_run_is_not_refused(tmp_path, aws_env, rekognition, open_store_at):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(12):
        (folder / f"{i}.jpg").write_bytes(jpeg_bytes(100 + i))
    db_url = f"sqlite:///{tmp_path / 'i.db'}"
    rekognition.behaviour.latency = 0.5  # the child is still working when it is killed
    child = subprocess.Popen(
        [sys.executable, "-m", "indexer", "index", str(folder), "--engine", "rekognition", "--db", db_url, "--concurrency", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        # migrate=False: the child is creating the schema (the polls below retry until it exists)
        store = open_store_at(db_url, migrate=False) if _wait_for(lambda: os.path.exists(tmp_path / "i.db")) else None
        assert store is not None and _wait_for(lambda: _lock_holder_pid(store) == child.pid), "the child never took the lock"
        assert _wait_for(lambda: rekognition.count() >= 1), "the child never started analysing"
        child.kill()  # not reaped: the child stays a zombie while the re-run starts
        assert _wait_for(lambda: not pid_alive(child.pid))
        rekognition.behaviour.latency = 0.0

        result = CliRunner().invoke(app, ["index", str(folder), "--engine", "rekognition", "--db", db_url])

        assert result.exit_code == 0, result.stderr
        assert [run.status for run in store.runs()] == ["completed", "abandoned"]
    finally:
        child.kill()
        child.wait()


def _wait_for(condition, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except Exception:
            pass  # the database is still being created
        time.sleep(0.05)
    return False


def _lock_holder_pid(store: Store) -> int | None:
    with store.engine.connect() as conn:
        return conn.execute(select(locks_table.c.pid)).scalar()


# ------------------------------------------------------------------ overlapping sources (issue 9)


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("s3://b/2024", "s3://b/2024/", True),  # one prefix, with and without the slash
        ("s3://b/2024", "s3://b/2024-backup/", True),  # S3 prefixes are string prefixes
        ("s3://b/a/", "s3://b/a/x/", True),  # nested
        ("s3://b/", "s3://b/a/", True),  # the whole bucket
        ("s3://b/2023/", "s3://b/2024/", False),
        ("s3://b/2024/", "s3://other/2024/", False),
        ("/photos", "/photos/2024", True),
        ("/photos", "/photos", True),
        ("/photos", "/photos2", False),  # folders are whole path components
        ("/photos", "s3://photos/", False),
    ],
)
def test_which_sources_overlap(a, b, overlap):
    assert sources_overlap(f"index:{a}", f"index:{b}") is overlap
    assert sources_overlap(f"index:{b}", f"index:{a}") is overlap


@pytest.mark.parametrize(("held", "wanted"), [("s3://b/2024", "s3://b/2024/"), ("s3://b/a/x/", "s3://b/a/"), ("/photos", "/photos/2024")])
def test_a_run_over_an_overlapping_source_is_refused_with_the_holders_identity(store, held, wanted):
    first = RunLock(store, f"index:{held}", lease_seconds=60)
    first.host = "nightly-box"
    first.acquire()
    first.attach_run(5)

    second = RunLock(store, f"index:{wanted}", lease_seconds=60)
    with pytest.raises(LockedError) as raised:
        second.acquire()
    assert f"overlapping source {held}: run 5 on host nightly-box pid {first.pid}" in str(raised.value)
    assert second.holder() is None, "the refused run gave back the lease it had taken on its own name"

    RunLock(store, "index:s3://b/2023/", lease_seconds=60).acquire()  # a disjoint source is not blocked


def test_a_stale_overlapping_lease_is_taken_over(store):
    crashed = RunLock(store, "index:s3://b/2024", lease_seconds=3600)
    crashed.pid = _dead_pid()
    crashed.acquire()

    fresh = RunLock(store, "index:s3://b/2024/")
    fresh.acquire()

    assert fresh.taken_over is not None and fresh.taken_over.pid == crashed.pid
    assert crashed.holder() is None, "the dead run's lease is gone"


def test_cli_exits_75_for_an_overlapping_s3_prefix(tmp_path, aws_env, open_store_at):
    db_url = f"sqlite:///{tmp_path / 'i.db'}"
    store = open_store_at(db_url)
    holder = RunLock(store, "index:s3://photos/2024", lease_seconds=600)
    holder.host = "nightly-box"
    holder.acquire()
    holder.attach_run(9)

    result = CliRunner().invoke(app, ["index", "s3://photos/2024/", "--engine", "rekognition", "--db", db_url])

    assert result.exit_code == 75, result.stderr
    assert "overlapping source s3://photos/2024: run 9 on host nightly-box" in result.stderr

"""No two runs over the same database and source: the lease, its message, its takeover."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from indexer.cli import app
from indexer.errors import LockedError
from indexer.locking import RunLock, abandon_dead_runs
from indexer.store.models import Lock, Run
from indexer.store.repository import Store, utcnow
from tests.support.images import jpeg_bytes


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_second_holder_is_refused_with_the_holders_identity(db_url):
    store = Store.open(db_url)
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
    store.close()


def test_expired_lease_is_taken_over(db_url):
    store = Store.open(db_url)
    crashed = RunLock(store, "index:/photos", lease_seconds=60)
    crashed.host = "another-host"
    crashed.acquire()
    with store.engine.begin() as conn:
        conn.execute(update(Lock).values(expires_at=utcnow() - timedelta(seconds=1)))

    fresh = RunLock(store, "index:/photos", lease_seconds=60)
    fresh.acquire()

    assert fresh.taken_over is not None and fresh.taken_over.host == "another-host"
    assert fresh.holder().pid == os.getpid() and fresh.holder().host == socket.gethostname()
    store.close()


def test_live_lease_on_another_host_is_respected_until_it_expires(db_url):
    store = Store.open(db_url)
    remote = RunLock(store, "index:/photos", lease_seconds=0.6)
    remote.host = "another-host"
    remote.acquire()
    with pytest.raises(LockedError):
        RunLock(store, "index:/photos").acquire()
    time.sleep(0.7)
    RunLock(store, "index:/photos").acquire()
    store.close()


def test_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(db_url):
    store = Store.open(db_url)
    killed = RunLock(store, "index:/photos", lease_seconds=3600)
    killed.pid = _dead_pid()
    killed.acquire()
    fresh = RunLock(store, "index:/photos")
    fresh.acquire()
    assert fresh.taken_over.pid == killed.pid
    store.close()


def test_heartbeat_keeps_the_lease_alive(db_url):
    store = Store.open(db_url)
    lock = RunLock(store, "index:/photos", lease_seconds=1.0)
    lock.acquire()
    first_expiry = lock.holder().expires_at
    lock.start_heartbeat()
    time.sleep(0.8)
    assert lock.holder().expires_at > first_expiry
    lock.release()
    assert lock.holder() is None
    store.close()


def test_runs_whose_heartbeat_stopped_are_marked_abandoned(db_url):
    store = Store.open(db_url)
    stale = store.begin_run("/photos", "local")
    live = store.begin_run("/photos", "local")
    with store.engine.begin() as conn:
        conn.execute(update(Run).where(Run.id == stale).values(heartbeat_at=utcnow() - timedelta(hours=1), host="elsewhere"))
        conn.execute(update(Run).where(Run.id == live).values(host="elsewhere"))
    assert abandon_dead_runs(store, lease_seconds=60) == [stale]
    assert store.run(stale).status == "abandoned"
    assert store.run(live).status == "running"
    store.close()


def test_cli_exits_75_when_another_run_holds_the_source(tmp_path, aws_env, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(jpeg_bytes(1))
    db_url = f"sqlite:///{tmp_path / 'i.db'}"
    store = Store.open(db_url)
    holder = RunLock(store, f"index:{folder.resolve()}", lease_seconds=600)
    holder.host = "nightly-box"
    holder.acquire()
    holder.attach_run(7)

    result = CliRunner().invoke(app, ["index", str(folder), "--engine", "rekognition", "--db", db_url])

    assert result.exit_code == 75
    assert "another run holds the lock on this source: run 7 on host nightly-box pid" in result.stderr
    assert store.runs() == [], "the refused run did no work and left no record"
    store.close()

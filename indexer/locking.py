"""One run at a time per database and source: a lease row with a heartbeat.

A lease row (``locks``) works the same on SQLite and PostgreSQL and survives what an advisory
lock would not make visible: *who* holds it. Taking the lease is one atomic statement (insert,
or update a row whose lease has expired), so two runs racing for it cannot both win. The holder
renews the lease from a heartbeat thread; a run killed with ``kill -9`` stops renewing, and its
lease is taken over once it expires - at once if the holder was on this host and its process is
gone.

A sharded run (``--shard I/N``) holds ``index:SOURCE#I/N``. Shards ``i != j`` of the same N own
disjoint images, so their leases do not overlap and the N copies run at once; a second copy of the
same shard collides on the same name (exit 75). A whole-source run and any shard of an overlapping
source overlap (both would analyse that shard's images), and so do shards of *different* N over
overlapping sources (their slices intersect): whichever starts second exits 75.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .errors import LockedError
from .sharding import Shard
from .store.models import RUN_ABANDONED, RUN_RUNNING, locks_table, runs_table
from .store.repository import Store, utcnow

#: The tables' columns, read often enough to deserve short names.
_locks = locks_table.c
_runs = runs_table.c

#: What every index run's lock name starts with (``index:`` + the source URI; see pipeline.py).
LOCK_PREFIX = "index:"


@dataclass(frozen=True)
class Holder:
    run_id: int | None
    host: str
    pid: int
    acquired_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        return f"run {self.run_id} on host {self.host} pid {self.pid}, started {self.acquired_at.isoformat(timespec='seconds')}"


#: ``/proc/PID/stat`` states of a process that has exited: zombie (not yet reaped by its parent;
#: forever in a container without an init) and dead (being reaped). From proc(5).
_EXITED_STATES = frozenset({"Z", "X", "x"})


def _proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` from ``/proc/PID/stat``, or None where there is no procfs.

    The state is the field after the command name, which is in parentheses and may itself hold
    spaces and parentheses, so it is read after the *last* ``)``.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 1 :].split()
    return fields[0] if fields else None


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` on this host is running. A zombie has exited: it counts as dead
    (after ``kill -9`` of a shell child, the killed run lingers as one until it is reaped)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else: look at its state below
    return _proc_state(pid) not in _EXITED_STATES


#: A sharded run's lock name ends in ``#I/N`` (see :func:`index_lock_name`).
_SHARD_SUFFIX = re.compile(r"#(\d+)/(\d+)$")


def index_lock_name(source_uri: str, shard: Shard | None = None) -> str:
    """The lock an index run over ``source_uri`` (or one shard of it) holds."""
    return LOCK_PREFIX + source_uri + (f"#{shard}" if shard is not None else "")


def _split_shard(uri: str) -> tuple[str, tuple[int, int] | None]:
    """``s3://b/p#1/4`` -> (``s3://b/p``, (1, 4)); a whole-source name -> (uri, None)."""
    match = _SHARD_SUFFIX.search(uri)
    if match is None:
        return uri, None
    return uri[: match.start()], (int(match.group(1)), int(match.group(2)))


def _locked_source(name: str) -> str | None:
    """The source URI of an index run's lock name (without its shard), None for any other lock."""
    return _split_shard(name[len(LOCK_PREFIX) :])[0] if name.startswith(LOCK_PREFIX) else None


def _disjoint_shards(name_a: str, name_b: str) -> bool:
    """True when both names are different shards of the same N: they own no image in common."""
    _, a = _split_shard(name_a)
    _, b = _split_shard(name_b)
    return a is not None and b is not None and a[1] == b[1] and a[0] != b[0]


def _lock_source(name: str) -> tuple[str, str, str] | None:
    """``index:s3://bucket/prefix`` -> ("s3", bucket, prefix); ``index:/path`` -> ("file", "", path)."""
    uri = _locked_source(name)
    if uri is None:
        return None
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        return ("s3", bucket, prefix)
    if uri.startswith("/"):
        return ("file", "", uri)
    return None


def sources_overlap(name_a: str, name_b: str) -> bool:
    """True when two lock names cover some image in common, so two runs would do the same work.

    S3 prefixes are plain string prefixes (``s3://b/2024`` lists ``2024/`` *and* ``2024-backup/``),
    so two prefixes of one bucket overlap when one starts with the other: ``2024`` and ``2024/``,
    ``a/`` and ``a/x/``, and the whole bucket with anything in it. Folders overlap when they are
    the same or one contains the other. Any other name only overlaps itself. Shards are compared
    as described in the module's docstring.
    """
    if name_a == name_b:
        return True
    if _disjoint_shards(name_a, name_b):
        return False
    a, b = _lock_source(name_a), _lock_source(name_b)
    if a is None or b is None or a[:2] != b[:2]:
        return False
    if a[0] == "s3":
        return a[2].startswith(b[2]) or b[2].startswith(a[2])
    path_a, path_b = a[2].rstrip("/") + "/", b[2].rstrip("/") + "/"
    return path_a.startswith(path_b) or path_b.startswith(path_a)


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    from datetime import timezone

    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class RunLock:
    """The lease on ``name`` for ``run_id``; renew with :meth:`heartbeat`, give back with :meth:`release`."""

    def __init__(self, store: Store, name: str, lease_seconds: float = 60.0):
        self.store = store
        self.name = name
        self.lease = timedelta(seconds=lease_seconds)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.run_id: int | None = None
        self.taken_over: Holder | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def holder(self) -> Holder | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(
                select(_locks.run_id, _locks.host, _locks.pid, _locks.acquired_at, _locks.expires_at).where(_locks.name == self.name)
            ).first()
        return Holder(row[0], row[1], row[2], _aware(row[3]), _aware(row[4])) if row else None

    def _overlapping(self) -> list[tuple[str, Holder]]:
        """Every other lease whose source overlaps ours (the lock table holds one row per live run)."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(_locks.name, _locks.run_id, _locks.host, _locks.pid, _locks.acquired_at, _locks.expires_at)).all()
        return [
            (row[0], Holder(row[1], row[2], row[3], _aware(row[4]), _aware(row[5])))
            for row in rows
            if row[0] != self.name and sources_overlap(row[0], self.name)
        ]

    def _is_stale(self, holder: Holder, now: datetime) -> bool:
        if holder.expires_at <= now:
            return True
        return holder.host == self.host and holder.pid != self.pid and not pid_alive(holder.pid)

    def acquire(self) -> None:
        """Take the lease or raise :class:`LockedError` naming the run that holds it.

        The lease on our own name is taken first (one atomic statement); then every lease on an
        *overlapping* source (``s3://b/2024`` vs ``s3://b/2024/`` or ``s3://b/2024/x/``) is
        checked: a stale one is removed, a live one makes us give ours back and exit 75. Each run
        looks only after its own lease is committed, so of two overlapping runs starting at once
        at least one sees the other (both may back off; neither proceeds blindly).
        """
        self._acquire_own()
        try:
            self._check_overlaps()
        except BaseException:
            self.release()
            raise

    def _acquire_own(self) -> None:
        now = utcnow()
        values = dict(run_id=self.run_id, host=self.host, pid=self.pid, acquired_at=now, expires_at=now + self.lease)
        try:
            with self.store.engine.begin() as conn:
                conn.execute(insert(locks_table).values(name=self.name, **values))
            return
        except IntegrityError:
            pass
        holder = self.holder()
        if holder is None:  # released between our insert and our look: try once more
            return self._acquire_own()
        if not self._is_stale(holder, now):
            raise LockedError(f"another run holds the lock on this source: {holder.describe()}")
        with self.store.engine.begin() as conn:
            taken = conn.execute(
                update(locks_table)
                .where(_locks.name == self.name, _locks.host == holder.host, _locks.pid == holder.pid, _locks.acquired_at == holder.acquired_at)
                .values(**values)
            ).rowcount
        if taken != 1:
            raise LockedError(f"another run took the lock on this source first: {(self.holder() or holder).describe()}")
        self.taken_over = holder

    def _check_overlaps(self) -> None:
        now = utcnow()
        for name, holder in self._overlapping():
            if not self._is_stale(holder, now):
                source = _locked_source(name) or name
                raise LockedError(f"another run holds the lock on an overlapping source {source}: {holder.describe()}")
            with self.store.engine.begin() as conn:  # a crashed run's lease: remove it
                conn.execute(
                    delete(locks_table).where(
                        _locks.name == name, _locks.host == holder.host, _locks.pid == holder.pid, _locks.acquired_at == holder.acquired_at
                    )
                )
            self.taken_over = self.taken_over or holder

    def attach_run(self, run_id: int) -> None:
        """Name the run in the lease, so a second run's message can say which run holds it."""
        self.run_id = run_id
        with self.store.engine.begin() as conn:
            conn.execute(update(locks_table).where(_locks.name == self.name, _locks.pid == self.pid, _locks.host == self.host).values(run_id=run_id))

    def heartbeat(self) -> bool:
        """Extend the lease; False when it is no longer ours."""
        with self.store.engine.begin() as conn:
            return conn.execute(
                update(locks_table)
                .where(_locks.name == self.name, _locks.pid == self.pid, _locks.host == self.host)
                .values(expires_at=utcnow() + self.lease)
            ).rowcount == 1

    def start_heartbeat(self, on_beat=None) -> None:
        interval = max(0.2, self.lease.total_seconds() / 4)

        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    self.heartbeat()
                    if on_beat:
                        on_beat()
                except Exception:
                    pass  # a missed beat is retried; the lease is four beats long

        self._thread = threading.Thread(target=beat, name="indexer-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        """Stop renewing (the lease stays ours until it is released or expires)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None

    def release(self) -> None:
        self.stop_heartbeat()
        with self.store.engine.begin() as conn:
            conn.execute(delete(locks_table).where(_locks.name == self.name, _locks.pid == self.pid, _locks.host == self.host))


def abandon_dead_runs(store: Store, lease_seconds: float, also: int | None = None) -> list[int]:
    """Mark as abandoned the runs still 'running' whose heartbeat stopped (killed, crashed)."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    host = socket.gethostname()
    with store.engine.begin() as conn:
        candidates = conn.execute(
            select(_runs.id, _runs.host, _runs.pid, _runs.heartbeat_at).where(_runs.status == RUN_RUNNING)
        ).all()
        dead = [
            run_id
            for run_id, run_host, run_pid, beat in candidates
            if run_id == also
            or (beat is not None and _aware(beat) < cutoff)
            or (run_host == host and run_pid and run_pid != os.getpid() and not pid_alive(run_pid))
        ]
        if dead:
            conn.execute(
                update(runs_table)
                .where(and_(_runs.id.in_(dead), _runs.status == RUN_RUNNING))
                .values(status=RUN_ABANDONED, ended_at=utcnow(), error="the run stopped without finishing (killed or crashed)")
            )
    return dead


__all__ = ["RunLock", "Holder", "abandon_dead_runs", "index_lock_name", "pid_alive", "sources_overlap", "LOCK_PREFIX"]

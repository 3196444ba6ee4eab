"""One run at a time per database and source: a lease row with a heartbeat.

A lease row (``locks``) works the same on SQLite and PostgreSQL and survives what an advisory
lock would not make visible: *who* holds it. Taking the lease is one atomic statement (insert,
or update a row whose lease has expired), so two runs racing for it cannot both win. The holder
renews the lease from a heartbeat thread; a run killed with ``kill -9`` stops renewing, and its
lease is taken over once it expires - at once if the holder was on this host and its process is
gone.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .errors import LockedError
from .store.models import RUN_ABANDONED, RUN_RUNNING, Lock, Run
from .store.repository import Store, utcnow


@dataclass(frozen=True)
class Holder:
    run_id: int | None
    host: str
    pid: int
    acquired_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        return f"run {self.run_id} on host {self.host} pid {self.pid}, started {self.acquired_at.isoformat(timespec='seconds')}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
                select(Lock.run_id, Lock.host, Lock.pid, Lock.acquired_at, Lock.expires_at).where(Lock.name == self.name)
            ).first()
        return Holder(row[0], row[1], row[2], _aware(row[3]), _aware(row[4])) if row else None

    def _is_stale(self, holder: Holder, now: datetime) -> bool:
        if holder.expires_at <= now:
            return True
        return holder.host == self.host and holder.pid != self.pid and not pid_alive(holder.pid)

    def acquire(self) -> None:
        """Take the lease or raise :class:`LockedError` naming the run that holds it."""
        now = utcnow()
        values = dict(run_id=self.run_id, host=self.host, pid=self.pid, acquired_at=now, expires_at=now + self.lease)
        try:
            with self.store.engine.begin() as conn:
                conn.execute(insert(Lock).values(name=self.name, **values))
            return
        except IntegrityError:
            pass
        holder = self.holder()
        if holder is None:  # released between our insert and our look: try once more
            return self.acquire()
        if not self._is_stale(holder, now):
            raise LockedError(f"another run holds the lock on this source: {holder.describe()}")
        with self.store.engine.begin() as conn:
            taken = conn.execute(
                update(Lock)
                .where(Lock.name == self.name, Lock.host == holder.host, Lock.pid == holder.pid, Lock.acquired_at == holder.acquired_at)
                .values(**values)
            ).rowcount
        if taken != 1:
            raise LockedError(f"another run took the lock on this source first: {(self.holder() or holder).describe()}")
        self.taken_over = holder

    def attach_run(self, run_id: int) -> None:
        """Name the run in the lease, so a second run's message can say which run holds it."""
        self.run_id = run_id
        with self.store.engine.begin() as conn:
            conn.execute(update(Lock).where(Lock.name == self.name, Lock.pid == self.pid, Lock.host == self.host).values(run_id=run_id))

    def heartbeat(self) -> bool:
        """Extend the lease; False when it is no longer ours."""
        with self.store.engine.begin() as conn:
            return conn.execute(
                update(Lock)
                .where(Lock.name == self.name, Lock.pid == self.pid, Lock.host == self.host)
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
            conn.execute(delete(Lock).where(Lock.name == self.name, Lock.pid == self.pid, Lock.host == self.host))


def abandon_dead_runs(store: Store, lease_seconds: float, also: int | None = None) -> list[int]:
    """Mark as abandoned the runs still 'running' whose heartbeat stopped (killed, crashed)."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    host = socket.gethostname()
    with store.engine.begin() as conn:
        candidates = conn.execute(
            select(Run.id, Run.host, Run.pid, Run.heartbeat_at).where(Run.status == RUN_RUNNING)
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
                update(Run)
                .where(and_(Run.id.in_(dead), Run.status == RUN_RUNNING))
                .values(status=RUN_ABANDONED, ended_at=utcnow(), error="the run stopped without finishing (killed or crashed)")
            )
    return dead


__all__ = ["RunLock", "Holder", "abandon_dead_runs", "pid_alive"]

"""One indexing run: source -> planner -> engine workers -> store, with a run record.

Three kinds of thread, each with one job, joined by bounded queues (so memory stays flat
however large the collection):

- the *producer* walks the source and plans in batches, queueing only what needs work;
- *workers* (``concurrency`` of them) call the engine, one image at a time;
- the calling thread is the *writer*: it writes outcomes in batches (one transaction each),
  drives the progress bar and the run record.

A stop request (SIGINT/SIGTERM) stops the producer, lets in-flight calls finish within
``drain_seconds``, writes everything that finished, and records the run as interrupted. Work
that was committed is never redone; work that was not is picked up by the next run.

A run-wide failure (expired credentials, permission on the action withdrawn, an endpoint that
cannot be reached - see :mod:`indexer.errors`) stops the run the same way and fails it (exit 1):
the images it touched are *not* recorded, so the next run analyses them. So does a streak of
:data:`MAX_CONSECUTIVE_TRANSIENT_FAILURES` images failing with the same service/network fault.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .engines.base import Engine, ImageRef
from .errors import FatalError, ImageError, IndexerError, translate
from .locking import RunLock, abandon_dead_runs, index_lock_name
from .planner import PlanOptions, plan
from .sources import LocalSource, S3Source
from .store.models import RUN_COMPLETED, RUN_FAILED, RUN_INTERRUPTED
from .store.repository import ImageOutcome, RunCounters, Store

_DONE = object()
#: This many images in a row failing with the same transient service/network cause (a
#: connection error, 5xx, throttling after all retries) stop the run: the service or the network
#: is down, and grinding through the rest of the bucket would only record failures. 20 is more
#: than one unlucky image per worker thread (16 by default) failing at once, yet only seconds of
#: a real outage. Per-image causes (unreadable file, bad format) never count.
MAX_CONSECUTIVE_TRANSIENT_FAILURES = 20


@dataclass(frozen=True)
class RunOptions:
    reindex: bool = False
    prune: bool = False
    retry_failed: bool = False
    concurrency: int = 16
    batch_size: int = 50
    lock_lease_seconds: float = 60.0
    drain_seconds: float = 30.0
    #: Seconds between writes when results trickle in (a slow engine still commits regularly).
    flush_seconds: float = 1.0
    progress: bool = False


@dataclass
class RunSummary:
    """What a run did; printed as the final line, or as JSON with ``--json``."""

    run_id: int
    source: str
    engine: str
    status: str
    listed: int = 0
    skipped_unchanged: int = 0
    analyzed: int = 0
    faces: int = 0
    failed: int = 0
    pruned: int = 0
    api_calls: int = 0
    outdated: int = 0
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "source": self.source,
            "status": self.status,
            "engine": self.engine,
            "listed": self.listed,
            "skipped_unchanged": self.skipped_unchanged,
            "analyzed": self.analyzed,
            "faces": self.faces,
            "failed": self.failed,
            "pruned": self.pruned,
            "api_calls": self.api_calls,
            "outdated": self.outdated,
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def _outdated_note(self) -> str:
        """Says how many of the analysed images were re-analysed for a newer model set."""
        return f" ({self.outdated} for newer models)" if self.outdated else ""

    def line(self) -> str:
        return (
            f"run {self.run_id} {self.status}: {self.source}: listed {self.listed}, "
            f"unchanged {self.skipped_unchanged}, analyzed {self.analyzed}{self._outdated_note()}, faces {self.faces}, "
            f"failed {self.failed}, pruned {self.pruned}, api calls {self.api_calls}, {self.elapsed_s:.1f}s"
        )


@dataclass
class _Shared:
    """State the three kinds of thread share, behind one lock."""

    counters: RunCounters = field(default_factory=RunCounters)
    lock: threading.Lock = field(default_factory=threading.Lock)
    planned: int = 0
    error: BaseException | None = None

    def snapshot(self) -> RunCounters:
        with self.lock:
            return RunCounters(**self.counters.as_dict())


def run_index(
    store: Store,
    source: LocalSource | S3Source,
    engine: Engine,
    options: RunOptions,
    stop: threading.Event | None = None,
) -> RunSummary:
    """Index ``source`` into ``store`` with ``engine``. Raises FatalError / LockedError."""
    stop = stop or threading.Event()
    started = time.monotonic()
    lock = RunLock(store, index_lock_name(source.uri), options.lock_lease_seconds)
    lock.acquire()
    try:
        abandon_dead_runs(store, options.lock_lease_seconds, also=lock.taken_over.run_id if lock.taken_over else None)
        store.record_engine(engine.name, engine.capabilities.attributes)
        run_id = store.begin_run(source.uri, engine.name)
        lock.attach_run(run_id)
        shared = _Shared()
        lock.start_heartbeat(on_beat=lambda: store.update_run(run_id, shared.snapshot()))
        status, error = _execute(store, source, engine, options, stop, run_id, shared)
        lock.stop_heartbeat()  # a late beat must not overwrite the final counters below
        if status == RUN_COMPLETED and options.prune:
            pruned = store.prune(source.uri_prefix, run_id)
            with shared.lock:
                shared.counters.pruned = pruned
        counters = shared.snapshot()
        store.finish_run(run_id, status, counters, error=str(error) if error else None)
    finally:
        try:
            lock.release()
        except Exception:
            pass  # the lease expires on its own; the original error matters more
    if error is not None:
        raise error
    return RunSummary(
        run_id=run_id,
        source=source.uri,
        engine=engine.name,
        status=status,
        elapsed_s=time.monotonic() - started,
        **counters.as_dict(),
    )


def _execute(store, source, engine, options, stop, run_id, shared) -> tuple[str, BaseException | None]:
    work: queue.Queue = queue.Queue(maxsize=options.concurrency * 4)
    results: queue.Queue = queue.Queue(maxsize=options.concurrency * 4 + options.batch_size)
    plan_options = PlanOptions(
        engine.name, options.reindex, options.retry_failed, track_seen=options.prune, model_set=engine.capabilities.model_set
    )

    producer = threading.Thread(
        target=_produce, args=(store, source, plan_options, run_id, work, shared, stop, options.concurrency),
        name="indexer-producer", daemon=True,
    )
    workers = [
        threading.Thread(target=_work, args=(source, engine, work, results, stop), name=f"indexer-worker-{i}", daemon=True)
        for i in range(options.concurrency)
    ]
    producer.start()
    for worker in workers:
        worker.start()
    try:
        _write(store, run_id, results, shared, stop, options, len(workers))
    except BaseException:
        stop.set()  # the store failed: stop listing and analysing what could not be written
        raise
    if shared.error is not None:
        return RUN_FAILED, shared.error
    return (RUN_INTERRUPTED if stop.is_set() else RUN_COMPLETED), None


def _produce(store, source, plan_options, run_id, work, shared, stop, n_workers) -> None:
    try:
        for batch in plan(source.walk(), store, plan_options, run_id):
            with shared.lock:
                shared.counters.listed += batch.listed
                shared.counters.skipped_unchanged += batch.skipped
                shared.counters.outdated += batch.outdated
                shared.planned += len(batch.todo)
            for ref in batch.todo:
                if not _put(work, ref, stop):
                    return
            if stop.is_set():
                return
    except BaseException as exc:  # a listing that cannot go on stops the whole run
        shared.error = shared.error or exc
        stop.set()
    finally:
        for _ in range(n_workers):
            work.put(_DONE)


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put unless a stop is requested first (a full queue must not block a stop)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def _work(source, engine: Engine, work: queue.Queue, results: queue.Queue, stop: threading.Event) -> None:
    while True:
        ref = work.get()
        if ref is _DONE:
            results.put(_DONE)
            return
        if stop.is_set():
            continue  # drain without analysing: the next run picks these up
        results.put(_analyze(source, engine, ref, stop))


def _analyze(source, engine: Engine, ref: ImageRef, stop: threading.Event) -> ImageOutcome | BaseException:
    """One image's outcome, or the run-wide error (fatal/usage) that must stop the run.

    A run-wide error leaves the image un-recorded: it was never really analysed, and the next
    run picks it up. Anything else the engine raises is translated by the one table in
    :mod:`indexer.errors` (an unknown error is retryable: recorded, tried again next run).
    """
    model_set = engine.capabilities.model_set
    try:
        return ImageOutcome(ref=ref, engine=engine.name, model_set=model_set, analysis=engine.analyze(ref, source.reader(ref)))
    except ImageError as exc:
        return ImageOutcome(ref=ref, engine=engine.name, model_set=model_set, error=exc)
    except IndexerError as exc:  # fatal for the run (credentials, permission, endpoint) or usage
        stop.set()
        return exc
    except Exception as exc:  # an engine bug must not stop the run: record it, retry next run
        error = translate(exc, f"analysing {ref.uri}")
        if not isinstance(error, ImageError):
            stop.set()
            return error
        return ImageOutcome(ref=ref, engine=engine.name, model_set=model_set, error=error)


@dataclass
class _FailureStreak:
    """Consecutive images that failed with a transient cause (a service or network fault).

    Thousands of images failing one after another with, say, a connection error say the service
    or the network is down, not that each image is bad: the run stops instead of grinding
    through the whole bucket, and the next run retries them.
    """

    code: str | None = None
    length: int = 0

    def observe(self, outcome: ImageOutcome) -> FatalError | None:
        error = outcome.error
        if error is None or not error.retryable or not error.transient:
            self.code, self.length = None, 0  # a success, or a cause about one image: not an outage
            return None
        # An outage shows as a mix of faults (read and connect timeouts, refused connections):
        # any transient cause continues the streak; the last one is named.
        self.code, self.length = error.code, self.length + 1
        if self.length < MAX_CONSECUTIVE_TRANSIENT_FAILURES:
            return None
        return FatalError(
            f"stopped after {self.length} images in a row failed with {error.code} ({error.message}): "
            "the service or the network looks down; fix it and run again (those images are retried)"
        )


def _write(store: Store, run_id: int, results: queue.Queue, shared: _Shared, stop, options: RunOptions, n_workers: int) -> None:
    """The writer loop: batch outcomes into transactions until every worker is done."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit="img", desc="indexing", disable=not options.progress, file=sys.stderr, dynamic_ncols=True, leave=False)
    buffer: list[ImageOutcome] = []
    last_flush = time.monotonic()
    finished_workers = 0
    stop_seen_at: float | None = None
    streak = _FailureStreak()
    try:
        while finished_workers < n_workers:
            if stop.is_set() and stop_seen_at is None:
                stop_seen_at = time.monotonic()
            if stop_seen_at is not None and time.monotonic() - stop_seen_at > options.drain_seconds:
                break  # in-flight calls overran the bound: keep what finished, leave the rest
            try:
                item = results.get(timeout=0.2)
            except queue.Empty:
                item = None
            if item is _DONE:
                finished_workers += 1
            elif isinstance(item, BaseException):
                shared.error = shared.error or item
                with shared.lock:
                    shared.counters.api_calls += getattr(item, "api_calls", 0)
            elif item is not None:
                buffer.append(item)
                outage = streak.observe(item)
                if outage is not None and shared.error is None:
                    shared.error = outage
                    stop.set()
            if buffer and (len(buffer) >= options.batch_size or time.monotonic() - last_flush >= options.flush_seconds):
                _flush(store, run_id, buffer, shared, bar)
                buffer, last_flush = [], time.monotonic()
        _flush(store, run_id, buffer, shared, bar)
    finally:
        bar.close()


def _flush(store: Store, run_id: int, buffer: list[ImageOutcome], shared: _Shared, bar) -> None:
    if not buffer:
        return
    written = store.write(buffer, run_id)
    with shared.lock:
        # Billable calls are what was spent, whatever the store then made of the outcome.
        shared.counters.api_calls += sum(_api_calls(outcome) for outcome in buffer)
        for outcome in written:
            if outcome.error:
                shared.counters.failed += 1
            else:
                shared.counters.analyzed += 1
                shared.counters.faces += outcome.face_count
        bar.total = shared.planned
        bar.set_postfix(faces=shared.counters.faces, failed=shared.counters.failed, unchanged=shared.counters.skipped_unchanged, refresh=False)
    bar.update(len(written))


def _api_calls(outcome: ImageOutcome) -> int:
    """Calls the service answered for this image (an answered refusal counts; no answer does not)."""
    if outcome.error is not None:
        return outcome.error.api_calls
    return outcome.analysis.api_calls if outcome.analysis else 0

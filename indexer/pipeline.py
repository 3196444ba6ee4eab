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

An engine that fills a face collection (:class:`CollectionEngine`, ``index --collection``) also
gets, once the run completed (and pruned), the FaceIds the store queued because no stored face
has them any more: they are deleted from the collection and then forgotten (:func:`drain_deletions`).
The store never calls AWS; the run carries the FaceIds from one to the other.

A sharded run (``RunOptions.shard``, ``--shard I/N``) handles only the images its shard owns
(:mod:`indexer.sharding`), holds the lease ``index:SOURCE#I/N`` (:mod:`indexer.locking` says what
it excludes), records its job and shard in its run row, and prunes only its own slice.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from .core import ImageRef, RunCounters
from .engines.base import Engine
from .errors import FatalError, ImageError, IndexerError, translate
from .locking import RunLock, abandon_dead_runs, index_lock_name
from .planner import PlanOptions, plan
from .sharding import Shard
from .sources import Source
from .store.models import RUN_COMPLETED, RUN_FAILED, RUN_INTERRUPTED
from .store.repository import ImageOutcome, Store

log = logging.getLogger(__name__)

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
    #: The slice of the source this run handles (``--shard I/N``); None: all of it.
    shard: Shard | None = None
    #: The job this run is one copy of (``--job-id``, or the scheduler's; recorded in ``runs``).
    job_id: str | None = None


@runtime_checkable
class CollectionEngine(Protocol):
    """An engine that indexes each image's faces into a face collection, and can delete them."""

    #: The collection (None: this engine instance fills none).
    collection: str | None

    def delete_collection_faces(self, face_ids: Sequence[str], on_batch: Callable[[list[str]], None] | None = None) -> int:
        """Delete ``face_ids`` from the collection, calling ``on_batch`` with the ids each request
        settled; returns the billable calls, raises :class:`~indexer.errors.IndexerError`."""
        ...


def collection_of(engine: Engine) -> str | None:
    """The face collection ``engine`` indexes into, None when it fills none."""
    return engine.collection if isinstance(engine, CollectionEngine) else None


@dataclass(kw_only=True)
class RunSummary(RunCounters):
    """What a run did: its counters, and which run it was; printed as the final line, or as JSON
    with ``--json``."""

    run_id: int
    source: str
    engine: str
    status: str
    elapsed_s: float = 0.0
    #: What the run's reader should know beside the counters (a stale S3 Inventory), one phrase each.
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` summary: scripts read these keys, in this order."""
        return {
            "run_id": self.run_id,
            "source": self.source,
            "status": self.status,
            "engine": self.engine,
            **self.counters(),
            "elapsed_s": round(self.elapsed_s, 3),
            "notes": list(self.notes),
        }

    def add(self, counters: RunCounters) -> None:
        """Take the counters a run counted."""
        for name, value in counters.counters().items():
            setattr(self, name, value)

    def line(self) -> str:
        notes = "".join(f"; {note}" for note in self.notes)
        return f"run {self.run_id} {self.status}: {self.source}: {self.describe()}, {self.elapsed_s:.1f}s{notes}"


def run_index(
    store: Store,
    source: Source,
    engine: Engine,
    options: RunOptions,
    stop: threading.Event | None = None,
) -> RunSummary:
    """Index ``source`` into ``store`` with ``engine``. Raises FatalError / LockedError."""
    stop = stop or threading.Event()
    started = time.monotonic()
    shard = options.shard
    lock = RunLock(store, index_lock_name(source.uri, shard), options.lock_lease_seconds)
    lock.acquire()
    try:
        abandon_dead_runs(store, options.lock_lease_seconds, also=lock.taken_over.run_id if lock.taken_over else None)
        store.record_engine(engine.name, engine.capabilities.attributes)
        run = _Run(store, source, engine, options, stop, store.begin_run(
            source.uri, engine.name, job_id=options.job_id, shard=str(shard) if shard else None
        ))
        lock.attach_run(run.run_id)
        lock.start_heartbeat(on_beat=lambda: store.update_run(run.run_id, run.snapshot()))
        status, error = run.execute()
        lock.stop_heartbeat()  # a late beat must not overwrite the final counters below
        if status == RUN_COMPLETED and options.prune:
            pruned = store.prune(source.uri_prefix, run.run_id, owns=shard.owns if shard else None)
            with run.lock:
                run.counters.pruned = pruned
        if status == RUN_COMPLETED and not stop.is_set() and isinstance(engine, CollectionEngine):
            calls = drain_deletions(store, engine)
            with run.lock:
                run.counters.api_calls += calls
        counters = run.snapshot()
        store.finish_run(run.run_id, status, counters, error=str(error) if error else None)
    finally:
        try:
            lock.release()
        except Exception:
            pass  # the lease expires on its own; the original error matters more
    if error is not None:
        raise error
    summary = RunSummary(
        run_id=run.run_id, source=source.uri, engine=engine.name, status=status, elapsed_s=time.monotonic() - started
    )
    summary.add(counters)
    return summary


def drain_deletions(store: Store, engine: CollectionEngine) -> int:
    """Delete from the engine's collection the FaceIds the store queued for it, forgetting each
    batch once DeleteFaces settled it; the billable calls made.

    Only the run's own collection: its existence was just checked in this region, while a queued
    collection of another name may live elsewhere. A failure (permission, outage) is a warning,
    not the run's failure - the images are indexed - and the FaceIds not yet settled stay queued
    for the next run.
    """
    collection = engine.collection
    if collection is None:
        return 0
    face_ids = store.queued_deletions().get(collection, [])
    if not face_ids:
        return 0

    def forget(settled: list[str]) -> None:
        store.forget_deletions(collection, settled)

    try:
        return engine.delete_collection_faces(face_ids, forget)
    except IndexerError as exc:
        log.warning(
            "indexer: warning: faces replaced or pruned are still in the face collection %r "
            "(kept queued, deleted by the next run): %s", collection, exc,
        )
        return getattr(exc, "api_calls", 0)


class _Run:
    """One run in progress: what it reads, calls and writes, and the state its three kinds of
    thread share (the counters, behind ``lock``; the first run-wide error; the stop request).

    :meth:`produce` runs in the producer thread, :meth:`work` in each worker, :meth:`write` in
    the calling thread; they meet only in the two bounded queues and in this object.
    """

    def __init__(
        self, store: Store, source: Source, engine: Engine, options: RunOptions, stop: threading.Event, run_id: int
    ):
        self.store = store
        self.source = source
        self.engine = engine
        self.options = options
        self.stop = stop
        self.run_id = run_id
        self.counters = RunCounters()
        self.lock = threading.Lock()
        #: Images the producer queued so far (the progress bar's total).
        self.planned = 0
        #: The first run-wide error (fatal, usage, an outage, a listing that broke): fails the run.
        self.error: BaseException | None = None
        self.queued: queue.Queue[Any] = queue.Queue(maxsize=options.concurrency * 4)
        self.results: queue.Queue[Any] = queue.Queue(maxsize=options.concurrency * 4 + options.batch_size)

    def snapshot(self) -> RunCounters:
        with self.lock:
            return RunCounters(**self.counters.counters())

    def fail(self, error: BaseException) -> None:
        """Keep the first run-wide error (the one that caused the others) and stop the run."""
        self.error = self.error or error
        self.stop.set()

    def execute(self) -> tuple[str, BaseException | None]:
        """Start the producer and the workers, write until they are done: the run's status and error."""
        threads = [threading.Thread(target=self.produce, name="indexer-producer", daemon=True)]
        threads += [
            threading.Thread(target=self.work, name=f"indexer-worker-{i}", daemon=True)
            for i in range(self.options.concurrency)
        ]
        for thread in threads:
            thread.start()
        try:
            self.write()
        except BaseException:
            self.stop.set()  # the store failed: stop listing and analysing what could not be written
            raise
        if self.error is not None:
            return RUN_FAILED, self.error
        return (RUN_INTERRUPTED if self.stop.is_set() else RUN_COMPLETED), None

    # -- the producer --------------------------------------------------------------------------

    def produce(self) -> None:
        """List and plan, queueing what needs work; then one end mark per worker."""
        options = self.options
        plan_options = PlanOptions(
            self.engine.name,
            options.reindex,
            options.retry_failed,
            track_seen=options.prune,
            model_set=self.engine.capabilities.model_set,
            collection=collection_of(self.engine),
            shard=options.shard,
        )
        try:
            for batch in plan(self.source.walk(), self.store, plan_options, self.run_id):
                with self.lock:
                    self.counters.listed += batch.listed
                    self.counters.skipped_unchanged += batch.skipped
                    self.counters.outdated += batch.outdated
                    self.planned += len(batch.todo)
                for ref in batch.todo:
                    if not self._queue(ref):
                        return
                if self.stop.is_set():
                    return
        except BaseException as exc:  # a listing that cannot go on stops the whole run
            self.fail(exc)
        finally:
            for _ in range(options.concurrency):
                self.queued.put(_DONE)

    def _queue(self, ref: ImageRef) -> bool:
        """Queue unless a stop is requested first (a full queue must not block a stop)."""
        while not self.stop.is_set():
            try:
                self.queued.put(ref, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    # -- the workers ---------------------------------------------------------------------------

    def work(self) -> None:
        """Analyse queued images until the end mark; after a stop, drain without analysing."""
        while True:
            ref = self.queued.get()
            if ref is _DONE:
                self.results.put(_DONE)
                return
            if self.stop.is_set():
                continue  # drain without analysing: the next run picks these up
            self.results.put(self.analyze(ref))

    def analyze(self, ref: ImageRef) -> ImageOutcome | BaseException:
        """One image's outcome, or the run-wide error (fatal/usage) that must stop the run.

        A run-wide error leaves the image un-recorded: it was never really analysed, and the next
        run picks it up. Anything else the engine raises is translated by the one table in
        :mod:`indexer.errors` (an unknown error is retryable: recorded, tried again next run).
        """
        engine = self.engine
        model_set = engine.capabilities.model_set
        try:
            analysis = engine.analyze(ref, self.source.reader(ref))
            return ImageOutcome(ref=ref, engine=engine.name, model_set=model_set, analysis=analysis)
        except ImageError as exc:
            return ImageOutcome(ref=ref, engine=engine.name, model_set=model_set, error=exc)
        except IndexerError as exc:  # fatal for the run (credentials, permission, endpoint) or usage
            self.stop.set()
            return exc
        except Exception as exc:  # an engine bug must not stop the run: record it, retry next run
            error = translate(exc, f"analysing {ref.uri}")
            if not isinstance(error, ImageError):
                self.stop.set()
                return error
            return ImageOutcome(ref=ref, engine=engine.name, model_set=model_set, error=error)

    # -- the writer ----------------------------------------------------------------------------

    def write(self) -> None:
        """The writer loop: batch outcomes into transactions until every worker is done."""
        from tqdm import tqdm

        options = self.options
        bar = tqdm(
            total=0, unit="img", desc="indexing", disable=not options.progress, file=sys.stderr, dynamic_ncols=True, leave=False
        )
        buffer: list[ImageOutcome] = []
        last_flush = time.monotonic()
        finished_workers = 0
        stop_seen_at: float | None = None
        streak = _FailureStreak()
        try:
            while finished_workers < options.concurrency:
                if self.stop.is_set() and stop_seen_at is None:
                    stop_seen_at = time.monotonic()
                if stop_seen_at is not None and time.monotonic() - stop_seen_at > options.drain_seconds:
                    break  # in-flight calls overran the bound: keep what finished, leave the rest
                try:
                    item = self.results.get(timeout=0.2)
                except queue.Empty:
                    item = None
                if item is _DONE:
                    finished_workers += 1
                elif item is not None:
                    self._receive(item, buffer, streak)
                if buffer and (len(buffer) >= options.batch_size or time.monotonic() - last_flush >= options.flush_seconds):
                    self.flush(buffer, bar)
                    buffer, last_flush = [], time.monotonic()
            self.flush(buffer, bar)
        finally:
            bar.close()

    def _receive(self, item: ImageOutcome | BaseException, buffer: list[ImageOutcome], streak: _FailureStreak) -> None:
        """Buffer a worker's outcome (watching for an outage), or keep the run-wide error it met."""
        if isinstance(item, BaseException):
            self.error = self.error or item
            with self.lock:
                self.counters.api_calls += getattr(item, "api_calls", 0)
            return
        buffer.append(item)
        outage = streak.observe(item)
        if outage is not None and self.error is None:
            self.fail(outage)

    def flush(self, buffer: list[ImageOutcome], bar: Any) -> None:
        """Write ``buffer`` in one transaction and count what was written."""
        if not buffer:
            return
        written = self.store.write(buffer, self.run_id)
        with self.lock:
            counters = self.counters
            # Billable calls are what was spent, whatever the store then made of the outcome.
            counters.api_calls += sum(_api_calls(outcome) for outcome in buffer)
            for outcome in written:
                if outcome.error:
                    counters.failed += 1
                else:
                    counters.analyzed += 1
                    counters.faces += outcome.face_count
            bar.total = self.planned
            bar.set_postfix(
                faces=counters.faces, failed=counters.failed, unchanged=counters.skipped_unchanged, refresh=False
            )
        bar.update(len(written))


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


def _api_calls(outcome: ImageOutcome) -> int:
    """Calls the service answered for this image (an answered refusal counts; no answer does not)."""
    if outcome.error is not None:
        return outcome.error.api_calls
    return outcome.analysis.api_calls if outcome.analysis else 0

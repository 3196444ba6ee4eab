"""Which listed images need work: the incremental heart of a re-run.

References arrive as a stream; the planner takes them in batches and asks the store about a
whole batch in one query (never one query per key), so a re-run over an unchanged collection
costs a few hundred indexed look-ups and zero engine calls.

In a sharded run (``--shard I/N``) the planner drops every image its shard does not own before
anything else: those are neither looked up, analysed, marked seen nor counted, so a shard's
``listed`` is the number of images of its own slice (the N shards' ``listed`` add up to the
source's). A source that already reads only its slice (an S3 Inventory) loses nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

from .core import ImageRef
from .sharding import Shard
from .store.models import IMAGE_INDEXED
from .store.repository import LOOKUP_BATCH, KnownImage, Store

#: Batches start small, so the first images reach the engine within moments of the listing,
#: and double up to one look-up query each (on PostgreSQL every query is a round trip).
FIRST_BATCH = 64
PLAN_BATCH = LOOKUP_BATCH


@dataclass(frozen=True)
class PlanOptions:
    engine: str
    reindex: bool = False
    retry_failed: bool = False
    #: Record which images the listing saw, so ``--prune`` can delete the others afterwards.
    track_seen: bool = False
    #: The running engine's model set (``local@2``); None means the engine's name (unversioned).
    model_set: str | None = None
    #: The face collection the run indexes into (``index --collection``); None: no collection.
    collection: str | None = None
    #: The slice of the source this run handles (``--shard I/N``); None: all of it.
    shard: Shard | None = None


def is_outdated(known: KnownImage, options: PlanOptions) -> bool:
    """True when the same engine analysed it, but with an older (or other) version of its models,
    or - in a run that fills a face collection - without putting its faces in that collection
    (indexed before without ``--collection``, or into another one).

    A run without a collection leaves images that are in one alone: their faces are the same.
    Only an indexed image is outdated by its collection: a failure has no faces to put anywhere.
    """
    if known.engine != options.engine:
        return False
    if (known.model_set or known.engine) != (options.model_set or options.engine):
        return True
    return options.collection is not None and known.status == IMAGE_INDEXED and known.collection != options.collection


def needs_work(ref: ImageRef, known: KnownImage | None, options: PlanOptions) -> bool:
    """True unless this exact content was already analysed by this engine (or failed for good)."""
    if known is not None and ref.archived and known.status == IMAGE_INDEXED:
        return False  # indexed from a restored copy; archived again, it cannot be read (even with --reindex)
    if options.reindex or known is None:
        return True
    if known.fingerprint != ref.fingerprint or known.engine != options.engine or is_outdated(known, options):
        return True
    if known.status == IMAGE_INDEXED:
        return False
    return bool(known.retryable) or options.retry_failed


@dataclass
class PlannedBatch:
    listed: int
    todo: list[ImageRef]
    #: Of ``todo``: unchanged images planned only because an older model set had analysed them,
    #: or because they are not yet in the run's face collection.
    outdated: int = 0

    @property
    def skipped(self) -> int:
        return self.listed - len(self.todo)


def growing_chunks(items: Iterable[ImageRef], first: int = FIRST_BATCH, most: int = PLAN_BATCH) -> Iterator[list[ImageRef]]:
    """Lists of ``first`` items, then twice as many each time, up to ``most``."""
    size, chunk = first, []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            size, chunk = min(most, size * 2), []
    if chunk:
        yield chunk


def plan(refs: Iterable[ImageRef], store: Store, options: PlanOptions, run_id: int) -> Iterator[PlannedBatch]:
    """Yield, batch by batch, the references that need analysing (of the run's shard only)."""
    shard = options.shard
    if shard is not None:
        refs = (ref for ref in refs if shard.owns(ref.uri))
    for chunk in growing_chunks(refs):
        known = store.known([ref.uri for ref in chunk])
        todo = [ref for ref in chunk if needs_work(ref, known.get(ref.uri), options)]
        if options.track_seen:
            pending = {ref.uri for ref in todo}
            store.mark_seen(run_id, [uri for uri in known if uri not in pending])
        outdated = sum(1 for ref in todo if _only_outdated(ref, known.get(ref.uri), options))
        yield PlannedBatch(listed=len(chunk), todo=todo, outdated=outdated)


def _only_outdated(ref: ImageRef, known: KnownImage | None, options: PlanOptions) -> bool:
    """Planned although unchanged, because :func:`is_outdated` (not ``--reindex``)."""
    return (
        not options.reindex
        and known is not None
        and known.fingerprint == ref.fingerprint
        and is_outdated(known, options)
    )

"""The planner: what needs work, asked of the store in growing batches."""

from __future__ import annotations

from indexer.core import Analysis, ImageRef
from indexer.errors import ImageError
from indexer.planner import FIRST_BATCH, PLAN_BATCH, PlanOptions, growing_chunks, needs_work, plan
from indexer.store.repository import ImageOutcome, KnownImage


def ref(i: int, fingerprint: str = "etag:1") -> ImageRef:
    return ImageRef(uri=f"s3://b/{i:06d}.jpg", size=1, fingerprint=fingerprint)


def test_batches_start_small_and_double_up_to_one_lookup():
    sizes = [len(chunk) for chunk in growing_chunks(range(10_000))]
    assert sizes[0] == FIRST_BATCH and sizes[1] == 2 * FIRST_BATCH
    assert max(sizes) == PLAN_BATCH and sum(sizes) == 10_000


def test_needs_work_rules():
    opts = PlanOptions("rekognition")
    indexed = KnownImage("etag:1", "rekognition", "indexed", None)
    assert not needs_work(ref(1), indexed, opts)
    assert needs_work(ref(1, "etag:2"), indexed, opts), "content changed"
    assert needs_work(ref(1), KnownImage("etag:1", "local", "indexed", None), opts), "another engine"
    assert needs_work(ref(1), None, opts), "new"
    assert needs_work(ref(1), indexed, PlanOptions("rekognition", reindex=True))
    permanent = KnownImage("etag:1", "rekognition", "failed", False)
    assert not needs_work(ref(1), permanent, opts)
    assert needs_work(ref(1), permanent, PlanOptions("rekognition", retry_failed=True))
    assert needs_work(ref(1), KnownImage("etag:1", "rekognition", "failed", True), opts), "retryable"


def test_plan_streams_only_what_changed(sqlite_store):
    done = [ImageOutcome(ref(i), "rekognition", analysis=Analysis([])) for i in range(0, 3000, 2)]
    sqlite_store.write(done, None)
    sqlite_store.write([ImageOutcome(ref(1), "rekognition", error=ImageError("InvalidImageFormatException", "bad"))], None)

    batches = list(plan((ref(i) for i in range(3000)), sqlite_store, PlanOptions("rekognition"), run_id=1))

    todo = [r.uri for b in batches for r in b.todo]
    assert sum(b.listed for b in batches) == 3000
    assert todo == [ref(i).uri for i in range(3, 3000, 2)], "indexed and permanently failed are skipped"


def test_an_older_model_set_of_the_same_engine_is_outdated():
    current = PlanOptions("local", model_set="local@2")
    older = KnownImage("etag:1", "local", "indexed", None, model_set="local@1")
    assert needs_work(ref(1), older, current), "indexed by the previous local models"
    assert not needs_work(ref(1), KnownImage("etag:1", "local", "indexed", None, model_set="local@2"), current)
    service = PlanOptions("rekognition", model_set="rekognition")
    assert not needs_work(ref(1), KnownImage("etag:1", "rekognition", "indexed", None, model_set="rekognition"), service)
    assert not needs_work(ref(1), KnownImage("etag:1", "rekognition", "indexed", None), service), "unversioned"


def test_plan_counts_images_planned_only_for_newer_models(sqlite_store):
    sqlite_store.write([ImageOutcome(ref(i), "local", analysis=Analysis([]), model_set="local@1") for i in range(4)], None)
    sqlite_store.write([ImageOutcome(ref(4), "local", analysis=Analysis([]), model_set="local@2")], None)
    refs = [ref(0), ref(1, "etag:changed"), ref(2), ref(3), ref(4), ref(5)]

    (batch,) = plan(iter(refs), sqlite_store, PlanOptions("local", model_set="local@2"), run_id=1)

    assert [r.uri for r in batch.todo] == [ref(i).uri for i in (0, 1, 2, 3, 5)]
    assert batch.outdated == 3, "0, 2, 3: unchanged but analysed by local@1 (1 changed, 5 is new)"

"""Which images one copy of a sharded run owns (``--shard I/N``).

Many copies of ``indexer index`` (a Kubernetes Indexed Job, an AWS Batch array job) split one
source between them without a queue: each image belongs to exactly one shard, chosen by a stable
hash of its URI. The hash is the first 8 bytes of SHA-256 of the UTF-8 URI, read big-endian,
modulo N — never Python's ``hash()``, which is salted per process — so the same image always lands
in the same shard whatever else is in the source, on every machine and in every run.

This module imports nothing from the pipeline or the API: the listing (and the S3 Inventory
reader) call :meth:`Shard.owns` to keep only their slice.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from indexer.errors import ConfigError

# The variables a batch scheduler sets to a copy's 0-based index in an array of copies.
INDEX_VARIABLES = (
    "JOB_COMPLETION_INDEX",  # Kubernetes Indexed Job
    "AWS_BATCH_JOB_ARRAY_INDEX",  # AWS Batch array job
)
SHARDS_VARIABLE = "INDEXER_SHARDS"


def uri_bucket(uri: str, count: int) -> int:
    """The shard (0..count-1) that owns ``uri``: SHA-256's first 8 bytes, big-endian, mod count."""
    digest = hashlib.sha256(uri.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based); ``Shard(0, 1)`` owns everything."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"shard count must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ConfigError(
                f"shard index must be 0..{self.count - 1} for {self.count} shards, got {self.index}"
            )

    def owns(self, uri: str) -> bool:
        """Whether this shard handles the image at ``uri``."""
        return self.count == 1 or uri_bucket(uri, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` -> ``Shard(I, N)``; anything else is a one-line ConfigError."""
        index_text, slash, count_text = text.strip().partition("/")
        if not slash or not index_text.isdigit() or not count_text.isdigit():
            raise ConfigError(f"--shard must be I/N (0-based, e.g. 0/4) or 'auto', got {text!r}")
        return cls(int(index_text), int(count_text))


def shard_count(value: int | str | None) -> int:
    """N for ``--shard auto``: the ``shards`` setting (``--shards`` or ``INDEXER_SHARDS``, resolved
    by :mod:`indexer.config`)."""
    if value is None or str(value).strip() == "":
        raise ConfigError(f"--shard auto needs the number of shards: --shards N or {SHARDS_VARIABLE}")
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"the number of shards must be a whole number of at least 1, got {text!r}")
    return int(text)


def shard_from_environment(count: int, environ: Mapping[str, str] | None = None) -> Shard:
    """This copy's shard from the scheduler's index variable (see :data:`INDEX_VARIABLES`)."""
    env = os.environ if environ is None else environ
    for name in INDEX_VARIABLES:
        raw = env.get(name)
        if raw is None or raw.strip() == "":
            continue
        if not raw.strip().isdigit():
            raise ConfigError(f"{name} must be a whole number, got {raw!r}")
        index = int(raw.strip())
        if index >= count:
            raise ConfigError(f"{name}={index} is out of range for {count} shards (0..{count - 1})")
        return Shard(index, count)
    raise ConfigError(
        "--shard auto found no array index: set JOB_COMPLETION_INDEX (Kubernetes Indexed Job) "
        "or AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch array job), or pass --shard I/N"
    )


def resolve_shard(
    text: str | None, shards: int | str | None = None, environ: Mapping[str, str] | None = None
) -> Shard | None:
    """The ``--shard`` flag's value as a Shard: ``None`` (whole source), ``I/N`` or ``auto``."""
    if text is None:
        return None
    if text.strip().lower() == "auto":
        return shard_from_environment(shard_count(shards), environ)
    return Shard.parse(text)


def job_id_from_environment(explicit: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The job a run is one copy of: ``--job-id``, else ``INDEXER_JOB_ID``, else AWS Batch's job.

    Kubernetes gives a pod no variable with its Job's name: the manifest sets ``INDEXER_JOB_ID``
    from the pod's ``job-name`` label (the downward API). An AWS Batch array job's children have
    ``AWS_BATCH_JOB_ID`` = ``PARENT:INDEX``; the parent's id is the job, so the ``:INDEX`` goes.
    """
    env = os.environ if environ is None else environ
    if explicit:
        return explicit
    if env.get("INDEXER_JOB_ID"):
        return env["INDEXER_JOB_ID"]
    batch = env.get("AWS_BATCH_JOB_ID")
    if not batch:
        return None
    parent, colon, index = batch.rpartition(":")
    return parent if colon and index.isdigit() and env.get("AWS_BATCH_JOB_ARRAY_INDEX") else batch


#: A shard's state in ``indexer runs --job``, from the status of its latest run.
SHARD_STATES = ("completed", "failed", "running", "never ran")


def job_shards(runs: list[tuple[str | None, str]]) -> dict[str, object]:
    """Per shard of a job, its state: ``runs`` are (shard ``I/N``, run status), oldest first.

    N comes from the shards' own strings (the N most of its runs have, the newest's on a tie; runs
    of another N, or of no shard, are counted in ``other_runs``). A shard's latest run decides: ``completed``, ``running``, ``failed`` (failed,
    interrupted or abandoned: re-run it), or ``never ran`` when no run of it was recorded.
    """
    parsed = [(Shard.parse(shard), status) for shard, status in runs if shard]
    if not parsed:
        return {"shards": 0, "states": {}, "other_runs": len(runs)}
    counts = Counter(shard.count for shard, _ in parsed)
    count = max(reversed([shard.count for shard, _ in parsed]), key=counts.__getitem__)
    latest = {shard.index: status for shard, status in parsed if shard.count == count}
    states = {f"{i}/{count}": _state(latest.get(i)) for i in range(count)}
    return {"shards": count, "states": states, "other_runs": len(runs) - sum(1 for s, _ in parsed if s.count == count)}


def _state(status: str | None) -> str:
    if status is None:
        return "never ran"
    return status if status in ("completed", "running") else "failed"

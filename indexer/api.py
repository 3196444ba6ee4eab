"""The Python API: everything the CLI does, callable without it.

    from indexer import api
    summary = api.index("s3://photos/2024/", config=api.load_config(flags={"db_url": "sqlite:///faces.db"}))

Each function takes a resolved :class:`~indexer.config.Config`, raises the domain errors of
:mod:`indexer.errors`, and returns plain data; printing and exit codes are the CLI's business.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config, load_config
from .engines import ENGINE_NAMES
from .errors import ConfigError, FatalError
from .store.repository import Store

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the search path must not import the pipeline, engines or boto3
    from datetime import datetime

    from .engines.base import Engine
    from .pipeline import RunSummary
    from .query import Query
    from .search import ImageMatch
    from .sources import ParsedSource, Source
    from sqlalchemy import Row

__all__ = [
    "load_config",
    "open_store",
    "index",
    "default_engine_for",
    "open_engine",
    "runs",
    "show",
    "upgrade",
    "install_models",
    "list_models",
    "search",
    "count",
    "stats",
]


def open_store(config: Config, *, migrate: bool = True, pool_size: int = 5) -> Store:
    """Connect to the configured database and bring its schema up to date."""
    return Store.open(config.db_url, migrate=migrate, pool_size=pool_size)


def upgrade(config: Config) -> str | None:
    """Apply every pending migration; returns the revision the database is now at."""
    from .store.migrate import current_revision

    with open_store(config) as store:
        return current_revision(store.engine)


def default_engine_for(source: str) -> str:
    """``rekognition`` for S3 (the photos are already in AWS), ``local`` for a folder.

    Nobody should pay for cloud calls by surprise, so a local folder never defaults to the cloud.
    """
    return "rekognition" if source.startswith("s3://") else "local"


def _aws_session(config: Config):
    from .aws import make_session

    return make_session(config.profile, config.region)


def open_engine(name: str, config: Config, *, session: Any = None, stop: threading.Event | None = None) -> "Engine":
    """The analysis engine called ``name`` (``local``, ``rekognition``), configured from ``config``."""
    if name == "rekognition":
        from .aws import make_client
        from .engines.rekognition import RekognitionEngine
        from .ratelimit import AdaptiveRateLimiter, RetryingCaller, RetryPolicy

        session = session or _aws_session(config)
        pool = config.concurrency + 2
        client = make_client(session, "rekognition", pool=pool, max_attempts=1)
        s3_client = make_client(session, "s3", pool=pool, max_attempts=3)
        caller = RetryingCaller(
            AdaptiveRateLimiter(config.tps),
            RetryPolicy(max_attempts=config.retry_attempts),
            stopping=(stop.is_set if stop else (lambda: False)),
        )
        return RekognitionEngine(client, s3_client=s3_client, caller=caller)
    if name == "local":
        from .engines.local import LocalEngine

        models_dir = Path(config.models_dir).expanduser() if config.models_dir else None
        return LocalEngine(workers=config.workers, models_dir=models_dir, progress=None)
    raise ConfigError(f"unknown engine {name!r}: use {' or '.join(map(repr, ENGINE_NAMES))}")


def _open_source(parsed: "ParsedSource", config: Config, session_holder: dict[str, Any]) -> "Source":
    from .sources import open_source

    def s3_client():
        from .aws import make_client

        session_holder.setdefault("session", _aws_session(config))
        return make_client(session_holder["session"], "s3", pool=config.concurrency + 2, max_attempts=3)

    return open_source(parsed, s3_client)


def index(
    source: str,
    *,
    config: Config | None = None,
    engine: "Engine | str | None" = None,
    reindex: bool = False,
    prune: bool = False,
    retry_failed: bool = False,
    progress: bool = False,
    stop: threading.Event | None = None,
    store: Store | None = None,
) -> "RunSummary":
    """Index every image under ``source`` (``s3://bucket/prefix`` or a folder); see pipeline.py."""
    from .pipeline import RunOptions, run_index

    config = config or load_config()
    from .sources import parse_source

    parsed = parse_source(source)  # a malformed source is a usage error before anything is opened
    stop = stop or threading.Event()
    own_store = store is None
    store = store or open_store(config, pool_size=config.concurrency + 4)
    holder: dict[str, Any] = {}
    own_engine = engine is None or isinstance(engine, str)
    try:
        src = _open_source(parsed, config, holder)
        if engine is None or isinstance(engine, str):
            name = engine or config.engine or default_engine_for(source)
            engine = open_engine(name, config, session=holder.get("session"), stop=stop)
        options = RunOptions(
            reindex=reindex,
            prune=prune,
            retry_failed=retry_failed,
            concurrency=config.concurrency,
            batch_size=config.batch_size,
            lock_lease_seconds=config.lock_lease_seconds,
            progress=progress,
        )
        try:
            if own_engine:
                engine.prepare()  # models missing, a pool that cannot start: fail before listing anything
            summary = run_index(store, src, engine, options, stop=stop)
        finally:
            if own_engine:
                engine.close()
        if not stop.is_set():  # a stopped run exits at once; the next run refreshes
            _refresh_bitsets(store)
        return summary
    finally:
        if own_store:
            store.close()


def _refresh_bitsets(store: Store) -> None:
    """Bring the face bitsets up to date after a run (what makes broad counts fast). A run's
    work is committed by now: a failure here costs only speed (searches ask SQL), so it is logged."""
    from sqlalchemy.exc import SQLAlchemyError

    from . import bitsets
    from .errors import IndexerError

    try:
        bitsets.refresh(store)
    except (SQLAlchemyError, IndexerError, MemoryError) as exc:
        log.warning("face bitsets not refreshed (searches stay correct, counts slower): %s", exc)


def runs(config: Config, limit: int = 20) -> list[dict[str, Any]]:
    """The last runs, newest first, with their counters."""
    with open_store(config) as store:
        return [_run_dict(run) for run in store.runs(limit)]


def show(config: Config, uri: str) -> dict[str, Any] | None:
    """One image's stored row and faces (Rekognition shape plus ``face_id``), or None."""
    with open_store(config) as store:
        found = store.image(uri)
        if found is None and not uri.startswith("s3://"):
            from .sources import parse_source

            parsed = parse_source(uri)  # a relative or ~ path names the same file
            found = store.image(str(parsed)) if isinstance(parsed, Path) else None
        return found


def _run_dict(run: "Row[Any]") -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat(timespec="seconds") if moment else None

    return {
        "run_id": run.id,
        "source": run.source,
        "engine": run.engine,
        "status": run.status,
        "started_at": iso(run.started_at),
        "ended_at": iso(run.ended_at),
        "host": run.host,
        "pid": run.pid,
        **Store.run_counters(run).counters(),
        "error": run.error,
    }


def _models_directory(config: Config) -> Path:
    from .engines.local import models

    return Path(config.models_dir).expanduser() if config.models_dir else models.models_dir()


def install_models(config: Config, *, progress: bool = False, force: bool = False):
    """Fetch, verify and cache the local engine's model files; returns the cache directory."""
    from .engines.local import models

    return models.install(progress=progress, directory=_models_directory(config), force=force)


def list_models(config: Config) -> list[dict[str, Any]]:
    """Every model file with its origin, SHA-256, license and whether it is cached and valid."""
    from .engines.local import models

    directory = _models_directory(config)

    def cached(row: dict[str, str]) -> bool:
        path = directory / row["file"]
        return path.is_file() and models.sha256_file(path) == row["sha256"]

    return [{**row, "installed": cached(row), "directory": str(directory)} for row in models.model_table()]


def open_index(config: Config) -> Store:
    """The index for reading: never created, never migrated (fast, and no alembic import).

    A SQLite file that does not exist is an error rather than a new empty database.
    """
    from sqlalchemy import inspect

    from .errors import mask_url
    from .store.db import normalize_url

    url = normalize_url(config.db_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(url.database).expanduser().is_file():
            raise FatalError(f"no index at {url.database}: run `indexer index SOURCE` first, or pass --db")
    store = Store.open(config.db_url, migrate=False)
    if not inspect(store.engine).has_table("faces"):
        store.close()
        raise FatalError(f"{mask_url(config.db_url)} holds no index: run `indexer index SOURCE` or `indexer db upgrade`")
    return store


@dataclass
class SearchResult:
    """A parsed query, what it found, and the warnings a person should see beside it."""

    query: "Query"
    matches: list["ImageMatch"] = field(default_factory=list)
    images: int = 0
    faces: int = 0
    warnings: list[str] = field(default_factory=list)


def _parse(config: Config, text: str, min_confidence: float | None) -> "Query":
    from .query import parse

    return parse(text, config.min_confidence if min_confidence is None else min_confidence)


def search(
    config: Config,
    text: str,
    *,
    limit: int | None = None,
    order: str = "uri",
    with_faces: bool = True,
    min_confidence: float | None = None,
) -> SearchResult:
    """Images with a face matching every face term of ``text`` and every image term."""
    from . import search as searching

    query = _parse(config, text, min_confidence)  # a bad query fails before the database is opened
    with open_index(config) as store:
        warnings = searching.capability_warnings(store, query)
        matches = searching.search(store, query, limit=limit, order=order, with_faces=with_faces)
        return SearchResult(query, matches, len(matches), sum(len(m.stored_faces) for m in matches), warnings)


def count(config: Config, text: str, *, min_confidence: float | None = None) -> SearchResult:
    """How many images and faces match ``text``, without fetching them."""
    from . import search as searching

    query = _parse(config, text, min_confidence)
    with open_index(config) as store:
        warnings = searching.capability_warnings(store, query)
        images, faces = searching.count(store, query)
        return SearchResult(query, [], images, faces, warnings)


def stats(config: Config) -> dict[str, Any]:
    """Images, faces, failures, and per engine how many faces hold and know each attribute."""
    from . import search as searching

    with open_index(config) as store:
        return searching.stats(store, config.min_confidence)

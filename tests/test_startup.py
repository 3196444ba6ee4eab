"""What ``indexer search`` loads: only what a search needs (bench/startup.py times it).

Importing the CLI, the query language or search must not load a cloud SDK, an image or model
runtime, the migrations or the indexing pipeline; a whole search on SQLite must not load them
either, nor pydantic (typer's coercion of plain values is done without it: indexer/cli_coercion.py)
nor PostgreSQL's dialect.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
import typer.main
from typer._coercion import build_runtime_param

from indexer.cli import app
from indexer.cli_coercion import PlainFirstCoercion
from tests.support.search_data import populate

#: Modules a search has no use for (a name ending in "." stands for every module under it).
NOT_FOR_SEARCH = ("boto3", "botocore", "PIL", "numpy", "cv2", "onnxruntime", "alembic", "tqdm", "indexer.pipeline", "indexer.engines.")

REPORT = """
import sys
unwanted = {unwanted!r}
print("LOADED", sorted(m for m in sys.modules if any(m == u or m.startswith(u if u.endswith(".") else u + ".") for u in unwanted)))
"""


def _loaded_after(code: str, *argv: str, unwanted: tuple[str, ...] = NOT_FOR_SEARCH) -> str:
    """Which of ``unwanted`` a fresh interpreter has loaded after running ``code`` (with ``argv``)."""
    script = code + "\n" + REPORT.format(unwanted=unwanted)
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


@pytest.mark.parametrize("module", ["indexer.cli", "indexer.search", "indexer.query"])
def test_importing_the_search_path_loads_nothing_a_search_does_not_use(module):
    assert _loaded_after(f"import {module}") == "LOADED []"


@pytest.mark.parametrize("output", ["json", "uris"])
def test_a_whole_search_loads_nothing_a_search_does_not_use(sqlite_store, sqlite_url, output):
    populate(sqlite_store)
    search = (
        "import sys\nfrom indexer.cli import main\n"
        "sys.argv = ['indexer', 'search', 'smiling', '--limit', '100', '--format', sys.argv[2], '--db', sys.argv[1]]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code"
    )
    unwanted = (*NOT_FOR_SEARCH, "pydantic", "sqlalchemy.dialects.postgresql")
    assert _loaded_after(search, sqlite_url, output, unwanted=unwanted) == "LOADED []"


RAW_VALUES = [None, "0", "1", "007", "100", "-5", "+5", " 5", "5 ", "1_000", "1.5", "50.0", ".5", "1e3", "nan", "inf",
              "abc", "", "\u0663", "9" * 30, "1." + "5" * 30, 10, 50.0, True, "uri", "confidence", "table", "bogus"]


def _every_parameter():
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        for sub_name, sub_command in getattr(command, "commands", {name: command}).items():
            for param in sub_command.params:
                yield sub_name, sub_command, param


@pytest.mark.parametrize(("command_name", "command", "param"), list(_every_parameter()), ids=lambda x: getattr(x, "name", x))
def test_plain_coercion_gives_what_typers_own_gives(command_name, command, param):
    """Every value, for every parameter of every command: the same result, or the same error."""
    ctx = command.make_context(command_name, [], resilient_parsing=True)
    typers = build_runtime_param(param.type_descriptor)
    ours = PlainFirstCoercion()
    for value in RAW_VALUES:
        assert _outcome(typers, value, param, ctx) == _outcome(ours, value, param, ctx), (param.name, value)


def _outcome(coercion, value, param, ctx):
    try:
        result = coercion.coerce(value, param=param, ctx=ctx)
    except typer.BadParameter as exc:
        return "error", exc.format_message()
    return "value", type(result), repr(result)  # repr: NaN is not equal to itself


def _command_names() -> list[str]:
    return [info.name or info.callback.__name__.replace("_", "-") for info in app.registered_commands if info.callback]


@pytest.mark.parametrize("name", _command_names())
def test_a_command_runs_from_an_app_of_its_own_that_says_the_same(name):
    """``main()`` builds only the command it runs (indexer.cli.app_for): its help, usage line and
    usage errors are the whole app's, word for word."""
    from typer.testing import CliRunner

    from indexer.cli import app_for

    single = app_for([name, "--help"])
    assert single is not app and len(single.registered_commands) == 1
    runner = CliRunner()
    for args in ([name, "--help"], [name, "--no-such-flag"]):
        alone, whole = runner.invoke(single, args), runner.invoke(app, args)
        assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output), args


@pytest.mark.parametrize("args", [[], ["--help"], ["db", "upgrade", "--help"], ["models", "list"], ["serch", "x"]])
def test_anything_but_a_command_gets_the_whole_app(args):
    from indexer.cli import app_for

    assert app_for(args) is app

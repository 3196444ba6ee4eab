"""The ``indexer`` command through typer's CliRunner: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import re

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from indexer.cli import app
from tests.support.faces import face_detail
from tests.support.images import jpeg_bytes

runner = CliRunner()
#: The keys of ``indexer index --json`` and ``indexer runs --json``, in order (a public contract).
SUMMARY_KEYS = [
    "run_id", "source", "status", "engine",
    "listed", "skipped_unchanged", "analyzed", "faces", "failed", "pruned", "api_calls", "outdated",
    "elapsed_s", "notes",
]  # fmt: skip
RUN_KEYS = [
    "run_id", "source", "engine", "status", "started_at", "ended_at", "host", "pid",
    "listed", "skipped_unchanged", "analyzed", "faces", "failed", "pruned", "api_calls", "outdated",
    "error", "job_id", "shard",
]  # fmt: skip


def invoke(*args: str, **kwargs):
    return runner.invoke(app, list(args), catch_exceptions=False, **kwargs)


def _commands(group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if hasattr(command, "commands"):
            yield from _commands(command, prefix + (name,))


def test_every_command_has_help_text():
    for path, command in _commands(get_command(app)):
        assert command.help, f"'indexer {' '.join(path)}' has no help text"
        result = invoke(*path, "--help")
        assert result.exit_code == 0, path


@pytest.fixture
def folder(tmp_path, rekognition):
    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    (photos / ".thumbnails").mkdir()
    smiling = jpeg_bytes(11)
    rekognition.register(smiling, [face_detail(smile=True), face_detail()])
    (photos / "trip" / "smiling.jpg").write_bytes(smiling)
    (photos / "plain.jpeg").write_bytes(jpeg_bytes(12))
    (photos / ".thumbnails" / "thumb.jpg").write_bytes(jpeg_bytes(13))
    (photos / "readme.txt").write_text("hello")
    return photos


def test_index_json_summary_has_the_documented_keys(folder, sqlite_url, rekognition):
    result = invoke("index", str(folder), "--engine", "rekognition", "--db", sqlite_url, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert list(summary) == SUMMARY_KEYS, "scripts read these keys, in this order"
    assert (summary["listed"], summary["analyzed"], summary["faces"], summary["api_calls"]) == (2, 2, 2, 2)
    assert [call.kind for call in rekognition.calls] == ["Bytes", "Bytes"], "local files go as bytes"


def test_quiet_run_prints_only_the_summary_line(folder, sqlite_url):
    result = invoke("index", str(folder), "--engine", "rekognition", "--db", sqlite_url, "--quiet")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        rf"run 1 completed: {re.escape(str(folder))}: listed 2, unchanged 0, analyzed 2, faces 2, failed 0, pruned 0, "
        r"api calls 2, \d+\.\ds",
        lines[0],
    ), lines[0]


def test_runs_and_show_read_back_what_was_indexed(folder, sqlite_url):
    invoke("index", str(folder), "--engine", "rekognition", "--db", sqlite_url, "-q")
    invoke("index", str(folder), "--engine", "rekognition", "--db", sqlite_url, "-q")

    runs = [json.loads(line) for line in invoke("runs", "--db", sqlite_url, "--json").stdout.splitlines()]
    assert [list(r) for r in runs] == [RUN_KEYS, RUN_KEYS], "scripts read these keys, in this order"
    assert [r["run_id"] for r in runs] == [2, 1]
    assert [r["analyzed"] for r in runs] == [0, 2]
    assert runs[0]["skipped_unchanged"] == 2 and runs[0]["status"] == "completed"
    listed = invoke("runs", "--db", sqlite_url, "--limit", "1").stdout.splitlines()
    assert len(listed) == 1 and listed[0].startswith("    2  completed")
    assert listed[0].endswith(f"{folder}  listed 2, unchanged 2, analyzed 0, faces 0, failed 0, pruned 0, api calls 0")

    shown = json.loads(invoke("show", str(folder / "trip" / "smiling.jpg"), "--db", sqlite_url, "--json").stdout)
    assert len(shown["faces"]) == 2
    assert shown["faces"][0]["Smile"] == {"Value": True, "Confidence": 95.0}
    assert "face_id" in shown["faces"][0] and "BoundingBox" in shown["faces"][0]

    missing = invoke("show", "s3://nope/x.jpg", "--db", sqlite_url)
    assert missing.exit_code == 1 and "image not in the index: s3://nope/x.jpg" in missing.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["index", "ftp://host/photos"], 2, "unsupported source 'ftp://host/photos'"),
        (["index", "s3://"], 2, "invalid S3 source 's3://'"),
        (["index", "/no/such/folder", "--engine", "rekognition"], 1, "source folder not found: /no/such/folder"),
        (["index", ".", "--engine", "gpu"], 2, "engine must be 'local' or 'rekognition', got 'gpu'"),
        (["index", ".", "--concurrency", "0"], 2, "concurrency must be positive"),
        (["runs", "--db", "mysql://u:hunter2@h/db"], 2, "unsupported database 'mysql'"),
    ],
)
def test_bad_input_is_one_clear_line_and_the_right_exit_code(args, code, message, aws_env, sqlite_url):
    if "--db" not in args:
        args = args + ["--db", sqlite_url]
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert "hunter2" not in result.output


@pytest.mark.parametrize("command", [("runs",), ("search", "smiling"), ("search", "smiling", "--count"), ("stats",)])
def test_unreachable_database_exits_1_and_masks_the_password(aws_env, tmp_path, command):
    """The writers' explicit check and the readers' first statement say the same one line."""
    result = invoke(*command, "--db", "postgresql://indexer:s3cret@127.0.0.1:1/none")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        next(line for line in result.stderr.splitlines() if "database unreachable" in line)
    ]
    assert "database unreachable: postgresql+psycopg://indexer:***@127.0.0.1:1/none" in result.stderr
    assert "s3cret" not in result.output


def test_no_credentials_exit_1(folder, sqlite_url, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = invoke("index", str(folder), "--engine", "rekognition", "--db", sqlite_url)
    assert result.exit_code == 1
    assert result.stderr.strip() == "indexer: error: no AWS credentials found while calling Rekognition: set a profile (--profile) or AWS_* variables"


def test_missing_profile_is_a_configuration_error(folder, sqlite_url):
    result = invoke("index", str(folder), "--engine", "rekognition", "--db", sqlite_url, "--profile", "nobody")
    assert result.exit_code == 2
    assert "AWS profile 'nobody' not found" in result.stderr


def test_db_upgrade_reports_the_revision(aws_env, sqlite_url):
    result = invoke("db", "upgrade", "--db", sqlite_url)
    assert result.exit_code == 0
    from indexer.store.migrate import head_revision

    assert result.stdout.strip().endswith(f"is at revision {head_revision()}")


def test_every_run_counter_has_a_column_in_runs():
    from indexer.core import RunCounters
    from indexer.store.models import runs_table

    assert set(RunCounters.names()) <= set(runs_table.columns.keys())

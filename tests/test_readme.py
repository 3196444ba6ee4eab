"""The README's documented commands are real: every `indexer ...` line names a real command and
real flags, and the set-up commands are where .ci/run and people look for them."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.main import get_command

from indexer.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _code_lines() -> list[str]:
    blocks = re.findall(r"```(?:bash|cron)\n(.*?)```", README, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def _invocations() -> list[list[str]]:
    found = []
    for line in _code_lines():
        for part in re.split(r"&&|>>|\|", line):
            words = shlex.split(part, comments=True)
            for i, word in enumerate(words):
                if word == "indexer" or word.endswith("/bin/indexer"):
                    found.append(words[i + 1 :])
                    break
    return found


def _resolve(args: list[str]):
    command = get_command(app)
    while hasattr(command, "commands") and args and args[0] in command.commands:
        command, args = command.commands[args[0]], args[1:]
    return command, args


def test_readme_documents_commands_that_exist_with_flags_that_exist():
    invocations = _invocations()
    assert len(invocations) >= 8
    for args in invocations:
        command, rest = _resolve(list(args))
        assert not hasattr(command, "commands"), f"README: 'indexer {' '.join(args)}' names no command"
        known = {opt for param in command.params for opt in param.opts}
        for word in rest:
            if word.startswith("--"):
                assert word.split("=")[0] in known, f"README: 'indexer {' '.join(args)}': no such flag {word}"


def test_readme_has_the_two_setup_commands_and_ci_runs_the_test_one():
    for marker in ("<!-- main-command -->", "<!-- test-command -->"):
        assert re.search(re.escape(marker) + r"\n```bash\n.+\n```", README), marker
    test_command = re.search(r"<!-- test-command -->\n```bash\n(.+)\n```", README).group(1)
    assert "pytest" in test_command
    assert "mypy" in test_command  # the types are checked wherever the tests run
    assert "test-command" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_every_readme_search_answers_on_the_default_engine(models, tmp_path, monkeypatch):
    """The README's example searches run on a folder indexed by the offline engine (the default
    for folders): each exits 0 and none warns that the engine cannot answer one of its terms."""
    from PIL import Image
    from skimage import data
    from typer.testing import CliRunner

    folder = tmp_path / "Pictures"
    folder.mkdir()
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
    db = f"sqlite:///{tmp_path / 'faces.db'}"
    monkeypatch.setenv("INDEXER_MODELS_DIR", str(models))
    runner = CliRunner()
    assert runner.invoke(app, ["index", str(folder), "--db", db, "--quiet"]).exit_code == 0

    examples = [args for args in _invocations() if args and args[0] in ("search", "stats")]
    assert len(examples) >= 5
    for args in examples:
        result = runner.invoke(app, [*args, "--db", db])
        assert result.exit_code == 0, (args, result.output)
        assert "warning" not in result.stderr, (args, result.stderr)

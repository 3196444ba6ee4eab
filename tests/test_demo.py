"""``indexer demo``: real public-domain photos from PyPI (pinned, verified by SHA-256), indexed by
the offline engine into the demo's own index, three README searches with their contact sheets.

The sample photos are downloaded from PyPI once per session (``demo_models``), like the test
portraits; the tests are skipped, with the reason, when PyPI cannot be reached."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer import api, demo
from indexer.cli import app
from indexer.config import Config, load_config
from indexer.engines.local import models as m

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
runner = CliRunner()


@pytest.fixture(scope="session")
def demo_models(models, tmp_path_factory) -> Path:
    """A models directory of the session's model files (linked, not copied) whose ``samples``
    folder is filled by the demo's own download from PyPI, once per session."""
    folder = tmp_path_factory.mktemp("demo-models")
    for path in Path(models).iterdir():
        if path.is_file():
            (folder / path.name).symlink_to(path)
    try:
        demo.fetch_samples(demo.samples_dir(folder))
    except demo.SamplesMissingError as exc:
        pytest.skip(f"cannot download the demo's sample photos from PyPI: {exc}")
    return folder


def _config(models_dir: Path, tmp: Path, **flags: str) -> Config:
    """Settings with no user config file or INDEXER_* variable in the way."""
    empty = tmp / "empty.toml"
    empty.write_text("")
    return load_config(empty, {"models_dir": str(models_dir), **flags}, environ={})


@pytest.fixture(scope="module")
def first_run(demo_models, tmp_path_factory) -> tuple[Config, demo.DemoResult]:
    """One demo run into a fresh folder, with the user's main index configured elsewhere."""
    tmp = tmp_path_factory.mktemp("demo")
    config = _config(demo_models, tmp, db_url=f"sqlite:///{tmp / 'main.db'}")
    return config, api.demo(config, directory=tmp / "demo")


def _demo_config(result: demo.DemoResult, config: Config) -> Config:
    return load_config(None, {"db_url": result.db_url, "models_dir": config.models_dir}, environ={})


# ------------------------------------------------------------------ the sample photos


def test_each_cached_sample_matches_its_recorded_sha256(demo_models):
    cached = demo.samples_dir(demo_models)
    assert sorted(p.name for p in cached.iterdir()) == sorted(s.name for s in demo.SAMPLE_FILES)
    for sample in demo.SAMPLE_FILES:
        assert m.sha256_file(cached / sample.name) == sample.sha256
    assert demo.missing_samples(cached) == []


def test_cached_samples_are_not_downloaded_again(demo_models, monkeypatch):
    def no_download(*args: object) -> Path:
        raise AssertionError(f"downloaded {args[:2]} although every sample is cached")

    monkeypatch.setattr(m, "_download_pypi", no_download)
    assert demo.fetch_samples(demo.samples_dir(demo_models)) == demo.samples_dir(demo_models)


def test_a_tampered_cached_sample_is_fetched_again_and_verified(demo_models, tmp_path):
    cache = tmp_path / "samples"
    cache.mkdir()
    for sample in demo.SAMPLE_FILES:
        (cache / sample.name).write_bytes((demo.samples_dir(demo_models) / sample.name).read_bytes())
    tampered = cache / "obama.jpg"
    tampered.write_bytes(tampered.read_bytes()[:-100] + b"x" * 100)
    assert [s.name for s in demo.missing_samples(cache)] == ["obama.jpg"]

    demo.fetch_samples(cache)

    assert m.sha256_file(tampered) == next(s.sha256 for s in demo.SAMPLE_FILES if s.name == "obama.jpg")
    assert demo.missing_samples(cache) == []


def test_a_file_that_does_not_match_its_recorded_sha256_is_refused_and_not_cached(demo_models, tmp_path, monkeypatch):
    (real,) = [s for s in demo.SAMPLE_FILES if s.name == "biden.jpg"]
    wrong = demo.SampleFile(**{**real.__dict__, "sha256": "0" * 64})
    monkeypatch.setattr(demo, "SAMPLE_FILES", (wrong,))

    with pytest.raises(m.ModelVerificationError, match=r"biden\.jpg from face_recognition==1\.3\.0 has SHA-256 3c17508b"):
        demo.fetch_samples(tmp_path / "samples")
    assert not (tmp_path / "samples" / "biden.jpg").exists()


def test_no_registry_is_one_line_naming_the_package_and_what_to_do(demo_models, tmp_path, monkeypatch):
    """pip with no index and an empty find-links folder: the registry cannot be reached."""
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    for path in Path(demo_models).iterdir():
        if path.is_file():
            (models_dir / path.name).symlink_to(path.resolve())
    (tmp_path / "links").mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "links"))
    monkeypatch.setenv("INDEXER_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    result = runner.invoke(app, ["demo", "--dir", str(tmp_path / "demo")])

    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("indexer: error: the demo's sample photos: could not download face_recognition==1.3.0")
    assert "`indexer demo` needs access to PyPI once" in line and "models install" not in line
    assert not (tmp_path / "demo" / "index.db").exists()


def test_a_cache_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "samples").write_text("a file where the samples folder goes")
    monkeypatch.setenv("INDEXER_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    result = runner.invoke(app, ["demo", "--dir", str(tmp_path / "demo")])

    assert result.exit_code == 1
    assert result.stderr.strip() == f"indexer: error: cannot cache the demo's sample photos in {models_dir / 'samples'}: File exists"


def test_a_dir_that_is_a_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "taken").write_text("not a folder")

    result = runner.invoke(app, ["demo", "--dir", str(tmp_path / "taken")])

    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"indexer: error: cannot make the demo's folders in {tmp_path / 'taken'}: ")


# ------------------------------------------------------------------ api.demo


@pytest.mark.slow
def test_demo_indexes_every_sample_into_its_own_index_not_the_main_one(first_run):
    config, result = first_run
    assert result.photos == result.directory / "photos"
    for sample in demo.SAMPLE_FILES:
        assert m.sha256_file(result.photos / sample.name) == sample.sha256
    assert result.db_url == f"sqlite:///{result.directory / 'index.db'}"
    assert not Path(config.db_url.removeprefix("sqlite:///")).exists(), "the main index is never touched"

    summary = result.summary
    assert (summary.status, summary.engine, summary.listed, summary.analyzed, summary.failed) == (
        "completed", "local", len(demo.SAMPLE_FILES), len(demo.SAMPLE_FILES), 0,
    )
    stats = api.stats(_demo_config(result, config))
    assert stats["images"] == len(demo.SAMPLE_FILES)
    assert stats["faces"] >= len(demo.SAMPLE_FILES), "every sample is a portrait of a real person"


@pytest.mark.slow
def test_each_demo_search_counts_as_search_does_and_its_sheet_shows_its_photos(first_run):
    config, result = first_run
    demo_config = _demo_config(result, config)
    assert [s.text for s in result.searches] == list(demo.DEMO_SEARCHES)
    for search in result.searches:
        counted = runner.invoke(app, ["search", search.text, "--count", "--db", result.db_url])
        assert counted.stdout.strip() == f"{search.images} images, {search.faces} faces", search.text
        assert search.images >= 1, f"{search.text!r} finds nothing in the demo's photos"

        assert search.sheet == result.directory / "sheets" / demo.sheet_name(search.text)
        page = search.sheet.read_text()
        found = api.search(demo_config, search.text)
        assert len(found.matches) == search.images
        for match in found.matches:
            assert match.uri in page, f"{match.uri} missing from {search.sheet.name}"
        assert page.count("data:image/") >= search.images, "each photo is embedded in the sheet"


@pytest.mark.slow
def test_a_second_run_analyses_nothing_and_an_edited_photo_is_put_back(first_run):
    config, result = first_run
    again = api.demo(config, directory=result.directory)
    assert (again.summary.skipped_unchanged, again.summary.analyzed) == (len(demo.SAMPLE_FILES), 0)
    assert [(s.text, s.images, s.faces) for s in again.searches] == [(s.text, s.images, s.faces) for s in result.searches]

    # An edited photo is replaced by the verified copy, with the cached file's size and
    # modification time: the image indexed before, so still nothing to analyse.
    edited = result.photos / "biden.jpg"
    edited.write_bytes(edited.read_bytes() + b"\0")
    third = api.demo(config, directory=result.directory)
    assert m.sha256_file(edited) == next(s.sha256 for s in demo.SAMPLE_FILES if s.name == "biden.jpg")
    assert (third.summary.skipped_unchanged, third.summary.analyzed) == (len(demo.SAMPLE_FILES), 0)


# ------------------------------------------------------------------ indexer demo


@pytest.mark.slow
def test_indexer_demo_prints_where_everything_is_and_a_command_that_works(demo_models, tmp_path, monkeypatch):
    """No --dir: the demo goes to the user's data directory, beside (never into) the main index."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("INDEXER_MODELS_DIR", str(demo_models))
    monkeypatch.setenv("INDEXER_NO_BROWSER", "1")
    monkeypatch.delenv("INDEXER_DB_URL", raising=False)
    home = tmp_path / "data" / "indexer" / "demo"

    result = runner.invoke(app, ["demo", "--open"])

    assert result.exit_code == 0, result.output
    out = result.stdout
    db_url = f"sqlite:///{home / 'index.db'}"
    assert f"photos:  {home / 'photos'}" in out
    assert f"index:   {db_url} (run 1 completed" in out
    for text in demo.DEMO_SEARCHES:
        (line,) = [line for line in out.splitlines() if line.strip().startswith(shlex.quote(text))]
        images, faces = map(int, re.search(r"(\d+) images?, (\d+) faces?", line).groups())
        sheet = home / "sheets" / demo.sheet_name(text)
        assert line.endswith(str(sheet)) and sheet.is_file()
        counted = runner.invoke(app, ["search", text, "--count", "--db", db_url])
        assert counted.stdout.strip() == f"{images} images, {faces} faces"
    assert not (tmp_path / "data" / "indexer" / "index.db").exists(), "the main index is never touched"
    assert result.stderr.count("not opening a browser") == len(demo.DEMO_SEARCHES), "--open opens each sheet"

    (like,) = [line.strip() for line in out.splitlines() if line.strip().startswith("indexer search --like")]
    args = shlex.split(like.split("    (")[0])[1:]
    found = runner.invoke(app, [*args, "--format", "uris"])
    assert found.exit_code == 0, found.output
    assert {Path(uri).name for uri in found.stdout.split()} >= {"obama.jpg", "obama2.jpg", "obama3.jpg"}


def test_indexer_demo_has_help():
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for words in ("--dir DIR", "--open", "public-domain photos", "never your main index"):
        assert words in text
    assert "demo" in runner.invoke(app, ["--help"]).stdout


# ------------------------------------------------------------------ the README


def _bash_lines() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_fresh_machine_command_runs_the_demo():
    command = re.search(r"<!-- main-command -->\n```bash\n(.+)\n```", README).group(1)
    assert command.endswith(".venv/bin/indexer demo")


def test_the_main_job_section_still_starts_with_indexing_pictures():
    section = README.split("\n## The main job\n", 1)[1]
    first = re.search(r"```bash\n(.+)\n", section).group(1)
    assert first.split("#")[0].strip() == "indexer index ~/Pictures"


def test_the_demo_searches_are_readme_examples():
    searches = [shlex.split(line, comments=True) for line in _bash_lines() if line.startswith("indexer search ")]
    try_it = README.split("\n## Try it: indexer demo\n", 1)[1].split("\n## ", 1)[0]
    for text in demo.DEMO_SEARCHES:
        assert any(words[2:3] == [text] for words in searches), text
        assert f"`{text}`" in try_it, f"the Try it section does not name {text!r}"


def test_the_readme_lists_every_sample_with_its_package_hash_and_license():
    rows = [line for line in README.splitlines() if line.startswith("| `") and "public domain" in line]
    for sample in demo.SAMPLE_FILES:
        (row,) = [row for row in rows if row.startswith(f"| `{sample.name}`")]
        assert f"`{sample.package}` {sample.version}" in row
        assert sample.sha256[:16] in row

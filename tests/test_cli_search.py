"""`indexer search` / `indexer stats` end to end: index a bucket through the real pipeline (moto S3
and the Rekognition endpoint), a folder through the offline engine, then ask in plain words."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from indexer import api
from indexer.cli import app
from indexer.config import load_config
from tests.support.faces import face_detail
from tests.support.images import jpeg_bytes

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def indexed(s3, rekognition, db_url):
    """Six photos with known faces, indexed by `indexer index` through the stubbed Rekognition."""
    s3.create_bucket(Bucket="album")
    photos = {
        "beach.jpg": [face_detail(smile=True, beard=True, sunglasses=True, gender="Male", age=(30, 40), emotion="HAPPY")],
        "office.jpg": [face_detail(gender="Female", age=(44, 52), eyeglasses=True), face_detail(gender="Male", age=(20, 26))],
        "party.jpg": [face_detail(smile=True, gender="Female", age=(22, 28), emotion="HAPPY") for _ in range(4)],
        # beard on one face, sunglasses on another: not the same face, so not a match
        "split.jpg": [face_detail(smile=True, beard=True, gender="Male"), face_detail(sunglasses=True, gender="Male")],
        "landscape.jpg": [],
        "kids.jpg": [face_detail(age=(6, 9), smile=True), face_detail(age=(8, 11)), face_detail(age=(40, 48), gender="Female", eyeglasses=True)],
    }
    for i, (name, faces) in enumerate(photos.items()):
        content = jpeg_bytes(500 + i)
        rekognition.register(content, faces)
        s3.put_object(Bucket="album", Key=f"2024/{name}", Body=content)
    result = run("index", "s3://album/2024/", "--db", db_url, "--quiet")
    assert result.exit_code == 0, result.output
    return db_url


def uris(db_url: str, query: str, *extra: str) -> list[str]:
    result = run("search", query, "--db", db_url, "--format", "uris", *extra)
    assert result.exit_code == 0, result.output
    return [line.rsplit("/", 1)[1] for line in result.stdout.splitlines()]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("smiling people with beards and sunglasses", ["beach.jpg"]),
        ("women over 40 wearing eyeglasses", ["kids.jpg", "office.jpg"]),
        ("photos with 3 or more faces", ["kids.jpg", "party.jpg"]),
        ("group photos of happy women", ["party.jpg"]),
        ("children", ["kids.jpg"]),
        ("portraits", ["beach.jpg"]),
        ("no faces", ["landscape.jpg"]),
        ("men without beard", ["office.jpg", "split.jpg"]),
        ("gender:male age:30-40 -smile", ["split.jpg"]),  # its 2nd face: male, 25-35, not smiling
        ("emotion:happy faces>=4", ["party.jpg"]),
    ],
)
def test_plain_words_and_exact_terms_find_exactly_the_right_photos(indexed, query, expected):
    assert uris(indexed, query) == expected


def test_json_lines_give_the_matching_faces_in_rekognitions_shape(indexed):
    lines = run("search", "sunglasses", "--db", indexed, "--format", "json").stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["uri"] for r in rows] == ["s3://album/2024/beach.jpg", "s3://album/2024/split.jpg"]
    (face,) = rows[1]["faces"]  # only the matching face of split.jpg
    assert face["Sunglasses"]["Value"] is True and "face_id" in face and "BoundingBox" in face
    shown = json.loads(run("show", "s3://album/2024/split.jpg", "--db", indexed, "--json").stdout)
    assert face in shown["faces"], "search and show give the same face shape"


def test_csv_count_limit_and_explain(indexed):
    table = list(csv.DictReader(io.StringIO(run("search", "smiling", "--db", indexed, "--format", "csv").stdout)))
    assert len(table) == 7 and {row["uri"].rsplit("/", 1)[1] for row in table} == {"beach.jpg", "party.jpg", "split.jpg", "kids.jpg"}

    counted = run("search", "smiling", "--db", indexed, "--count")
    assert counted.stdout.strip() == "4 images, 7 faces"

    assert uris(indexed, "smiling", "--limit", "2") == ["beach.jpg", "kids.jpg"]

    explained = run("search", "bearded men", "--db", indexed, "--explain", "--count", "--min-confidence", "80")
    assert "80" in explained.stderr and "beard" in explained.stderr.lower()


@pytest.mark.parametrize(
    "query, message",
    [("bald men", "unknown word 'bald'"), ("smiling'; DROP TABLE faces; --", "")],
)
def test_unknown_words_and_injection_attempts_exit_2_and_change_nothing(indexed, query, message):
    result = run("search", query, "--db", indexed)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert uris(indexed, "portraits") == ["beach.jpg"], "the faces table is intact"


def test_search_without_an_index_is_a_clear_error(aws_env, tmp_path):
    result = run("search", "smiling", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.exit_code == 1
    assert "no index at" in result.stderr
    assert not (tmp_path / "none.db").exists(), "searching creates nothing"


def test_local_engine_images_answer_every_attribute_with_no_warning(indexed, models, tmp_path):
    """A bucket indexed by Rekognition plus a folder by the offline engine: both answer `beard`."""
    from PIL import Image
    from skimage import data

    folder = tmp_path / "local"
    folder.mkdir()
    Image.fromarray(data.astronaut()).save(folder / "astronaut.jpg")
    config = load_config(flags={"db_url": indexed, "engine": "local", "models_dir": str(models), "workers": 1}, environ={})
    api.index(str(folder), config=config)

    for query in ("smiling people with beards and sunglasses", "women over 40 wearing eyeglasses", "bearded"):
        result = run("search", query, "--db", indexed, "--format", "uris")
        assert result.exit_code == 0 and result.stderr == "", (query, result.stderr)
    assert "astronaut.jpg" in uris(indexed, "smiling women without beard"), "the local engine's answers are searchable"

    stats = json.loads(run("stats", "--db", indexed, "--json").stdout)
    assert stats["images"] == 7 and stats["faces"] == 13
    assert set(stats["engines"]) == {"local", "rekognition"}
    local = stats["engines"]["local"]
    assert all(local["coverage"].get(key) == local["faces"] for key in ("Beard", "Sunglasses", "Gender", "AgeRange")), local


def test_warning_for_images_of_an_engine_that_cannot_answer(indexed, open_store_at):
    """An engine recorded without Beard (as the offline engine's first model set was): `beard` warns."""
    from indexer.core import Analysis, ImageRef
    from indexer.store.repository import ImageOutcome
    from tests.support.search_data import face

    store = open_store_at(indexed)
    store.record_engine("partial", {"BoundingBox", "Confidence", "Smile"})
    ref = ImageRef(uri="/photos/astronaut.jpg", size=1, fingerprint="1")
    store.write([ImageOutcome(ref=ref, engine="partial", analysis=Analysis([face("Female", Smile=True)]))], None)

    result = run("search", "bearded", "--db", indexed, "--format", "uris")
    assert result.exit_code == 0
    assert result.stderr.startswith("indexer: warning: 1 image indexed by engine 'partial' cannot have Beard")
    assert "--engine rekognition" in result.stderr
    assert "astronaut.jpg" in uris(indexed, "smiling"), "what the engine knows is searchable"


def test_every_search_format_is_stable_and_ordered(indexed):
    first = run("search", "smiling", "--db", indexed, "--format", "table").stdout
    assert first == run("search", "smiling", "--db", indexed, "--format", "table").stdout
    rows = [line.split()[0] for line in first.splitlines() if line.startswith("s3://")]
    assert rows == sorted(rows)


@pytest.fixture
def collection(sqlite_url, open_store_at) -> str:
    """The search tests' small collection (tests/support/search_data.py) in SQLite."""
    from tests.support.search_data import populate

    populate(open_store_at(sqlite_url))
    return sqlite_url


@pytest.mark.parametrize(
    "args",
    [
        ["search", "smiling", "--format", "bogus"],
        ["search", "--format", "xml", "smiling"],
        ["search", "smiling", "--order", "random"],
    ],
)
def test_format_and_order_are_checked_before_anything_runs(tmp_path, args):
    """A bad choice is a usage error naming the choices, not "no index" from opening the database."""
    missing = tmp_path / "none.db"
    result = run(*args, "--db", f"sqlite:///{missing}")
    assert result.exit_code == 2
    assert "no index" not in result.output
    option = "--format" if "--format" in args else "--order"
    choices = ("table", "json", "csv", "uris") if option == "--format" else ("uri", "confidence")
    assert option in result.output and all(f"'{choice}'" in result.output for choice in choices), result.output
    assert not missing.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["search", "-smile", "--db", "DB", "--format", "uris"],
        ["search", "--db", "DB", "--format", "uris", "-smile"],
        ["search", "--limit", "10", "-smile", "--db=DB", "--format=uris"],
        ["search", "--db", "DB", "--format", "uris", "--", "-smile"],
    ],
)
def test_a_query_may_begin_with_a_negation_wherever_the_options_are(collection, args):
    result = run(*[arg.replace("DB", collection) for arg in args])
    assert result.exit_code == 0, result.output
    assert [line.rsplit("/", 1)[1] for line in result.stdout.splitlines()] == uris(collection, "smile=false")


def test_a_negated_query_of_several_terms_and_options_after_it(collection):
    result = run("search", "-smile gender:female age<18", "--db", collection, "--format", "uris", "--limit", "5")
    assert result.exit_code == 0, result.output
    expected = uris(collection, "smile=false women under 18")
    assert result.stdout.splitlines() == [f"s3://photos/t/{name}" for name in expected]
    assert uris(collection, "-beard men") == uris(collection, "beard=false men")


def test_an_unknown_dashed_word_is_a_query_error_and_long_options_stay_checked(collection):
    result = run("search", "-bald", "--db", collection)
    assert result.exit_code == 2 and result.stderr.strip().startswith("indexer: error: unknown word '-bald'")
    misspelt = run("search", "smiling", "--limt", "5", "--db", collection)
    assert misspelt.exit_code == 2 and "No such option: --limt" in misspelt.output
    negative = run("search", "smiling", "--limit", "-1", "--db", collection)
    assert negative.exit_code == 2 and "--limit" in negative.output


def test_show_prints_the_same_face_summary_as_the_search_table(collection):
    shown = run("show", "s3://photos/t/c-group.jpg", "--db", collection)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("s3://photos/t/c-group.jpg  indexed  engine rekognition")
    assert lines[0].endswith("faces 4")
    table = run("search", "smiling", "--db", collection, "--format", "table").stdout
    (row,) = [line for line in table.splitlines() if "c-group.jpg" in line]
    smiling = [line.split(": ", 1)[1] for line in lines[1:] if "smiling" in line]
    assert row.split("  ")[-1] == "; ".join(smiling)

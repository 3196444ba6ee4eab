"""`indexer search --like`: the images of one person, best match first, narrowed by the query's
terms on that person's own face.

* Stored descriptors (SQLite and PostgreSQL): an index written through ``Store.write`` whose
  descriptors are generated at known distances from one face ("me"), so every Similarity is
  :func:`embedding.similarity` of a distance written below and the expected answers are exact.
* Rekognition: photos indexed with ``index --collection`` into the tests' endpoint, where who is
  who is stated by the identities the fixture faces are registered with.
* The offline engine end to end on real photos (skimage's astronaut and others).
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from indexer import api
from indexer.cli import app
from indexer.config import load_config
from indexer.core import Analysis, CollectionFaces, FaceDescriptors, ImageRef
from indexer.engines.local import embedding
from indexer.output import CSV_COLUMNS
from indexer.store.repository import ImageOutcome, Store
from tests.support.faces import face_detail
from tests.support.images import jpeg_bytes

runner = CliRunner()
MODEL = embedding.DESCRIPTOR_MODEL
P = "/photos/"


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


# -- an index with descriptors at known distances ------------------------------------------------

#: Identities of the Rekognition fixtures' faces.
ME, STRANGER = "me", "stranger"

#: uri -> (engine, [(detail, distance from me's reference face, or None for a stranger)]).
#: a's face is the reference itself (distance 0). What each distance's Similarity is:
#: 0.45 -> 99.96, 0.50 -> 99.77, 0.55 -> 98.59, 0.58 -> 95.95, 0.62 -> 84.67, 0.64 -> 72.71.
PHOTOS: dict[str, tuple[str, list[tuple[dict, float | None]]]] = {
    P + "a-me-portrait.jpg": ("local", [(face_detail(smile=True), 0.0)]),
    # me does not smile here; someone else does: `--like me smiling` must not find it
    P + "b-me-group.jpg": ("local", [
        (face_detail(smile=False), 0.45),
        (face_detail(smile=True, box=(0.6, 0.2, 0.1, 0.1)), None),
        (face_detail(smile=True, box=(0.1, 0.6, 0.1, 0.1)), None),
        (face_detail(box=(0.7, 0.6, 0.1, 0.1)), None),
    ]),
    P + "c-me-sunglasses.jpg": ("local", [(face_detail(smile=True, sunglasses=True), 0.58)]),
    # me twice (a mirror): both faces match, each with its own Similarity
    P + "g-me-mirror.jpg": ("local", [(face_detail(smile=True), 0.62), (face_detail(smile=False, box=(0.6, 0.2, 0.2, 0.2)), 0.50)]),
    P + "h-me-group-sunglasses.jpg": ("local", [
        (face_detail(smile=True, sunglasses=True), 0.55),
        (face_detail(box=(0.6, 0.2, 0.1, 0.1)), None),
        (face_detail(box=(0.1, 0.6, 0.1, 0.1)), None),
    ]),
    P + "d-lookalike.jpg": ("local", [(face_detail(smile=True), 0.64)]),
    P + "e-stranger.jpg": ("local", [(face_detail(smile=True), None)]),
    P + "k-no-faces.jpg": ("local", []),
}
#: Indexed by Rekognition without a collection: its faces have no descriptor.
NO_DESCRIPTOR = P + "f-me-by-rekognition.jpg"


def sim(distance: float) -> float:
    return round(embedding.similarity(distance), 2)


def _descriptors(rng: np.random.Generator, me: np.ndarray, distances: list[float | None]) -> list[bytes]:
    """One vector per face: ``me`` moved by exactly ``distance`` in a random direction, or a
    random stranger (distance > 1.5 from me, Similarity 0)."""
    vectors = []
    for distance in distances:
        direction = rng.normal(size=embedding.DESCRIPTOR_SIZE)
        direction /= np.linalg.norm(direction)
        vectors.append(me + (2.0 if distance is None else distance) * direction)
    return embedding.to_bytes(np.asarray(vectors)) if vectors else []


def _write(store: Store, uri: str, engine: str, details: list[dict], descriptors: FaceDescriptors | None, **extra) -> None:
    ref = ImageRef(uri=uri, size=1000, fingerprint="v1")
    analysis = Analysis(face_details=details, width=800, height=600, descriptors=descriptors, **extra)
    (written,) = store.write([ImageOutcome(ref=ref, engine=engine, analysis=analysis)], run_id=None)
    assert written.error is None, written.error


def populate(store: Store) -> dict[str, list[int]]:
    """Write :data:`PHOTOS` (and :data:`NO_DESCRIPTOR`); uri -> its face ids in face order."""
    from indexer.attributes import ALL_ATTRIBUTES

    store.record_engine("local", ALL_ATTRIBUTES)
    store.record_engine("rekognition", ALL_ATTRIBUTES)
    rng = np.random.default_rng(11)
    me = rng.normal(0.0, 0.1, size=embedding.DESCRIPTOR_SIZE)
    for uri, (engine, faces) in PHOTOS.items():
        vectors = _descriptors(rng, me, [distance for _detail, distance in faces])
        _write(store, uri, engine, [detail for detail, _distance in faces], FaceDescriptors(MODEL, vectors))
    _write(store, NO_DESCRIPTOR, "rekognition", [face_detail(smile=True)], None)
    ids = {}
    for uri in [*PHOTOS, NO_DESCRIPTOR]:
        image = store.image(uri)
        assert image is not None
        ids[uri] = [face["face_id"] for face in image["faces"]]
    return ids


@pytest.fixture
def index(db_url, open_store_at) -> tuple[str, dict[str, list[int]]]:
    """(database URL, uri -> face ids) of :data:`PHOTOS`, on SQLite and PostgreSQL."""
    return db_url, populate(open_store_at(db_url))


def me_of(index) -> str:
    _url, ids = index
    return f"face:{ids[P + 'a-me-portrait.jpg'][0]}"


def like(index, *args: str, query: str | None = None) -> list[str]:
    """The names of the images found, in output order."""
    url, _ids = index
    result = run("search", *([query] if query is not None else []), "--like", me_of(index), "--db", url, "--format", "uris", *args)
    assert result.exit_code == 0, result.output
    return [line.rsplit("/", 1)[1][0] for line in result.stdout.splitlines()]


def test_the_persons_images_best_match_first_and_by_uri(index):
    assert like(index) == list("abghc")  # 100 (itself), 99.96, 99.77, 98.59, 95.95
    assert like(index, "--order", "uri") == list("abcgh")
    assert like(index, "--order", "confidence") == list("abghc")
    assert like(index, "--limit", "2") == list("ab")
    assert like(index, "--limit", "2", "--order", "uri") == list("ab")


def test_threshold_decides_who_is_the_person(index):
    assert like(index, "--threshold", "70") == list("abghcd")  # the lookalike at 72.71
    assert like(index, "--threshold", "99") == list("abg")
    assert like(index, "--threshold", "100") == ["a"]  # only the face itself
    assert like(index, "--threshold", "0", "--order", "uri") == list("abcdegh"), "every face with a descriptor"


def test_face_terms_hold_on_the_persons_own_face(index):
    # b: me does not smile, two others do; g: of me's two faces only the 84.67 one smiles
    assert like(index, query="smiling") == list("ahcg")
    assert like(index, query="not smiling") == list("bg")
    assert like(index, query="with sunglasses in group photos") == ["h"]
    assert like(index, query="sunglasses") == list("hc")


def test_a_negated_query_after_like(index):
    url, _ids = index
    result = run("search", "--like", me_of(index), "-smile", "--db", url, "--format", "uris")
    assert result.exit_code == 0, result.output
    assert [line.rsplit("/", 1)[1][0] for line in result.stdout.splitlines()] == list("bg")


class _Chunks:
    """A store's ``descriptors`` over given vectors, a few at a time."""

    def __init__(self, vectors: np.ndarray, chunk: int) -> None:
        self.data = embedding.to_bytes(vectors)
        self.chunk = chunk

    def descriptors(self, model: str):
        for start in range(0, len(self.data), self.chunk):
            yield list(range(start + 1, start + 1 + len(self.data[start : start + self.chunk]))), b"".join(self.data[start : start + self.chunk])


@pytest.mark.parametrize("threshold", [0.0, 50.0, 80.0, 99.0, 99.99, 100.0])
def test_the_scan_keeps_exactly_the_faces_at_or_above_the_threshold(threshold):
    """The float32 pre-filter never drops a face the exact Similarity keeps, even within a hair
    of the threshold, and every kept face carries its exact Similarity."""
    from indexer.likeness import scan

    rng = np.random.default_rng(7)
    query = rng.normal(0.0, 0.1, size=embedding.DESCRIPTOR_SIZE).astype(np.float32)
    edge = embedding.distance_for(min(max(threshold, 0.01), 99.999))
    distances = np.concatenate([rng.uniform(0.0, 1.2, 3000), edge + rng.uniform(-1e-4, 1e-4, 2000)])
    directions = rng.normal(size=(len(distances), embedding.DESCRIPTOR_SIZE))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    vectors = query + distances[:, None] * directions
    found, scanned = scan(_Chunks(vectors, 700), MODEL, embedding.to_bytes(query[None])[0], threshold)
    stored = embedding.from_bytes(b"".join(embedding.to_bytes(vectors)))
    exact = embedding.similarity(embedding.distances(query, stored))
    assert scanned == len(vectors)
    assert found == {i + 1: pytest.approx(s) for i, s in enumerate(exact) if s >= threshold}


def test_image_terms_hold_on_the_image(index):
    assert like(index, query="3 or more faces") == list("bh")
    assert like(index, "--order", "uri", query="portraits") == list("ac")


def test_count(index):
    url, _ids = index
    counted = run("search", "--like", me_of(index), "--db", url, "--count")
    assert counted.exit_code == 0, counted.output
    assert counted.stdout.strip() == "5 images, 6 faces"  # g has two faces of me
    smiling = run("search", "smiling", "--like", me_of(index), "--db", url, "--count", "--threshold", "70")
    assert smiling.stdout.strip() == "5 images, 5 faces"  # a c d g h


def test_json_lines_carry_each_matching_faces_similarity(index):
    url, ids = index
    result = run("search", "--like", me_of(index), "--db", url, "--format", "json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["uri"] for row in rows] == [P + name for name in
                                          ("a-me-portrait.jpg", "b-me-group.jpg", "g-me-mirror.jpg", "h-me-group-sunglasses.jpg", "c-me-sunglasses.jpg")]
    by_uri = {row["uri"]: row["faces"] for row in rows}
    assert [(f["face_id"], f["Similarity"]) for f in by_uri[P + "a-me-portrait.jpg"]] == [(ids[P + "a-me-portrait.jpg"][0], 100.0)]
    (me_in_group,) = by_uri[P + "b-me-group.jpg"]  # only me's face, not the others of the group
    assert (me_in_group["face_id"], me_in_group["Similarity"]) == (ids[P + "b-me-group.jpg"][0], sim(0.45))
    mirror = by_uri[P + "g-me-mirror.jpg"]
    assert [(f["face_id"], f["Similarity"]) for f in mirror] == list(zip(ids[P + "g-me-mirror.jpg"], [sim(0.62), sim(0.50)]))
    assert "BoundingBox" in mirror[0] and "Smile" in mirror[0], "the stored FaceDetail, in Rekognition's shape"
    # the key sits right after face_id, and the rest of the face is the stored FaceDetail as show gives it
    shown = api.show(load_config(flags={"db_url": url}, environ={}), P + "c-me-sunglasses.jpg")
    assert shown is not None
    (face,) = by_uri[P + "c-me-sunglasses.jpg"]
    assert {k: v for k, v in face.items() if k != "Similarity"} == shown["faces"][0]
    assert list(face)[-2:] == ["face_id", "Similarity"]


def test_csv_has_a_similarity_column_only_with_like(index):
    url, ids = index
    result = run("search", "smiling", "--like", me_of(index), "--db", url, "--format", "csv", "--order", "uri")
    assert result.exit_code == 0, result.output
    reader = csv.DictReader(io.StringIO(result.stdout))
    assert reader.fieldnames == [*CSV_COLUMNS, "similarity"]
    rows = list(reader)
    assert [(row["uri"].rsplit("/", 1)[1][0], float(row["similarity"])) for row in rows] == [
        ("a", 100.0), ("c", sim(0.58)), ("g", sim(0.62)), ("h", sim(0.55))
    ]
    plain = run("search", "smiling", "--db", url, "--format", "csv")
    assert plain.stdout.splitlines()[0] == ",".join(CSV_COLUMNS), "a plain search's columns are unchanged"
    nothing = run("search", "children", "--like", me_of(index), "--db", url, "--format", "csv")
    assert nothing.exit_code == 0 and nothing.stdout.splitlines() == [",".join([*CSV_COLUMNS, "similarity"])]


def test_table_shows_the_best_similarity(index):
    url, _ids = index
    result = run("search", "--like", me_of(index), "--db", url, "--format", "table")
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["URI", "FACES", "SIMILARITY", "SUMMARY"]
    cells = [line.split()[:3] for line in lines]
    assert cells[:3] == [
        [P + "a-me-portrait.jpg", "1/1", "100.00"],
        [P + "b-me-group.jpg", "1/4", f"{sim(0.45):.2f}"],
        [P + "g-me-mirror.jpg", "2/2", f"{sim(0.50):.2f}"],
    ]
    assert "SIMILARITY" not in run("search", "smiling", "--db", url, "--format", "table").stdout


def test_the_api_answers_as_the_command(index):
    url, ids = index
    config = load_config(flags={"db_url": url}, environ={})
    result = api.search(config, "", like=me_of(index), threshold=99)
    assert [m.uri.rsplit("/", 1)[1][0] for m in result.matches] == list("abg")
    # of g's two faces of me only the 99.77 one reaches 99
    assert result.matches[2].similarities == pytest.approx({ids[P + "g-me-mirror.jpg"][1]: embedding.similarity(0.50)}, abs=1e-3)
    assert [face["face_id"] for face in result.matches[2].faces] == [ids[P + "g-me-mirror.jpg"][1]]
    assert (result.images, result.faces) == (3, 3)
    counted = api.count(config, "smiling", like=me_of(index))
    assert (counted.images, counted.faces) == (4, 4)


def test_faces_without_a_descriptor_are_named_in_a_warning(index):
    url, ids = index
    result = run("search", "--like", me_of(index), "--db", url, "--format", "uris")
    assert result.exit_code == 0
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("indexer: warning: 1 face has no descriptor") and "indexer index" in warning
    assert "f-me" not in result.stdout


def test_explain_says_how_the_person_was_found(index):
    url, _ids = index
    result = run("search", "smiling", "--like", me_of(index), "--db", url, "--explain", "--count")
    assert "Smile" in result.stderr and f"like: face {me_of(index)[5:]}, Similarity >= 80" in result.stderr
    assert "offline descriptors" in result.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--like", "face:999999"], 1, "--like face:999999: no such face in the index"),
        (["--like", "face:abc"], 2, "a stored face is face:ID"),
        (["--like", "missing.jpg"], 2, "--like: no such photo: missing.jpg"),
        (["--like", "face:1", "--threshold", "101"], 2, "--threshold must be from 0 to 100, not 101"),
        (["--threshold", "90", "smiling"], 2, "--threshold is the Similarity --like needs"),
        (["--collection", "people", "smiling"], 2, "--collection goes with --like"),
        ([], 2, "empty query"),
    ],
)
def test_bad_like_arguments_are_one_line(index, args, code, message):
    url, _ids = index
    result = run("search", *args, "--db", url)
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("indexer: error: ") and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_face_without_descriptor_says_why(index):
    url, ids = index
    result = run("search", "--like", f"face:{ids[NO_DESCRIPTOR][0]}", "--db", url)
    assert result.exit_code == 1
    assert "has no descriptor" in result.stderr and "engine rekognition" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_photo_fails_before_the_database_is_opened(tmp_path):
    missing_db = tmp_path / "none.db"
    result = run("search", "--like", str(tmp_path / "me.jpg"), "--db", f"sqlite:///{missing_db}")
    assert result.exit_code == 2 and "no such photo" in result.stderr
    assert not missing_db.exists()


def test_many_liked_faces_are_looked_up_in_chunks(sqlite_store, sqlite_url, monkeypatch):
    """More faces than one ``IN (...)`` takes: every one is found, ranked over all chunks."""
    from indexer import search as search_module

    monkeypatch.setattr(search_module, "_CHUNK", 3)
    rng = np.random.default_rng(5)
    me = rng.normal(0.0, 0.1, size=embedding.DESCRIPTOR_SIZE)
    distances = [0.0] + [0.45 + 0.01 * i for i in range(19)]  # from the first face: itself, then 99.96 down to 77.6
    for i, distance in enumerate(distances):  # named so that URI order is the reverse of Similarity order
        _write(sqlite_store, f"/p/{19 - i:02d}.jpg", "local", [face_detail()], FaceDescriptors(MODEL, _descriptors(rng, me, [distance])))
        if i == 0:
            me = embedding.from_bytes(sqlite_store.descriptor_of(sqlite_store.image("/p/19.jpg")["faces"][0]["face_id"])[1])[0]
    first = sqlite_store.image("/p/19.jpg")["faces"][0]["face_id"]
    result = run("search", "--like", f"face:{first}", "--db", sqlite_url, "--format", "uris", "--threshold", "90")
    expected = [f"/p/{19 - i:02d}.jpg" for i, d in enumerate(distances) if embedding.similarity(d) >= 90]
    assert result.stdout.splitlines() == expected and len(expected) > 10
    counted = run("search", "--like", f"face:{first}", "--db", sqlite_url, "--count", "--threshold", "90")
    assert counted.stdout.strip() == f"{len(expected)} images, {len(expected)} faces"


def test_plain_search_stays_off_numpy_and_the_engines():
    """--like's modules load only on its path (tests/test_startup.py guards the plain path)."""
    import subprocess
    import sys

    code = "import sys, indexer.cli, indexer.search, indexer.api; print(sorted(m for m in sys.modules if m in ('numpy', 'indexer.likeness')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


# -- Rekognition: a face collection ----------------------------------------------------------------


@pytest.fixture
def collection_index(s3, rekognition, db_url):
    """Photos indexed with `index --collection people` through the tests' endpoint; who is who
    is the identities the faces are registered with. Returns (db URL, me.jpg's bytes)."""
    s3.create_bucket(Bucket="album")
    photos = {
        "a-me.jpg": [(face_detail(smile=True), ME)],
        "b-me-not-smiling-friend-smiling.jpg": [
            (face_detail(smile=False, box=(0.1, 0.1, 0.3, 0.3)), ME),
            (face_detail(smile=True, box=(0.5, 0.1, 0.2, 0.2)), "friend"),
            (face_detail(smile=True, box=(0.5, 0.5, 0.2, 0.2)), "other"),
        ],
        "c-friend.jpg": [(face_detail(smile=True), "friend")],
        "d-me-sunglasses.jpg": [(face_detail(smile=True, sunglasses=True), ME)],
    }
    for i, (name, faces) in enumerate(photos.items()):
        content = jpeg_bytes(900 + i)
        rekognition.register(content, [detail for detail, _who in faces], identities=[who for _detail, who in faces])
        s3.put_object(Bucket="album", Key=name, Body=content)
    result = run("index", "s3://album/", "--db", db_url, "--collection", "people", "--quiet")
    assert result.exit_code == 0, result.output
    me = jpeg_bytes(990)
    # a selfie: me the largest face, a stranger behind
    rekognition.register(me, [face_detail(box=(0.1, 0.1, 0.5, 0.5)), face_detail(box=(0.7, 0.7, 0.1, 0.1))], identities=[ME, STRANGER])
    return db_url, me


def test_rekognition_finds_the_person_in_the_collection(collection_index, rekognition, tmp_path):
    url, me = collection_index
    photo = tmp_path / "me.jpg"
    photo.write_bytes(me)
    before = rekognition.count(operation="SearchFacesByImage")
    result = run("search", "--like", str(photo), "--collection", "people", "--db", url, "--format", "json")
    assert result.exit_code == 0, result.output
    assert rekognition.count(operation="SearchFacesByImage") == before + 1
    assert rekognition.count(operation="DetectFaces") == 0 and rekognition.count(operation="IndexFaces") == 4
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(row["uri"] for row in rows) == ["s3://album/a-me.jpg", "s3://album/b-me-not-smiling-friend-smiling.jpg", "s3://album/d-me-sunglasses.jpg"]
    similarities = [row["faces"][0]["Similarity"] for row in rows]
    assert similarities == sorted(similarities, reverse=True) and all(99.0 <= s <= 100.0 for s in similarities)
    assert all(len(row["faces"]) == 1 for row in rows), "only me's face of the group"

    smiling = run("search", "smiling", "--like", str(photo), "--collection", "people", "--db", url, "--format", "uris", "--order", "uri")
    assert smiling.stdout.splitlines() == ["s3://album/a-me.jpg", "s3://album/d-me-sunglasses.jpg"]
    counted = run("search", "--like", str(photo), "--collection", "people", "--db", url, "--count")
    assert counted.stdout.strip() == "3 images, 3 faces"


def test_rekognition_face_id_searches_faces_and_includes_itself(collection_index, rekognition):
    url, _me = collection_index
    shown = json.loads(run("show", "s3://album/c-friend.jpg", "--db", url, "--json").stdout)
    friend = shown["faces"][0]["face_id"]
    result = run("search", "--like", f"face:{friend}", "--collection", "people", "--db", url, "--format", "csv", "--order", "uri")
    assert result.exit_code == 0, result.output
    assert rekognition.count(operation="SearchFaces") == 1
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(row["uri"], row["face_id"]) for row in rows][1] == ("s3://album/c-friend.jpg", str(friend))
    assert float(rows[1]["similarity"]) == 100.0
    assert rows[0]["uri"] == "s3://album/b-me-not-smiling-friend-smiling.jpg" and 99.0 <= float(rows[0]["similarity"]) < 100.0
    # the same face without --collection: it has no offline descriptor, and the error says where it is
    offline = run("search", "--like", f"face:{friend}", "--db", url)
    assert offline.exit_code == 1 and "add --collection people" in offline.stderr


def test_rekognition_photo_without_a_face_is_one_line(collection_index, rekognition, tmp_path):
    url, _me = collection_index
    empty = jpeg_bytes(991)
    rekognition.register(empty, [])
    photo = tmp_path / "wall.jpg"
    photo.write_bytes(empty)
    result = run("search", "--like", str(photo), "--collection", "people", "--db", url)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"indexer: error: --like {photo}: no face in the photo"


def test_faces_outside_the_collection_are_named_in_a_warning(collection_index, s3, rekognition, tmp_path):
    url, me = collection_index
    extra = jpeg_bytes(992)
    rekognition.register(extra, [face_detail()], identities=[ME])
    s3.create_bucket(Bucket="other")
    s3.put_object(Bucket="other", Key="x.jpg", Body=extra)
    assert run("index", "s3://other/", "--db", url, "--quiet").exit_code == 0  # no collection
    photo = tmp_path / "me.jpg"
    photo.write_bytes(me)
    result = run("search", "--like", str(photo), "--collection", "people", "--db", url, "--format", "uris")
    assert result.exit_code == 0
    assert "s3://other/x.jpg" not in result.stdout
    assert "1 face is not in the face collection 'people'" in result.stderr


# -- the offline engine, end to end, on real photos ----------------------------------------------


def test_offline_engine_finds_the_astronaut_by_a_photo_of_her(models, tmp_path, monkeypatch):
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    folder = tmp_path / "Pictures"
    folder.mkdir()
    astronaut = Image.fromarray(skimage_data.astronaut())
    astronaut.save(folder / "astronaut.jpg", quality=92)
    astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((300, 300)).save(folder / "astronaut-small-mirrored.jpg", quality=92)
    Image.fromarray(skimage_data.camera()).convert("RGB").save(folder / "cameraman.jpg", quality=92)
    Image.fromarray(skimage_data.coffee()).save(folder / "coffee.jpg", quality=92)
    db = f"sqlite:///{tmp_path / 'faces.db'}"
    monkeypatch.setenv("INDEXER_MODELS_DIR", str(models))
    monkeypatch.setenv("INDEXER_WORKERS", "1")
    assert run("index", str(folder), "--db", db, "--quiet").exit_code == 0

    me = tmp_path / "me.jpg"  # a new photo of her: cropped around the face
    astronaut.crop((100, 0, 400, 300)).save(me, quality=90)
    result = run("search", "--like", str(me), "--db", db, "--format", "json")
    assert result.exit_code == 0, result.output
    assert result.stderr == "", "every face of the index has a descriptor"
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {row["uri"].rsplit("/", 1)[1] for row in rows} == {"astronaut.jpg", "astronaut-small-mirrored.jpg"}
    assert all(face["Similarity"] >= 80 for row in rows for face in row["faces"])

    no_face = run("search", "--like", str(folder / "coffee.jpg"), "--db", db)
    assert no_face.exit_code == 1
    assert no_face.stderr.strip() == f"indexer: error: --like {folder / 'coffee.jpg'}: no face in the photo"

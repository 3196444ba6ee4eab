"""Face bitsets: counts from them equal SQL's counts, and stale bitsets are never used.

A random collection (attributes on both sides of the threshold, unknown values, the offline
engine's partial faces, images with no face and failed ones) is counted both ways for a broad
generated set of queries; SQL is the reference, bitsets must agree on every one.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Callable

import pytest

from indexer import bitsets, search
from indexer.core import Analysis, ImageRef
from indexer.errors import ImageError
from indexer.query import parse
from indexer.store.repository import ImageOutcome, Store
from tests.support.search_data import BOOLEAN_KEYS, EMOTIONS, face, local_face

#: Confidences around the default threshold (50), where a term flips.
CONFIDENCES = [10.0, 49.99, 50.0, 50.01, 97.0]
WORDS = [
    "smiling", "not smiling", "glasses", "no sunglasses", "beard", "no mustache", "eyes closed", "mouth open",
    "occluded", "not occluded", "men", "women", "not men", "happy", "not happy", "calm", "not sad", "afraid",
    "children", "teenagers", "not seniors", "over 40", "under 30", "age>40.5", "age<=30.25", "aged 20-30",
    "in their 30s", "not in their 30s", "between 30 and 50", "40 years old", "age:18-25",
]
IMAGE_WORDS = ["portraits", "group photos", "2 faces", "not portraits", "1-2 faces", "at least 5 faces", "faces>3", "no faces"]


def _few_values(rng: random.Random) -> float:
    """A confidence from :data:`CONFIDENCES` (many ties, either side of the threshold)."""
    return rng.choice(CONFIDENCES)


def _random_face(rng: random.Random, confidence: Callable[[random.Random], float] = _few_values) -> dict:
    attributes = {key: (rng.random() < 0.5, confidence(rng)) for key in BOOLEAN_KEYS if rng.random() < 0.9}
    emotion = (rng.choice(EMOTIONS), confidence(rng))
    if rng.random() < 0.15:
        return local_face(emotion=emotion, **{k: v for k, v in attributes.items() if k in ("Smile", "EyesOpen", "MouthOpen")})
    low = rng.randint(0, 80)
    age = None if rng.random() < 0.1 else (low, low + rng.randint(0, 13))
    gender = rng.choice(["Male", "Female", None])
    detail = face(gender, age, emotion, **attributes)
    if "Gender" in detail:
        detail["Gender"]["Confidence"] = confidence(rng)
    return detail


def _write_random_images(
    store: Store, rng: random.Random, n: int, prefix: str, confidence: Callable[[random.Random], float] = _few_values
) -> None:
    outcomes = []
    for i in range(n):
        uri = f"s3://photos/{prefix}{i:04d}.jpg"
        ref = ImageRef(uri=uri, size=1000, fingerprint=hashlib.md5(uri.encode()).hexdigest())
        if rng.random() < 0.05:
            outcomes.append(ImageOutcome(ref=ref, engine="rekognition", error=ImageError("InvalidImageFormatException", "bad")))
            continue
        faces = [_random_face(rng, confidence) for _ in range(rng.choice([0, 1, 1, 1, 2, 2, 3, 4, 6, 9]))]
        outcomes.append(ImageOutcome(ref=ref, engine="rekognition", analysis=Analysis(faces, 800, 600)))
    store.write(outcomes, store.begin_run("s3://photos/", "rekognition"))


def _queries(rng: random.Random, n: int) -> list[str]:
    queries = WORDS + IMAGE_WORDS
    while len(queries) < n:
        terms = rng.sample(WORDS, rng.randint(1, 3))
        if rng.random() < 0.4:
            terms.append(rng.choice(IMAGE_WORDS))
        queries.append(" ".join(terms))
    return queries


def _sql_count(store: Store, query, monkeypatch) -> tuple[int, int]:
    with monkeypatch.context() as patched:
        patched.setattr(bitsets, "count", lambda conn, query: None)
        return search.count(store, query)


def _bitset_count(store: Store, query) -> tuple[int, int] | None:
    with store.engine.connect() as conn:
        return bitsets.count(conn, query)


@pytest.fixture
def random_store(store: Store) -> Store:
    _write_random_images(store, random.Random(7), 400, "a/")
    assert bitsets.refresh(store)
    return store


def test_bitset_counts_equal_sql_counts(random_store, monkeypatch):
    rng = random.Random(11)
    answered = 0
    for text in _queries(rng, 250):
        query = parse(text)
        if not query.face_terms:
            continue  # image terms alone are counted from the images table
        expected = _sql_count(random_store, query, monkeypatch)
        assert _bitset_count(random_store, query) == expected, text
        assert search.count(random_store, query) == expected, text
        answered += 1
    assert answered > 200


def test_stale_bitsets_are_not_used_until_refreshed(random_store, monkeypatch):
    query = parse("smiling")
    before = _bitset_count(random_store, query)
    assert before is not None
    _write_random_images(random_store, random.Random(8), 50, "b/")
    assert _bitset_count(random_store, query) is None, "the faces changed: the bitsets must not answer"
    expected = _sql_count(random_store, query, monkeypatch)
    assert search.count(random_store, query) == expected != before
    assert bitsets.refresh(random_store)
    assert not bitsets.refresh(random_store), "already up to date: nothing to rebuild"
    assert _bitset_count(random_store, query) == expected


def test_prune_makes_bitsets_stale(random_store):
    run_id = random_store.begin_run("s3://photos/", "rekognition")
    assert random_store.prune("s3://photos/a/00", run_id) > 0
    assert _bitset_count(random_store, parse("smiling")) is None


def test_another_threshold_is_counted_by_sql(random_store, monkeypatch):
    query = parse("smiling men", min_confidence=80)
    assert _bitset_count(random_store, query) is None
    assert search.count(random_store, query) == _sql_count(random_store, query, monkeypatch)


def test_ages_that_are_not_half_years_leave_age_terms_to_sql(store, monkeypatch):
    odd = face("Female", (30, 38), ("CALM", 90.0))
    odd["AgeRange"] = {"Low": 30, "High": 38.3}
    ref = ImageRef(uri="s3://photos/odd.jpg", size=1, fingerprint="x")
    store.write([ImageOutcome(ref=ref, engine="rekognition", analysis=Analysis([odd, face()]))], None)
    assert bitsets.refresh(store)
    assert _bitset_count(store, parse("smiling")) == _sql_count(store, parse("smiling"), monkeypatch)
    assert _bitset_count(store, parse("over 30")) is None
    assert search.count(store, parse("over 30")) == (1, 2)


def test_an_empty_index_counts_zero(store):
    assert bitsets.refresh(store)
    assert _bitset_count(store, parse("smiling 2 faces")) == (0, 0)


def test_an_index_run_leaves_the_bitsets_up_to_date(tmp_path, rekognition, sqlite_url):
    from indexer import api
    from indexer.config import load_config
    from tests.support.faces import face_detail
    from tests.support.images import jpeg_bytes

    folder = tmp_path / "p"
    folder.mkdir()
    for i in range(3):
        data = jpeg_bytes(i, size=(120, 100))
        (folder / f"{i}.jpg").write_bytes(data)
        rekognition.register(data, [face_detail()] * i)
    config = load_config(flags={"db_url": sqlite_url, "engine": "rekognition", "concurrency": 2}, environ={})
    api.index(str(folder), config=config)
    with Store.open(sqlite_url) as store, store.engine.connect() as conn:
        bits = bitsets.open_bitsets(conn, parse("2 faces"))
        assert bits is not None, "the run refreshed them"
        assert bits.count(parse("2 faces")) == (1, 2)


@pytest.mark.parametrize("order", ["uri", "confidence"])
def test_pages_from_the_bitsets_equal_pages_from_sql(random_store, monkeypatch, order):
    """A page the URI walk cannot fill (forced here: a walk of 10 images) comes from the bitsets'
    list of matching images; ranked by confidence, from their list of the images that may rank
    best (all matches when few)."""
    monkeypatch.setattr(search, "URI_SCAN_BUDGET", 10)
    monkeypatch.setattr(search, "URI_SCAN_MAX", 20)
    rng = random.Random(12)
    listing = "image_ids" if order == "uri" else "best_image_ids"
    used, counted = _answers_counted(getattr(bitsets, listing))
    for text in _queries(rng, 80):
        query = parse(text)
        monkeypatch.setattr(bitsets, listing, counted)
        pages = [search.search(random_store, query, limit=limit, order=order) for limit in (1, 7, 1000)]
        monkeypatch.setattr(bitsets, listing, lambda *args: None)
        expected = [search.search(random_store, query, limit=limit, order=order) for limit in (1, 7, 1000)]
        for page, want in zip(pages, expected):
            assert [(m.uri, [f.face_id for f in m.stored_faces], m.score) for m in page] == [
                (m.uri, [f.face_id for f in m.stored_faces], m.score) for m in want
            ], text
    assert used[0] > 20, "the bitsets made pages"


def _answers_counted(function: Callable[..., Any]) -> tuple[list[int], Callable[..., Any]]:
    """``function``, and a one-item list counting the calls it answered (did not return None)."""
    answered = [0]

    def counted(*args: Any) -> Any:
        found = function(*args)
        answered[0] += found is not None
        return found

    return answered, counted


def _spread(rng: random.Random) -> float:
    """A confidence anywhere in 50-100 (hardly two alike)."""
    return round(rng.uniform(50, 100), 3)


@pytest.fixture(params=["few values", "continuous"])
def ranked_store(request, store: Store) -> Store:
    """A random collection whose confidences are a few repeated values (ties, levels that
    collapse) or spread over 50-100 (every level distinct), bitsets refreshed."""
    confidence = _spread if request.param == "continuous" else _few_values
    _write_random_images(store, random.Random(8), 600, "r/", confidence)
    assert bitsets.refresh(store)
    return store


def test_confidence_pages_narrowed_by_levels_equal_pages_from_sql(ranked_store, monkeypatch):
    """Broad queries ranked by confidence: the images the levels say may be best, ranked by SQL,
    give exactly the page SQL gives ranking every match (ties and image terms included)."""
    rng = random.Random(13)
    narrowed, counted = _answers_counted(bitsets.best_image_ids)
    for text in _queries(rng, 120):
        query = parse(text)
        monkeypatch.setattr(bitsets, "best_image_ids", counted)
        pages = [search.search(ranked_store, query, limit=limit, order="confidence") for limit in (1, 5, 40)]
        monkeypatch.setattr(bitsets, "best_image_ids", lambda *args: None)
        expected = [search.search(ranked_store, query, limit=limit, order="confidence") for limit in (1, 5, 40)]
        for page, want in zip(pages, expected):
            assert [(m.uri, m.score) for m in page] == [(m.uri, m.score) for m in want], text
    assert narrowed[0] > 150, "the levels narrowed most pages"


@pytest.mark.parametrize("ranked_store", ["continuous"], indirect=True)
def test_levels_narrow_a_broad_ranking_to_a_few_images(ranked_store):
    """The point of the levels: the candidates for a page of 5 are far fewer than the matches
    (with few distinct confidences, ties make every face of the top value a candidate)."""
    query = parse("smiling")  # (not "not smiling": faces without a Smile default to False at 99, all tied)
    with ranked_store.engine.connect() as conn:
        candidates = bitsets.best_image_ids(conn, query, 5, 10_000)
        matching = bitsets.image_ids(conn, query, 10_000)
    assert candidates is not None and matching is not None
    assert 5 <= len(candidates) < len(matching) / 3


def test_bitsets_of_an_older_format_are_rebuilt_though_the_faces_did_not_change(random_store):
    """An upgrade that adds to the bitsets (format 2: confidence levels) reaches an unchanged index."""
    import json
    import zlib

    from sqlalchemy import update

    from indexer.store.models import bitsets_table

    assert not bitsets.refresh(random_store)  # up to date
    with random_store.engine.begin() as conn:
        layout = json.loads(zlib.decompress(conn.execute(
            bitsets_table.select().where(bitsets_table.c.name == bitsets.LAYOUT)).one().data))
        del layout["format"], layout["rank_thresholds"]
        conn.execute(update(bitsets_table).where(bitsets_table.c.name == bitsets.LAYOUT).values(
            data=zlib.compress(json.dumps(layout).encode())))
    query = parse("smiling")
    with random_store.engine.connect() as conn:
        assert bitsets.best_image_ids(conn, query, 5, 10_000) is None  # no levels: SQL ranks
    assert bitsets.refresh(random_store)
    with random_store.engine.connect() as conn:
        assert bitsets.best_image_ids(conn, query, 5, 10_000) is not None

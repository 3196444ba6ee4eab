"""End to end: a collection written through Store.write, searched on SQLite and PostgreSQL.

The expected URI sets are written by hand from tests/support/search_data.py.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json

import pytest

from indexer import search as search_module
from indexer.query import parse
from indexer.output import CSV_COLUMNS, format_count, format_matches, format_stats
from indexer.search import capability_warnings, count, search, stats
from indexer.store.repository import Store
from tests.support.pg import pg_schema_url
from tests.support.search_data import COLLECTION, P, populate, uris


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path_factory):
    """The collection, written once per module on each database; closed whatever the tests did."""
    with contextlib.ExitStack() as closing:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('search') / 'index.db'}"
        else:
            url = closing.enter_context(pg_schema_url())
        yield populate(closing.enter_context(Store.open(url)))


def found(store: Store, text: str, **kwargs) -> set[str]:
    min_confidence = kwargs.pop("min_confidence", 50.0)
    return {match.uri for match in search(store, parse(text, min_confidence), **kwargs)}


EXPECTED = [
    ("smiling", "acehjl"),
    ("smile", "acehjl"),
    ("not smiling", "bchk"),
    ("-smile", "bchk"),
    ("beard", "bchl"),
    ("bearded men", "bchl"),
    ("no beard", "achjk"),  # d: beard=false at 45% is below the threshold; e: unknown (local engine)
    ("beard=false", "achjk"),
    ("clean-shaven men", "ch"),
    ("smiling bearded men", "l"),  # same face: c and h have a smiler and a bearded man, not one face with both
    ("smiling men with beard over 40", "l"),
    ("women with glasses", "a"),
    ("glasses", "ac"),
    ("spectacles", "ac"),  # clear glasses: eyewear that is not sunglasses
    ("sunglasses", "ck"),
    ("shades", "ck"),
    ("eyes closed", "c"),
    ("mouth open", "c"),
    ("occluded", "k"),
    ("men", "bcdhl"),
    ("women", "acjk"),
    ("men over 40", "bchl"),
    ("older than 40", "bchkl"),
    ("under 30", "chj"),
    ("in their 30s", "ad"),
    ("aged 20-30", "ch"),
    ("between 20 and 30", "ch"),
    ("age:30-40", "ad"),
    ("children", "c"),
    ("kids in group photos", "c"),
    ("teenagers", "cj"),
    ("adults", "abcdhkl"),
    ("seniors", "ck"),
    ("elderly women", "k"),
    ("happy", "acl"),  # d: top emotion HAPPY at 45% is below the threshold
    ("emotion:happy", "acl"),
    ("calm", "bek"),
    ("afraid", "h"),
    ("angry men", "h"),
    ("scared women", ""),
    ("smiling women in group photos", "c"),
    ("group photos", "c"),
    ("3 or more faces", "c"),
    ("at least 2 faces", "ch"),
    ("2 faces", "h"),
    ("faces>=2", "ch"),
    ("portraits", "abdejkl"),
    ("portraits of smiling people", "aejl"),
    ("no faces", "f"),  # not g: a failed analysis is not "no faces"
    ("faces=0", "f"),
    ("smile gender:female age<20", "cj"),
    ("-smile beard=true", "bch"),
]


@pytest.mark.parametrize("text, letters", EXPECTED)
def test_exact_uri_sets(store, text, letters):
    assert found(store, text) == (uris(*letters) if letters else set())


def test_threshold_changes_the_answer(store):
    assert found(store, "smiling", min_confidence=95) == uris("a", "c", "h", "j", "l")
    assert found(store, "smiling", min_confidence=30) == uris("a", "c", "d", "e", "h", "j", "l")
    assert found(store, "happy", min_confidence=40) == uris("a", "c", "d", "l")


def test_only_matching_faces_are_returned_in_rekognition_shape(store):
    (match,) = search(store, parse("smiling women in group photos"))
    assert match.uri == P + "c-group.jpg"
    stored = store.image(match.uri)["faces"]
    assert match.faces == [stored[0], stored[2]]
    assert all("face_id" in face and face["Smile"]["Value"] is True for face in match.faces)
    assert set(match.faces[0]) - {"face_id"} == set(COLLECTION[match.uri][1][0])


def test_all_faces_without_face_terms(store):
    (match,) = search(store, parse("group photos"))
    assert match.faces == store.image(match.uri)["faces"]
    assert len(match.faces) == match.face_count == 4


def test_order_limit_and_the_two_plans(store, monkeypatch):
    every = sorted(uris(*"acehjl"))
    assert [m.uri for m in search(store, parse("smiling"))] == every
    assert [m.uri for m in search(store, parse("smiling"), limit=2)] == every[:2]
    assert search(store, parse("smiling"), limit=0) == []
    # a scan budget smaller than the collection: the page is finished from the faces side
    monkeypatch.setattr(search_module, "URI_SCAN_BUDGET", 2)
    for text, _letters in EXPECTED:
        full = sorted(found(store, text))
        for limit in (1, 3, 100):
            assert [m.uri for m in search(store, parse(text), limit=limit)] == full[:limit], (text, limit)


def test_order_by_confidence(store):
    matches = search(store, parse("smiling"), order="confidence")
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True)
    # c's best smiler is 99%, a's 98%, e's 90%: ties are broken by URI
    assert [m.uri for m in matches] == [P + n for n in (
        "c-group.jpg", "h-two-men.jpg", "j-teen-smiling.jpg", "l-smiling-bearded-man.jpg",
        "a-portrait-smiling-woman.jpg", "e-local-engine.jpg")]
    assert [m.uri for m in search(store, parse("smiling"), order="confidence", limit=2)] == [
        P + "c-group.jpg", P + "h-two-men.jpg"]
    assert {m.uri for m in search(store, parse("portraits"), order="confidence")} == uris(*"abdejkl")


def test_confidence_pages_match_the_full_ranking(store):
    """A page by confidence is first looked for among the 2 * limit best images: ties at its
    edge (c, h, j and l all score 99) or image terms must send it to the full ranking."""
    for text, _letters in EXPECTED:
        query = parse(text)
        full = [(m.uri, m.score) for m in search(store, query, order="confidence")]
        for limit in (1, 2, 3, 5):
            page = [(m.uri, m.score) for m in search(store, query, order="confidence", limit=limit)]
            assert page == full[:limit], (text, limit)


def test_count(store):
    assert count(store, parse("smiling")) == (6, 7)
    assert count(store, parse("smiling women in group photos")) == (1, 2)
    assert count(store, parse("group photos")) == (1, 4)
    assert count(store, parse("no faces")) == (1, 0)
    assert count(store, parse("portraits")) == (7, 7)
    assert count(store, parse("scared women")) == (0, 0)
    assert count(store, parse("smiling, no faces")) == (0, 0) and found(store, "smiling, no faces") == set()
    assert count(store, parse("smiling, not no faces")) == (6, 7)


def test_count_plans_agree(store, monkeypatch):
    """Counts with image terms walk few images, or else the matching faces: the same numbers."""
    few = {text: count(store, parse(text)) for text, _letters in EXPECTED}
    monkeypatch.setattr(search_module, "FEW_IMAGES", 0)
    assert {text: count(store, parse(text)) for text, _letters in EXPECTED} == few
    assert few["smiling women in group photos"] == (1, 2) and few["portraits of smiling people"] == (4, 4)


def test_capability_warnings(store):
    (warning,) = capability_warnings(store, parse("bearded men"))
    assert "1 image indexed by engine 'local'" in warning
    assert "Beard" in warning and "Gender" in warning
    assert "--engine rekognition" in warning
    assert capability_warnings(store, parse("smiling")) == []  # the local engine predicts smiles
    assert capability_warnings(store, parse("group photos")) == []


def test_injection_leaves_tables_alone(store):
    from indexer.errors import QueryError

    with pytest.raises(QueryError):
        parse("smiling'; DROP TABLE faces; --")
    assert found(store, "smiling") == uris(*"acehjl")


def test_formats(store):
    matches = search(store, parse("smiling"))
    out = io.StringIO()
    format_matches(matches, "uris", out)
    assert out.getvalue().splitlines() == sorted(uris(*"acehjl"))

    out = io.StringIO()
    format_matches(matches, "json", out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["uri"] for line in lines] == [m.uri for m in matches]
    assert all(set(line) == {"uri", "faces"} for line in lines)
    assert lines[0]["faces"] == store.image(lines[0]["uri"])["faces"]  # the `show --json` shape

    out = io.StringIO()
    format_matches(matches, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 7 and list(rows[0]) == CSV_COLUMNS
    group = [row for row in rows if row["uri"].endswith("c-group.jpg")]
    assert [row["gender"] for row in group] == ["Female", "Female"]
    assert group[0]["smile"] == "true" and group[0]["emotion"] == "HAPPY"
    local = [row for row in rows if row["uri"].endswith("e-local-engine.jpg")][0]
    assert local["beard"] == "" and local["gender"] == ""

    out = io.StringIO()
    format_matches(matches, "table", out)
    table = out.getvalue().splitlines()
    assert table[0].split() == ["URI", "FACES", "SUMMARY"]
    assert any(line.startswith(P + "c-group.jpg") and " 2/4 " in line and "smiling" in line for line in table)

    out = io.StringIO()
    format_count(count(store, parse("smiling")), out)
    assert out.getvalue() == "6 images, 7 faces\n"


def test_stats(store):
    data = stats(store)
    json.dumps(data)
    assert (data["images"], data["indexed"], data["failed"], data["faces"]) == (11, 10, 1, 13)
    rekognition, local = data["engines"]["rekognition"], data["engines"]["local"]
    assert rekognition["faces"] == 12 and local["faces"] == 1
    assert rekognition["attributes"]["Smile"] == {"true": 6, "false": 5}  # d's 40% smile holds neither way
    assert local["attributes"]["Smile"] == {"true": 1, "false": 0}
    assert rekognition["attributes"]["Beard"]["true"] == 4
    assert rekognition["coverage"]["Beard"] == 12 and local["coverage"]["Beard"] == 0
    assert local["coverage"]["Gender"] == 0 and local["coverage"]["Emotions"] == 1
    assert rekognition["gender"] == {"Male": 7, "Female": 5}
    assert rekognition["emotions"]["HAPPY"] == 3
    out = io.StringIO()
    format_stats(data, out)
    assert "engine local" in out.getvalue() and "coverage" in out.getvalue()


def test_bad_order_and_format(store):
    from indexer.errors import QueryError

    with pytest.raises(QueryError):
        search(store, parse("smiling"), order="random")
    with pytest.raises(QueryError):
        format_matches([], "xml", io.StringIO())


def test_warning_for_an_engine_whose_attributes_are_not_recorded(sqlite_store):
    from indexer.core import Analysis, ImageRef
    from indexer.store.repository import ImageOutcome
    from tests.support.search_data import face

    sqlite_store.write(
        [ImageOutcome(ref=ImageRef(uri=f"s3://b/{i}.jpg", size=1, fingerprint=str(i)), engine="mystery",
                      analysis=Analysis([face("Male", Beard=True)])) for i in range(3)],
        None,
    )
    (warning,) = capability_warnings(sqlite_store, parse("beard"))
    assert "3 images indexed by engine 'mystery', whose attributes are not recorded" in warning
    assert found(sqlite_store, "beard") == {f"s3://b/{i}.jpg" for i in range(3)}  # answered all the same


def test_search_on_an_empty_index(sqlite_store):
    assert search(sqlite_store, parse("smiling"), limit=10) == []
    assert count(sqlite_store, parse("smiling")) == (0, 0)
    assert capability_warnings(sqlite_store, parse("beard")) == []
    assert stats(sqlite_store)["faces"] == 0


def test_uris_only_skips_the_face_details(store):
    matches = search(store, parse("smiling"), with_faces=False)
    assert [m.uri for m in matches] == sorted(uris(*"acehjl"))
    assert all(m.faces == [] for m in matches)


def test_sqlite_reads_the_covering_indexes(store):
    """The plans the bench depends on: SQLite is told which covering index to read."""
    if store.dialect != "sqlite":
        pytest.skip("INDEXED BY is SQLite's")
    from sqlalchemy import event

    statements: list[str] = []

    def remember(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", remember)
    try:
        count(store, parse("smiling"))
        count(store, parse("women with glasses"))
        search(store, parse("women with glasses"), limit=1)
    finally:
        event.remove(store.engine, "before_cursor_execute", remember)
    counted = [s for s in statements if "count(" in s]  # no bitsets here: SQL counts
    assert "INDEXED BY ix_faces_smile" in counted[0]
    assert "INDEXED BY ix_faces_search" in counted[1]
    assert any("INDEXED BY ix_faces_search" in s for s in statements[statements.index(counted[1]) + 1 :])
    assert not any("INDEXED BY" in s and "?" not in s for s in statements)  # values stay bound


@pytest.mark.parametrize(
    "detail",
    [
        {"Confidence": 99.87654321, "Smile": {"Value": True, "Confidence": 1e-05}, "AgeRange": {"Low": 3, "High": 9}},
        {"Emotions": [{"Type": "HAPPY", "Confidence": 97.5}], "Landmarks": []},
        {"Note": "caf\u00e9 \"quoted\" \\ back"},  # escapes and non-ASCII: the long way, same text
        {},
    ],
)
def test_a_stored_face_is_written_as_the_json_of_its_parsed_detail(detail):
    """JSON Lines output splices the stored text instead of parsing it: the bytes must be those
    of parsing and encoding it (what every earlier version wrote)."""
    from indexer.store.facedetail import StoredFace, face_columns, stored_detail

    raw = face_columns(detail)["raw"]
    face = StoredFace(1234, raw)
    assert face.json() == json.dumps(stored_detail(raw, 1234), separators=(",", ":"), ensure_ascii=False)
    assert face.detail() == {**detail, "face_id": 1234}

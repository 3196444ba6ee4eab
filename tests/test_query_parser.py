"""The query language: every word of the issue, negations, ranges, exact terms, errors."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from indexer.errors import EXIT_USAGE, QueryError
from indexer.query import (
    AgeTerm,
    BoolTerm,
    EmotionTerm,
    FaceCountTerm,
    GenderTerm,
    face_condition,
    image_conditions,
    parse,
)


def terms(text: str) -> set:
    query = parse(text)
    return set(query.face_terms) | set(query.image_terms)


def B(key: str, value: bool = True) -> BoolTerm:
    return BoolTerm(key, value)


def age(lo=None, hi=None, lo_inclusive=True, hi_inclusive=False, negated=False) -> AgeTerm:
    return AgeTerm(lo, lo_inclusive, hi, hi_inclusive, negated)


@pytest.mark.parametrize(
    "text, expected",
    [
        # boolean attributes and their everyday words
        ("smiling", {B("Smile")}),
        ("smile", {B("Smile")}),
        ("beard", {B("Beard")}),
        ("bearded", {B("Beard")}),
        ("mustache", {B("Mustache")}),
        ("moustache", {B("Mustache")}),
        ("sunglasses", {B("Sunglasses")}),
        ("shades", {B("Sunglasses")}),
        # any eyewear (Rekognition's Eyeglasses holds for sunglasses too); "eyeglasses" the clear kind
        ("glasses", {B("Eyeglasses")}),
        ("eyewear", {B("Eyeglasses")}),
        ("eyeglasses", {B("Eyeglasses"), B("Sunglasses", False)}),
        ("spectacles", {B("Eyeglasses"), B("Sunglasses", False)}),
        ("without spectacles", {B("Eyeglasses", False)}),
        ("eyeglasses=true", {B("Eyeglasses")}),
        ("eyes open", {B("EyesOpen")}),
        ("eyes closed", {B("EyesOpen", False)}),
        ("closed eyes", {B("EyesOpen", False)}),
        ("mouth open", {B("MouthOpen")}),
        ("open mouth", {B("MouthOpen")}),
        ("mouth closed", {B("MouthOpen", False)}),
        ("occluded", {B("FaceOccluded")}),
        # negations
        ("not smiling", {B("Smile", False)}),
        ("no beard", {B("Beard", False)}),
        ("without glasses", {B("Eyeglasses", False)}),
        ("without any glasses", {B("Eyeglasses", False)}),
        ("non-smiling", {B("Smile", False)}),
        ("non smiling", {B("Smile", False)}),
        ("not occluded", {B("FaceOccluded", False)}),
        ("clean-shaven", {B("Beard", False), B("Mustache", False)}),
        ("clean shaven", {B("Beard", False), B("Mustache", False)}),
        ("not eyes closed", {B("EyesOpen")}),
        # gender
        *[(word, {GenderTerm("Male")}) for word in ("men", "man", "male", "guys")],
        *[(word, {GenderTerm("Female")}) for word in ("women", "woman", "female", "ladies")],
        ("not men", {GenderTerm("Female")}),
        # emotions: the top emotion
        ("happy", {EmotionTerm("HAPPY")}),
        ("sad", {EmotionTerm("SAD")}),
        ("angry", {EmotionTerm("ANGRY")}),
        ("confused", {EmotionTerm("CONFUSED")}),
        ("disgusted", {EmotionTerm("DISGUSTED")}),
        ("surprised", {EmotionTerm("SURPRISED")}),
        ("calm", {EmotionTerm("CALM")}),
        ("afraid", {EmotionTerm("FEAR")}),
        ("scared", {EmotionTerm("FEAR")}),
        ("fear", {EmotionTerm("FEAR")}),
        ("not happy", {EmotionTerm("HAPPY", negated=True)}),
        # ages (middle of AgeRange)
        ("over 40", {age(40, None, lo_inclusive=False)}),
        ("older than 40", {age(40, None, lo_inclusive=False)}),
        ("under 30", {age(None, 30)}),
        ("younger than 30", {age(None, 30)}),
        ("aged 20-30", {age(20, 30, hi_inclusive=True)}),
        ("aged 20 to 30", {age(20, 30, hi_inclusive=True)}),
        ("between 20 and 30", {age(20, 30, hi_inclusive=True)}),
        ("in their 30s", {age(30, 40)}),
        ("in their thirties", {age(30, 40)}),
        ("children", {age(None, 13)}),
        ("kids", {age(None, 13)}),
        ("teenagers", {age(13, 20)}),
        ("adults", {age(18, None)}),
        ("seniors", {age(65, None)}),
        ("elderly", {age(65, None)}),
        ("40 and over", {age(40, None)}),
        ("not over 40", {age(40, None, lo_inclusive=False, negated=True)}),
        # image level
        ("3 faces", {FaceCountTerm(3, 3)}),
        ("3 or more faces", {FaceCountTerm(3, None)}),
        ("at least 3 faces", {FaceCountTerm(3, None)}),
        ("more than 3 faces", {FaceCountTerm(4, None)}),
        ("fewer than 3 faces", {FaceCountTerm(0, 2)}),
        ("group photos", {FaceCountTerm(3, None)}),
        ("portraits", {FaceCountTerm(1, 1)}),
        ("alone", {FaceCountTerm(1, 1)}),
        ("no faces", {FaceCountTerm(0, 0)}),
        ("photos of 2 people", {FaceCountTerm(2, 2)}),
        ("5 or more people", {FaceCountTerm(5, None)}),
        ("between 2 and 4 faces", {FaceCountTerm(2, 4)}),
        ("aged 2 to 4 people", {age(2, 4, hi_inclusive=True)}),
        ("people over 40", {age(40, None, lo_inclusive=False)}),
        ("40 year old men", {age(40, 41), GenderTerm("Male")}),
        ("photos with no faces", {FaceCountTerm(0, 0)}),
        # exact terms for scripts
        ("-smile", {B("Smile", False)}),
        ("beard=false", {B("Beard", False)}),
        ("beard=true", {B("Beard")}),
        ("eyes_open=false", {B("EyesOpen", False)}),
        ("gender:male", {GenderTerm("Male")}),
        ("gender=female", {GenderTerm("Female")}),
        ("age>40", {age(40, None, lo_inclusive=False)}),
        ("age>=40", {age(40, None)}),
        ("age<30", {age(None, 30)}),
        ("age:30-40", {age(30, 40, hi_inclusive=True)}),
        ("emotion:happy", {EmotionTerm("HAPPY")}),
        ("emotion:fear", {EmotionTerm("FEAR")}),
        ("faces>=3", {FaceCountTerm(3, None)}),
        ("faces:2", {FaceCountTerm(2, 2)}),
        ("faces=0", {FaceCountTerm(0, 0)}),
    ],
)
def test_words(text, expected):
    assert terms(text) == expected


def test_mixed_sentence_fillers_and_case():
    query = parse("Photos of Smiling WOMEN who are wearing glasses, over 40, in group photos")
    assert set(query.face_terms) == {B("Smile"), GenderTerm("Female"), B("Eyeglasses"), age(40, None, lo_inclusive=False)}
    assert query.image_terms == (FaceCountTerm(3, None),)
    assert query.attributes() == {"Smile", "Gender", "Eyeglasses", "AgeRange"}


def test_words_and_exact_terms_mix():
    query = parse("smiling men beard=false age:30-40 faces>=2")
    assert set(query.face_terms) == {B("Smile"), GenderTerm("Male"), B("Beard", False), age(30, 40, hi_inclusive=True)}
    assert query.image_terms == (FaceCountTerm(2, None),)


def test_attributes_of_clean_shaven_and_emotions():
    assert parse("clean-shaven happy people").attributes() == {"Beard", "Mustache", "Emotions"}
    assert parse("group photos").attributes() == set()


def test_threshold_and_explain():
    query = parse("smiling women without glasses over 40 in group photos", min_confidence=80)
    assert query.min_confidence == 80
    text = query.explain()
    for part in ("smiling", "gender Female", "no eyeglasses", "> 40", "3 or more faces", "Confidence >= 80", "same face"):
        assert part in text, part
    assert parse("beard").min_confidence == 50


@pytest.mark.parametrize(
    "text, message",
    [
        ("bald men", "unknown word 'bald' in query; did you mean"),
        ("smling", "did you mean 'smiling'?"),
        ("happpy women", "did you mean 'happy'?"),
        ("-bald", "unknown word '-bald'"),
        ("", "empty query"),
        ("photos of people", "asks for nothing"),
        ("not", "negates nothing"),
        ("smiling or sad", "'or' is not supported"),
        ("over the hill", "'over' must be followed by a number"),
        ("40", "alone is unclear"),
        ("between 30 and 20", "smaller number first"),
        ("age:40-30", "smaller number first"),
        ("gender:robot", "gender must be male or female"),
        ("emotion:bored", "emotion must be one of"),
        ("beard=maybe", "must be true or false"),
        ("age>old", "needs a number"),
        ("not clean-shaven", "not supported"),
    ],
)
def test_errors_are_one_line_query_errors(text, message):
    with pytest.raises(QueryError) as caught:
        parse(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE == 2


def test_unknown_word_error_names_the_word_exactly():
    with pytest.raises(QueryError, match=r"^unknown word 'bald' in query; did you mean '[a-z -]+'\?$"):
        parse("smiling bald men")


@pytest.mark.parametrize("value", [-1, 101, "abc"])
def test_bad_threshold(value):
    with pytest.raises(QueryError, match="min-confidence"):
        parse("smiling", min_confidence=value)


@pytest.mark.parametrize(
    "text",
    [
        "smiling'; DROP TABLE faces; --",
        "smiling; DROP TABLE faces",
        "men' OR '1'='1",
        "gender:male' OR 1=1 --",
        "emotion:happy'); DELETE FROM images; --",
        "age>40; DROP TABLE faces",
        'beard="1" OR 1=1',
        "smiling /* */ UNION SELECT raw FROM faces",
    ],
)
def test_injection_attempts_are_rejected_as_unknown_words(text):
    with pytest.raises(QueryError):
        parse(text)


def test_values_reach_sql_only_as_bound_parameters():
    query = parse("smiling women aged 41-47 emotion:surprised faces>=7", min_confidence=77)
    from indexer.store.models import Face, Image

    statement = (
        select(Image.id)
        .join(Face, Face.image_id == Image.id)
        .where(face_condition(query), *image_conditions(query))
    )
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        compiled = statement.compile(dialect=dialect)
        sql = re.sub(r"param_\d+", "param", str(compiled))
        for literal_text in ("41", "47", "77", "SURPRISED", "Female", "7"):
            assert literal_text not in sql, (literal_text, sql)
        values = set(compiled.params.values())
        assert {41.0, 47.0, 77.0, "SURPRISED", "Female", 7, True} <= values


def test_query_module_stays_light():
    code = (
        "import sys, indexer.query, indexer.search; "
        "bad = [m for m in ('boto3', 'botocore', 'PIL', 'numpy', 'cv2', 'onnxruntime') if m in sys.modules]; "
        "bad += [m for m in sys.modules if m.startswith('indexer.engines.') and m != 'indexer.engines.base']; "
        "print(','.join(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""

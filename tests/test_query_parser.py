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


@pytest.mark.parametrize(
    "text, expected",
    [
        # every word that counts faces counts them everywhere: after "no", after a number, in a range
        ("no persons", FaceCountTerm(0, 0)),
        ("no people", FaceCountTerm(0, 0)),
        ("no person", FaceCountTerm(0, 0)),
        ("without persons", FaceCountTerm(0, 0)),
        ("zero people", FaceCountTerm(0, 0)),
        ("zero persons", FaceCountTerm(0, 0)),
        ("2 person", FaceCountTerm(2, 2)),
        ("2 persons", FaceCountTerm(2, 2)),
        ("2 people", FaceCountTerm(2, 2)),
        ("1 person", FaceCountTerm(1, 1)),
        ("one person", FaceCountTerm(1, 1)),
        ("single person", FaceCountTerm(1, 1)),
        ("3 or more people", FaceCountTerm(3, None)),
        ("3 or more persons", FaceCountTerm(3, None)),
        ("at least 2 persons", FaceCountTerm(2, None)),
        ("at least 2 person", FaceCountTerm(2, None)),
        ("more than 4 person", FaceCountTerm(5, None)),
        ("fewer than 3 people", FaceCountTerm(0, 2)),
        ("2-4 persons", FaceCountTerm(2, 4)),
        ("between 2 and 4 person", FaceCountTerm(2, 4)),
        ("photos with no persons", FaceCountTerm(0, 0)),
        ("not 2 persons", FaceCountTerm(2, 2, negated=True)),
    ],
)
def test_face_words_count_faces_alike(text, expected):
    assert parse(text).image_terms == (expected,)
    assert parse(text).face_terms == ()


def test_face_words_alone_are_fillers_except_faces():
    assert parse("smiling people").face_terms == (B("Smile"),) and parse("smiling people").image_terms == ()
    assert parse("smiling persons").image_terms == ()
    assert parse("faces").image_terms == (FaceCountTerm(1, None),)
    assert parse("not faces").image_terms == (FaceCountTerm(1, None, negated=True),)


@pytest.mark.parametrize(
    "text, expected",
    [
        # the exact negation is exact: -eyeglasses is eyeglasses=false, whatever negates it
        ("-eyeglasses", {B("Eyeglasses", False)}),
        ("not -eyeglasses", {B("Eyeglasses")}),
        ("not -smile", {B("Smile")}),
        ("-eyes_open", {B("EyesOpen", False)}),
        ("eyes_open", {B("EyesOpen")}),
        ("-men", {GenderTerm("Female")}),
        ("-happy", {EmotionTerm("HAPPY", negated=True)}),
        ("-group photos", {FaceCountTerm(3, None, negated=True)}),
        ("-face occluded", {B("FaceOccluded", False)}),
        ("-teens", {age(13, 20, negated=True)}),
        # a negation skips the fillers after it, and applies to one term
        ("without any glasses smiling", {B("Eyeglasses", False), B("Smile")}),
        ("no and over 40", {age(40, None, lo_inclusive=False, negated=True)}),
        ("not not smiling", {B("Smile")}),
        # "aged" + a decade is the decade; "teens" alone is teenagers
        ("aged teens", {age(10, 20)}),
        ("teens", {age(13, 20)}),
        ("age over 40", {age(40, None, lo_inclusive=False)}),
        ("18 years of age", {age(18, 19)}),
        ("from 20 to 30", {age(20, 30, hi_inclusive=True)}),
        ("between 2 and 4 faces", {FaceCountTerm(2, 4)}),
        ("faces=2-4", {FaceCountTerm(2, 4)}),
        ("faces!=2", {FaceCountTerm(2, 2, negated=True)}),
        ("age=40", {age(40, 41)}),
        ("age<=40", {age(None, 40, hi_inclusive=True)}),
        ("gender!=male", {GenderTerm("Female")}),
        ("emotion:HAPPINESS", {EmotionTerm("HAPPY")}),
        ("faces:two", {FaceCountTerm(2, 2)}),
    ],
)
def test_rules(text, expected):
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
        ("no", "'no' at the end of the query negates nothing"),
        ("smiling not the", "'not' at the end of the query negates nothing"),
        ("aged", "'aged' must be followed by an age"),
        ("aged the", "'aged' must be followed by an age, e.g. 'aged 20-30', not 'the'"),
        ("between 30", "'between' must be followed by 'N and M'"),
        ("three", "number 'three' alone is unclear: write 'over 3'"),
        ("2.5 faces", "a number of faces must be a whole number"),
        ("faces<0", "no image has fewer than 0 faces"),
        ("under 0 faces", "no image has fewer than 0 faces"),
        ("age>" + "9" * 400, "too large"),
        ("3-" + "9" * 400 + " faces", "too large"),
        ("beard>1", "a yes/no attribute takes '=true' or '=false'"),
        ("-", "unknown word '-'"),
        ("-non-smiling", "unknown word '-non-smiling'"),
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
    from indexer.store.models import faces_table, images_table

    statement = (
        select(images_table.c.id)
        .join(faces_table, faces_table.c.image_id == images_table.c.id)
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


def test_word_tables_match_what_their_regex_alternation_would():
    """The rules' word tables are looked up, not compiled; they must match exactly where the
    regex ``prefix(?P<group>word|...)`` ending at a token's end would, the longest phrase first."""
    from indexer import query as q

    table = q._Words("phrase", q._PHRASES)
    dashed = q._Words("phrase", q._PHRASES, prefix="-")
    alternation = re.compile(rf"(?P<phrase>{q._one_of(q._PHRASES)})")
    dashed_alternation = re.compile(rf"-(?P<phrase>{q._one_of(q._PHRASES)})")
    lines = [f"{phrase} with sunglasses" for phrase in q._PHRASES] + [
        "group photos of women",  # two tokens, where "group" alone is no phrase
        "smilingly",  # a phrase's prefix is not the phrase
        "over 40",
        "",
    ]
    for line in lines:
        for words, regex, text in ((table, alternation, line), (dashed, dashed_alternation, f"-{line}")):
            got, want = words.match(text, 0), regex.match(text, 0)
            assert (got and (got[0], got["phrase"], got.end())) == (want and (want[0], want["phrase"], want.end())), text
    at = "men " + "group photos"
    assert table.match(at, 4)["phrase"] == "group photos"

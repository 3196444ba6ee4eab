"""The search query language: words people type and exact terms scripts write, in one string.

``parse("smiling women over 40 without glasses")`` gives a :class:`Query`: a list of *face
terms* that must all hold on the **same face**, a list of *image terms* (how many faces the
image has), and the confidence threshold. :func:`face_condition` and :func:`image_conditions`
compile it to SQLAlchemy expressions whose every value is a bound parameter: nothing typed in a
query ever reaches SQL as SQL (column names come from the attribute registry, never from the
query text).

Meaning of a term on a face:

* a boolean attribute (``smiling``, ``no beard``) holds when the stored ``Value`` is the one
  asked for **and** its ``Confidence`` is at least the threshold. An attribute the engine could
  not predict is NULL and matches neither ``beard`` nor ``no beard``.
* a gender holds the same way (``Value`` and ``Confidence``).
* an emotion holds when it is the face's top emotion with at least the threshold confidence;
  ``not happy`` holds when the face's emotions are known and HAPPY is not its confident top one.
* an age compares the middle of Rekognition's AgeRange.

How it is read: the text becomes lower-case tokens, then at each token the rules of
:data:`_RULES` are tried in order, the first that matches builds its terms (or flips the
negation, or skips a filler), and reading goes on after what it matched. The words come from the
attribute registry (:mod:`indexer.attributes`) and the named tables below. Unknown words are
errors (a silently ignored ``bald`` would give wrong answers), reported on one line with the
nearest known word. This module must stay light: no boto3, PIL, numpy or engines, and
SQLAlchemy only inside the functions that compile.
"""

from __future__ import annotations

import difflib
import enum
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, NamedTuple, Protocol

from .attributes import AGE, BOOLEANS, EMOTION, GENDER, AgeGroup, Boolean, Category, Searchable, split_words
from .errors import QueryError

DEFAULT_MIN_CONFIDENCE = 50.0
#: Largest face count compared in SQL: the images.face_count column is a 32-bit INTEGER on
#: PostgreSQL (2**31 - 1); found by fuzzing (``faces>99999999999999999999`` overflowed the bind).
MAX_FACE_COUNT = 2**31 - 1


# -- the terms -------------------------------------------------------------------------------


class Bitsets(Protocol):
    """What a term's :meth:`bits` reads (:class:`indexer.bitsets.FaceBitsets`): one bit per face."""

    all: int

    def atom(self, term: "FaceTerm") -> int: ...

    def ages(self, lo: float | None, lo_inclusive: bool, hi: float | None, hi_inclusive: bool) -> int: ...

    def face_counts(self, lo: int, hi: int | None) -> int: ...


def _holds(c: Any, attribute: Searchable, value: Any, threshold: float) -> Any:
    """``attribute`` is ``value`` with at least ``threshold`` confidence. ``=`` (not IS), so the
    attribute's (value, image_id, confidence) index answers it; an unknown (NULL) value matches nothing."""
    from sqlalchemy import and_, literal

    return and_(c[attribute.column] == literal(value), c[attribute.confidence_column] >= literal(threshold))


_BOOLEAN: dict[str, Boolean] = {attribute.key: attribute for attribute in BOOLEANS}


@dataclass(frozen=True)
class BoolTerm:
    """A yes/no attribute has ``value`` (``no beard``: Beard is False), confidently."""

    key: str  # FaceDetail key, e.g. "Beard"
    value: bool

    @property
    def attribute(self) -> str:
        return self.key

    @property
    def index(self) -> str | None:
        return _BOOLEAN[self.key].index

    def condition(self, c: Any, threshold: float) -> Any:
        return _holds(c, _BOOLEAN[self.key], self.value, threshold)

    def bits(self, bitsets: Bitsets) -> int:
        return bitsets.atom(self)

    def confidence(self, c: Any) -> Any:
        return c[_BOOLEAN[self.key].confidence_column]

    def describe(self) -> str:
        yes, no = _BOOLEAN[self.key].said
        return f"{yes if self.value else no} ({self.key}={str(self.value).lower()})"


@dataclass(frozen=True)
class GenderTerm:
    """The face's gender is ``value`` ("Male" | "Female"), confidently ("not men" asks for women)."""

    value: str
    attribute: ClassVar[str] = GENDER.key
    index: ClassVar[str | None] = GENDER.index

    def condition(self, c: Any, threshold: float) -> Any:
        return _holds(c, GENDER, self.value, threshold)

    def bits(self, bitsets: Bitsets) -> int:
        return bitsets.atom(self)

    def confidence(self, c: Any) -> Any:
        return c[GENDER.confidence_column]

    def describe(self) -> str:
        return f"{GENDER.title} {self.value}"


@dataclass(frozen=True)
class EmotionTerm:
    """``value`` ("HAPPY", ...) is the face's confident top emotion; negated, the face's emotions
    are known and it is not (no index answers that, nor does it rank by a confidence)."""

    value: str
    negated: bool = False
    attribute: ClassVar[str] = EMOTION.key

    @property
    def index(self) -> str | None:
        return None if self.negated else EMOTION.index

    def condition(self, c: Any, threshold: float) -> Any:
        from sqlalchemy import and_, not_

        holds = _holds(c, EMOTION, self.value, threshold)
        return and_(c[EMOTION.column].is_not(None), not_(holds)) if self.negated else holds

    def bits(self, bitsets: Bitsets) -> int:
        return bitsets.atom(self)

    def confidence(self, c: Any) -> Any | None:
        return None if self.negated else c[EMOTION.confidence_column]

    def describe(self) -> str:
        return f"{EMOTION.title} {'is not' if self.negated else 'is'} {self.value}"


@dataclass(frozen=True)
class AgeTerm:
    """``lo <(=) age_mid <(=) hi``; either bound may be None. ``negated`` inverts (age known)."""

    lo: float | None
    lo_inclusive: bool
    hi: float | None
    hi_inclusive: bool
    negated: bool = False
    attribute: ClassVar[str] = AGE.key

    def __post_init__(self) -> None:
        # one spelling per meaning: numbers as floats, no inclusivity flag on a missing bound
        object.__setattr__(self, "lo", None if self.lo is None else float(self.lo))
        object.__setattr__(self, "hi", None if self.hi is None else float(self.hi))
        if self.lo is None:
            object.__setattr__(self, "lo_inclusive", False)
        if self.hi is None:
            object.__setattr__(self, "hi_inclusive", False)

    @classmethod
    def of(cls, group: AgeGroup, negated: bool = False) -> AgeTerm:
        """The ages a word names ("teenagers": 13 <= age < 20)."""
        return cls(group.low, True, group.high, False, negated)

    @property
    def index(self) -> str | None:
        return None if self.negated else AGE.index

    def condition(self, c: Any, threshold: float) -> Any:
        from sqlalchemy import and_, literal, not_, or_

        age = c[AGE.column]
        parts = []
        if self.lo is not None:
            parts.append(age >= literal(self.lo) if self.lo_inclusive else age > literal(self.lo))
        if self.hi is not None:
            parts.append(age <= literal(self.hi) if self.hi_inclusive else age < literal(self.hi))
        if not parts:
            parts.append(age.is_not(None))
        if self.negated:
            return and_(age.is_not(None), or_(*[not_(part) for part in parts]))
        return and_(*parts)

    def bits(self, bitsets: Bitsets) -> int:
        inside = bitsets.ages(self.lo, self.lo_inclusive, self.hi, self.hi_inclusive)
        return bitsets.ages(None, False, None, False) & ~inside if self.negated else inside

    def confidence(self, c: Any) -> None:
        return None  # an age has no confidence to rank by

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>=' if self.lo_inclusive else '>'} {_fmt(self.lo)}")
        if self.hi is not None:
            parts.append(f"{'<=' if self.hi_inclusive else '<'} {_fmt(self.hi)}")
        text = f"{AGE.title} (middle of {AGE.key}) " + " and ".join(parts)
        return f"not ({text})" if self.negated else text


@dataclass(frozen=True)
class FaceCountTerm:
    """The image has ``lo <= face_count <= hi`` faces (hi None: no upper bound)."""

    lo: int
    hi: int | None
    negated: bool = False

    def __post_init__(self) -> None:
        # No image has more faces than the column can hold: a larger bound (``faces>10**20``)
        # means the same as this one, and SQLite/PostgreSQL refuse to bind it as an integer.
        object.__setattr__(self, "lo", min(self.lo, MAX_FACE_COUNT))
        if self.hi is not None:
            object.__setattr__(self, "hi", min(self.hi, MAX_FACE_COUNT))

    def condition(self, column: Any) -> Any:
        """The condition on ``column``: the images' face_count, or an expression of it."""
        from sqlalchemy import and_, literal, not_

        parts = [column >= literal(self.lo)]
        if self.hi is not None:
            parts.append(column <= literal(self.hi))
        condition = and_(*parts)
        return not_(condition) if self.negated else condition

    def bits(self, bitsets: Bitsets) -> int:
        """The faces of the images this term accepts."""
        inside = bitsets.face_counts(self.lo, self.hi)
        return bitsets.all & ~inside if self.negated else inside

    def describe(self) -> str:
        if self.hi is None:
            text = f"{self.lo} or more faces"
        elif self.lo == self.hi:
            text = f"exactly {self.lo} face{'s' if self.lo != 1 else ''}"
        else:
            text = f"{self.lo} to {self.hi} faces"
        return f"not {text}" if self.negated else text


FaceTerm = BoolTerm | GenderTerm | EmotionTerm | AgeTerm
Term = FaceTerm | FaceCountTerm


class Query(NamedTuple):
    text: str
    face_terms: tuple[FaceTerm, ...] = ()
    image_terms: tuple[FaceCountTerm, ...] = ()
    min_confidence: float = DEFAULT_MIN_CONFIDENCE

    def attributes(self) -> set[str]:
        """The FaceDetail keys this query reads (what an engine must fill to answer it)."""
        return {term.attribute for term in self.face_terms}

    def explain(self) -> str:
        """How the query was understood, for people (``--explain``)."""
        lines = [f"query: {self.text!r}"]
        if self.face_terms:
            lines.append("on one same face, all of:")
            lines += [f"  - {term.describe()}" for term in self.face_terms]
        else:
            lines.append("no face terms: every face of a matching image is shown")
        if self.image_terms:
            lines.append("and the image has:")
            lines += [f"  - {term.describe()}" for term in self.image_terms]
        lines.append(
            f"threshold: a boolean attribute, gender or top emotion counts only with Confidence >= {_fmt(self.min_confidence)}"
        )
        lines.append("unknown values (attributes the engine could not predict) match neither a term nor its negation")
        return "\n".join(lines)


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


# -- words -----------------------------------------------------------------------------------

NEGATIONS = frozenset({"not", "no", "without", "non", "never", "nobody", "isn't", "aren't", "don't", "doesn't"})

#: Words that count faces after a number or a "no" ("3 people", "no persons", "2 faces").
FACE_WORDS = ("faces", "face", "people", "persons", "person")
#: Those of :data:`FACE_WORDS` that alone ask for an image with faces; the others are fillers.
_FACES_ALONE = "faces,face"

#: The names of the exact face-count term (``faces>=3``).
_FACE_COUNT_NAMES = ("faces", "face_count", "face-count")

FILLERS = frozenset(
    """photos photo pictures picture pics pic images image shots shot
    of with and who are is wearing wear wears have has having a an the in their that show showing
    shows all any some years year old yo y/o find me where which whose whom someone somebody
    everyone everybody there them they he she his her its it be being look looking looks
    appear appearing appears also by for on containing contain contains featuring including
    visible only just""".split()
) | (frozenset(FACE_WORDS) - set(split_words(_FACES_ALONE)))

#: Comparators around a number -> the comparison. Those beginning with "or" only follow the
#: number ("3 or more"); the others may come before it ("over 40") or after it ("40 and over").
_COMPARATORS: dict[str, str] = {
    "over": ">", "above": ">", "older than": ">", "more than": ">", "greater than": ">",
    "under": "<", "below": "<", "younger than": "<", "less than": "<", "fewer than": "<",
    "at least": ">=", "at most": "<=", "or more": ">=", "or older": ">=", "or less": "<=",
    "or fewer": "<=", "or younger": "<=", "and up": ">=", "and over": ">=", "and older": ">=",
    "and under": "<=", "and younger": "<=",
}
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "single": 1,
}
_DECADES = {
    "teens": 10, "twenties": 20, "thirties": 30, "forties": 40, "fifties": 50,
    "sixties": 60, "seventies": 70, "eighties": 80, "nineties": 90,
}
#: Words before an age: "aged 40", "age 20-30", "between 20 and 30", "from 20 to 30".
_AGE_WORDS = ("aged", "age", "ages", "between", "from")
#: What may follow an age ("40 years old", "18 years of age"); the first four make a bare number an age.
_YEARS = ("years", "year", "yo", "y/o", "old", "of", "age")
_AGE_UNITS = _YEARS[:4]
#: Words for how many faces an image has -> (fewest, most).
_IMAGE_WORDS: dict[str, tuple[int, int | None]] = {
    "group photos,group photo,group pictures,group picture,group shots,group shot,groups,group,crowd,crowds": (3, None),
    "portraits,portrait,alone,solo": (1, 1),
    _FACES_ALONE: (1, None),
}
_TRUE = frozenset({"true", "yes", "1", "y", "t", "on"})
_FALSE = frozenset({"false", "no", "0", "n", "f", "off"})

#: Builds the terms of a word or rule, given whether it is negated.
Build = Callable[[bool], tuple[Term, ...]]


def _boolean(key: str, value: bool) -> Build:
    return lambda negated: (BoolTerm(key, value != negated),)


def _gender(value: str) -> Build:
    other = next(v for v, _words in GENDER.values if v != value)
    return lambda negated: (GenderTerm(other if negated else value),)


def _emotion(value: str) -> Build:
    return lambda negated: (EmotionTerm(value, negated),)


def _age_group(group: AgeGroup) -> Build:
    return lambda negated: (AgeTerm.of(group, negated),)


def _face_count_words(lo: int, hi: int | None) -> Build:
    return lambda negated: (FaceCountTerm(lo, hi, negated),)


def _clear_glasses(negated: bool) -> tuple[Term, ...]:
    """"eyeglasses": eyewear that is not sunglasses; negated, no eyewear at all."""
    if negated:
        return (BoolTerm("Eyeglasses", False),)
    return BoolTerm("Eyeglasses", True), BoolTerm("Sunglasses", False)


def _clean_shaven(negated: bool) -> tuple[Term, ...]:
    if negated:
        raise QueryError("'not clean-shaven' is not supported: ask for 'beard' or 'mustache'")
    return BoolTerm("Beard", False), BoolTerm("Mustache", False)


#: Words that name two attributes at once.
_COMBINATIONS: dict[str, Build] = {
    "eyeglasses,spectacles,specs,bespectacled": _clear_glasses,
    "clean-shaven,clean shaven,cleanshaven,shaven": _clean_shaven,
}


def _category_words(category: Category, build: Callable[[str], Build]) -> dict[str, Build]:
    return {word: build(value) for value, words in category.value_words.items() for word in words}


_GENDER_WORDS = _category_words(GENDER, _gender)
_EMOTION_WORDS = _category_words(EMOTION, _emotion)


def _phrase_table() -> dict[str, Build]:
    """Every word and fixed phrase (space-separated) -> what it asks for."""
    table: dict[str, Build] = {}
    for attribute in BOOLEANS:
        table |= {word: _boolean(attribute.key, True) for word in split_words(attribute.words)}
        table |= {word: _boolean(attribute.key, False) for word in split_words(attribute.false_words)}
    table |= _GENDER_WORDS | _EMOTION_WORDS
    table |= {word: _age_group(group) for group in AGE.groups for word in split_words(group.words)}
    table |= {word: _face_count_words(*faces) for words, faces in _IMAGE_WORDS.items() for word in split_words(words)}
    table |= {word: build for words, build in _COMBINATIONS.items() for word in split_words(words)}
    return table


_PHRASES = _phrase_table()
#: Exact names of yes/no attributes (``eyes_open``): alone, the attribute holds; ``-eyes_open``
#: means ``eyes_open=false``.
_BOOLEAN_NAMES = {name: attribute for attribute in BOOLEANS for name in attribute.names}


# -- numbers ---------------------------------------------------------------------------------


def _value(text: str) -> float:
    """A number as typed: digits or a number word. Found by fuzzing: 400 digits are ``inf``."""
    value = float(_NUMBER_WORDS.get(text, text))
    if not math.isfinite(value):
        raise QueryError(f"number {text!r} is too large")
    return value


def _range(lo_text: str, hi_text: str, text: str) -> tuple[float, float]:
    """The bounds of ``20-30``, ``between 20 and 30``, ``age:20-30``: the smaller one first."""
    lo, hi = _value(lo_text), _value(hi_text)
    if lo > hi:
        raise QueryError(f"{text!r} is an empty range: write the smaller number first")
    return lo, hi


def _face_range(lo: float, hi: float, negated: bool, text: str) -> FaceCountTerm:
    """Found by fuzzing: ``1.5-3 faces`` silently became ``1-3``."""
    if lo != int(lo) or hi != int(hi):
        raise QueryError(f"{text!r}: a number of faces must be a whole number")
    return FaceCountTerm(int(lo), int(hi), negated)


def _face_count(op: str, value: float, negated: bool, text: str) -> FaceCountTerm:
    """``op value`` faces, op one of = > >= < <=."""
    if value != int(value):
        raise QueryError(f"{text!r}: a number of faces must be a whole number")
    n = int(value)
    lo, hi = {"=": (n, n), ">": (n + 1, None), ">=": (n, None), "<": (0, n - 1), "<=": (0, n)}[op]
    if hi is not None and hi < lo:
        raise QueryError(f"{text!r}: no image has fewer than 0 faces")
    return FaceCountTerm(lo, hi, negated)


def _age_compare(op: str, value: float, negated: bool) -> AgeTerm:
    """``age op value``; ``=`` means the year of that age (40 <= age < 41)."""
    lo, lo_inclusive, hi, hi_inclusive = {
        "=": (value, True, value + 1, False),
        ">": (value, False, None, False),
        ">=": (value, True, None, False),
        "<": (None, False, value, False),
        "<=": (None, False, value, True),
    }[op]
    return AgeTerm(lo, lo_inclusive, hi, hi_inclusive, negated)


def _decade(text: str) -> int:
    return _DECADES[text] if text in _DECADES else int(text[:2])


# -- the rules -------------------------------------------------------------------------------
#
# A rule is a pattern over the tokens joined by single spaces, tried at the start of a token, and
# a builder that turns its match into terms (or raises the error it stands for). The patterns
# are made of the pieces below; every piece ends at the end of a token.

_END = r"(?![^ ])"


def _one_of(words: Iterable[str]) -> str:
    """Any of ``words`` (each one token or a fixed phrase), the longest first: 'older than' before 'older'."""
    return "(?:" + "|".join(re.escape(word) for word in sorted(set(words), key=len, reverse=True)) + ")" + _END


_DIGITS = r"\d+(?:\.\d+)?"
_NUMBER = rf"(?:{_DIGITS}{_END}|{_one_of(_NUMBER_WORDS)})"
_RANGE = rf"(?P<lo>{_DIGITS})(?:-|\.\.|–)(?P<hi>{_DIGITS}){_END}"
_EXACT = r"(?P<name>[a-z_][a-z_-]*?)(?P<op>>=|<=|==|!=|=|:|>|<)(?P<value>[^ ]*)"
_FACES = _one_of(FACE_WORDS)
_AFTER_AGE = rf"(?: {_one_of(_YEARS)})*"
_DECADE = rf"(?:{_one_of(_DECADES)}|\d0'?s{_END})"
_BEFORE = _one_of(word for word in _COMPARATORS if not word.startswith("or "))
_AFTER = _one_of(_COMPARATORS)
_AND = _one_of(("and", "to", "-"))
_AGE_WORD = _one_of(_AGE_WORDS)
_AGE_PREFIX = rf"(?:{_one_of(('age', 'ages'))} )?"  # "age over 40"


class _Words:
    """A pattern that is a table of words or fixed phrases (``"smiling"``, ``"group photos"``):
    the longest one that starts at a token, found by lookup, as a match of group ``group``
    (after ``prefix``). It matches what ``prefix(?P<group>{_one_of(words)})`` would: one regex
    alternation of a hundred phrases takes 2-4 ms to compile, in every process that searches."""

    def __init__(self, group: str, words: Iterable[str], prefix: str = "") -> None:
        self.group, self.prefix, self.words = group, prefix, frozenset(words)
        self.longest = max(word.count(" ") + 1 for word in self.words)

    def match(self, line: str, pos: int) -> re.Match[str] | None:
        if not line.startswith(self.prefix, pos):
            return None
        tokens = line[pos + len(self.prefix) :].split(" ", self.longest)[: self.longest]
        for n in range(len(tokens), 0, -1):
            phrase = " ".join(tokens[:n])
            if phrase in self.words:
                return re.compile(rf"{re.escape(self.prefix)}(?P<{self.group}>{re.escape(phrase)})").match(line, pos)
        return None


class _Step(enum.Enum):
    """What a rule did besides building terms."""

    NEGATE = "negate"  # a negation: the next term is negated (twice: not negated)
    SKIP = "skip"  # a filler: the negation, if any, waits for the next term


Built = tuple[Term, ...] | _Step
Rule = Callable[[re.Match[str], bool], Built]


def _compared_faces(m: re.Match[str], negated: bool) -> Built:
    """"3 faces", "at least 3 people", "3 or more persons"."""
    op = _COMPARATORS[m["op"]] if m["op"] else "="
    return (_face_count(op, _value(m["n"]), negated, m[0]),)


def _compared_age(m: re.Match[str], negated: bool) -> Built:
    """"over 40", "40 and over", "age under 30"."""
    return (_age_compare(_COMPARATORS[m["op"]], _value(m["n"]), negated),)


def _range_term(m: re.Match[str], negated: bool) -> Built:
    """"20-30", "aged 20 to 30" (ages, both included), "2-4 faces", "between 2 and 4 people"."""
    lo, hi = _range(m["lo"], m["hi"], m[0])
    if m.groupdict().get("faces"):
        return (_face_range(lo, hi, negated, m[0]),)
    return (AgeTerm(lo, True, hi, True, negated),)


def _aged(m: re.Match[str], negated: bool) -> Built:
    """"40 years old", "aged 40": that year of age."""
    return (_age_compare("=", _value(m["n"]), negated),)


def _decade_term(m: re.Match[str], negated: bool) -> Built:
    """"thirties", "30s", "aged 30's"."""
    decade = _decade(m["decade"])
    return (AgeTerm(decade, True, decade + 10, False, negated),)


def _fail(message: str) -> Rule:
    """A rule for a known mistake: its message, formatted with the match's groups."""

    def fail(m: re.Match[str], negated: bool) -> Built:
        raise QueryError(message.format(*m.groups()))

    return fail


def _unclear_number(m: re.Match[str], negated: bool) -> Built:
    n = _fmt(_value(m["n"]))
    raise QueryError(f"number {m['n']!r} alone is unclear: write 'over {n}', 'aged {n}' or '{n} faces'")


def _age_missing(m: re.Match[str], negated: bool) -> Built:
    example = f"{m['word']!r} must be followed by an age, e.g. '{m['word']} 20-30'"
    raise QueryError(f"{example}, not {m['next']!r}" if m["next"] else example)


def _exact(m: re.Match[str], negated: bool) -> Built:
    """``beard=false``, ``gender:male``, ``age>40``, ``age:30-40``, ``emotion:happy``, ``faces>=3``."""
    op = m["op"]
    if op == "!=":
        negated, op = not negated, "="
    elif op in ("==", ":"):
        op = "="
    ask = _EXACT_NAMES.get(m["name"])
    if ask is None:
        raise _unknown(m[0])
    return ask(m, op, negated)


ExactTerm = Callable[[re.Match[str], str, bool], tuple[Term, ...]]


def _exact_boolean(key: str) -> ExactTerm:
    def ask(m: re.Match[str], op: str, negated: bool) -> tuple[Term, ...]:
        if op != "=":
            raise QueryError(f"{m[0]!r}: a yes/no attribute takes '=true' or '=false'")
        if m["value"] not in _TRUE | _FALSE:
            raise QueryError(f"{m[0]!r}: {m['name']} must be true or false, not {m['value']!r}")
        return (BoolTerm(key, (m["value"] in _TRUE) != negated),)

    return ask


def _exact_gender(m: re.Match[str], op: str, negated: bool) -> tuple[Term, ...]:
    build = _GENDER_WORDS.get(m["value"])
    if op != "=" or build is None:
        raise QueryError(f"{m[0]!r}: gender must be male or female")
    return build(negated)


def _exact_emotion(m: re.Match[str], op: str, negated: bool) -> tuple[Term, ...]:
    value = m["value"]
    build = _EMOTION_WORDS.get(value) or (_emotion(value.upper()) if value.upper() in EMOTION.value_words else None)
    if op != "=" or build is None:
        raise QueryError(f"{m[0]!r}: emotion must be one of {', '.join(v.lower() for v in EMOTION.value_words)}")
    return build(negated)


def _exact_range(m: re.Match[str], op: str) -> tuple[float, float] | None:
    """The bounds of ``age:30-40`` or ``faces=2-4``; None when the value is not a range."""
    bounds = re.fullmatch(_RANGE, m["value"])
    return _range(bounds["lo"], bounds["hi"], m[0]) if bounds and op == "=" else None


def _exact_number(m: re.Match[str]) -> float:
    if not re.fullmatch(_NUMBER, m["value"]):
        raise QueryError(f"{m[0]!r}: {m['name']} needs a number or a range like {m['name']}:2-4")
    return _value(m["value"])


def _exact_age(m: re.Match[str], op: str, negated: bool) -> tuple[Term, ...]:
    bounds = _exact_range(m, op)
    if bounds is not None:
        return (AgeTerm(bounds[0], True, bounds[1], True, negated),)
    return (_age_compare(op, _exact_number(m), negated),)


def _exact_face_count(m: re.Match[str], op: str, negated: bool) -> tuple[Term, ...]:
    bounds = _exact_range(m, op)
    if bounds is not None:
        return (_face_range(bounds[0], bounds[1], negated, m[0]),)
    return (_face_count(op, _exact_number(m), negated, m[0]),)


#: Exact term names -> what their value asks for.
_EXACT_NAMES: dict[str, ExactTerm] = {
    **{name: _exact_boolean(attribute.key) for name, attribute in _BOOLEAN_NAMES.items()},
    **{name: _exact_gender for name in GENDER.exact},
    **{name: _exact_emotion for name in EMOTION.exact},
    **{name: _exact_age for name in AGE.exact},
    **{name: _exact_face_count for name in _FACE_COUNT_NAMES},
}

#: The rules, tried in this order at each token. Each pattern is compiled when first tried (re
#: caches it): most queries are words, so most never compile the rules about numbers; the word
#: tables are looked up (:class:`_Words`), never compiled.
_RULES: list[tuple[str | _Words, Rule]] = [
    # words: "smiling", "women", "group photos", "teens"
    (_Words("phrase", _PHRASES), lambda m, negated: _PHRASES[m["phrase"]](negated)),
    # fillers: "photos of", "with", "people" (but "and over 40" compares)
    (rf"(?!{_BEFORE}){_one_of(FILLERS)}", lambda m, negated: _Step.SKIP),
    # "no faces", "without people", "zero persons": before "no" as a negation
    (rf"{_one_of(('no', 'zero', 'without'))} {_FACES}", lambda m, negated: (FaceCountTerm(0, 0, negated),)),
    (rf"(?P<negation>{_one_of(NEGATIONS)})(?: {_one_of(FILLERS)})*", lambda m, negated: _Step.NEGATE),
    # the exact negation scripts write: "-smile" is smile=false, "-men" not men
    (_Words("name", _BOOLEAN_NAMES, prefix="-"), lambda m, negated: (BoolTerm(_BOOLEAN_NAMES[m["name"]].key, negated),)),
    (_Words("phrase", _PHRASES, prefix="-"), lambda m, negated: _PHRASES[m["phrase"]](not negated)),
    # exact terms for scripts
    (_EXACT, _exact),
    # a comparator before a number: "over 40", "at least 3 faces", "age under 30"
    (rf"{_AGE_PREFIX}(?P<op>{_BEFORE}) (?P<n>{_NUMBER}) {_FACES}", _compared_faces),
    (rf"{_AGE_PREFIX}(?P<op>{_BEFORE}) (?P<n>{_NUMBER}){_AFTER_AGE}", _compared_age),
    (rf"{_AGE_PREFIX}({_BEFORE})", _fail("{0!r} must be followed by a number, e.g. '{0} 40' or '{0} 2 faces'")),
    # a range: "20-30", "2-4 faces"
    (rf"{_RANGE}(?: (?P<faces>{_FACES}))?{_AFTER_AGE}", _range_term),
    # a number: "3 faces", "3 or more people", "40 and over", "40 years old"
    (rf"(?P<n>{_NUMBER})(?: (?P<op>{_AFTER}))? {_FACES}", _compared_faces),
    (rf"(?P<n>{_NUMBER}) (?P<op>{_AFTER}){_AFTER_AGE}", _compared_age),
    (rf"(?P<n>{_NUMBER}) {_one_of(_AGE_UNITS)}{_AFTER_AGE}", _aged),
    (rf"(?P<n>{_NUMBER})", _unclear_number),
    # an age word: "aged 30s", "aged 20-30", "between 2 and 4 faces", "from 20 to 30", "aged 40"
    (rf"{_AGE_WORD} (?P<decade>{_DECADE})", _decade_term),
    (rf"{_AGE_WORD} {_RANGE}{_AFTER_AGE}", _range_term),
    (rf"between (?P<lo>{_NUMBER}) {_AND} (?P<hi>{_NUMBER}) (?P<faces>{_FACES})", _range_term),
    (rf"{_AGE_WORD} (?P<lo>{_NUMBER}) {_AND} (?P<hi>{_NUMBER}){_AFTER_AGE}", _range_term),
    (rf"between {_NUMBER}", _fail("'between' must be followed by 'N and M', e.g. 'between 20 and 30'")),
    (rf"{_AGE_WORD} (?P<n>{_NUMBER}){_AFTER_AGE}", _aged),
    (rf"(?P<word>{_AGE_WORD})(?: (?P<next>[^ ]+))?", _age_missing),
    # exact names as words: "eyes_open"; decades: "thirties", "30s"
    (_Words("name", _BOOLEAN_NAMES), lambda m, negated: (BoolTerm(_BOOLEAN_NAMES[m["name"]].key, not negated),)),
    (rf"(?P<decade>{_DECADE})", _decade_term),
    (rf"or{_END}", _fail("'or' is not supported: every term of a query must hold (run two searches instead)")),
]


# -- parser ----------------------------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    """Lower-case tokens; hyphenated words split (``non-smiling`` -> ``non smiling``) unless known."""
    out: list[str] = []
    for raw in re.findall(r"[^\s,;]+", text.lower()):
        token = (raw.rstrip(".!?") or raw).replace("’", "'")
        if re.fullmatch(_EXACT, token) or re.fullmatch(_RANGE, token) or token in _PHRASES:
            out.append(token)
        elif token.startswith("-") and len(token) > 1:
            out.append(token)  # exact negation: -smile
        elif token.startswith("non-"):
            out += ["non", *[part for part in token[4:].split("-") if part]]
        elif "-" in token.strip("-"):
            out += [part for part in token.split("-") if part]
        else:
            out.append(token)
    return out


def _vocabulary() -> list[str]:
    words = set(_PHRASES) | set(_DECADES) | NEGATIONS | set(_COMPARATORS) | set(_AGE_WORDS) | set(_EXACT_NAMES)
    words |= {f"{name}=" for name in _EXACT_NAMES if name not in _BOOLEAN_NAMES}
    return sorted(words)


def _unknown(word: str) -> QueryError:
    candidates = _vocabulary()
    best = difflib.get_close_matches(word, candidates, n=1, cutoff=0.5) or difflib.get_close_matches(
        word, candidates, n=1, cutoff=0.0
    )
    hint = f"; did you mean {best[0]!r}?" if best else ""
    return QueryError(f"unknown word {word!r} in query{hint}")


def _rule_at(line: str, pos: int) -> tuple[re.Match[str], Rule]:
    """The first rule that matches at ``pos``, and its match."""
    for pattern, rule in _RULES:
        match = (pattern if isinstance(pattern, _Words) else re.compile(pattern)).match(line, pos)
        if match:
            return match, rule
    raise _unknown(line[pos:].split(" ", 1)[0])


def _read(text: str) -> list[Term]:
    """The terms of ``text``, in order, each once: the rules applied token after token."""
    line = " ".join(_tokens(text))
    terms: list[Term] = []
    negated, negation = False, ""  # negation: the last negation word, until a term takes it
    pos = 0
    while pos < len(line):
        match, rule = _rule_at(line, pos)
        built = rule(match, negated)
        pos = match.end() + 1
        if built is _Step.NEGATE:
            negated, negation = not negated, match["negation"]
        elif built is not _Step.SKIP:
            terms += [term for term in built if term not in terms]
            negated, negation = False, ""
    if negation:
        raise QueryError(f"{negation!r} at the end of the query negates nothing")
    return terms


def parse(text: str, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> Query:
    """Parse a query; raises a one-line :class:`QueryError` for anything it does not understand."""
    if not isinstance(text, str):
        raise QueryError("the query must be a string")
    try:
        threshold = float(min_confidence)
    except (TypeError, ValueError):
        raise QueryError(f"--min-confidence must be a number from 0 to 100, not {min_confidence!r}") from None
    if not 0.0 <= threshold <= 100.0:
        raise QueryError(f"--min-confidence must be from 0 to 100, not {_fmt(threshold)}")
    if not text.strip():
        raise QueryError("empty query: say what to look for, e.g. 'smiling women over 40'")
    terms = _read(text.strip())
    face = tuple(term for term in terms if not isinstance(term, FaceCountTerm))
    image = tuple(term for term in terms if isinstance(term, FaceCountTerm))
    if not face and not image:
        raise QueryError(f"query {text.strip()!r} asks for nothing: name an attribute, e.g. 'smiling women over 40'")
    return Query(text.strip(), face, image, threshold)


# -- compiler --------------------------------------------------------------------------------


def _faces_table(faces: Any) -> Any:
    if faces is None:
        from .store.models import faces_table

        return faces_table
    return faces


def face_condition(query: Query, faces: Any = None) -> Any | None:
    """One SQL condition on a faces row: every face term holds on it. None without face terms."""
    from sqlalchemy import and_

    if not query.face_terms:
        return None
    c = _faces_table(faces).c
    return and_(*[term.condition(c, query.min_confidence) for term in query.face_terms])


def image_conditions(query: Query, images: Any = None, *, face_count: Any = None) -> list[Any]:
    """SQL conditions on an images row for the image-level terms (face counts).

    ``face_count`` replaces the column by an expression of it (e.g. ``face_count + 0``, which
    keeps a planner from using the face-count index when a walk in URI order is cheaper)."""
    if face_count is None:
        if images is None:
            from .store.models import images_table

            images = images_table
        face_count = images.c.face_count
    return [term.condition(face_count) for term in query.image_terms]


def match_confidence(query: Query, faces: Any = None) -> list[Any]:
    """The confidence columns of the query's face terms (what ``--order confidence`` ranks on)."""
    c = _faces_table(faces).c
    return [column for term in query.face_terms if (column := term.confidence(c)) is not None]

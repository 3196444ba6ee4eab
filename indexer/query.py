"""The search query language: words people type and exact terms scripts write, in one string.

``parse("smiling women over 40 without glasses")`` gives a :class:`Query`: a list of *face
terms* that must all hold on the **same face**, a list of *image terms* (how many faces the
image has), and the confidence threshold. :func:`face_condition` and :func:`image_conditions`
compile it to SQLAlchemy expressions whose every value is a bound parameter: nothing typed in a
query ever reaches SQL as SQL (column names come from fixed tables in this module, never from
the query text).

Meaning of a term on a face:

* a boolean attribute (``smiling``, ``no beard``) holds when the stored ``Value`` is the one
  asked for **and** its ``Confidence`` is at least the threshold. An attribute the engine could
  not predict is NULL and matches neither ``beard`` nor ``no beard``.
* a gender holds the same way (``Value`` and ``Confidence``).
* an emotion holds when it is the face's top emotion with at least the threshold confidence;
  ``not happy`` holds when the face's emotions are known and HAPPY is not its confident top one.
* an age compares the middle of Rekognition's AgeRange.

Unknown words are errors (a silently ignored ``bald`` would give wrong answers), reported on one
line with the nearest known term. This module must stay light: no boto3, PIL, numpy or engines.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import QueryError

DEFAULT_MIN_CONFIDENCE = 50.0
#: Largest face count compared in SQL: the images.face_count column is a 32-bit INTEGER on
#: PostgreSQL (2**31 - 1); found by fuzzing (``faces>99999999999999999999`` overflowed the bind).
MAX_FACE_COUNT = 2**31 - 1

#: FaceDetail key -> (faces column stem, word shown for True, word shown for False)
BOOLEANS: dict[str, tuple[str, str, str]] = {
    "Smile": ("smile", "smiling", "not smiling"),
    "Eyeglasses": ("eyeglasses", "eyeglasses", "no eyeglasses"),
    "Sunglasses": ("sunglasses", "sunglasses", "no sunglasses"),
    "Beard": ("beard", "beard", "no beard"),
    "Mustache": ("mustache", "mustache", "no mustache"),
    "EyesOpen": ("eyes_open", "eyes open", "eyes closed"),
    "MouthOpen": ("mouth_open", "mouth open", "mouth closed"),
    "FaceOccluded": ("face_occluded", "face occluded", "face not occluded"),
}

#: Rekognition emotion types.
EMOTIONS = ("HAPPY", "SAD", "ANGRY", "CONFUSED", "DISGUSTED", "SURPRISED", "CALM", "FEAR")
GENDERS = ("Male", "Female")

# -- vocabulary ------------------------------------------------------------------------------

#: Single words (and fixed multi-word phrases, space-separated) -> meaning.
#: ("bool", key, value) | ("gender", value) | ("emotion", TYPE) | ("age", lo, lo_incl, hi, hi_incl)
#: | ("faces", lo, hi) | ("shaven",) | ("clear glasses",)
_PHRASES: dict[str, tuple] = {}


def _add(words: str, meaning: tuple) -> None:
    for word in words.split(","):
        _PHRASES[word.strip()] = meaning


_add("smiling,smile,smiles,smiley,smiled", ("bool", "Smile", True))
_add("beard,bearded,beards", ("bool", "Beard", True))
_add("mustache,moustache,mustaches,moustaches,mustached,moustached", ("bool", "Mustache", True))
# Rekognition's Eyeglasses holds for any eyewear, sunglasses included (so does CelebA's label):
# "glasses" is any eyewear, "sunglasses" the dark kind, and "eyeglasses"/"spectacles" the clear
# kind (eyewear that is not sunglasses). Negated, each of the last two means no eyewear at all.
_add("sunglasses,shades,sunnies", ("bool", "Sunglasses", True))
_add("glasses,eyewear", ("bool", "Eyeglasses", True))
_add("eyeglasses,spectacles,specs,bespectacled", ("clear glasses",))
_add("eyes open,open eyes,open-eyed", ("bool", "EyesOpen", True))
_add("eyes closed,closed eyes,eyes shut,shut eyes,closed-eyed", ("bool", "EyesOpen", False))
_add("mouth open,open mouth,open mouthed,open-mouthed", ("bool", "MouthOpen", True))
_add("mouth closed,closed mouth,mouth shut", ("bool", "MouthOpen", False))
_add("occluded,face occluded,occluded face,occluded faces,obscured", ("bool", "FaceOccluded", True))
_add("clean-shaven,clean shaven,cleanshaven,shaven", ("shaven",))
_add("men,man,male,males,guys,guy,gentlemen,gentleman", ("gender", "Male"))
_add("women,woman,female,females,ladies,lady", ("gender", "Female"))
_add("happy,happiness", ("emotion", "HAPPY"))
_add("sad,sadness,unhappy", ("emotion", "SAD"))
_add("angry,anger", ("emotion", "ANGRY"))
_add("confused,confusion", ("emotion", "CONFUSED"))
_add("disgusted,disgust", ("emotion", "DISGUSTED"))
_add("surprised,surprise", ("emotion", "SURPRISED"))
_add("calm", ("emotion", "CALM"))
_add("afraid,scared,fear,fearful,frightened", ("emotion", "FEAR"))
_add("children,child,kids,kid", ("age", None, False, 13, False))
_add("teenagers,teenager,teens,teen", ("age", 13, True, 20, False))
_add("adults,adult,grown-ups,grownups", ("age", 18, True, None, False))
_add("seniors,senior,elderly", ("age", 65, True, None, False))
_add("group photos,group photo,group pictures,group picture,group shots,group shot,groups,group,crowd,crowds",
     ("faces", 3, None))
_add("portraits,portrait,alone,solo", ("faces", 1, 1))
_add("faces,face", ("faces", 1, None))

_DECADES = {
    "teens": 10, "twenties": 20, "thirties": 30, "forties": 40, "fifties": 50,
    "sixties": 60, "seventies": 70, "eighties": 80, "nineties": 90,
}
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "single": 1,
}

NEGATIONS = frozenset({"not", "no", "without", "non", "never", "nobody", "isn't", "aren't", "don't", "doesn't"})

FILLERS = frozenset(
    """people person persons photos photo pictures picture pics pic images image shots shot
    of with and who are is wearing wear wears have has having a an the in their that show showing
    shows all any some years year old yo y/o find me where which whose whom someone somebody
    everyone everybody there them they he she his her its it be being look looking looks
    appear appearing appears also by for on containing contain contains featuring including
    visible only just""".split()
)

#: Comparators before a number: word(s) -> (op)
_COMPARATORS: dict[str, str] = {
    "over": ">", "above": ">", "older than": ">", "more than": ">", "greater than": ">",
    "under": "<", "below": "<", "younger than": "<", "less than": "<", "fewer than": "<",
    "at least": ">=", "at most": "<=", "or more": ">=", "or older": ">=", "or less": "<=",
    "or fewer": "<=", "or younger": "<=", "and up": ">=", "and over": ">=", "and older": ">=",
    "and under": "<=", "and younger": "<=",
}

#: Exact attribute names for scripts (``beard=false``, ``-smile``): lower-case -> FaceDetail key.
_EXACT_BOOLEANS: dict[str, str] = {}
for _key, (_stem, _t, _f) in BOOLEANS.items():
    _EXACT_BOOLEANS[_key.lower()] = _key
    _EXACT_BOOLEANS[_stem] = _key
    _EXACT_BOOLEANS[_stem.replace("_", "-")] = _key
_EXACT_BOOLEANS.update({"smiling": "Smile", "glasses": "Eyeglasses", "moustache": "Mustache", "occluded": "FaceOccluded"})

_TRUE = {"true", "yes", "1", "y", "t", "on"}
_FALSE = {"false", "no", "0", "n", "f", "off"}

_EXACT_RE = re.compile(r"^(?P<name>[a-z_][a-z_-]*?)(?P<op>>=|<=|==|!=|=|:|>|<)(?P<value>.*)$")
_NUM = r"\d+(?:\.\d+)?"
_RANGE_RE = re.compile(rf"^({_NUM})(?:-|\.\.|–)({_NUM})$")
_TOKEN_RE = re.compile(r"[^\s,;]+|[,;]")


# -- the parsed query ------------------------------------------------------------------------


@dataclass(frozen=True)
class BoolTerm:
    key: str  # FaceDetail key, e.g. "Beard"
    value: bool

    def describe(self) -> str:
        _stem, yes, no = BOOLEANS[self.key]
        return f"{yes if self.value else no} ({self.key}={str(self.value).lower()})"


@dataclass(frozen=True)
class GenderTerm:
    value: str  # "Male" | "Female"

    def describe(self) -> str:
        return f"gender {self.value}"


@dataclass(frozen=True)
class EmotionTerm:
    value: str  # "HAPPY", ...
    negated: bool = False

    def describe(self) -> str:
        return f"top emotion {'is not' if self.negated else 'is'} {self.value}"


@dataclass(frozen=True)
class AgeTerm:
    """``lo <(=) age_mid <(=) hi``; either bound may be None. ``negated`` inverts (age known)."""

    lo: float | None
    lo_inclusive: bool
    hi: float | None
    hi_inclusive: bool
    negated: bool = False

    def __post_init__(self) -> None:
        # one spelling per meaning: numbers as floats, no inclusivity flag on a missing bound
        object.__setattr__(self, "lo", None if self.lo is None else float(self.lo))
        object.__setattr__(self, "hi", None if self.hi is None else float(self.hi))
        if self.lo is None:
            object.__setattr__(self, "lo_inclusive", False)
        if self.hi is None:
            object.__setattr__(self, "hi_inclusive", False)

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>=' if self.lo_inclusive else '>'} {_fmt(self.lo)}")
        if self.hi is not None:
            parts.append(f"{'<=' if self.hi_inclusive else '<'} {_fmt(self.hi)}")
        text = "age (middle of AgeRange) " + " and ".join(parts)
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

    def describe(self) -> str:
        if self.hi is None:
            text = f"{self.lo} or more faces"
        elif self.lo == self.hi:
            text = f"exactly {self.lo} face{'s' if self.lo != 1 else ''}"
        else:
            text = f"{self.lo} to {self.hi} faces"
        return f"not {text}" if self.negated else text


FaceTerm = BoolTerm | GenderTerm | EmotionTerm | AgeTerm


@dataclass(frozen=True)
class Query:
    text: str
    face_terms: tuple[FaceTerm, ...] = ()
    image_terms: tuple[FaceCountTerm, ...] = ()
    min_confidence: float = DEFAULT_MIN_CONFIDENCE

    def attributes(self) -> set[str]:
        """The FaceDetail keys this query reads (what an engine must fill to answer it)."""
        keys: set[str] = set()
        for term in self.face_terms:
            if isinstance(term, BoolTerm):
                keys.add(term.key)
            elif isinstance(term, GenderTerm):
                keys.add("Gender")
            elif isinstance(term, EmotionTerm):
                keys.add("Emotions")
            elif isinstance(term, AgeTerm):
                keys.add("AgeRange")
        return keys

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


# -- tokenizer -------------------------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    """Lower-case tokens; hyphenated words split (``non-smiling`` -> ``non smiling``) unless known."""
    out: list[str] = []
    for raw in _TOKEN_RE.findall(text.lower()):
        if raw in (",", ";"):
            continue
        token = raw.rstrip(".!?") or raw
        token = token.replace("’", "'")
        if _EXACT_RE.match(token) or _RANGE_RE.match(token) or token in _PHRASES:
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


# -- parser ----------------------------------------------------------------------------------


def _vocabulary() -> list[str]:
    words = set(_PHRASES) | set(_DECADES) | set(NEGATIONS) | {c for c in _COMPARATORS}
    words |= {"aged", "between", "age", "gender", "emotion", "faces"}
    words |= {f"{name}=" for name in ("gender", "emotion", "age", "faces")}
    words |= set(_EXACT_BOOLEANS)
    return sorted(words)


def _unknown(word: str) -> QueryError:
    candidates = _vocabulary()
    best = difflib.get_close_matches(word, candidates, n=1, cutoff=0.5) or difflib.get_close_matches(
        word, candidates, n=1, cutoff=0.0
    )
    hint = f"; did you mean {best[0]!r}?" if best else ""
    return QueryError(f"unknown word {word!r} in query{hint}")


def _number(token: str | None) -> float | None:
    if token is None:
        return None
    if token in _NUMBER_WORDS:
        return float(_NUMBER_WORDS[token])
    if re.fullmatch(_NUM, token):
        value = float(token)
        return value if math.isfinite(value) else None
    return None


def _decade(token: str) -> int | None:
    if token in _DECADES:
        return _DECADES[token]
    match = re.fullmatch(r"(\d0)'?s", token)
    return int(match.group(1)) if match else None


class _Parser:
    def __init__(self, text: str, min_confidence: float):
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0
        self.min_confidence = min_confidence
        self.face: list[FaceTerm] = []
        self.image: list[FaceCountTerm] = []

    # helpers
    def peek(self, offset: int = 0) -> str | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def match_phrase(self, table: dict[str, Any]) -> tuple[str, int] | None:
        """Longest phrase of ``table`` starting at the cursor: (phrase, number of tokens)."""
        for length in (3, 2, 1):
            words = self.tokens[self.pos : self.pos + length]
            if len(words) == length and " ".join(words) in table:
                return " ".join(words), length
        return None

    def add_face(self, term: FaceTerm) -> None:
        if term not in self.face:
            self.face.append(term)

    def add_image(self, term: FaceCountTerm) -> None:
        if term not in self.image:
            self.image.append(term)

    def parse(self) -> Query:
        while self.pos < len(self.tokens):
            self.term(negated=False)
        if not self.face and not self.image:
            raise QueryError(f"query {self.text!r} asks for nothing: name an attribute, e.g. 'smiling women over 40'")
        return Query(self.text, tuple(self.face), tuple(self.image), self.min_confidence)

    def term(self, negated: bool) -> None:
        token = self.tokens[self.pos]

        # negation: applies to the next term (fillers in between are skipped: "without any glasses").
        # A loop, not a recursion per word: "not not ... smiling" must not exhaust the stack.
        while token in NEGATIONS and not self._is_no_faces():
            self.pos += 1
            while self.peek() in FILLERS:
                self.pos += 1
            if self.peek() is None:
                raise QueryError(f"{token!r} at the end of the query negates nothing")
            negated = not negated
            token = self.tokens[self.pos]

        # exact terms for scripts
        if token.startswith("-") and len(token) > 1 and not _RANGE_RE.match(token):
            name = token[1:]
            self.pos += 1
            if name in _EXACT_BOOLEANS:
                self.add_face(BoolTerm(_EXACT_BOOLEANS[name], negated))
                return
            if name not in _PHRASES:
                raise _unknown(token)
            self.tokens.insert(self.pos, name)
            self.term(negated=not negated)
            return
        if token in _EXACT_BOOLEANS and token not in _PHRASES:
            self.pos += 1
            self.add_face(BoolTerm(_EXACT_BOOLEANS[token], not negated))
            return
        exact = _EXACT_RE.match(token)
        if exact:
            self.pos += 1
            self.exact(exact.group("name"), exact.group("op"), exact.group("value"), negated, token)
            return

        # "no faces", "N faces", comparisons, ranges, decades
        if self._is_no_faces():
            self.pos += 2
            self.add_image(FaceCountTerm(0, 0, negated))
            return
        if self.number_term(negated):
            return
        decade = _decade(token)
        if decade is not None:
            self.pos += 1
            lo = 13 if token == "teens" else decade
            self.add_face(AgeTerm(lo, True, decade + 10, False, negated))
            return
        if token in ("aged", "age", "ages", "between", "from"):
            if self.age_words(token, negated):
                return

        phrase = self.match_phrase(_PHRASES)
        if phrase is not None:
            text, length = phrase
            self.pos += length
            self.meaning(_PHRASES[text], negated, text)
            return

        if token in FILLERS:
            if negated:
                raise QueryError(f"negation before {token!r} negates nothing")
            self.pos += 1
            return
        if token == "or":
            raise QueryError("'or' is not supported: every term of a query must hold (run two searches instead)")
        raise _unknown(token)

    def _is_no_faces(self) -> bool:
        return self.peek() in ("no", "zero", "without") and self.peek(1) in ("faces", "face", "people", "person")

    def meaning(self, meaning: tuple, negated: bool, text: str) -> None:
        kind = meaning[0]
        if kind == "bool":
            self.add_face(BoolTerm(meaning[1], meaning[2] != negated))
        elif kind == "shaven":
            if negated:
                raise QueryError("'not clean-shaven' is not supported: ask for 'beard' or 'mustache'")
            self.add_face(BoolTerm("Beard", False))
            self.add_face(BoolTerm("Mustache", False))
        elif kind == "clear glasses":
            self.add_face(BoolTerm("Eyeglasses", not negated))
            if not negated:
                self.add_face(BoolTerm("Sunglasses", False))
        elif kind == "gender":
            value = meaning[1]
            if negated:
                value = "Female" if value == "Male" else "Male"
            self.add_face(GenderTerm(value))
        elif kind == "emotion":
            self.add_face(EmotionTerm(meaning[1], negated))
        elif kind == "age":
            self.add_face(AgeTerm(meaning[1], meaning[2], meaning[3], meaning[4], negated))
        elif kind == "faces":
            self.add_image(FaceCountTerm(meaning[1], meaning[2], negated))
        else:  # pragma: no cover
            raise QueryError(f"cannot use {text!r} here")

    def _faces_follow(self, offset: int) -> int:
        """Number of tokens of a 'faces' word at ``offset`` (0 if none)."""
        return 1 if self.peek(offset) in ("faces", "face", "people", "persons") else 0

    def number_term(self, negated: bool) -> bool:
        """``over 40``, ``3 faces``, ``3 or more faces``, ``at least 3 faces``, ``20-30``, ``40 and over``."""
        comparator = self.match_phrase(_COMPARATORS)
        start = self.pos
        op = None
        if comparator is not None and comparator[0] not in ("or more", "or older", "or less", "or fewer", "or younger"):
            op = _COMPARATORS[comparator[0]]
            offset = comparator[1]
            value = _number(self.peek(offset))
            if value is None:
                raise QueryError(
                    f"{comparator[0]!r} must be followed by a number, e.g. '{comparator[0]} 40' or '{comparator[0]} 2 faces'"
                )
            offset += 1
        else:
            token = self.peek()
            range_match = _RANGE_RE.match(token or "")
            if range_match:
                lo, hi = _range_bounds(range_match, token)
                if lo > hi:
                    raise QueryError(f"range {token!r} is empty: write the smaller number first")
                faces = self._faces_follow(1)
                self.pos += 1 + faces
                self._skip_years()
                if faces:
                    self.add_image(_face_range(lo, hi, negated, token))
                else:
                    self.add_face(AgeTerm(lo, True, hi, True, negated))
                return True
            value = _number(token)
            if value is None:
                return False
            offset = 1
            trailing = self.match_phrase_at(offset, _COMPARATORS)
            if trailing is not None:
                op = _COMPARATORS[trailing[0]]
                offset += trailing[1]
        faces = self._faces_follow(offset)
        if not faces and op is None:
            # a bare number: "40 year old" means aged 40, "3" alone is unclear
            if self.peek(offset) in ("years", "year", "yo", "y/o"):
                self.pos = start + offset
                self._skip_years()
                self.add_face(AgeTerm(value, True, value + 1, False, negated))
                return True
            raise QueryError(
                f"number {self.peek(offset - 1)!r} alone is unclear: write 'over {_fmt(value)}', "
                f"'aged {_fmt(value)}' or '{_fmt(value)} faces'"
            )
        self.pos = start + offset + faces
        if faces:
            if value != int(value) or value < 0:
                raise QueryError(f"a number of faces must be a whole number, not {_fmt(value)}")
            n = int(value)
            lo, hi = {"=": (n, n), None: (n, n), ">": (n + 1, None), ">=": (n, None), "<": (0, n - 1), "<=": (0, n)}[op]
            if hi is not None and hi < lo:
                raise QueryError(f"no image can have fewer than {n} faces")
            self.add_image(FaceCountTerm(lo, hi, negated))
        else:
            self._skip_years()
            self.add_face(_age_compare(op, value, negated))
        return True

    def match_phrase_at(self, offset: int, table: dict[str, Any]) -> tuple[str, int] | None:
        saved = self.pos
        self.pos += offset
        try:
            return self.match_phrase(table)
        finally:
            self.pos = saved

    def _skip_years(self) -> None:
        while self.peek() in ("years", "year", "old", "yo", "y/o", "of", "age"):
            # "of age" only after a number: "18 years of age"
            self.pos += 1

    def age_words(self, token: str, negated: bool) -> bool:
        """``aged 20-30``, ``aged 20 to 30``, ``between 20 and 30``, ``aged 40``, ``age 30s``."""
        nxt = self.peek(1)
        if nxt is None:
            raise QueryError(f"{token!r} must be followed by an age, e.g. '{token} 20-30'")
        decade = _decade(nxt)
        range_match = _RANGE_RE.match(nxt)
        if decade is not None:
            self.pos += 2
            self.add_face(AgeTerm(decade, True, decade + 10, False, negated))
            return True
        if range_match:
            lo, hi = _range_bounds(range_match, nxt)
            if lo > hi:
                raise QueryError(f"range {nxt!r} is empty: write the smaller number first")
            self.pos += 2
            self._skip_years()
            self.add_face(AgeTerm(lo, True, hi, True, negated))
            return True
        lo = _number(nxt)
        if lo is None:
            if token in ("age", "ages") and (self.match_phrase_at(1, _COMPARATORS) is not None):
                self.pos += 1  # "age over 40"
                return self.number_term(negated)
            raise QueryError(f"{token!r} must be followed by an age, e.g. '{token} 20-30', not {nxt!r}")
        if self.peek(2) in ("and", "to", "-") and _number(self.peek(3)) is not None:
            hi = _number(self.peek(3))
            assert hi is not None
            if token == "between" and self._faces_follow(4):
                self.pos += 5
                self.add_image(_face_range(lo, hi, negated, f"between {_fmt(lo)} and {_fmt(hi)}"))
                return True
            if lo > hi:
                raise QueryError(f"'{_fmt(lo)} to {_fmt(hi)}' is empty: write the smaller number first")
            self.pos += 4
            self._skip_years()
            self.add_face(AgeTerm(lo, True, hi, True, negated))
            return True
        if token == "between":
            raise QueryError("'between' must be followed by 'N and M', e.g. 'between 20 and 30'")
        self.pos += 2
        self._skip_years()
        self.add_face(AgeTerm(lo, True, lo + 1, False, negated))
        return True

    def exact(self, name: str, op: str, value: str, negated: bool, token: str) -> None:
        """``beard=false``, ``gender:male``, ``age>40``, ``age:30-40``, ``emotion:happy``, ``faces>=3``."""
        if op == "!=":
            negated, op = not negated, "="
        if op == "==":
            op = "="
        if name in _EXACT_BOOLEANS:
            if op not in ("=", ":"):
                raise QueryError(f"{token!r}: a yes/no attribute takes '=true' or '=false'")
            if value in _TRUE:
                flag = True
            elif value in _FALSE:
                flag = False
            else:
                raise QueryError(f"{token!r}: {name} must be true or false, not {value!r}")
            self.add_face(BoolTerm(_EXACT_BOOLEANS[name], flag != negated))
            return
        if name == "gender":
            meaning = _PHRASES.get(value)
            if op not in ("=", ":") or meaning is None or meaning[0] != "gender":
                raise QueryError(f"{token!r}: gender must be male or female")
            self.meaning(meaning, negated, token)
            return
        if name in ("emotion", "emotions"):
            meaning = _PHRASES.get(value)
            if meaning is None and value.upper() in EMOTIONS:
                meaning = ("emotion", value.upper())
            if op not in ("=", ":") or meaning is None or meaning[0] != "emotion":
                raise QueryError(f"{token!r}: emotion must be one of {', '.join(e.lower() for e in EMOTIONS)}")
            self.meaning(meaning, negated, token)
            return
        if name in ("age", "faces", "face_count", "face-count"):
            range_match = _RANGE_RE.match(value)
            number = _number(value)
            if range_match and op in ("=", ":"):
                lo, hi = _range_bounds(range_match, token)
                if lo > hi:
                    raise QueryError(f"{token!r}: the range is empty, write the smaller number first")
                if name == "age":
                    self.add_face(AgeTerm(lo, True, hi, True, negated))
                else:
                    self.add_image(_face_range(lo, hi, negated, token))
                return
            if number is None:
                raise QueryError(f"{token!r}: {name} needs a number or a range like {name}:2-4")
            if name == "age":
                if op in ("=", ":"):
                    self.add_face(AgeTerm(number, True, number + 1, False, negated))
                else:
                    self.add_face(_age_compare(op, number, negated))
                return
            if number != int(number):
                raise QueryError(f"{token!r}: a number of faces must be a whole number")
            n = int(number)
            lo, hi = {"=": (n, n), ":": (n, n), ">": (n + 1, None), ">=": (n, None), "<": (0, n - 1), "<=": (0, n)}[op]
            if hi is not None and hi < lo:
                raise QueryError(f"{token!r}: no image has fewer than 0 faces")
            self.add_image(FaceCountTerm(lo, hi, negated))
            return
        raise _unknown(token)


def _range_bounds(match: re.Match, text: str) -> tuple[float, float]:
    """The two numbers of ``N-M``; found by fuzzing: a 400-digit bound was ``inf`` (then an
    OverflowError turning it into a face count)."""
    lo, hi = _number(match.group(1)), _number(match.group(2))
    if lo is None or hi is None:
        raise QueryError(f"{text!r}: number too large")
    return lo, hi


def _face_range(lo: float, hi: float, negated: bool, text: str) -> FaceCountTerm:
    """``lo..hi`` faces; found by fuzzing: ``between 5 and 3 faces`` was silently empty and
    ``1.5-3 faces`` silently became ``1-3``."""
    if lo != int(lo) or hi != int(hi):
        raise QueryError(f"{text!r}: a number of faces must be a whole number")
    if lo > hi:
        raise QueryError(f"{text!r}: the range is empty, write the smaller number first")
    return FaceCountTerm(int(lo), int(hi), negated)


def _age_compare(op: str | None, value: float, negated: bool) -> AgeTerm:
    if op == ">":
        return AgeTerm(value, False, None, False, negated)
    if op == ">=":
        return AgeTerm(value, True, None, False, negated)
    if op == "<":
        return AgeTerm(None, False, value, False, negated)
    if op == "<=":
        return AgeTerm(None, False, value, True, negated)
    return AgeTerm(value, True, value + 1, False, negated)


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
    return _Parser(text.strip(), threshold).parse()


# -- compiler --------------------------------------------------------------------------------


def _term_condition(term: FaceTerm, threshold: float, faces: Any) -> Any:
    from sqlalchemy import and_, literal, not_, or_

    c = faces.c if hasattr(faces, "c") else faces
    if isinstance(term, BoolTerm):
        stem = BOOLEANS[term.key][0]
        value_col, conf_col = getattr(c, stem), getattr(c, f"{stem}_confidence")
        # "= true/false" (not IS), so the (value, confidence) index is used; NULL matches nothing.
        return and_(value_col == literal(term.value), conf_col >= literal(threshold))
    if isinstance(term, GenderTerm):
        return and_(c.gender == literal(term.value), c.gender_confidence >= literal(threshold))
    if isinstance(term, EmotionTerm):
        holds = and_(c.emotion == literal(term.value), c.emotion_confidence >= literal(threshold))
        if term.negated:
            return and_(c.emotion.is_not(None), not_(holds))
        return holds
    if isinstance(term, AgeTerm):
        parts = []
        if term.lo is not None:
            parts.append(c.age_mid >= literal(term.lo) if term.lo_inclusive else c.age_mid > literal(term.lo))
        if term.hi is not None:
            parts.append(c.age_mid <= literal(term.hi) if term.hi_inclusive else c.age_mid < literal(term.hi))
        if not parts:
            parts.append(c.age_mid.is_not(None))
        if term.negated:
            return and_(c.age_mid.is_not(None), or_(*[not_(p) for p in parts]))
        return and_(*parts)
    raise TypeError(term)  # pragma: no cover


def face_condition(query: Query, faces: Any = None) -> Any | None:
    """One SQL condition on a faces row: every face term holds on it. None without face terms."""
    from sqlalchemy import and_

    if faces is None:
        from .store.models import Face

        faces = Face.__table__
    if not query.face_terms:
        return None
    return and_(*[_term_condition(term, query.min_confidence, faces) for term in query.face_terms])


def image_conditions(query: Query, images: Any = None, *, face_count: Any = None) -> list[Any]:
    """SQL conditions on an images row for the image-level terms (face counts).

    ``face_count`` replaces the column by an expression of it (e.g. ``face_count + 0``, which
    keeps a planner from using the face-count index when a walk in URI order is cheaper)."""
    from sqlalchemy import and_, literal, not_

    if images is None:
        from .store.models import Image

        images = Image.__table__
    column = images.c.face_count if face_count is None else face_count
    out = []
    for term in query.image_terms:
        parts = [column >= literal(term.lo)]
        if term.hi is not None:
            parts.append(column <= literal(term.hi))
        condition = and_(*parts)
        out.append(not_(condition) if term.negated else condition)
    return out


def match_confidence(query: Query, faces: Any = None) -> list[Any]:
    """The confidence columns of the query's face terms (what ``--order confidence`` ranks on)."""
    if faces is None:
        from .store.models import Face

        faces = Face.__table__
    c = faces.c
    columns = []
    for term in query.face_terms:
        if isinstance(term, BoolTerm):
            columns.append(getattr(c, f"{BOOLEANS[term.key][0]}_confidence"))
        elif isinstance(term, GenderTerm):
            columns.append(c.gender_confidence)
        elif isinstance(term, EmotionTerm) and not term.negated:
            columns.append(c.emotion_confidence)
    return columns

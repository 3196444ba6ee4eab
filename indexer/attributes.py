"""Every attribute of a face, declared once: the registry the store, the query language, search
and every output read.

One entry per key of Rekognition's FaceDetail (``DetectFaces`` with ``Attributes=["ALL"]``) says
which ``faces`` columns hold it, which words and exact terms name it in a query, which index
answers it, and how it shows in a table summary and in a CSV. Each kind of attribute is a small
class that knows how to read its part of a FaceDetail:

* :class:`Boolean` (``{"Value": true, "Confidence": 98.1}``): a value and a confidence column;
* :class:`Category` (``Gender``) and :class:`TopEmotion` (``Emotions``, of which the top one is
  stored): a value and a confidence column;
* :class:`Range` (``AgeRange``): low, high and the middle that queries compare;
* :class:`Measured` and :class:`Number`: numbers kept for output, not searched; ``Landmarks``
  stays in the raw JSON only.

The order of :data:`ATTRIBUTES` is the order of the CSV columns and of the words of a summary.
Adding an attribute is one entry here and a migration that adds its columns and index. This
module is on the search path: standard library only, and the entries are plain dataclasses,
constants compared by identity, without generated ``__eq__`` or ``__repr__`` (each generated
method is compiled at every start; frozen ones take twice as long).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import FaceDetail


@dataclass(eq=False)
class Column:
    """One nullable column of the faces table. ``type``: float, smallint, boolean or string
    (of at most ``length`` characters); :mod:`indexer.store.models` maps it to SQL."""

    name: str
    type: str
    length: int | None = None


def _num(value: Any) -> float | None:
    """A number as a float column holds it (None for anything else, booleans included)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _part(detail: FaceDetail, key: str) -> dict[str, Any]:
    """The object under ``key`` (``{}`` when absent, or when an engine wrote something else)."""
    value = detail.get(key)
    return value if isinstance(value, dict) else {}


def _confidence(column: str) -> str:
    """The column that holds the confidence of ``column``'s value."""
    return f"{column}_confidence"


def split_words(text: str) -> tuple[str, ...]:
    """``"smiling,smile"`` -> ``("smiling", "smile")``: word lists are written as one string."""
    return tuple(word.strip() for word in text.split(",") if word.strip())


@dataclass(eq=False, repr=False)
class Attribute:
    """An attribute kept only in the raw FaceDetail (``Landmarks``): no column, no CSV cell, no word."""

    key: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r})"  # the entry's fields are long word lists

    def columns(self) -> tuple[Column, ...]:
        return ()

    def flatten(self, detail: FaceDetail) -> dict[str, Any]:
        """The typed values of :meth:`columns` for one face; an absent attribute gives NULLs."""
        return {}

    @property
    def csv_columns(self) -> tuple[str, ...]:
        return ()

    def csv_cells(self, detail: FaceDetail) -> dict[str, Any]:
        """The CSV cells of one face, values as the engine wrote them (empty = unknown)."""
        return {}

    def summary(self, detail: FaceDetail, min_confidence: float) -> str | None:
        """A word or two for a table (``smiling``), when the face has something worth saying."""
        return None


@dataclass(eq=False, repr=False)
class Number(Attribute):
    """A number at the top of the FaceDetail (``Confidence``, the detection's)."""

    column: str = ""

    def columns(self) -> tuple[Column, ...]:
        return (Column(self.column, "float"),)

    def flatten(self, detail: FaceDetail) -> dict[str, Any]:
        return {self.column: _num(detail.get(self.key))}

    @property
    def csv_columns(self) -> tuple[str, ...]:
        return (self.column,)

    def csv_cells(self, detail: FaceDetail) -> dict[str, Any]:
        return {self.column: detail.get(self.key)}


@dataclass(eq=False, repr=False)
class Measured(Attribute):
    """An object of numbers (``Pose``: Roll, Yaw, Pitch), one float column each: ``pose_roll``..."""

    prefix: str = ""
    fields: tuple[str, ...] = ()
    in_csv: bool = True

    def _named(self) -> list[tuple[str, str]]:
        return [(field, f"{self.prefix}_{field.lower()}") for field in self.fields]

    def columns(self) -> tuple[Column, ...]:
        return tuple(Column(column, "float") for _field, column in self._named())

    def flatten(self, detail: FaceDetail) -> dict[str, Any]:
        part = _part(detail, self.key)
        return {column: _num(part.get(field)) for field, column in self._named()}

    @property
    def csv_columns(self) -> tuple[str, ...]:
        return tuple(column for _field, column in self._named()) if self.in_csv else ()

    def csv_cells(self, detail: FaceDetail) -> dict[str, Any]:
        part = _part(detail, self.key)
        return {column: part.get(field) for field, column in self._named()} if self.in_csv else {}


@dataclass(eq=False, repr=False)
class Searchable(Attribute):
    """An attribute queries ask about: the column compared, and the one holding its confidence.

    Its index (``ix_faces_<column>``: value, image id, confidence) answers a query of this one
    attribute alone, already in image order; the covering ``ix_faces_search`` holds
    :attr:`search_columns` of every searchable attribute.
    """

    column: str = ""
    #: The names that exact terms use (``smile=true``, ``gender:female``, ``age>40``).
    exact: tuple[str, ...] = ()

    @property
    def confidence_column(self) -> str | None:
        return _confidence(self.column)

    @property
    def search_columns(self) -> tuple[str, ...]:
        return (self.column,) if self.confidence_column is None else (self.column, self.confidence_column)

    @property
    def index(self) -> str:
        return f"ix_faces_{self.column}"

    @property
    def index_columns(self) -> tuple[str, ...]:
        confidence = () if self.confidence_column is None else (self.confidence_column,)
        return (self.column, "image_id", *confidence)


@dataclass(eq=False, repr=False)
class Boolean(Searchable):
    """``{"Value": bool, "Confidence": float}``: a yes/no attribute (``Smile``).

    ``words`` name it holding, ``false_words`` name it not holding (``eyes closed``); ``said``
    is how each value reads in ``--explain`` and in a table; ``shown`` is the value a table names
    (None: neither, it says too little)."""

    words: str = ""
    false_words: str = ""
    said: tuple[str, str] = ("", "")
    shown: bool | None = True

    @property
    def names(self) -> tuple[str, ...]:
        """Exact names: the key, the column (``eyes_open``, ``eyes-open``) and :attr:`exact`."""
        spelled = (self.key.lower(), self.column, self.column.replace("_", "-"), *self.exact)
        return tuple(dict.fromkeys(spelled))

    def columns(self) -> tuple[Column, ...]:
        return (Column(self.column, "boolean"), Column(_confidence(self.column), "float"))

    def flatten(self, detail: FaceDetail) -> dict[str, Any]:
        part = _part(detail, self.key)
        value = part.get("Value")
        confidence = _num(part.get("Confidence"))
        return {self.column: None if value is None else bool(value), _confidence(self.column): confidence}

    @property
    def csv_columns(self) -> tuple[str, ...]:
        return (self.column, _confidence(self.column))

    def csv_cells(self, detail: FaceDetail) -> dict[str, Any]:
        part = _part(detail, self.key)
        value = part.get("Value")
        cell = None if value is None else str(bool(value)).lower()
        return {self.column: cell, _confidence(self.column): part.get("Confidence")}

    def summary(self, detail: FaceDetail, min_confidence: float) -> str | None:
        part = _part(detail, self.key)
        if self.shown is None or part.get("Value") is not self.shown or (part.get("Confidence") or 0) < min_confidence:
            return None
        return self.said[0] if self.shown else self.said[1]


@dataclass(eq=False, repr=False)
class Category(Searchable):
    """``{"Value": "Female", "Confidence": float}``: one of a few values (``Gender``).

    ``values`` maps each value to the words that name it; ``title`` is what people call the
    attribute and ``group`` the key ``indexer stats`` counts its values under."""

    length: int = 16
    values: tuple[tuple[str, str], ...] = ()
    title: str = ""
    group: str = ""

    @property
    def value_words(self) -> dict[str, tuple[str, ...]]:
        return {value: split_words(words) for value, words in self.values}

    def read(self, detail: FaceDetail) -> tuple[Any, Any]:
        """(value, confidence) as the engine wrote them; (None, None) when unknown."""
        part = _part(detail, self.key)
        return part.get("Value"), part.get("Confidence")

    def columns(self) -> tuple[Column, ...]:
        return (Column(self.column, "string", self.length), Column(_confidence(self.column), "float"))

    def flatten(self, detail: FaceDetail) -> dict[str, Any]:
        value, confidence = self.read(detail)
        return {self.column: value, _confidence(self.column): _num(confidence)}

    @property
    def csv_columns(self) -> tuple[str, ...]:
        return (self.column, _confidence(self.column))

    def csv_cells(self, detail: FaceDetail) -> dict[str, Any]:
        value, confidence = self.read(detail)
        return {self.column: value, _confidence(self.column): confidence}

    def summary(self, detail: FaceDetail, min_confidence: float) -> str | None:
        value, confidence = self.read(detail)
        return str(value) if value and (confidence or 0) >= min_confidence else None


class TopEmotion(Category):
    """``[{"Type": "HAPPY", "Confidence": float}, ...]``: every emotion scored; the top one is
    the face's value (the ``emotions`` table keeps them all)."""

    def scores(self, detail: FaceDetail) -> list[tuple[str, float]]:
        """(type, confidence) of every emotion the engine scored."""
        return [
            (str(e["Type"]), float(e["Confidence"]))
            for e in detail.get(self.key) or []
            if e.get("Type") is not None and e.get("Confidence") is not None
        ]

    def read(self, detail: FaceDetail) -> tuple[Any, Any]:
        scores = self.scores(detail)
        return max(scores, key=lambda score: score[1]) if scores else (None, None)


@dataclass(eq=False)
class AgeGroup:
    """Ages named by words (``teenagers``: 13 <= age < 20); a bound of None is open."""

    name: str
    low: float | None
    high: float | None
    words: str


@dataclass(eq=False, repr=False)
class Range(Searchable):
    """``{"Low": 30, "High": 38}`` (``AgeRange``): queries compare its middle, ``<prefix>_mid``."""

    prefix: str = ""
    groups: tuple[AgeGroup, ...] = ()
    title: str = ""
    group: str = ""

    @property
    def confidence_column(self) -> str | None:
        return None

    def columns(self) -> tuple[Column, ...]:
        low, high = (Column(f"{self.prefix}_{end}", "smallint") for end in ("low", "high"))
        return low, high, Column(self.column, "float")

    def flatten(self, detail: FaceDetail) -> dict[str, Any]:
        part = _part(detail, self.key)
        low, high = part.get("Low"), part.get("High")
        return {
            f"{self.prefix}_low": None if low is None else int(low),
            f"{self.prefix}_high": None if high is None else int(high),
            self.column: (low + high) / 2 if low is not None and high is not None else None,
        }

    @property
    def csv_columns(self) -> tuple[str, ...]:
        return (f"{self.prefix}_low", f"{self.prefix}_high")

    def csv_cells(self, detail: FaceDetail) -> dict[str, Any]:
        part = _part(detail, self.key)
        return {f"{self.prefix}_low": part.get("Low"), f"{self.prefix}_high": part.get("High")}

    def summary(self, detail: FaceDetail, min_confidence: float) -> str | None:
        part = _part(detail, self.key)
        low, high = part.get("Low"), part.get("High")
        return f"{low}-{high}" if low is not None and high is not None else None


# -- the registry ----------------------------------------------------------------------------

AGE = Range(
    "AgeRange",
    column="age_mid",
    exact=("age",),
    prefix="age",
    title="age",
    group="age",
    groups=(
        AgeGroup("children", None, 13, "children,child,kids,kid"),
        AgeGroup("teenagers", 13, 20, "teenagers,teenager,teens,teen"),
        AgeGroup("adults", 18, None, "adults,adult,grown-ups,grownups"),
        AgeGroup("seniors", 65, None, "seniors,senior,elderly"),
    ),
)

GENDER = Category(
    "Gender",
    column="gender",
    length=8,
    exact=("gender",),
    title="gender",
    group="gender",
    values=(
        ("Male", "men,man,male,males,guys,guy,gentlemen,gentleman"),
        ("Female", "women,woman,female,females,ladies,lady"),
    ),
)

# Rekognition's Eyeglasses holds for any eyewear, sunglasses included (so does CelebA's label):
# "glasses" is any eyewear, "sunglasses" the dark kind ("eyeglasses", the clear kind, is a
# combination of the two: see indexer.query).
BOOLEANS = (
    Boolean("Smile", column="smile", words="smiling,smile,smiles,smiley,smiled", exact=("smiling",),
            said=("smiling", "not smiling")),
    Boolean("Eyeglasses", column="eyeglasses", words="glasses,eyewear", exact=("glasses",),
            said=("eyeglasses", "no eyeglasses")),
    Boolean("Sunglasses", column="sunglasses", words="sunglasses,shades,sunnies", said=("sunglasses", "no sunglasses")),
    Boolean("Beard", column="beard", words="beard,bearded,beards", said=("beard", "no beard")),
    Boolean("Mustache", column="mustache", words="mustache,moustache,mustaches,moustaches,mustached,moustached",
            exact=("moustache",), said=("mustache", "no mustache")),
    Boolean("EyesOpen", column="eyes_open", words="eyes open,open eyes,open-eyed",
            false_words="eyes closed,closed eyes,eyes shut,shut eyes,closed-eyed", said=("eyes open", "eyes closed"),
            shown=False),
    Boolean("MouthOpen", column="mouth_open", words="mouth open,open mouth,open mouthed,open-mouthed",
            false_words="mouth closed,closed mouth,mouth shut", said=("mouth open", "mouth closed"), shown=None),
    Boolean("FaceOccluded", column="face_occluded", exact=("occluded",), said=("face occluded", "face not occluded"),
            words="occluded,face occluded,occluded face,occluded faces,obscured"),
)

EMOTION = TopEmotion(
    "Emotions",
    column="emotion",
    length=16,
    exact=("emotion", "emotions"),
    title="top emotion",
    group="emotions",
    values=(
        ("HAPPY", "happy,happiness"),
        ("SAD", "sad,sadness,unhappy"),
        ("ANGRY", "angry,anger"),
        ("CONFUSED", "confused,confusion"),
        ("DISGUSTED", "disgusted,disgust"),
        ("SURPRISED", "surprised,surprise"),
        ("CALM", "calm"),
        ("FEAR", "afraid,scared,fear,fearful,frightened"),
    ),
)

#: Every FaceDetail attribute, in the order of the CSV columns and of a summary's words.
ATTRIBUTES: tuple[Attribute, ...] = (
    Number("Confidence", column="confidence"),
    Measured("BoundingBox", prefix="bbox", fields=("Left", "Top", "Width", "Height")),
    AGE,
    GENDER,
    *BOOLEANS,
    EMOTION,
    Measured("Pose", prefix="pose", fields=("Roll", "Yaw", "Pitch")),
    Measured("Quality", prefix="quality", fields=("Brightness", "Sharpness")),
    Measured("EyeDirection", prefix="eye_direction", fields=("Yaw", "Pitch", "Confidence"), in_csv=False),
    Attribute("Landmarks"),
)

#: The attributes queries ask about, in registry order.
SEARCHABLE: tuple[Searchable, ...] = tuple(attribute for attribute in ATTRIBUTES if isinstance(attribute, Searchable))

#: Every attribute key a Rekognition ``FaceDetail`` can carry (``Attributes=["ALL"]``).
ALL_ATTRIBUTES: frozenset[str] = frozenset(attribute.key for attribute in ATTRIBUTES)

#: Every attribute column of the faces table, in registry order.
FACE_COLUMNS: tuple[Column, ...] = tuple(column for attribute in ATTRIBUTES for column in attribute.columns())

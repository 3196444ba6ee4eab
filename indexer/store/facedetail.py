"""Rekognition FaceDetail <-> typed face columns.

Each attribute of the registry (:mod:`indexer.attributes`) flattens its part of a FaceDetail into
the columns queries filter on; the raw JSON is stored as-is beside them, and that raw JSON (plus
``face_id``) is what every output gives back, so the user always sees Rekognition's own shape,
whichever engine ran.
"""

from __future__ import annotations

import json
from typing import Any

from ..attributes import ATTRIBUTES, EMOTION
from ..core import FaceDetail


def face_columns(detail: FaceDetail) -> dict[str, Any]:
    """The typed column values of one FaceDetail. Absent attributes become NULL (unknown)."""
    columns: dict[str, Any] = {}
    for attribute in ATTRIBUTES:
        columns.update(attribute.flatten(detail))
    columns["raw"] = json.dumps(detail, separators=(",", ":"), sort_keys=True)
    return columns


def emotion_rows(detail: FaceDetail) -> list[tuple[str, float]]:
    """(type, confidence) for every emotion the engine scored: the rows of the emotions table."""
    return EMOTION.scores(detail)


def stored_detail(raw: str, face_id: int) -> FaceDetail:
    """The FaceDetail as the engine returned it, plus the ``face_id`` it is stored under."""
    detail = json.loads(raw)
    detail["face_id"] = face_id
    return detail


class StoredFace:
    """One face as read back from the index: its id and the raw FaceDetail JSON, parsed only
    when someone asks for the FaceDetail (JSON Lines output never does: see :meth:`json`)."""

    __slots__ = ("face_id", "raw", "_detail")

    def __init__(self, face_id: int, raw: str) -> None:
        self.face_id = face_id
        self.raw = raw
        self._detail: FaceDetail | None = None

    def detail(self) -> FaceDetail:
        """The FaceDetail plus ``face_id`` (:func:`stored_detail`), parsed once."""
        if self._detail is None:
            self._detail = stored_detail(self.raw, self.face_id)
        return self._detail

    def json(self) -> str:
        """``detail()`` as compact JSON: the text ``json.dumps(detail, separators=(",", ":"),
        ensure_ascii=False)`` gives, spliced from the stored text instead (parsing and
        re-encoding a page of faces was most of a JSON search's time). The stored text is compact
        JSON of an object, so the id goes before its closing brace; a text holding an escape
        (``\\u00e9``, which the output writes unescaped) or an empty object goes the long way."""
        raw = self.raw
        if "\\" in raw or not raw.endswith("}") or raw == "{}":
            return json.dumps(self.detail(), separators=(",", ":"), ensure_ascii=False)
        return f'{raw[:-1]},"face_id":{int(self.face_id)}}}'

"""Rekognition FaceDetail <-> typed face columns.

One function flattens a FaceDetail into the columns queries filter on; the raw JSON is stored
as-is beside them, and that raw JSON (plus ``face_id``) is what every output gives back, so
the user always sees Rekognition's own shape, whichever engine ran.
"""

from __future__ import annotations

import json
from typing import Any

from .models import BOOLEAN_ATTRIBUTES

FaceDetail = dict[str, Any]


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def face_columns(detail: FaceDetail) -> dict[str, Any]:
    """The typed column values of one FaceDetail. Absent attributes become NULL (unknown)."""
    box = detail.get("BoundingBox") or {}
    age = detail.get("AgeRange") or {}
    gender = detail.get("Gender") or {}
    pose = detail.get("Pose") or {}
    quality = detail.get("Quality") or {}
    eye_dir = detail.get("EyeDirection") or {}
    low, high = age.get("Low"), age.get("High")
    columns: dict[str, Any] = {
        "bbox_left": _num(box.get("Left")),
        "bbox_top": _num(box.get("Top")),
        "bbox_width": _num(box.get("Width")),
        "bbox_height": _num(box.get("Height")),
        "confidence": _num(detail.get("Confidence")),
        "age_low": int(low) if low is not None else None,
        "age_high": int(high) if high is not None else None,
        "age_mid": (low + high) / 2 if low is not None and high is not None else None,
        "gender": gender.get("Value"),
        "gender_confidence": _num(gender.get("Confidence")),
        "pose_roll": _num(pose.get("Roll")),
        "pose_yaw": _num(pose.get("Yaw")),
        "pose_pitch": _num(pose.get("Pitch")),
        "quality_brightness": _num(quality.get("Brightness")),
        "quality_sharpness": _num(quality.get("Sharpness")),
        "eye_direction_yaw": _num(eye_dir.get("Yaw")),
        "eye_direction_pitch": _num(eye_dir.get("Pitch")),
        "eye_direction_confidence": _num(eye_dir.get("Confidence")),
    }
    for key, stem in BOOLEAN_ATTRIBUTES.items():
        attribute = detail.get(key) or {}
        value = attribute.get("Value")
        columns[stem] = bool(value) if value is not None else None
        columns[f"{stem}_confidence"] = _num(attribute.get("Confidence"))
    top = top_emotion(detail)
    columns["emotion"] = top[0] if top else None
    columns["emotion_confidence"] = top[1] if top else None
    columns["raw"] = json.dumps(detail, separators=(",", ":"), sort_keys=True)
    return columns


def emotion_rows(detail: FaceDetail) -> list[tuple[str, float]]:
    """(type, confidence) for every emotion the engine scored."""
    return [
        (str(e["Type"]), float(e["Confidence"]))
        for e in detail.get("Emotions") or []
        if e.get("Type") is not None and e.get("Confidence") is not None
    ]


def top_emotion(detail: FaceDetail) -> tuple[str, float] | None:
    rows = emotion_rows(detail)
    return max(rows, key=lambda row: row[1]) if rows else None


def stored_detail(raw: str, face_id: int) -> FaceDetail:
    """The FaceDetail as the engine returned it, plus the ``face_id`` it is stored under."""
    detail = json.loads(raw)
    detail["face_id"] = face_id
    return detail

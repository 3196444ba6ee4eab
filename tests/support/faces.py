"""Rekognition-shaped FaceDetails for fixtures, complete like the real service's output."""

from __future__ import annotations

from typing import Any

EMOTIONS = ("HAPPY", "SAD", "ANGRY", "CONFUSED", "DISGUSTED", "SURPRISED", "CALM", "FEAR")
LANDMARKS = ("eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose")


def _flag(value: bool, confidence: float) -> dict[str, Any]:
    return {"Value": value, "Confidence": confidence}


def face_detail(
    *,
    smile: bool = False,
    eyeglasses: bool = False,
    sunglasses: bool = False,
    beard: bool = False,
    mustache: bool = False,
    eyes_open: bool = True,
    mouth_open: bool = False,
    occluded: bool = False,
    gender: str = "Female",
    age: tuple[int, int] = (25, 35),
    emotion: str = "CALM",
    confidence: float = 99.5,
    attribute_confidence: float = 95.0,
    box: tuple[float, float, float, float] = (0.3, 0.2, 0.25, 0.3),
) -> dict[str, Any]:
    """One FaceDetail as DetectFaces with Attributes=["ALL"] returns it."""
    left, top, width, height = box
    others = [e for e in EMOTIONS if e != emotion]
    emotions = [{"Type": emotion, "Confidence": 90.0}] + [
        {"Type": e, "Confidence": round(10.0 / (i + 2), 3)} for i, e in enumerate(others)
    ]
    return {
        "BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
        "AgeRange": {"Low": age[0], "High": age[1]},
        "Smile": _flag(smile, attribute_confidence),
        "Eyeglasses": _flag(eyeglasses, attribute_confidence),
        "Sunglasses": _flag(sunglasses, attribute_confidence),
        "Gender": {"Value": gender, "Confidence": attribute_confidence},
        "Beard": _flag(beard, attribute_confidence),
        "Mustache": _flag(mustache, attribute_confidence),
        "EyesOpen": _flag(eyes_open, attribute_confidence),
        "MouthOpen": _flag(mouth_open, attribute_confidence),
        "Emotions": emotions,
        "Landmarks": [{"Type": t, "X": left + width * (0.3 + 0.1 * i), "Y": top + height * 0.5} for i, t in enumerate(LANDMARKS)],
        "Pose": {"Roll": 1.5, "Yaw": -4.0, "Pitch": 2.25},
        "Quality": {"Brightness": 78.0, "Sharpness": 86.0},
        "Confidence": confidence,
        "FaceOccluded": _flag(occluded, attribute_confidence),
        "EyeDirection": {"Yaw": 3.0, "Pitch": -2.0, "Confidence": 97.0},
    }

"""A small collection with known faces, written through Store.write, for search tests.

Every face is a complete Rekognition FaceDetail (``DetectFaces`` with ``Attributes=["ALL"]``);
``e-local-engine.jpg`` is written by the ``local`` engine, which fills no Gender, AgeRange, Beard,
Mustache, Eyeglasses, Sunglasses or FaceOccluded (those stay unknown). The expected answers of
the test queries are written down by hand from the table below, not computed.
"""

from __future__ import annotations

import hashlib
from typing import Any

from indexer.core import Analysis, ImageRef
from indexer.errors import ImageError
from indexer.store.repository import ImageOutcome, Store

REKOGNITION = frozenset(
    {"BoundingBox", "AgeRange", "Smile", "Eyeglasses", "Sunglasses", "Gender", "Beard", "Mustache", "EyesOpen",
     "MouthOpen", "Emotions", "Landmarks", "Pose", "Quality", "Confidence", "FaceOccluded", "EyeDirection"}
)
LOCAL = frozenset(
    {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality", "Emotions", "Smile", "EyesOpen", "MouthOpen",
     "EyeDirection"}
)
EMOTIONS = ["HAPPY", "SAD", "ANGRY", "CONFUSED", "DISGUSTED", "SURPRISED", "CALM", "FEAR"]
BOOLEAN_KEYS = ["Smile", "Eyeglasses", "Sunglasses", "Beard", "Mustache", "EyesOpen", "MouthOpen", "FaceOccluded"]


def face(
    gender: str | None = "Female",
    age: tuple[int, int] | None = (30, 38),
    emotion: tuple[str, float] = ("CALM", 90.0),
    engine_keys: frozenset[str] = REKOGNITION,
    **attributes: Any,
) -> dict[str, Any]:
    """A full FaceDetail. Booleans default to False with confidence 99 (EyesOpen to True);
    pass ``Smile=True`` or ``Smile=(True, 40.0)`` to set value and confidence."""
    values: dict[str, tuple[bool, float]] = {key: (False, 99.0) for key in BOOLEAN_KEYS}
    values["EyesOpen"] = (True, 99.0)
    for key, value in attributes.items():
        values[key] = value if isinstance(value, tuple) else (value, 99.0)
    top, top_confidence = emotion
    rest = [e for e in EMOTIONS if e != top]
    share = (100.0 - top_confidence) / len(rest)
    detail: dict[str, Any] = {
        "BoundingBox": {"Width": 0.21, "Height": 0.33, "Left": 0.38, "Top": 0.2},
        "Confidence": 99.99,
        "Landmarks": [
            {"Type": kind, "X": 0.4 + i / 100, "Y": 0.3 + i / 100}
            for i, kind in enumerate(["eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose"])
        ],
        "Pose": {"Roll": 1.5, "Yaw": -3.2, "Pitch": 4.0},
        "Quality": {"Brightness": 81.2, "Sharpness": 92.2},
        "Emotions": [{"Type": top, "Confidence": top_confidence}]
        + [{"Type": e, "Confidence": min(share, top_confidence - 0.01)} for e in rest],
        "EyeDirection": {"Yaw": 2.0, "Pitch": -1.0, "Confidence": 99.0},
    }
    if age is not None:
        detail["AgeRange"] = {"Low": age[0], "High": age[1]}
    if gender is not None:
        detail["Gender"] = {"Value": gender, "Confidence": 99.5}
    for key, (value, confidence) in values.items():
        detail[key] = {"Value": value, "Confidence": confidence}
    return {key: value for key, value in detail.items() if key in engine_keys}


def local_face(**attributes: Any) -> dict[str, Any]:
    return face(gender=None, age=None, engine_keys=LOCAL, **attributes)


P = "s3://photos/t/"

#: uri -> (engine, faces); None instead of faces: the analysis failed.
COLLECTION: dict[str, tuple[str, list[dict[str, Any]] | None]] = {
    P + "a-portrait-smiling-woman.jpg": ("rekognition", [
        face("Female", (30, 38), ("HAPPY", 90.0), Smile=(True, 98.0), Eyeglasses=True),
    ]),
    P + "b-bearded-man.jpg": ("rekognition", [
        face("Male", (40, 50), ("CALM", 80.0), Beard=(True, 97.0), Mustache=(True, 92.0), Smile=(False, 88.0)),
    ]),
    P + "c-group.jpg": ("rekognition", [
        face("Female", (6, 10), ("HAPPY", 85.0), Smile=True),
        face("Male", (60, 72), ("SAD", 77.0), Beard=True, Eyeglasses=True, Smile=(False, 95.0)),
        face("Female", (25, 31), ("SURPRISED", 70.0), Sunglasses=True, Smile=(True, 60.0)),
        face("Male", (14, 18), ("CONFUSED", 55.0), EyesOpen=False, MouthOpen=True, Smile=(False, 90.0)),
    ]),
    P + "d-low-confidence.jpg": ("rekognition", [
        face("Male", (33, 41), ("HAPPY", 45.0), Smile=(True, 40.0), Beard=(False, 45.0)),
    ]),
    P + "e-local-engine.jpg": ("local", [
        local_face(emotion=("CALM", 85.0), Smile=(True, 90.0)),
    ]),
    P + "f-no-faces.jpg": ("rekognition", []),
    P + "g-failed.jpg": ("rekognition", None),
    P + "h-two-men.jpg": ("rekognition", [
        face("Male", (20, 26), ("ANGRY", 75.0), Smile=True),
        face("Male", (50, 60), ("FEAR", 65.0), Beard=True, Smile=(False, 99.0)),
    ]),
    P + "j-teen-smiling.jpg": ("rekognition", [
        face("Female", (13, 17), ("DISGUSTED", 80.0), Smile=True),
    ]),
    P + "k-occluded-senior.jpg": ("rekognition", [
        face("Female", (70, 80), ("CALM", 95.0), FaceOccluded=True, Sunglasses=True, Smile=(False, 85.0)),
    ]),
    P + "l-smiling-bearded-man.jpg": ("rekognition", [
        face("Male", (38, 46), ("HAPPY", 88.0), Smile=True, Beard=True, Mustache=True),
    ]),
}


def uris(*letters: str) -> set[str]:
    """The URIs of the collection whose names start with ``letters`` ('a', 'c', ...)."""
    out = {uri for uri in COLLECTION if uri[len(P)] in letters}
    assert len(out) == len(letters), letters
    return out


def populate(store: Store) -> Store:
    """Write the collection through Store.write (one batch per engine) and record the engines."""
    store.record_engine("rekognition", REKOGNITION)
    store.record_engine("local", LOCAL)
    outcomes = []
    for uri, (engine, faces) in COLLECTION.items():
        ref = ImageRef(uri=uri, size=123_456, fingerprint=hashlib.md5(uri.encode()).hexdigest())
        if faces is None:
            outcomes.append(ImageOutcome(ref=ref, engine=engine, error=ImageError("InvalidImageFormatException", "bad")))
        else:
            outcomes.append(ImageOutcome(ref=ref, engine=engine, analysis=Analysis(faces, 1600, 1200)))
    run_id = store.begin_run("s3://photos/t/", "rekognition")
    written = store.write(outcomes, run_id)
    assert len(written) == len(outcomes)
    return store

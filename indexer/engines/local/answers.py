"""From a probability to Rekognition's answer shapes, for every cue of the offline engine.

Every cue ends as a probability: a measurement becomes one through a logistic centred on a stated
reference (``logistic``), and a probability becomes Rekognition's ``{"Value", "Confidence"}``
(``binary``): the side of 0.5 it falls on, and the probability of that side in percent (50-100).
"""

from __future__ import annotations

import math
from typing import Any


def sigmoid(x: float) -> float:
    """The logistic function, clamped so that extreme inputs cannot overflow ``exp``."""
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


def logistic(value: float, mid: float, scale: float) -> float:
    """P(the state above ``mid``) for a measurement, ``scale`` being the logistic's width."""
    return sigmoid((value - mid) / scale)


def binary(p: float) -> dict[str, Any]:
    """Rekognition's boolean shape: the side of 0.5, and the probability of that side in percent."""
    value = p >= 0.5
    return {"Value": bool(value), "Confidence": float(round(100.0 * (p if value else 1.0 - p), 3))}

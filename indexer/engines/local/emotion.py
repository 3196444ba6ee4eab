"""Facial-expression classifier: 7 FER2013 classes, mapped to Rekognition's emotion names.

Two mini-Xception nets trained on FER2013 are averaged: fer's quantised TFLite model (run with
ai-edge-litert) and the Human library's TF.js graph model (converted to ONNX at install time by
``tfjs_onnx.py``, run with onnxruntime). Both take a 64x64 grey crop scaled to [-1, 1] (fer's
``preprocess_input(v2=True)``, Human's ``emotion.ts``) and output softmax probabilities in the same
class order.

The models were trained on FER2013's framing, so :func:`fer_crop` reproduces that framing from
the face mesh (a detector box is looser and less consistent: on FER crops placed in a photo, the
box-based crop gave 47% balanced accuracy, the mesh-based one 55.5% with fer's model alone;
``bench/engine.py``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

#: fer's class order (``FER._get_labels``).
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: fer class -> Rekognition ``EmotionName``. Rekognition's CONFUSED has no FER class: never emitted.
REKOGNITION_NAMES = {
    "angry": "ANGRY",
    "disgust": "DISGUSTED",
    "fear": "FEAR",
    "happy": "HAPPY",
    "sad": "SAD",
    "surprise": "SURPRISED",
    "neutral": "CALM",
}
SIZE = 64

# FER2013's framing, measured with the mesh on the public FER2013 PrivateTest crops (1619 crops
# with a detected face, upscaled into a photo; medians): the crop's side is 2.61x the mean of the
# inter-ocular distance (eye-corner midpoints; median 0.383 of the side) and the eye-to-mouth
# distance (eye midpoint to mouth-corner midpoint; median 0.384), and its centre lies 0.079 of the
# side above the midpoint between the eye midpoint and the mouth midpoint.
FER_SIDE_PER_FEATURE = 1.0 / 0.383
FER_CENTER_ABOVE = 0.079
# Mesh vertices: eye corners (outer, inner) of each eye, mouth corners.
_EYES = ((33, 133), (362, 263))
_MOUTH = (61, 291)


def fer_crop(gray: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """A SIZE x SIZE grey crop framed as FER2013 frames a face, upright (roll undone).

    ``mesh``: the 468-point MediaPipe mesh in ``gray``'s pixel coordinates (x, y[, z]). Eye and
    mouth distances are used together so that neither yaw (which shrinks the eye distance) nor
    pitch (the eye-mouth distance) alone changes the crop size much.
    """
    import cv2

    from .mesh import _affine

    p = np.asarray(mesh, dtype=np.float64)[:, :2]
    eye_l, eye_r = p[list(_EYES[0])].mean(0), p[list(_EYES[1])].mean(0)
    eyes, mouth = (eye_l + eye_r) / 2.0, p[list(_MOUTH)].mean(0)
    ex = p[_EYES[1][1]] - p[_EYES[0][0]]
    ex /= np.linalg.norm(ex) + 1e-9
    ey = np.array([-ex[1], ex[0]])  # "down" in the face's frame
    feature = (float(np.linalg.norm(eye_r - eye_l)) + float(np.linalg.norm(mouth - eyes))) / 2.0
    side = max(FER_SIDE_PER_FEATURE * feature, 1.0)
    center = (eyes + mouth) / 2.0 - FER_CENTER_ABOVE * side * ey
    m = _affine(center, side, math.atan2(ex[1], ex[0]), SIZE)
    interp = cv2.INTER_AREA if side > SIZE else cv2.INTER_LINEAR
    return cv2.warpAffine(gray, m, (SIZE, SIZE), flags=interp, borderMode=cv2.BORDER_REPLICATE)


#: The two expression nets, averaged with equal weight (no weight is fitted): fer's quantised
#: mini-Xception and Human's shallower, wider one (both oarriaga/face_classification designs, trained apart).
#: Same input (64x64 grey in [-1, 1]) and class order. Measured on FER2013 PrivateTest
#: (bench/engine.py, balanced 7-class accuracy, direct crops / crops in a photo with the mesh crop):
#: fer 65.6% / 55.5%, Human 68.4% / 56.2%, the average 71.3% / 58.6%.
FER_TFLITE = "emotion_model_quantized.tflite"
HUMAN_ONNX = "human_emotion.onnx"


class EmotionModel:
    def __init__(self, directory: Path, threads: int = 1):
        from .detect import _session
        from .mesh import litert_interpreter

        self.it = litert_interpreter(directory / FER_TFLITE, threads)
        self._in = self.it.get_input_details()[0]["index"]
        self._out = self.it.get_output_details()[0]["index"]
        self.human = _session(directory / HUMAN_ONNX, threads)
        self._human_in = self.human.get_inputs()[0].name

    def probabilities(self, gray: np.ndarray) -> np.ndarray:
        """``gray``: a uint8 face crop (any size); returns 7 probabilities in FER_LABELS order."""
        import cv2

        if gray.shape[:2] != (SIZE, SIZE):
            interp = cv2.INTER_AREA if gray.shape[0] > SIZE else cv2.INTER_LINEAR
            gray = cv2.resize(gray, (SIZE, SIZE), interpolation=interp)
        x = ((gray.astype(np.float32) / 255.0 - 0.5) * 2.0)[None, :, :, None]
        self.it.set_tensor(self._in, x)
        self.it.invoke()
        p_fer = _normalised(self.it.get_tensor(self._out)[0])
        p_human = _normalised(self.human.run(None, {self._human_in: x})[0][0])
        return (p_fer + p_human) / 2.0


def _normalised(p: np.ndarray) -> np.ndarray:
    """A probability vector (the quantised model's softmax may not sum to exactly 1)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, None)
    s = p.sum()
    return p / s if s > 0 else np.full(len(FER_LABELS), 1.0 / len(FER_LABELS))

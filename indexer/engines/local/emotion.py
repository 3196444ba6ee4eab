"""Facial-expression classifier from the ``fer`` package (7 FER2013 classes), run with ai-edge-litert.

Input: a 64x64 grey face crop scaled to [-1, 1] (fer's ``preprocess_input(v2=True)``).
Output: softmax probabilities over fer's labels, mapped to Rekognition's emotion names.
"""

from __future__ import annotations

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


class EmotionModel:
    def __init__(self, directory: Path, threads: int = 1):
        from .mesh import litert_interpreter

        self.it = litert_interpreter(directory / "emotion_model_quantized.tflite", threads)
        self._in = self.it.get_input_details()[0]["index"]
        self._out = self.it.get_output_details()[0]["index"]

    def probabilities(self, gray: np.ndarray) -> np.ndarray:
        """``gray``: a uint8 face crop (any size); returns 7 probabilities in FER_LABELS order."""
        import cv2

        if gray.shape[:2] != (SIZE, SIZE):
            interp = cv2.INTER_AREA if gray.shape[0] > SIZE else cv2.INTER_LINEAR
            gray = cv2.resize(gray, (SIZE, SIZE), interpolation=interp)
        x = (gray.astype(np.float32) / 255.0 - 0.5) * 2.0
        self.it.set_tensor(self._in, x[None, :, :, None])
        self.it.invoke()
        p = self.it.get_tensor(self._out)[0].astype(np.float64)
        p = np.clip(p, 0.0, None)
        s = p.sum()
        return p / s if s > 0 else np.full(len(FER_LABELS), 1.0 / len(FER_LABELS))

"""The ``rekognition`` engine (``--engine rekognition``): AWS Rekognition ``DetectFaces``
(:mod:`.engine`) and the preparation that makes each image acceptable to it (:mod:`.images`)."""

from .engine import CAPABILITIES, RekognitionEngine

__all__ = ["CAPABILITIES", "RekognitionEngine"]

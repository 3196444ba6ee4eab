"""MTCNN face detection (Zhang et al. 2016) with facenet-pytorch's weights, run by onnxruntime.

This is a numpy port of ``facenet_pytorch/models/utils/detect_face.py``: an image pyramid through
the P-net, then the R-net and O-net on the surviving candidate crops, with the same NMS steps and
box regressions. Thresholds are MTCNN's published defaults ([0.6, 0.7, 0.7] and pyramid factor
0.709); the only knob is the smallest face size searched for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: MTCNN's published stage thresholds (paper / reference implementation defaults).
THRESHOLDS = (0.6, 0.7, 0.7)
FACTOR = 0.709


def _session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


#: Up to this many boxes, NMS computes every pairwise overlap at once (at most 8 MB of float64)
#: and the greedy pass only reads rows of it; more boxes fall back to row-by-row overlaps.
NMS_MATRIX_LIMIT = 1024


def _overlaps(boxes: np.ndarray, area: np.ndarray, i: np.ndarray | int, rest: np.ndarray, method: str) -> np.ndarray:
    """Overlap of box(es) ``i`` with boxes ``rest`` (MTCNN's +1 pixel convention; IoU or over-min)."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
    h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
    inter = w * h
    if method == "min":
        return inter / np.minimum(area[i], area[rest])
    return inter / (area[i] + area[rest] - inter)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression, highest score first; indices of the boxes kept.

    The same decisions as MTCNN's reference loop (same order, same overlap arithmetic); for up to
    :data:`NMS_MATRIX_LIMIT` boxes the overlaps are computed in one go, which makes it several
    times faster on the P-net's hundreds of candidates.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    order = np.argsort(scores)
    keep = []
    if len(boxes) <= NMS_MATRIX_LIMIT:
        idx = np.arange(len(boxes))
        overlap = _overlaps(boxes, area, idx[:, None], idx[None, :], method)
        suppressed = np.zeros(len(boxes), dtype=bool)
        for i in order[::-1]:
            if suppressed[i]:
                continue
            keep.append(i)
            suppressed |= overlap[i] > threshold
        return np.asarray(keep, dtype=np.int64)
    while order.size > 0:
        i = order[-1]
        keep.append(i)
        rest = order[:-1]
        order = rest[_overlaps(boxes, area, i, rest, method) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _rerec(b: np.ndarray) -> np.ndarray:
    b = b.copy()
    h = b[:, 3] - b[:, 1]
    w = b[:, 2] - b[:, 0]
    side = np.maximum(w, h)
    b[:, 0] = b[:, 0] + w * 0.5 - side * 0.5
    b[:, 1] = b[:, 1] + h * 0.5 - side * 0.5
    b[:, 2] = b[:, 0] + side
    b[:, 3] = b[:, 1] + side
    return b


def _bbreg(b: np.ndarray, reg: np.ndarray) -> np.ndarray:
    b = b.copy()
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    b[:, 0] += reg[:, 0] * w
    b[:, 1] += reg[:, 1] * h
    b[:, 2] += reg[:, 2] * w
    b[:, 3] += reg[:, 3] * h
    return b


def _crops(img: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Square crops (zero-padded outside the image) resized to ``size``, normalised, NCHW."""
    import cv2

    h, w = img.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
    for k, bb in enumerate(boxes):
        x1, y1, x2, y2 = (int(v) for v in bb[:4])
        bw, bh = x2 - x1 + 1, y2 - y1 + 1
        if bw < 2 or bh < 2:
            continue
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2 + 1, w), min(y2 + 1, h)
        if sx2 <= sx1 or sy2 <= sy1:
            continue
        if sx1 == x1 and sy1 == y1 and sx2 == x2 + 1 and sy2 == y2 + 1:
            tmp = img[y1 : y2 + 1, x1 : x2 + 1]
        else:
            tmp = np.zeros((bh, bw, 3), dtype=np.uint8)
            tmp[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = img[sy1:sy2, sx1:sx2]
        interp = cv2.INTER_AREA if bw >= 2 * size else cv2.INTER_LINEAR
        out[k] = cv2.resize(tmp, (size, size), interpolation=interp)
    x = (out.astype(np.float32) - 127.5) * 0.0078125
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class MTCNN:
    def __init__(self, directory: Path, threads: int = 1, min_face_size: int = 24):
        self.pnet = _session(directory / "mtcnn_pnet.onnx", threads)
        self.rnet = _session(directory / "mtcnn_rnet.onnx", threads)
        self.onet = _session(directory / "mtcnn_onet.onnx", threads)
        self.min_face_size = min_face_size

    def detect(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``img``: RGB uint8 HxWx3. Returns boxes (N, 5: x1, y1, x2, y2, score) and points (N, 5, 2)."""
        import cv2

        h, w = img.shape[:2]
        m = 12.0 / self.min_face_size
        minl = min(h, w) * m
        scales = []
        s = m
        while minl >= 12:
            scales.append(s)
            s *= FACTOR
            minl *= FACTOR

        cands = []
        for scale in scales:
            hs, ws = int(h * scale + 1), int(w * scale + 1)
            im = cv2.resize(img, (ws, hs), interpolation=cv2.INTER_AREA).astype(np.float32)
            im = ((im - 127.5) * 0.0078125).transpose(2, 0, 1)[None]
            reg, prob = self.pnet.run(None, {"input": np.ascontiguousarray(im)})
            p = prob[0, 1]
            ys, xs = np.nonzero(p >= THRESHOLDS[0])
            if len(ys) == 0:
                continue
            score = p[ys, xs]
            r = reg[0][:, ys, xs].T
            q1 = np.floor((2 * np.stack([xs, ys], 1) + 1) / scale)
            q2 = np.floor((2 * np.stack([xs, ys], 1) + 12) / scale)
            b = np.concatenate([q1, q2, score[:, None], r], 1).astype(np.float32)
            keep = nms(b[:, :4], b[:, 4], 0.5)
            cands.append(b[keep])
        empty = (np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32))
        if not cands:
            return empty
        b = np.concatenate(cands, 0)
        b = b[nms(b[:, :4], b[:, 4], 0.7)]
        regw = b[:, 2] - b[:, 0]
        regh = b[:, 3] - b[:, 1]
        boxes = np.stack(
            [b[:, 0] + b[:, 5] * regw, b[:, 1] + b[:, 6] * regh, b[:, 2] + b[:, 7] * regw, b[:, 3] + b[:, 8] * regh, b[:, 4]],
            1,
        )
        boxes = _rerec(boxes)

        # R-net
        reg, prob = self.rnet.run(None, {"input": _crops(img, np.trunc(boxes), 24)})
        score = prob[:, 1]
        ok = score > THRESHOLDS[1]
        boxes = np.concatenate([boxes[ok, :4], score[ok, None]], 1)
        reg = reg[ok]
        if len(boxes) == 0:
            return empty
        keep = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = _rerec(_bbreg(boxes[keep], reg[keep]))

        # O-net
        reg, pts, prob = self.onet.run(None, {"input": _crops(img, np.trunc(boxes), 48)})
        score = prob[:, 1]
        ok = score > THRESHOLDS[2]
        boxes = np.concatenate([boxes[ok, :4], score[ok, None]], 1)
        reg, pts = reg[ok], pts[ok]
        if len(boxes) == 0:
            return empty
        bw = boxes[:, 2] - boxes[:, 0] + 1
        bh = boxes[:, 3] - boxes[:, 1] + 1
        px = bw[:, None] * pts[:, :5] + boxes[:, 0:1] - 1
        py = bh[:, None] * pts[:, 5:] + boxes[:, 1:2] - 1
        points = np.stack([px, py], 2)
        boxes = _bbreg(boxes, reg)
        keep = nms(boxes[:, :4], boxes[:, 4], 0.7, "min")
        return boxes[keep].astype(np.float32), points[keep].astype(np.float32)

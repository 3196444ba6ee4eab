#!/usr/bin/env python
"""Benchmark the offline engine's face embedding (dlib's ResNet as ONNX) on identity pairs.

    python bench/identity.py --data ../shared/data
    PYTHONPATH=/path/to/dlib-bin python bench/identity.py --compare-dlib   # by hand, see below

For every image the offline engine finds faces (MTCNN), the largest face gets its MediaPipe mesh,
dlib's 5 points are read from the mesh (``demographics.mesh_points``) and the face is embedded
(``embedding.FaceEmbedder``). The image is decoded as the engine decodes it (``engine.decode``).

Prints, for the public CelebA identity pairs (``celeba_attributes/identity_pairs.txt``, 150 same +
150 different) and for the face_recognition test portraits (``pypi_face_recognition_tests``, all
pairs of its ``labels.csv``):
* AUC of -distance for same vs different;
* accuracy at the default threshold, Similarity >= 80 (a pair with a face missing counts as "no
  match"), and its recall on same / different pairs;
* the best accuracy over all distance thresholds and where it is (a ceiling: it is fitted to
  these very pairs), the equal-error distance, and the calibration figures behind the constants
  of ``embedding.py`` (quantiles of both distributions, a logistic fit of P(same | distance));
* ms per face on one core (onnxruntime intra-op threads = 1): chip extraction + network, and
  the network alone;
* for the CelebA pairs again, the descriptors the engine stores at index time
  (``FaceAnalyzer.analyze_with_descriptors``, largest reported face of each image): how far they
  are from the ones above and the same accuracy figures, so the calibration is checked on what
  the index holds.

``--compare-dlib`` (run by hand; needs ``import dlib``, e.g. the dlib-bin wheel installed with
``pip install --target DIR dlib-bin`` and DIR on PYTHONPATH; never a dependency of the project):
on the same faces, dlib's own ``compute_face_descriptor`` on our chips (max abs difference of the
descriptors: the ONNX rebuild), dlib's own ``get_face_chip`` from the same 5 points (mean pixel
difference of the chips and descriptor distance: the chip rebuild), and dlib's ms per face. With
``--dlib-shape-predictor shape_predictor_5_face_landmarks.dat`` also dlib's own 5-point
landmarks on our face boxes, as the reference pipeline's AUC and accuracy.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import time
from itertools import combinations
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from _attributes import auc  # noqa: E402

THRESHOLD = 80.0


def largest_face_points(analyzer: Any, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(box x1 y1 x2 y2, dlib's 5 points) of the largest face the engine finds, or None.

    The same calls as ``FaceAnalyzer._face`` makes (detector, then the mesh on the detector's box
    and eyes), through the analyzer's public members.
    """
    from indexer.engines.local.demographics import mesh_points

    boxes, points = analyzer.detector.detect(rgb)
    if len(boxes) == 0:
        return None
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    i = int(np.argmax(areas))
    box = np.asarray(boxes[i][:4], dtype=np.float64)
    eyes = np.array([points[i][0], points[i][1]], dtype=np.float64)
    mesh, _flag = analyzer.mesh.landmarks(rgb, box, eyes)
    if not np.all(np.isfinite(mesh)):
        return None
    return box, mesh_points(mesh)


def load_faces(analyzer: Any, paths: list[Path]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """File name -> (rgb, box, 5 points) for every image with a face."""
    from indexer.engines.local.engine import decode

    out = {}
    for p in paths:
        rgb, _w, _h = decode(p.read_bytes())
        found = largest_face_points(analyzer, rgb)
        if found is not None:
            out[p.name] = (rgb, found[0], found[1])
    return out


def embed_all(embedder: Any, faces: dict) -> tuple[dict[str, np.ndarray], list[float], list[float]]:
    """Descriptors by file, and per-face ms (chip + network; network alone), warm session."""
    from indexer.engines.local.embedding import face_chip

    if faces:
        rgb, _box, pts = next(iter(faces.values()))
        embedder.embed(rgb, pts)  # load and warm the session
    desc, total_ms, net_ms = {}, [], []
    for name, (rgb, _box, pts) in faces.items():
        t0 = time.perf_counter()
        chip = face_chip(rgb, pts)
        t1 = time.perf_counter()
        desc[name] = embedder.embed_chips(chip[None])[0]
        t2 = time.perf_counter()
        total_ms.append(1000 * (t2 - t0))
        net_ms.append(1000 * (t2 - t1))
    return desc, total_ms, net_ms


def engine_descriptors(analyzer: Any, paths: list[Path]) -> dict[str, np.ndarray]:
    """File name -> the index-time descriptor of the largest face the engine reports."""
    from indexer.engines.local.engine import decode

    out = {}
    for p in paths:
        details, vectors = analyzer.analyze_with_descriptors(decode(p.read_bytes())[0])
        if details:
            areas = [d["BoundingBox"]["Width"] * d["BoundingBox"]["Height"] for d in details]
            out[p.name] = vectors[int(np.argmax(areas))]
    return out


def pair_distances(pairs: list[tuple[str, str, bool]], desc: dict[str, np.ndarray]) -> list[tuple[float, bool]]:
    """(distance, same) per pair; inf when either face is missing (never a match)."""
    from indexer.engines.local.embedding import distance

    out = []
    for a, b, same in pairs:
        d = distance(desc[a], desc[b]) if a in desc and b in desc else math.inf
        out.append((d, same))
    return out


def logistic_fit(d: np.ndarray, y: np.ndarray, iters: int = 200) -> tuple[float, float]:
    """Maximum-likelihood P(same) = 1 / (1 + exp((d - mid) / scale)) by Newton's method."""
    x = np.stack([np.ones_like(d), d], axis=1)
    w = np.zeros(2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (y - p)
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w += step
        if np.abs(step).max() < 1e-10:
            break
    scale = -1.0 / w[1]
    return w[0] * scale, scale


def report(title: str, rows: list[tuple[float, bool]], calibration: bool) -> None:
    from indexer.engines.local import embedding as em

    d = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows], dtype=bool)
    finite = np.isfinite(d)
    sims = np.where(finite, em.similarity(np.where(finite, d, 0.0)), 0.0)
    pred = sims >= THRESHOLD
    acc = float((pred == y).mean())
    tpr = float(pred[y].mean()) if y.any() else float("nan")
    tnr = float((~pred[~y]).mean()) if (~y).any() else float("nan")
    a = auc([-float(v) if math.isfinite(v) else -1e9 for v in d], [bool(v) for v in y])
    cands = np.unique(d[finite])
    accs = [float(((d <= t) == y).mean()) for t in cands]
    best = int(np.argmax(accs)) if accs else 0
    print(f"\n== {title}: {len(rows)} pairs ({int(y.sum())} same), {int((~finite).sum())} with a face missing")
    print(f"AUC                              {a:.4f}" if a is not None else "AUC n/a")
    print(f"accuracy at Similarity >= {THRESHOLD:.0f}     {100 * acc:.1f}%  (same pairs matched {100 * tpr:.1f}%, "
          f"different pairs rejected {100 * tnr:.1f}%; distance <= {em.distance_for(THRESHOLD):.3f})")
    if accs:
        print(f"best accuracy over thresholds     {100 * accs[best]:.1f}% at distance <= {cands[best]:.3f} "
              f"(Similarity {em.similarity(cands[best]):.1f}; fitted to these pairs: a ceiling)")
    strict = sims >= em.REKOGNITION_STRICT_THRESHOLD
    print(f"at Similarity >= 99: same matched {100 * float(strict[y].mean()):.1f}%, "
          f"different accepted {int(strict[~y].sum())}/{int((~y).sum())}")
    if not calibration or not (y & finite).any() or not (~y & finite).any():
        return
    ds, dd = np.sort(d[y & finite]), np.sort(d[~y & finite])
    q = (0.01, 0.05, 0.10, 0.25, 0.5, 0.75, 0.90, 0.95, 0.99)
    print("distance quantiles  " + "  ".join(f"{p:>5.2f}" for p in q))
    print("  same              " + "  ".join(f"{np.quantile(ds, p):5.3f}" for p in q))
    print("  different         " + "  ".join(f"{np.quantile(dd, p):5.3f}" for p in q))
    print(f"largest same-pair distance {ds[-1]:.3f}, smallest different-pair distance {dd[0]:.3f}")
    # Equal-error distance: where the share of same pairs above it equals different pairs below it.
    grid = np.linspace(0.3, 0.9, 601)
    frr = np.array([(ds > t).mean() for t in grid])
    far = np.array([(dd <= t).mean() for t in grid])
    e = int(np.argmin(np.abs(frr - far)))
    print(f"equal-error distance {grid[e]:.3f} (misses {100 * frr[e]:.1f}%, false matches {100 * far[e]:.1f}%)")
    mid, scale = logistic_fit(d[finite], y[finite].astype(float))
    print(f"logistic fit of P(same | d): midpoint {mid:.3f}, scale {scale:.4f} "
          f"(P = 0.8 at d = {mid - scale * math.log(4):.3f}, P = 0.99 at d = {mid - scale * math.log(99):.3f})")
    print(f"embedding.py: midpoint {em.SIMILARITY_MIDPOINT:.3f}, scale {em.SIMILARITY_SCALE:.4f} "
          f"(80 at d = {em.distance_for(80.0):.3f}, 99 at d = {em.distance_for(99.0):.3f}, "
          f"dlib's 0.6 is Similarity {em.similarity(0.6):.1f})")


def celeba_pairs(folder: Path) -> list[tuple[str, str, bool]]:
    pairs = []
    for line in (folder / "identity_pairs.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        a, b, same = line.split("\t")[:3]
        pairs.append((a, b, same.strip() == "1"))
    return pairs


def portrait_pairs(folder: Path) -> list[tuple[str, str, bool]]:
    with open(folder / "labels.csv", newline="") as fh:
        rows = [(r["file"], r["identity"]) for r in csv.DictReader(fh)]
    return [(a, b, ia == ib) for (a, ia), (b, ib) in combinations(rows, 2)]


def compare_dlib(faces: dict, desc: dict, embedder: Any, models: Path, predictor: str | None,
                 pairs: list[tuple[str, str, bool]]) -> None:
    """dlib's own results on the same faces (hand-run verification; needs ``import dlib``)."""
    import dlib

    from indexer.engines.local.embedding import face_chip

    net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
    sp = dlib.shape_predictor(predictor) if predictor else None
    diffs, chip_px, chip_dist, ms, own = [], [], [], [], {}
    for name, (rgb, box, pts) in faces.items():
        chip = face_chip(rgb, pts)
        t = time.perf_counter()
        ref = np.array(net.compute_face_descriptor(chip), dtype=np.float32)
        ms.append(1000 * (time.perf_counter() - t))
        diffs.append(float(np.abs(ref - desc[name]).max()))
        rect = dlib.rectangle(*(int(round(v)) for v in box))
        rounded = np.round(pts)  # dlib's points are integers: compare chips from the same points
        shape = dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in rounded])
        dchip = np.asarray(dlib.get_face_chip(rgb, shape, 150, 0.25))
        ours = face_chip(rgb, rounded)
        chip_px.append(float(np.abs(dchip.astype(np.float64) - ours).mean()))
        chip_dist.append(float(np.linalg.norm(np.array(net.compute_face_descriptor(dchip)) - embedder.embed_chips(ours[None])[0])))
        if sp is not None:
            own[name] = np.array(net.compute_face_descriptor(rgb, sp(rgb, rect), 0, 0.25))
    print(f"\n== dlib {dlib.__version__} on the same {len(faces)} faces")
    print(f"descriptor max abs difference, ONNX vs dlib on the same chip: max {max(diffs):.2e}, "
          f"median {statistics.median(diffs):.2e}")
    print(f"our chip vs dlib.get_face_chip from the same integer points: mean abs pixel difference "
          f"median {statistics.median(chip_px):.2f}, descriptor distance median {statistics.median(chip_dist):.4f}, "
          f"max {max(chip_dist):.4f}")
    print(f"dlib compute_face_descriptor: {statistics.median(ms):.1f} ms per face (median)")
    if sp is not None:
        report("dlib 5-point landmarks on our boxes, dlib chip and descriptor", pair_distances(pairs, own), False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="evaluation data folder")
    ap.add_argument("--models-dir", default=None, help="model cache (default: the usual cache dir)")
    ap.add_argument("--compare-dlib", action="store_true", help="also run dlib itself (needs import dlib)")
    ap.add_argument("--dlib-shape-predictor", default=None, help="dlib's 5-point .dat, for --compare-dlib")
    args = ap.parse_args(argv)

    from indexer.engines.local import LocalEngine
    from indexer.engines.local.embedding import FaceEmbedder

    data = Path(args.data)
    from indexer.engines.local.models import ensure_installed

    cv2.setNumThreads(1)  # one core for every figure, the chip's warp included
    models = ensure_installed(Path(args.models_dir) if args.models_dir else None)
    engine = LocalEngine(workers=0, models_dir=models)
    analyzer = engine.analyzer()
    embedder = FaceEmbedder(models, threads=1)

    celeba = data / "celeba_attributes"
    if (celeba / "identity_pairs.txt").is_file():
        pairs = celeba_pairs(celeba)
        names = sorted({a for a, _, _ in pairs} | {b for _, b, _ in pairs})
        t = time.perf_counter()
        faces = load_faces(analyzer, [celeba / "images" / n for n in names])
        print(f"CelebA: {len(faces)}/{len(names)} images with a face ({time.perf_counter() - t:.1f} s to detect)")
        desc, total_ms, net_ms = embed_all(embedder, faces)
        print(f"embedding, one core: {statistics.median(total_ms):.1f} ms per face median "
              f"(p95 {np.percentile(total_ms, 95):.1f}; network alone {statistics.median(net_ms):.1f} ms)")
        rows = pair_distances(pairs, desc)
        report("CelebA identity pairs (public half)", rows, True)
        stored = engine_descriptors(analyzer, [celeba / "images" / n for n in names])
        both = sorted(set(stored) & set(desc))
        gap = max((float(np.abs(stored[n] - desc[n]).max()) for n in both), default=float("nan"))
        report(f"CelebA pairs, index-time descriptors ({len(stored)}/{len(names)} images with a reported face; "
               f"max abs difference from the above {gap:.1e} over {len(both)})", pair_distances(pairs, stored), False)
        if args.compare_dlib:
            compare_dlib(faces, desc, embedder, models, args.dlib_shape_predictor, pairs)
    else:
        print(f"no CelebA identity pairs under {celeba}")

    portraits = data / "pypi_face_recognition_tests"
    if (portraits / "labels.csv").is_file():
        pairs = portrait_pairs(portraits)
        names = sorted({a for a, _, _ in pairs} | {b for _, b, _ in pairs})
        faces = load_faces(analyzer, [portraits / "images" / n for n in names])
        desc, total_ms, _ = embed_all(embedder, faces)
        rows = pair_distances(pairs, desc)
        report(f"face_recognition portraits ({len(faces)}/{len(names)} with a face)", rows, False)
        from indexer.engines.local.embedding import similarity

        for (a, b, same), (d, _) in zip(pairs, rows):
            sim = similarity(d) if math.isfinite(d) else 0.0
            print(f"  {a:<26} {b:<26} {'same' if same else 'diff'}  distance {d:.3f}  Similarity {sim:5.1f}")
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scoring the offline engine's face attributes against published labels (used by ``engine.py``).

CelebA (largest face of each crop):
* Gender vs ``Male``; AgeRange's middle vs ``Young`` as an AUC (older middle = not Young);
* eyewear = ``Eyeglasses.Value`` vs ``Eyeglasses`` (CelebA counts sunglasses as eyeglasses, and so
  does Rekognition's ``Eyeglasses``);
* Sunglasses vs our own labels of the public half's eyewear faces (``labels/celeba_sunglasses.txt``:
  dark or tinted lenses = 1); every face not labelled 1 is a negative;
* Beard vs not ``No_Beard``; Mustache vs ``Mustache``; FaceOccluded should be rare (CelebA's faces
  are unoccluded portraits).

WIDER (faces matched to detections one-to-one by IoU >= 0.4): Gender vs Amazon's perceived gender;
AgeRange against the perceived age group, consistent when the range overlaps the group's years
(:data:`AGE_GROUP_YEARS`).

Balanced accuracy is the mean of the recalls of the two classes, so a rare attribute (beards are
~15% of CelebA) cannot score well by always answering "no".
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable

LABELS = Path(__file__).resolve().parent / "labels"

#: Amazon's perceived age groups (widerface-demographics) have no published years; these spans are
#: the common reading of the words, generous at the edges because the groups overlap in people's use.
AGE_GROUP_YEARS: dict[str, tuple[int, int]] = {
    "Young Adult": (16, 30),
    "Adult": (25, 50),
    "Middle age": (40, 65),
    "Senior": (60, 120),
}


def p_true(detail: dict[str, Any], key: str) -> float | None:
    """Probability that boolean attribute ``key`` holds, from Value + Confidence (None if absent)."""
    entry = detail.get(key)
    if not entry:
        return None
    c = entry["Confidence"] / 100.0
    return c if entry["Value"] else 1.0 - c


def auc(scores: list[float], positives: list[bool]) -> float | None:
    """Area under the ROC curve (probability a random positive outscores a random negative)."""
    pos = [s for s, y in zip(scores, positives) if y]
    neg = [s for s, y in zip(scores, positives) if not y]
    if not pos or not neg:
        return None
    ranked = sorted((s, y) for s, y in zip(scores, positives))
    # average ranks for ties
    ranks: dict[float, float] = {}
    i = 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        ranks[ranked[i][0]] = (i + j + 1) / 2.0
        i = j
    rank_sum = sum(ranks[s] for s in pos)
    return (rank_sum - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg))


def balanced(pred: list[bool], truth: list[bool]) -> tuple[float, float, float]:
    """(balanced accuracy, recall on positives, recall on negatives)."""
    tp = sum(p and t for p, t in zip(pred, truth))
    tn = sum((not p) and (not t) for p, t in zip(pred, truth))
    npos = sum(truth)
    nneg = len(truth) - npos
    rp = tp / npos if npos else float("nan")
    rn = tn / nneg if nneg else float("nan")
    return (rp + rn) / 2.0, rp, rn


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100.0 * x:.1f}%"


def sunglasses_labels() -> dict[str, bool]:
    path = LABELS / "celeba_sunglasses.txt"
    out: dict[str, bool] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2:
            out[parts[0]] = parts[1] == "1"
    return out


def _binary_rows(name: str, key: str, faces: list[tuple[dict, bool]], target: str, note: str) -> list[tuple]:
    got = [(d, y) for d, y in faces if d.get(key)]
    if not got:
        return [(f"CelebA {name}", "n/a", target, f"{key} absent")]
    pred = [d[key]["Value"] for d, _ in got]
    truth = [y for _, y in got]
    bal, rp, rn = balanced(pred, truth)
    a = auc([p_true(d, key) or 0.0 for d, _ in got], truth)
    return [(f"CelebA {name} balanced accuracy", _pct(bal), target,
             f"{note}; recall yes {_pct(rp)} ({sum(truth)}) / no {_pct(rn)} ({len(truth) - sum(truth)}); AUC {a:.3f}" if a
             else note)]


def celeba_rows(faces: Iterable[tuple[str, dict[str, int], dict[str, Any]]]) -> list[tuple]:
    """``faces``: (file name, CelebA labels, largest FaceDetail) for every crop with a face."""
    faces = list(faces)
    rows: list[tuple] = []
    with_gender = [(d, lab) for _, lab, d in faces if d.get("Gender")]
    if with_gender:
        ok = sum((d["Gender"]["Value"] == "Male") == (lab["Male"] == 1) for d, lab in with_gender)
        rows.append(("CelebA Gender accuracy", _pct(ok / len(with_gender)), ">= 95%", f"{len(with_gender)} faces vs Male"))
    with_age = [(d, lab) for _, lab, d in faces if d.get("AgeRange")]
    if with_age:
        mids = [(d["AgeRange"]["Low"] + d["AgeRange"]["High"]) / 2.0 for d, _ in with_age]
        old = [lab["Young"] != 1 for _, lab in with_age]
        widths = sorted(d["AgeRange"]["High"] - d["AgeRange"]["Low"] for d, _ in with_age)
        rows.append(("CelebA AgeRange middle vs Young, AUC", f"{auc(mids, old):.3f}", ">= 0.85",
                     f"{len(with_age)} faces; range width median {widths[len(widths) // 2]} years"))
    rows += _binary_rows("eyewear (Eyeglasses)", "Eyeglasses",
                         [(d, lab["Eyeglasses"] == 1) for _, lab, d in faces], ">= 85%", "vs Eyeglasses")
    dark = sunglasses_labels()
    if dark:
        rows += _binary_rows("Sunglasses", "Sunglasses", [(d, dark.get(name, False)) for name, _, d in faces],
                             ">= 80%", f"vs our labels ({sum(dark.values())} dark/tinted of {len(dark)} eyewear)")
    rows += _binary_rows("Beard", "Beard", [(d, lab["No_Beard"] != 1) for _, lab, d in faces], ">= 80%", "vs not No_Beard")
    rows += _binary_rows("Mustache", "Mustache", [(d, lab["Mustache"] == 1) for _, lab, d in faces], ">= 75%", "vs Mustache")
    occluded = [d["FaceOccluded"]["Value"] for _, _, d in faces if d.get("FaceOccluded")]
    if occluded:
        rows.append(("CelebA FaceOccluded true", _pct(sum(occluded) / len(occluded)), "<= 3%", f"{len(occluded)} faces"))
    return rows


def read_demographics(folder: Path) -> dict[tuple[str, int], dict[str, str]]:
    """(image path relative to ``folder``, 0-based face index) -> perceived gender and age group."""
    out = {}
    with open(folder / "demographics_val.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            out[(row["file"], int(row["face"]))] = {"gender": row["perceived_gender"], "age": row["perceived_age"]}
    return out


def wider_rows(matched: Iterable[tuple[dict[str, Any], dict[str, str]]]) -> list[tuple]:
    """``matched``: (FaceDetail, perceived labels) for each labelled WIDER face a detection matched."""
    matched = list(matched)
    rows: list[tuple] = []
    gendered = [(d, lab["gender"]) for d, lab in matched if lab["gender"] in ("Male", "Female") and d.get("Gender")]
    if gendered:
        ok = sum(d["Gender"]["Value"] == g for d, g in gendered)
        rows.append(("WIDER Gender vs perceived", _pct(ok / len(gendered)), ">= 85%", f"{len(gendered)} matched faces"))
    aged = [(d, AGE_GROUP_YEARS[lab["age"]]) for d, lab in matched if lab["age"] in AGE_GROUP_YEARS and d.get("AgeRange")]
    if aged:
        inside = sum(d["AgeRange"]["Low"] <= hi and d["AgeRange"]["High"] >= lo for d, (lo, hi) in aged)
        groups = ", ".join(f"{k} {lo}-{hi}" for k, (lo, hi) in AGE_GROUP_YEARS.items())
        rows.append(("WIDER AgeRange consistent with perceived group", _pct(inside / len(aged)), "report",
                     f"{len(aged)} faces; groups read as {groups}"))
    return rows


def pairs(dets: list[tuple], gts: list[tuple], iou, thr: float = 0.4) -> list[tuple[int, int]]:
    """Greedy one-to-one matches (detection index, ground-truth index), best detection score first."""
    used: set[int] = set()
    out = []
    for di in sorted(range(len(dets)), key=lambda i: -dets[i][4]):
        best, bi = 0.0, -1
        for gi, g in enumerate(gts):
            if gi in used:
                continue
            v = iou(dets[di], g)
            if v > best:
                best, bi = v, gi
        if best >= thr:
            used.add(bi)
            out.append((di, bi))
    return out

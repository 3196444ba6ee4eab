"""Eyewear, facial hair and occlusion of the offline engine (``appearance.py``).

Region helpers are tested on generated images. The face tests use skimage's ``astronaut`` (Eileen
Collins: a woman, no glasses, no beard) and edits of it painted from the face's own mesh that must
flip the answer: dark lenses, a thin frame, a beard, a flat cover over the lower face, a crop that
cuts the mouth off. They need the model cache (the ``models`` fixture skips without it).
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from indexer.core import ImageRef
from indexer.engines.local import appearance as ap
from indexer.engines.local.answers import binary

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the sample photos")

REF = ImageRef(uri="mem://image", size=0, fingerprint="x")
KEYS = ("Eyeglasses", "Sunglasses", "Beard", "Mustache", "FaceOccluded")


# ------------------------------------------------------------------ helpers on generated images


def _synthetic_mesh(eye_l=(100.0, 120.0), eye_r=(160.0, 120.0)) -> np.ndarray:
    """A 468x3 array whose eye corners put the eye centres at ``eye_l`` / ``eye_r``."""
    mesh = np.zeros((468, 3))
    for (a, b), c in (((33, 133), eye_l), ((362, 263), eye_r)):
        mesh[a, :2] = np.subtract(c, (5.0, 0.0))
        mesh[b, :2] = np.add(c, (5.0, 0.0))
    return mesh


def test_canonical_transform_maps_the_eyes_to_the_canonical_points():
    mesh = _synthetic_mesh((210.0, 95.0), (250.0, 135.0))  # rolled 45 degrees, 56.6 px apart
    m = ap.canonical_transform(mesh)
    left, right = ap.eye_centres(mesh)
    assert np.allclose(m[:, :2] @ left + m[:, 2], ap.CANON_EYE_LEFT)
    assert np.allclose(m[:, :2] @ right + m[:, 2], np.add(ap.CANON_EYE_LEFT, (ap.CANON_IOD, 0.0)))
    assert np.isclose(np.hypot(m[0, 0], m[1, 0]), ap.CANON_IOD / np.hypot(40.0, 40.0))


def test_region_mask_fills_the_polygon():
    pts = np.array([[2.0, 3.0], [11.0, 3.0], [11.0, 8.0], [2.0, 8.0]])
    mask = ap.region_mask(pts, (0, 1, 2, 3), (12, 15))
    assert mask.dtype == bool and mask.sum() == 10 * 6
    assert mask[5, 6] and not mask[0, 0] and not mask[5, 13]


def test_bridge_edge_sees_a_bar_across_the_nose():
    mesh = _synthetic_mesh()
    mesh[ap.BRIDGE_TOP, :2] = (130.0, 115.0)
    mesh[ap.BRIDGE_BOTTOM, :2] = (130.0, 150.0)
    skin = np.full((240, 260, 3), (200, 160, 140), np.uint8)
    bare = ap.bridge_edge(skin, mesh)
    bar = skin.copy()
    bar[124:127, 110:150] = 30
    assert bare < 0.1 < ap.BRIDGE_EDGE_MID < ap.bridge_edge(bar, mesh)


def test_keypoints_outside_counts_cut_off_features():
    mesh = np.full((468, 3), 50.0)
    assert ap.keypoints_outside(mesh, 100, 100) == 0
    mesh[[61, 291, 17], 1] = 130.0  # the mouth below the picture's edge
    assert ap.keypoints_outside(mesh, 100, 100) == 3


def test_visible_sides_drop_the_far_half_of_a_turned_face():
    mesh = _synthetic_mesh()
    assert ap.visible_sides(mesh) == (True, True)
    mesh[263, :2] = mesh[362, :2] + (4.0, 0.0)  # the right eye foreshortened to 4 px of 10
    assert ap.visible_sides(mesh) == (True, False)


def test_lightness_drop_through_a_filter():
    assert ap.lightness_drop_through(1.0) == pytest.approx(0.0, abs=1e-9)
    drops = [ap.lightness_drop_through(t) for t in (0.8, 0.43, 0.18, 0.05)]
    assert drops == sorted(drops) and drops[-1] < ap.SKIN_LIGHTNESS
    assert drops[1] < ap.LENS_DARK_MID < drops[3]  # light tints do not count as dark lenses


def test_answer_is_the_probability_of_the_stated_value():
    assert binary(0.8) == {"Value": True, "Confidence": 80.0}
    assert binary(0.2) == {"Value": False, "Confidence": 80.0}


def test_degenerate_mesh_is_not_answered():
    rgb = np.full((64, 64, 3), 128, np.uint8)
    assert ap.estimate(rgb, np.zeros((468, 3)), 0.5) == {}


# ------------------------------------------------------------------ the astronaut and edits of her


@pytest.fixture(scope="module")
def analyzer(models):
    from indexer.engines.local.analyzer import FaceAnalyzer

    return FaceAnalyzer(models, threads=1)


@pytest.fixture(scope="module")
def astronaut(analyzer):
    """(rgb, mesh) of the astronaut's face, the mesh fitted as ``FaceAnalyzer._face`` does."""
    rgb = skimage_data.astronaut()
    boxes, points = analyzer.detector.detect(rgb)
    i = int(np.argmax([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]))
    eyes = np.array([points[i][0], points[i][1]], dtype=np.float64)
    mesh, _ = analyzer.mesh.landmarks(rgb, np.array(boxes[i][:4], dtype=np.float64), eyes)
    return rgb, mesh


def _poly(mesh: np.ndarray, idx) -> np.ndarray:
    return np.round(mesh[list(idx), :2]).astype(np.int32)


def _iod(mesh: np.ndarray) -> float:
    left, right = ap.eye_centres(mesh)
    return float(np.linalg.norm(right - left))


def _bridge(img: np.ndarray, mesh: np.ndarray, colour, thickness: int) -> None:
    a, b = _poly(mesh, (ap.LENS_LEFT[6], ap.LENS_RIGHT[6]))
    cv2.line(img, tuple(map(int, a)), tuple(map(int, b)), colour, thickness)


def with_sunglasses(rgb, mesh):
    img = rgb.copy()
    for lens in (ap.LENS_LEFT, ap.LENS_RIGHT):
        cv2.fillPoly(img, [_poly(mesh, lens)], (22, 22, 28))
    _bridge(img, mesh, (22, 22, 28), max(2, round(_iod(mesh) / 12)))
    return img


def with_thin_frame(rgb, mesh):
    img = rgb.copy()
    width = max(1, round(_iod(mesh) / 25))
    for lens in (ap.LENS_LEFT, ap.LENS_RIGHT):
        cv2.polylines(img, [_poly(mesh, lens)], True, (15, 15, 15), width)
    _bridge(img, mesh, (15, 15, 15), width)
    return img


def with_beard(rgb, mesh):
    """Dark, noisy hair over the upper lip, chin and jaw (the lips stay)."""
    img = rgb.copy()
    area = np.zeros(rgb.shape[:2], np.uint8)
    for region in (ap.UPPER_LIP, ap.CHIN, ap.JAW_LEFT, ap.JAW_RIGHT):
        cv2.fillPoly(area, [_poly(mesh, region)], 1)
    lips = np.zeros_like(area)
    cv2.fillPoly(lips, [_poly(mesh, ap.LIPS)], 1)
    where = area.astype(bool) & ~lips.astype(bool)
    rng = np.random.default_rng(8)
    hair = rng.normal(45.0, 25.0, (int(where.sum()), 1)) * np.array([[1.0, 0.85, 0.7]])
    img[where] = np.clip(hair, 0, 255).astype(np.uint8)
    return img


#: From below the eyes round the jaw: a surgical-mask-like cover, which also hides the cheeks.
MASK_OUTLINE = (132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323,
                454, 447, 345, 4, 116, 227, 234, 93)


def with_mask(rgb, mesh):
    img = rgb.copy()
    cv2.fillPoly(img, [_poly(mesh, MASK_OUTLINE)], (200, 215, 235))
    return img


def values(result) -> dict[str, bool]:
    return {k: result[k]["Value"] for k in KEYS}


def test_astronaut_has_none_of_them(astronaut):
    rgb, mesh = astronaut
    for p_male in (0.03, None):  # with the gender model's answer, and on the image alone
        got = ap.estimate(rgb, mesh, p_male)
        assert values(got) == dict.fromkeys(KEYS, False), got


def test_dark_lenses_are_sunglasses_eyewear_and_occlusion(astronaut):
    rgb, mesh = astronaut
    got = ap.estimate(with_sunglasses(rgb, mesh), mesh, 0.03)
    assert got["Sunglasses"]["Value"] and got["Eyeglasses"]["Value"], got
    assert got["FaceOccluded"]["Value"], got  # dark sunglasses occlude (Rekognition)
    assert not got["Beard"]["Value"]


def test_thin_frame_is_eyeglasses_not_sunglasses(astronaut):
    rgb, mesh = astronaut
    got = ap.estimate(with_thin_frame(rgb, mesh), mesh, 0.03)
    assert got["Eyeglasses"]["Value"] and not got["Sunglasses"]["Value"], got
    assert not got["FaceOccluded"]["Value"], got  # clear glasses do not occlude


def test_beard_is_weighed_by_gender(astronaut):
    rgb, mesh = astronaut
    bearded = with_beard(rgb, mesh)
    man = ap.estimate(bearded, mesh, 0.97)
    assert man["Beard"]["Value"] and man["Mustache"]["Value"], man
    assert not man["FaceOccluded"]["Value"], man  # a beard is not an occlusion
    woman = ap.probabilities(bearded, mesh, 0.03)
    assert woman["Beard"] < 0.5 and woman["Mustache"] < 0.5
    assert ap.probabilities(rgb, mesh, 0.97)["Beard"] < 0.5  # her own chin is still bare


def test_flat_cover_over_the_lower_face_is_occlusion(astronaut):
    rgb, mesh = astronaut
    got = ap.estimate(with_mask(rgb, mesh), mesh, 0.03)
    assert got["FaceOccluded"]["Value"], got
    assert not got["Beard"]["Value"] and not got["Sunglasses"]["Value"]


def test_face_cut_by_the_picture_edge_is_occlusion(astronaut):
    rgb, mesh = astronaut
    bottom = int(mesh[[61, 291], 1].min()) - 2  # cut just above the mouth corners
    got = ap.estimate(np.ascontiguousarray(rgb[:bottom]), mesh, 0.03)
    assert got["FaceOccluded"]["Value"], got


def test_shapes_are_rekognitions(astronaut):
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("rekognition")
    face_detail = model.shape_for("FaceDetail")
    rgb, mesh = astronaut
    for img in (rgb, with_sunglasses(rgb, mesh), with_beard(rgb, mesh)):
        got = ap.estimate(img, mesh, 0.6)
        assert set(got) == set(KEYS) and set(got) <= set(face_detail.members)
        report = ParamValidator().validate(got, face_detail)
        assert not report.has_errors(), report.generate_report()
        for k in KEYS:
            assert type(got[k]["Value"]) is bool and 50.0 <= got[k]["Confidence"] <= 100.0


# ------------------------------------------------------------------ end to end (detector + mesh + gender)


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def engine(models):
    from indexer.engines.local import LocalEngine

    eng = LocalEngine(workers=0, models_dir=models, auto_install=False)
    yield eng
    eng.close()


def test_engine_reports_sunglasses_on_the_painted_photo(engine, astronaut):
    rgb, mesh = astronaut
    plain = engine.analyze(REF, lambda: _png(rgb)).face_details
    shaded = engine.analyze(REF, lambda: _png(with_sunglasses(rgb, mesh))).face_details
    assert len(plain) == 1 and len(shaded) == 1
    assert values(plain[0]) == dict.fromkeys(KEYS, False), plain[0]
    got = values(shaded[0])
    assert got["Sunglasses"] and got["Eyeglasses"] and not got["Beard"], shaded[0]


def test_search_finds_local_engine_faces_whose_attributes_hold(astronaut, models, tmp_path, monkeypatch):
    """Through the CLI: a folder indexed by the offline engine answers eyewear and facial-hair
    queries with no capability warning, and a query returns exactly the images whose stored
    FaceDetails hold every term on one face."""
    import json

    from PIL import Image
    from typer.testing import CliRunner

    from indexer.cli import app

    rgb, mesh = astronaut
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(rgb).save(folder / "plain.png")
    Image.fromarray(with_sunglasses(rgb, mesh)).save(folder / "sunglasses.png")
    db = f"sqlite:///{tmp_path / 'faces.db'}"
    monkeypatch.setenv("INDEXER_MODELS_DIR", str(models))
    runner = CliRunner()
    assert runner.invoke(app, ["index", str(folder), "--db", db, "--quiet"]).exit_code == 0

    def search(query: str) -> set[str]:
        result = runner.invoke(app, ["search", query, "--db", db, "--format", "uris"])
        assert result.exit_code == 0 and "warning" not in result.stderr, (query, result.stderr)
        return {line.rsplit("/", 1)[1] for line in result.stdout.splitlines()}

    def holding(*keys: str) -> set[str]:
        found = set()
        for name in ("plain.png", "sunglasses.png"):
            shown = json.loads(runner.invoke(app, ["show", str(folder / name), "--db", db, "--json"]).stdout)
            if any(all(f[k]["Value"] and f[k]["Confidence"] >= 50 for k in keys) for f in shown["faces"]):
                found.add(name)
        return found

    assert search("smiling people with sunglasses") == holding("Smile", "Sunglasses") == {"sunglasses.png"}
    assert search("glasses") == {"sunglasses.png"}, "sunglasses are eyewear, as in Rekognition"
    assert search("spectacles") == set(), "dark lenses are not clear glasses"
    assert search("smiling people with beards and sunglasses") == holding("Smile", "Beard", "Sunglasses")

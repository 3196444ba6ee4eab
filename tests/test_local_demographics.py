"""Gender and AgeRange of the offline engine: dlib-style face chip alignment, answer shapes, real faces.

The alignment tests are pure geometry on generated images. The face tests use skimage's
``astronaut`` (Eileen Collins, a woman photographed in her early forties) and need the model cache
(the ``models`` fixture skips without it).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from indexer.core import ImageRef
from indexer.engines.local import demographics as dm

REF = ImageRef(uri="mem://image", size=0, fingerprint="x")


# ------------------------------------------------------------------ alignment (no models)


def _similar(points: np.ndarray, scale: float, angle_deg: float, shift: tuple[float, float]) -> np.ndarray:
    a = math.radians(angle_deg)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * scale
    return points @ r.T + np.array(shift)


def test_similarity_fit_recovers_a_known_transform():
    src = dm.DLIB_5PT_TEMPLATE * 100.0
    dst = _similar(src, 1.7, 25.0, (40.0, -12.0))
    m = dm._similarity(src, dst)
    assert np.allclose(src @ m[:, :2].T + m[:, 2], dst, atol=1e-9)
    assert math.isclose(math.hypot(m[0, 0], m[1, 0]), 1.7, rel_tol=1e-9)
    assert math.isclose(math.degrees(math.atan2(m[1, 0], m[0, 0])), 25.0, rel_tol=1e-9)


def _to_chip(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Chip coordinates of image points under the chip->image affine ``m``."""
    return (points - m[:, 2]) @ np.linalg.inv(m[:, :2]).T


@pytest.mark.parametrize("size", [32, dm.AGE_CHIP_SIZE])
@pytest.mark.parametrize("face_px,angle", [(40.0, 0.0), (180.0, -20.0), (420.0, 35.0)])
def test_chip_transform_maps_the_five_points_onto_dlibs_template(size, face_px, angle):
    points = _similar(dm.DLIB_5PT_TEMPLATE, face_px, angle, (300.0, 260.0))
    m = dm.chip_to_image(points, size)
    template = (dm.CHIP_PADDING + dm.DLIB_5PT_TEMPLATE) / (2 * dm.CHIP_PADDING + 1) * size
    got = _to_chip(m, points)
    # dlib's convention (chip_details + extract_image_chip): chip pixel (size-1)/2 is the image of
    # the template point size/2, and the chip spans size*scale - 1 image px over size - 1 pixels.
    scale = face_px * (2 * dm.CHIP_PADDING + 1) / size  # image px per template unit of the chip
    pitch = (size * scale - 1) / (size - 1)
    expected = (size - 1) / 2.0 + (scale / pitch) * (template - size / 2.0)
    assert np.allclose(got, expected, atol=1e-6)
    assert np.abs(got - template).max() < 1.0  # i.e. on the template to within a pixel


@pytest.mark.parametrize("size", [32, dm.AGE_CHIP_SIZE])
@pytest.mark.parametrize("face_px,angle", [(40.0, 0.0), (180.0, -20.0), (420.0, 35.0)])
def test_chip_pixels_show_each_point_where_the_transform_puts_it(size, face_px, angle):
    """A bright dot at each face point appears in the chip where ``chip_to_image`` says it should.

    Face widths from 40 px (chip upsampled) to 420 px (several pyramid levels for a 32-px chip)
    and rotations both ways exercise every path of ``extract_chip``, including dlib's pyramid
    offset (PYRAMID_QUIRK: content moves by half a pixel of each halved level, right and up in
    the image).
    """
    points = _similar(dm.DLIB_5PT_TEMPLATE, face_px, angle, (300.0, 260.0))
    m = dm.chip_to_image(points, size)
    pitch = math.hypot(m[0, 0], m[1, 0])
    levels = max(0, math.ceil(math.log2(pitch)) - 1) if pitch > 2.0 else 0
    quirk = np.linalg.inv(m[:, :2]) @ (np.array([0.5, -0.5]) * (2**levels - 1))  # image axes -> chip axes
    expected = _to_chip(m, points) + quirk
    yy, xx = np.mgrid[0:640, 0:640]
    sigma = max(2.0, pitch * 1.5)  # a blob about 1.5 chip px wide at every scale
    grid_y, grid_x = np.mgrid[0:size, 0:size]
    for (px, py), (ex, ey) in zip(points, expected):
        blob = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * sigma**2))
        img = np.repeat((255 * blob).astype(np.uint8)[..., None], 3, axis=2)
        chip = dm.extract_chip(img, points, size).astype(np.float64)[..., 0]
        w = chip / chip.sum()
        cx, cy = (w * grid_x).sum(), (w * grid_y).sum()
        assert abs(cx - ex) < 0.3 and abs(cy - ey) < 0.3, ((cx, cy), (ex, ey))


def test_chip_outside_the_image_is_black_and_sized():
    points = _similar(dm.DLIB_5PT_TEMPLATE, 100.0, 0.0, (-40.0, -40.0))  # face mostly off the top-left
    img = np.full((200, 200, 3), 200, np.uint8)
    chip = dm.extract_chip(img, points, dm.AGE_CHIP_SIZE)
    assert chip.shape == (64, 64, 3) and chip.dtype == np.uint8
    assert chip[0, 0].tolist() == [0, 0, 0] and chip[-1, -1].tolist() == [200, 200, 200]


def test_mesh_points_are_dlibs_part_order():
    """Part 0/1 are the image-right eye (outer, inner), 2/3 the image-left eye, 4 the nose base."""
    mesh = np.zeros((468, 3))
    for k, i in enumerate(dm.MESH_5PT):
        mesh[i, :2] = (k, 10 * k)
    assert dm.mesh_points(mesh).tolist() == [[k, 10 * k] for k in range(5)]


# ------------------------------------------------------------------ answers from probabilities


def test_age_range_follows_the_distribution_and_stays_rekognition_wide():
    ages = dm.AGE_VALUES
    peaked = np.exp(-((ages - 30.0) ** 2) / 2.0)
    broad = np.exp(-((ages - 60.0) ** 2) / (2 * 20.0**2))
    rp, rb = dm.age_range(peaked), dm.age_range(broad)
    assert rp["Low"] <= 30 <= rp["High"] and rb["Low"] <= 60 <= rb["High"]
    assert rp["High"] - rp["Low"] == pytest.approx(2 * dm.AGE_MIN_HALF_WIDTH, abs=1)
    assert rb["High"] - rb["Low"] == pytest.approx(2 * dm.AGE_MAX_HALF_WIDTH, abs=1)
    assert dm.age_range(np.eye(81)[0])["Low"] == 0  # a baby: never negative


def test_pooled_age_range_lies_between_the_models_and_widens_when_they_disagree():
    dlib = np.exp(-((dm.AGE_VALUES - 30.0) ** 2) / 2.0)
    agree = np.exp(-((dm.FACERES_AGE_VALUES - 30.0) ** 2) / 2.0)
    older = np.exp(-((dm.FACERES_AGE_VALUES - 50.0) ** 2) / 2.0)
    same, apart = dm.pooled_age_range(dlib, agree), dm.pooled_age_range(dlib, older)
    assert same["Low"] <= 30 <= same["High"]
    assert same["High"] - same["Low"] == pytest.approx(2 * dm.AGE_MIN_HALF_WIDTH, abs=1)
    mid = (apart["Low"] + apart["High"]) / 2
    assert mid == pytest.approx(30 + dm.AGE_MIXTURE_WEIGHT * 20, abs=1)  # the mixture's mean
    assert apart["High"] - apart["Low"] == pytest.approx(2 * dm.AGE_MAX_HALF_WIDTH, abs=1)  # spread 10 y
    assert dm.pooled_age_range(dlib, older, weight=0.0) == dm.age_range(dlib)


def test_mesh_box_is_the_points_bounding_box():
    rng = np.random.default_rng(3)
    mesh = np.column_stack([rng.uniform(50, 90, 468), rng.uniform(20, 140, 468), rng.uniform(-5, 5, 468)])
    x0, y0, x1, y1 = dm.mesh_box(mesh)
    assert (x0, y0, x1, y1) == (mesh[:, 0].min(), mesh[:, 1].min(), mesh[:, 0].max(), mesh[:, 1].max())


@pytest.mark.parametrize("box", [(100.0, 80.0, 140.0, 130.0), (40.0, 30.0, 460.0, 560.0), (-20.0, -10.0, 200.0, 300.0)])
def test_box_crop_stretches_the_box_onto_the_input_square(box):
    """A dot at a known place in the box lands at the same fraction of the crop, for faces smaller
    than the input (upsampled), much larger (pyramid levels) and partly outside the image."""
    size = dm.FACERES_SIZE
    x0, y0, x1, y1 = box
    fx, fy = 0.3, 0.65  # where the dot sits, as fractions of the box
    px, py = x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)  # continuous coordinates: pixel i spans [i, i + 1)
    yy, xx = np.mgrid[0:600, 0:500] + 0.5  # pixel centres
    sigma = max(2.0, 1.5 * (x1 - x0) / size)
    blob = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * sigma**2))
    img = np.repeat((255 * blob).astype(np.uint8)[..., None], 3, axis=2)
    crop = dm.extract_box(img, np.array(box), size)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    w = crop[..., 0].astype(np.float64)
    w /= w.sum()
    gy, gx = np.mgrid[0:size, 0:size] + 0.5
    assert abs((w * gx).sum() - fx * size) < 0.3 and abs((w * gy).sum() - fy * size) < 0.3


def test_faceres_input_is_bgr_minus_imagenet_means():
    crop = np.zeros((4, 4, 3), np.uint8)
    crop[..., 0] = 200  # red
    x = dm._faceres_tensor(crop)
    assert x.shape == (1, 4, 4, 3) and x.dtype == np.float32
    assert np.allclose(x[0, 0, 0], [-dm.FACERES_BGR_MEANS[0], -dm.FACERES_BGR_MEANS[1], 200 - dm.FACERES_BGR_MEANS[2]])


@pytest.mark.parametrize("p_male", [0.0, 0.3, 0.5, 0.77, 1.0])
def test_gender_confidence_is_the_probability_of_the_stated_value(p_male):
    g = dm.gender(p_male)
    assert 50.0 <= g["Confidence"] <= 100.0
    stated = p_male if g["Value"] == "Male" else 1.0 - p_male
    assert g["Confidence"] == pytest.approx(100.0 * stated, abs=1e-3)


# ------------------------------------------------------------------ real faces (models needed)


@pytest.fixture(scope="module")
def engine(models):
    from indexer.engines.local import LocalEngine

    eng = LocalEngine(workers=0, models_dir=models, auto_install=False)
    yield eng
    eng.close()


def _faces(engine, rgb: np.ndarray) -> list[dict]:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    data = buf.getvalue()
    return engine.analyze(REF, lambda: data).face_details


@pytest.fixture(scope="module")
def astronaut():
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the sample photo")
    return skimage_data.astronaut()


def _check_shape(value, shape) -> None:
    """Validate ``value`` against a botocore shape (structure / string enum / float / integer)."""
    if shape.type_name == "structure":
        assert isinstance(value, dict)
        assert set(value) <= set(shape.members), set(value) - set(shape.members)
        for k, v in value.items():
            _check_shape(v, shape.members[k])
    elif shape.type_name == "string":
        assert isinstance(value, str)
        if shape.enum:
            assert value in shape.enum
    elif shape.type_name == "float":
        assert isinstance(value, float)
    elif shape.type_name == "integer":
        assert isinstance(value, int) and not isinstance(value, bool)
    else:  # pragma: no cover - not used by Gender / AgeRange
        raise AssertionError(shape.type_name)


def test_gender_and_age_range_have_rekognitions_shapes(engine, astronaut):
    botocore = pytest.importorskip("botocore.session")
    face_detail = botocore.get_session().get_service_model("rekognition").shape_for("FaceDetail")
    (face,) = _faces(engine, astronaut)
    for key in ("Gender", "AgeRange"):
        assert key in face
        _check_shape(face[key], face_detail.members[key])
    assert 50.0 <= face["Gender"]["Confidence"] <= 100.0
    assert 0 <= face["AgeRange"]["Low"] <= face["AgeRange"]["High"]


def test_astronaut_is_a_woman_in_a_plausible_age_range(engine, astronaut):
    (face,) = _faces(engine, astronaut)
    assert face["Gender"]["Value"] == "Female"
    assert face["Gender"]["Confidence"] >= 80.0
    low, high = face["AgeRange"]["Low"], face["AgeRange"]["High"]
    assert 5 <= high - low <= 16  # a range like Rekognition's, not a point guess
    assert low <= 45 and high >= 35  # overlaps "early forties"


def test_mirrored_face_gets_the_same_answer(engine, astronaut):
    """Same gender and nearly the same age. FaceRes runs once per face (not mirror-averaged, see the
    module docstring), so only the Value, not the Confidence, must agree closely."""
    (face,) = _faces(engine, astronaut)
    (mirror,) = _faces(engine, np.ascontiguousarray(astronaut[:, ::-1]))
    assert mirror["Gender"]["Value"] == face["Gender"]["Value"]
    assert min(mirror["Gender"]["Confidence"], face["Gender"]["Confidence"]) >= 70.0
    mid = (face["AgeRange"]["Low"] + face["AgeRange"]["High"]) / 2
    mid_m = (mirror["AgeRange"]["Low"] + mirror["AgeRange"]["High"]) / 2
    assert abs(mid - mid_m) <= 3.0


def test_faceres_runs_at_the_engines_size_and_reads_the_astronaut_as_a_woman(models, astronaut):
    """The built FaceRes graph takes FACERES_SIZE (not the 224 its TF.js signature pins) and gives
    a probability and a 100-class age distribution; the crop comes from the engine's own mesh."""
    from indexer.engines.local.analyzer import FaceAnalyzer

    analyzer = FaceAnalyzer(models)
    meshes = []
    estimate = analyzer.demographics.estimate
    analyzer.demographics.estimate = lambda rgb, mesh: (meshes.append(np.asarray(mesh)), estimate(rgb, mesh))[1]
    analyzer.analyze(astronaut)
    (mesh,) = meshes
    p_male, p_age = analyzer.demographics.faceres(astronaut, mesh)
    assert 0.0 <= p_male < 0.3
    assert p_age.shape == (100,) and p_age.sum() == pytest.approx(1.0, abs=1e-3)
    assert 25 <= float(p_age @ dm.FACERES_AGE_VALUES) <= 60


def test_faceres_onnx_is_built_deterministically_with_a_free_input_size(models):
    onnx = pytest.importorskip("onnx")
    import hashlib

    from indexer.engines.local.models import DERIVED_FILES, _build

    d = next(d for d in DERIVED_FILES if d.name == "human_faceres.onnx")
    src = [(models / s).read_bytes() for s in d.sources]
    built = _build(d.builder, src)
    assert hashlib.sha256(built).hexdigest() == d.sha256
    dims = onnx.load_from_string(built).graph.input[0].type.tensor_type.shape.dim
    assert [dims[1].dim_param, dims[2].dim_param, dims[3].dim_value] == ["height", "width", 3]

"""The offline ``local`` engine: model install/verify, decoding, Rekognition shape, behaviour.

Needs no evaluation data. The models are taken from the user's cache when it is already complete,
otherwise installed once per session into a temporary cache (needs access to PyPI; skipped without).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from indexer.core import ImageRef
from indexer.errors import FatalError, ImageError

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the sample photos")

REF = ImageRef(uri="mem://image", size=0, fingerprint="x")


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def engine(models):
    from indexer.engines.local import LocalEngine

    eng = LocalEngine(workers=0, models_dir=models, auto_install=False)
    yield eng
    eng.close()


def png_bytes(arr: np.ndarray, **save) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=save.pop("format", "PNG"), **save)
    return buf.getvalue()


def analyze(engine, data: bytes):
    return engine.analyze(REF, lambda: data)


@pytest.fixture(scope="session")
def astronaut_analysis(engine):
    return analyze(engine, png_bytes(skimage_data.astronaut()))


# ------------------------------------------------------------------ models / cache


def test_models_dir_resolution(monkeypatch, tmp_path):
    from indexer.engines.local.models import models_dir

    monkeypatch.setenv("INDEXER_MODELS_DIR", str(tmp_path / "m"))
    assert models_dir() == tmp_path / "m"
    monkeypatch.delenv("INDEXER_MODELS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models_dir() == tmp_path / "xdg" / "indexer" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert models_dir() == Path.home() / ".cache" / "indexer" / "models"


def test_registry_is_pinned_and_licensed():
    from indexer.engines.local.models import DERIVED_FILES, MODEL_FILES, RUNTIME_FILES, model_table

    names = {m.name for m in MODEL_FILES} | {d.name for d in DERIVED_FILES}
    assert set(RUNTIME_FILES) <= names
    for m in MODEL_FILES:
        assert m.registry in ("pypi", "npm") and m.version and len(m.sha256) == 64 and m.license
    assert len(model_table()) == len(MODEL_FILES) + len(DERIVED_FILES)


def test_missing_cache_without_install_raises_one_line(tmp_path):
    from indexer.engines.local import LocalEngine, ModelsMissingError, ensure_installed

    with pytest.raises(ModelsMissingError) as info:
        ensure_installed(tmp_path / "empty", auto_install=False)
    msg = str(info.value)
    assert isinstance(info.value, FatalError)
    assert "\n" not in msg
    assert "indexer models install" in msg and "INDEXER_MODELS_DIR" in msg and "face_landmark.tflite" in msg

    eng = LocalEngine(workers=0, models_dir=tmp_path / "empty", auto_install=False)
    with pytest.raises(ModelsMissingError):
        analyze(eng, b"whatever")
    eng.close()


def test_corrupt_cached_file_is_reported_missing(models, tmp_path):
    from indexer.engines.local.models import RUNTIME_FILES, missing_files

    for name in RUNTIME_FILES:
        (tmp_path / name).write_bytes((models / name).read_bytes())
    assert missing_files(tmp_path) == []
    (tmp_path / "emotion_model_quantized.tflite").write_bytes(b"not the model")
    assert missing_files(tmp_path) == ["emotion_model_quantized.tflite"]


def test_derived_onnx_is_built_deterministically(models):
    pytest.importorskip("onnx")
    from indexer.engines.local.models import DERIVED_FILES, _build

    d = next(d for d in DERIVED_FILES if d.name == "mtcnn_pnet.onnx")
    src = [(models / s).read_bytes() for s in d.sources]
    assert hashlib.sha256(_build(d.builder, src)).hexdigest() == d.sha256


def test_emotion_onnx_is_built_deterministically(models):
    """Human's TF.js emotion net, converted twice, gives the same bytes, the ones recorded."""
    pytest.importorskip("onnx")
    from indexer.engines.local.models import DERIVED_FILES, _build

    d = next(d for d in DERIVED_FILES if d.name == "human_emotion.onnx")
    src = [(models / s).read_bytes() for s in d.sources]
    first, second = _build(d.builder, src), _build(d.builder, src)
    assert first == second
    assert hashlib.sha256(first).hexdigest() == d.sha256


# A tiny TF.js graph model, generated here: every op kind the emotion net uses, SAME and VALID
# padding, stride 2 on an odd size, and each weight encoding (float32, float16, affine uint8).
def _tfjs_tiny(rng) -> tuple[bytes, bytes, dict]:
    import base64
    import json

    def b64(s: str) -> dict:
        return {"s": base64.b64encode(s.encode()).decode()}

    def ints(*v: int) -> dict:
        return {"list": {"i": [str(i) for i in v]}}

    def conv_attr(stride: int, pad: str, fused=None) -> dict:
        a = {"strides": ints(1, stride, stride, 1), "padding": b64(pad), "data_format": b64("NHWC"),
             "dilations": ints(1, 1, 1, 1)}
        if fused:
            a["fused_ops"] = {"list": {"s": [b64(f)["s"] for f in fused]}}
        return a

    w = {
        "conv_w": rng.integers(0, 256, (3, 3, 2, 3)).astype(np.uint8),  # quantised: q * scale + min
        "conv_b": rng.normal(size=3).astype(np.float16),
        "dw_w": rng.normal(size=(3, 3, 3, 1)).astype(np.float32),
        "add_c": rng.normal(size=3).astype(np.float32),
        "axes": np.array([1, 2], np.int32),
        "mm_w": rng.normal(size=(3, 4)).astype(np.float32),
        "mm_b": rng.normal(size=4).astype(np.float32),
    }
    qmin, qscale = -0.5, 1.0 / 255
    manifest = [
        {"name": "conv_w", "shape": [3, 3, 2, 3], "dtype": "float32",
         "quantization": {"dtype": "uint8", "min": qmin, "scale": qscale}},
        {"name": "conv_b", "shape": [3], "dtype": "float32", "quantization": {"dtype": "float16"}},
        {"name": "dw_w", "shape": [3, 3, 3, 1], "dtype": "float32"},
        {"name": "add_c", "shape": [3], "dtype": "float32"},
        {"name": "axes", "shape": [2], "dtype": "int32"},
        {"name": "mm_w", "shape": [3, 4], "dtype": "float32"},
        {"name": "mm_b", "shape": [4], "dtype": "float32"},
    ]
    nodes = [{"name": m["name"], "op": "Const"} for m in manifest] + [
        {"name": "x", "op": "Placeholder", "attr": {"shape": {"shape": {"dim": [{"size": "-1"}, {"size": "7"},
                                                                               {"size": "7"}, {"size": "2"}]}}}},
        {"name": "c1", "op": "_FusedConv2D", "input": ["x", "conv_w", "conv_b"],
         "attr": conv_attr(2, "SAME", ["BiasAdd", "Relu"])},
        {"name": "dw", "op": "DepthwiseConv2dNative", "input": ["c1", "dw_w"], "attr": conv_attr(1, "VALID")},
        {"name": "mp", "op": "MaxPool", "input": ["dw"],
         "attr": {"ksize": ints(1, 2, 2, 1), "strides": ints(1, 1, 1, 1), "padding": b64("SAME")}},
        {"name": "add", "op": "AddV2", "input": ["mp", "add_c"]},
        {"name": "mean", "op": "Mean", "input": ["add", "axes"], "attr": {"keep_dims": {"b": False}}},
        {"name": "fc", "op": "_FusedMatMul", "input": ["mean", "mm_w", "mm_b"],
         "attr": {"fused_ops": {"list": {"s": [b64("BiasAdd")["s"]]}}}},
        {"name": "sm", "op": "Softmax", "input": ["fc"]},
        {"name": "Identity", "op": "Identity", "input": ["sm"]},
    ]
    model = {
        "format": "graph-model",
        "modelTopology": {"node": nodes},
        "signature": {"outputs": {"out": {"name": "Identity:0"}}},
        "weightsManifest": [{"paths": ["w.bin"], "weights": manifest}],
    }
    data = b"".join(w[m["name"]].tobytes() for m in manifest)
    ref = dict(w, conv_w=w["conv_w"].astype(np.float32) * np.float32(qscale) + np.float32(qmin),
               conv_b=w["conv_b"].astype(np.float32))
    return json.dumps(model).encode(), data, ref


def _np_reference(x: np.ndarray, w: dict) -> np.ndarray:
    """The tiny graph in plain numpy, NHWC, with TF's SAME padding (extra pixel after)."""

    def pad_same(a, k, s, value):
        out = []
        for n in a.shape[1:3]:
            total = max((-(-n // s) - 1) * s + k - n, 0)
            out.append((total // 2, total - total // 2))
        return np.pad(a, ((0, 0), out[0], out[1], (0, 0)), constant_values=value)

    def windows(a, k, s):
        oh, ow = (a.shape[1] - k) // s + 1, (a.shape[2] - k) // s + 1
        return np.stack([[a[:, i * s:i * s + k, j * s:j * s + k, :] for j in range(ow)] for i in range(oh)])

    p = windows(pad_same(x, 3, 2, 0.0), 3, 2)  # (oh, ow, N, k, k, Cin)
    y = np.einsum("ijnabc,abcd->nijd", p, w["conv_w"]) + w["conv_b"]
    y = np.maximum(y, 0)
    y = np.einsum("ijnabc,abc->nijc", windows(y, 3, 1), w["dw_w"][..., 0])
    y = windows(pad_same(y, 2, 1, -np.inf), 2, 1).max(axis=(3, 4)).transpose(2, 0, 1, 3)
    y = (y + w["add_c"]).mean(axis=(1, 2))
    z = y @ w["mm_w"] + w["mm_b"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_tfjs_converter_matches_numpy():
    pytest.importorskip("onnx")
    import onnxruntime as ort

    from indexer.engines.local.tfjs_onnx import convert

    rng = np.random.default_rng(0)
    model_json, data, weights = _tfjs_tiny(rng)
    onnx_bytes = convert(model_json, data)
    assert onnx_bytes == convert(model_json, data)  # deterministic
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    x = rng.normal(size=(2, 7, 7, 2)).astype(np.float32)
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, _np_reference(x.astype(np.float64), weights), rtol=1e-4, atol=1e-6)


def test_tfjs_converter_names_an_unsupported_op():
    pytest.importorskip("onnx")
    import json

    from indexer.engines.local.tfjs_onnx import convert

    model_json, data, _ = _tfjs_tiny(np.random.default_rng(1))
    model = json.loads(model_json)
    model["modelTopology"]["node"][-2]["op"] = "LogSoftmax"
    with pytest.raises(ValueError, match="LogSoftmax"):
        convert(json.dumps(model).encode(), data)
    with pytest.raises(ValueError, match="bytes"):
        convert(model_json, data + b"\0\0\0\0")


def test_emotion_crop_is_upright_and_fer_framed():
    """Eyes and mouth of a rolled face land where FER2013 puts them, eyes level."""
    import cv2

    from indexer.engines.local.emotion import FER_CENTER_ABOVE, FER_SIDE_PER_FEATURE, SIZE, fer_crop

    angle, dist = np.radians(25.0), 60.0  # roll; inter-ocular and eye-to-mouth distance (px)
    ex, ey = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    centre = np.array([200.0, 180.0])
    eye_l, eye_r, mouth = centre - ex * dist / 2, centre + ex * dist / 2, centre + ey * dist
    mesh = np.zeros((468, 2))
    mesh[[33, 133]], mesh[[362, 263]], mesh[[61, 291]] = eye_l, eye_r, mouth
    mesh[33] -= ex * 5  # eye corners either side of the eye centre
    mesh[133] += ex * 5
    mesh[362] -= ex * 5
    mesh[263] += ex * 5

    def spot(p: np.ndarray) -> np.ndarray:
        """Where a bright disc at image point ``p`` lands in the crop (intensity centroid)."""
        img = np.zeros((400, 400), np.uint8)
        cv2.circle(img, (int(round(p[0])), int(round(p[1]))), 4, 255, -1)
        crop = fer_crop(img, mesh).astype(np.float64)
        assert crop.shape == (SIZE, SIZE)
        ys, xs = np.mgrid[:SIZE, :SIZE]
        return np.array([(xs * crop).sum(), (ys * crop).sum()]) / crop.sum()

    side = FER_SIDE_PER_FEATURE * dist
    k = SIZE / side
    eye_y = SIZE / 2 + (FER_CENTER_ABOVE * side - dist / 2) * k
    np.testing.assert_allclose(spot(eye_l), [SIZE / 2 - dist / 2 * k, eye_y], atol=1.0)
    np.testing.assert_allclose(spot(eye_r), [SIZE / 2 + dist / 2 * k, eye_y], atol=1.0)
    np.testing.assert_allclose(spot(mouth), [SIZE / 2, eye_y + dist * k], atol=1.0)


def test_torch_reader_refuses_foreign_globals():
    from indexer.engines.local.torch_weights import load_state_dict

    import os

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"x": os.system}))
    with pytest.raises(pickle.UnpicklingError):
        load_state_dict(buf.getvalue())


def test_import_is_light():
    code = (
        "import sys, indexer.engines.local as m; "
        "heavy = [x for x in ('cv2', 'onnxruntime', 'ai_edge_litert', 'onnx', 'PIL') if x in sys.modules]; "
        "assert not heavy, heavy; assert m.LocalEngine.name == 'local'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ analysis


def test_astronaut_one_smiling_face(astronaut_analysis):
    a = astronaut_analysis
    assert (a.width, a.height) == (512, 512)
    assert a.api_calls == 0
    assert len(a.face_details) == 1
    d = a.face_details[0]
    bb = d["BoundingBox"]
    # The face is around x 180-265, y 60-170 in the 512 px photo.
    assert 0.30 < bb["Left"] < 0.40 and 0.08 < bb["Top"] < 0.16
    assert 0.12 < bb["Width"] < 0.25 and 0.15 < bb["Height"] < 0.28
    assert d["Confidence"] > 90
    assert d["Smile"]["Value"] is True
    assert d["EyesOpen"]["Value"] is True
    assert d["Emotions"][0]["Type"] == "HAPPY"
    assert abs(d["Pose"]["Yaw"]) < 30 and abs(d["Pose"]["Roll"]) < 20 and abs(d["Pose"]["Pitch"]) < 30
    lm = {p["Type"]: p for p in d["Landmarks"]}
    assert lm["eyeLeft"]["X"] < lm["nose"]["X"] < lm["eyeRight"]["X"]
    assert lm["mouthLeft"]["X"] < lm["mouthRight"]["X"] and lm["leftEyeLeft"]["X"] < lm["leftEyeRight"]["X"]
    assert lm["upperJawlineLeft"]["X"] < lm["chinBottom"]["X"] < lm["upperJawlineRight"]["X"]
    assert lm["leftPupil"]["X"] < lm["rightPupil"]["X"]
    assert lm["eyeLeft"]["Y"] < lm["nose"]["Y"] < lm["mouthUp"]["Y"] < lm["chinBottom"]["Y"]
    for p in d["Landmarks"]:
        assert bb["Left"] - 0.05 < p["X"] < bb["Left"] + bb["Width"] + 0.05


def test_face_detail_matches_rekognition_shape(astronaut_analysis):
    import botocore.session
    from botocore.validate import ParamValidator

    from indexer.engines.local import CAPABILITIES

    model = botocore.session.get_session().get_service_model("rekognition")
    shape = model.shape_for("FaceDetail")
    d = astronaut_analysis.face_details[0]
    report = ParamValidator().validate(d, shape)
    assert not report.has_errors(), report.generate_report()
    assert set(d) == set(CAPABILITIES.attributes) == set(model.shape_for("FaceDetail").members)
    for key in ("Smile", "Eyeglasses", "Sunglasses", "Beard", "Mustache", "EyesOpen", "MouthOpen", "FaceOccluded"):
        assert isinstance(d[key]["Value"], bool) and 50.0 <= d[key]["Confidence"] <= 100.0, key
    assert d["Gender"]["Value"] in ("Male", "Female") and 50.0 <= d["Gender"]["Confidence"] <= 100.0
    assert isinstance(d["AgeRange"]["Low"], int) and 0 <= d["AgeRange"]["Low"] < d["AgeRange"]["High"] <= 100
    assert {p["Type"] for p in d["Landmarks"]} == set(model.shape_for("LandmarkType").enum)
    emotions = [e["Confidence"] for e in d["Emotions"]]
    assert emotions == sorted(emotions, reverse=True)
    assert {e["Type"] for e in d["Emotions"]} <= set(model.shape_for("EmotionName").enum) - {"CONFUSED", "UNKNOWN"}
    for key in ("Smile", "EyesOpen", "MouthOpen"):
        assert 50 <= d[key]["Confidence"] <= 100
    assert 0 <= d["Quality"]["Brightness"] <= 100 and 0 <= d["Quality"]["Sharpness"] <= 100
    assert 0 <= d["EyeDirection"]["Confidence"] <= 100


def test_other_real_photos(engine):
    # The cameraman (grey, near-profile) has one face; the coffee cup has none.
    cam = analyze(engine, png_bytes(skimage_data.camera()))
    assert len(cam.face_details) == 1
    assert len(analyze(engine, png_bytes(skimage_data.coffee())).face_details) == 0


def _generated_nonfaces():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    gx = np.linspace(0, 255, 800, dtype=np.float32)
    gradient = np.stack([np.tile(gx, (600, 1)), np.tile(gx[::-1], (600, 1)), np.full((600, 800), 128.0)], -1)
    from PIL import Image, ImageDraw

    text = Image.new("RGB", (900, 600), "white")
    draw = ImageDraw.Draw(text)
    for i in range(20):
        draw.text((20, 10 + 28 * i), "The quick brown fox jumps over the lazy dog 0123456789 " * 2, fill="black")
    checker = ((np.indices((600, 600)).sum(0) // 40) % 2 * 255).astype(np.uint8)
    return {
        "noise": noise,
        "gradient": gradient.astype(np.uint8),
        "text": np.asarray(text),
        "checker": np.stack([checker] * 3, -1),
        "flat": np.full((300, 300, 3), 200, np.uint8),
    }


@pytest.mark.parametrize("name", sorted(_generated_nonfaces()))
def test_generated_nonface_images_have_no_face(engine, name):
    assert analyze(engine, png_bytes(_generated_nonfaces()[name])).face_details == []


@pytest.mark.parametrize(
    "data, code",
    [(b"", "EmptyObject"), (b"not an image at all", "InvalidImageFormatException"),
     (b"\x89PNG\r\n\x1a\n" + b"\0" * 50, "InvalidImageFormatException")],
)
def test_corrupt_bytes_raise_image_error(engine, data, code):
    """The same codes as the Rekognition engine's preparation gives the same bytes."""
    with pytest.raises(ImageError) as info:
        analyze(engine, data)
    assert info.value.code == code
    assert info.value.retryable is False


def test_truncated_jpeg_raises_image_error(engine):
    data = png_bytes(skimage_data.astronaut(), format="JPEG", quality=90)
    with pytest.raises(ImageError):
        analyze(engine, data[: len(data) // 3])


def test_exif_rotation_gives_box_in_corrected_frame(engine):
    from PIL import Image

    upright = np.ascontiguousarray(skimage_data.astronaut()[:, :400])  # 400 wide, 512 high
    ref = analyze(engine, png_bytes(upright))
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # what a camera held sideways writes
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 deg clockwise to display
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, format="JPEG", quality=95, exif=exif)
    rotated = analyze(engine, buf.getvalue())
    assert (rotated.width, rotated.height) == (400, 512)
    assert len(ref.face_details) == len(rotated.face_details) == 1
    a, b = ref.face_details[0]["BoundingBox"], rotated.face_details[0]["BoundingBox"]
    for k in ("Left", "Top", "Width", "Height"):
        assert abs(a[k] - b[k]) < 0.03, (k, a, b)


def test_large_and_grey_and_alpha_inputs(engine):
    from PIL import Image

    big = Image.fromarray(skimage_data.astronaut()).resize((2048, 2048))
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=90)
    a = analyze(engine, buf.getvalue())
    assert (a.width, a.height) == (2048, 2048) and len(a.face_details) == 1

    grey = analyze(engine, png_bytes(np.asarray(Image.fromarray(skimage_data.astronaut()).convert("L"))))
    assert len(grey.face_details) == 1
    rgba = np.dstack([skimage_data.astronaut(), np.full((512, 512), 255, np.uint8)])
    assert len(analyze(engine, png_bytes(rgba)).face_details) == 1


def test_emotion_on_a_whole_crop(engine):
    analyzer = engine.analyzer()
    from PIL import Image

    face = np.asarray(Image.fromarray(skimage_data.astronaut()[60:175, 175:270]).convert("L").resize((48, 48)))
    probs = analyzer.emotion_probabilities(face)
    assert set(probs) == {"HAPPY", "SAD", "ANGRY", "DISGUSTED", "SURPRISED", "CALM", "FEAR"}
    assert abs(sum(probs.values()) - 1) < 1e-3
    assert max(probs, key=probs.get) == "HAPPY"


def test_process_pool_matches_in_process(models, astronaut_analysis):
    from indexer.engines.local import LocalEngine

    data = png_bytes(skimage_data.astronaut())
    with LocalEngine(workers=2, models_dir=models, auto_install=False) as eng:
        with ThreadPoolExecutor(4) as ex:
            results = list(ex.map(lambda _: eng.analyze(REF, lambda: data), range(4)))
        with pytest.raises(ImageError):
            eng.analyze(REF, lambda: b"garbage")
    for r in results:
        assert len(r.face_details) == 1
        assert r.face_details[0]["BoundingBox"] == pytest.approx(astronaut_analysis.face_details[0]["BoundingBox"])


def test_npm_tarballs_are_fetched_from_the_registry_when_npm_is_absent(monkeypatch):
    """Users of a Python tool may have no Node.js: the tarball's registry address is derived."""
    from indexer.engines.local.models import npm_tarball_url

    monkeypatch.delenv("npm_config_registry", raising=False)
    assert npm_tarball_url("@vladmandic/human", "3.3.6") == "https://registry.npmjs.org/@vladmandic/human/-/human-3.3.6.tgz"
    assert npm_tarball_url("left-pad", "1.3.0") == "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz"
    monkeypatch.setenv("npm_config_registry", "https://npm.example.internal/")
    assert npm_tarball_url("left-pad", "1.3.0") == "https://npm.example.internal/left-pad/-/left-pad-1.3.0.tgz"


def test_nms_overlap_matrix_path_decides_as_the_reference_loop(monkeypatch):
    """The fast path (all overlaps at once) keeps exactly the boxes MTCNN's row-by-row loop keeps,
    ties in score included."""
    from indexer.engines.local import detect

    rng = np.random.default_rng(7)
    for _ in range(40):
        n = int(rng.integers(1, 400))
        corner = rng.uniform(0, 300, (n, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(4, 60, (n, 2))], 1).astype(np.float32)
        scores = rng.choice(rng.uniform(0, 1, 12), n).astype(np.float32)
        for method, threshold in (("union", 0.5), ("union", 0.7), ("min", 0.7)):
            fast = detect.nms(boxes, scores, threshold, method)
            monkeypatch.setattr(detect, "NMS_MATRIX_LIMIT", 0)
            reference = detect.nms(boxes, scores, threshold, method)
            monkeypatch.undo()
            assert np.array_equal(fast, reference), (n, method, threshold)

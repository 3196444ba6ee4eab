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

from indexer.engines.base import ImageRef
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
    assert set(d) == set(CAPABILITIES.attributes)
    assert {"AgeRange", "Gender", "Beard", "Mustache", "Eyeglasses", "Sunglasses", "FaceOccluded"}.isdisjoint(d)
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


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 50])
def test_corrupt_bytes_raise_image_error(engine, data):
    with pytest.raises(ImageError) as info:
        analyze(engine, data)
    assert info.value.code == "InvalidImageFormatException"
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

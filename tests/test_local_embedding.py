"""The offline engine's face embedding: dlib's network format, its ONNX rebuild, Similarity, real faces.

* The converter: a small network in dlib's serialization, written here byte by byte from dlib's
  C++ serializers (every layer kind and record version the face network uses, residual adds of
  tensors of different sizes and channel counts, batch norm saved in place of affine layers), is
  read and rebuilt as ONNX, and must compute what a plain numpy forward pass of the same weights
  computes. Needs no model files.
* The registry entry is pinned; the real ONNX build is deterministic and matches its SHA-256.
* Real faces (the ``models`` fixture; skipped without the model cache): skimage's astronaut
  (Eileen Collins) matches herself mirrored and downscaled at Similarity >= 80 and does not match
  skimage's cameraman; public-domain White House portraits shipped in PyPI's ``face_recognition``
  1.3.0 sdist (fetched like the models, pinned by SHA-256; skipped without PyPI) match Obama to
  Obama and not Biden to Obama.
"""

from __future__ import annotations

import bz2
import hashlib
import math

import numpy as np
import pytest

from indexer.engines.local import dlib_onnx
from indexer.engines.local import embedding as em

# ------------------------------------------------------------------ dlib's serialization, written


class _Writer:
    """dlib/serialize.h's encodings (the writer side, independent of the module's reader)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def int(self, v: int) -> None:
        neg, v = v < 0, abs(v)
        body = v.to_bytes(max(1, (v.bit_length() + 7) // 8), "little")
        self.buf += bytes([len(body) | (0x80 if neg else 0)]) + body

    def str(self, s: str) -> None:
        self.int(len(s))
        self.buf += s.encode()

    def flag(self, b: bool) -> None:
        self.buf += b"1" if b else b"0"

    def real(self, v: float) -> None:
        """float_details of a float: 24-bit mantissa and exponent, trailing zero bytes dropped."""
        v = float(np.float32(v))
        if v == 0.0:
            self.int(0), self.int(0)
            return
        m, e = math.frexp(v)
        mantissa, exponent = int(m * (1 << 24)), e - 24
        while mantissa & 0xFF == 0:
            mantissa >>= 8
            exponent += 8
        self.int(mantissa), self.int(exponent)

    def tensor(self, a: np.ndarray) -> None:
        a = np.asarray(a, dtype=np.float32)
        shape = a.shape + (1,) * (4 - a.ndim)
        self.int(2)
        for s in shape:
            self.int(s)
        self.buf += a.astype("<f4").tobytes()

    def empty(self) -> None:
        self.tensor(np.zeros((0, 0, 0, 0), dtype=np.float32))

    def alias(self, shape: tuple[int, ...]) -> None:
        self.int(1)
        for s in shape + (1,) * (4 - len(shape)):
            self.int(s)

    def multipliers(self) -> None:  # learning-rate and weight-decay multipliers
        for v in (1.0, 1.0, 1.0, 0.0):
            self.real(v)


def _write_layer(w: _Writer, spec: dict) -> None:
    kind = spec["kind"]
    if kind == "con":
        wt, b, rec = spec["w"], spec.get("b"), spec["record"]
        n, _, nr, nc = wt.shape
        w.str(rec)
        w.tensor(np.concatenate([wt.ravel()] + ([b] if b is not None else [])))
        for v in (n, nr, nc, spec["stride"], spec["stride"], spec["pad"], spec["pad"]):
            w.int(v)
        w.alias(wt.shape), w.alias((1, n))
        w.multipliers()
        if rec in ("con_5", "con_6"):
            w.flag(b is not None)
        if rec == "con_6":
            w.flag(False)
    elif kind == "bn":
        c = len(spec["gamma"])
        w.str("bn_con2")
        w.tensor(np.concatenate([spec["gamma"], spec["beta"]]))
        w.alias((1, c)), w.alias((1, c))
        w.tensor(np.zeros((1, c))), w.tensor(np.ones((1, c)))  # last batch's means / invstds: unused
        w.tensor(spec["mean"].reshape(1, c)), w.tensor(spec["var"].reshape(1, c))
        w.int(1000), w.int(1000)
        w.multipliers()
        w.real(spec["eps"])
    elif kind == "affine":
        c = len(spec["gamma"])
        w.str("affine_2")
        w.tensor(np.concatenate([spec["gamma"], spec["beta"]]))
        w.alias((1, c)), w.alias((1, c))
        w.int(0), w.flag(False)  # CONV_MODE, not disabled
    elif kind == "relu":
        w.str("relu_2"), w.flag(False)
    elif kind in ("max_pool", "avg_pool"):
        w.str(f"{kind}_2")
        for v in (spec["k"], spec["k"], spec["stride"], spec["stride"], 0, 0):
            w.int(v)
    elif kind == "add_prev":
        w.str("add_prev_")
    elif kind == "fc":
        wt, b = spec["w"], spec.get("b")
        w.str("fc_3")
        w.int(wt.shape[1]), w.int(wt.shape[0])
        w.tensor(np.concatenate([wt.ravel()] + ([b] if b is not None else [])))
        w.alias(wt.shape), w.alias((1, wt.shape[1]))
        w.int(0 if b is not None else 1)  # FC_HAS_BIAS / FC_NO_BIAS
        w.multipliers()
        w.flag(b is not None)
    else:
        raise AssertionError(kind)


MEANS = (122.782, 117.001, 104.298)
SIZE = 37  # stem conv (3x3, stride 2) -> 18, max pool (3, 2) -> 8; the D block: 3x3 main vs 4x4 shortcut


def _tiny_net(rng: np.random.Generator, fc_bias: bool) -> list[dict]:
    """Layers input -> output of a ``DR`` metric ResNet (metric_resnet_layers("DR")) with weights."""

    def con(cin, cout, k, stride, pad, record, bias=True):
        spec = {"kind": "con", "w": rng.normal(0, 0.4, (cout, cin, k, k)).astype(np.float32),
                "stride": stride, "pad": pad, "record": record}
        if bias:
            spec["b"] = rng.normal(0, 0.2, cout).astype(np.float32)
        return spec

    def bn(c):
        return {"kind": "bn", "gamma": rng.uniform(0.5, 1.5, c).astype(np.float32),
                "beta": rng.normal(0, 0.3, c).astype(np.float32), "mean": rng.normal(0, 0.3, c).astype(np.float32),
                "var": rng.uniform(0.2, 2.0, c).astype(np.float32), "eps": 1e-5}

    def affine(c):
        return {"kind": "affine", "gamma": rng.uniform(0.5, 1.5, c).astype(np.float32),
                "beta": rng.normal(0, 0.3, c).astype(np.float32)}

    def k(kind, **kw):
        return {"kind": kind, **kw}

    return [
        con(3, 4, 3, 2, 0, "con_4"), bn(4), k("relu"), k("max_pool", k=3, stride=2),
        # R (ares<4>): relu(add_prev1(affine(con(relu(affine(con(tag1(x))))))))
        k("tag", id=1), con(4, 4, 3, 1, 1, "con_6"), affine(4), k("relu"),
        con(4, 4, 3, 1, 1, "con_5", bias=False), bn(4), k("add_prev", id=1), k("relu"),
        # D (ares_down<8>): relu(add_prev2(avg_pool(skip1(tag2(block(tag1(x)))))))
        k("tag", id=1), con(4, 8, 3, 2, 0, "con_6"), bn(8), k("relu"), con(8, 8, 3, 1, 1, "con_6"), affine(8),
        k("tag", id=2), k("skip", id=1), k("avg_pool", k=2, stride=2), k("add_prev", id=2), k("relu"),
        k("avg_pool", k=0, stride=1),
        {"kind": "fc", "w": rng.normal(0, 0.5, (8, 6)).astype(np.float32),
         **({"b": rng.normal(0, 0.2, 6).astype(np.float32)} if fc_bias else {})},
    ]


def _serialize(layers: list[dict]) -> bytes:
    """The network as dlib's serialize writes an add_loss_layer<loss_metric_, ...>."""
    w = _Writer()
    w.int(1), w.str("loss_metric_2"), w.real(0.04), w.real(0.6)
    outer_first = layers[::-1]
    for i, spec in enumerate(outer_first):  # add_layer / tag / skip versions, output inwards
        w.int(1 if spec["kind"] in ("tag", "skip") else (3 if i == len(outer_first) - 1 else 2))
    w.str("input_rgb_image_sized")
    for m in MEANS:
        w.real(m)
    w.int(SIZE), w.int(SIZE)
    for i, spec in enumerate(layers):  # details, input outwards
        if spec["kind"] in ("tag", "skip"):
            continue
        _write_layer(w, spec)
        w.flag(True), w.flag(False), w.flag(False), w.empty(), w.empty()
        if i == 0:
            w.empty(), w.int(1)  # grad_final, sample expansion factor
        else:
            w.empty()  # params_grad
    return bytes(w.buf)


# ------------------------------------------------------------------ numpy reference forward pass


def _conv(x: np.ndarray, w: np.ndarray, b, stride: int, pad: int) -> np.ndarray:
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    cout, _, k, _ = w.shape
    oh, ow = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = np.zeros((cout, oh, ow))
    for r in range(oh):
        for c in range(ow):
            patch = x[:, r * stride : r * stride + k, c * stride : c * stride + k]
            out[:, r, c] = np.tensordot(w, patch, axes=([1, 2, 3], [0, 1, 2]))
    return out + (0 if b is None else np.asarray(b, dtype=np.float64)[:, None, None])


def _pool(x: np.ndarray, k: int, stride: int, reduce) -> np.ndarray:
    oh, ow = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], oh, ow))
    for r in range(oh):
        for c in range(ow):
            out[:, r, c] = reduce(x[:, r * stride : r * stride + k, c * stride : c * stride + k], axis=(1, 2))
    return out


def _add_padded(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """dlib's tt::add: the smaller tensor counts as zero-padded at the end of every axis."""
    out = np.zeros(tuple(max(s, t) for s, t in zip(a.shape, b.shape)))
    out[: a.shape[0], : a.shape[1], : a.shape[2]] += a
    out[: b.shape[0], : b.shape[1], : b.shape[2]] += b
    return out


def _reference(chip: np.ndarray, layers: list[dict]) -> np.ndarray:
    x = (chip.astype(np.float64).transpose(2, 0, 1) - np.array(MEANS)[:, None, None]) / 256.0
    tags: dict[int, np.ndarray] = {}
    for s in layers:
        kind = s["kind"]
        if kind == "con":
            x = _conv(x, s["w"], s.get("b"), s["stride"], s["pad"])
        elif kind == "bn":
            x = (x - s["mean"][:, None, None]) / np.sqrt(s["var"][:, None, None] + s["eps"])
            x = x * s["gamma"][:, None, None] + s["beta"][:, None, None]
        elif kind == "affine":
            x = x * s["gamma"][:, None, None] + s["beta"][:, None, None]
        elif kind == "relu":
            x = np.maximum(x, 0)
        elif kind == "max_pool":
            x = _pool(x, s["k"], s["stride"], np.max)
        elif kind == "avg_pool":
            x = x.mean(axis=(1, 2), keepdims=True) if s["k"] == 0 else _pool(x, s["k"], s["stride"], np.mean)
        elif kind == "tag":
            tags[s["id"]] = x
        elif kind == "skip":
            x = tags[s["id"]]
        elif kind == "add_prev":
            x = _add_padded(x, tags[s["id"]])
        elif kind == "fc":
            x = x.reshape(-1) @ s["w"] + (s["b"] if "b" in s else 0)
    return x


def _run(model: bytes, chips: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return sess.run(None, {"chip": np.ascontiguousarray(chips.astype(np.float32).transpose(0, 3, 1, 2))})[0]


# ------------------------------------------------------------------ the converter


@pytest.mark.parametrize("fc_bias", [False, True])
def test_converted_graph_matches_a_numpy_forward_pass(fc_bias):
    pytest.importorskip("onnx")
    rng = np.random.default_rng(11)
    layers = _tiny_net(rng, fc_bias)
    data = _serialize(layers)
    chips = rng.integers(0, 256, (3, SIZE, SIZE, 3)).astype(np.uint8)
    got = _run(dlib_onnx.convert(data, blocks="DR"), chips)
    want = np.stack([_reference(c, layers) for c in chips])
    assert got.shape == (3, 6)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.abs(want).max() > 1e-2  # not a degenerate all-zero net


def test_reader_takes_bz2_and_reports_the_input_and_layers():
    rng = np.random.default_rng(3)
    layers = _tiny_net(rng, False)
    data = _serialize(layers)
    net = dlib_onnx.read_net(bz2.compress(data), dlib_onnx.metric_resnet_layers("DR"))
    assert net.size == (SIZE, SIZE)
    assert np.allclose(net.channel_means, MEANS, atol=1e-4)
    assert [layer.kind for layer in net.layers] == [("affine" if s["kind"] == "bn" else s["kind"]) for s in layers]
    stem = net.layers[0]
    assert np.array_equal(stem.arrays["weight"], layers[0]["w"]) and stem.attrs["stride_y"] == 2


def test_reader_names_the_layer_when_the_architecture_differs():
    data = _serialize(_tiny_net(np.random.default_rng(5), False))
    with pytest.raises(dlib_onnx.DlibFormatError, match="layer"):
        dlib_onnx.read_net(data, dlib_onnx.metric_resnet_layers("RD"))
    with pytest.raises(dlib_onnx.DlibFormatError, match="left over|end of data|layer"):
        dlib_onnx.read_net(data + b"\x01\x00", dlib_onnx.metric_resnet_layers("DR"))


def test_face_network_layer_sequence_is_dlibs_anet_type():
    seq = dlib_onnx.metric_resnet_layers()
    assert seq[:3] == ("loss_metric", "fc", "avg_pool") and seq[-4:] == ("max_pool", "relu", "affine", "con")
    assert seq.count("con") == 29  # ResNet-29: 14 blocks of two 3x3 convolutions and the stem
    assert seq.count("add_prev2") == dlib_onnx.ANET_BLOCKS.count("D") == 4


# ------------------------------------------------------------------ registry


def test_registry_entry_is_pinned():
    from indexer.engines.local.models import DERIVED_FILES, MODEL_FILES, RUNTIME_FILES

    derived = next(d for d in DERIVED_FILES if d.name == em.MODEL_FILE)
    assert em.MODEL_FILE in RUNTIME_FILES and derived.builder == "dlib" and len(derived.sha256) == 64
    (source,) = derived.sources
    dat = next(m for m in MODEL_FILES if m.name == source)
    assert dat.registry == "pypi" and dat.version and dat.dist in ("wheel", "sdist")
    assert len(dat.sha256) == 64 and int(dat.sha256, 16) and "CC0" in dat.license
    assert dat.member.endswith("dlib_face_recognition_resnet_model_v1.dat")


def test_face_onnx_is_built_deterministically(models):
    pytest.importorskip("onnx")
    from indexer.engines.local.models import DERIVED_FILES, _build

    d = next(d for d in DERIVED_FILES if d.name == em.MODEL_FILE)
    src = [(models / s).read_bytes() for s in d.sources]
    first, second = _build(d.builder, src), _build(d.builder, src)
    assert first == second
    assert hashlib.sha256(first).hexdigest() == d.sha256


# ------------------------------------------------------------------ Similarity


def test_similarity_is_a_decreasing_map_onto_0_100_with_80_at_its_distance():
    d = np.linspace(0.0, 1.5, 301)
    s = em.similarity(d)
    assert np.all(np.diff(s) < 0) and s[0] <= 100.0 and s[-1] >= 0.0
    for t in (em.REKOGNITION_DEFAULT_THRESHOLD, em.REKOGNITION_STRICT_THRESHOLD, 50.0):
        assert em.similarity(em.distance_for(t)) == pytest.approx(t, abs=1e-9)
    assert em.distance_for(99.0) < em.distance_for(80.0) < em.SIMILARITY_MIDPOINT
    # dlib's own same-person threshold (0.6, chosen on LFW) must stay a match at the default 80.
    assert em.similarity(0.6) >= em.REKOGNITION_DEFAULT_THRESHOLD
    assert isinstance(em.similarity(0.5), float)
    with pytest.raises(ValueError):
        em.distance_for(100.0)


def test_distance_helpers_agree():
    rng = np.random.default_rng(0)
    a, many = rng.normal(size=128), rng.normal(size=(4, 128))
    assert em.distances(a, many) == pytest.approx([em.distance(a, m) for m in many])


# ------------------------------------------------------------------ real faces


@pytest.fixture(scope="session")
def faces(models):
    """(analyzer, embedder) on the model cache."""
    from indexer.engines.local import LocalEngine

    engine = LocalEngine(workers=0, models_dir=models, auto_install=False)
    yield engine.analyzer(), em.FaceEmbedder(models, threads=1)
    engine.close()


def _largest_face_points(analyzer, rgb: np.ndarray) -> np.ndarray:
    """dlib's 5 points of the largest face, through the analyzer's detector and mesh."""
    from indexer.engines.local.demographics import mesh_points

    boxes, points = analyzer.detector.detect(rgb)
    assert len(boxes), "no face found"
    i = int(np.argmax([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]))
    mesh, _ = analyzer.mesh.landmarks(rgb, np.asarray(boxes[i][:4], float), np.asarray(points[i][:2], float))
    return mesh_points(mesh)


def _descriptor(faces, rgb: np.ndarray) -> np.ndarray:
    analyzer, embedder = faces
    return embedder.embed(rgb, _largest_face_points(analyzer, rgb))


def test_embedder_loads_lazily_and_batches_like_single_calls(faces, models):
    skimage_data = pytest.importorskip("skimage.data")
    embedder = em.FaceEmbedder(models, threads=1)
    assert embedder._session is None  # nothing loaded until the first face
    rgb = skimage_data.astronaut()
    points = _largest_face_points(faces[0], rgb)
    rng = np.random.default_rng(1)
    jittered = [points + rng.normal(0, 1.5, points.shape) for _ in range(3)]
    one = np.stack([embedder.embed(rgb, p) for p in jittered])
    assert embedder._session is not None
    assert one.shape == (3, em.DESCRIPTOR_SIZE) and one.dtype == np.float32
    np.testing.assert_allclose(embedder.embed_many(rgb, jittered), one, rtol=1e-4, atol=1e-5)
    assert embedder.embed_many(rgb, []).shape == (0, em.DESCRIPTOR_SIZE)
    # dlib's descriptors are not L2-normalised (norms ~1.3 on real faces): a wrong input scale
    # (the graph's (rgb - mean) / 256) or a normalising output would move this.
    assert 0.5 < float(np.linalg.norm(one[0])) < 2.0


def test_astronaut_matches_herself_mirrored_and_smaller_not_the_cameraman(faces):
    skimage_data = pytest.importorskip("skimage.data")
    import cv2

    astronaut = skimage_data.astronaut()
    ref = _descriptor(faces, astronaut)
    mirrored = _descriptor(faces, np.ascontiguousarray(astronaut[:, ::-1]))
    smaller = _descriptor(faces, cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA))
    cameraman = _descriptor(faces, np.ascontiguousarray(np.repeat(skimage_data.camera()[..., None], 3, axis=2)))
    for other in (mirrored, smaller):
        assert em.similarity(em.distance(ref, other)) >= em.REKOGNITION_DEFAULT_THRESHOLD
    assert em.similarity(em.distance(ref, cameraman)) < em.REKOGNITION_DEFAULT_THRESHOLD
    assert max(em.distance(ref, mirrored), em.distance(ref, smaller)) < em.distance(ref, cameraman)


@pytest.fixture(scope="session")
def portraits(portrait_files):
    """The portraits, decoded as the engine decodes them."""
    from indexer.engines.local.engine import decode

    return {name: decode(data)[0] for name, data in portrait_files.items()}


def test_portraits_match_the_same_president_only(faces, portraits):
    d = {name: _descriptor(faces, rgb) for name, rgb in portraits.items()}
    assert em.similarity(em.distance(d["obama.jpg"], d["obama3.jpg"])) >= em.REKOGNITION_DEFAULT_THRESHOLD
    for obama in ("obama.jpg", "obama3.jpg"):
        assert em.similarity(em.distance(d["biden.jpg"], d[obama])) < em.REKOGNITION_DEFAULT_THRESHOLD

"""Read a network saved by dlib's ``serialize`` (a ``.dat`` file) and rebuild it as an ONNX graph.

Why: dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``, CC0) is the
face embedding the offline engine uses, and the engine runs ONNX on onnxruntime, never dlib (run
through the ``dlib-bin`` wheel the same network costs ~150 ms a face; as ONNX a fraction of that).
The conversion runs at install time only and is deterministic (fixed opset, IR version, producer,
node order), so the built file is verified by SHA-256 like a downloaded one.

**The format** (dlib/serialize.h, dlib/dnn/core.h, layers.h, input.h, loss.h, cuda/tensor.h):
integers are a control byte (byte count in the low nibble, 0x80 for negative) then that many
little-endian bytes; a string is its length then its bytes; a bool is the character ``'0'`` or
``'1'``; a float is an integer mantissa and an integer exponent (``mantissa * 2**exponent``); a
tensor is version 2, four sizes (n, k, nr, nc) and raw little-endian float32s. A network is nested
from the output inwards: the loss layer, then each layer *wrapper* writes its version and then its
whole sub-network before its own details, so the stream holds every layer's version first
(outermost to innermost), then the input layer, then each layer's details from the input outwards.
Tag and skip layers write only a version, so which is which (and their ids) cannot be read from the
file: the reader is given the network's layer sequence (:func:`metric_resnet_layers`) and checks
every layer's details against it, failing with the layer's position when they disagree.

**Layers** supported, with their forward semantics (dlib/cuda/cpu_dlib.cpp): ``con`` (cross-
correlation, symmetric zero padding, optional bias and fused ReLU), ``affine`` (per-channel
``x * gamma + beta``; a ``bn_con2`` record in its place is converted as dlib does:
``gamma / sqrt(running_variance + eps)``, ``beta - gamma' * running_mean``), ``relu``,
``max_pool`` / ``avg_pool`` (windows clipped at the border; a window of 0 means the whole plane),
``tag`` / ``skip`` / ``add_prev`` (residual connections: ``add_prev`` adds tensors of different
sizes as if the smaller were zero-padded at the end of every axis, as ``tt::add`` does), ``fc``.
The input layer ``input_rgb_image(_sized)`` becomes ``(rgb - channel mean) / 256`` inside the graph,
so the ONNX input is the RGB chip as float32 0..255, NCHW.
"""

from __future__ import annotations

import bz2
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .onnx_build import IR_VERSION, OPSET

PRODUCER = "indexer-dlib-converter"
PRODUCER_VERSION = "1"

#: dlib's face recognition network (dnn_face_recognition_ex.cpp, ``anet_type``), as the sequence of
#: residual blocks from the output inwards: ``D`` = ``ares_down`` (stride-2 block, shortcut
#: average-pooled), ``R`` = ``ares``. ``alevel0`` = D, ``alevel1`` and ``alevel2`` = RRD,
#: ``alevel3`` = RRRD, ``alevel4`` = RRR; 14 blocks of two 3x3 convolutions plus the 7x7 stem.
ANET_BLOCKS = "DRRDRRDRRRDRRR"

#: dlib's tensor serialization version (cuda/tensor.h) and float_details' special exponents.
_TENSOR_VERSION = 2
_FLOAT_INF, _FLOAT_NINF, _FLOAT_NAN = 32000, 32001, 32002
#: dlib's fc_bias_mode: FC_HAS_BIAS = 0, FC_NO_BIAS = 1.
_FC_NO_BIAS = 1

#: Details records each layer kind accepts (the versions dlib's own deserializers accept).
_RECORDS = {
    "con": ("con_4", "con_5", "con_6"),
    "affine": ("affine_", "affine_2", "bn_con2"),
    "relu": ("relu_", "relu_2"),
    "max_pool": ("max_pool_2",),
    "avg_pool": ("avg_pool_2",),
    "add_prev": ("add_prev_",),
    "fc": ("fc_2", "fc_3"),
}


class DlibFormatError(ValueError):
    """The bytes are not the expected dlib network (names the byte offset or layer)."""


# ---------------------------------------------------------------- the byte stream


class _Stream:
    """dlib's primitive encodings, read from a bytes buffer."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of data at byte {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def integer(self) -> int:
        """A signed or unsigned integer (ser_helper::pack_int)."""
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if size == 0 or size > 8 or ctrl & 0x70:
            raise DlibFormatError(f"bad integer control byte 0x{ctrl:02x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if ctrl & 0x80 else value

    def text(self) -> str:
        n = self.integer()
        return self._take(n).decode("latin-1")

    def flag(self) -> bool:
        ch = self._take(1)
        if ch not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {ch!r} at byte {self.pos - 1}")
        return ch == b"1"

    def real(self) -> float:
        """float_details: mantissa * 2**exponent (the portable binary format)."""
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise DlibFormatError(f"old ASCII float format at byte {self.pos} is not supported")
        mantissa, exponent = self.integer(), self.integer()
        if exponent == _FLOAT_INF:
            return float("inf")
        if exponent == _FLOAT_NINF:
            return float("-inf")
        if exponent == _FLOAT_NAN:
            return float("nan")
        return math.ldexp(float(mantissa), exponent)

    def tensor(self) -> np.ndarray:
        """A resizable_tensor: (n, k, nr, nc) float32."""
        version = self.integer()
        if version != _TENSOR_VERSION:
            raise DlibFormatError(f"tensor version {version} at byte {self.pos}, expected {_TENSOR_VERSION}")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, ...]:
        """An alias_tensor: only its shape (a view into a layer's ``params``)."""
        version = self.integer()
        if version != 1:
            raise DlibFormatError(f"alias_tensor version {version} at byte {self.pos}")
        return tuple(self.integer() for _ in range(4))


# ---------------------------------------------------------------- layers


@dataclass(frozen=True)
class Layer:
    """One layer of a dlib network with the weights it needs at inference time.

    ``kind``: con, affine, relu, max_pool, avg_pool, tag, skip, add_prev, fc. ``tag`` is the id of a
    tag / skip / add_prev layer. ``arrays``: con ``weight`` (filters, k, nr, nc) and ``bias``;
    affine ``gamma`` / ``beta`` (per channel); fc ``weight`` (inputs, outputs) and ``bias``.
    ``attrs``: window, stride and padding of con and pools; ``relu`` (con's fused ReLU);
    ``disabled`` (relu / affine that pass their input through).
    """

    kind: str
    tag: int = 0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DlibNet:
    """A dlib network read from its serialization: input normalisation, layers input -> output."""

    channel_means: tuple[float, float, float]  # RGB, subtracted before dividing by 256
    size: tuple[int, int] | None  # (rows, cols) of input_rgb_image_sized, else None
    layers: tuple[Layer, ...]
    loss: str


def metric_resnet_layers(blocks: str = ANET_BLOCKS) -> tuple[str, ...]:
    """The layer sequence, output first, of dlib's metric-learning ResNet built from ``blocks``.

    Mirrors the C++ aliases of dnn_face_recognition_ex.cpp: ``block`` = affine, con, relu, affine,
    con; ``ares`` = relu(add_prev1(block(tag1(x)))); ``ares_down`` =
    relu(add_prev2(avg_pool(skip1(tag2(block(tag1(x))))))); the head is loss_metric, fc_no_bias,
    avg_pool_everything; the stem under the blocks is max_pool, relu, affine, con over the input.
    ``blocks`` lists the residual blocks from the output inwards (``D`` = ares_down, ``R`` = ares).
    """
    block = ["affine", "con", "relu", "affine", "con"]
    seq = ["loss_metric", "fc", "avg_pool"]
    for b in blocks:
        if b == "R":
            seq += ["relu", "add_prev1", *block, "tag1"]
        elif b == "D":
            seq += ["relu", "add_prev2", "avg_pool", "skip1", "tag2", *block, "tag1"]
        else:
            raise ValueError(f"unknown block {b!r} (expected D or R)")
    seq += ["max_pool", "relu", "affine", "con"]
    return tuple(seq)


def _split(token: str) -> tuple[str, int]:
    """``add_prev2`` -> (add_prev, 2); ``con`` -> (con, 0)."""
    for kind in ("add_prev", "tag", "skip"):
        if token.startswith(kind) and token[len(kind) :].isdigit():
            return kind, int(token[len(kind) :])
    return token, 0


def _params(s: _Stream) -> np.ndarray:
    """A layer's ``params`` tensor, flat: its alias_tensors say how it splits into weights."""
    return s.tensor().reshape(-1)


def _slice(params: np.ndarray, offset: int, shape: tuple[int, ...], what: str) -> np.ndarray:
    n = int(np.prod(shape))
    if offset + n > params.size:
        raise DlibFormatError(f"{what}: params hold {params.size} values, need {offset + n}")
    return params[offset : offset + n].reshape(shape)


def _read_con(s: _Stream, record: str) -> Layer:
    params = _params(s)
    num_filters, nr, nc, sy, sx, py, px = (s.integer() for _ in range(7))
    filters, biases = s.alias(), s.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        s.real()
    use_bias = s.flag() if record in ("con_5", "con_6") else True
    use_relu = s.flag() if record == "con_6" else False
    weight = _slice(params, 0, filters, "con")
    if weight.shape[0] != num_filters or weight.shape[2:] != (nr, nc):
        raise DlibFormatError(f"con filters {weight.shape} disagree with {num_filters} filters of {nr}x{nc}")
    arrays: dict[str, np.ndarray] = {"weight": weight.copy()}
    if use_bias:
        arrays["bias"] = _slice(params, weight.size, biases, "con bias").reshape(-1).copy()
    attrs = {"nr": nr, "nc": nc, "stride_y": sy, "stride_x": sx, "pad_y": py, "pad_x": px, "relu": int(use_relu)}
    return Layer("con", arrays=arrays, attrs=attrs)


def _read_bn_as_affine(s: _Stream) -> Layer:
    """A bn_con2 record converted to the affine layer it becomes at inference (affine_'s bn_ constructor)."""
    params = _params(s)
    gamma_shape, beta_shape = s.alias(), s.alias()
    s.tensor(), s.tensor()  # means, invstds of the last training batch
    running_means, running_variances = s.tensor().reshape(-1), s.tensor().reshape(-1)
    s.integer(), s.integer()  # num_updates, running_stats_window_size
    for _ in range(4):
        s.real()
    eps = s.real()
    gamma = _slice(params, 0, gamma_shape, "bn gamma").reshape(-1)
    beta = _slice(params, gamma.size, beta_shape, "bn beta").reshape(-1)
    g = (gamma / np.sqrt(running_variances + np.float32(eps))).astype(np.float32)
    b = (beta - g * running_means).astype(np.float32)
    return Layer("affine", arrays={"gamma": g, "beta": b})


def _read_affine(s: _Stream, record: str) -> Layer:
    if record == "bn_con2":
        return _read_bn_as_affine(s)
    params = _params(s)
    gamma_shape, beta_shape = s.alias(), s.alias()
    mode = s.integer()
    disabled = s.flag() if record == "affine_2" else False
    if mode != 0 and not disabled:
        raise DlibFormatError("affine layer in FC_MODE (per-element) is not supported")
    if disabled:
        return Layer("affine", attrs={"disabled": 1})
    gamma = _slice(params, 0, gamma_shape, "affine gamma").reshape(-1).copy()
    beta = _slice(params, gamma.size, beta_shape, "affine beta").reshape(-1).copy()
    return Layer("affine", arrays={"gamma": gamma, "beta": beta})


def _read_pool(s: _Stream, kind: str) -> Layer:
    nr, nc, sy, sx, py, px = (s.integer() for _ in range(6))
    return Layer(kind, attrs={"nr": nr, "nc": nc, "stride_y": sy, "stride_x": sx, "pad_y": py, "pad_x": px})


def _read_fc(s: _Stream, record: str) -> Layer:
    num_outputs, num_inputs = s.integer(), s.integer()
    params = _params(s)
    weights, biases = s.alias(), s.alias()
    bias_mode = s.integer()
    for _ in range(4):
        s.real()
    use_bias = s.flag() if record == "fc_3" else True
    has_bias = bias_mode != _FC_NO_BIAS and use_bias
    weight = _slice(params, 0, weights, "fc").reshape(weights[0], -1)  # (inputs, outputs, 1, 1) -> 2-D
    if weight.shape != (num_inputs, num_outputs):
        raise DlibFormatError(f"fc weights {weight.shape} disagree with {num_inputs} inputs, {num_outputs} outputs")
    arrays: dict[str, np.ndarray] = {"weight": weight.copy()}
    if has_bias:
        arrays["bias"] = _slice(params, weight.size, biases, "fc bias").reshape(-1).copy()
    return Layer("fc", arrays=arrays)


def _read_details(s: _Stream, kind: str, where: str) -> Layer:
    record = s.text()
    if record not in _RECORDS[kind]:
        raise DlibFormatError(f"{where}: expected a {kind} layer, found {record!r}")
    if kind == "con":
        return _read_con(s, record)
    if kind == "affine":
        return _read_affine(s, record)
    if kind == "relu":
        return Layer("relu", attrs={"disabled": int(s.flag())} if record == "relu_2" else {})
    if kind in ("max_pool", "avg_pool"):
        return _read_pool(s, kind)
    if kind == "fc":
        return _read_fc(s, record)
    return Layer(kind)  # add_prev_: no details


def _read_input(s: _Stream) -> tuple[tuple[float, float, float], tuple[int, int] | None]:
    record = s.text()
    if record not in ("input_rgb_image", "input_rgb_image_sized"):
        raise DlibFormatError(f"expected an RGB input layer, found {record!r}")
    means = (s.real(), s.real(), s.real())
    size = (s.integer(), s.integer()) if record == "input_rgb_image_sized" else None
    return means, size


def _read_loss(s: _Stream) -> str:
    if s.integer() != 1:
        raise DlibFormatError("not a dlib network (add_loss_layer version 1 expected at byte 0)")
    record = s.text()
    if record == "loss_metric_2":
        s.real(), s.real()  # margin, distance threshold: training-time only
    elif record != "loss_metric_":
        raise DlibFormatError(f"expected a loss_metric layer, found {record!r}")
    return record


def read_net(data: bytes, layers: Sequence[str] | None = None) -> DlibNet:
    """Parse a dlib network serialization (bz2-compressed or not) laid out as ``layers``.

    ``layers``: the layer sequence, output first, as :func:`metric_resnet_layers` gives it (the
    default is dlib's face recognition ResNet). Raises :class:`DlibFormatError` when the bytes do
    not hold that network.
    """
    if data[:3] == b"BZh":
        data = bz2.decompress(data)
    tokens = list(layers if layers is not None else metric_resnet_layers())
    if not tokens or tokens[0] != "loss_metric":
        raise ValueError("the layer sequence must start with its loss layer (loss_metric)")
    s = _Stream(data)
    loss = _read_loss(s)
    body = [_split(t) for t in tokens[1:]]
    if not body or body[-1][0] in ("tag", "skip"):
        raise ValueError("the innermost layer must be a computational layer over the input")
    # Versions, outermost first: tag/skip 1; add_layer 1-2; the add_layer over the input 2-3.
    versions = []
    for i, (kind, _) in enumerate(body):
        v = s.integer()
        allowed = (1,) if kind in ("tag", "skip") else ((2, 3) if i == len(body) - 1 else (1, 2))
        if v not in allowed:
            raise DlibFormatError(f"layer {i + 1} ({tokens[i + 1]}): version {v}, expected one of {allowed}")
        versions.append(v)
    means, size = _read_input(s)
    out: list[Layer] = []
    for i in range(len(body) - 1, -1, -1):
        kind, tag = body[i]
        if kind in ("tag", "skip"):
            out.append(Layer(kind, tag=tag))
            continue
        layer = _read_details(s, kind, f"layer {i + 1} ({tokens[i + 1]})")
        if kind == "add_prev":
            layer = Layer("add_prev", tag=tag)
        out.append(layer)
        # add_layer's training state: setup called, gradient stale, output disabled, x_grad, cached output
        s.flag(), s.flag(), s.flag(), s.tensor(), s.tensor()
        if i == len(body) - 1:  # the add_layer over the input: grad_final, then sample expansion (v3)
            s.tensor()
            if versions[i] >= 3:
                s.integer()
        elif versions[i] == 2:  # params_grad
            s.tensor()
    if s.pos != len(data):
        raise DlibFormatError(f"{len(data) - s.pos} bytes left over after the network")
    return DlibNet(channel_means=means, size=size, layers=tuple(out), loss=loss)


# ---------------------------------------------------------------- ONNX


class _Builder:
    """Appends ONNX nodes, tracking every activation's static (channels, rows, cols)."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.h, self.nh = helper, numpy_helper
        self.nodes: list = []
        self.inits: list = []
        self.n = 0

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base: str, arr: np.ndarray) -> str:
        name = self.name(base)
        self.inits.append(self.nh.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op: str, inputs: list[str], base: str, **attrs) -> str:
        out = self.name(base)
        self.nodes.append(self.h.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _out_size(size: int, window: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - window) // stride


def _pad_to(g: _Builder, x: str, shape: tuple[int, int, int], target: tuple[int, int, int]) -> str:
    """Zero-pad ``x`` at the end of channels, rows and cols up to ``target`` (tt::add's semantics)."""
    if shape == target:
        return x
    extra = [t - s for s, t in zip(shape, target)]
    pads = g.const("pads", np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64))
    return g.node("Pad", [x, pads], "pad", mode="constant")


def to_onnx(net: DlibNet, size: tuple[int, int] | None = None, name: str = "dlib_net") -> bytes:
    """The network as a serialized ONNX model: input ``chip`` [n, 3, rows, cols] float32 RGB
    0..255, output ``descriptor`` [n, outputs]. ``size`` is required when the input layer is not
    sized. An affine layer right after a convolution is folded into its weights (the same
    arithmetic up to float rounding, one pass less over the activations)."""
    import onnx
    from onnx import TensorProto

    size = size or net.size
    if size is None:
        raise ValueError("the input layer has no fixed size: pass size=(rows, cols)")
    g = _Builder()
    mean = g.const("channel_means", np.array(net.channel_means, dtype=np.float32).reshape(1, 3, 1, 1))
    scale = g.const("input_scale", np.array(1.0 / 256.0, dtype=np.float32))
    x = g.node("Mul", [g.node("Sub", ["chip", mean], "centred"), scale], "scaled")
    shape = (3, int(size[0]), int(size[1]))
    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
    layers = list(net.layers)
    i = 0
    while i < len(layers):
        layer = layers[i]
        k = layer.kind
        if k == "tag":
            tags[layer.tag] = (x, shape)
        elif k == "skip":
            x, shape = tags[layer.tag]
        elif k == "add_prev":
            y, yshape = tags[layer.tag]
            target = (max(shape[0], yshape[0]), max(shape[1], yshape[1]), max(shape[2], yshape[2]))
            x = g.node("Add", [_pad_to(g, x, shape, target), _pad_to(g, y, yshape, target)], "add")
            shape = target
        elif k == "con":
            a = layer.attrs
            w, b = layer.arrays["weight"], layer.arrays.get("bias")
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if nxt is not None and nxt.kind == "affine" and not nxt.attrs.get("disabled") and not a["relu"]:
                gamma, beta = nxt.arrays["gamma"], nxt.arrays["beta"]
                w = (w * gamma[:, None, None, None]).astype(np.float32)
                b = ((b if b is not None else np.zeros_like(gamma)) * gamma + beta).astype(np.float32)
                i += 1
            inputs = [x, g.const("con_w", w)] + ([g.const("con_b", b)] if b is not None else [])
            x = g.node(
                "Conv", inputs, "con", kernel_shape=[a["nr"], a["nc"]], strides=[a["stride_y"], a["stride_x"]],
                pads=[a["pad_y"], a["pad_x"], a["pad_y"], a["pad_x"]],
            )
            shape = (w.shape[0], _out_size(shape[1], a["nr"], a["stride_y"], a["pad_y"]),
                     _out_size(shape[2], a["nc"], a["stride_x"], a["pad_x"]))
            if a["relu"]:
                x = g.node("Relu", [x], "relu")
        elif k == "affine":
            if not layer.attrs.get("disabled"):
                c = shape[0]
                gm = g.const("gamma", layer.arrays["gamma"].reshape(1, c, 1, 1))
                bt = g.const("beta", layer.arrays["beta"].reshape(1, c, 1, 1))
                x = g.node("Add", [g.node("Mul", [x, gm], "affine_mul"), bt], "affine")
        elif k == "relu":
            if not layer.attrs.get("disabled"):
                x = g.node("Relu", [x], "relu")
        elif k in ("max_pool", "avg_pool"):
            a = layer.attrs
            if a["nr"] == 0 and a["nc"] == 0 and k == "avg_pool":
                x = g.node("GlobalAveragePool", [x], "avg_pool_all")
                shape = (shape[0], 1, 1)
            else:
                nr, nc = a["nr"] or shape[1], a["nc"] or shape[2]
                kw: dict = dict(kernel_shape=[nr, nc], strides=[a["stride_y"], a["stride_x"]],
                                pads=[a["pad_y"], a["pad_x"], a["pad_y"], a["pad_x"]])
                if k == "avg_pool":
                    kw["count_include_pad"] = 0  # dlib averages the window clipped to the image
                x = g.node("MaxPool" if k == "max_pool" else "AveragePool", [x], k, **kw)
                shape = (shape[0], _out_size(shape[1], nr, a["stride_y"], a["pad_y"]),
                         _out_size(shape[2], nc, a["stride_x"], a["pad_x"]))
        elif k == "fc":
            w = layer.arrays["weight"]
            if w.shape[0] != int(np.prod(shape)):
                raise DlibFormatError(f"fc takes {w.shape[0]} inputs, the layer below gives {shape}")
            flat = g.node("Flatten", [x], "flatten", axis=1)
            if "bias" in layer.arrays:
                x = g.node("Gemm", [flat, g.const("fc_w", w), g.const("fc_b", layer.arrays["bias"])], "fc")
            else:
                x = g.node("MatMul", [flat, g.const("fc_w", w)], "fc")
            shape = (w.shape[1], 1, 1)
        else:
            raise DlibFormatError(f"unsupported layer kind {k!r}")
        i += 1
    if net.layers and net.layers[-1].kind == "fc":
        out_shape: list = ["n", shape[0]]
    else:
        x = g.node("Flatten", [x], "flatten", axis=1)
        out_shape = ["n", int(np.prod(shape))]
    g.nodes.append(g.h.make_node("Identity", [x], ["descriptor"], name="descriptor"))
    h = g.h
    graph = h.make_graph(
        g.nodes, name,
        [h.make_tensor_value_info("chip", TensorProto.FLOAT, ["n", 3, int(size[0]), int(size[1])])],
        [h.make_tensor_value_info("descriptor", TensorProto.FLOAT, out_shape)],
        initializer=g.inits,
    )
    model = h.make_model(graph, producer_name=PRODUCER, producer_version=PRODUCER_VERSION,
                         opset_imports=[h.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)


def convert(data: bytes, blocks: str = ANET_BLOCKS) -> bytes:
    """dlib's face recognition ResNet ``.dat`` (optionally bz2) -> ONNX bytes (see :func:`to_onnx`)."""
    return to_onnx(read_net(data, metric_resnet_layers(blocks)), name="dlib_face_recognition_resnet_v1")

"""Convert a TensorFlow.js *graph model* (``model.json`` + weight shards) into an ONNX graph.

Why: npm packages ship useful face models only as TF.js graph models, and we run ONNX with
onnxruntime, never TensorFlow. The conversion runs at install time only and is deterministic
(fixed opset, IR version, producer; nodes in the JSON's order), so the built file can be verified
by SHA-256 like a downloaded one.

Supported: the ops of convolutional classifiers as TF.js's converter emits them (``_FusedConv2D``
with BiasAdd/Relu/Relu6 epilogues, ``Conv2D``, ``DepthwiseConv2dNative``, ``MaxPool``/``AvgPool``,
element-wise ``Add(V2)``/``Sub``/``Mul``/``Minimum``/``Maximum``, ``Relu``/``Relu6``/``Sigmoid``,
``Mean``/``Max`` reductions, ``_FusedMatMul``/``MatMul``, ``Softmax``, ``Identity``). Anything else
raises ``ValueError`` naming the op. Weights may be float32, float16 or affine-quantised
(uint8/uint16 with ``min``/``scale``); every one is dequantised to float32.

Layout: TF is NHWC, ONNX convolutions are NCHW. The graph input stays NHWC (as the TF.js
signature says); one Transpose follows it and every 4-D activation is NCHW from there on.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

OPSET = 13
IR_VERSION = 7
PRODUCER = "indexer-tfjs-converter"
PRODUCER_VERSION = "1"

#: TF.js weight dtypes -> numpy (tfjs-converter's ``DTYPE_VALUE_SIZE_MAP`` names).
_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANT = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}
#: NHWC axis -> NCHW axis, for reductions over activations.
_NHWC_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}


def decode_weights(manifest: list[dict[str, Any]], data: bytes) -> dict[str, np.ndarray]:
    """Weights by name from the concatenated shards, dequantised to float32 (int32 kept)."""
    out: dict[str, np.ndarray] = {}
    offset = 0
    for group in manifest:
        for w in group["weights"]:
            shape = [int(v) for v in w["shape"]]
            count = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            arr: np.ndarray
            if q:
                qtype = np.dtype(_QUANT[q["dtype"]])
                raw = np.frombuffer(data, qtype, count, offset)
                offset += count * qtype.itemsize
                if q["dtype"] == "float16":
                    arr = raw.astype(np.float32)
                else:  # affine: value = q * scale + min (tfjs-converter quantization.py)
                    arr = raw.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
            else:
                dt = np.dtype(_DTYPES[w["dtype"]])
                arr = np.frombuffer(data, dt, count, offset).copy()
                offset += count * dt.itemsize
            if w["dtype"] == "float32":
                arr = arr.astype(np.float32)
            out[w["name"]] = arr.reshape(shape)
    if offset != len(data):
        raise ValueError(f"weight data has {len(data)} bytes, the manifest describes {offset}")
    return out


def _attr(node: dict[str, Any], key: str, default: Any = None) -> Any:
    """A node attribute as a plain value (strings are base64 in the JSON)."""
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "list" in a:
        lst = a["list"]
        if "s" in lst:
            return [base64.b64decode(s).decode() for s in lst["s"]]
        return [int(i) for i in lst.get("i", [])] or [float(f) for f in lst.get("f", [])]
    for k in ("i", "f", "b"):
        if k in a:
            return int(a[k]) if k == "i" else a[k]
    return default


class _Converter:
    def __init__(self, model: dict[str, Any], weights: dict[str, np.ndarray]):
        from onnx import helper, numpy_helper

        self.h, self.nh = helper, numpy_helper
        self.model, self.weights = model, weights
        self.nodes: list = []
        self.inits: list = []
        self.names: dict[str, str] = {}  # TF tensor name -> ONNX tensor name
        self.rank: dict[str, int] = {}  # ONNX tensor -> rank (4 means NCHW activation)
        self.n = 0

    def _new(self, base: str) -> str:
        self.n += 1
        return f"{base.rsplit('/', 1)[-1]}_{self.n}"

    def const(self, arr: np.ndarray, base: str = "c") -> str:
        name = self._new(base)
        self.inits.append(self.nh.from_array(np.ascontiguousarray(arr), name))
        return name

    def emit(self, op: str, inputs: list[str], base: str, rank: int, **attrs: Any) -> str:
        y = self._new(base)
        self.nodes.append(self.h.make_node(op, inputs, [y], **attrs))
        self.rank[y] = rank
        return y

    def value(self, ref: str) -> str:
        name = ref.split(":")[0].lstrip("^")
        if name not in self.names:
            raise ValueError(f"tensor {name} is used before it is defined")
        return self.names[name]

    def weight(self, ref: str) -> np.ndarray:
        name = ref.split(":")[0]
        if name not in self.weights:
            raise ValueError(f"{name} is not a constant weight")
        return self.weights[name]

    # ---- op handlers -------------------------------------------------------------------------
    def conv(self, node: dict[str, Any], depthwise: bool) -> str:
        x = self.value(node["input"][0])
        w = self.weight(node["input"][1])  # HWIO, or HW C M for depthwise
        if _attr(node, "data_format", "NHWC") != "NHWC":
            raise ValueError(f"{node['name']}: only NHWC convolutions are supported")
        strides = _attr(node, "strides", [1, 1, 1, 1])[1:3]
        dil = _attr(node, "dilations", [1, 1, 1, 1])[1:3]
        pad = {"SAME": "SAME_UPPER", "VALID": "VALID"}[_attr(node, "padding")]
        kh, kw, cin, cm = w.shape
        if depthwise:
            wo, group = w.transpose(2, 3, 0, 1).reshape(cin * cm, 1, kh, kw), cin
        else:
            wo, group = w.transpose(3, 2, 0, 1), 1
        inputs = [x, self.const(wo.astype(np.float32), node["name"] + "/w")]
        fused = _attr(node, "fused_ops", []) if node["op"] == "_FusedConv2D" else []
        if fused and fused[0] == "BiasAdd":
            inputs.append(self.const(self.weight(node["input"][2]).astype(np.float32), node["name"] + "/b"))
            fused = fused[1:]
        elif fused:
            raise ValueError(f"{node['name']}: unsupported fused ops {fused}")
        y = self.emit("Conv", inputs, node["name"], 4, kernel_shape=[kh, kw], strides=strides, dilations=dil,
                      group=group, auto_pad=pad)
        return self.activation(y, fused, node)

    def activation(self, y: str, fused: list[str], node: dict[str, Any]) -> str:
        for act in fused:
            if act == "Relu":
                y = self.emit("Relu", [y], node["name"], self.rank[y])
            elif act == "Relu6":
                bounds = [self.const(np.array(0.0, np.float32)), self.const(np.array(6.0, np.float32))]
                y = self.emit("Clip", [y, *bounds], node["name"], self.rank[y])
            else:
                raise ValueError(f"{node['name']}: unsupported fused activation {act}")
        return y

    def pool(self, node: dict[str, Any]) -> str:
        k = _attr(node, "ksize")[1:3]
        s = _attr(node, "strides")[1:3]
        pad = {"SAME": "SAME_UPPER", "VALID": "VALID"}[_attr(node, "padding")]
        op = "MaxPool" if node["op"] == "MaxPool" else "AveragePool"
        extra = {"count_include_pad": 0} if op == "AveragePool" else {}
        return self.emit(op, [self.value(node["input"][0])], node["name"], 4, kernel_shape=k, strides=s,
                         auto_pad=pad, **extra)

    def operand(self, ref: str, other_rank: int) -> tuple[str, int]:
        """An element-wise operand; a constant beside an NCHW activation is laid out to broadcast."""
        name = ref.split(":")[0]
        if name in self.weights:
            arr = self.weights[name].astype(np.float32)
            if other_rank == 4 and arr.size > 1:
                # TF broadcasts a per-channel constant ([C], [1, 1, C], [1, 1, 1, C]) over the
                # trailing axis; in NCHW that is [C, 1, 1].
                if any(d != 1 for d in arr.shape[:-1]):
                    raise ValueError(f"{name}: only per-channel constants can meet an activation")
                arr = arr.reshape(-1, 1, 1)
            return self.const(arr, name), (4 if other_rank == 4 else arr.ndim)
        v = self.value(ref)
        return v, self.rank[v]

    def binary(self, node: dict[str, Any]) -> str:
        op = {"Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul", "Minimum": "Min", "Maximum": "Max",
              "RealDiv": "Div"}[node["op"]]
        ranks = [self.rank.get(self.names.get(r.split(":")[0], ""), 0) for r in node["input"][:2]]
        a, ra = self.operand(node["input"][0], max(ranks))
        b, rb = self.operand(node["input"][1], max(ranks))
        return self.emit(op, [a, b], node["name"], max(ra, rb))

    def reduce(self, node: dict[str, Any]) -> str:
        x = self.value(node["input"][0])
        axes = [int(a) for a in np.atleast_1d(self.weight(node["input"][1]))]
        r = self.rank[x]
        axes = [a % r for a in axes]
        if r == 4:
            axes = [_NHWC_TO_NCHW[a] for a in axes]
        keep = bool(_attr(node, "keep_dims", False))
        if r == 4 and (1 in axes if keep else sorted(axes) != [2, 3]):
            # Keeping dims must leave the channel axis (stays NCHW); dropping them, only a spatial
            # (global pooling) reduction gives a layout-free [N, C] result.
            raise ValueError(f"{node['name']}: unsupported reduction of an activation over axes {axes}")
        op = "ReduceMean" if node["op"] == "Mean" else "ReduceMax"
        return self.emit(op, [x], node["name"], r if keep else r - len(axes), axes=sorted(axes), keepdims=int(keep))

    def matmul(self, node: dict[str, Any]) -> str:
        x = self.value(node["input"][0])
        if self.rank[x] != 2:
            raise ValueError(f"{node['name']}: MatMul on a rank-{self.rank[x]} tensor")
        if _attr(node, "transpose_a", False) or _attr(node, "transpose_b", False):
            raise ValueError(f"{node['name']}: transposed MatMul is not supported")
        w = self.const(self.weight(node["input"][1]).astype(np.float32), node["name"] + "/w")
        fused = _attr(node, "fused_ops", []) if node["op"] == "_FusedMatMul" else []
        if fused and fused[0] == "BiasAdd":
            b = self.const(self.weight(node["input"][2]).astype(np.float32), node["name"] + "/b")
            y = self.emit("Gemm", [x, w, b], node["name"], 2)
            fused = fused[1:]
        else:
            y = self.emit("MatMul", [x, w], node["name"], 2)
        return self.activation(y, fused, node)

    def node(self, node: dict[str, Any]) -> str | None:
        op = node["op"]
        if op in ("Const",):
            return None
        if op == "Placeholder":
            raise ValueError("a graph model with more than one input is not supported")
        if op in ("_FusedConv2D", "Conv2D"):
            return self.conv(node, depthwise=False)
        if op == "DepthwiseConv2dNative":
            return self.conv(node, depthwise=True)
        if op in ("MaxPool", "AvgPool"):
            return self.pool(node)
        if op in ("Add", "AddV2", "Sub", "Mul", "Minimum", "Maximum", "RealDiv"):
            return self.binary(node)
        if op in ("Relu", "Relu6"):
            x = self.value(node["input"][0])
            return self.activation(x, [op], node)
        if op == "Sigmoid":
            x = self.value(node["input"][0])
            return self.emit("Sigmoid", [x], node["name"], self.rank[x])
        if op in ("Mean", "Max"):
            return self.reduce(node)
        if op in ("_FusedMatMul", "MatMul"):
            return self.matmul(node)
        if op == "Softmax":
            x = self.value(node["input"][0])
            if self.rank[x] != 2:
                raise ValueError(f"{node['name']}: Softmax on a rank-{self.rank[x]} tensor")
            return self.emit("Softmax", [x], node["name"], 2, axis=-1)
        if op == "Identity":
            return self.value(node["input"][0])
        raise ValueError(f"TF.js op {op} ({node['name']}) is not supported by the converter")

    def convert(self, outputs: list[str]) -> bytes:
        from onnx import TensorProto

        h = self.h
        topo = self.model["modelTopology"]["node"]
        places = [n for n in topo if n["op"] == "Placeholder"]
        if len(places) != 1:
            raise ValueError(f"expected one input, found {len(places)}")
        dims = [int(d.get("size", -1)) for d in places[0]["attr"]["shape"]["shape"]["dim"]]
        if len(dims) != 4:
            raise ValueError("only 4-D (NHWC image) inputs are supported")
        in_name = places[0]["name"]
        self.names[in_name] = self.emit("Transpose", [in_name], "to_nchw", 4, perm=[0, 3, 1, 2])
        for n in topo:
            if n["op"] != "Placeholder":
                y = self.node(n)
                if y is not None:
                    self.names[n["name"]] = y
        graph_outputs = []
        for i, ref in enumerate(outputs):
            src = self.value(ref)
            name = f"output_{i}"
            self.nodes.append(h.make_node("Identity", [src], [name]))
            dims_out = [f"d{i}_{k}" for k in range(self.rank[src])]
            graph_outputs.append(h.make_tensor_value_info(name, TensorProto.FLOAT, dims_out))
        inp = h.make_tensor_value_info(in_name, TensorProto.FLOAT, ["N"] + [d if d > 0 else None for d in dims[1:]])
        graph = h.make_graph(self.nodes, "tfjs_graph", [inp], graph_outputs, self.inits)
        model = h.make_model(graph, producer_name=PRODUCER, producer_version=PRODUCER_VERSION,
                             opset_imports=[h.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        import onnx

        onnx.checker.check_model(model)
        return model.SerializeToString()


def signature_outputs(model: dict[str, Any]) -> list[str]:
    """Output tensor names from the model's signature, in the signature's key order."""
    sig = model.get("signature") or model.get("userDefinedMetadata", {}).get("signature") or {}
    outs = sig.get("outputs") or {}
    if not outs:
        raise ValueError("the model has no signature outputs; name them explicitly")
    return [v.get("name", k) for k, v in outs.items()]


def convert(model_json: bytes, weight_data: bytes, outputs: list[str] | None = None) -> bytes:
    """ONNX model bytes for a TF.js graph model (``weight_data``: the shards concatenated in order).

    ``outputs``: TF tensor names to expose as ``output_0``, ``output_1``, ...; default the
    signature's outputs.
    """
    model = json.loads(model_json)
    if model.get("format") not in (None, "graph-model"):
        raise ValueError(f"not a TF.js graph model (format {model.get('format')!r})")
    weights = decode_weights(model["weightsManifest"], weight_data)
    return _Converter(model, weights).convert(outputs or signature_outputs(model))

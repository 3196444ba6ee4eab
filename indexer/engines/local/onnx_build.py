"""Build the MTCNN P-, R- and O-net as ONNX graphs from facenet-pytorch's state dicts.

The layer list mirrors ``facenet_pytorch/models/mtcnn.py`` (PNet/RNet/ONet ``forward``) exactly.
The graphs are built with the ``onnx`` helper API at install time only (never at analysis time),
with a fixed opset, IR version and producer so the same weights always give the same bytes,
which lets the installer verify the derived files by SHA-256 like the downloaded ones.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

OPSET = 13
IR_VERSION = 7
PRODUCER = "indexer-mtcnn-builder"
PRODUCER_VERSION = "1"


class _Graph:
    def __init__(self, sd: Mapping[str, np.ndarray]):
        from onnx import helper, numpy_helper

        self.h, self.nh, self.sd = helper, numpy_helper, sd
        self.nodes: list = []
        self.inits: list = []
        self.n = 0

    def _name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(self.nh.from_array(np.ascontiguousarray(arr), name))
        return name

    def conv(self, x: str, layer: str) -> str:
        w = self.const(f"{layer}.weight", self.sd[f"{layer}.weight"].astype(np.float32))
        b = self.const(f"{layer}.bias", self.sd[f"{layer}.bias"].astype(np.float32))
        y = self._name(layer)
        k = list(self.sd[f"{layer}.weight"].shape[2:])
        self.nodes.append(self.h.make_node("Conv", [x, w, b], [y], kernel_shape=k, strides=[1, 1]))
        return y

    def prelu(self, x: str, layer: str, spatial: bool) -> str:
        slope = self.sd[f"{layer}.weight"].astype(np.float32)
        slope = slope.reshape(-1, 1, 1) if spatial else slope.reshape(1, -1)
        s = self.const(f"{layer}.weight", slope)
        y = self._name(layer)
        self.nodes.append(self.h.make_node("PRelu", [x, s], [y]))
        return y

    def pool(self, x: str, k: int, s: int) -> str:
        y = self._name("pool")
        self.nodes.append(self.h.make_node("MaxPool", [x], [y], kernel_shape=[k, k], strides=[s, s], ceil_mode=1))
        return y

    def dense(self, x: str, layer: str) -> str:
        w = self.const(f"{layer}.weight", self.sd[f"{layer}.weight"].astype(np.float32))
        b = self.const(f"{layer}.bias", self.sd[f"{layer}.bias"].astype(np.float32))
        y = self._name(layer)
        self.nodes.append(self.h.make_node("Gemm", [x, w, b], [y], transB=1))
        return y

    def softmax(self, x: str, out: str) -> str:
        self.nodes.append(self.h.make_node("Softmax", [x], [out], axis=1))
        return out

    def identity(self, x: str, out: str) -> str:
        self.nodes.append(self.h.make_node("Identity", [x], [out]))
        return out

    def flatten_whc(self, x: str) -> str:
        """torch's ``x.permute(0, 3, 2, 1).contiguous().view(n, -1)``."""
        t = self._name("permute")
        self.nodes.append(self.h.make_node("Transpose", [x], [t], perm=[0, 3, 2, 1]))
        y = self._name("flatten")
        self.nodes.append(self.h.make_node("Flatten", [t], [y], axis=1))
        return y

    def model(self, name: str, in_shape: list, outputs: list[tuple[str, list]]) -> bytes:
        from onnx import TensorProto

        h = self.h
        graph = h.make_graph(
            self.nodes,
            name,
            [h.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
            [h.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
            initializer=self.inits,
        )
        m = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)], producer_name=PRODUCER)
        m.producer_version = PRODUCER_VERSION
        m.ir_version = IR_VERSION
        import onnx

        onnx.checker.check_model(m)
        return m.SerializeToString(deterministic=True)


def build_pnet(sd: Mapping[str, np.ndarray]) -> bytes:
    g = _Graph(sd)
    x = g.prelu(g.conv("input", "conv1"), "prelu1", True)
    x = g.pool(x, 2, 2)
    x = g.prelu(g.conv(x, "conv2"), "prelu2", True)
    x = g.prelu(g.conv(x, "conv3"), "prelu3", True)
    g.softmax(g.conv(x, "conv4_1"), "prob")
    g.identity(g.conv(x, "conv4_2"), "reg")
    return g.model("mtcnn_pnet", ["n", 3, "h", "w"], [("reg", ["n", 4, "oh", "ow"]), ("prob", ["n", 2, "oh", "ow"])])


def build_rnet(sd: Mapping[str, np.ndarray]) -> bytes:
    g = _Graph(sd)
    x = g.pool(g.prelu(g.conv("input", "conv1"), "prelu1", True), 3, 2)
    x = g.pool(g.prelu(g.conv(x, "conv2"), "prelu2", True), 3, 2)
    x = g.prelu(g.conv(x, "conv3"), "prelu3", True)
    x = g.prelu(g.dense(g.flatten_whc(x), "dense4"), "prelu4", False)
    g.softmax(g.dense(x, "dense5_1"), "prob")
    g.identity(g.dense(x, "dense5_2"), "reg")
    return g.model("mtcnn_rnet", ["n", 3, 24, 24], [("reg", ["n", 4]), ("prob", ["n", 2])])


def build_onet(sd: Mapping[str, np.ndarray]) -> bytes:
    g = _Graph(sd)
    x = g.pool(g.prelu(g.conv("input", "conv1"), "prelu1", True), 3, 2)
    x = g.pool(g.prelu(g.conv(x, "conv2"), "prelu2", True), 3, 2)
    x = g.pool(g.prelu(g.conv(x, "conv3"), "prelu3", True), 2, 2)
    x = g.prelu(g.conv(x, "conv4"), "prelu4", True)
    x = g.prelu(g.dense(g.flatten_whc(x), "dense5"), "prelu5", False)
    g.softmax(g.dense(x, "dense6_1"), "prob")
    g.identity(g.dense(x, "dense6_2"), "reg")
    g.identity(g.dense(x, "dense6_3"), "points")
    return g.model(
        "mtcnn_onet", ["n", 3, 48, 48], [("reg", ["n", 4]), ("points", ["n", 10]), ("prob", ["n", 2])]
    )

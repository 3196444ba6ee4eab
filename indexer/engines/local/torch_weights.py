"""Read PyTorch ``.pt`` state dicts without PyTorch.

Both of torch's on-disk formats are handled:

* the zip format (torch >= 1.6): ``<archive>/data.pkl`` plus one raw file per storage in
  ``<archive>/data/<key>``;
* the legacy format (what facenet-pytorch's MTCNN weights use): five pickles in a row (magic number,
  protocol version, system info, the object, the storage keys) followed by each storage's raw bytes,
  each preceded by its element count as a little-endian int64.

Unpickling is *restricted*: only the handful of globals a plain state dict needs are resolvable
(``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` and the
``torch.*Storage`` type names); anything else raises :class:`pickle.UnpicklingError`, so a malicious
file cannot run code. Tensors come back as numpy arrays.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from typing import Any

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage whose bytes may arrive later (legacy format)."""

    def __init__(self, dtype: np.dtype, numel: int | None):
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _LazyTensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise ValueError("tensor storage missing from the file")
        item = data.dtype.itemsize
        if not self.size:
            return np.array(data[self.offset])
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=tuple(s * item for s in self.stride)
        )
        return np.array(view, copy=True)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, fh, storages: dict[str, _Storage], zip_reader=None):
        super().__init__(fh)
        self._storages = storages
        self._zip_reader = zip_reader

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a weights file")

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError("unsupported storage type")
        numel = int(pid[4]) if len(pid) > 4 and pid[4] is not None else None
        st = self._storages.get(key)
        if st is None:
            st = _Storage(storage_type.dtype, numel)
            if self._zip_reader is not None:
                st.data = np.frombuffer(self._zip_reader(key), dtype=storage_type.dtype)
            self._storages[key] = st
        return st


def _materialize(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialize(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def load_state_dict(data: bytes) -> "collections.OrderedDict[str, np.ndarray]":
    """Parse the bytes of a ``.pt`` file into ``{name: numpy array}``."""
    storages: dict[str, _Storage] = {}
    if data[:4] == b"PK\x03\x04":
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = zf.namelist()
        pkl = next(n for n in names if n.endswith("/data.pkl") or n == "data.pkl")
        prefix = pkl[: -len("data.pkl")]

        def read(key: str) -> bytes:
            return zf.read(f"{prefix}data/{key}")

        obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkl)), storages, read).load()
        return _materialize(obj)

    fh = io.BytesIO(data)
    magic = _RestrictedUnpickler(fh, storages).load()
    if magic != _LEGACY_MAGIC:
        raise ValueError("not a PyTorch weights file (bad magic number)")
    _RestrictedUnpickler(fh, storages).load()  # protocol version
    sys_info = _RestrictedUnpickler(fh, storages).load()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise ValueError("big-endian PyTorch files are not supported")
    obj = _RestrictedUnpickler(fh, storages).load()
    keys = _RestrictedUnpickler(fh, storages).load()
    for key in keys:
        st = storages[str(key)]
        (numel,) = struct.unpack("<q", fh.read(8))
        nbytes = numel * st.dtype.itemsize
        buf = fh.read(nbytes)
        if len(buf) != nbytes:
            raise ValueError("truncated PyTorch weights file")
        st.data = np.frombuffer(buf, dtype=st.dtype)
    return _materialize(obj)

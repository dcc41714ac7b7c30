"""A small, independent GGUF reader (format: ggml's docs/gguf.md).

Reads the header, the metadata key/values and the tensor infos, and gives
each tensor's raw bytes as a numpy uint8 array. Written from the format
description so that the reference does not share code with the C++ reader.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

# Metadata value type ids.
_SCALAR_FORMATS = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i",
    6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d",
}
_STRING = 8
_ARRAY = 9

# Tensor type id -> (name, elements per block, bytes per block).
TENSOR_TYPES = {
    0: ("f32", 1, 4),
    1: ("f16", 1, 2),
    2: ("q4_0", 32, 18),
    3: ("q4_1", 32, 20),
    8: ("q8_0", 32, 34),
    12: ("q4_k", 256, 144),
    13: ("q5_k", 256, 176),
    14: ("q6_k", 256, 210),
    30: ("bf16", 1, 2),
}


@dataclass
class Tensor:
    name: str
    dims: list[int]  # ggml order: dims[0] is the row length
    type_name: str
    data: np.ndarray  # raw bytes, uint8

    @property
    def n_rows(self) -> int:
        rows = 1
        for d in self.dims[1:]:
            rows *= d
        return rows


class GgufFile:
    def __init__(self, path: str):
        with open(path, "rb") as f:
            self.raw = f.read()
        self.pos = 0
        if self.raw[:4] != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        self.pos = 4
        self.version = self._scalar("<I")
        if self.version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {self.version} not supported")
        n_tensors = self._scalar("<Q")
        n_kv = self._scalar("<Q")
        self.metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = self._string()
            self.metadata[key] = self._value(self._scalar("<I"))
        infos = []
        for _ in range(n_tensors):
            name = self._string()
            n_dims = self._scalar("<I")
            dims = [self._scalar("<Q") for _ in range(n_dims)]
            type_id = self._scalar("<I")
            offset = self._scalar("<Q")
            infos.append((name, dims, type_id, offset))
        alignment = int(self.metadata.get("general.alignment", 32))
        data_start = (self.pos + alignment - 1) // alignment * alignment
        buffer = np.frombuffer(self.raw, dtype=np.uint8)
        self.tensors: dict[str, Tensor] = {}
        for name, dims, type_id, offset in infos:
            if type_id not in TENSOR_TYPES:
                raise ValueError(f"tensor {name}: type id {type_id} not supported")
            type_name, block_elems, block_bytes = TENSOR_TYPES[type_id]
            n_elems = int(np.prod(dims))
            n_bytes = n_elems // block_elems * block_bytes
            start = data_start + offset
            if start + n_bytes > len(self.raw):
                raise ValueError(f"tensor {name} extends past the end of the file")
            self.tensors[name] = Tensor(name, dims, type_name, buffer[start:start + n_bytes])

    def _scalar(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        (value,) = struct.unpack_from(fmt, self.raw, self.pos)
        self.pos += size
        return value

    def _string(self) -> str:
        n = self._scalar("<Q")
        text = self.raw[self.pos:self.pos + n].decode("utf-8", errors="surrogateescape")
        self.pos += n
        return text

    def _value(self, type_id: int) -> Any:
        if type_id in _SCALAR_FORMATS:
            return self._scalar(_SCALAR_FORMATS[type_id])
        if type_id == _STRING:
            return self._string()
        if type_id == _ARRAY:
            elem_type = self._scalar("<I")
            count = self._scalar("<Q")
            if elem_type in _SCALAR_FORMATS and elem_type != 7:
                fmt = _SCALAR_FORMATS[elem_type]
                dtype = np.dtype(fmt)
                values = np.frombuffer(self.raw, dtype=dtype, count=count, offset=self.pos)
                self.pos += dtype.itemsize * count
                return values.tolist()
            return [self._value(elem_type) for _ in range(count)]
        raise ValueError(f"unknown metadata value type {type_id}")

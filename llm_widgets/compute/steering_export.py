"""Steering vectors written for other tools: safetensors, and the GGUF control-vector file that
llama.cpp (`--control-vector`) and repeng (`ControlVector.export_gguf` / `import_gguf`) read.

The GGUF layout (as repeng writes it with gguf's GGUFWriter): architecture "controlvector", the
string `controlvector.model_hint`, the uint32 `controlvector.layer_count`, and one float32 tensor
`direction.{i}` per block i, added (times the user's strength) to the output of block i. llama.cpp
never steers block 0 (it has no tensor for it), so a vector for block 0 is refused there.
Written here directly (GGUF version 3, little-endian, 32-byte alignment): no gguf dependency.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import LLMWidgetsError

_ALIGN = 32
_UINT32, _STRING = 4, 8
_F32 = 0


def save_safetensors(vector, path) -> None:
    """`vector.vectors` as tensors "layer.{block}" ([D] float32), method and position in the metadata."""
    from safetensors.numpy import save_file

    tensors = {f"layer.{b}": np.ascontiguousarray(v, np.float32) for b, v in zip(vector.layers, vector.vectors)}
    save_file(tensors, str(path), metadata={"method": str(vector.method), "position": str(vector.position),
                                            "model": str(vector.model)})


def _string(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def save_gguf(vector, path, model_hint: str | None = None) -> None:
    """The GGUF control-vector file of `vector` (see the module docstring)."""
    layers = [int(b) for b in vector.layers]
    if 0 in layers:
        raise LLMWidgetsError("llama.cpp's control vectors never steer block 0 (there is no direction.0): "
                              "compute the vector with layers=[...] leaving block 0 out to export it as GGUF.")
    hint = model_hint if model_hint is not None else (vector.model or "unknown")
    kv = [("general.architecture", _STRING, "controlvector"), ("controlvector.model_hint", _STRING, hint),
          ("controlvector.layer_count", _UINT32, len(layers))]
    meta = b""
    for key, kind, value in kv:
        meta += _string(key) + struct.pack("<I", kind)
        meta += _string(value) if kind == _STRING else struct.pack("<I", value)
    infos, data, offset = b"", b"", 0
    for b, v in zip(layers, vector.vectors):
        raw = np.ascontiguousarray(v, "<f4").tobytes()
        infos += _string(f"direction.{b}") + struct.pack("<IQIQ", 1, len(v), _F32, offset)
        pad = (-len(raw)) % _ALIGN
        data += raw + b"\0" * pad
        offset += len(raw) + pad
    header = b"GGUF" + struct.pack("<IQQ", 3, len(layers), len(kv)) + meta + infos
    header += b"\0" * ((-len(header)) % _ALIGN)
    Path(path).write_bytes(header + data)


def read_gguf(path) -> tuple[dict, dict]:
    """(metadata, {tensor name: float32 array}) of a GGUF control-vector file (the types it uses)."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"GGUF":
        raise LLMWidgetsError(f"{path} is not a GGUF file")
    pos = 4
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, pos)
    pos += 20

    def string():
        nonlocal pos
        (n,) = struct.unpack_from("<Q", buf, pos)
        pos += 8
        s = buf[pos:pos + n].decode("utf-8")
        pos += n
        return s

    meta = {}
    sizes = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
    for _ in range(n_kv):
        key = string()
        (kind,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        if kind == _STRING:
            meta[key] = string()
        elif kind in sizes:
            (meta[key],) = struct.unpack_from(sizes[kind], buf, pos)
            pos += struct.calcsize(sizes[kind])
        else:
            raise LLMWidgetsError(f"GGUF value type {kind} of {key!r} is not read here")
    infos = []
    for _ in range(n_tensors):
        name = string()
        (nd,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        dims = struct.unpack_from(f"<{nd}Q", buf, pos)
        pos += 8 * nd
        kind, off = struct.unpack_from("<IQ", buf, pos)
        pos += 12
        if kind != _F32:
            raise LLMWidgetsError(f"tensor {name!r} is not float32 (ggml type {kind})")
        infos.append((name, dims, off))
    start = pos + (-pos) % _ALIGN
    tensors = {name: np.frombuffer(buf, "<f4", int(np.prod(dims)), start + off).reshape(dims[::-1])
               for name, dims, off in infos}
    meta["version"] = version
    return meta, tensors

"""`save` / `load` of state dicts in the safetensors format, written atomically.

Tensors are stored under their '.'-joined path in the nested object ({"model": {"fc.weight": t}} ->
"model.fc.weight"), so any safetensors reader sees a flat dict of arrays. Everything else (numbers,
strings, None, the nesting itself, dict key types, tuples) goes as JSON into the file's metadata
under "fusegrad.structure". safetensors' numpy API has no bfloat16, so bfloat16 tensors are stored
as their raw uint16 bits and marked as bfloat16 in that structure.

A save writes the file into a temporary folder next to the target, fsyncs it and renames it over
the target: a crash at any point leaves either the old file or the new one, never a torn one. The
next save of the same path removes the folder a killed save left behind.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import dtypes, float8
from ..errors import Error
from ..tensor import Tensor, tensor

STRUCTURE_KEY = "fusegrad.structure"
ROOT_TENSOR_KEY = "tensor"  # the name of the one array when the saved object is a bare tensor
# safetensors dtype names -> fusegrad dtypes (raw bytes are decoded as the numpy type of each)
FROM_SAFETENSORS = {"F64": dtypes.float64, "F32": dtypes.float32, "F16": dtypes.float16, "BF16": dtypes.bfloat16,
                    "I64": dtypes.int64, "I32": dtypes.int32, "I16": dtypes.int16, "I8": dtypes.int8,
                    "U8": dtypes.uint8, "BOOL": dtypes.bool_}
NUMPY_OF = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
            "I8": "i1", "U8": "u1", "BOOL": "?", "U16": "<u2", "U32": "<u4", "U64": "<u8", "F8_E4M3": "u1",
            "F8_E5M2": "u1"}
FLOAT8_KINDS = {"F8_E4M3": dtypes.float8_e4m3fn, "F8_E5M2": dtypes.float8_e5m2}  # stored as their codes


class CheckpointError(Error):
    """A checkpoint that cannot be written or read (unsupported content, damaged file, no safetensors)."""


def _safetensors() -> Any:
    try:
        import safetensors
        import safetensors.numpy
    except ImportError as e:
        raise CheckpointError("fusegrad.save/load need the safetensors package: pip install safetensors "
                              "(or pip install 'fusegrad[io]')") from e
    return safetensors


# ---- save ----------------------------------------------------------------------------------

def _encode(obj: Any, path: tuple[str, ...], arrays: dict[str, np.ndarray]) -> Any:
    """JSON-able description of `obj`; tensors and arrays are moved into `arrays` under their path."""
    if isinstance(obj, (Tensor, np.ndarray)):
        key = ".".join(path) if path else ROOT_TENSOR_KEY
        if key in arrays:
            raise CheckpointError(f"two entries would be stored under the same name {key!r}")
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind not in "biuf" or obj.dtype.itemsize > 8:
                raise CheckpointError(f"cannot save a numpy array of dtype {obj.dtype} (at {key})")
            arrays[key] = np.require(obj, requirements="C")
            return {"$ndarray": key}
        value = obj.detach().numpy()
        if obj.dtype is dtypes.bfloat16:
            # numpy() widened the bits to float32 exactly; the upper 16 bits are the bfloat16 value
            arrays[key] = np.asarray(value.view(np.uint32) >> 16, dtype=np.uint16)  # asarray: 0-d stays an array
            return {"$tensor": key, "dtype": "bfloat16"}
        if obj.dtype in dtypes.FLOAT8:  # the codes, marked with their format
            arrays[key] = np.asarray(obj.detach().view(dtypes.uint8).numpy())
            return {"$tensor": key, "dtype": obj.dtype.name}
        arrays[key] = value
        return {"$tensor": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise CheckpointError(f"dict keys must be str or int, got {k!r} at {'.'.join(path) or 'the top'}")
            items.append([k, _encode(v, path + (str(k),), arrays)])
        return {"$dict": items}
    if isinstance(obj, (list, tuple)):
        encoded = [_encode(v, path + (str(i),), arrays) for i, v in enumerate(obj)]
        return {"$tuple": encoded} if isinstance(obj, tuple) else encoded
    raise CheckpointError(f"cannot save a {type(obj).__name__} (at {'.'.join(path) or 'the top'}): checkpoints "
                          "hold tensors, numpy arrays, numbers, strings, None, and dicts/lists/tuples of them")


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write `obj` (a state dict: nested dicts/lists of tensors, numbers, strings) to a safetensors file."""
    st = _safetensors()
    arrays: dict[str, np.ndarray] = {}
    structure = json.dumps(_encode(obj, (), arrays))
    target = Path(path)
    _remove_stale_temporaries(target)
    # a private folder next to the target: the writer's own scratch files land in it too, and one
    # rename inside the same filesystem publishes the finished file
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp"))
    try:
        staged = staging / target.name
        st.numpy.save_file(arrays, str(staged), metadata={STRUCTURE_KEY: structure})
        _fsync(staged)
        os.replace(staged, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _fsync(target.parent)  # makes the rename itself durable


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temporaries(target: Path) -> None:
    """Delete the staging folders that killed earlier saves of `target` left (their process is gone)."""
    prefix = f".{target.name}."
    for leftover in target.parent.glob(f"{prefix}*.tmp"):
        pid = leftover.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---- load ----------------------------------------------------------------------------------

def _read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    """Arrays, metadata and safetensors dtype names of every tensor in the file."""
    st = _safetensors()
    try:
        with st.safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
        entries = st.deserialize(path.read_bytes())
    except st.SafetensorError as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    arrays, kinds = {}, {}
    for name, entry in entries:
        kind = entry["dtype"]
        if kind not in NUMPY_OF:
            raise CheckpointError(f"{path}: tensor {name!r} has dtype {kind}, which fusegrad cannot read")
        arrays[name] = np.frombuffer(entry["data"], dtype=NUMPY_OF[kind]).reshape(entry["shape"])
        kinds[name] = kind
    return arrays, metadata, kinds


def _to_tensor(array: np.ndarray, kind: str, marked: str | None, name: str, device: Any) -> Tensor:
    """The tensor of a stored array: its safetensors `kind`, or the dtype the structure `marked` it with."""
    float8_dtype = FLOAT8_KINDS.get(kind) or next((d for d in dtypes.FLOAT8 if d.name == marked), None)
    if float8_dtype is not None:  # decoding is exact, so uploading encodes the same codes
        return tensor(float8.decode(array, float8.FORMATS[float8_dtype.name]), dtype=float8_dtype, device=device)
    if marked == "bfloat16" or kind == "BF16":
        # the bits widened to float32 are exact; uploading as bfloat16 rounds them back to the same bits
        return tensor((array.astype(np.uint32) << 16).view(np.float32), dtype=dtypes.bfloat16, device=device)
    if kind not in FROM_SAFETENSORS:
        raise CheckpointError(f"tensor {name!r} has dtype {kind}, which fusegrad tensors do not have "
                              "(load it with safetensors.numpy instead)")
    return tensor(array, dtype=FROM_SAFETENSORS[kind], device=device)


def _decode(node: Any, arrays: dict[str, np.ndarray], kinds: dict[str, str], device: Any) -> Any:
    if isinstance(node, list):
        return [_decode(v, arrays, kinds, device) for v in node]
    if not isinstance(node, dict):
        return node
    if "$tensor" in node:
        name = node["$tensor"]
        return _to_tensor(arrays[name], kinds[name], node.get("dtype"), name, device)
    if "$ndarray" in node:
        return arrays[node["$ndarray"]].copy()
    if "$tuple" in node:
        return tuple(_decode(v, arrays, kinds, device) for v in node["$tuple"])
    return {k: _decode(v, arrays, kinds, device) for k, v in node["$dict"]}


def load(path: str | os.PathLike, device: Any = None) -> Any:
    """Read a file written by `save` (the same nested object back), or any safetensors file (a flat
    dict of tensors). Tensors are created on `device` (default: the default device)."""
    arrays, metadata, kinds = _read(Path(path))
    if STRUCTURE_KEY not in metadata:
        return {name: _to_tensor(a, kinds[name], False, name, device) for name, a in arrays.items()}
    try:
        structure = json.loads(metadata[STRUCTURE_KEY])
        return _decode(structure, arrays, kinds, device)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: damaged {STRUCTURE_KEY} metadata ({e!r})") from e

"""Collation: samples into batches, on the device (`default_collate`) or on the host (`host_collate`).

Worker processes never make tensors: they build batches whose leaves are `HostArray`s (a numpy array
and the dtype its tensor gets), which cross the process boundary as plain arrays; the main process
turns each leaf into a tensor with one upload (`from_host`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import dtypes
from ..tensor import Tensor, stack, tensor



@dataclass(frozen=True)
class HostArray:
    """A batch leaf gathered on the host and the name of the dtype its tensor gets on upload."""

    array: np.ndarray
    dtype: str


def host_array_of(t: Tensor | np.ndarray) -> HostArray:
    """A tensor's (or array's) values on the host, keeping its fusegrad dtype."""
    if isinstance(t, Tensor):
        # bfloat16 comes back as float32, which holds every bfloat16 value exactly: re-uploading rounds to the same bits
        return HostArray(t.numpy(), t.dtype.name)
    return HostArray(t, dtypes.from_numpy_dtype(t.dtype).name)


def _map_structure(fn: Callable[[Any], Any], obj: Any, leaf: tuple[type, ...]) -> Any:
    """Apply `fn` to the leaves of type `leaf` inside tuples, lists and dicts."""
    if isinstance(obj, leaf):
        return fn(obj)
    if isinstance(obj, Mapping):
        return {key: _map_structure(fn, value, leaf) for key, value in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple keeps its type
        return type(obj)(*(_map_structure(fn, value, leaf) for value in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_map_structure(fn, value, leaf) for value in obj)
    return obj


def from_host(batch: Any) -> Any:
    """Upload every HostArray leaf of a batch as one tensor; other leaves stay as they are."""
    return _map_structure(lambda h: tensor(h.array, dtype=dtypes.to_dtype(h.dtype)), batch, (HostArray,))


def to_host(batch: Any) -> Any:
    """Every tensor leaf of a batch as a HostArray (what a worker sends back); other leaves stay."""
    return _map_structure(host_array_of, batch, (Tensor,))


def _number_dtype(samples: Sequence[Any]) -> type:
    """The numpy dtype fusegrad's tensor() gives a list of Python numbers (bool, int64 or float32)."""
    if isinstance(samples[0], bool):
        return np.bool_
    return np.float32 if any(isinstance(s, float) for s in samples) else np.int64


def _check_lengths(samples: Sequence[Sequence[Any]]) -> None:
    if any(len(s) != len(samples[0]) for s in samples):
        raise ValueError(f"default_collate: samples have different lengths {sorted({len(s) for s in samples})}")


def _rebuild(like: Sequence[Any], columns: list[Any]) -> Any:
    """Collated columns in the container kind of a sample: namedtuple, tuple or list."""
    if hasattr(like, "_fields"):
        return type(like)(*columns)
    return tuple(columns) if isinstance(like, tuple) else columns


def default_collate(samples: Sequence[Any]) -> Any:
    """Stack a list of samples: tensors and arrays along a new first dim, numbers into one tensor,
    tuples/lists/dicts element by element; strings and other objects stay a list."""
    first = samples[0]
    if isinstance(first, Tensor):
        return stack(list(samples))
    if isinstance(first, (np.ndarray, np.generic, bool, int, float)):
        return from_host(host_collate(samples))
    if isinstance(first, Mapping):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        _check_lengths(samples)
        return _rebuild(first, [default_collate(list(column)) for column in zip(*samples)])
    return list(samples)


def host_collate(samples: Sequence[Any]) -> Any:
    """`default_collate` on the host: the same structure, with HostArray leaves instead of tensors."""
    first = samples[0]
    if isinstance(first, Tensor):
        return HostArray(np.stack([s.numpy() for s in samples]), first.dtype.name)
    if isinstance(first, (np.ndarray, np.generic)):
        return host_array_of(np.stack([np.asarray(s) for s in samples]))
    if isinstance(first, (bool, int, float)):
        return host_array_of(np.asarray(samples, dtype=_number_dtype(samples)))
    if isinstance(first, Mapping):
        return {key: host_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        _check_lengths(samples)
        return _rebuild(first, [host_collate(list(column)) for column in zip(*samples)])
    return list(samples)


def default_convert(sample: Any) -> Any:
    """A sample without batching (batch_size=None): numpy arrays become tensors, structures are kept."""
    return _map_structure(lambda a: tensor(a), sample, (np.ndarray,))


def host_convert(sample: Any) -> Any:
    """`default_convert` on the host: numpy arrays and tensors become HostArray leaves."""
    return _map_structure(host_array_of, sample, (np.ndarray, Tensor))

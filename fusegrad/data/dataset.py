"""Datasets: the indexable collections a DataLoader draws batches from.

A dataset may offer a fast path, `get_batch(indices)`, that returns a whole collated batch at once.
The host-array datasets here implement it by gathering rows with numpy fancy indexing into one
contiguous array and uploading that once per tensor, instead of making a tensor per sample.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from .. import dtypes
from ..dtypes import DType
from ..errors import Error, ShapeError
from ..tensor import Tensor, tensor


class DatasetError(Error):
    """A dataset's files are missing, malformed or could not be fetched."""


class Dataset:
    """Abstract dataset: subclasses implement `__getitem__(index)` and `__len__()`."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")


def upload_rows(array: np.ndarray, indices: np.ndarray, dtype: DType) -> Tensor:
    """Gather `array[indices]` into one contiguous host array and upload it as one tensor."""
    return tensor(np.take(array, indices, axis=0), dtype=dtype)


def host_array(t: Tensor | np.ndarray) -> tuple[np.ndarray, DType]:
    """The host copy of a tensor (or array) that batches are gathered from, and its dtype."""
    if isinstance(t, np.ndarray):
        return t, dtypes.from_numpy_dtype(t.dtype)
    if not isinstance(t, Tensor):
        raise TypeError(f"TensorDataset expects Tensors or numpy arrays, got {type(t).__name__}")
    # bfloat16 comes back as float32, which holds every bfloat16 value exactly: re-uploading rounds to the same bits
    return t.numpy(), t.dtype


class TensorDataset(Dataset):
    """Samples are the rows (first dimension) of equally long tensors, like torch's TensorDataset."""

    def __init__(self, *tensors: Tensor | np.ndarray):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        hosts = [host_array(t) for t in tensors]
        if any(a.ndim == 0 for a, _ in hosts):
            raise ShapeError(f"TensorDataset: 0-d tensors have no rows (shapes {[tuple(a.shape) for a, _ in hosts]})")
        sizes = {a.shape[0] for a, _ in hosts}
        if len(sizes) > 1:
            raise ShapeError(f"TensorDataset: size mismatch between tensors, first dimensions are "
                             f"{[a.shape[0] for a, _ in hosts]} (shapes {[tuple(a.shape) for a, _ in hosts]})")
        self.tensors = tuple(t if isinstance(t, Tensor) else tensor(t) for t in tensors)
        self._arrays = [a for a, _ in hosts]
        self._dtypes = [d for _, d in hosts]

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self._arrays[0].shape[0]

    def get_batch(self, indices: np.ndarray) -> tuple[Tensor, ...]:
        """The rows at `indices` of every tensor, each gathered on the host and uploaded once."""
        return tuple(upload_rows(a, indices, d) for a, d in zip(self._arrays, self._dtypes))


class Subset(Dataset):
    """The samples of `dataset` at `indices` (keeps the parent's fast batch path)."""

    def __init__(self, dataset: Dataset, indices: Sequence[int] | np.ndarray):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(dataset)
        if self.indices.size and (self.indices.min() < -n or self.indices.max() >= n):
            raise IndexError(f"Subset: indices must be in [{-n}, {n}) for a dataset of {n} samples")

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    def __len__(self) -> int:
        return int(self.indices.size)

    @property
    def get_batch(self) -> Callable[[np.ndarray], Any] | None:
        """The parent's fast batch path mapped through `indices`, or None when the parent has none."""
        parent = getattr(self.dataset, "get_batch", None)
        return None if parent is None else functools.partial(_mapped_batch, parent, self.indices)


def _mapped_batch(get_batch: Callable[[np.ndarray], Any], mapping: np.ndarray, indices: np.ndarray) -> Any:
    return get_batch(mapping[indices])

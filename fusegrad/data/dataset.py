"""Datasets: the indexable collections a DataLoader draws batches from.

A dataset may offer a fast path, `host_batch(indices)`, that returns a whole collated batch at once
with HostArray leaves (what DataLoader workers send back), and `get_batch(indices)`, the same batch
uploaded. The host-array datasets here gather rows with numpy fancy indexing into one contiguous
array and upload that once per tensor, instead of making a tensor per sample.
"""
from __future__ import annotations

import bisect
import functools
import math
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .. import dtypes
from ..dtypes import DType
from ..errors import Error, ShapeError
from ..tensor import Tensor, tensor
from .collate import HostArray, from_host
from .sampler import seed_of


class DatasetError(Error):
    """A dataset's files are missing, malformed or could not be fetched."""


class Dataset:
    """Abstract dataset: subclasses implement `__getitem__(index)` and `__len__()`."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")


def host_array(t: Tensor | np.ndarray) -> tuple[np.ndarray, DType]:
    """The host copy of a tensor (or array) that batches are gathered from, and its dtype."""
    if isinstance(t, np.ndarray):
        return t, dtypes.from_numpy_dtype(t.dtype)
    if not isinstance(t, Tensor):
        raise TypeError(f"TensorDataset expects Tensors or numpy arrays, got {type(t).__name__}")
    # bfloat16 comes back as float32, which holds every bfloat16 value exactly: re-uploading rounds to the same bits
    return t.numpy(), t.dtype


class IterableDataset(Dataset):
    """A stream of samples: subclasses implement `__iter__()` (in workers, each worker iterates its own copy,
    and `get_worker_info()` tells it which share to produce)."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __getitem__(self, index: int) -> Any:
        raise TypeError(f"{type(self).__name__} is an IterableDataset: it is iterated, not indexed")


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

    def host_batch(self, indices: np.ndarray) -> tuple[HostArray, ...]:
        """The rows at `indices` of every tensor, gathered on the host."""
        return tuple(HostArray(np.take(a, indices, axis=0), d.name) for a, d in zip(self._arrays, self._dtypes))

    def get_batch(self, indices: np.ndarray) -> tuple[Tensor, ...]:
        """The rows at `indices` of every tensor, each gathered on the host and uploaded once."""
        return from_host(self.host_batch(indices))


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
    def host_batch(self) -> Callable[[np.ndarray], Any] | None:
        """The parent's host batch path mapped through `indices`, or None when the parent has none."""
        parent = getattr(self.dataset, "host_batch", None)
        return None if parent is None else functools.partial(_mapped_batch, parent, self.indices)

    @property
    def get_batch(self) -> Callable[[np.ndarray], Any] | None:
        """The parent's fast batch path mapped through `indices`, or None when the parent has none."""
        parent = getattr(self.dataset, "get_batch", None)
        return None if parent is None else functools.partial(_mapped_batch, parent, self.indices)


def _mapped_batch(get_batch: Callable[[np.ndarray], Any], mapping: np.ndarray, indices: np.ndarray) -> Any:
    return get_batch(mapping[np.asarray(indices, dtype=np.int64)])


class ConcatDataset(Dataset):
    """The samples of several datasets one after another (keeps a fast path when every part has one)."""

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = list(datasets)
        # AssertionError, as torch raises
        if not self.datasets:
            raise AssertionError("ConcatDataset: datasets should not be an empty iterable")
        if any(isinstance(d, IterableDataset) for d in self.datasets):
            raise AssertionError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]).tolist())

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        if index < 0:
            if -index > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            index += len(self)
        part = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[part - 1] if part else 0
        return self.datasets[part][index - start]

    @property
    def host_batch(self) -> Callable[[np.ndarray], Any] | None:
        """Rows gathered from each part's host batch and put back in the order asked, or None without one."""
        if any(getattr(d, "host_batch", None) is None for d in self.datasets):
            return None
        return self._host_batch

    @property
    def get_batch(self) -> Callable[[np.ndarray], Any] | None:
        """The host batch uploaded once per leaf, or None when a part has no fast path."""
        return None if self.host_batch is None else self._get_batch

    def _get_batch(self, indices: np.ndarray) -> Any:
        return from_host(self._host_batch(indices))

    def _host_batch(self, indices: np.ndarray) -> Any:
        indices = np.asarray(indices, dtype=np.int64)
        indices = np.where(indices < 0, indices + len(self), indices)
        if indices.size == 0:
            return self.datasets[0].host_batch(indices)
        which = np.searchsorted(self.cumulative_sizes, indices, side="right")
        starts = [0, *self.cumulative_sizes[:-1]]
        parts, positions = [], []
        for part in np.unique(which):
            where = np.nonzero(which == part)[0]
            parts.append(self.datasets[part].host_batch(indices[where] - starts[part]))
            positions.append(where)
        return _merge(parts, np.argsort(np.concatenate(positions), kind="stable"))


def _merge(parts: list[Any], order: np.ndarray) -> Any:
    """Concatenate the HostArray leaves of equally structured batches and reorder their rows."""
    first = parts[0]
    if isinstance(first, HostArray):
        return HostArray(np.concatenate([p.array for p in parts])[order], first.dtype)
    if isinstance(first, dict):
        return {key: _merge([p[key] for p in parts], order) for key in first}
    if isinstance(first, (tuple, list)):
        return type(first)(_merge(list(column), order) for column in zip(*parts))
    raise TypeError(f"ConcatDataset: cannot merge host batches holding {type(first).__name__}")


def random_split(dataset: Dataset, lengths: Sequence[int | float], generator: Any = None) -> list[Subset]:
    """Split a dataset into non-overlapping random Subsets of the given lengths (or fractions summing to 1).

    The permutation is numpy's, seeded from `generator.initial_seed()` or, without a generator, from
    fusegrad's global random stream (so `fg.manual_seed` reproduces it).
    """
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        sizes = []
        for i, fraction in enumerate(lengths):
            if fraction < 0 or fraction > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            sizes.append(int(math.floor(n * fraction)))
        for i in range(n - sum(sizes)):  # the rounding remainder, one each round-robin, like torch
            sizes[i % len(sizes)] += 1
        lengths = sizes
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    order = np.random.default_rng(seed_of(generator)).permutation(n)
    bounds = np.cumsum([0, *lengths])
    return [Subset(dataset, order[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:])]

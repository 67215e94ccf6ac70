"""DataLoader: batches of fusegrad tensors from a Dataset, shuffled reproducibly per epoch.

Shuffling is index bookkeeping on the host: each epoch's order is a numpy permutation drawn from a
generator seeded with (seed, epoch), so a seed reproduces every epoch and each epoch differs.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .. import dtypes
from ..random import randint
from ..tensor import Tensor, stack, tensor
from .dataset import Dataset


def default_collate(samples: Sequence[Any]) -> Any:
    """Stack a list of samples: tensors and arrays along a new first dim, numbers into one tensor,
    tuples/lists/dicts element by element; strings and other objects stay a list."""
    first = samples[0]
    if isinstance(first, Tensor):
        return stack(list(samples))
    if isinstance(first, (np.ndarray, np.generic)):
        return tensor(np.stack([np.asarray(s) for s in samples]))
    if isinstance(first, (bool, int, float)):
        return tensor(list(samples))
    if isinstance(first, Mapping):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise ValueError(f"default_collate: samples have different lengths {sorted({len(s) for s in samples})}")
        columns = [default_collate(list(column)) for column in zip(*samples)]
        return tuple(columns) if isinstance(first, tuple) else columns
    return list(samples)


class DataLoader:
    """Iterate over `dataset` in batches of fusegrad tensors (PyTorch's DataLoader, single process).

    Datasets with a `get_batch(indices)` fast path (TensorDataset, MNIST, FashionMNIST, Subset of
    those) assemble each batch with one gather and one upload per tensor; others are indexed per
    sample and combined with `collate` (default: `default_collate`).
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, collate: Callable[[list[Any]], Any] | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.collate = collate
        self.epoch = 0
        self._base_seed = None if seed is None else int(seed) & (2**64 - 1)  # numpy seeds must be non-negative

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use the order of `epoch` (iterations otherwise count epochs themselves)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of one epoch, in the order they are served."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        if self._base_seed is None:
            # drawn from fusegrad's global stream, so fg.manual_seed makes unseeded loaders reproducible too
            self._base_seed = int(randint(0, 2**31, (), dtype=dtypes.int64).item())
        return np.random.default_rng([self._base_seed, epoch]).permutation(n)

    def __iter__(self) -> Iterator[Any]:
        indices = self.order(self.epoch)
        self.epoch += 1
        return self._batches(indices)

    def _batches(self, indices: np.ndarray) -> Iterator[Any]:
        fast = getattr(self.dataset, "get_batch", None) if self.collate is None else None
        collate = self.collate or default_collate
        stop = len(indices) - len(indices) % self.batch_size if self.drop_last else len(indices)
        for start in range(0, stop, self.batch_size):
            chunk = indices[start:start + self.batch_size]
            if fast is not None:
                yield fast(chunk)
            else:
                yield collate([self.dataset[int(i)] for i in chunk])

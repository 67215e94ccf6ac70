"""Samplers: the order in which a DataLoader visits a dataset's indices (torch.utils.data's samplers).

Random samplers are index bookkeeping on the host: each pass draws from a numpy generator seeded with
(seed, epoch), where the seed is `generator.initial_seed()` or, without a generator, one number drawn
once from fusegrad's global random stream (so `fg.manual_seed` reproduces it). A sampler's passes
count epochs, so each pass differs and a seed reproduces them all; `set_epoch(e)` replays epoch `e`.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence, Sized

import numpy as np

from .. import dtypes
from ..random import randint
from ..tensor import Tensor


def seed_of(generator: Any) -> int:
    """A non-negative seed from a generator (anything with `initial_seed()`), or from fusegrad's global stream."""
    if generator is None:
        return int(randint(0, 2**31, (), dtype=dtypes.int64).item())
    if not callable(getattr(generator, "initial_seed", None)):
        raise TypeError(f"generator must have an initial_seed() method (fusegrad or torch Generator), "
                        f"got {type(generator).__name__}")
    return int(generator.initial_seed()) & (2**64 - 1)  # numpy seeds must be non-negative


class Sampler:
    """Base class: subclasses implement `__iter__` over dataset indices (and usually `__len__`)."""

    def __init__(self, data_source: Sized | None = None):
        del data_source  # accepted for torch compatibility; subclasses keep what they need

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


class SequentialSampler(Sampler):
    """Indices 0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source: Sized):
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class _EpochSampler(Sampler):
    """A sampler whose passes are numbered epochs of one seeded numpy stream."""

    def __init__(self, generator: Any):
        self.generator = generator
        self.epoch = 0
        self._seed: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use the order of `epoch` (passes otherwise count epochs themselves)."""
        self.epoch = int(epoch)

    def _rng(self, epoch: int) -> np.random.Generator:
        if self._seed is None:
            self._seed = seed_of(self.generator)
        return np.random.default_rng([self._seed, epoch])

    def order(self, epoch: int) -> np.ndarray:
        """The indices of one epoch, in the order they are served."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)
        self.epoch += 1
        return iter(order.tolist())


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")


class RandomSampler(_EpochSampler):
    """A random permutation of the indices, or `num_samples` draws with replacement."""

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: int | None = None,
                 generator: Any = None, *, seed: int | None = None):
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement}")
        if num_samples is not None:
            _positive_int("num_samples", num_samples)
        super().__init__(generator)
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        if seed is not None:
            self._seed = int(seed) & (2**64 - 1)

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def order(self, epoch: int) -> np.ndarray:
        n, rng = len(self.data_source), self._rng(epoch)
        if self.replacement:
            return rng.integers(0, n, self.num_samples, dtype=np.int64)
        # more samples than the dataset holds: whole permutations, then part of one (torch)
        whole, rest = divmod(self.num_samples, n) if n else (0, 0)
        return np.concatenate([rng.permutation(n) for _ in range(whole)] + [rng.permutation(n)[:rest]])

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(_EpochSampler):
    """The given indices in a random order."""

    def __init__(self, indices: Sequence[int], generator: Any = None):
        super().__init__(generator)
        self.indices = indices

    def order(self, epoch: int) -> np.ndarray:
        return np.asarray(self.indices, dtype=np.int64)[self._rng(epoch).permutation(len(self.indices))]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(_EpochSampler):
    """`num_samples` indices in [0, len(weights)), drawn with probabilities proportional to `weights`."""

    def __init__(self, weights: Sequence[float] | np.ndarray | Tensor, num_samples: int, replacement: bool = True,
                 generator: Any = None):
        _positive_int("num_samples", num_samples)
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement}")
        values = weights.numpy() if isinstance(weights, Tensor) else np.asarray(weights)
        if values.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape {tuple(values.shape)}")
        super().__init__(generator)
        self.weights = values.astype(np.float64)
        self.num_samples = num_samples
        self.replacement = replacement

    def order(self, epoch: int) -> np.ndarray:
        w = self.weights
        if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise RuntimeError("invalid multinomial distribution (weights must be finite, non-negative, sum > 0)")
        if not self.replacement and self.num_samples > np.count_nonzero(w):
            raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
        return self._rng(epoch).choice(len(w), self.num_samples, replace=self.replacement, p=w / w.sum())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Group the indices of another sampler into lists of `batch_size` (the last shorter unless `drop_last`)."""

    def __init__(self, sampler: Sampler | Iterable[int], batch_size: int, drop_last: bool):
        _positive_int("batch_size", batch_size)
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

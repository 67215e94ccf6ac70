"""DataLoader: batches of fusegrad tensors from a Dataset (torch.utils.data.DataLoader's arguments).

Indices come from a sampler (sequential, or a seeded permutation per epoch when shuffling) grouped by
a BatchSampler. A batch of a dataset with a fast path (`get_batch(indices)`: TensorDataset, MNIST,
Subset and ConcatDataset of those) is gathered on the host and uploaded in one copy per tensor; other
datasets are indexed per sample and collated. With `num_workers > 0`, worker processes build the
batches on the host (`worker.py`) and the main process uploads them.
"""
from __future__ import annotations

import multiprocessing
from typing import Any, Callable, Iterator

import numpy as np

from .collate import default_collate, default_convert, host_collate, host_convert
from .dataset import Dataset, IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, seed_of


class _Fetcher:
    """Turns a batch sampler's indices (or the next items of an iterable) into a batch.

    `on_host` batches (workers) have HostArray leaves; the main process's are uploaded tensors.
    """

    def __init__(self, dataset: Dataset, auto_collation: bool, collate_fn: Callable[[list[Any]], Any] | None,
                 drop_last: bool, batch_size: int | None, on_host: bool):
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.user_collate = collate_fn is not None
        self.drop_last = drop_last
        self.batch_size = batch_size
        if collate_fn is not None:
            self.collate = collate_fn
        elif auto_collation:
            self.collate = host_collate if on_host else default_collate
        else:
            self.collate = host_convert if on_host else default_convert
        self.fast = None
        if auto_collation and collate_fn is None:
            self.fast = getattr(dataset, "host_batch" if on_host else "get_batch", None)

    def indexed(self, indices: Any) -> Any:
        """The batch of a map-style dataset at `indices` (one index without auto-collation)."""
        if not self.auto_collation:
            return self.collate(self.dataset[indices])
        if self.fast is not None:
            return self.fast(np.asarray(indices, dtype=np.int64))
        return self.collate([self.dataset[i] for i in indices])

    def streamed(self, iterator: Iterator[Any]) -> Any:
        """The next batch of an iterable dataset; raises StopIteration when it is exhausted."""
        if not self.auto_collation:
            return self.collate(next(iterator))
        items = []
        for item in iterator:
            items.append(item)
            if len(items) == self.batch_size:
                break
        if not items or (self.drop_last and len(items) < self.batch_size):
            raise StopIteration
        return self.collate(items)


class DataLoader:
    """Iterate over `dataset` in batches of fusegrad tensors, like torch.utils.data.DataLoader.

    `seed=` (fusegrad's) seeds shuffling directly; `pin_memory` is accepted and does nothing (host
    batches are uploaded straight from pageable numpy memory). `collate` is another name for `collate_fn`.
    """

    def __init__(self, dataset: Dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Sampler | Any = None, batch_sampler: Any = None, num_workers: int = 0,
                 collate_fn: Callable[[list[Any]], Any] | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn: Callable[[int], None] | None = None,
                 multiprocessing_context: Any = None, generator: Any = None, *, prefetch_factor: int | None = None,
                 persistent_workers: bool = False, seed: int | None = None,
                 collate: Callable[[list[Any]], Any] | None = None):
        if collate is not None:
            if collate_fn is not None:
                raise ValueError("pass either collate_fn or collate (the same argument), not both")
            collate_fn = collate
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                             "let num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None.")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size!r}")
        self.iterable = isinstance(dataset, IterableDataset)
        if self.iterable:
            if shuffle not in (None, False):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, "
                                 f"but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, "
                                 f"but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified batch_sampler option, "
                                 f"but got batch_sampler={batch_sampler}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                 "and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        if not self.iterable:
            if sampler is None:
                sampler = RandomSampler(dataset, generator=generator, seed=seed) if shuffle \
                    else SequentialSampler(dataset)
            if batch_size is not None and batch_sampler is None:
                batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = persistent_workers
        self._workers: Any = None  # the persistent workers' iterator

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None or (self.iterable and self.batch_size is not None)

    @property
    def _index_sampler(self) -> Any:
        return self.batch_sampler if self.batch_sampler is not None else self.sampler

    def fetcher(self, on_host: bool) -> _Fetcher:
        """What turns indices into batches, for the main process (tensors) or a worker (host arrays)."""
        return _Fetcher(self.dataset, self._auto_collation, self.collate_fn, self.drop_last, self.batch_size, on_host)

    def context(self) -> Any:
        """The multiprocessing context workers start in: the one given, else fork where the OS has it."""
        if self.multiprocessing_context is None:
            methods = multiprocessing.get_all_start_methods()
            return multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        if isinstance(self.multiprocessing_context, str):
            return multiprocessing.get_context(self.multiprocessing_context)
        return self.multiprocessing_context

    def base_seed(self) -> int:
        """The seed of this pass's workers (each adds its id), from `generator` or fusegrad's stream."""
        return seed_of(self.generator) + (getattr(self.sampler, "epoch", 0) << 20)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use the order of `epoch` (iterations otherwise count epochs themselves)."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of one epoch, in the order they are served."""
        if hasattr(self.sampler, "order"):
            return self.sampler.order(epoch)
        return np.asarray(list(self.sampler), dtype=np.int64)

    @property
    def epoch(self) -> int:
        """The epoch the next iteration serves."""
        return getattr(self.sampler, "epoch", 0)

    def __len__(self) -> int:
        if self.iterable:
            n = len(self.dataset)  # type: ignore[arg-type]
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self._index_sampler)

    def __iter__(self) -> Iterator[Any]:
        if self.num_workers == 0:
            return self._single_process()
        from .worker import WorkerIterator
        if self.persistent_workers:
            if self._workers is None:
                self._workers = WorkerIterator(self)
            else:
                self._workers.reset()
            return self._workers
        return WorkerIterator(self)

    def _single_process(self) -> Iterator[Any]:
        fetch = self.fetcher(on_host=False)
        if self.iterable:
            iterator = iter(self.dataset)
            while True:
                try:
                    batch = fetch.streamed(iterator)
                except StopIteration:
                    return
                yield batch
        for indices in self._index_sampler:
            yield fetch.indexed(indices)

    def __del__(self) -> None:
        if getattr(self, "_workers", None) is not None:
            self._workers.shutdown()

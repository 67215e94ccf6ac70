"""DataLoader worker processes: batches built on the host in parallel, uploaded by the main process.

Each worker reads tasks `(epoch, index, indices)` from its own queue and puts `(epoch, index, payload)`
on one shared result queue; the payload is the pickled host batch (HostArray leaves, no tensors), or a
`_Failure` carrying the exception's type and traceback text, or `_Exhausted` when an iterable dataset's
copy in that worker has nothing left. The main process hands tasks out round-robin, keeps
`prefetch_factor` per worker in flight, and serves results in task order; results of an earlier
epoch (persistent workers reset mid-epoch) are dropped by their epoch tag.

Workers start with fork where the OS has it, as torch's do: they inherit the dataset without pickling.
Kernel work in a worker runs in a forked copy of the process (compiling what that copy has not seen;
GPU contexts do not survive a fork), so the main process fetches a one-sample batch first: datasets
that convert lazily (MNIST) then convert once, before the fork, instead of once per worker. Datasets
used with workers should yield numpy arrays or realized tensors.
"""
from __future__ import annotations

import itertools
import pickle
import queue
import random
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..random import manual_seed
from .collate import from_host, to_host
from .dataset import Dataset

_POLL_SECONDS = 1.0  # how often a waiting main process checks that its workers are alive


@dataclass(frozen=True)
class WorkerInfo:
    """What `get_worker_info()` tells the dataset code running in a worker."""

    id: int
    num_workers: int
    seed: int
    dataset: Dataset


_info: WorkerInfo | None = None  # set once in each worker process, None in the main process


def get_worker_info() -> WorkerInfo | None:
    """This worker's id, the worker count, its seed and its copy of the dataset; None in the main process."""
    return _info


@dataclass(frozen=True)
class _Failure:
    worker_id: int
    type: type
    traceback: str

    def reraise(self) -> None:
        message = f"Caught {self.type.__name__} in DataLoader worker process {self.worker_id}.\nOriginal " \
                  f"{self.traceback}"
        try:
            error = self.type(message)
        except Exception:  # an exception type whose constructor wants other arguments
            error = RuntimeError(message)
        raise error


@dataclass(frozen=True)
class _Exhausted:
    worker_id: int


def _failure(worker_id: int, error: BaseException) -> _Failure:
    kind = type(error)
    try:
        pickle.loads(pickle.dumps(kind))
    except Exception:  # a class defined where the main process cannot find it
        kind = RuntimeError
    return _Failure(worker_id, kind, traceback.format_exc())


@dataclass(frozen=True)
class _Job:
    """What a worker needs of its DataLoader (picklable for the spawn start method)."""

    dataset: Dataset
    fetch: Any
    iterable: bool
    num_workers: int
    worker_init_fn: Any


def _worker_loop(job: _Job, tasks: Any, results: Any, worker_id: int, base_seed: int) -> None:
    """Serve tasks until the None that shuts the worker down."""
    global _info
    results.cancel_join_thread()  # exiting never waits on results nobody will read
    seed = base_seed + worker_id
    random.seed(seed)
    np.random.seed(seed % 2**32)
    manual_seed(seed)
    _info = WorkerInfo(worker_id, job.num_workers, seed, job.dataset)
    init_error = None
    try:
        if job.worker_init_fn is not None:
            job.worker_init_fn(worker_id)
    except Exception as error:
        init_error = _failure(worker_id, error)
    fetch = job.fetch
    epoch, iterator = None, None
    while True:
        task = tasks.get()
        if task is None:
            return
        task_epoch, index, indices = task
        payload: Any = init_error
        if payload is None:
            try:
                if not job.iterable:
                    payload = to_host(fetch.indexed(indices))
                else:
                    if epoch != task_epoch:  # a new pass: a fresh iterator over this worker's copy
                        epoch, iterator = task_epoch, iter(job.dataset)
                    payload = to_host(fetch.streamed(iterator))
                payload = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
            except StopIteration as error:  # the end of an iterable's copy; from __getitem__, an error
                payload = _Exhausted(worker_id) if job.iterable else _failure(worker_id, error)
            except Exception as error:
                payload = _failure(worker_id, error)
        results.put((task_epoch, index, payload))


class WorkerIterator:
    """One pass over a DataLoader with worker processes (reused across passes with persistent workers)."""

    def __init__(self, loader: Any):
        self.loader = loader
        context = loader.context()
        if not loader.iterable and getattr(loader.dataset, "host_batch", None) is not None and len(loader.dataset):
            loader.dataset.host_batch(np.zeros(1, dtype=np.int64))  # lazy conversions run here, once
        self._results = context.Queue()
        self._tasks = [context.Queue() for _ in range(loader.num_workers)]
        base_seed = loader.base_seed()
        job = _Job(loader.dataset, loader.fetcher(on_host=True), loader.iterable, loader.num_workers,
                   loader.worker_init_fn)
        self._workers = [context.Process(target=_worker_loop, args=(job, q, self._results, i, base_seed),
                                         daemon=True) for i, q in enumerate(self._tasks)]
        for w in self._workers:
            w.start()
        self._closed = False
        self._epoch = 0
        self._start()

    def _start(self) -> None:
        self._epoch += 1
        n = self.loader.num_workers
        self._sampler = None if self.loader.iterable else iter(self.loader._index_sampler)
        self._sent = self._served = 0
        self._waiting: dict[int, Any] = {}
        self._active = [True] * n
        self._turn = itertools.cycle(range(n))
        for _ in range(self.loader.prefetch_factor * n):
            self._dispatch()

    def reset(self) -> None:
        """Start the next pass with the same workers (persistent_workers)."""
        self._start()

    def _dispatch(self) -> None:
        """Send the next task to the next worker that still has data."""
        if not any(self._active):
            return
        worker = next(self._turn)
        while not self._active[worker]:
            worker = next(self._turn)
        indices = None
        if self._sampler is not None:
            indices = next(self._sampler, None)
            if indices is None:
                return
        self._tasks[worker].put((self._epoch, self._sent, indices))
        self._sent += 1

    def _receive(self) -> tuple[int, int, Any]:
        while True:
            try:
                return self._results.get(timeout=self.loader.timeout or _POLL_SECONDS)
            except queue.Empty:
                if self.loader.timeout:
                    self.shutdown()
                    raise RuntimeError(f"DataLoader timed out after {self.loader.timeout} seconds") from None
                dead = [w.pid for w in self._workers if not w.is_alive()]
                if dead:
                    self.shutdown()
                    raise RuntimeError(f"DataLoader worker (pid(s) {', '.join(map(str, dead))}) exited "
                                       f"unexpectedly") from None

    def __iter__(self) -> WorkerIterator:
        return self

    def __next__(self) -> Any:
        while True:
            if self._closed or self._served >= self._sent:
                if not self.loader.persistent_workers:
                    self.shutdown()
                raise StopIteration
            while self._served not in self._waiting:
                epoch, index, payload = self._receive()
                if epoch == self._epoch:
                    self._waiting[index] = payload
            payload = self._waiting.pop(self._served)
            self._served += 1
            if isinstance(payload, _Exhausted):
                self._active[payload.worker_id] = False
                self._dispatch()
                continue
            self._dispatch()
            if isinstance(payload, _Failure):
                if not self.loader.persistent_workers:
                    self.shutdown()
                payload.reraise()
            return from_host(pickle.loads(payload))

    def shutdown(self) -> None:
        """Stop the workers (also when the iterator is garbage collected)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        for q in self._tasks:
            q.put(None)
        for w in self._workers:
            w.join(timeout=_POLL_SECONDS)
            if w.is_alive():
                w.terminate()
                w.join()
        for q in (*self._tasks, self._results):
            q.cancel_join_thread()
            q.close()

    def __del__(self) -> None:
        self.shutdown()

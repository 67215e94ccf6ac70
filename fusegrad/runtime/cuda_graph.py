"""Replay of a captured kernel sequence on a GPU as CUDA graphs (fg.jit's `device.sequence`).

A graph bakes its kernels' pointer arguments in, and the jit changes some table entries between
replays (a new input buffer, state buffers that swap roles every step). So one executable graph is
kept per distinct pointer table, built by stream capture the first time that table is seen; a
training loop cycles through a few tables (two state parities, inputs recycled by the caching
allocator), so after the first steps every replay is one `cuGraphLaunch`.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Sequence

from .cuda_driver import bindings as _bindings
from .cuda_driver import check as _check

if TYPE_CHECKING:
    from .cuda import CUDADevice, CUDAProgram

MAX_GRAPHS = 8  # executable graphs kept per sequence; the least recently used one is destroyed


class CUDASequence:
    """Kernels launched in order; `run(table)` replays them as one graph launch on the device's stream."""

    def __init__(self, device: "CUDADevice", launches: Sequence[tuple["CUDAProgram", Sequence[tuple[int, int]]]],
                 nslots: int):
        self._device = device
        self._launches = [(program, list(args)) for program, args in launches]
        self._nslots = max(nslots, 1)
        self._graphs: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def new_slots(self) -> list[int]:
        return [0] * self._nslots

    def run(self, slots: Sequence[int]) -> None:
        driver = _bindings()[0]
        key = tuple(slots)
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = self._instantiate(key)
            if len(self._graphs) > MAX_GRAPHS:  # an in-flight graph is freed when it completes
                _check(driver.cuGraphExecDestroy(self._graphs.popitem(last=False)[1]), "cuGraphExecDestroy")
        else:
            self._graphs.move_to_end(key)
        self._device.make_current()
        with self._device.enqueue_lock:
            _check(driver.cuGraphLaunch(graph, self._device.stream), "cuGraphLaunch")

    def _instantiate(self, slots: tuple[int, ...]) -> Any:
        """Record the launches on the stream (nothing runs) and instantiate the recorded graph."""
        driver = _bindings()[0]
        stream = self._device.stream
        self._device.make_current()
        mode = driver.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
        with self._device.enqueue_lock:  # another thread's launch on the stream would join the graph
            _check(driver.cuStreamBeginCapture(stream, mode), "cuStreamBeginCapture")
            try:
                for program, args in self._launches:
                    program.launch_pointers([slots[slot] + offset for slot, offset in args])
            finally:
                graph = _check(driver.cuStreamEndCapture(stream), "cuStreamEndCapture")
        try:
            return _check(driver.cuGraphInstantiate(graph, 0), "cuGraphInstantiate")
        finally:
            _check(driver.cuGraphDestroy(graph), "cuGraphDestroy")

    def __del__(self) -> None:
        try:
            driver = _bindings()[0]
            for graph in self._graphs.values():
                driver.cuGraphExecDestroy(graph)
        except Exception:  # noqa: BLE001  (interpreter shutdown: the driver may be gone already)
            pass

"""Kernels that read their operands through Hopper's tensor memory accelerator (codegen/cuda_wgmma.py).

Such a kernel takes, after its buffer pointers, one tensor map per operand by value: 128 bytes the
driver encodes from the operand's address, sizes, strides and copy box (`cuTensorMapEncodeTiled`).
The address changes from call to call, so the maps are encoded at launch, and kept per address
(the caching allocator hands the same addresses out again, and a jit replay launches the same
ones every step). An operand whose address is not 16-byte aligned (a view at an odd offset) cannot
be described by a map: that call runs the kernel's fallback instead. The kernel's shared memory
is dynamic (more than the 48 KiB a static declaration may take). Its blocks are persistent: it is
launched with as many as the GPU holds at once (asked of the driver for its shared memory and
cluster size), each taking work items until none is left.
"""
from __future__ import annotations

import ctypes
import functools
import json
import re
from typing import Any, Sequence

import numpy as np

from ..errors import DeviceError
from .cuda_driver import CUDAProgram, LoadedModule
from .cuda_driver import bindings as _bindings

_TMA = re.compile(r"^// fusegrad tma (\w+) (\{.*\})$", re.MULTILINE)
MAP_BYTES = 128
MAX_MAPS = 256  # encoded maps kept per kernel; beyond that the cache starts again


def parse(source: str) -> dict[str, dict]:
    """Every tensor-map kernel's specification in a translation unit (its `// fusegrad tma` lines)."""
    return {m[1]: json.loads(m[2]) for m in _TMA.finditer(source)}


@functools.cache
def _encoder() -> Any:
    """The driver's cuTensorMapEncodeTiled (a host function: it needs no context)."""
    encode = ctypes.CDLL("libcuda.so.1").cuTensorMapEncodeTiled
    encode.restype = ctypes.c_int
    return encode


def _enum(name: str, member: str) -> int:
    return int(getattr(getattr(_bindings()[0], name), member))


def encode(spec: dict, address: int, out: np.ndarray) -> None:
    """Write the tensor map of operand `spec` at `address` into `out` (128 bytes, 64-byte aligned)."""
    rank = len(spec["dims"])
    dtype = _enum("CUtensorMapDataType", "CU_TENSOR_MAP_DATA_TYPE_" + spec["dtype"].upper())
    status = _encoder()(
        ctypes.c_void_p(out.ctypes.data), dtype, ctypes.c_uint32(rank), ctypes.c_void_p(address),
        (ctypes.c_uint64 * rank)(*spec["dims"]), (ctypes.c_uint64 * (rank - 1))(*spec["strides"]),
        (ctypes.c_uint32 * rank)(*spec["box"], *[1] * (rank - 2)), (ctypes.c_uint32 * rank)(*[1] * rank),
        _enum("CUtensorMapInterleave", "CU_TENSOR_MAP_INTERLEAVE_NONE"),
        _enum("CUtensorMapSwizzle", "CU_TENSOR_MAP_SWIZZLE_128B"),
        _enum("CUtensorMapL2promotion", "CU_TENSOR_MAP_L2_PROMOTION_L2_256B"),
        _enum("CUtensorMapFloatOOBfill", "CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE"))
    if status != 0:
        raise DeviceError(f"cuTensorMapEncodeTiled failed (status {status}) for {spec} at {address:#x}")


def _aligned_maps(count: int) -> np.ndarray:
    """`count` rows of 128 bytes, each 64-byte aligned (a tensor map's alignment)."""
    raw = np.zeros(count * MAP_BYTES // 8 + 8, dtype=np.uint64)
    start = (-raw.ctypes.data % 64) // 8
    return raw[start:start + count * MAP_BYTES // 8].reshape(count, MAP_BYTES // 8)


class TensorMapProgram(CUDAProgram):
    """A loaded tensor-map kernel; `fallback` (a CUDAProgram) runs the calls whose operands are
    misaligned."""

    __slots__ = ("fallback", "_specs", "_maps", "_encoded")

    def __init__(self, name: str, fn: Any, device: Any, grid: int, block: int, nargs: int,
                 module: LoadedModule, spec: dict, fallback: CUDAProgram):
        super().__init__(name, fn, device, grid, block, nargs, module, spec["smem"])
        self.fallback, self._specs = fallback, spec["maps"]
        self._maps = _aligned_maps(len(self._specs))  # the by-value arguments after the pointers
        pointers = [self._args.ctypes.data + 8 * i for i in range(nargs)]
        self._params = np.array(pointers + [row.ctypes.data for row in self._maps], dtype=np.uint64)
        self._encoded: dict[tuple[int, int], np.ndarray] = {}
        self._grid = min(grid, self._resident_blocks(spec.get("cluster", 1)))

    def _resident_blocks(self, cluster: int) -> int:
        """The blocks of this kernel the GPU holds at once (its blocks take work items until none is
        left, so more would only queue behind them), in whole clusters; unlimited where the driver
        cannot say."""
        driver = _bindings()[0]
        config = driver.CUlaunchConfig()
        config.gridDimX, config.gridDimY, config.gridDimZ = self._grid, 1, 1
        config.blockDimX, config.blockDimY, config.blockDimZ = self._block, 1, 1
        config.sharedMemBytes, config.hStream, config.numAttrs = self._smem, self._device.stream, 0
        self._device.make_current()
        status, clusters = driver.cuOccupancyMaxActiveClusters(self._fn, config)
        if status != driver.CUresult.CUDA_SUCCESS or clusters <= 0:
            return self._grid
        return clusters * cluster

    def _map(self, i: int, address: int) -> np.ndarray:
        key = (i, address)
        found = self._encoded.get(key)
        if found is None:
            if len(self._encoded) >= MAX_MAPS:
                self._encoded.clear()
            found = self._encoded[key] = _aligned_maps(1)[0]
            encode(self._specs[i], address, found)
        return found

    def launch_pointers(self, pointers: Sequence[int]) -> None:
        addresses = [pointers[s["param"]] + s["itemsize"] * s["offset"] for s in self._specs]
        if any(a % 16 for a in addresses):
            self.fallback.launch_pointers(pointers)
            return
        maps = [self._map(i, a) for i, a in enumerate(addresses)]
        self._device.make_current()
        with self._device.enqueue_lock:  # the argument arrays are the program's, shared by threads
            self._args[:len(pointers)] = pointers
            for row, encoded in zip(self._maps, maps):
                row[:] = encoded
            self._launch()

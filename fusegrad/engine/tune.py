"""GEMM tile search (FUSEGRAD_SEARCH=N): time every tile height and panel depth on the real kernel.

With the flag set, the first compilation of a kernel containing a matrix product of a new shape
compiles one variant per candidate tile in one translation unit, runs each N times on buffers of
the kernel's sizes (interleaved, so machine noise hits all alike), and keeps the fastest. The
choice is stored in the kernel cache folder (one small file per shape, dtype, compiler and CPU),
so later processes use it without searching; without the flag, stored choices are still used and
the heuristic (`codegen.gemm_c.default_tiles`) covers the rest.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import sys
from pathlib import Path

import numpy as np

from .. import flags
from ..codegen import gemm_c
from ..codegen.ir import Gemm, LoopIR
from ..runtime import cache, registry

DEPTHS = (64, 128, 192, 256, 384)  # candidate panel depths (capped at K)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _entry_key(device: str, identity: str, shape: tuple[str, int, int, int]) -> str:
    return cache.cache_key("gemm-tiles", device, identity, _cpu_model(), repr(shape))


def _candidates(shape: tuple[str, int, int, int]) -> list[tuple[int, int]]:
    _, m, _, k = shape
    depths = sorted({min(d, k) for d in DEPTHS})
    return [(rows, depth) for rows in gemm_c.MICRO_ROWS if rows <= max(m, 4) for depth in depths]


def apply_stored(ir: LoopIR, device_name: str) -> list[tuple[str, int, int, int]]:
    """Load stored choices for the kernel's products; returns the shapes that have none."""
    device = registry.get(device_name)
    identity = device.compiler()[1] if hasattr(device, "compiler") else device.kind
    missing = []
    for g in (s for s in ir.stmts if isinstance(s, Gemm)):
        shape = (g.dtype.name, g.m, g.n, g.k)
        if shape in gemm_c.TUNED:
            continue
        path = cache.lookup(_entry_key(device_name, identity, shape), "json")
        if path is not None:
            rows, depth = json.loads(path.read_text())["tiles"]
            gemm_c.TUNED[shape] = (int(rows), int(depth))
        else:
            missing.append(shape)
    return missing


def search(ir: LoopIR, device_name: str, renderer: object, repeats: int) -> None:
    """Time the candidate tiles of each product in `ir` that has no stored choice; store the best."""
    device = registry.get(device_name)
    identity = device.compiler()[1] if hasattr(device, "compiler") else device.kind
    for shape in apply_stored(ir, device_name):
        candidates = _candidates(shape)
        sources, names = [], []
        for i, tiles in enumerate(candidates):
            gemm_c.TUNED[shape] = tiles
            variant = dataclasses.replace(ir, name=f"{ir.name}_tile{i}")
            sources.append(renderer.render_kernel(variant))
            names.append(variant.name)
        del gemm_c.TUNED[shape]
        programs = device.compile(renderer.render_unit(sources), names, [len(ir.params)] * len(names),
                                  support=renderer.support_source)
        rng = np.random.default_rng(0)
        buffers = []
        for p in ir.params:
            buf = device.alloc(p.numel * p.dtype.itemsize)
            values = rng.uniform(-1, 1, p.numel) if p.dtype.is_floating_point else np.zeros(p.numel)
            device.copy_in(buf, values.astype(p.dtype.np))
            buffers.append(buf)
        best = [float("inf")] * len(programs)
        for _ in range(max(repeats, 1)):
            for i, prog in enumerate(programs):
                best[i] = min(best[i], prog(buffers))
        choice = candidates[int(np.argmin(best))]
        gemm_c.TUNED[shape] = choice
        payload = json.dumps({"shape": list(shape), "tiles": list(choice),
                              "seconds": dict(zip(map(str, candidates), best))}).encode()
        cache.store(_entry_key(device_name, identity, shape), "json", lambda out: out.write_bytes(payload))
        if flags.debug_level() >= 1:
            print(f"fusegrad: tile search {shape}: {choice} in {min(best) * 1e6:.1f} us "
                  f"(heuristic {gemm_c.default_tiles(*shape[1:])})", file=sys.stderr)

"""Measured choices for matrix products: tile search and the vendor-BLAS race.

Tile search (FUSEGRAD_SEARCH=N): time every tile height and panel depth on the real kernel.

With the flag set, the first compilation of a kernel containing a matrix product of a new shape
compiles one variant per candidate tile in one translation unit, runs each N times on buffers of
the kernel's sizes (interleaved, so machine noise hits all alike), and keeps the fastest. The
choice is stored in the kernel cache folder (one small file per shape, dtype, compiler and CPU),
so later processes use it without searching; without the flag, stored choices are still used and
the heuristic (`codegen.gemm_c.default_tiles`) covers the rest.

Vendor race (always, when the device has a vendor BLAS and kernels run on one thread: with more,
the BLAS's own spinning thread pool and the kernels' OpenMP team fight over the cores): a
product whose operands are plain
strided matrices is compiled twice the first time its shape is seen, as generated code and as
one BLAS call; both run a few times on buffers of the kernel's sizes and the vendor call is kept
when it is clearly faster (VENDOR_MARGIN). The outcome is remembered per shape in the process and
in the cache folder.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from .. import flags
from ..codegen import gemm_c
from ..codegen.gemm import blas_operands
from ..codegen.ir import Gemm, LoopIR
from ..runtime import cache, registry

DEPTHS = (64, 128, 192, 256, 384)  # candidate panel depths (capped at K)
FORMAT = 1  # version of the stored choices; a file of another version (or none) is a miss


def _stored(key: str, field: str, valid: Callable[[object], bool]) -> object:
    """The `field` of the choice stored under `key`, or None when there is none or its file is not a
    choice of this format (garbage, wrong types, another version): a miss, replaced by the next store."""
    def load(path: Path) -> object:
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise cache.Unusable(f"{path.name}: {e}") from None
        if not isinstance(entry, dict) or entry.get("format") != FORMAT or not valid(entry.get(field)):
            raise cache.Unusable(f"{path.name}: not a stored choice of format {FORMAT}")
        return entry[field]
    return cache.find(key, "json", load)


def _store(key: str, entry: dict) -> None:
    payload = json.dumps({"format": FORMAT, **entry}).encode()
    cache.store(key, "json", lambda out: out.write_bytes(payload))


def _valid_tiles(tiles: object) -> bool:
    return (isinstance(tiles, list) and len(tiles) == 2
            and all(isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in tiles))


def _vendor_key(device_name: str, shape: tuple[str, int, int, int]) -> str:
    return cache.cache_key("gemm-vendor", _identity(device_name), _cpu_model(), repr(shape))


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
    return [(rows, depth) for rows in gemm_c.micro_rows() if rows <= max(m, 4) for depth in depths]


def apply_stored(ir: LoopIR, device_name: str) -> list[tuple[str, int, int, int]]:
    """Load stored choices for the kernel's products; returns the shapes that have none."""
    identity = _identity(device_name)
    missing = []
    for g in (s for s in ir.stmts if isinstance(s, Gemm)):
        shape = (g.dtype.name, g.m, g.n, g.k)
        if shape in gemm_c.TUNED:
            continue
        tiles = _stored(_entry_key(device_name, identity, shape), "tiles", _valid_tiles)
        if tiles is not None:
            gemm_c.TUNED[shape] = (tiles[0], tiles[1])
        else:
            missing.append(shape)
    return missing


def search(ir: LoopIR, device_name: str, renderer: object, repeats: int) -> None:
    """Time the candidate tiles of each product in `ir` that has no stored choice; store the best."""
    device = registry.get(device_name)
    identity = _identity(device_name)
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
        best = _time(programs, ir, device_name, repeats)
        choice = candidates[int(np.argmin(best))]
        gemm_c.TUNED[shape] = choice
        _store(_entry_key(device_name, identity, shape),
               {"shape": list(shape), "tiles": list(choice), "seconds": dict(zip(map(str, candidates), best))})
        if flags.debug_level() >= 1:
            print(f"fusegrad: tile search {shape}: {choice} in {min(best) * 1e6:.1f} us "
                  f"(heuristic {gemm_c.default_tiles(*shape[1:], shape[0])})", file=sys.stderr)


_vendor_decided: dict[tuple[str, int, int, int], bool] = {}
VENDOR_RACE_RUNS = 5
VENDOR_RACE_BUDGET = 0.01  # seconds of timed runs after which a race of long kernels stops (two rounds at least)
VENDOR_MARGIN = 0.9  # the vendor call must take under 90% of the generated kernel's time to be kept


def _threads() -> int:
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


def _identity(device_name: str) -> str:
    """What a measured choice depends on besides the shape: the compiler and the thread count."""
    device = registry.get(device_name)
    compiler = device.compiler()[1] if hasattr(device, "compiler") else device.kind
    return f"{compiler}; threads={_threads()}"


def _decide(shape: tuple[str, int, int, int], vendor: bool) -> None:
    _vendor_decided[shape] = vendor
    if vendor:
        gemm_c.VENDOR.add(shape)
    else:
        gemm_c.VENDOR.discard(shape)


def raced_products(ir: LoopIR, device_name: str) -> tuple[list[tuple[str, int, int, int]], bool | None]:
    """The BLAS-eligible products of `ir` that are compiled both ways, and the outcome to pick:
    None while undecided (the race runs), else the outcome stored for all of them. A kernel is
    compiled both ways whether or not its products were decided, so that its translation unit is
    the same in the process that raced them and in every later one (which finds it in the cache).
    Products decided differently from each other are rendered as decided, one way (no shapes)."""
    device = registry.get(device_name)
    if not hasattr(device, "vendor_blas") or not device.vendor_blas() or _threads() != 1:
        return [], None
    eligible: list[tuple[str, int, int, int]] = []
    for g in (s for s in ir.stmts if isinstance(s, Gemm)):
        shape = (g.dtype.name, g.m, g.n, g.k)
        if blas_operands(g) is None or shape in eligible:
            continue
        eligible.append(shape)
        if shape not in _vendor_decided:
            vendor = _stored(_vendor_key(device_name, shape), "vendor", lambda v: isinstance(v, bool))
            if vendor is not None:
                _decide(shape, vendor)
    undecided = [shape for shape in eligible if shape not in _vendor_decided]
    if undecided:  # those race; products decided before keep their outcome in both variants
        return undecided, None
    outcomes = {_vendor_decided[shape] for shape in eligible}
    return (eligible, outcomes.pop()) if len(outcomes) == 1 else ([], None)


def render_variant(renderer: object, ir: LoopIR, shapes: list[tuple[str, int, int, int]], vendor: bool) -> str:
    """The kernel's source with the given products as vendor BLAS calls (`vendor`) or as generated code."""
    saved = set(gemm_c.VENDOR)
    if vendor:
        gemm_c.VENDOR.update(shapes)
    else:
        gemm_c.VENDOR.difference_update(shapes)
    try:
        return renderer.render_kernel(ir)
    finally:
        gemm_c.VENDOR.clear()
        gemm_c.VENDOR.update(saved)


def _time(programs: list, ir: LoopIR, device_name: str, repeats: int, budget: float = float("inf")) -> list[float]:
    """Best seconds of each program over `repeats` interleaved runs on random buffers of the kernel's sizes,
    or fewer (two at least) once the timed runs have taken `budget` seconds."""
    device = registry.get(device_name)
    rng = np.random.default_rng(0)
    buffers = []
    for p in ir.params:
        buf = device.alloc(p.numel * p.dtype.itemsize)
        values = rng.uniform(-1, 1, p.numel) if p.dtype.is_floating_point else np.zeros(p.numel)
        device.copy_in(buf, values.astype(p.dtype.np))
        buffers.append(buf)
    for prog in programs:  # warm-up: first-touch of packing buffers, BLAS thread start
        prog(buffers)
    best = [float("inf")] * len(programs)
    spent = 0.0
    for r in range(max(repeats, 1)):
        if r >= 2 and spent > budget:
            break
        for i, prog in enumerate(programs):
            seconds = prog(buffers)
            spent += seconds
            best[i] = min(best[i], seconds)
    return best


def race_vendor(device_name: str, ir: LoopIR, generated: object, vendor: object,
                shapes: list[tuple[str, int, int, int]]) -> int:
    """Time the generated kernel against its vendor-BLAS variant; 0 or 1: the winner's index."""
    seconds = _time([generated, vendor], ir, device_name, VENDOR_RACE_RUNS, VENDOR_RACE_BUDGET)
    winner = int(seconds[1] < VENDOR_MARGIN * seconds[0])
    for shape in shapes:
        _decide(shape, bool(winner))
        _store(_vendor_key(device_name, shape),
               {"shape": list(shape), "vendor": bool(winner), "generated_s": seconds[0], "vendor_s": seconds[1]})
    if flags.debug_level() >= 1:
        print(f"fusegrad: {ir.name} {shapes}: generated {seconds[0] * 1e6:.1f} us, vendor BLAS "
              f"{seconds[1] * 1e6:.1f} us -> {'vendor' if winner else 'generated'}", file=sys.stderr)
    return winner

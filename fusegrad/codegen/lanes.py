"""GPU reductions spread over lanes: several threads share one output element.

One thread per output leaves a GPU idle when a kernel has few outputs and long reductions (a
loss, a small matmul's rows, a full sum). Then each output gets `lanes` threads (a warp, or a
whole block when there are very few outputs): the kernel's top-level reduce loops deal their
iterations round-robin to the lanes, a combine step after each loop (CUDA: warp shuffles, then
shared memory across the warps of a block; OpenCL: a tree in local memory) leaves every lane
holding the total, and only the first lane stores. The statements here are the plan; the CUDA and
OpenCL renderers give them their syntax.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..graph.symbolic import Var
from .ir import Accumulate, Define, DefineAcc, EndLoop, Gemm, Loop, LoopIR, Store, coefficient, loads

WARP = 32
BLOCK_LANES = 256
FEW_OUTPUTS = 2048  # fewer outputs than this cannot fill a GPU with one thread each: always spread
SOME_OUTPUTS = 32768  # up to this many, spread when the reduction is long and reads along its loop
MANY_OUTPUTS = 1 << 19  # up to this many, spread only long reductions whose threads would read scattered


@dataclass(frozen=True)
class LaneLoop(Loop):
    """A top-level reduce loop whose iterations go round-robin to the `lanes` threads of an output."""

    lanes: int = 1


@dataclass(frozen=True)
class LaneCombine:
    """After a LaneLoop: combine the lanes' partial accumulators so that every lane holds the total."""

    accs: tuple[DefineAcc, ...]
    lanes: int
    uid: int  # distinguishes the shared-memory arrays of several combines in one kernel


@dataclass(frozen=True)
class LaneStore(Store):
    """A store only the first lane of an output performs."""


def _top_loops(body: Sequence) -> list[tuple[int, int]] | None:
    """(first, last) statement index of each top-level loop in `body`, or None when the body has a
    statement lanes cannot share (a store inside a loop, a GEMM) or a top-level loop that is not a
    reduction."""
    spans, depth, start = [], 0, 0
    for i, s in enumerate(body):
        if isinstance(s, Gemm) or (isinstance(s, Store) and depth > 0):
            return None
        if isinstance(s, Loop):
            if depth == 0:
                if s.kind != "reduce":
                    return None
                start = i
            depth += 1
        elif isinstance(s, EndLoop):
            depth -= 1
            if depth == 0:
                spans.append((start, i))
    return spans


def plan_lanes(threads: Sequence, body: Sequence) -> int:
    """How many threads each output gets (1: the plain one thread per output)."""
    spans = _top_loops(body)
    if not spans:
        return 1
    owners: dict[str, int] = {}
    for n, (first, last) in enumerate(spans):
        for s in body[first:last + 1]:
            if isinstance(s, Accumulate) and owners.setdefault(s.name, n) != n:
                return 1  # accumulated in two loops: a combine after each would count the first twice
    outputs = 1
    for v in threads:
        outputs *= v.extent
    extent = min(body[first].var.extent for first, _ in spans)
    if outputs < FEW_OUTPUTS:
        return BLOCK_LANES if extent >= 4 * BLOCK_LANES else WARP if extent >= WARP else 1
    if outputs > MANY_OUTPUTS or extent < 2 * WARP:
        return 1
    # lanes must not trade coalesced reads across threads for scattered ones across lanes
    inner = threads[-1] if threads else None
    reads = [(body[first].var, load) for first, last in spans for s in body[first:last + 1]
             if isinstance(s, (Define, Accumulate, Store)) for load in loads(s.value)]
    along_loop = any(abs(coefficient(load.index, var)) == 1 for var, load in reads)
    along_threads = inner is not None and any(abs(coefficient(load.index, inner)) == 1 for _, load in reads)
    if outputs <= SOME_OUTPUTS:
        return WARP if along_loop or not along_threads else 1
    # many outputs fill the GPU anyway: spread only to turn scattered reads (x @ W.T's rows of W) into
    # coalesced ones
    return WARP if extent >= 8 * WARP and along_loop and not along_threads else 1


def apply_lanes(body: Sequence, lanes: int) -> list:
    """`body` with its top-level reduce loops shared by `lanes` threads, combines after them, and
    top-level stores left to the first lane."""
    accs: dict[str, DefineAcc] = {}  # accumulators defined outside every loop: the lanes' partial sums
    out: list = []
    depth = 0
    combined: list[DefineAcc] = []
    for s in body:
        if isinstance(s, DefineAcc) and depth == 0:
            accs[s.name] = s
        if isinstance(s, Loop):
            out.append(LaneLoop(s.var, s.kind, lanes) if depth == 0 else s)
            depth += 1
        elif isinstance(s, EndLoop):
            out.append(s)
            depth -= 1
            if depth == 0:
                if combined:
                    out.append(LaneCombine(tuple(combined), lanes, len(out)))
                combined = []
        elif isinstance(s, Store) and depth == 0:
            out.append(LaneStore(s.param, s.index, s.value, s.dtype))
        else:
            if isinstance(s, Accumulate) and s.name in accs and accs[s.name] not in combined:
                combined.append(accs[s.name])
            out.append(s)
    return out


def thread_space(ir: LoopIR) -> tuple[Var, ...]:
    """The variables mapped to threads: the perfect nest of global loops around the whole kernel
    (none when the kernel has no such nest, e.g. a reduction to one value)."""
    n = 0
    while n < len(ir.stmts) and isinstance(ir.stmts[n], Loop) and ir.stmts[n].kind == "global":
        n += 1
    closing = ir.stmts[len(ir.stmts) - n:] if n else []
    if not all(isinstance(s, EndLoop) and s.kind == "global" for s in closing):
        return ()  # not one nest around everything: its loops stay sequential
    return tuple(s.var for s in ir.stmts[:n])


def thread_plan(ir: LoopIR) -> tuple[tuple[Var, ...], list, int]:
    """(variables mapped to threads, the statements each thread runs, threads per output element)."""
    threads = thread_space(ir)
    n = len(threads)
    body = list(ir.stmts[n:len(ir.stmts) - n])
    lanes = plan_lanes(threads, body)
    return threads, apply_lanes(body, lanes) if lanes > 1 else body, lanes

"""16-byte loads and stores for CUDA elementwise kernels.

An elementwise float32 kernel whose output runs contiguously along its innermost loop gives each
thread 4 consecutive elements: operands that also run contiguously there are read as one `float4`
each, the 4 results are written as one `float4`, and the body in between runs 4 times (unrolled,
with the innermost variable at each of the 4 positions). Operands read any other way (broadcast,
strided, under a padding guard, other dtypes) are read element by element as before. The 16-byte
accesses need 4 consecutive elements to start at a multiple of 16 bytes: the index must step by 1
along the innermost variable and by multiples of 4 elsewhere (checked here), and every pointer
must be 16-byte aligned (checked in the kernel, which otherwise reads and writes the same 4
elements one by one: a gradient packed at an odd offset, a sub-buffer).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from ..graph.symbolic import DivAtom, Lin, ModAtom, Var
from .gemm import lin_vars
from .ir import Define, Load, LoopIR, Store, coefficient, loads
from .merge import _mentions
from .render import decompose

WIDTH = 4  # float32 elements per 16-byte access


@dataclass(frozen=True)
class VectorPlan:
    threads: tuple[Var, ...]  # the thread space, its innermost variable counted in groups of WIDTH
    inner: Var  # the kernel's innermost output variable
    store: Store
    vector_loads: tuple[Load, ...]  # operands read 16 bytes at a time


def _aligned_run(index: Lin, inner: Var) -> bool:
    """Steps by 1 along `inner`, and WIDTH consecutive elements start at a multiple of WIDTH."""
    if coefficient(index, inner) != 1 or index.const % WIDTH:
        return False
    for atom, c in index.terms:
        if atom == inner:
            continue
        if isinstance(atom, (DivAtom, ModAtom)) and _mentions(atom.num, inner):
            return False
        if c % WIDTH:
            return False
    return True


def plan(threads: tuple[Var, ...], body: list, lanes: int) -> VectorPlan | None:
    """The 16-byte plan for a kernel's thread space and per-thread body, or None."""
    if lanes != 1 or not threads or threads[-1].extent % WIDTH:
        return None
    if not all(isinstance(s, (Define, Store)) for s in body):
        return None
    stores = [s for s in body if isinstance(s, Store)]
    if len(stores) != 1 or stores[0].dtype.name != "float32" or not _aligned_run(stores[0].index, threads[-1]):
        return None
    inner = threads[-1]
    found: dict[Load, None] = {}
    for s in body:
        for load in loads(s.value):
            # read before the body runs: its index may use the thread's variables only (not a value the
            # body defines, as a one-hot read's row is)
            if load.dtype.name == "float32" and not load.valid and _aligned_run(load.index, inner) and \
                    lin_vars(load.index) <= set(threads):
                found[load] = None
    grouped = Var(f"{inner.name}_v", inner.extent // WIDTH)
    return VectorPlan(threads[:-1] + (grouped,), inner, stores[0], tuple(found))


def render(renderer: Any, ir: LoopIR, body: list, vp: VectorPlan) -> str:
    """The kernel: a grid-stride loop over groups of WIDTH elements (launch size from `vp.threads`)."""
    pointers = " | ".join(f"(unsigned long long)p{i}" for i in range(len(ir.params)))
    group = vp.threads[-1].name
    names = {load: f"fg_q{i}" for i, load in enumerate(vp.vector_loads)}
    start = f"const int64_t {vp.inner.name} = {group} * {WIDTH};"
    lines = [renderer.signature(ir) + " {",
             f"  const bool fg_aligned = (({pointers}) & 15ull) == 0;",
             "  " + renderer.grid_stride(math.prod(v.extent for v in vp.threads)),
             *decompose("gid", vp.threads, "    const int64_t {name} = (int64_t)({value});", "u"),
             *[f"    float4 {name};" for name in names.values()],
             f"    float fg_o[{WIDTH}];",
             "    if (fg_aligned) {",
             f"      {start}",
             *[f"      {name} = *(const float4*)(p{load.param} + ({load.index.render()}));"
               for load, name in names.items()],
             "    }",
             "    #pragma unroll",
             f"    for (int fg_k = 0; fg_k < {WIDTH}; fg_k++) {{",
             f"      const int64_t {vp.inner.name} = {group} * {WIDTH} + fg_k;"]
    body_renderer = copy.copy(renderer)  # its own map of the float4 operands: the renderer is shared
    body_renderer.vector_loads = names
    for s in body:
        if isinstance(s, Define):
            lines.append(f"      {body_renderer.compute_type(s.dtype)} {s.name} = {body_renderer.expr(s.value)};")
    lines.append(f"      fg_o[fg_k] = {body_renderer.expr(vp.store.value)};")
    out = f"p{vp.store.param} + ({vp.store.index.render()})"
    lines += ["    }",
              "    {",
              f"      {start}",
              f"      if (fg_aligned) *(float4*)({out}) = make_float4(fg_o[0], fg_o[1], fg_o[2], fg_o[3]);",
              f"      else for (int fg_k = 0; fg_k < {WIDTH}; fg_k++) ({out})[fg_k] = fg_o[fg_k];",
              "    }",
              "  }",
              "}"]
    return "\n".join(lines)

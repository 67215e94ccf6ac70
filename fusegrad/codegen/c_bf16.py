"""The C renderer's products on panels of bfloat16 bits: bfloat16 operands (loaded, or float32 rounded to
bfloat16 as read) summed in float32, on CPUs with a unit that multiplies bfloat16 (gemm_c.bf16_unit: the
AMX tiles, or AVX-512's bfloat16 dot products).

The loop structure is the float32 GEMM's (codegen/c.py, `CRenderer.gemm`): per K panel all of B
packed, then per L2 block of A rows that block, then the micro-kernel on each 32 x 32 tile of C; the
panels hold bfloat16 bits in the layouts both units read (gemm_c.py), K zero-padded to whole tile
steps. Plain strided operands are packed by the support library's routines, others by the renderer's
generated packing loops into the same layouts.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import dtypes
from ..dtypes import DType
from ..graph.symbolic import Lin, Var
from . import c_gather, c_pack_runs, gemm_c
from .c_pack_runs import declare, step
from .gemm import load_vars
from .ir import Gemm, Load

if TYPE_CHECKING:
    from .c import CRenderer


def uses_bf16_panels(s: Gemm) -> bool:
    """Whether the product runs on bfloat16 panels: bfloat16 operands (loaded, or float32 rounded to
    bfloat16) summed in float32, on a CPU with a unit that multiplies them, over a K it takes."""
    unit = gemm_c.bf16_unit()
    return all((r or load.dtype) is dtypes.bfloat16 for load, r in ((s.a, s.a_round), (s.b, s.b_round))) \
        and s.dtype is dtypes.float32 and unit is not None and s.k >= gemm_c.BF16_MIN_DEPTH[unit]


def depth(k: int) -> int:
    """K per panel: equal panels of at most the unit's BF16_MAX_DEPTH, in whole tile steps."""
    panels = -(-k // gemm_c.BF16_MAX_DEPTH[gemm_c.bf16_unit()])
    return -(-(-(-k // panels)) // gemm_c.BF16_K) * gemm_c.BF16_K


def slot(width: int, pairs: bool) -> str:
    """Where element (w, kk) of block blk goes in the panels: A's layout, or B's pairs of k."""
    if pairs:
        return f"blk * kp * {width} + (kk >> 1) * {width * 2} + w * 2 + (kk & 1)"
    return f"blk * kp * {width} + (kk >> 5) * {width * 32} + w * 32 + (kk & 31)"


def hoist_packing(r: "CRenderer", s: Gemm, batch: set) -> list[str]:
    """`CRenderer.hoist_packing` for a product on bfloat16 panels: the batch-invariant operand in their layout."""
    k_depth = depth(s.k)
    if not load_vars(s.a) & batch:
        which, args = "a", (s.a, s.i_vars, gemm_c.BF16_ROWS, s.m, s.a_round, False)
    elif not load_vars(s.b) & batch:
        which, args = "b", (s.b, s.j_vars, gemm_c.BF16_COLS, s.n, s.b_round, True)
    else:
        return []
    load, outer, width, size, rounded, pairs = args
    r.hoisted[id(s)] = which
    blocks = -(-size // width)
    return ["uint16_t* hp = (uint16_t*)fg_pack_scratch(2, 2 * "
            f"{blocks * width * -(-s.k // k_depth) * k_depth});",
            f"for (int64_t pc = 0; pc < {s.k}; pc += {k_depth}) {{",
            f"  const int64_t kc = {s.k} - pc < {k_depth} ? {s.k} - pc : {k_depth};",
            f"  const int64_t kp = (kc + {gemm_c.BF16_K - 1}) / {gemm_c.BF16_K} * {gemm_c.BF16_K};",
            *["  " + line.removeprefix("    ") for line in
              pack(r, f"(hp + pc * {blocks * width})", load, outer, s.k_vars, "0", str(blocks), width, size,
                   slot(width, pairs), rounded, pairs)],
            "}"]


def render(r: "CRenderer", s: Gemm) -> str:
    """The product's lines: per K panel all of B packed, then per L2 block of A rows that block."""
    rows, cols = gemm_c.BF16_ROWS, gemm_c.BF16_COLS
    unit = gemm_c.bf16_unit()
    k_depth = depth(s.k)
    mb, nb = -(-s.m // rows), -(-s.n // cols)
    block = max(1, min(mb, gemm_c.L2_PANEL_BYTES // (rows * k_depth * 2)))
    parallel = int(s.m * s.n * s.k >= gemm_c.PARALLEL_WORK)
    hoisted = r.hoisted.get(id(s))  # "a" or "b": packed once before the batch loops, into hp
    ap = f"hp + pc * {mb * rows}" if hoisted == "a" else "ap"
    bp = f"hp + pc * {nb * cols}" if hoisted == "b" else "bp"
    pack_b = [] if hoisted == "b" else [
        "    #pragma omp for schedule(static)",
        *pack(r, "bp", s.b, s.j_vars, s.k_vars, "0", str(nb), cols, s.n, slot(cols, True), s.b_round, True)]
    pack_a = [] if hoisted == "a" else [
        "      #pragma omp for schedule(static)",
        *pack(r, "ap", s.a, s.i_vars, s.k_vars, "ic", "ie", rows, s.m, slot(rows, False), s.a_round, False)]
    return "\n".join([
        "{",
        *([] if hoisted == "a" else [f"  uint16_t* ap = (uint16_t*)fg_pack_scratch(0, 2 * {mb * rows * k_depth});"]),
        *([] if hoisted == "b" else [f"  uint16_t* bp = (uint16_t*)fg_pack_scratch(1, 2 * {nb * cols * k_depth});"]),
        f"  #pragma omp parallel if({parallel})",
        "  {",
        *(["  fg_amx_begin();"] if unit == "amx" else []),
        f"  for (int64_t pc = 0; pc < {s.k}; pc += {k_depth}) {{",
        f"    const int64_t kc = {s.k} - pc < {k_depth} ? {s.k} - pc : {k_depth};",
        f"    const int64_t kp = (kc + {gemm_c.BF16_K - 1}) / {gemm_c.BF16_K} * {gemm_c.BF16_K};",
        *pack_b,
        f"    for (int64_t ic = 0; ic < {mb}; ic += {block}) {{",
        f"      const int64_t ie = ic + {block} < {mb} ? ic + {block} : {mb};",
        *pack_a,
        "      #pragma omp for collapse(2) schedule(static)",
        *("      " + line for line in gemm_c.micro_tiles(gemm_c.BF16_MICRO[unit], s.m, s.n, rows, cols, ("ic", "ie"),
                                                         nb, ap, bp, f"p{s.c_param} + {s.c_base.render()}", "kp",
                                                         "pc == 0")),
        "    }",
        "  }",
        *(["  fg_amx_end();"] if unit == "amx" else []),
        "  }",
        "}",
    ])


def pack(r: "CRenderer", buf: str, load: Load, outer: tuple, ks: tuple, first: str, end: str, width: int,
         size: int, layout: str, rounded: DType | None, pairs: bool) -> list[str]:
    """Panels of `load` in the bfloat16 layout `layout`: one support-library call per block when the
    operand is a plain strided matrix (its outer and its reduction variables each one strided run, one
    of the two of unit stride, no guards); gathers from offset tables for other operands linear in plain
    variables (windows); runs along the panel's columns through a float scratch for operands with bounds
    (padded windows); else the renderer's packing loops."""
    coef = dict(load.index.terms)
    ws, kstride = _flat_stride(coef, outer), _flat_stride(coef, ks)  # (a weight gradient's k: batch, time)
    plain = rounded is None or load.dtype is dtypes.float32  # bfloat16 bits, or float32 to round to them
    linear = not load.valid and all(isinstance(a, Var) for a in coef) and load.index.hi < 1 << 31
    if linear and plain and (1 not in (ws, kstride) or None in (ws, kstride)):
        return _pack_gather(r, buf, load, outer, ks, first, end, width, size, layout, rounded, pairs)
    runs = c_pack_runs.choose(load, outer, ks, width) if load.valid and plain else None
    if runs is not None and runs[0] == "w":
        return _pack_runs(r, buf, load, outer, ks, first, end, width, size, layout, pairs, runs[1])
    if not linear or 1 not in (ws, kstride) or None in (ws, kstride) or not plain:
        return r.pack(buf, load, outer, ks, first, end, width, size, layout, rounded)
    routine = "fg_bf16_pack" if rounded is None else "fg_bf16_pack_f32"
    rest = Lin(tuple((v, c) for v, c in load.index.terms if v not in outer and v not in ks), load.index.const)
    return [f"      for (int64_t blk = {first}; blk < {end}; blk++)",
            f"        {routine}({buf} + blk * kp * {width}, p{load.param} + {rest.render()} + "
            f"blk * {width * ws} + pc * {kstride}, {ws}, {kstride}, {size} - blk * {width} < {width} ? "
            f"{size} - blk * {width} : {width}, kc, kp, {int(pairs)});"]


def _pack_gather(r: "CRenderer", buf: str, load: Load, outer: tuple, ks: tuple, first: str, end: str, width: int,
                 size: int, layout: str, rounded: DType | None, pairs: bool) -> list[str]:
    """Panels of an operand whose index is linear in plain variables (a convolution's windows): per
    panel a table of the rows'/columns' offsets, then per step of k a gather of the whole panel row
    (with `pairs`, two steps of k into one 32-bit word per column, B's layout), not a carry per element."""
    rest, k_off = c_gather.offsets(load, outer, ks)
    bits = "fg_f32_to_bf16" if rounded is not None else ""
    src = f"p{load.param} + {rest.render()} + ({k_off})"
    if pairs:
        body = [f"          const {r.storage_type(load.dtype)}* s0 = {src};",
                *["          " + line for line in step(ks)],
                f"          const {r.storage_type(load.dtype)}* s1 = {src};",
                *["          " + line for line in step(ks)],
                f"          uint32_t* dst = (uint32_t*)({buf} + blk * kp * {width} + kk * {width});",
                "          if (kk + 1 < kc)",
                f"            for (int64_t w = 0; w < {width}; w++) "
                f"dst[w] = (uint32_t){bits}(s0[off[w]]) | (uint32_t){bits}(s1[off[w]]) << 16;",
                f"          else for (int64_t w = 0; w < {width}; w++) dst[w] = {bits}(s0[off[w]]);"]
        k_step = "kk += 2"
    else:
        body = [f"          const {r.storage_type(load.dtype)}* src = {src};",
                f"          for (int64_t w = 0; w < {width}; w++) {buf}[{layout}] = {bits}(src[off[w]]);",
                *["          " + line for line in step(ks)]]
        k_step = "kk++"
    return [*c_gather.table(load, outer, first, end, width, size),
            *["        " + line for line in declare(ks, "pc")],
            f"        for (int64_t kk = 0; kk < kc; {k_step}) {{",
            *body,
            "        }",
            f"        for (int64_t kk = kc; kk < kp; kk++) for (int64_t w = 0; w < {width}; w++) {buf}[{layout}] = 0;",
            "      }"]


def _pack_runs(r: "CRenderer", buf: str, load: Load, outer: tuple, ks: tuple, first: str, end: str, width: int,
               size: int, layout: str, pairs: bool, run: c_pack_runs.Run) -> list[str]:
    """Panels of an operand with bounds (a padded convolution's windows) whose runs lie along the panel's
    rows/columns: each panel packed by runs into a float scratch (c_pack_runs), its bounds as intervals, then
    converted into the bfloat16 layout (with `pairs`, two steps of k into one 32-bit word per column)."""
    t = c_pack_runs.panel_type(r, load)
    if pairs:
        convert = ["        for (int64_t kk = 0; kk + 1 < kc; kk += 2) {",
                   f"          uint32_t* dst = (uint32_t*)({buf} + blk * kp * {width} + kk * {width});",
                   f"          const {t}* s0 = fg_panel + kk * {width};",
                   f"          for (int64_t w = 0; w < {width}; w++) "
                   f"dst[w] = (uint32_t)fg_f32_to_bf16(s0[w]) | (uint32_t)fg_f32_to_bf16(s0[w + {width}]) << 16;",
                   "        }",
                   "        if (kc & 1) {",
                   f"          uint32_t* dst = (uint32_t*)({buf} + blk * kp * {width} + (kc - 1) * {width});",
                   f"          for (int64_t w = 0; w < {width}; w++) "
                   f"dst[w] = fg_f32_to_bf16(fg_panel[(kc - 1) * {width} + w]);",
                   "        }"]
    else:
        convert = ["        for (int64_t kk = 0; kk < kc; kk++)",
                   f"          for (int64_t w = 0; w < {width}; w++) "
                   f"{buf}[{layout}] = fg_f32_to_bf16(fg_panel[kk * {width} + w]);"]
    return [f"      for (int64_t blk = {first}; blk < {end}; blk++) {{",
            f"        {t}* fg_panel = ({t}*)fg_pack_scratch(3, sizeof({t}) * {width} * kc);",
            *["        " + line for line in declare(ks, "pc")],
            *["        " + line for line in
              c_pack_runs.runs_along_w(r, f"fg_panel + kk * {width}", load, ks, width, size, run)],
            *convert,
            f"        for (int64_t kk = kc; kk < kp; kk++) for (int64_t w = 0; w < {width}; w++) {buf}[{layout}] = 0;",
            "      }"]


def _flat_stride(coefficients: dict, variables: tuple) -> int | None:
    """The stride of the variables' flat row-major index when they step through memory as one strided
    run (each variable's stride the next one's times its extent), else None."""
    stride = coefficients.get(variables[-1], 0)
    for inner, v in zip(variables[::-1], variables[-2::-1]):
        if coefficients.get(v, 0) != coefficients.get(inner, 0) * inner.extent:
            return None
    return stride or None

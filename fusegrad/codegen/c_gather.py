"""Packing a GEMM operand by gathers: an operand whose index is linear in plain variables (no bounds: a
convolution's windows after their padding is stored, a strided matrix) is packed per panel from a table
of the panel's rows'/columns' memory offsets, one gather of the whole panel row per step of k, instead of
a carry through every coordinate per element. The float32 panels (codegen/c.py) and the bfloat16 panels
(codegen/c_bf16.py) both pack this way.
"""
from __future__ import annotations

from ..graph.symbolic import Lin
from .c_pack_runs import declare
from .ir import Load


def table(load: Load, outer: tuple, first: str, end: str, width: int, size: int) -> list[str]:
    """The opening of a loop over panels blk from `first` to `end` and, in it, `off`: the memory offsets
    of the panel's `width` rows/columns (`outer` decomposed from the flat index; rows past `size` repeat
    row 0, whose sums are never stored)."""
    coef = dict(load.index.terms)
    w_off = " + ".join(f"{coef[v]} * {v.name}" for v in outer if v in coef) or "0"
    return [f"      for (int64_t blk = {first}; blk < {end}; blk++) {{",
            f"        int32_t off[{width}];",
            f"        for (int64_t w = 0; w < {width}; w++) {{",
            f"          const int64_t flat = blk * {width} + w < {size} ? blk * {width} + w : 0;",
            *["          " + line for line in declare(outer, "flat")],
            f"          off[w] = (int32_t)({w_off});",
            "        }"]


def offsets(load: Load, outer: tuple, ks: tuple) -> tuple[Lin, str]:
    """The part of a gathered operand's index that neither the panel's rows/columns `outer` nor the sum's
    variables `ks` index, and the sum variables' offset, as C."""
    coef = dict(load.index.terms)
    rest = Lin(tuple((v, c) for v, c in load.index.terms if v not in outer and v not in ks), load.index.const)
    return rest, " + ".join(f"{coef[v]} * {v.name}" for v in ks if v in coef) or "0"

"""The step product of a fused recurrent layer on the CPU (codegen/recurrence.py), in GCC's vector types.

out[row][x] += sum over y of inp[row][y] * M[y][x] for a block of rows: the columns x run in chunks
of two 64-byte vectors, and every row of the block keeps its two accumulators in registers over the
whole sum, so each vector of M is loaded once per block and feeds one multiply-add per row (the
plain loops loaded and stored the output row around every multiply-add). Columns past the last
whole chunk, and dtypes stored in another type than they compute in, take the plain loops.
"""
from __future__ import annotations

from ..dtypes import int64
from ..graph.symbolic import Var
from .ir import Load, Recurrence
from .recurrence import plain_product

CHUNK_VECTORS = 2  # vectors of columns per chunk: rows x 2 accumulators fill half the AVX-512 registers


def product(r, s: Recurrence, out: str, inp: str, matrix: Load, x: Var, y: Var) -> list[str]:
    """The block's product with vector accumulators, or the plain loops where it does not apply."""
    lanes = 64 // s.dtype.itemsize
    stride = dict((a, c) for a, c in matrix.index.terms).get(x)
    width = CHUNK_VECTORS * lanes
    whole = x.extent // width * width
    if s.dtype.name not in ("float32", "float64") or stride != 1 or whole == 0:
        return plain_product(r, s, out, inp, matrix, x, y)
    ct, index = r.compute_type(s.dtype), r.storage_type(int64)
    acc = [[f"fg_v{row}_{u}" for u in range(CHUNK_VECTORS)] for row in range(s.rows)]
    lines = [f"typedef {ct} fg_rv __attribute__((vector_size(64), aligned({s.dtype.itemsize}), may_alias));",
             f"for ({index} fg_x0 = 0; fg_x0 < {whole}; fg_x0 += {width}) {{",
             *(f"  fg_rv {name} = {{0}};" for names in acc for name in names),
             f"  for ({index} {y.name} = 0; {y.name} < {y.extent}; {y.name}++) {{",
             f"    const {index} {x.name} = fg_x0;",
             f"    const {ct}* fg_m = &{r.load(matrix)};",
             *(f"    const fg_rv fg_m{u} = *(const fg_rv*)(fg_m + {u * lanes});" for u in range(CHUNK_VECTORS)),
             *(f"    {acc[row][u]} += {inp}[{row}][{y.name}] * fg_m{u};"
               for row in range(s.rows) for u in range(CHUNK_VECTORS)),
             "  }",
             *(f"  *(fg_rv*)&{out}[{row}][fg_x0 + {u * lanes}] += {acc[row][u]};"
               for row in range(s.rows) for u in range(CHUNK_VECTORS)),
             "}"]
    if whole < x.extent:
        lines += plain_product(r, s, out, inp, matrix, x, y, whole)
    return ["{", *("  " + line for line in lines), "}"]

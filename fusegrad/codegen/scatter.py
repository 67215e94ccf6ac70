"""The fused row scatter-add kernel (Op.INDEX_ADD, graph/scatter.py): its loop IR and its body.

The output's rows are cut into chunks and its columns into blocks; one iteration of the global loops
owns a chunk of rows in a block of columns. It copies them from the base (or zeroes them), then walks
every index in order and adds the source row's block wherever the index falls into its chunk. No two
iterations write the same element, so the sum needs no atomics and adds duplicates in the index's
order on every device: the CPU takes whole rows (contiguous copies) in 64 chunks that its threads
split, a GPU a column per thread and as many chunks as give it enough threads; each iteration scans
every index, skipping those of other chunks.
"""
from __future__ import annotations

from ..dtypes import int64
from ..graph.symbolic import Var, atom
from .ir import EndLoop, IndexAdd, Loop, LoopIR
from .lower import KernelSpec, kernel_params, load_at


def lower_index_add(spec: KernelSpec, name: str, width: int, threads: int) -> LoopIR:
    """The kernel's IR: global loops over chunks of rows and blocks of `width` columns; chunks enough
    that chunks x blocks reaches `threads` (one chunk when 0)."""
    root = spec.root
    src, index, *base = root.srcs
    rows, columns = root.shape
    count = src.shape[0]
    width = max(1, min(width, columns))
    blocks = -(-columns // width)
    chunks = max(1, min(rows, -(-threads // blocks))) if threads else 1
    chunk = -(-rows // chunks)
    chunks = -(-rows // chunk)
    kv, bv, nv, cv = Var("x_k", chunks), Var("x_b", blocks), Var("x_n", count), Var("x_c", width)
    vv = Var("x_v", rows)
    column = atom(bv) * width + atom(cv)
    stmt = IndexAdd(root.dtype, rows, columns, chunk, width, kv, bv, nv, cv, vv,
                    load_at(spec, src, (atom(nv), column)), load_at(spec, index, (atom(nv),)),
                    load_at(spec, base[0], (atom(vv), column)) if base else None)
    loops = [Loop(kv, "global"), Loop(bv, "global")]
    return LoopIR(name, kernel_params(spec), [*loops, stmt, EndLoop("global"), EndLoop("global")], count * columns)


def index_add_lines(r, s: IndexAdd) -> list[str]:
    """The C-family statements of one (chunk, column block) iteration of `s` with renderer `r`."""
    index = r.storage_type(int64)
    k, b, n, c, v = s.chunk_var.name, s.block.name, s.n.name, s.column.name, s.row.name
    column = (atom(s.block) * s.width + atom(s.column)).render()
    pragma = r.inner_pragma(None)
    inner = [pragma] if pragma else []

    def at(row: str, value: str) -> str:  # the dtype is stored as it computes (ops/scatter.py)
        return f"p0[{row} * {s.columns} + {column}] = {value};"

    body = [f"const {index} fg_v0 = {k} * {s.chunk};",
            f"const {index} fg_v1 = fg_v0 + {s.chunk} < {s.rows} ? fg_v0 + {s.chunk} : {s.rows};",
            f"const {index} fg_cn = {s.columns} - {b} * {s.width} < {s.width} ? {s.columns} - {b} * {s.width} "
            f": {s.width};",
            f"for ({index} {v} = fg_v0; {v} < fg_v1; {v}++) {{",
            *("  " + x for x in inner),
            f"  for ({index} {c} = 0; {c} < fg_cn; {c}++) "
            f"{at(v, r.load(s.base) if s.base is not None else r.literal(0, s.dtype))}",
            "}",
            f"for ({index} {n} = 0; {n} < {s.n.extent}; {n}++) {{",
            f"  const {index} fg_i = ({index}){r.load(s.index)};",
            "  if (fg_i < fg_v0 || fg_i >= fg_v1) continue;",
            *("  " + x for x in inner),
            f"  for ({index} {c} = 0; {c} < fg_cn; {c}++) "
            f"{at('fg_i', f'p0[fg_i * {s.columns} + {column}] + {r.load(s.src)}')}",
            "}"]
    return ["{", *("  " + x for x in body), "}"]


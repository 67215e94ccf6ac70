"""Which CUDA kernels cuBLAS could compute instead: plain strided matrix products.

A kernel that is exactly a product of two strided matrices (optionally batched along one
variable, no padding, no epilogue) gets a descriptor next to its generated source, as a
`// fusegrad cublas <kernel> <json>` line. The runtime times the generated kernel against the
cuBLAS call on first sight of the shape and keeps the faster (runtime/cublas.py); the generated
kernel stays the fallback wherever cuBLAS is missing. float16 and bfloat16 products accumulate in
float32 on both sides, as the generated kernels do.
"""
from __future__ import annotations

from dataclasses import replace

from .. import dtypes
from ..graph.symbolic import Lin, Var
from .gemm import blas_operands, use_gemm
from .ir import Accumulate, Alu, Define, DefineAcc, EndLoop, Gemm, Load, Loop, LoopIR, Ref, Store

HALF_DTYPES = ("float16", "bfloat16")
BLAS_DTYPES = ("float32", "float64", *HALF_DTYPES)


def _offset(base: Lin, batch: Var | None) -> tuple[int, int] | None:
    """(constant offset, stride along the batch variable) of an operand's element [0, 0], in elements."""
    terms = dict(base.terms)
    stride = terms.pop(batch, 0) if batch is not None else 0
    return None if terms else (base.const, stride)


def _widened(value: object) -> object:
    """A statement's or expression's own type (and its direct operands') float32 where it is a half type."""
    changes = {}
    if getattr(value, "dtype", None) in (dtypes.float16, dtypes.bfloat16):
        changes["dtype"] = dtypes.float32
    if isinstance(value, (Define, Accumulate, Store)) and isinstance(value.value, (Load, Alu, Ref)):
        changes["value"] = _widened(value.value)
    if isinstance(value, Alu):
        changes["args"] = tuple(_widened(a) if isinstance(a, Ref) else a for a in value.args)
    return replace(value, **changes) if changes else value


def as_float32(ir: LoopIR) -> LoopIR:
    """`ir` with its half-precision values typed float32, one level deep. gemm.py's pass recognizes
    only the dtypes of the CPU's micro-kernels; the structure of a product does not depend on its
    element type (halves are computed in float), and a product is only loads, one multiply and a sum."""
    kinds = (Define, DefineAcc, Accumulate, Store)
    return LoopIR(ir.name, ir.params, [_widened(s) if isinstance(s, kinds) else s for s in ir.stmts], ir.work)


def blas_descriptor(ir: LoopIR) -> dict | None:
    """The cuBLAS call computing the whole kernel, or None when it is more than a plain product."""
    acc = next((s for s in ir.stmts if isinstance(s, DefineAcc)), None)
    if acc is None or acc.dtype.name not in BLAS_DTYPES:
        return None
    gemm_ir = use_gemm(as_float32(ir) if acc.dtype.name in HALF_DTYPES else ir)
    stmts = gemm_ir.stmts
    gemms = [s for s in stmts if isinstance(s, Gemm)]
    if len(gemms) != 1 or gemms[0].c_param != 0:
        return None
    g = gemms[0]
    loops = [s for s in stmts if isinstance(s, Loop)]
    if len(loops) > 1 or len(stmts) != 1 + 2 * len(loops) or not all(
            isinstance(s, (Loop, EndLoop, Gemm)) for s in stmts):
        return None  # an epilogue, or more than one batch variable
    operands = blas_operands(g)
    if operands is None:
        return None
    batch = loops[0].var if loops else None
    (ta, lda, abase), (tb, ldb, bbase) = operands
    places = [_offset(abase, batch), _offset(bbase, batch), _offset(g.c_base, batch)]
    if any(p is None for p in places):
        return None
    return {"dtype": acc.dtype.name, "m": g.m, "n": g.n, "k": g.k, "batch": batch.extent if batch else 1,
            "ta": ta, "tb": tb, "lda": lda, "ldb": ldb, "a": [g.a.param, *places[0]], "b": [g.b.param, *places[1]],
            "c": places[2], "bytes": [p.numel * p.dtype.itemsize for p in ir.params]}

"""Which CUDA kernels cuBLAS could compute instead: plain strided matrix products.

A kernel that is exactly a product of two strided matrices (optionally batched along one
variable, no padding, no epilogue) gets a descriptor next to its generated source, as a
`// fusegrad cublas <kernel> <json>` line. The runtime times the generated kernel against the
cuBLAS call on first sight of the shape and keeps the faster (runtime/cublas.py); the generated
kernel stays the fallback wherever cuBLAS is missing. float16 and bfloat16 products (operands
widened to float32 in the kernel, ops/linalg.py) accumulate in float32 on both sides.
"""
from __future__ import annotations

from dataclasses import replace

from .. import dtypes, precision
from ..graph.ops import Op
from ..graph.symbolic import Lin, Var
from .gemm import blas_operands, use_gemm
from .ir import Accumulate, Alu, Define, DefineAcc, EndLoop, Gemm, Load, Loop, LoopIR, Ref, Store



def _offset(base: Lin, batch: Var | None) -> tuple[int, int] | None:
    """(constant offset, stride along the batch variable) of an operand's element [0, 0], in elements."""
    terms = dict(base.terms)
    stride = terms.pop(batch, 0) if batch is not None else 0
    return None if terms else (base.const, stride)


def half_product(ir: LoopIR) -> tuple[LoopIR, str] | None:
    """For a kernel whose buffers are all of one half type and which multiplies them as torch's half
    products do (operands widened to float32, summed in float32, the sums rounded as stored): the same
    kernel typed float32 without those casts, and the half type's name; else None. gemm.py's pass then
    sees a plain float32 product whose cuBLAS call takes half operands and output."""
    halves = {p.dtype for p in ir.params}
    acc = next((s for s in ir.stmts if isinstance(s, DefineAcc)), None)
    if len(halves) != 1 or not halves <= set(dtypes.HALF) or acc is None or acc.dtype is not dtypes.float32:
        return None
    alias: dict[str, str] = {}
    stmts = []
    for s in ir.stmts:
        if isinstance(s, Define) and isinstance(s.value, Alu) and s.value.op is Op.CAST \
                and isinstance(s.value.args[0], Ref) and s.dtype.is_floating_point \
                and s.value.args[0].dtype.is_floating_point:  # half <-> float32: no cast once all is float32
            alias[s.name] = alias.get(s.value.args[0].name, s.value.args[0].name)
            continue
        stmts.append(_widened(s, alias) if isinstance(s, (Define, DefineAcc, Accumulate, Store)) else s)
    return LoopIR(ir.name, ir.params, stmts, ir.work), halves.pop().name


def _widened(value: object, alias: dict[str, str]) -> object:
    """A statement or expression with its half types float32 and its references through `alias`."""
    if isinstance(value, Ref):
        return Ref(alias.get(value.name, value.name), dtypes.float32 if value.dtype in dtypes.HALF else value.dtype)
    changes = {}
    if getattr(value, "dtype", None) in dtypes.HALF:
        changes["dtype"] = dtypes.float32
    if isinstance(value, (Define, Accumulate, Store)) and isinstance(value.value, (Load, Alu, Ref)):
        changes["value"] = _widened(value.value, alias)
    if isinstance(value, Alu):
        changes["args"] = tuple(_widened(a, alias) if isinstance(a, Ref) else a for a in value.args)
    return replace(value, **changes) if changes else value


def blas_descriptor(ir: LoopIR) -> dict | None:
    """The cuBLAS call computing the whole kernel, or None when it is more than a plain product."""
    acc = next((s for s in ir.stmts if isinstance(s, DefineAcc)), None)
    if acc is None or acc.dtype.name not in ("float32", "float64"):
        return None
    half = half_product(ir)
    dtype = half[1] if half else acc.dtype.name
    gemm_ir = use_gemm(half[0] if half else ir)
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
    tf32 = {"tf32": True} if dtype == "float32" and precision.allow_tf32() else {}  # else exact (and older keys)
    return {"dtype": dtype, **tf32, "m": g.m, "n": g.n, "k": g.k, "batch": batch.extent if batch else 1,
            "ta": ta, "tb": tb, "lda": lda, "ldb": ldb, "a": [g.a.param, *places[0]], "b": [g.b.param, *places[1]],
            "c": places[2], "bytes": [p.numel * p.dtype.itemsize for p in ir.params]}

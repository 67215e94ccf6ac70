"""The loop IR: a flat list of statements with typed expressions, printed at FUSEGRAD_DEBUG=3.

Loops are `global` (the output space: threads/parallel loops) or `reduce` (sequential, inside
one output element). Every computed value is bound to an SSA name by `Define`, so rendered
source stays linear in the size of the graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from ..dtypes import DType
from ..graph.ops import Op
from ..graph.symbolic import Bound, Lin, Var


@dataclass(frozen=True)
class Const:
    value: Any
    dtype: DType


@dataclass(frozen=True)
class Ref:
    name: str
    dtype: DType


@dataclass(frozen=True)
class Load:
    param: int
    index: Lin
    valid: tuple[Bound, ...]
    dtype: DType


@dataclass(frozen=True)
class Cond:
    """True where every bound holds (the inside of a padding)."""

    bounds: tuple[Bound, ...]


@dataclass(frozen=True)
class Index:
    """An integer index expression used as a value (IOTA)."""

    index: Lin
    dtype: DType


@dataclass(frozen=True)
class Rand:
    """Uniform float32 in [0, 1) from Philox(seed, offset + index); seed and offset are read from
    the two-element int64 buffer `state_param`, so one compiled kernel serves every seed."""

    state_param: int
    index: Lin


@dataclass(frozen=True)
class Alu:
    op: Op
    args: tuple["Expr", ...]
    dtype: DType


Expr = Union[Const, Ref, Load, Cond, Index, Rand, Alu]


@dataclass(frozen=True)
class Loop:
    var: Var
    kind: str  # "global" or "reduce"


@dataclass(frozen=True)
class EndLoop:
    kind: str


@dataclass(frozen=True)
class Define:
    name: str
    value: Expr
    dtype: DType


@dataclass(frozen=True)
class DefineAcc:
    name: str
    op: Op  # SUM, RMAX or PROD
    dtype: DType


@dataclass(frozen=True)
class Accumulate:
    name: str
    op: Op
    value: Expr
    dtype: DType


@dataclass(frozen=True)
class Store:
    param: int
    index: Lin
    value: Expr
    dtype: DType


@dataclass(frozen=True)
class Gemm:
    """out0[c_base + i*n + j] = sum_k A[a_base + i*sai + k*sak] * B[b_base + k*sbk + j*sbj] for the
    i < m, j < n of one batch element (the bases depend only on enclosing batch loops)."""

    dtype: DType
    m: int
    n: int
    k: int
    a_param: int
    a_base: Lin
    sai: int
    sak: int
    b_param: int
    b_base: Lin
    sbk: int
    sbj: int
    c_base: Lin


Stmt = Union[Loop, EndLoop, Define, DefineAcc, Accumulate, Store, Gemm]


@dataclass(frozen=True)
class Param:
    dtype: DType
    numel: int
    output: bool


@dataclass
class LoopIR:
    name: str
    params: list[Param]
    stmts: list[Stmt]
    work: int  # elementwise operations the kernel performs, roughly: output size x reduce size

    def dump(self) -> str:
        lines = [f"kernel {self.name}(" + ", ".join(
            f"{'out' if p.output else 'in'}{i}: {p.dtype.name}[{p.numel}]" for i, p in enumerate(self.params)) + ")"]
        depth = 1
        for s in self.stmts:
            if isinstance(s, EndLoop):
                depth -= 1
                continue
            lines.append("  " * depth + _stmt_text(s))
            if isinstance(s, Loop):
                depth += 1
        return "\n".join(lines)


def _expr_text(e: Expr) -> str:
    if isinstance(e, Const):
        return repr(e.value)
    if isinstance(e, Ref):
        return e.name
    if isinstance(e, Load):
        guard = f" if {' and '.join(b.render() for b in e.valid)}" if e.valid else ""
        return f"in{e.param}[{e.index.render()}]{guard}"
    if isinstance(e, Cond):
        return "(" + " and ".join(b.render() for b in e.bounds) + ")"
    if isinstance(e, Index):
        return e.index.render()
    if isinstance(e, Rand):
        return f"rand(in{e.state_param}[0], in{e.state_param}[1]+{e.index.render()})"
    return f"{e.op.name}({', '.join(_expr_text(a) for a in e.args)})"


def _stmt_text(s: Stmt) -> str:
    if isinstance(s, Loop):
        return f"for {s.var.name} in 0..{s.var.extent} ({s.kind}):"
    if isinstance(s, Define):
        return f"{s.name}: {s.dtype.name} = {_expr_text(s.value)}"
    if isinstance(s, DefineAcc):
        return f"{s.name}: {s.dtype.name} = init({s.op.name})"
    if isinstance(s, Accumulate):
        return f"{s.name} = {s.op.name}({s.name}, {_expr_text(s.value)})"
    if isinstance(s, Gemm):
        return (f"out0[{s.c_base.render()}:] = gemm(m={s.m}, n={s.n}, k={s.k}, "
                f"in{s.a_param}[{s.a_base.render()}:] strides ({s.sai}, {s.sak}), "
                f"in{s.b_param}[{s.b_base.render()}:] strides ({s.sbk}, {s.sbj}))")
    assert isinstance(s, Store)
    return f"out{s.param}[{s.index.render()}] = {_expr_text(s.value)}"

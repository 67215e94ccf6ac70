"""The loop IR: a flat list of statements with typed expressions, printed at FUSEGRAD_DEBUG=3.

Loops are `global` (the output space: threads/parallel loops) or `reduce` (sequential, inside
one output element). Every computed value is bound to an SSA name by `Define`, so rendered
source stays linear in the size of the graph.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Union

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
    # "global": iterations write disjoint outputs (parallel); "reduce": iterations accumulate into
    # one value (sequential); "inner": inside a reduce loop, iterations touch disjoint outputs
    # (the interchange pass's blocks), so a GPU renderer may map them to threads
    kind: str


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
    """out0[c_base + i*n + j] = sum_k a * b over one batch element: `a` is a load indexed by the
    row variables and the reduction variables, `b` by the reduction and column variables (flat
    i, j, k decompose row-major into the variables). Enclosing loops fix the batch variables."""

    dtype: DType
    i_vars: tuple[Var, ...]
    j_vars: tuple[Var, ...]
    k_vars: tuple[Var, ...]
    a: Load
    b: Load
    c_base: Lin
    c_param: int = 0  # 0: the sums land in the output itself; else in this scratch parameter
    # the half type an operand's loaded value rounds to before the product (a float32 weight that
    # autocast casts to bfloat16 inside the kernel), or None
    a_round: DType | None = None
    b_round: DType | None = None

    @property
    def m(self) -> int:
        return math.prod(v.extent for v in self.i_vars)

    @property
    def n(self) -> int:
        return math.prod(v.extent for v in self.j_vars)

    @property
    def k(self) -> int:
        return math.prod(v.extent for v in self.k_vars)


@dataclass(frozen=True)
class Attention:
    """One row of a fused attention kernel (graph/attention.py), inside global loops over the batch
    and the row: a query row (forward, grad_q) or a key row (grad_kv), streaming over the other side.
    The loads are indexed by the batch variables, `i` (query), `j` (key), `d` (q/k feature) and `e`
    (v feature); `i` or `j` is the row's global variable, the other and `d`, `e` the body's loops.
    The row's outputs start at `out` and lie contiguously. With `block` > 1 the global loop runs over
    blocks of that many rows, which the body walks in tiles (codegen/attention.py)."""

    direction: str
    scale: float
    causal: bool
    dtype: DType
    i: Var
    j: Var
    d: Var
    e: Var
    q: Load
    k: Load
    v: Load
    out: Lin
    block: int = 1
    lse: Load | None = None
    delta: Load | None = None
    dout: Load | None = None


@dataclass(frozen=True)
class Recurrence:
    """A block of rows of a fused recurrent layer (graph/recurrence.py) inside a global loop over the
    blocks (`block`, of `rows` rows each): the steps run in order inside, each row's state in local
    arrays. Loads are indexed by `t` (the step's position), `before` (the backward's previous step in
    the forward's order), `n` (the batch row), `j` (a gate column of G) and `k` (a unit of H), names
    the body defines; `reads` maps names to them (a block of H columns `m` of an (L, N, width) source
    is read as `<name><m>`, the previous step's as `<name><m>p`). With `shared` a block of threads
    runs one row, its arrays in memory the threads share (the renderer's `cooperative`). Output row
    (t, n) starts at `out`."""

    mode: str
    direction: str
    reverse: bool
    dtype: DType
    t: Var
    before: Var
    n: Var
    j: Var
    k: Var
    block: Var
    rows: int
    shared: bool
    reads: tuple[tuple[str, Load], ...]
    out: Lin

    def read(self, name: str) -> Load:
        return dict(self.reads)[name]


@dataclass(frozen=True)
class IndexAdd:
    """A chunk of `chunk` output rows in a block of `width` columns of a fused row scatter-add
    (graph/scatter.py), inside global loops over chunks (`chunk_var`) and blocks (`block`): the
    rows are copied from `base` (indexed by `row` and `column`) or zeroed, then the source's rows
    `n` whose index falls in the chunk are added. `src` is indexed by `n` and `column` (within the
    block), `index` by `n`; the output is (rows, columns)."""

    dtype: DType
    rows: int
    columns: int
    chunk: int
    width: int
    chunk_var: Var
    block: Var
    n: Var
    column: Var
    row: Var
    src: Load
    index: Load
    base: Load | None


Stmt = Union[Loop, EndLoop, Define, DefineAcc, Accumulate, Store, Gemm, Attention, Recurrence, IndexAdd]


@dataclass(frozen=True)
class Param:
    dtype: DType
    numel: int
    output: bool
    scratch: bool = False  # a temporary the engine allocates for the call (after the inputs)


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


def subexpressions(e: Expr) -> Iterator[Expr]:
    """`e` and every expression inside it (an explicit stack: expressions can be deep)."""
    stack = [e]
    while stack:
        x = stack.pop()
        yield x
        if isinstance(x, Alu):
            stack.extend(x.args)


def loads(e: Expr) -> list[Load]:
    """Every buffer read inside `e`."""
    return [x for x in subexpressions(e) if isinstance(x, Load)]


def coefficient(index: Lin, v: Var) -> int:
    """How far `index` moves when `v` grows by one (0 when it does not mention `v` directly)."""
    return dict(index.terms).get(v, 0)


def single_reduction_nest(ir: LoopIR) -> tuple[int, list, int] | None:
    """(number of global loops, the statements inside them, index of the one DefineAcc there) for a
    kernel that is one perfect nest of global loops around a body with exactly one reduction."""
    stmts = ir.stmts
    n_glob = 0
    while n_glob < len(stmts) and isinstance(stmts[n_glob], Loop) and stmts[n_glob].kind == "global":
        n_glob += 1
    body = stmts[n_glob:len(stmts) - n_glob]
    accs = [i for i, s in enumerate(body) if isinstance(s, DefineAcc)]
    if n_glob == 0 or len(accs) != 1:
        return None
    return n_glob, body, accs[0]


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
        names = ",".join(v.name for v in s.i_vars), ",".join(v.name for v in s.j_vars), \
            ",".join(v.name for v in s.k_vars)
        return (f"out{s.c_param}[{s.c_base.render()} + ({names[0]})*{s.n} + ({names[1]})] = "
                f"gemm(m={s.m}, n={s.n}, k={s.k}) "
                f"sum over ({names[2]}) of {_expr_text(s.a)} * {_expr_text(s.b)}")
    if isinstance(s, Attention):
        reads = ", ".join(_expr_text(x) for x in (s.q, s.k, s.v, s.lse, s.delta, s.dout) if x is not None)
        return (f"out0[{s.out.render()} + ..] = attention_{s.direction}(scale={s.scale}, causal={s.causal}) "
                f"over {s.j.name if s.direction != 'grad_kv' else s.i.name} of {reads}")
    if isinstance(s, IndexAdd):
        return (f"out0[{s.rows} x {s.columns}] = index_add(chunk={s.chunk}, width={s.width}) of "
                f"{_expr_text(s.src)} at {_expr_text(s.index)}")
    if isinstance(s, Recurrence):
        reads = ", ".join(name for name, _ in s.reads)
        return (f"out0[{s.out.render()} + ..] = recurrence_{s.mode}_{s.direction}(reverse={s.reverse}, "
                f"rows={s.rows}) of {reads}")
    assert isinstance(s, Store)
    return f"out{s.param}[{s.index.render()}] = {_expr_text(s.value)}"

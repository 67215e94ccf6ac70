"""Contractions on CUDA as a tiled shared-memory GEMM (SIMT, float32/float64 accumulation).

A kernel whose body is `acc = sum A[...] * B[...]` followed by any elementwise epilogue (the GEMM
pass's pattern, codegen/gemm.py: matrix products, and every convolution and its gradients, whose
operands are sliding windows with padding guards) renders as one tiled product instead of a
reduction per output. Rows are the output loops only A reads, columns those only B reads (a
convolution's images join the columns, so one product covers the whole batch), the rest batch.

Each block of 256 threads (16 x 16) computes a BM x BN tile of one batch element's output, each
thread a micro-tile of up to 8 x 8 registers. Slices of BK along the reduction are staged in
shared memory, k-major, two stages deep: the next slice is loaded into registers while the
current one is multiplied, then stored to the other stage (one barrier per slice). A load's
address is its index expression split by what each term depends on: the row (or column) part is
computed once per thread, the reduction part once per slice, and only terms mixing both (a
division over a reshaped window) per element. Guards (padding bounds, the matrix edges) are
split the same way; an element whose guard fails reads 0. The epilogue runs per output element
on the accumulated value, with the loop variables recovered from the element's row and column.

Products with few output tiles and a long reduction (weight gradients: 64 x 288 outputs summed
over every image and position) split the reduction over several blocks. Each adds its partial
tile into a zeroed buffer with atomics; the last block to finish a tile (a counter per tile)
reads the sums back, zeroes the buffer and the counter for the next launch, and runs the
epilogue. The buffer and counters are `__device__` arrays of the module (zero at load, kept
zero), at most MAX_WORKSPACE elements per kernel; launches on the device's one stream never
overlap. The order of those additions varies, so split products are not bit-reproducible.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .. import dtypes
from ..dtypes import DType
from ..graph.symbolic import Bound, Lin, Var
from .gemm import fold_guards, lin_vars, load_vars, match_contraction, recognize_gemm
from .ir import Define, DefineAcc, Gemm, Load, LoopIR, Store, single_reduction_nest
from .render import CStyleRenderer

THREADS = 256  # a 16 x 16 grid of threads per block
SIDE = 16
BK = 16  # reduction steps per shared-memory slice
SMS = 132  # multiprocessors of an H100/H200: grids aim at two blocks each
MIN_WORK = 1 << 20  # multiply-adds below which the lanes' reduction per output is as fast
SPLIT_MIN_K = 256  # reduction length each split keeps at least
MAX_WORKSPACE = 1 << 18  # elements of a split product's accumulation buffer
MAX_WIDE_EPILOGUE = 16  # epilogue statements above which tiles stay 64 wide (the epilogue is unrolled per output)
_VECTOR = {("float", 4): "float4", ("float", 2): "float2", ("double", 2): "double2"}
_INT32 = 2**31 - 1


@dataclass(frozen=True)
class Operand:
    """One side of the product: its load, its outer variables (rows of A, columns of B), the
    storage type of its buffer, and whether threads next to each other load along the outer
    variables (else along the reduction)."""

    load: Load
    outer: tuple[Var, ...]
    storage: DType
    outer_fast: bool


@dataclass(frozen=True)
class TiledGemm:
    """How one kernel renders as a tiled product."""

    a: Operand
    b: Operand
    ks: tuple[Var, ...]
    batch: tuple[Var, ...]
    bm: int  # tile rows: 16 * vm * rm
    bn: int
    splits: int  # blocks sharing one tile's reduction
    acc: DefineAcc
    epilogue: tuple  # statements per output element, after `acc` holds the sum

    @property
    def m(self) -> int:
        return math.prod(v.extent for v in self.a.outer)

    @property
    def n(self) -> int:
        return math.prod(v.extent for v in self.b.outer)

    @property
    def k(self) -> int:
        return math.prod(v.extent for v in self.ks)

    @property
    def nbatch(self) -> int:
        return math.prod(v.extent for v in self.batch)

    @property
    def tiles(self) -> int:
        return self.nbatch * -(-self.m // self.bm) * -(-self.n // self.bn)

    @property
    def blocks(self) -> int:
        return self.tiles * self.splits

    @property
    def k_split(self) -> int:
        """Reduction steps per split, a whole number of slices."""
        return split_length(self.k, self.splits, BK)


def split_length(k: int, splits: int, depth: int) -> int:
    """Reduction steps each of `splits` blocks takes: whole slices of `depth`, or all of k unsplit."""
    return -(-k // splits // depth) * depth if splits > 1 else k


def whole_slice_splits(k: int, splits: int, depth: int) -> int:
    """The number of splits left when each takes whole slices of `depth`: none is left empty."""
    return -(-k // split_length(k, splits, depth))


def _run(load: Load, variables: tuple[Var, ...]) -> int:
    """How many consecutive values of the flattened variables read consecutive elements."""
    coef, stride, run = dict(load.index.terms), 1, 1
    for v in reversed(variables):
        if coef.get(v) != stride:
            break
        run *= v.extent
        stride *= v.extent
    return run


def _tile(extent: int, widest: int) -> int:
    """Tile side for an output extent: the smallest of 16, 32, 64 covering it, or `widest`."""
    return next((t for t in (16, 32, 64) if extent <= t), widest)


def plan(ir: LoopIR) -> TiledGemm | None:
    """The tiled product computing `ir`, or None when the kernel is no (large enough) contraction."""
    ir = fold_guards(ir)
    acc = next((s for s in ir.stmts if isinstance(s, DefineAcc)), None)
    if acc is None or acc.dtype.name not in ("float32", "float64"):  # half products sum in float32 too
        return None
    # (the guards are folded above: this plan reads the folded statements too)
    gemm = next((s for s in recognize_gemm(ir).stmts if isinstance(s, Gemm)), None)
    nest = single_reduction_nest(ir)
    if gemm is None or nest is None or gemm.a_round or gemm.b_round:  # (operands rounded as read: plain loops)
        return None
    n_glob, body, a0 = nest
    found = match_contraction(body, a0)
    assert found is not None  # recognize_gemm matched this nest
    end = found[1]  # past DefineAcc, the reduce loops, the loads (and their widening), multiply, add, the ends
    epilogue = tuple(body[:a0] + body[end:])
    if not all(isinstance(s, (Define, Store)) for s in epilogue):
        return None
    globals_ = [s.var for s in ir.stmts[:n_glob]]
    va, vb = load_vars(gemm.a), load_vars(gemm.b)
    rows = tuple(v for v in globals_ if v in va and v not in vb)  # batch loops only one side reads join it
    cols = tuple(v for v in globals_ if v in vb and v not in va)
    batch = tuple(v for v in globals_ if v not in rows and v not in cols)
    m, n, k = math.prod(v.extent for v in rows), math.prod(v.extent for v in cols), gemm.k
    nbatch = math.prod(v.extent for v in batch)
    if not rows or not cols or nbatch * m * n * k < MIN_WORK or max(nbatch * m * n, k) > _INT32:
        return None  # too small to gain, or flat indices past 32 bits
    double = acc.dtype.name == "float64"
    widest = 64 if double or len(epilogue) > MAX_WIDE_EPILOGUE else 128
    bm, bn = _tile(m, widest), _tile(n, widest)
    while nbatch * -(-m // bm) * -(-n // bn) < 2 * SMS and max(bm, bn) > 64:  # smaller tiles, more blocks
        if bm >= bn:
            bm //= 2
        else:
            bn //= 2
    tiles = nbatch * -(-m // bm) * -(-n // bn)
    splits = 1
    if tiles < SMS and k >= 2 * SPLIT_MIN_K and nbatch * m * n <= MAX_WORKSPACE:
        splits = min(-(-2 * SMS // tiles), k // SPLIT_MIN_K)
        splits = whole_slice_splits(k, splits, BK)
    params = ir.params
    a = Operand(gemm.a, rows, params[gemm.a.param].dtype, _run(gemm.a, rows) >= _run(gemm.a, gemm.k_vars))
    b = Operand(gemm.b, cols, params[gemm.b.param].dtype, _run(gemm.b, cols) >= _run(gemm.b, gemm.k_vars))
    return TiledGemm(a, b, gemm.k_vars, batch, bm, bn, splits, acc, epilogue)


# ---- rendering -----------------------------------------------------------------------------------

def _split(expr: Lin, outer: set[Var], ks: set[Var]) -> tuple[Lin, Lin, Lin]:
    """expr as (outer part, reduction part, mixed part): terms that depend on the outer (and batch)
    variables only, on the reduction (and batch) variables only, and on both. The constant goes
    with the outer part."""
    parts: list[dict] = [{}, {}, {}]
    for a, c in expr.terms:
        deps = {a} if isinstance(a, Var) else lin_vars(a.num)
        which = 1 if deps & ks and not deps & outer else (2 if deps & ks else 0)
        parts[which][a] = c
    return (Lin(tuple(parts[0].items()), expr.const), Lin(tuple(parts[1].items()), 0),
            Lin(tuple(parts[2].items()), 0))


def _fits_int32(*exprs: Lin) -> bool:
    return all(-_INT32 <= e.lo and e.hi <= _INT32 for e in exprs)


def declare_vars(variables: tuple[Var, ...], flat: str, kind: str = "const int") -> list[str]:
    """Declarations of row-major variables recovered from the flat index `flat` (unsigned math:
    division by a constant is a multiply and a shift)."""
    lines, stride = [], 1
    for v in reversed(variables):
        value = f"(unsigned)({flat}) / {stride}u" if stride > 1 else f"(unsigned)({flat})"
        if v is not variables[0]:
            value = f"{value} % {v.extent}u"
        lines.append(f"{kind} {v.name} = ({kind.split()[-1]})({value});")
        stride *= v.extent
    return lines


def _sides(b: Bound) -> list[tuple[str, int]]:
    """The comparisons a bound needs (as Bound.render: a side its range already satisfies is left out)."""
    return ([(">=", b.lo)] if b.expr.lo < b.lo else []) + ([("<", b.hi)] if b.expr.hi >= b.hi else [])


class _OperandCode:
    """Source for staging one operand: per-thread precomputation, the loads of one slice, the
    stores into shared memory."""

    def __init__(self, label: str, op: Operand, tile: int, ks: tuple[Var, ...], batch: tuple[Var, ...],
                 renderer: CStyleRenderer):
        self.label, self.op, self.tile, self.ks, self.renderer = label, op, tile, ks, renderer
        self.count = tile * BK // THREADS  # elements each thread loads per slice
        outer, kset = set(op.outer) | set(batch), set(ks)
        load = op.load
        self.index = _split(load.index, outer, kset)
        self.bounds = [(b, _split(b.expr, outer, kset)) for b in load.valid]
        exprs = [load.index, *self.index, *(e for b in load.valid for e in (b.expr, *_split(b.expr, outer, kset)))]
        self.int = "int" if _fits_int32(*exprs) else "int64_t"
        self.mixed = bool(self.index[2].terms) or any(parts[2].terms for _, parts in self.bounds)
        # element e of thread t: flat f = t + 256 e of the tile x BK slice, the fast side varying first
        if op.outer_fast:
            self.outer_at = [f"fg_t % {tile}"]
            self.k_at = [f"fg_t / {tile} + {e * THREADS // tile}" for e in range(self.count)]
        else:
            self.outer_at = [f"fg_t / {BK} + {e * THREADS // BK}" for e in range(self.count)]
            self.k_at = [f"fg_t % {BK}"]

    def _slot(self, e: int) -> tuple[int, int]:
        """(outer slot, reduction slot) of element e."""
        return (0, e) if self.op.outer_fast else (e, 0)

    def _slot_lines(self, side: str, slot: int, flat: str, end: str) -> list[str]:
        """One slot's registers: the flat position (`flat`, valid below `end`), and the part of the
        index and of each bound that depends on the slot's side ("r": outer, "k": reduction)."""
        x, which = f"fg_{self.label}", 0 if side == "r" else 1
        variables = self.op.outer if side == "r" else self.ks
        regs = [f"{x}_{side}o{slot}"] + [f"{x}_{side}b{slot}_{j}" for j in range(len(self.bounds))]
        lines = [f"{self.int} {', '.join(regs)};",
                 f"const int {x}_{side}i{slot} = {flat};",
                 f"const bool {x}_{side}ok{slot} = {x}_{side}i{slot} < {end};",
                 "{",
                 *["  " + line for line in declare_vars(variables, f"{x}_{side}ok{slot} ? {x}_{side}i{slot} : 0")],
                 f"  {x}_{side}o{slot} = {self.index[which].render()};"]
        lines += [f"  {x}_{side}b{slot}_{j} = {parts[which].render()};" for j, (_, parts) in enumerate(self.bounds)]
        return lines + ["}"]

    def setup(self, origin: str, extent: int) -> list[str]:
        """Per thread, once: the outer part of every address and bound of this thread's elements."""
        return [line for s, at in enumerate(self.outer_at) for line in self._slot_lines("r", s, f"{origin} + {at}",
                                                                                          str(extent))]

    def load_slice(self, k0: str, kend: str) -> list[str]:
        """Loads of the slice starting at reduction index `k0` (exclusive end `kend`) into registers."""
        lines = ["{"]
        for s, at in enumerate(self.k_at):
            lines += ["  " + line for line in self._slot_lines("k", s, f"{k0} + {at}", kend)]
        for e in range(self.count):
            r, s = self._slot(e)
            lines += ["  " + line for line in self._element(e, r, s)]
        return lines + ["}"]

    def _element(self, e: int, r: int, s: int) -> list[str]:
        x = f"fg_{self.label}"
        scope: list[str] = []
        if self.mixed:  # terms mixing outer and reduction variables need both sets by name
            scope = declare_vars(self.op.outer, f"{x}_rok{r} ? {x}_ri{r} : 0") + \
                declare_vars(self.ks, f"{x}_kok{s} ? {x}_ki{s} : 0")
        conds = [f"{x}_rok{r}", f"{x}_kok{s}"]
        for j, (b, parts) in enumerate(self.bounds):
            value = f"{x}_rb{r}_{j} + {x}_kb{s}_{j}" + (f" + {parts[2].render()}" if parts[2].terms else "")
            conds += [f"({value}) {op} {limit}" for op, limit in _sides(b)]
        index = f"{x}_ro{r} + {x}_ko{s}" + (f" + {self.index[2].render()}" if self.index[2].terms else "")
        value = _convert(f"p{self.op.load.param}[{index}]", self.op.storage)
        read = f"{x}_reg[{e}] = ({' && '.join(conds)}) ? {value} : 0;"
        return ["{", *["  " + line for line in scope], "  " + read, "}"] if scope else [read]

    def store_slice(self, stage: str) -> list[str]:
        """The registers of the last loaded slice into shared-memory stage `stage` ([k][outer])."""
        lines = []
        for e in range(self.count):
            r, s = self._slot(e)
            outer = self.outer_at[r]
            lines.append(f"fg_s{self.label}[{stage}][{self.k_at[s]}][{outer}] = fg_{self.label}_reg[{e}];")
        return lines


def _convert(text: str, storage: DType) -> str:
    if storage.name == "float16":
        return f"fg_h2f({text})"
    if storage in dtypes.NARROW:
        return f"{CStyleRenderer.float_bits[storage.name][1]}({text})"
    return text


def _widths(tile: int) -> tuple[int, int]:
    """(consecutive elements per group, groups) of a thread's share of a tile side: 16 threads
    across, each holding `groups` runs of `width` elements, the runs 16 * width apart."""
    width = min(4, tile // SIDE)
    return width, tile // (SIDE * width)


def _fragment(dest: str, src: str, width: int, ct: str) -> list[str]:
    """Copy `width` consecutive values from shared memory, as one vector load where one exists."""
    vector = _VECTOR.get((ct, width))
    if vector is not None:
        return [f"*({vector}*)&{dest} = *(const {vector}*)&{src};"]
    if ct == "double" and width == 4:  # two 16-byte loads
        return [f"*(double2*)&{dest} = *(const double2*)&{src};",
                f"*(double2*)(&{dest} + 2) = *(const double2*)(&{src} + 2);"]
    return [f"{dest} = {src};"]


def _epilogue(plan: TiledGemm, renderer: CStyleRenderer, ct: str, m_of: list[str], n_of: list[str]) -> list[str]:
    """Per output element of the thread's micro-tile: recover its loop variables, run the
    statements after the sum with `acc` holding it."""
    lines = []
    for a, row in enumerate(m_of):
        lines.append(f"if (fg_m0 + {row} < {plan.m}) {{")
        lines += ["  " + line for line in declare_vars(plan.a.outer, f"fg_m0 + {row}", "const int64_t")]
        for b, col in enumerate(n_of):
            lines.append(f"  if (fg_n0 + {col} < {plan.n}) {{")
            lines += ["    " + line for line in declare_vars(plan.b.outer, f"fg_n0 + {col}", "const int64_t")]
            lines.append(f"    const {ct} {plan.acc.name} = fg_c[{a}][{b}];")
            for s in plan.epilogue:
                if isinstance(s, Define):
                    lines.append(f"    const {renderer.compute_type(s.dtype)} {s.name} = {renderer.expr(s.value)};")
                else:
                    lines.append("    " + renderer.store(s))
            lines.append("  }")
        lines.append("}")
    return lines


def _split_combine(plan: TiledGemm, name: str, m_of: list[str], n_of: list[str]) -> list[str]:
    """Split reduction: add the partial tile into the workspace; the block finishing a tile last
    takes the sums (and leaves workspace and counter zero); the others are done."""
    at = f"((int64_t)fg_batch * {plan.m} + fg_m0 + {{row}}) * {plan.n} + fg_n0 + {{col}}"
    inside = f"fg_m0 + {{row}} < {plan.m} && fg_n0 + {{col}} < {plan.n}"
    lines = []
    for a, row in enumerate(m_of):
        for b, col in enumerate(n_of):
            cond, where = inside.format(row=row, col=col), at.format(row=row, col=col)
            lines.append(f"if ({cond}) atomicAdd(&fg_ws_{name}[{where}], fg_c[{a}][{b}]);")
    tile = f"(fg_batch * {-(-plan.m // plan.bm)} + fg_tm) * {-(-plan.n // plan.bn)} + fg_tn"
    lines += ["__threadfence();  /* this block's additions are seen before its count */",
              "__syncthreads();",
              "__shared__ bool fg_last;",
              f"if (fg_t == 0) fg_last = atomicAdd(&fg_cnt_{name}[{tile}], 1u) == {plan.splits - 1}u;",
              "__syncthreads();",
              "if (!fg_last) return;",
              "__threadfence();"]
    for a, row in enumerate(m_of):
        for b, col in enumerate(n_of):
            cond, where = inside.format(row=row, col=col), at.format(row=row, col=col)
            lines.append(f"if ({cond}) {{ fg_c[{a}][{b}] = __ldcg(&fg_ws_{name}[{where}]); "
                         f"fg_ws_{name}[{where}] = 0; }}")
    lines.append(f"if (fg_t == 0) fg_cnt_{name}[{tile}] = 0u;")
    return lines


def render(renderer: CStyleRenderer, ir: LoopIR, plan: TiledGemm) -> str:
    """The kernel's source (after its launch comment): workspace declarations, then the kernel."""
    ct = renderer.compute_type(plan.acc.dtype)
    a = _OperandCode("a", plan.a, plan.bm, plan.ks, plan.batch, renderer)
    b = _OperandCode("b", plan.b, plan.bn, plan.ks, plan.batch, renderer)
    (vm, rm), (vn, rn) = _widths(plan.bm), _widths(plan.bn)
    tm, tn = vm * rm, vn * rn
    m_of = [f"{q * SIDE * vm} + fg_ty * {vm} + {u}" for q in range(rm) for u in range(vm)]
    n_of = [f"{q * SIDE * vn} + fg_tx * {vn} + {u}" for q in range(rn) for u in range(vn)]
    pad = 4 if ct == "float" else 2  # rows stay 16-byte aligned
    tiles_m, tiles_n = -(-plan.m // plan.bm), -(-plan.n // plan.bn)
    name = ir.name
    head = []
    if plan.splits > 1:
        head = [f"__device__ {ct} fg_ws_{name}[{plan.nbatch * plan.m * plan.n}];",
                f"__device__ unsigned int fg_cnt_{name}[{plan.tiles}];"]
    body = [
        f"__shared__ __align__(16) {ct} fg_sa[2][{BK}][{plan.bm + pad}];",
        f"__shared__ __align__(16) {ct} fg_sb[2][{BK}][{plan.bn + pad}];",
        f"const int fg_t = threadIdx.x, fg_tx = fg_t % {SIDE}, fg_ty = fg_t / {SIDE};",
        "unsigned int fg_bid = blockIdx.x;",
        f"const int fg_tn = fg_bid % {tiles_n}u; fg_bid /= {tiles_n}u;",
        f"const int fg_tm = fg_bid % {tiles_m}u; fg_bid /= {tiles_m}u;",
        f"const int fg_split = fg_bid % {plan.splits}u;",
        f"const int fg_batch = fg_bid / {plan.splits}u;",
        *(declare_vars(plan.batch, "fg_batch", "const int64_t") if plan.batch else ["(void)fg_batch;"]),
        f"const int fg_m0 = fg_tm * {plan.bm}, fg_n0 = fg_tn * {plan.bn};",
        f"const int fg_k0 = fg_split * {plan.k_split};",
        f"const int fg_kend = min(fg_k0 + {plan.k_split}, {plan.k});",
        f"const int fg_steps = (fg_kend - fg_k0 + {BK - 1}) / {BK};",
        *a.setup("fg_m0", plan.m),
        *b.setup("fg_n0", plan.n),
        f"{ct} fg_a_reg[{a.count}], fg_b_reg[{b.count}];",
        f"{ct} fg_c[{tm}][{tn}];",
        "#pragma unroll",
        f"for (int fg_i = 0; fg_i < {tm}; fg_i++)",
        "  #pragma unroll",
        f"  for (int fg_j = 0; fg_j < {tn}; fg_j++) fg_c[fg_i][fg_j] = 0;",
        *a.load_slice("fg_k0", "fg_kend"),
        *b.load_slice("fg_k0", "fg_kend"),
        *a.store_slice("0"),
        *b.store_slice("0"),
        "__syncthreads();",
        "for (int fg_step = 0; fg_step < fg_steps; fg_step++) {",
        "  const int fg_stage = fg_step & 1;",
        "  const bool fg_more = fg_step + 1 < fg_steps;",
        "  if (fg_more) {  /* the next slice into registers; its latency hides behind this slice's products */",
        *["    " + line for line in a.load_slice(f"fg_k0 + (fg_step + 1) * {BK}", "fg_kend")],
        *["    " + line for line in b.load_slice(f"fg_k0 + (fg_step + 1) * {BK}", "fg_kend")],
        "  }",
        "  #pragma unroll",
        f"  for (int fg_kk = 0; fg_kk < {BK}; fg_kk++) {{",
        f"    {ct} fg_fa[{tm}], fg_fb[{tn}];",
        *["    " + line for q in range(rm) for line in
          _fragment(f"fg_fa[{q * vm}]", f"fg_sa[fg_stage][fg_kk][{q * SIDE * vm} + fg_ty * {vm}]", vm, ct)],
        *["    " + line for q in range(rn) for line in
          _fragment(f"fg_fb[{q * vn}]", f"fg_sb[fg_stage][fg_kk][{q * SIDE * vn} + fg_tx * {vn}]", vn, ct)],
        "    #pragma unroll",
        f"    for (int fg_i = 0; fg_i < {tm}; fg_i++)",
        "      #pragma unroll",
        f"      for (int fg_j = 0; fg_j < {tn}; fg_j++) fg_c[fg_i][fg_j] += fg_fa[fg_i] * fg_fb[fg_j];",
        "  }",
        "  if (fg_more) {  /* the other stage was last read before the previous barrier */",
        *["    " + line for line in a.store_slice("fg_stage ^ 1")],
        *["    " + line for line in b.store_slice("fg_stage ^ 1")],
        "  }",
        "  __syncthreads();",
        "}",
        *(_split_combine(plan, name, m_of, n_of) if plan.splits > 1 else []),
        *_epilogue(plan, renderer, ct, m_of, n_of),
    ]
    signature = renderer.signature(ir).replace(f" {name}(", f" __launch_bounds__({THREADS}) {name}(", 1)
    return "\n".join(head + [signature + " {"] + ["  " + line for line in body] + ["}"])

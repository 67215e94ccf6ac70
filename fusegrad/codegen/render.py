"""C-style source rendering shared by every language; dialects override the class attributes."""
from __future__ import annotations

import math
from typing import Sequence

from .. import dtypes
from ..dtypes import DType
from ..graph.ops import Op
from ..graph.symbolic import Var
from . import float8
from .attention import attention_lines
from .recurrence import plain_product, recurrence_lines
from .scatter import index_add_lines
from .ir import (Accumulate, Alu, Attention, Cond, Const, Define, DefineAcc, EndLoop, Expr, Gemm, Index, Load, Loop,
                 IndexAdd, LoopIR, Rand, Recurrence, Ref, Store)

FLOAT32_OVERFLOW = 2.0**128 - 2.0**103  # from here on a literal rounds to inf in float: NVRTC refuses it
_INT_MIN = {"int8": "INT8_MIN", "int16": "INT16_MIN", "int32": "INT32_MIN", "int64": "INT64_MIN"}


def _loop_body(stmts: list, at: int) -> list:
    """The statements inside the loop opened at stmts[at] (up to its matching EndLoop)."""
    depth = 0
    for j in range(at + 1, len(stmts)):
        if isinstance(stmts[j], Loop):
            depth += 1
        elif isinstance(stmts[j], EndLoop):
            if depth == 0:
                return stmts[at + 1:j]
            depth -= 1
    return stmts[at + 1:]


def perfect_nest(stmts: list, at: int) -> int:
    """How many global loops from stmts[at] down are perfectly nested, each the whole body of the one
    around it: only those can be collapsed into one parallel range (loops that peeling cut into
    pieces sit side by side inside the last of them)."""
    nest = 0
    while at + nest < len(stmts) and isinstance(stmts[at + nest], Loop) and stmts[at + nest].kind == "global":
        nest += 1
        body = _loop_body(stmts, at + nest - 1)
        if not body or not isinstance(body[0], Loop) or len(_loop_body(body, 0)) != len(body) - 2:
            break
    return nest


def decompose(flat: str, variables: Sequence[Var], declare: str, suffix: str = "") -> list[str]:
    """Declarations of a row-major nest's variables (the last varies fastest) recovered from the flat
    index `flat`; `declare` formats each line from `name` and `value`, `suffix` marks the literals
    (GPU renderers map a kernel's output loops to one flat range of threads)."""
    lines, stride = [], 1
    for v in reversed(variables):
        value = f"{flat} / {stride}{suffix}" if stride > 1 else flat
        if v is not variables[0]:
            value = f"({value}) % {v.extent}{suffix}"
        lines.append(declare.format(name=v.name, value=value))
        stride *= v.extent
    return lines


# operations whose float result may fall between two values of a half dtype
_ROUNDED = frozenset({Op.CAST, Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MOD, Op.POW, Op.EXP, Op.LOG, Op.SIN, Op.COS,
                      Op.SQRT, Op.ERF})
_EXACT_IN_HALF = frozenset({"bool", "int8", "uint8"})  # every value of these is a float16 and a bfloat16
_NARROW = frozenset(d.name for d in dtypes.NARROW)
# ops that read a half constant operand as its type's value, as torch casts such a scalar for them (its
# products and quotients read the scalar in float instead)
_SCALAR_AS_TYPE = frozenset({Op.WHERE, Op.MAX, Op.CMPLT, Op.CMPEQ, Op.ADD, Op.SUB, Op.POW, Op.MOD})


class CStyleRenderer:
    """Renders loop IR as C-family source. Subclasses set the dialect data and the loop mapping."""

    kernel_prefix = "void"
    restrict = "restrict"
    storage_types = {"bool": "uint8_t", "uint8": "uint8_t", "int8": "int8_t", "int16": "int16_t",
                     "int32": "int32_t", "int64": "int64_t", "float16": "uint16_t", "bfloat16": "uint16_t",
                     "float32": "float", "float64": "double", "float8_e4m3fn": "uint8_t", "float8_e5m2": "uint8_t"}
    # BITCAST goes through an unsigned integer of the width: the preamble's fg_<f>_bits / fg_bits_<f>
    unsigned_types = {1: "uint8_t", 2: "uint16_t", 4: "uint32_t", 8: "uint64_t"}
    float_bits = {"float16": ("fg_f16_bits", "fg_bits_f16"), "bfloat16": ("fg_f32_to_bf16", "fg_bf16_to_f32"),
                  "float32": ("fg_f32_bits", "fg_bits_f32"), "float64": ("fg_f64_bits", "fg_bits_f64"),
                  **float8.FLOAT_BITS}
    preamble = ""
    support_source = ""  # a library compiled once and loaded before kernels (e.g. the GEMM routine)
    supports_gemm = False
    interchange_reductions = False  # the CPU's cache-blocking pass; GPUs keep outputs across threads
    peel_loops = False  # the CPU's guard peeling (codegen/peel.py); GPUs map global loops to threads
    hoist_invariants = False  # the CPU's loop-invariant code motion (codegen/hoist.py); not measured on GPUs
    tiled_attention = False  # fused attention by blocks of rows and tiles of the other side (codegen/attention.py)
    blocked_recurrence = False  # a recurrent layer's rows in blocks sharing each weight read (codegen/recurrence.py)
    local_align = ""  # attribute of a fused kernel's local arrays that vectors load whole
    # a block of threads sharing a fused recurrence's row: (thread index, threads, barrier, qualifier
    # of shared arrays), and the bytes of arrays it may share (none: a thread per row)
    cooperative: tuple[str, str, str, str] = ("", "", "", "")
    cooperative_bytes = 0
    # a fused row scatter-add's columns per iteration, and the iterations wanted (0: the rows in one chunk)
    scatter_width = 1
    scatter_threads = 1 << 14
    _exact_names: frozenset[str] | set[str] = frozenset()  # set per kernel by render_kernel

    # types
    def storage_type(self, dtype: DType) -> str:
        return self.storage_types[dtype.name]

    def compute_type(self, dtype: DType) -> str:
        return "float" if dtype.name in _NARROW else self.storage_type(dtype)

    # expressions
    def literal(self, value: object, dtype: DType) -> str:
        if dtype.is_floating_point:
            v = float(value)  # type: ignore[arg-type]
            if math.isnan(v):
                return "NAN"
            if math.isinf(v) or (dtype.name != "float64" and abs(v) >= FLOAT32_OVERFLOW):
                return "INFINITY" if v > 0 else "(-INFINITY)"
            text = repr(v)
            return text if dtype.name == "float64" else text + "f"
        if dtype.name == "bool":
            return "1" if value else "0"
        v = int(value)  # type: ignore[call-overload]
        if dtype.name == "int64":
            return "(-9223372036854775807LL-1)" if v == -2**63 else f"{v}LL"
        return f"(({self.compute_type(dtype)}){v})"

    def math_fn(self, name: str, dtype: DType) -> str:
        return name if dtype.name == "float64" else name + "f"

    def widened(self, text: str, dtype: DType) -> str:
        """A stored element's value in its compute type (the half types are computed in float)."""
        return f"{self.float_bits[dtype.name][1]}({text})" if dtype.name in _NARROW else text

    def load(self, e: Load) -> str:
        text = self.widened(f"p{e.param}[{e.index.render()}]", e.dtype)
        if e.valid:
            text = f"(({' && '.join(b.render() for b in e.valid)}) ? {text} : 0)"
        return text

    def expr(self, e: Expr) -> str:
        if isinstance(e, Ref):
            return e.name
        if isinstance(e, Const):
            return self.literal(e.value, e.dtype)
        if isinstance(e, Load):
            return self.load(e)
        if isinstance(e, Cond):
            return "(" + " && ".join(b.render() for b in e.bounds) + ")"
        if isinstance(e, Index):
            return f"((int64_t){e.index.render()})"
        if isinstance(e, Rand):
            state = f"p{e.state_param}"
            return f"fg_rand((uint64_t){state}[0], (uint64_t){state}[1] + (uint64_t){e.index.render()})"
        text = self.alu(e)
        if self._rounds(e):
            # computed in float: the result is rounded to its dtype after each operation, as PyTorch
            # rounds every operation's output (fused or not, the same numbers)
            to_bits, from_bits = self.float_bits[e.dtype.name]
            text = f"{from_bits}({to_bits}({text}))"
        return text

    def _operand(self, x: Expr, op: Op) -> str:
        """An operand of `op` as C. A half constant that a selection, maximum, comparison, sum, difference,
        power or remainder reads is the value of its type (as torch casts such a scalar), not the Python float
        written (which products and quotients read, as torch's scalar in the float op)."""
        if op in _SCALAR_AS_TYPE and isinstance(x, Const) and x.dtype in dtypes.HALF:
            return self.literal(dtypes.round_half(float(x.value), x.dtype), x.dtype)
        return self.expr(x)

    @staticmethod
    def _rounds(e: Alu) -> bool:
        """Whether the float result of `e` is rounded to its half dtype as rendered."""
        source = getattr(e.args[0], "dtype", e.dtype) if e.args else e.dtype
        exact = e.op is Op.CAST and e.dtype in dtypes.HALF and source.name in _EXACT_IN_HALF
        return e.op in _ROUNDED and e.dtype.name in _NARROW and not exact

    def alu(self, e: Alu) -> str:
        a = [self._operand(x, e.op) for x in e.args]
        op, dt = e.op, e.dtype
        src_dt = getattr(e.args[0], "dtype", dt)
        isfloat = dt.is_floating_point
        if op is Op.CAST:
            if dt.name == "bool":
                return f"({a[0]} != 0)"
            return f"(({self.compute_type(dt)}){a[0]})"
        if op is Op.BITCAST:
            return self.bitcast(a[0], src_dt, dt)
        if op is Op.NEG:
            return f"(-{a[0]})"
        if op is Op.NOT:
            return f"(!{a[0]})" if dt.name == "bool" else f"(~{a[0]})"
        if op in (Op.EXP, Op.LOG, Op.SIN, Op.COS, Op.SQRT, Op.ERF, Op.FLOOR, Op.RINT):
            return f"{self.math_fn(op.name.lower(), dt)}({a[0]})"
        if op is Op.ADD:
            return f"({a[0]} || {a[1]})" if dt.name == "bool" else f"({a[0]} + {a[1]})"
        if op is Op.SUB:
            return f"({a[0]} - {a[1]})"
        if op is Op.MUL:
            return f"({a[0]} && {a[1]})" if dt.name == "bool" else f"({a[0]} * {a[1]})"
        if op is Op.DIV:
            return f"({a[0]} / {a[1]})" if isfloat else f"(({self.compute_type(dt)})fg_floordiv({a[0]}, {a[1]}))"
        if op is Op.MOD:
            if isfloat:
                return f"{self.math_fn('fg_fmod', dt)}({a[0]}, {a[1]})"
            return f"(({self.compute_type(dt)})fg_floormod({a[0]}, {a[1]}))"
        if op is Op.POW:
            if isfloat:
                return f"{self.math_fn('pow', dt)}({a[0]}, {a[1]})"
            return f"(({self.compute_type(dt)})fg_ipow({a[0]}, {a[1]}))"
        if op is Op.MAX:
            return f"{self.math_fn('fg_max', dt)}({a[0]}, {a[1]})" if isfloat else \
                f"(({a[0]} > {a[1]}) ? {a[0]} : {a[1]})"
        if op is Op.CMPLT:
            return f"({a[0]} < {a[1]})"
        if op is Op.CMPEQ:
            return f"({a[0]} == {a[1]})"
        if op is Op.AND:
            return f"({a[0]} & {a[1]})"
        if op is Op.OR:
            return f"({a[0]} | {a[1]})"
        if op is Op.XOR:
            return f"({a[0]} ^ {a[1]})"
        if op is Op.WHERE:
            return f"({a[0]} ? {a[1]} : {a[2]})"
        if op is Op.CHECK:  # args: value, ok, position, code, the error word's parameter, the value reported
            return f"(fg_check(p{e.args[4].value}, {e.args[3].value}, {a[1]}, {a[5]}, {a[2]}), {a[0]})"
        raise NotImplementedError(f"{type(self).__name__} cannot render {op} on {src_dt.name}")

    def bitcast(self, x: str, src: DType, dst: DType) -> str:
        """`x` (a value of src) read as dst, a dtype of the same itemsize: through the unsigned integer of
        that width (floats computed as float, float16 and bfloat16 included, give their stored bits)."""
        bits = f"(({self.unsigned_types[src.itemsize]}){x})"
        if src.is_floating_point:
            bits = f"{self.float_bits[src.name][0]}({x})"
        if dst.is_floating_point:
            return f"{self.float_bits[dst.name][1]}({bits})"
        if dst.name == "bool":
            return f"({bits} != 0)"
        return f"(({self.compute_type(dst)}){bits})"

    # statements
    def acc_init(self, op: Op, dtype: DType) -> str:
        if op is Op.SUM:
            return self.literal(0, dtype)
        if op is Op.PROD:
            return self.literal(1, dtype)
        if dtype.is_floating_point:
            return "(-INFINITY)"
        return _INT_MIN.get(dtype.name, "0")

    def define_acc(self, s: DefineAcc) -> list[str]:
        return [f"{self.compute_type(s.dtype)} {s.name} = {self.acc_init(s.op, s.dtype)};"]

    def accumulate(self, s: Accumulate) -> str:
        v = self.expr(s.value)
        if s.op is Op.SUM:
            return f"{s.name} += {v};" if s.dtype.name != "bool" else f"{s.name} = {s.name} || {v};"
        if s.op is Op.PROD:
            return f"{s.name} *= {v};" if s.dtype.name != "bool" else f"{s.name} = {s.name} && {v};"
        if s.dtype.is_floating_point:
            return f"{s.name} = {self.math_fn('fg_max', s.dtype)}({s.name}, {v});"
        return f"{s.name} = ({v} > {s.name}) ? {v} : {s.name};"

    def store(self, s: Store) -> str:
        e = s.value
        if s.dtype.name not in _NARROW:
            return f"p{s.param}[{s.index.render()}] = {self.expr(e)};"
        if isinstance(e, Alu) and e.dtype is s.dtype and self._rounds(e):
            v = self.alu(e)  # the conversion to the stored bits is the rounding (not rounded, widened, narrowed)
        elif s.dtype is dtypes.bfloat16 and self._exact(e, s.dtype):  # a bfloat16 value: its float's top half
            bits = f"({self.storage_type(s.dtype)})(fg_f32_bits({self.expr(e)}) >> 16)"
            return f"p{s.param}[{s.index.render()}] = {bits};"
        else:
            v = self.expr(e)
        return f"p{s.param}[{s.index.render()}] = {self.float_bits[s.dtype.name][0]}({v});"

    def _exact(self, e: Expr, dtype: DType) -> bool:
        """Whether `e` as rendered holds a value of the half `dtype` exactly: loaded from it, rounded to it, a
        constant it holds (constants are written as given, not rounded), a selection, maximum or negation of
        such values, or a variable defined as one."""
        if isinstance(e, Ref):
            return e.name in self._exact_names
        if isinstance(e, Const):
            return dtypes.half_exact(float(e.value), dtype)
        if e.dtype is not dtype:
            return False
        if isinstance(e, Alu) and e.op in (Op.WHERE, Op.MAX, Op.NEG):
            return all(self._exact(a, dtype) for a in (e.args[1:] if e.op is Op.WHERE else e.args))
        return isinstance(e, Load) or isinstance(e, Alu) and self._rounds(e)

    def loop_open(self, loop: Loop, nest: int, work: int, body: list) -> list[str]:
        """Open a loop; `nest` counts the global loops of a nest starting here (0 if not its first);
        `body` is the statements inside it."""
        return [f"for (int64_t {loop.var.name} = 0; {loop.var.name} < {loop.var.extent}; {loop.var.name}++) {{"]

    def loop_close(self, loop: Loop) -> list[str]:
        """Close a loop opened by loop_open."""
        return ["}"]

    def statement(self, s: object) -> list[str]:
        """A statement only some renderers' plans contain (e.g. the GPU's lane combines)."""
        raise NotImplementedError(f"{type(self).__name__} cannot render {type(s).__name__}")

    def attention(self, s: Attention) -> list[str]:
        """The statements of a fused attention kernel's row (codegen/attention.py's shared body)."""
        return attention_lines(self, s)

    def recurrence(self, s: Recurrence) -> list[str]:
        """The statements of a fused recurrent layer's block of rows (codegen/recurrence.py's body)."""
        return recurrence_lines(self, s)

    def recurrence_product(self, s: Recurrence, out: str, inp: str, matrix: Load, x: Var, y: Var) -> list[str]:
        """A fused recurrent layer's step product: out[row][x] += sum over y of inp[row][y] * matrix
        (codegen/recurrence.py), for the block's rows."""
        return plain_product(self, s, out, inp, matrix, x, y)

    def inner_pragma(self, reduction: str | None) -> str:
        """The line before a fixed-length loop over a head dim in a fused kernel (codegen/attention.py),
        naming the sum it accumulates if any; empty for none."""
        return ""

    def gemm(self, s: Gemm) -> str:
        raise NotImplementedError(f"{type(self).__name__} has no GEMM routine")

    def signature(self, ir: LoopIR) -> str:
        params = []
        for i, p in enumerate(ir.params):
            const = "" if p.output else "const "
            params.append(f"{const}{self.storage_type(p.dtype)}* {self.restrict} p{i}")
        return f"{self.kernel_prefix} {ir.name}({', '.join(params)})"

    def entry(self, ir: LoopIR) -> list[str]:
        """Lines that open every kernel body, before its statements (none here)."""
        return []

    def render_kernel(self, ir: LoopIR) -> str:
        self._exact_names = set()  # variables holding values of their half dtype exactly (`_exact`)
        lines = [self.signature(ir) + " {", *("  " + line for line in self.entry(ir))]
        depth = 1
        open_loops: list[Loop] = []
        for i, s in enumerate(ir.stmts):
            pad = "  " * depth
            if isinstance(s, Loop):
                nest = perfect_nest(ir.stmts, i) if s.kind == "global" and depth == 1 else 0
                lines += [pad + line for line in self.loop_open(s, nest, ir.work, _loop_body(ir.stmts, i))]
                open_loops.append(s)
                depth += 1
            elif isinstance(s, EndLoop):
                depth -= 1
                lines += ["  " * depth + line for line in self.loop_close(open_loops.pop())]
            elif isinstance(s, Define):
                lines.append(f"{pad}{self.compute_type(s.dtype)} {s.name} = {self.expr(s.value)};")
                if s.dtype.name in _NARROW and self._exact(s.value, s.dtype):
                    self._exact_names.add(s.name)
            elif isinstance(s, DefineAcc):
                lines += [pad + line for line in self.define_acc(s)]
            elif isinstance(s, Accumulate):
                lines.append(pad + self.accumulate(s))
            elif isinstance(s, Store):
                lines.append(pad + self.store(s))
            elif isinstance(s, Gemm):
                lines.append(pad + self.gemm(s))
            elif isinstance(s, Attention):
                lines += [pad + line for line in self.attention(s)]
            elif isinstance(s, Recurrence):
                lines += [pad + line for line in self.recurrence(s)]
            elif isinstance(s, IndexAdd):
                lines += [pad + line for line in index_add_lines(self, s)]
            else:
                lines += [pad + line for line in self.statement(s)]
        lines.append("}")
        return "\n".join(lines)

    def render_unit(self, kernels: list[str]) -> str:
        """One translation unit holding many kernels."""
        return self.preamble + "\n\n".join(kernels) + "\n"

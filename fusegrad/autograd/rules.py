"""One derivative rule per primitive (`RULES`), written with tensor ops so gradients differentiate
again, the values each rule reads (`READS_INPUTS`, `READS_OUTPUT`), and the history entries the
rules read: `Ctx` (how a tensor was made) and `Past` (a history an in-place write replaced)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

from ..graph.ops import Op

if TYPE_CHECKING:
    from ..tensor import Tensor


class Ctx:
    """How a tensor was made: the primitive op, its input tensors and its argument; the inputs'
    version counters when any was written in place before (None: all were at version 0), and the
    version of the output from which on it holds this history (0 unless an in-place write made it)."""

    __slots__ = ("op", "inputs", "arg", "versions", "out_version", "freed")

    def __init__(self, op: Op, inputs: tuple["Tensor", ...], arg: Any):
        self.op = op
        self.inputs = inputs
        self.arg = arg
        self.versions = None
        self.out_version = 0
        self.freed = False  # a backward without retain_graph walked it: its saved values are gone
        for i in inputs:  # a loop, not any(): this runs for every recorded op
            if i._version:
                self.versions = tuple(t._version for t in inputs)
                break


class Past:
    """A history a tensor held until an in-place write replaced it at version `until` + 1; the ops
    that used the tensor before that write follow it (through one object, made on first use)."""

    __slots__ = ("until", "ctx", "node", "requires_grad", "tensor")

    def __init__(self, until: int, ctx: Ctx | None, node: Any, requires_grad: bool):
        self.until = until
        self.ctx = ctx
        self.node = node
        self.requires_grad = requires_grad
        self.tensor: "Tensor | None" = None


# grad mode


def _add(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    return g, g


def _sub(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    return g, -g


def _mul(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    a, b = ctx.inputs
    return g * b, g * a


def _div(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    a, b = ctx.inputs
    return g / b, -g * a / (b * b)


def _mod(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    a, b = ctx.inputs
    return g, -g * (a / b).floor()


def _pow(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    # torch's masks, applied to the operands rather than the results so that higher derivatives stay
    # finite too: x**0 has slope 0 everywhere (its base term uses x**0 = 1, not 0 * 0**-1 = NaN), and the
    # exponent's gradient at a zero base with a non-negative exponent is 0 (log of 1 there, not 0 * log 0)
    a, b = ctx.inputs
    da = g * b * a ** (b - 1).where(b != 0, 0.0)
    db = g * out * a.where((a != 0) | (b < 0), 1.0).log()
    return da, db


def _max(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    a, b = ctx.inputs
    share = (a > b).to(g.dtype) + (a == b).to(g.dtype) * 0.5  # ties split the gradient, like torch
    return g * share, g * (1 - share)


def _where(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    cond = ctx.inputs[0]
    return None, g.where(cond, 0), g.where(cond.logical_not(), 0)


def _neg(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    return (-g,)


def _exp(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    return (g * out,)


def _log(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    return (g / ctx.inputs[0],)


def _sin(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    return (g * ctx.inputs[0].cos(),)


def _cos(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    return (-g * ctx.inputs[0].sin(),)


def _sqrt(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    return (g / (out * 2),)


def _erf(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    a = ctx.inputs[0]
    return (g * (2 / math.sqrt(math.pi)) * (-(a * a)).exp(),)


def _cast(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    a = ctx.inputs[0]
    return (g.to(a.dtype) if a.dtype.is_floating_point else None,)


def _none(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    return (None,) * len(ctx.inputs)


def _sum(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    return (g.expand(ctx.inputs[0].shape),)


def _rmax(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    a = ctx.inputs[0]
    hit = (a == out.expand(a.shape)).to(g.dtype)  # ties share the gradient evenly, like torch's amax
    count = hit.sum(ctx.arg, keepdim=True)
    return (hit * (g / count).expand(a.shape),)


def _prod(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    # d(prod)/d(a_i) is the product of the others: out / a_i without zeros; with exactly one zero,
    # the product of the non-zeros at that zero (and 0 elsewhere); with two or more, 0 everywhere
    a = ctx.inputs[0]
    is_zero = a == 0
    zeros = is_zero.sum(ctx.arg, keepdim=True).expand(a.shape)
    others_nonzero = a.where(is_zero.logical_not(), 1).prod(ctx.arg, keepdim=True).expand(a.shape)
    safe_a = a.where(is_zero.logical_not(), 1)
    no_zero = out.expand(a.shape) / safe_a
    one_zero = others_nonzero.where(is_zero, 0)
    share = no_zero.where(zeros == 0, one_zero.where(zeros == 1, 0))
    return (g.expand(a.shape) * share,)


def _reshape(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    return (g.reshape(ctx.inputs[0].shape),)


def _permute(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    inverse = [0] * len(ctx.arg)
    for i, axis in enumerate(ctx.arg):
        inverse[axis] = i
    return (g.permute(inverse),)


def _expand(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    src = ctx.inputs[0].shape
    axes = tuple(i for i, (s, o) in enumerate(zip(src, out.shape)) if s == 1 and o != 1)
    return (g.sum(axes, keepdim=True) if axes else g,)


def _pad(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    return (g._movement(Op.SHRINK, tuple((lo, lo + s) for (lo, _), s in zip(ctx.arg, ctx.inputs[0].shape))),)


def _shrink(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    src = ctx.inputs[0].shape
    return (g._movement(Op.PAD, tuple((lo, s - hi) for (lo, hi), s in zip(ctx.arg, src))),)


def _flip(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    return (g._movement(Op.FLIP, ctx.arg),)


def _identity(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    return (g,)


def _attention(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    from ..ops.attention import attention_gradients
    return attention_gradients(ctx.inputs, ctx.arg, out, g)


def _recurrence(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    from ..ops.recurrence import recurrence_gradients
    return recurrence_gradients(ctx.inputs, ctx.arg, out, g)


def _index_add(ctx: Ctx, out: "Tensor", g: "Tensor") -> tuple:
    from ..ops.scatter import index_add_gradients
    return index_add_gradients(ctx.inputs, g)


RULES: dict[Op, Callable[[Ctx, "Tensor", "Tensor"], tuple]] = {
    Op.ADD: _add, Op.SUB: _sub, Op.MUL: _mul, Op.DIV: _div, Op.MOD: _mod, Op.POW: _pow, Op.MAX: _max,
    Op.WHERE: _where, Op.NEG: _neg, Op.EXP: _exp, Op.LOG: _log, Op.SIN: _sin, Op.COS: _cos, Op.SQRT: _sqrt,
    Op.ERF: _erf, Op.CAST: _cast,
    Op.FLOOR: _none, Op.RINT: _none, Op.CMPLT: _none, Op.CMPEQ: _none, Op.AND: _none, Op.OR: _none, Op.XOR: _none,
    Op.NOT: _none, Op.RAND: _none, Op.BITCAST: _none, Op.CHECK: _none,
    Op.SUM: _sum, Op.RMAX: _rmax, Op.PROD: _prod,
    Op.RESHAPE: _reshape, Op.PERMUTE: _permute, Op.EXPAND: _expand, Op.PAD: _pad, Op.SHRINK: _shrink,
    Op.FLIP: _flip, Op.CONTIGUOUS: _identity, Op.ATTENTION: _attention,
    Op.RECURRENCE: _recurrence, Op.INDEX_ADD: _index_add,
}


# the values each rule reads besides the incoming gradient (input positions, and the output): a value
# written in place after its op used it cannot be differentiated through, and raises as in torch
# (per input: the inputs its gradient reads; the inputs whose gradients read the output), so a value
# counts as read only when an input that needs that gradient requires grad (x * 3 reads x only
# for the constant's gradient: writing x afterwards is fine, as in torch)
READS_INPUTS: dict[Op, dict[int, tuple[int, ...]]] = {
    Op.MUL: {0: (1,), 1: (0,)}, Op.DIV: {0: (1,), 1: (0, 1)}, Op.MOD: {1: (0, 1)}, Op.POW: {0: (0, 1), 1: (0,)},
    Op.MAX: {0: (0, 1), 1: (0, 1)}, Op.WHERE: {1: (0,), 2: (0,)}, Op.LOG: {0: (0,)}, Op.SIN: {0: (0,)},
    Op.COS: {0: (0,)}, Op.ERF: {0: (0,)}, Op.RMAX: {0: (0,)}, Op.PROD: {0: (0,)},
    Op.ATTENTION: {0: (0, 1, 2), 1: (0, 1, 2), 2: (0, 1, 2)},
    Op.RECURRENCE: {i: (0, 1, 2, 3, 4) for i in range(5)}, Op.INDEX_ADD: {0: (1,)},
}
READS_OUTPUT: dict[Op, tuple[int, ...]] = {Op.EXP: (0,), Op.SQRT: (0,), Op.POW: (1,), Op.RMAX: (0,),
                                           Op.PROD: (0,), Op.ATTENTION: (0, 1, 2),
                                           Op.RECURRENCE: (0, 1, 2, 3, 4)}

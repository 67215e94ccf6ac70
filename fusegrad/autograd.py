"""Reverse-mode autodiff over the tensors' recorded primitive ops.

Every primitive has one derivative rule in `RULES`, written with tensor ops, so gradients are
lazy tensors like any other and differentiate again (higher order comes free). Composite ops
(softmax, layer_norm, ...) are built from primitives and need no rules of their own.
Traversals use explicit stacks: training graphs go deeper than Python's recursion limit.
"""
from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .engine.realize import graph_key, pending_nodes, realize, run, steps_for
from .engine.schedule import toposort
from .errors import GradError
from .graph import node as G
from .graph import template
from .graph.ops import Op
from .graph.template import Template

if TYPE_CHECKING:
    from .tensor import Tensor


class _State(threading.local):
    def __init__(self) -> None:
        self.grad_enabled = True
        self.tapes: list["GradientTape"] = []


_state = _State()


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

def is_grad_enabled() -> bool:
    return _state.grad_enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager and decorator switching gradient recording on or off (like torch)."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev: list[bool] = []

    def __enter__(self) -> None:
        self.prev.append(_state.grad_enabled)
        _state.grad_enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        _state.grad_enabled = self.prev.pop()


def no_grad() -> set_grad_enabled:
    """Ops inside record no history: `with fg.no_grad():` or `@fg.no_grad()`."""
    return set_grad_enabled(False)


def enable_grad() -> set_grad_enabled:
    return set_grad_enabled(True)


def should_record(inputs: Sequence["Tensor"]) -> bool:
    """Record history when grads are on and an input requires grad or a tape is watching."""
    return recording(any(t.requires_grad for t in inputs))


def recording(input_requires_grad: bool) -> bool:
    """should_record for a caller that already knows whether an input requires grad (every op)."""
    return _state.grad_enabled and (input_requires_grad or bool(_state.tapes))


# derivative rules: rule(ctx, out, grad) -> one gradient (or None) per input

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


RULES: dict[Op, Callable[[Ctx, "Tensor", "Tensor"], tuple]] = {
    Op.ADD: _add, Op.SUB: _sub, Op.MUL: _mul, Op.DIV: _div, Op.MOD: _mod, Op.POW: _pow, Op.MAX: _max,
    Op.WHERE: _where, Op.NEG: _neg, Op.EXP: _exp, Op.LOG: _log, Op.SIN: _sin, Op.COS: _cos, Op.SQRT: _sqrt,
    Op.ERF: _erf, Op.CAST: _cast,
    Op.FLOOR: _none, Op.RINT: _none, Op.CMPLT: _none, Op.CMPEQ: _none, Op.AND: _none, Op.OR: _none, Op.XOR: _none,
    Op.NOT: _none, Op.RAND: _none, Op.BITCAST: _none,
    Op.SUM: _sum, Op.RMAX: _rmax, Op.PROD: _prod,
    Op.RESHAPE: _reshape, Op.PERMUTE: _permute, Op.EXPAND: _expand, Op.PAD: _pad, Op.SHRINK: _shrink,
    Op.FLIP: _flip, Op.CONTIGUOUS: _identity,
}


# the values each rule reads besides the incoming gradient (input positions, and the output): a value
# written in place after its op used it cannot be differentiated through, and raises as in torch
READS_INPUTS: dict[Op, tuple[int, ...]] = {
    Op.MUL: (0, 1), Op.DIV: (0, 1), Op.MOD: (0, 1), Op.POW: (0, 1), Op.MAX: (0, 1), Op.WHERE: (0,),
    Op.LOG: (0,), Op.SIN: (0,), Op.COS: (0,), Op.ERF: (0,), Op.RMAX: (0,), Op.PROD: (0,),
}
READS_OUTPUT = frozenset({Op.EXP, Op.SQRT, Op.POW, Op.RMAX, Op.PROD})


# the engine

def _topo(targets: "Tensor | Sequence[Tensor]") -> list["Tensor"]:
    """Tensors with history that the targets depend on, each after its inputs. Iterative."""
    order: list["Tensor"] = []
    seen: set["Tensor"] = set()  # tensors hash by identity
    roots = [targets] if not isinstance(targets, (list, tuple)) else targets
    stack: list[tuple["Tensor", bool]] = [(t, False) for t in reversed(roots)]
    push, pop, mark = stack.append, stack.pop, seen.add  # every backward walks its whole tape
    while stack:
        t, expanded = pop()
        if expanded:
            order.append(t)
            continue
        if t in seen:
            continue
        mark(t)
        push((t, True))
        ctx = t._ctx
        if ctx is not None:
            if ctx.freed and _keeps_values(ctx):
                raise GradError("Trying to backward through the graph a second time (or directly access saved "
                                "tensors after they have already been freed). Saved intermediate values of the "
                                "graph are freed when you call .backward() or autograd.grad(). Specify "
                                "retain_graph=True if you need to backward through the graph a second time or "
                                "if you need to access saved tensors after calling backward.")
            if t._version != ctx.out_version and ctx.op in READS_OUTPUT:
                _modified_in_place(t, ctx.out_version, f"the output of {ctx.op.name}")
            for k, i in enumerate(ctx.inputs):
                if i._version and i._version != (ctx.versions[k] if ctx.versions else 0):
                    i = _rewind(ctx, k)
                if i not in seen:
                    push((i, False))
    return order


def _keeps_values(ctx: Ctx) -> bool:
    """Whether ctx's rule reads saved values (a custom Function always may), which backward frees."""
    return ctx.op in READS_INPUTS or ctx.op in READS_OUTPUT or not isinstance(ctx.op, Op)


def _free(order: list["Tensor"]) -> None:
    for t in order:
        if t._ctx is not None:
            t._ctx.freed = True


def _rule(ctx: Ctx) -> Callable[[Ctx, "Tensor", "Tensor"], tuple]:
    """The derivative rule of ctx's op: a primitive's from RULES, a custom Function's its own."""
    rule = RULES.get(ctx.op) if isinstance(ctx.op, Op) else None
    return rule if rule is not None else ctx.op.rule


def _run_hooks(t: "Tensor", g: "Tensor") -> "Tensor":
    """t's gradient through its hooks (register_hook), each may return a replacement."""
    for hook in list(t._hooks.values()):
        out = hook(g)
        if out is not None:
            if tuple(out.shape) != tuple(g.shape):
                from .errors import ShapeError
                raise ShapeError(f"hook returned a gradient of shape {tuple(out.shape)}, expected {tuple(g.shape)}")
            g = out
    return g


def _rewind(ctx: Ctx, k: int) -> "Tensor":
    """Input k of ctx was written in place after ctx used it: raise if ctx's rule reads its value (as
    torch does), else point ctx at the history the input had when it was used, and return it."""
    from .tensor import Tensor
    t = ctx.inputs[k]
    used = ctx.versions[k] if ctx.versions else 0
    if k in READS_INPUTS.get(ctx.op, ()):
        _modified_in_place(t, used, f"input {k} of {ctx.op.name}")
    for past in getattr(t, "_past", ()):
        if past.until >= used:
            if past.tensor is None:
                past.tensor = Tensor.__new__(Tensor)
                past.tensor._init(past.node, past.ctx, past.requires_grad)
            was = past.tensor
            was._version = t._version  # its value is gone: a rule reading it must raise
            break
    else:
        was = t  # written since, but its history did not change (writes under no_grad)
    ctx.inputs = ctx.inputs[:k] + (was,) + ctx.inputs[k + 1:]
    ctx.versions = tuple(i._version for i in ctx.inputs)
    return was


def _modified_in_place(t: "Tensor", expected: int, role: str) -> None:
    raise GradError(f"one of the variables needed for gradient computation has been modified by an inplace "
                    f"operation: a {t.dtype.name} tensor of shape {tuple(t.shape)}, {role}, is at version "
                    f"{t._version}; expected version {expected} instead. Hint: compute it out of place, or "
                    "clone() it before writing.")


def _propagate(target: "Tensor | Sequence[Tensor]", seed: "Tensor | Sequence[Tensor]",
               wanted: Callable[["Tensor"], bool], order: list["Tensor"] | None = None) -> dict[int, "Tensor"]:
    """Gradients of the target(s) (seeded with `seed`, one per target) for every tensor on a path to a
    wanted tensor; `order` is `_topo(target)` when the caller has it already."""
    order = _topo(target) if order is None else order
    relevant: set[int] = set()
    for t in order:
        ctx = t._ctx
        if wanted(t):
            relevant.add(id(t))
        elif ctx is not None:
            for i in ctx.inputs:  # a loop, not any(): this runs for every tensor of the graph
                if id(i) in relevant:
                    relevant.add(id(t))
                    break
    grads: dict[int, "Tensor"] = {}
    targets, seeds = (target, seed) if isinstance(target, (list, tuple)) else ((target,), (seed,))
    for t, g in zip(targets, seeds):
        grads[id(t)] = g if id(t) not in grads else grads[id(t)] + g
    for t in reversed(order):
        g = grads.get(id(t))
        if g is None or id(t) not in relevant:
            continue
        if t._hooks is not None:
            g = grads[id(t)] = _run_hooks(t, g)
        ctx = t._ctx
        if ctx is None:
            continue
        for inp, ig in zip(ctx.inputs, _rule(ctx)(ctx, t, g)):
            if ig is None or id(inp) not in relevant:
                continue
            prev = grads.get(id(inp))
            grads[id(inp)] = ig if prev is None else prev + ig
    # connected through ops of zero derivative only (floor, comparisons): zero, like torch
    for t in order:
        if wanted(t) and id(t) in relevant and id(t) not in grads and t.dtype.is_floating_point:
            grads[id(t)] = t.zeros_like()
    return grads


def _seed(target: "Tensor", gradient: "Tensor | None") -> "Tensor":
    if gradient is None:
        if target.numel() != 1:
            raise GradError(f"grad can be implicitly created only for scalar outputs; got shape {target.shape}. "
                            "Pass gradient= with the output's shape.")
        return target.ones_like()
    if tuple(gradient.shape) != tuple(target.shape):
        from .errors import ShapeError
        raise ShapeError(f"gradient has shape {tuple(gradient.shape)} but the output has shape {target.shape}")
    return gradient


def _storage_order(leaves: list["Tensor"]) -> list["Tensor"]:
    """Leaves that are slices of one flat tensor (an optimizer's packed parameters) in storage order,
    ahead of the others (kept in their order)."""
    def key(item: tuple[int, "Tensor"]) -> tuple:
        place = G.flat_view_offset(item[1]._node)
        return (0, id(place[0]), place[1]) if place is not None else (1, 0, item[0])
    return [t for _, t in sorted(enumerate(leaves), key=key)]


def backward(target: "Tensor", gradient: "Tensor | None" = None, create_graph: bool = False,
             inputs: Sequence["Tensor"] | None = None, retain_graph: bool | None = None) -> None:
    """Accumulate d(target)/d(leaf) into `.grad` of every leaf that requires grad (and of the tensors
    that retain_grad()); without retain_graph (default: create_graph) the graph's saved values are
    freed, so a second backward through ops that read them raises, as in torch."""
    if not target.requires_grad and target._ctx is None:
        raise GradError("element 0 of tensors does not require grad and does not have a grad_fn")
    chosen = {id(t) for t in inputs} if inputs is not None else None

    def wanted(t: "Tensor") -> bool:
        if chosen is not None:
            return id(t) in chosen
        return t.requires_grad and (t._ctx is None or t._retains_grad is True)

    with set_grad_enabled(create_graph):
        seed = _seed(target, gradient)
        order = _topo(target)
        if not create_graph and not _has_callbacks(order):
            _backward_realized(target, seed, order, wanted)
        else:
            grads = _propagate(target, seed, wanted, order)
            leaves = _storage_order([t for t in order if wanted(t) and id(t) in grads])
            for leaf in leaves:
                leaf.grad = _accumulated(leaf, grads[id(leaf)])
            if not create_graph:
                realize([target._node] + [leaf.grad._node for leaf in leaves])
    if not (create_graph if retain_graph is None else retain_graph):
        _free(order)


def _has_callbacks(order: list["Tensor"]) -> bool:
    """Python code runs during this backward (hooks, custom Functions): no recorded plan can replay it."""
    for t in order:
        if t._hooks is not None or (t._ctx is not None and not isinstance(t._ctx.op, Op)):
            return True
    return False


def _accumulated(leaf: "Tensor", g: "Tensor") -> "Tensor":
    """The leaf's new .grad: g in the leaf's dtype, added to the gradient it holds."""
    if g.dtype is not leaf.dtype:
        g = g.to(leaf.dtype)
    return g if leaf.grad is None else leaf.grad + g


class _BackwardPlan:
    """What backward did on a graph of one structure, by position: the gradient nodes it built (a
    template over the forward graph), which tensors of the tape got which gradient, and the nodes
    the realization computes and walks."""

    __slots__ = ("template", "leaves", "grads", "pending", "order")

    def __init__(self, template: Template, leaves: list[int], grads: list[int], pending: list[int],
                 order: list[int]):
        self.template = template
        self.leaves = leaves
        self.grads = grads
        self.pending = pending
        self.order = order


# by _structure: a training loop's backward runs no derivative rule (and walks no graph for its
# realization) after the first step, only rebuilds the recorded gradient nodes
_backward_plans: OrderedDict[tuple, _BackwardPlan] = OrderedDict()
MAX_BACKWARD_PLANS = 64


def _structure(order: list["Tensor"], chosen: list[bool], seed: "Tensor") -> tuple[tuple, list[G.Node]]:
    """A key for everything the derivative rules read when they build the gradient graph: the
    structure of the nodes under the tape (realized ones as anonymous leaves), of the tape (ops,
    args, wiring, tensor types) and which tensors want a gradient and already hold one; and the
    nodes under the tape, in key order."""
    roots = [t._node for t in order]
    roots.append(seed._node)
    held = [w and t.grad is not None for t, w in zip(order, chosen)]
    roots.extend(t.grad._node for t, h in zip(order, held) if h)
    base = toposort(roots)
    position = {t: i for i, t in enumerate(order)}.__getitem__
    tape: list[tuple] = []
    for t, w, h in zip(order, chosen, held):
        ctx = t._ctx
        if ctx is None:
            tape.append((type(t), w, h))
        else:
            tape.append((type(t), w, h, ctx.op, ctx.arg, tuple(map(position, ctx.inputs))))
    return (graph_key(base, roots), tuple(tape)), base


def _backward_realized(target: "Tensor", seed: "Tensor", order: list["Tensor"],
                       wanted: Callable[["Tensor"], bool]) -> None:
    """backward without create_graph: the gradients, computed together with the target. The loss
    comes free with its gradients, which are packed back to back (in the order the leaves are
    stored) so that an optimizer reads them as one flat tensor."""
    from .tensor import Tensor
    key, base = _structure(order, [wanted(t) for t in order], seed)
    plan = _backward_plans.get(key)
    if plan is None:
        grads = _propagate(target, seed, wanted, order)
        leaves = _storage_order([t for t in order if wanted(t) and id(t) in grads])
        finals = [_accumulated(leaf, grads[id(leaf)])._node for leaf in leaves]
        recorded = template.record(base, [target._node] + finals)
        if recorded is None:
            for leaf, node in zip(leaves, finals):
                leaf.grad = Tensor._from_node(node)
            realize([target._node] + finals, packed=finals)
            return
        built, nodes = recorded
        position = {id(n): i for i, n in enumerate(nodes)}
        tensor_position = {id(t): i for i, t in enumerate(order)}
        pending = pending_nodes([target._node] + finals)
        plan = _BackwardPlan(built, [tensor_position[id(t)] for t in leaves], [position[id(n)] for n in finals],
                             [position[id(n)] for n in pending], [position[id(n)] for n in toposort(pending)])
        _backward_plans[key] = plan
        if len(_backward_plans) > MAX_BACKWARD_PLANS:
            _backward_plans.popitem(last=False)
    else:
        _backward_plans.move_to_end(key)
        nodes = plan.template.build(base)
    finals = [nodes[i] for i in plan.grads]
    for i, node in zip(plan.leaves, finals):
        order[i].grad = Tensor._from_node(node)
    if plan.pending:
        walk = [nodes[i] for i in plan.order]
        run(steps_for(plan, walk, [nodes[i] for i in plan.pending]), walk, finals)


class GradientTape:
    """Records every op inside its `with` block; `tape.gradient(target, sources)` differentiates.

    Tapes nest: gradients taken while an outer tape is active are recorded by it, so the outer
    tape can differentiate them again. A tape that is not persistent answers once.
    """

    def __init__(self, persistent: bool = False):
        self.persistent = persistent
        self._used = False

    def __enter__(self) -> "GradientTape":
        _state.tapes.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _state.tapes.remove(self)

    def gradient(self, target: "Tensor", sources: "Tensor | Sequence[Tensor]",
                 output_gradient: "Tensor | None" = None) -> Any:
        """d(target)/d(source) per source, None where target does not depend on a source."""
        if self._used and not self.persistent:
            raise GradError("a non-persistent GradientTape can compute gradients only once; "
                            "use GradientTape(persistent=True)")
        self._used = True
        single = not isinstance(sources, (list, tuple))
        srcs = [sources] if single else list(sources)
        ids = {id(s) for s in srcs}
        with set_grad_enabled(True):
            grads = _propagate(target, _seed(target, output_gradient), lambda t: id(t) in ids)
        out = [grads.get(id(s)) for s in srcs]
        return out[0] if single else out


class RemovableHandle:
    """What register_hook returns: `handle.remove()` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict[int, Callable], hook: Callable):
        RemovableHandle._next_id += 1
        self.id = RemovableHandle._next_id
        self._hooks = hooks
        hooks[self.id] = hook

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def grad(outputs: "Tensor | Sequence[Tensor]", inputs: "Tensor | Sequence[Tensor]",
         grad_outputs: "Tensor | Sequence[Tensor | None] | None" = None, retain_graph: bool | None = None,
         create_graph: bool = False, only_inputs: bool = True, allow_unused: bool | None = None,
         is_grads_batched: bool = False, materialize_grads: bool = False) -> tuple["Tensor | None", ...]:
    """torch.autograd.grad: the gradients of the outputs with respect to the inputs (leaves' .grad is
    not touched). A function transform is `fusegrad.func.grad`."""
    from .tensor import Tensor
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if is_grads_batched:
        raise NotImplementedError("is_grads_batched is not supported; use fusegrad.func.vmap when it exists")
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        gouts: list[Any] = [grad_outputs] if isinstance(grad_outputs, Tensor) else [None] * len(outs)
    else:
        gouts = list(grad_outputs)
    if len(gouts) != len(outs):
        raise GradError(f"grad requires one grad_output per output: got {len(gouts)} for {len(outs)} outputs")
    for i, t in enumerate(ins):
        if not t.requires_grad:
            raise GradError(f"One of the differentiated Tensors (input {i}) does not require grad")
    for i, t in enumerate(outs):
        if not t.requires_grad:
            raise GradError(f"element {i} of tensors does not require grad and does not have a grad_fn")
    if allow_unused is None:
        allow_unused = materialize_grads
    ids = {id(t) for t in ins}
    with set_grad_enabled(create_graph):
        seeds = [_seed(t, g) for t, g in zip(outs, gouts)]
        order = _topo(outs)
        grads = _propagate(outs, seeds, lambda t: id(t) in ids, order)
    result: list[Any] = []
    for i, t in enumerate(ins):
        g = grads.get(id(t))
        if g is None and not allow_unused:
            raise GradError(f"One of the differentiated Tensors (input {i}) appears to not have been used in the "
                            "graph. Set allow_unused=True if this is the desired behavior.")
        if g is None and materialize_grads:
            g = t.zeros_like()
        result.append(g.to(t.dtype) if g is not None and g.dtype is not t.dtype else g)
    if not (create_graph if retain_graph is None else retain_graph):
        _free(order)
    return tuple(result)


def __getattr__(name: str) -> Any:
    """`fusegrad.autograd.Function` lives in fusegrad/function.py, which builds on Tensor."""
    if name in ("Function", "FunctionCtx", "once_differentiable"):
        from . import function
        return getattr(function, name)
    raise AttributeError(f"module 'fusegrad.autograd' has no attribute {name!r}")

"""The reverse-mode engine: walking a tensor's history (explicit stacks, no recursion), propagating
gradients through the rules, backward (with plans recorded per graph structure), torch's
`autograd.grad`, hooks and `GradientTape`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..autocast_state import suspended
from ..engine.realize import Draft, graph_key, graph_lock, pending_nodes, realize, run, steps_for
from ..engine.schedule import toposort
from ..errors import GradError
from ..graph import node as G
from ..graph import template
from ..graph.ops import Op
from ..graph.template import Template
from ..runtime.lru import LRU
from .mode import _state, set_grad_enabled
from .rules import READS_INPUTS, READS_OUTPUT, RULES, Ctx

if TYPE_CHECKING:
    from ..tensor import Tensor


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
            if t._version != ctx.out_version and _reads(ctx, READS_OUTPUT.get(ctx.op, ())):
                _modified_in_place(t, ctx.out_version, f"the output of {ctx.op.name}")
            for k, i in enumerate(ctx.inputs):
                if i._version and i._version != (ctx.versions[k] if ctx.versions else 0):
                    i = _rewind(ctx, k)
                if i not in seen:
                    push((i, False))
    return order


def _reads(ctx: Ctx, gradients: Sequence[int]) -> bool:
    """Whether backward computes one of these inputs' gradients (an input that needs it requires grad);
    positions past an op's inputs are skipped (a fused op's optional last inputs)."""
    return any(ctx.inputs[j].requires_grad for j in gradients if j < len(ctx.inputs))


def _keeps_values(ctx: Ctx) -> bool:
    """Whether ctx's rule reads saved values (a custom Function always may), which backward frees."""
    if not isinstance(ctx.op, Op):
        return True
    return _reads(ctx, list(READS_INPUTS.get(ctx.op, {}))) or _reads(ctx, READS_OUTPUT.get(ctx.op, ()))


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
                from ..errors import ShapeError
                raise ShapeError(f"hook returned a gradient of shape {tuple(out.shape)}, expected {tuple(g.shape)}")
            g = out
    return g


def _rewind(ctx: Ctx, k: int) -> "Tensor":
    """Input k of ctx was written in place after ctx used it: raise if ctx's rule reads its value (as
    torch does), else point ctx at the history the input had when it was used, and return it."""
    from ..tensor import Tensor
    t = ctx.inputs[k]
    used = ctx.versions[k] if ctx.versions else 0
    if _reads(ctx, [j for j, read in READS_INPUTS.get(ctx.op, {}).items() if k in read]):
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
    with suspended():  # derivative rules run in the forward's dtypes: autocast casts nothing they build
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
        from ..errors import ShapeError
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
    """Python code runs during this backward (hooks, custom Functions but replayable ones): no recorded
    plan can replay it."""
    for t in order:
        if t._hooks is not None or (t._ctx is not None and not isinstance(t._ctx.op, Op)
                                    and getattr(t._ctx.op, "key", None) is None):
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
_backward_plans = LRU("backward_plans")


def _structure(order: list["Tensor"], chosen: list[bool], seed: "Tensor") -> tuple[tuple, list[G.Node]]:
    """A key for everything the derivative rules read when they build the gradient graph: the
    structure of the nodes under the tape (realized ones as anonymous leaves), of the tape (ops,
    args, wiring, tensor types) and which tensors want a gradient and already hold one; and the
    nodes under the tape, in key order."""
    roots = [t._node for t in order]
    roots.append(seed._node)
    grads = [t.grad for t in order]  # read once: a thread sharing the leaves may reset them meanwhile
    held = [w and g is not None for g, w in zip(grads, chosen)]
    roots.extend(g._node for g, h in zip(grads, held) if h)
    base = toposort(roots)
    position = {t: i for i, t in enumerate(order)}.__getitem__
    tape: list[tuple] = []
    for t, w, h in zip(order, chosen, held):
        ctx = t._ctx
        if ctx is None:
            tape.append((type(t), w, h))
        else:
            op = ctx.op if isinstance(ctx.op, Op) else ctx.op.key  # a replayable Function: its class and arguments
            tape.append((type(t), w, h, op, ctx.arg, tuple(map(position, ctx.inputs))))
    return (graph_key(base, roots), tuple(tape)), base


def _backward_realized(target: "Tensor", seed: "Tensor", order: list["Tensor"],
                       wanted: Callable[["Tensor"], bool]) -> None:
    """backward without create_graph: the gradients, computed together with the target. The loss
    comes free with its gradients, which are packed back to back (in the order the leaves are
    stored) so that an optimizer reads them as one flat tensor."""
    from ..tensor import Tensor
    with graph_lock:  # the walks, the plan caches and the template build see one state of the graph
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
            plan = _BackwardPlan(built, [tensor_position[id(t)] for t in leaves],
                                 [position[id(n)] for n in finals], [position[id(n)] for n in pending],
                                 [position[id(n)] for n in toposort(pending)])
            _backward_plans[key] = plan
        else:
            nodes = plan.template.build(base)
        finals = [nodes[i] for i in plan.grads]
        for i, node in zip(plan.leaves, finals):
            order[i].grad = Tensor._from_node(node)
        if not plan.pending:
            return
        walk = [nodes[i] for i in plan.order]
        steps = steps_for(plan, walk, [nodes[i] for i in plan.pending])
    if isinstance(steps, Draft):
        steps = steps.finish()
    run(steps, walk, finals)


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
    from ..tensor import Tensor
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

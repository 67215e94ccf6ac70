"""Views and in-place writes with torch's semantics on lazy values.

A tensor's value is an immutable graph node that earlier, still-lazy consumers may read, so an
in-place op never overwrites it: the written tensor is rebound to a node holding the new value, and
everything that shares memory with it in torch follows.

- A *view* (slicing, `view`/`reshape`, `permute`, `transpose`, `expand`, `detach`, `.data`) remembers
  its base and the movement steps from it (`Tensor._chain`). Writing a view writes its base: the
  new view value is carried back through the inverted steps (the movement ops' own derivative
  rules) and put where the view reads the base, the rest of the base unchanged.
- A written base re-derives every live view from its new value, so views never go stale.
- Every write bumps the version counter a base shares with its views; autograd records the
  versions of each op's inputs and refuses (`GradError`, a RuntimeError) to differentiate through a
  value that was overwritten after an op used it, as torch does.
- A write under autograd records how the new value was made (the base's history goes through the
  written view's), except through `detach()`/`.data`, whose writes change values only.
"""
from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from . import autograd, dtypes
from .errors import DTypeError, GradError, ShapeError
from .graph.ops import Op

if TYPE_CHECKING:
    from .tensor import Tensor

# a chain step: (op, arg, source shape); DETACHED marks where a detach()/.data alias was taken
Step = tuple[Op, Any, tuple[int, ...]]
DETACHED = None
_PRUNE_AT = 64
_ref = weakref.ref  # a base drops dead view references when their count reaches a power of two >= this
# a base's list of views is changed by every thread that takes a view of it or writes it (a shared model's
# parameters): appends are atomic; making the list and pruning it happen under this lock, and a prune
# rewrites only the entries it read, so no view appended meanwhile is lost
_views_lock = threading.Lock()


def register(view: "Tensor", source: "Tensor", step: Step | None) -> None:
    """Record that `view` reads `source` through `step` (DETACHED for a detach alias)."""
    base = source._base
    if base is None:
        base, chain = source, (step,)
    else:
        chain = source._chain + (step,)
    view._base = base
    view._chain = chain
    view._version = base._version
    refs = base._views
    if refs is None:
        with _views_lock:
            refs = base._views
            if refs is None:
                refs = base._views = []
    refs.append(_ref(view))
    n = len(refs)
    if n >= _PRUNE_AT and not n & (n - 1):
        _prune(refs)


def _prune(refs: list) -> list:
    """Drop the dead references of a view list; returns the live ones."""
    with _views_lock:
        n = len(refs)
        live = [r for r in refs[:n] if r() is not None]
        refs[:n] = live
    return live


def alias(t: "Tensor") -> "Tensor":
    """A tensor with t's value and no history that shares t's memory (torch's detach() and .data)."""
    from .tensor import Tensor
    out = Tensor._from_node(t._node)
    register(out, t, DETACHED)
    return out


def check_result_dtype(t: "Tensor", result: "Tensor", name: str = "in-place operation") -> None:
    """torch refuses in-place arithmetic whose result kind does not fit the tensor (a float into an
    integer tensor, a number into bool)."""
    if result.dtype.category > t.dtype.category:
        raise DTypeError(f"{name}: result type {result.dtype.name} can't be cast to the desired output type "
                         f"{t.dtype.name}")


def write(t: "Tensor", new: "Tensor") -> "Tensor":
    """t's value becomes `new` (t's shape; cast to t's dtype); its base and views follow. Returns t."""
    if new.shape != t.shape:
        raise ShapeError(f"in-place result has shape {new.shape}, expected {t.shape}")
    grad_mode = autograd.is_grad_enabled()
    if grad_mode and t._ctx is None and t.requires_grad:
        raise GradError("a leaf Variable that requires grad is being used in an in-place operation; "
                        "wrap it in fg.no_grad() (as optimizers do)")
    base = t._base
    if base is None:
        new = new.cast(t.dtype)
        _take(t, new, grad_mode, t._version + 1)
        _refresh(t, None)
        return t
    detached = DETACHED in t._chain
    if grad_mode and not detached and base._ctx is None and base.requires_grad:
        raise GradError("a view of a leaf Variable that requires grad is being used in an in-place operation")
    steps = tuple(s for s in t._chain if s is not DETACHED)
    _check_no_overlap(t, steps)
    new = new.cast(t.dtype)
    with autograd.set_grad_enabled(grad_mode and not detached):
        base_value = _scatter_back(new, steps, base)
    _take(base, base_value, grad_mode and not detached, base._version + 1)
    _refresh(base, (t, new, grad_mode))
    return t


def _take(t: "Tensor", new: "Tensor", with_history: bool, version: int) -> None:
    """t holds `new` from `version` on, and with `with_history` also its history (under no_grad, and
    through a detach alias, a write records nothing: t keeps its history, like torch's)."""
    old = t._node
    t._node = new._node
    if with_history:
        _set_history(t, old, new._ctx, new.requires_grad, version)
    t._version = version


def _set_history(t: "Tensor", old: Any, ctx: Any, requires_grad: bool, version: int) -> None:
    """t's history from `version` on; the one it replaces (with `old`, the node it had) stays reachable
    for the ops that used it (autograd/engine.py's `_rewind`: their gradients follow the history the
    value they read had)."""
    if ctx is not t._ctx or requires_grad != t.requires_grad:
        if t._ctx is not None and t._ctx.op in autograd.READS_OUTPUT:
            t._ctx.out_version = -1  # the value its rule reads is gone (torch raises there too)
        try:
            past = t._past
        except AttributeError:
            past = t._past = []
        past.append(autograd.Past(t._version, t._ctx, old, t.requires_grad))
        t._ctx, t.requires_grad = ctx, requires_grad
    if ctx is not None:
        ctx.out_version = version


def _check_no_overlap(t: "Tensor", steps: tuple[Step, ...]) -> None:
    for op, arg, shape in steps:
        if op is Op.EXPAND and any(s == 1 and n != 1 for s, n in zip(shape, arg)):
            raise ShapeError(f"unsupported operation: more than one element of the written-to tensor of shape "
                             f"{t.shape} refers to a single memory location (it is an expanded view). "
                             "Please clone() the tensor before performing the operation.")


class _Shape:
    """Stands in for a chain step's source tensor: the movement rules read only its shape."""

    __slots__ = ("shape",)
    _version = 0

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape


def _invert(value: "Tensor", steps: tuple[Step, ...], out_shape: tuple[int, ...]) -> "Tensor":
    """`value` (a view's shape) carried back through the inverted steps to the base's shape, zero (False)
    where the view does not read the base. The movement ops' derivative rules are those inverses."""
    shapes = [shape for _, _, shape in steps[1:]] + [out_shape]
    for (op, arg, shape), after in zip(reversed(steps), reversed(shapes)):
        ctx = autograd.Ctx(op, (_Shape(shape),), arg)
        value = autograd.RULES[op](ctx, _Shape(after), value)[0]  # type: ignore[arg-type]
    return value


def _scatter_back(new: "Tensor", steps: tuple[Step, ...], base: "Tensor") -> "Tensor":
    """The base's value with the view's elements replaced by `new`."""
    back = _invert(new, steps, new.shape)
    if not any(op is Op.SHRINK for op, _, _ in steps):  # the view reads every element of the base
        return back
    covered = _invert(new._const(True, dtypes.bool_), steps, new.shape)
    return back.where(covered, base._snapshot())


def _refresh(base: "Tensor", written: tuple["Tensor", "Tensor", bool] | None) -> None:
    """Every live view of `base` reads its new value; `written` (the view just written, its new value
    and the grad mode of the write) takes that value directly."""
    refs = base._views
    if refs is None:
        return
    for ref in _prune(refs):
        v = ref()
        if v is None:
            continue
        if written is not None and v is written[0]:
            _take(v, written[1], written[2], base._version)
        elif DETACHED in v._chain:
            with autograd.no_grad():
                v._node = _replay(base, v._chain)._node
        else:
            with autograd.enable_grad():  # the view's history starts at the base's new value
                fresh = _replay(base, v._chain)
            old, v._node = v._node, fresh._node
            _set_history(v, old, fresh._ctx, fresh.requires_grad, base._version)
        v._version = base._version


def _replay(base: "Tensor", chain: tuple[Step | None, ...]) -> "Tensor":
    from .graph import node as G
    x = base
    for step in chain:
        if step is DETACHED:
            x = x.__class__._from_node(x._node)
            continue
        op, arg, _ = step
        node = G.movement(op, x._node, arg)
        if node is not x._node:
            x = x._apply(node, op, (x,), arg)
    return x

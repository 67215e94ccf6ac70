"""Custom differentiable functions: `fusegrad.autograd.Function`, as torch's.

    class Exp(fg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * y

    y = Exp.apply(x)

`forward` runs without recording history; each floating-point tensor it returns gets one history
entry whose derivative rule calls `backward`. A function with several outputs calls `backward` once
per output that receives a gradient, with zeros for the others (backward must be linear in its
gradients, as a derivative is). `backward` runs under autograd when the caller asked for
create_graph, so it differentiates again unless decorated with `once_differentiable`.

A Function whose backward builds its gradients from its tensor inputs and its other arguments alone
(no saved outputs or values computed in forward, no Python decisions on values) may set
`replayable = True`: its history entries are then keyed by the class, those arguments and which
inputs need a gradient, so a plain `backward` over a graph of the same structure replays the plan it
recorded the first time instead of calling backward again (as it does for the primitives' rules).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from . import autograd
from .errors import GradError, ShapeError
from .tensor import Tensor

__all__ = ["Function", "FunctionCtx", "once_differentiable"]


class FunctionCtx:
    """The `ctx` a custom Function's forward fills and its backward reads."""

    def __init__(self, needs_input_grad: tuple[bool, ...]):
        self.needs_input_grad = needs_input_grad
        self.materialize_grads = True
        self._saved: tuple[Any, ...] = ()
        self._saved_versions: tuple[int, ...] = ()
        self._non_differentiable: set[int] = set()

    def save_for_backward(self, *tensors: Any) -> None:
        """Keep tensors (or None) for backward; writing one in place afterwards makes backward raise."""
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward can only save tensors or None, got {type(t).__name__}")
        self._saved = tensors
        self._saved_versions = tuple(t._version if t is not None else 0 for t in tensors)

    def save_for_forward(self, *tensors: Any) -> None:
        self.save_for_backward(*tensors)

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        for i, (t, v) in enumerate(zip(self._saved, self._saved_versions)):
            if t is not None and t._version != v:
                raise GradError(f"one of the variables needed for gradient computation has been modified by an "
                                f"inplace operation: saved tensor {i} of shape {tuple(t.shape)} is at version "
                                f"{t._version}; expected version {v} instead.")
        return self._saved

    def mark_non_differentiable(self, *tensors: Tensor) -> None:
        """Outputs that get no gradient (indices, masks)."""
        self._non_differentiable.update(id(t) for t in tensors)

    def mark_dirty(self, *tensors: Tensor) -> None:
        """Accepted for torch compatibility: inputs written in place are tracked by their version counters."""

    def set_materialize_grads(self, value: bool) -> None:
        """With False, backward receives None instead of zeros for outputs without a gradient."""
        self.materialize_grads = value


class _Backward:
    """The history entry of one output of one call: its derivative rule calls the Function's backward."""

    __slots__ = ("function", "ctx", "output", "outputs", "positions", "name", "key")

    def __init__(self, function: type, ctx: FunctionCtx, output: int, outputs: list[Any], positions: tuple[int, ...],
                 key: tuple | None):
        self.function = function
        self.ctx = ctx
        self.output = output
        self.outputs = outputs  # the forward's results (for the shapes of the zero gradients)
        self.positions = positions  # argument positions of the tensor inputs
        self.name = f"{function.__name__}Backward"
        self.key = key  # what the backward reads besides the inputs, for a replayable Function (else None)

    def rule(self, hist: autograd.Ctx, out: Tensor, g: Tensor) -> tuple:
        grads: list[Any] = []
        for k, o in enumerate(self.outputs):
            if k == self.output:
                grads.append(g)
            elif isinstance(o, Tensor):
                grads.append(o.zeros_like() if self.ctx.materialize_grads else None)
            else:
                grads.append(None)
        result = self.function.backward(self.ctx, *grads)
        result = result if isinstance(result, tuple) else (result,)
        n_args = len(self.ctx.needs_input_grad)
        if len(result) != n_args:
            if len(result) > n_args and all(r is None for r in result[n_args:]):
                result = result[:n_args]
            else:
                raise GradError(f"function {self.name} returned an incorrect number of gradients "
                                f"(expected {n_args}, got {len(result)})")
        picked = []
        for pos, inp in zip(self.positions, hist.inputs):
            r = result[pos]
            if r is not None and not isinstance(r, Tensor):
                raise TypeError(f"function {self.name} returned a {type(r).__name__} as gradient {pos}, not a tensor")
            if r is not None and tuple(r.shape) != tuple(inp.shape):
                if r.numel() != inp.numel():
                    raise ShapeError(f"Function {self.name} returned an invalid gradient at index {pos} - got "
                                     f"{list(r.shape)} but expected shape compatible with {list(inp.shape)}")
                r = r.reshape(inp.shape)
            picked.append(r)
        return tuple(picked)


class Function:
    """Subclass with static `forward(ctx, *args)` and `backward(ctx, *grads)`, call with `.apply(*args)`.

    torch's other style works too: `forward(*args)` without ctx plus
    `setup_context(ctx, inputs, output)`. `replayable`: see the module docstring."""

    replayable = False

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a Function subclass must implement forward")

    @staticmethod
    def backward(ctx: FunctionCtx, *grads: Any) -> Any:
        raise NotImplementedError("a Function subclass must implement backward to be differentiated")

    @staticmethod
    def setup_context(ctx: FunctionCtx, inputs: tuple[Any, ...], output: Any) -> None:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx = FunctionCtx(needs)
        separate = cls.setup_context is not Function.setup_context
        with autograd.no_grad():
            result = cls.forward(*args, **kwargs) if separate else cls.forward(ctx, *args, **kwargs)
        if separate:
            cls.setup_context(ctx, args, result)
        outputs = list(result) if isinstance(result, tuple) else [result]
        positions = tuple(i for i, a in enumerate(args) if isinstance(a, Tensor))
        inputs = tuple(args[i] for i in positions)
        if not (autograd.is_grad_enabled() and (any(needs) or autograd._state.tapes)):
            return result
        wrapped = []
        statics = tuple(a for a in args if not isinstance(a, Tensor)) + tuple(sorted(kwargs.items()))
        for k, o in enumerate(outputs):
            if isinstance(o, Tensor) and o.dtype.is_floating_point and id(o) not in ctx._non_differentiable:
                t = Tensor._from_node(o._node)
                key = (cls, k, positions, statics, needs) if cls.replayable else None
                t._ctx = autograd.Ctx(_Backward(cls, ctx, k, outputs, positions, key), inputs, None)  # type: ignore
                t.requires_grad = True
                wrapped.append(t)
            elif isinstance(o, Tensor):
                wrapped.append(Tensor._from_node(o._node))
            else:
                wrapped.append(o)
        return tuple(wrapped) if isinstance(result, tuple) else wrapped[0]


def once_differentiable(backward: Callable[..., Any]) -> Callable[..., Any]:
    """Decorates a Function's backward that must not be differentiated again (it runs under no_grad)."""
    @functools.wraps(backward)
    def wrapper(ctx: FunctionCtx, *grads: Any) -> Any:
        with autograd.no_grad():
            return backward(ctx, *grads)
    return wrapper

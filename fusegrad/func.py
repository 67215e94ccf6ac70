"""Function transforms with torch.func's names: `grad`, `grad_and_value` (and JAX's `value_and_grad`).

`grad(f)` is a new function returning the gradient of `f` (which returns one number) with respect to
its arguments `argnums`; the transforms nest for higher derivatives (`grad(grad(f))`), because the
gradients they return keep their own history.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

from .autograd import GradientTape
from .errors import GradError
from .tensor import Tensor, tensor

__all__ = ["grad", "grad_and_value", "value_and_grad"]


def grad(func: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable[..., Any]:
    """The function computing d func / d args[argnums] (with has_aux: (gradient, aux))."""
    transformed = _transform(func, argnums, has_aux)

    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        grads, value, aux = transformed(*args, **kwargs)
        return (grads, aux) if has_aux else grads
    return wrapped


def grad_and_value(func: Callable[..., Any], argnums: int | Sequence[int] = 0,
                   has_aux: bool = False) -> Callable[..., Any]:
    """torch.func.grad_and_value: the function returning (gradient, value) (with has_aux:
    (gradient, (value, aux)))."""
    transformed = _transform(func, argnums, has_aux)

    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        grads, value, aux = transformed(*args, **kwargs)
        return (grads, (value, aux)) if has_aux else (grads, value)
    return wrapped


def value_and_grad(func: Callable[..., Any], argnums: int | Sequence[int] = 0,
                   has_aux: bool = False) -> Callable[..., Any]:
    """JAX's order: the function returning (value, gradient) (with has_aux: ((value, aux), gradient))."""
    transformed = _transform(func, argnums, has_aux)

    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        grads, value, aux = transformed(*args, **kwargs)
        return ((value, aux), grads) if has_aux else (value, grads)
    return wrapped


def _transform(func: Callable[..., Any], argnums: int | Sequence[int], has_aux: bool) -> Callable[..., tuple]:
    def run(*args: Any, **kwargs: Any) -> tuple:
        nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
        args_list = list(args)
        for i in nums:
            if not -len(args_list) <= i < len(args_list):
                raise GradError(f"argnums {i} is out of range for {len(args_list)} positional arguments")
            if not isinstance(args_list[i], Tensor):
                value = args_list[i]
                args_list[i] = tensor(value, dtype="float32" if isinstance(value, (int, float)) else None)
        with GradientTape() as tape:
            out = func(*args_list, **kwargs)
        aux = None
        if has_aux:
            if not isinstance(out, tuple) or len(out) != 2:
                raise GradError("has_aux=True requires the function to return a (output, aux) tuple")
            out, aux = out
        if not isinstance(out, Tensor) or out.numel() != 1:
            raise GradError("grad requires the function to return a tensor with a single element")
        sources = [args_list[i] for i in nums]
        gs = tape.gradient(out, sources)
        gs = [g if g is not None else s.zeros_like() for g, s in zip(gs, sources)]
        return (gs[0] if isinstance(argnums, int) else tuple(gs)), out, aux
    return run

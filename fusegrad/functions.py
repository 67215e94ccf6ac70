"""PyTorch's top-level functions that mirror Tensor methods: `fg.sin(x)` is `x.sin()`.

Generated from one table rather than written out: each name becomes a function `name(input, *args,
out=None, **kwargs)` that calls the Tensor method, with the method's signature (self renamed input)
and docstring. Functions for which torch takes `out=` write their result into `out` through
`copy_` (so the write is lazy like any other) and return it; `out` must have the result's shape (an
empty `out` is resized, like torch; torch's resizing of a non-empty one is deprecated, here it raises
ShapeError), a dtype the result can be cast to (no float into integers, nothing but bool into bool),
and the result must not need gradients (torch raises there too).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from . import autograd, dtypes
from .errors import DTypeError, GradError, ShapeError
from .tensor import Tensor

# ---- the table: Tensor methods exposed as torch.<name>, grouped; True where torch takes out= -----
_POINTWISE = {
    "abs": True, "absolute": True, "neg": True, "negative": True, "sign": True, "sgn": True, "square": True,
    "sqrt": True, "rsqrt": True, "reciprocal": True, "exp": True, "exp2": True, "expm1": True, "log": True,
    "log2": True, "log10": True, "log1p": True, "sin": True, "cos": True, "tan": True, "asin": True,
    "acos": True, "atan": True, "arcsin": True, "arccos": True, "arctan": True, "sinh": True, "cosh": True,
    "tanh": True, "asinh": True, "acosh": True, "atanh": True, "arcsinh": True, "arccosh": True,
    "arctanh": True, "erf": True, "sigmoid": True, "relu": False, "floor": True, "ceil": True,
    "trunc": True, "fix": True, "round": True, "nan_to_num": True, "positive": False, "signbit": True,
    "deg2rad": True, "rad2deg": True, "frac": True, "sinc": True, "logit": True,
}
_BINARY = {
    "add": True, "sub": True, "subtract": True, "mul": True, "multiply": True, "div": True, "divide": True,
    "true_divide": True, "floor_divide": True, "remainder": True, "fmod": True, "pow": True,
    "atan2": True, "arctan2": True, "copysign": True, "hypot": True, "logaddexp": True, "logaddexp2": True,
    "maximum": True, "minimum": True, "lerp": True, "clamp": True, "clip": True, "clamp_min": True,
    "clamp_max": True, "float_power": True, "ldexp": True, "xlogy": True, "heaviside": True, "fmax": True,
    "fmin": True, "addcmul": True, "addcdiv": True, "dist": False,
}
_COMPARE_LOGIC = {
    "eq": True, "ne": True, "lt": True, "le": True, "gt": True, "ge": True, "isclose": False,
    "allclose": False, "isnan": False, "isinf": False, "isfinite": False, "isposinf": True,
    "isneginf": True, "logical_not": True, "logical_and": True, "logical_or": True, "logical_xor": True,
    "bitwise_not": True, "bitwise_and": True, "bitwise_or": True, "bitwise_xor": True,
    "bitwise_left_shift": True, "bitwise_right_shift": True, "greater": True, "greater_equal": True,
    "less": True, "less_equal": True, "not_equal": True,
}
_REDUCE = {
    "sum": True, "mean": True, "prod": True, "amax": True, "amin": True, "max": True, "min": True,
    "argmax": True, "argmin": True, "any": True, "all": True, "count_nonzero": False, "std": True,
    "var": True, "std_mean": False, "var_mean": False, "logsumexp": True, "softmax": True,
    "log_softmax": True, "cumsum": True, "cumprod": True, "norm": True, "nansum": True, "nanmean": True,
}
_SHAPE_AND_MISC = {
    "reshape": False, "permute": False, "t": False, "swapaxes": False, "swapdims": False, "moveaxis": False,
    "unflatten": False, "broadcast_to": False, "tile": False, "fliplr": False, "flipud": False,
    "select": False, "take": True, "masked_select": True, "ger": True, "clone": False, "detach": False,
    "numel": False, "is_floating_point": False, "is_signed": False, "is_nonzero": False, "is_same_size": False,
    "equal": False, "clamp_": False, "fill_": False, "zero_": False,
}
_EXTRA = {
    "erfc": True, "erfinv": True, "lgamma": True, "digamma": True, "ravel": False, "tensor_split": False,
    "hsplit": False, "vsplit": False, "rot90": False, "diagflat": False, "diff": True,
    "trace": False, "kron": True, "inner": True, "addmm": True, "addr": True,
    "baddbmm": True, "addbmm": True, "aminmax": True, "quantile": True, "nanquantile": True, "cov": False,
    "corrcoef": False, "get_device": False, "is_complex": False, "is_inference": False,
}
TABLE: dict[str, bool] = {**_POINTWISE, **_BINARY, **_COMPARE_LOGIC, **_REDUCE, **_SHAPE_AND_MISC, **_EXTRA}

# torch accepts a Python number as `input` for these (torch.add(2, t), torch.pow(2, t))
_NUMBER_INPUT = frozenset({"add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "pow",
                           "remainder", "bitwise_left_shift", "bitwise_right_shift"})


def _can_cast(src: dtypes.DType, dst: dtypes.DType) -> bool:
    """torch's rule for writing a result into out=: no float into integers, nothing but bool into bool."""
    if src.is_floating_point and not dst.is_floating_point:
        return False
    return dst is not dtypes.bool_ or src is dtypes.bool_


def _write(out: Any, result: Tensor, name: str) -> Tensor:
    """Copy `result` into `out` (checked like torch) and return `out`."""
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}(): argument 'out' must be a Tensor, not {type(out).__name__}")
    if autograd.is_grad_enabled() and (result.requires_grad or out.requires_grad):
        raise GradError(f"{name}(): functions with out=... arguments don't support automatic differentiation, "
                        "but one of the arguments requires grad")
    if not _can_cast(result.dtype, out.dtype):
        raise DTypeError(f"{name}(): result type {result.dtype.name} can't be cast to the desired output type "
                         f"{out.dtype.name}")
    if out.shape != result.shape:
        if out.numel() != 0:
            raise ShapeError(f"{name}(): out= has shape {out.shape}, the result has shape {result.shape}")
        out._node = result.cast(out.dtype)._node  # an empty out is resized, like torch
        return out
    return out.copy_(result)


def _write_all(out: Any, result: Any, name: str) -> Any:
    if not isinstance(result, tuple):
        return _write(out, result, name)
    if not isinstance(out, (tuple, list)) or len(out) != len(result):
        raise TypeError(f"{name}(): out= must be a tuple of {len(result)} tensors")
    written = [_write(o, r, name) for o, r in zip(out, result)]
    return type(result)(*written)


def _signature(method: Callable, has_out: bool) -> inspect.Signature | None:
    """The method's signature with self renamed input, plus a keyword-only out=None."""
    try:
        sig = inspect.signature(method)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    params[0] = params[0].replace(name="input", annotation="Tensor")
    if has_out:
        out = inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=None)
        var_kw = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
        params = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD] + [out] + var_kw
    return sig.replace(parameters=params)


def _function(name: str, has_out: bool) -> Callable[..., Any]:
    """torch.<name>(input, ...) as a call of Tensor.<name>."""
    method = getattr(Tensor, name)
    number_input = name in _NUMBER_INPUT

    def function(input: Any, *args: Any, out: Any = None, **kwargs: Any) -> Any:
        if out is not None and not has_out:
            raise TypeError(f"{name}() got an unexpected keyword argument 'out'")
        if not isinstance(input, Tensor):
            anchor = next((a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)), None)
            if not (number_input and anchor is not None and isinstance(input, (bool, int, float))):
                raise TypeError(f"{name}(): argument 'input' must be a Tensor, not {type(input).__name__}")
            input = anchor._operand(input)
        result = method(input, *args, **kwargs)
        return result if out is None else _write_all(out, result, name)

    function.__name__ = function.__qualname__ = name
    function.__module__ = "fusegrad"
    summary = (method.__doc__ or "").strip().splitlines()[0] if method.__doc__ else ""
    function.__doc__ = f"`input.{name}(...)` as a function, like torch.{name}. {summary}".rstrip()
    sig = _signature(method, has_out)
    if sig is not None:
        function.__signature__ = sig  # type: ignore[attr-defined]
    return function


def is_tensor(obj: Any) -> bool:
    """True if obj is a fusegrad Tensor."""
    return isinstance(obj, Tensor)


_GENERATED = {name: _function(name, has_out) for name, has_out in TABLE.items()}
# torch.exp_(t) and the other in-place forms of the table's methods (they take no out=)
_GENERATED.update({f"{name}_": _function(f"{name}_", False) for name in TABLE
                   if hasattr(Tensor, f"{name}_") and f"{name}_" not in _GENERATED})
globals().update(_GENERATED)
__all__ = ["is_tensor", *_GENERATED]

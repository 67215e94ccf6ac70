"""In-place Tensor methods (`exp_`, `masked_fill_`, `uniform_`, ...) and the `new_*` constructors.

Every in-place method computes the out-of-place result from a snapshot of the tensor and hands it
to `Tensor._rebind`, the one in-place entry point (`fusegrad/views.py`): the tensor then holds the
new lazy value, its base and views follow, and its history follows when autograd records. Most are
made from the table `INPLACE` when `Tensor` is created, for every listed name whose out-of-place
method the class has (so an op added to another mixin gets its in-place form by being listed
here). Random fills draw from `ops/random.py`'s streams.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

from .. import dtypes, views
from ..autocast_state import suspended
from ..errors import DTypeError, ShapeError
from ..graph.shapes import shape_arg
from .random import Generator, integers, uniform, zero_gradient_link

if TYPE_CHECKING:
    from ..tensor import Tensor

# torch's in-place methods that are "the out-of-place op, written back" (same arguments)
INPLACE = (
    "abs", "absolute", "acos", "arccos", "acosh", "arccosh", "asin", "arcsin", "asinh", "arcsinh", "atan", "arctan",
    "atanh", "arctanh", "ceil", "cos", "cosh", "deg2rad", "rad2deg", "erf", "erfc", "erfinv", "exp", "exp2",
    "expm1", "fix", "floor", "frac", "log", "log10", "log1p", "log2", "logit", "neg", "negative", "reciprocal",
    "relu", "round", "rsqrt", "sigmoid", "sign", "sgn", "sin", "sinc", "sinh", "sqrt", "square", "tan", "tanh",
    "trunc", "nan_to_num", "logical_not", "bitwise_not", "digamma", "lgamma", "i0",
    "pow", "float_power", "atan2", "arctan2", "fmod", "remainder", "floor_divide", "true_divide", "divide",
    "multiply", "subtract", "hypot", "copysign", "xlogy", "heaviside", "nextafter", "ldexp", "gcd", "lcm",
    "eq", "ne", "not_equal", "lt", "less", "le", "less_equal", "gt", "greater", "ge", "greater_equal",
    "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
    "bitwise_left_shift", "bitwise_right_shift", "clamp_min", "clamp_max", "clip", "lerp", "addcmul", "addcdiv",
    "masked_fill", "index_fill", "index_add", "index_copy", "scatter", "scatter_add", "scatter_reduce",
    "masked_scatter", "tril", "triu", "cumsum", "cumprod", "renorm",
)


def _inplace(name: str) -> Callable[..., "Tensor"]:
    def method(self: "Tensor", *args: Any, **kwargs: Any) -> "Tensor":
        with suspended():  # as torch's, in-place variants do not autocast: the op runs in the operands' dtypes
            return _write(self, getattr(self._snapshot(), name)(*args, **kwargs), name)
    method.__name__ = method.__qualname__ = f"{name}_"
    method.__doc__ = f"In-place {name}: self becomes self.{name}(...)."
    return method


def _write(self: "Tensor", result: "Tensor", name: str) -> "Tensor":
    """Rebind self to `result`, refusing what torch refuses: a result self's dtype cannot hold
    (a float into an integer tensor, a number into bool) or of another shape."""
    from ..views import check_result_dtype
    check_result_dtype(self, result, f"{name}_")
    if result.shape != self.shape:
        raise ShapeError(f"{name}_: output with shape {self.shape} doesn't match the broadcast shape {result.shape}")
    return self._rebind(result)


class InplaceMixin:
    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in INPLACE:
            if hasattr(cls, name) and not hasattr(cls, f"{name}_"):
                setattr(cls, f"{name}_", _inplace(name))

    # ---- the in-place entry points (fusegrad/views.py: the written tensor, its base and views follow) ----
    def _rebind(self: "Tensor", new: "Tensor") -> "Tensor":
        """The one in-place entry point: this tensor's value becomes `new` (cast to its dtype)."""
        return views.write(self, new)

    def _inplace(self: "Tensor", result: "Tensor") -> "Tensor":
        """An in-place arithmetic op: like _rebind, refusing a result torch cannot cast back (float into int)."""
        views.check_result_dtype(self, result)
        return views.write(self, result)

    def _snapshot(self: "Tensor") -> "Tensor":
        """A new object holding this tensor's current value and history: in-place ops build their
        result from it, so the rebound tensor never appears as its own input."""
        from ..tensor import Tensor
        t = Tensor.__new__(Tensor)
        t._init(self._node, self._ctx, self.requires_grad)
        t._version = self._version
        return t

    def _as_copy(self: "Tensor", source: "Tensor") -> "Tensor":
        """This value, computed from `source` by an op that copies in torch (flip, repeat, pad), as a
        tensor of its own: writing it leaves the source alone."""
        from ..tensor import Tensor
        if self is source:  # the op changed nothing
            return source.clone()
        t = Tensor.__new__(Tensor)
        t._init(self._node, self._ctx, self.requires_grad)
        return t

    @property
    def data(self: "Tensor") -> "Tensor":
        """This tensor's value without history, sharing its memory: writes to it change this tensor."""
        return views.alias(self)

    @data.setter
    def data(self: "Tensor", value: "Tensor") -> None:
        if not isinstance(value, InplaceMixin):
            raise TypeError(f"data must be a Tensor, got {type(value).__name__}")
        self._node = value._node  # a new value of any shape, dtype or device, as in torch
        if value.dtype is not self.dtype and self.requires_grad and not value.dtype.is_floating_point:
            self.requires_grad = False

    @property
    def is_view(self: "Tensor") -> bool:
        return self._base is not None

    def add_(self: "Tensor", other: Any, alpha: Any = 1) -> "Tensor":
        return self._inplace(self._snapshot().add(other, alpha=alpha))

    def sub_(self: "Tensor", other: Any, alpha: Any = 1) -> "Tensor":
        return self._inplace(self._snapshot().sub(other, alpha=alpha))

    def mul_(self: "Tensor", other: Any) -> "Tensor":
        return self._inplace(self._snapshot() * other)

    def div_(self: "Tensor", other: Any, rounding_mode: str | None = None) -> "Tensor":
        return self._inplace(self._snapshot().div(other, rounding_mode=rounding_mode))

    def zero_(self: "Tensor") -> "Tensor":
        return self._rebind(self._const(0))

    def fill_(self: "Tensor", value: Any) -> "Tensor":
        if isinstance(value, InplaceMixin):
            if value.ndim:
                raise ShapeError(f"fill_ only supports 0-dimension value tensor but got tensor with "
                                 f"{value.ndim} dimensions")
            return self._rebind(value.to(self.dtype).broadcast_to(self.shape))
        return self._rebind(self._const(dtypes.checked_scalar(value, self.dtype)))

    def copy_(self: "Tensor", src: Any, non_blocking: bool = False) -> "Tensor":
        if not isinstance(src, InplaceMixin) or src.device == self.device:
            src = self._operand(src)
        else:
            src = src.to(self.device)
        return self._rebind(src.to(self.dtype).broadcast_to(self.shape))

    def clamp_(self: "Tensor", min: Any = None, max: Any = None) -> "Tensor":
        return self._inplace(self._snapshot().clamp(min, max))

    # augmented assignment updates in place, as torch's does (`p -= lr * p.grad` changes p)
    def __iadd__(self: "Tensor", other: Any) -> "Tensor":
        return self._inplace(self._snapshot() + other)

    def __isub__(self: "Tensor", other: Any) -> "Tensor":
        return self._inplace(self._snapshot() - other)

    def __imul__(self: "Tensor", other: Any) -> "Tensor":
        return self._inplace(self._snapshot() * other)

    def __itruediv__(self: "Tensor", other: Any) -> "Tensor":
        return self._inplace(self._snapshot() / other)

    def __ifloordiv__(self: "Tensor", other: Any) -> "Tensor":
        return self._inplace(self._snapshot() // other)

    def __imod__(self: "Tensor", other: Any) -> "Tensor":
        return self._inplace(self._snapshot() % other)

    def __ipow__(self: "Tensor", other: Any) -> "Tensor":
        return self._inplace(self._snapshot() ** other)

    def __iand__(self: "Tensor", other: Any) -> "Tensor":
        return self._inplace(self._snapshot() & other)

    def __ior__(self: "Tensor", other: Any) -> "Tensor":
        return self._inplace(self._snapshot() | other)

    def __ixor__(self: "Tensor", other: Any) -> "Tensor":
        return self._inplace(self._snapshot() ^ other)

    # ---- composites whose in-place form torch code calls most ----------------------------
    def addcmul(self: "Tensor", tensor1: Any, tensor2: Any, *, value: Any = 1) -> "Tensor":
        """self + value * tensor1 * tensor2."""
        return self + value * (self._operand(tensor1) * tensor2)

    def addcdiv(self: "Tensor", tensor1: Any, tensor2: Any, *, value: Any = 1) -> "Tensor":
        """self + value * tensor1 / tensor2 (true division: integer tensors are refused, as in torch)."""
        t1 = self._operand(tensor1)
        t2 = self._operand(tensor2)
        if not t1.dtype.is_floating_point and not t2.dtype.is_floating_point:
            raise DTypeError("addcdiv of integer tensors is not supported (true division); use float tensors")
        return self + value * (t1 / t2)

    def type_as(self: "Tensor", other: "Tensor") -> "Tensor":
        """self cast to other's dtype."""
        return self.cast(other.dtype)

    def detach_(self: "Tensor") -> "Tensor":
        """Cut this tensor from the graph, in place."""
        self._ctx = None
        self.requires_grad = False
        return self

    def fill_diagonal_(self: "Tensor", fill_value: Any, wrap: bool = False) -> "Tensor":
        """Write fill_value on the main diagonal (every dim equal for more than 2 dims; `wrap` for tall matrices)."""
        from .. import creation
        if self.ndim < 2 or (self.ndim > 2 and len(set(self.shape)) != 1):
            raise ShapeError(f"fill_diagonal_: all dimensions must be equal for more than 2 dims, got {self.shape}")
        rows, cols = self.shape[0], self.shape[1]
        r = creation.arange(rows, device=self.device).reshape((rows,) + (1,) * (self.ndim - 1))
        on = None
        for d in range(1, self.ndim):
            c = creation.arange(self.shape[d], device=self.device).reshape(
                tuple(self.shape[d] if k == d else 1 for k in range(self.ndim)))
            # a wrapped diagonal restarts after every (cols + 1) rows, as torch's flat stride walks it
            row = r % (cols + 1) if wrap and self.ndim == 2 else r
            hit = row == c
            on = hit if on is None else on & hit
        return self._rebind(self._snapshot().masked_fill(on, fill_value))

    # ---- random fills ----------------------------------------------------------------
    def _draw(self: "Tensor", generator: Generator | None) -> "Tensor":
        """Uniform [0, 1) numbers of this shape (float64 math for float64 tensors)."""
        u = uniform(self.shape, self.device, generator)
        return u.cast(dtypes.float64) if self.dtype is dtypes.float64 else u

    def _fill_random(self: "Tensor", values: "Tensor") -> "Tensor":
        # a tensor with history keeps it, passing back zeros (its old value no longer matters), as in torch
        return self._rebind(zero_gradient_link(values.detach().cast(self.dtype), self._snapshot()))

    def uniform_(self: "Tensor", a: float = 0.0, b: float = 1.0, *, generator: Generator | None = None,
                 **kwargs: Any) -> "Tensor":
        """Uniform numbers in [a, b) (torch's keywords `from` and `to` too)."""
        a, b = kwargs.pop("from", a), kwargs.pop("to", b)
        _no_extra(kwargs, "uniform_")
        return self._fill_random(self._draw(generator) * (b - a) + a)

    def normal_(self: "Tensor", mean: float = 0.0, std: float = 1.0, *,
                generator: Generator | None = None) -> "Tensor":
        """Normal numbers of mean `mean` and standard deviation `std` (Box-Muller)."""
        return self._fill_random(self._gauss(mean, std, generator))

    def _gauss(self: "Tensor", mean: float, std: float, generator: Generator | None) -> "Tensor":
        """Normal numbers of this shape (Box-Muller on two uniform draws)."""
        if std < 0:
            raise ValueError(f"expected std >= 0.0, got {std}")
        u1, u2 = self._draw(generator), self._draw(generator)
        return (-2 * (1 - u1).log()).sqrt() * (2 * math.pi * u2).cos() * std + mean

    def random_(self: "Tensor", *bounds: int, generator: Generator | None = None, **kwargs: Any) -> "Tensor":
        """Integers uniform in [from, to): `random_()`, `random_(to)`, `random_(from, to)`; without `to`,
        the largest the dtype holds exactly (2**mantissa for floats, like torch)."""
        low, high = kwargs.pop("from", None), kwargs.pop("to", None)
        _no_extra(kwargs, "random_")
        if len(bounds) == 1:
            high = bounds[0]
        elif len(bounds) == 2:
            low, high = bounds
        elif bounds:
            raise TypeError(f"random_ takes at most 2 bounds, got {len(bounds)}")
        low = 0 if low is None else int(low)
        if high is None:
            high = _dtype_top(self.dtype) + 1
        return self._fill_random(integers(low, int(high), self.shape, self.device, generator))

    def bernoulli_(self: "Tensor", p: Any = 0.5, *, generator: Generator | None = None) -> "Tensor":
        """1 with probability p (a number or a tensor broadcast to self), else 0."""
        u = uniform(self.shape, self.device, generator)
        prob = p.detach().cast(dtypes.float32) if hasattr(p, "_node") else p
        return self._fill_random(u < prob)

    def bernoulli(self: "Tensor", p: Any = None, *, generator: Generator | None = None) -> "Tensor":
        """1 with probability self (or p) elementwise, else 0, in self's dtype (torch.bernoulli)."""
        u = uniform(self.shape, self.device, generator)
        prob = self.detach().cast(dtypes.float32) if p is None else p
        out = (u < prob).cast(self.dtype)
        return zero_gradient_link(out, self) if self.dtype.is_floating_point else out

    def exponential_(self: "Tensor", lambd: float = 1.0, *, generator: Generator | None = None) -> "Tensor":
        """Exponential numbers of rate `lambd` (-log(1 - u) / lambd)."""
        return self._fill_random(-(1 - self._draw(generator)).log() / lambd)

    def geometric_(self: "Tensor", p: float, *, generator: Generator | None = None) -> "Tensor":
        """Trials to the first success, success probability p (1, 2, ...)."""
        u = self._draw(generator).cast(dtypes.float64)
        return self._fill_random(((1 - u).log() / math.log1p(-p)).floor() + 1)

    def log_normal_(self: "Tensor", mean: float = 1.0, std: float = 2.0, *,
                    generator: Generator | None = None) -> "Tensor":
        """exp of normal numbers of mean `mean` and standard deviation `std`."""
        return self._fill_random(self._gauss(mean, std, generator).exp())

    def cauchy_(self: "Tensor", median: float = 0.0, sigma: float = 1.0, *,
                generator: Generator | None = None) -> "Tensor":
        """Cauchy numbers: median + sigma * tan(pi * (u - 1/2))."""
        return self._fill_random(median + sigma * (math.pi * (self._draw(generator) - 0.5)).tan())

    # ---- new tensors like this one -------------------------------------------------------
    def new_full(self: "Tensor", size: Any, fill_value: Any, *, dtype: Any = None, device: Any = None,
                 requires_grad: bool = False) -> "Tensor":
        """A tensor of `size` filled with fill_value, in self's dtype and device unless given."""
        from .. import creation
        return creation.full(shape_arg((size,)), fill_value, dtype=dtype or self.dtype, device=device or self.device,
                             requires_grad=requires_grad)

    def new_zeros(self: "Tensor", *size: Any, dtype: Any = None, device: Any = None,
                  requires_grad: bool = False) -> "Tensor":
        """Zeros of `size` (`new_zeros(2, 3)` or `new_zeros((2, 3))`), in self's dtype and device unless given."""
        return self.new_full(shape_arg(size), 0, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_ones(self: "Tensor", *size: Any, dtype: Any = None, device: Any = None,
                 requires_grad: bool = False) -> "Tensor":
        """Ones of `size`, in self's dtype and device unless given."""
        return self.new_full(shape_arg(size), 1, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_empty(self: "Tensor", *size: Any, dtype: Any = None, device: Any = None,
                  requires_grad: bool = False) -> "Tensor":
        """Like torch's new_empty, but zero-filled (fusegrad never exposes uninitialized memory)."""
        return self.new_full(shape_arg(size), 0, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_tensor(self: "Tensor", data: Any, *, dtype: Any = None, device: Any = None,
                   requires_grad: bool = False) -> "Tensor":
        """A copy of `data` (no history), in self's dtype and device unless given."""
        from ..tensor import tensor
        return tensor(data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def addcmul(input: "Tensor", tensor1: Any, tensor2: Any, *, value: Any = 1) -> "Tensor":
    """input + value * tensor1 * tensor2 (torch.addcmul)."""
    return input.addcmul(tensor1, tensor2, value=value)


def addcdiv(input: "Tensor", tensor1: Any, tensor2: Any, *, value: Any = 1) -> "Tensor":
    """input + value * tensor1 / tensor2 (torch.addcdiv)."""
    return input.addcdiv(tensor1, tensor2, value=value)


def _dtype_top(dt: dtypes.DType) -> int:
    """The largest integer random_() draws for a dtype: 2**digits for floats (every integer below it is
    exact), the maximum for integers, 1 for bool."""
    if dt.is_floating_point:
        return 2 ** {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}[dt.name]
    if dt is dtypes.bool_:
        return 1
    return 2 ** (8 * dt.itemsize - (1 if dt.kind == "i" else 0)) - 1


def _no_extra(kwargs: dict[str, Any], what: str) -> None:
    if kwargs:
        raise TypeError(f"{what}() got unexpected keyword argument(s): {', '.join(kwargs)}")

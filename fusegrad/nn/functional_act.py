"""Activation functions of nn.functional beyond the Tensor methods, composed from tensor ops.

Piecewise functions are spelled with `where` on the same comparisons torch's kernels use, so the
gradient at a breakpoint is torch's too (hardtanh's is 0 at both bounds)."""
from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from ..ops.autocast import autocast_op
from ..tensor import Tensor, where

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """x clipped to [min_val, max_val]; no gradient at or beyond the bounds."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return where(input <= min_val, min_val, where(input >= max_val, max_val, input))


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6)."""
    return hardtanh(input, 0.0, 6.0)


@autocast_op("selu")
def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with the self-normalizing constants."""
    return input.elu(_SELU_ALPHA) * _SELU_SCALE


@autocast_op("celu")
def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    if alpha == 0:
        raise ValueError("ZeroDivisionError: alpha cannot be 0 for CELU")
    pos = input > 0
    negative_part = where(pos, 0, input) * (1.0 / alpha)  # exp of the positive side would overflow unused
    return input.where(pos, negative_part.expm1() * alpha)


def softsign(input: Tensor) -> Tensor:
    """x / (1 + |x|)."""
    return input / (input.abs() + 1)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6, with no gradient outside (-3, 3)."""
    return where(input <= -3, 0.0, where(input >= 3, 1.0, input / 6 + 0.5))


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6; the quadratic piece owns both breakpoints, as in torch's gradient."""
    return where(input < -3, 0.0, where(input > 3, input, input * (input + 3) / 6))


@autocast_op("logsigmoid")
def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), stable for large |x|."""
    neg = input < 0
    # log1p(exp(-|x|)) never overflows; min(x, 0) gives the linear part
    tail = where(neg, input, -input).exp().log1p()
    return where(neg, input, 0.0) - tail


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    """softmax(-x) along dim."""
    x = input.to(dtype) if dtype is not None else input
    return (-x).softmax(dim if dim is not None else -1)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, linear above the threshold."""
    return input.softplus(beta, threshold)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    return input.mish()


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """x - lambd above lambd, x + lambd below -lambd, 0 between."""
    if lambd < 0:
        raise ValueError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    return where(input > lambd, input - lambd, where(input < -lambd, input + lambd, 0.0))


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """x where |x| > lambd, else 0."""
    return where((input > lambd) | (input < -lambd), input, 0.0)


def tanhshrink(input: Tensor) -> Tensor:
    """x - tanh(x)."""
    return input - input.tanh()


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """x where x > threshold, else value."""
    return where(input > threshold, input, value)


@autocast_op("prelu")
def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """max(0, x) + weight * min(0, x), with one weight per channel (dim 1) or one shared."""
    if weight.numel() != 1:
        channels = input.shape[1] if input.ndim >= 2 else 1
        if weight.ndim != 1 or weight.shape[0] != channels:
            raise ShapeError(f"prelu: mismatch of parameter numbers ({weight.numel()}) and input channel size "
                             f"({channels})")
        if input.ndim >= 2:
            weight = weight.reshape((1, channels) + (1,) * (input.ndim - 2))
    else:
        weight = weight.reshape(())
    return where(input > 0, input, input * weight)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """a * sigmoid(b) for the halves a, b of input along dim."""
    if input.ndim == 0:
        raise ShapeError("glu does not support scalars because halving size must be even")
    if input.shape[dim] % 2:
        raise ShapeError(f"Halving dimension must be even, but dimension {dim} is size {input.shape[dim]}")
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()

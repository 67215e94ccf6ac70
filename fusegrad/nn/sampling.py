"""Padding modes, interpolation and fold/unfold, composed from movement ops and gathers.

Non-constant padding is slices (flipped for reflect) concatenated around the input; interpolation is
separable, one gather (nearest) or two gathers and a blend (linear) per spatial dim, with source
indices computed by tensor ops from the shapes."""
from __future__ import annotations

import math
from typing import Sequence

from ..errors import ShapeError
from ..ops.autocast import autocast_call, autocast_op
from ..tensor import Tensor, cat
from ..creation import arange
from .conv import IntOrPair, _dilate_input, _pad_spatial, _tuple, windows
from .pooling import adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d


# ---- padding -------------------------------------------------------------------------------


def _pad_dim(x: Tensor, dim: int, lo: int, hi: int, mode: str) -> Tensor:
    n = x.shape[dim]
    limit = n if mode == "circular" else n - 1 if mode == "reflect" else math.inf
    if lo > limit or hi > limit or (mode == "replicate" and n == 0):
        raise ShapeError(f"pad: {mode} padding ({lo}, {hi}) is too large for dimension {dim} of size {n}")
    parts = []
    if lo:
        if mode == "reflect":
            parts.append(x.narrow(dim, 1, lo).flip(dim))
        elif mode == "replicate":
            parts.append(x.narrow(dim, 0, 1).expand(*[lo if d == dim % x.ndim else s for d, s in enumerate(x.shape)]))
        else:
            parts.append(x.narrow(dim, n - lo, lo))
    parts.append(x)
    if hi:
        if mode == "reflect":
            parts.append(x.narrow(dim, n - 1 - hi, hi).flip(dim))
        elif mode == "replicate":
            parts.append(x.narrow(dim, n - 1, 1).expand(*[hi if d == dim % x.ndim else s for d, s in
                                                          enumerate(x.shape)]))
        else:
            parts.append(x.narrow(dim, 0, hi))
    return cat(parts, dim) if len(parts) > 1 else x


_PAD_OPS = {"reflect": "reflection_pad", "replicate": "replication_pad", "circular": "circular_pad"}


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """F.pad: constant, reflect, replicate or circular, pairs (left, right, top, bottom, ...) from the last dim."""
    if mode == "constant":
        return input.pad(pad, value=0.0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value not in (None, 0):
        raise ValueError(f"Padding mode \"{mode}\" doesn't take in value argument")
    if len(pad) % 2:
        raise ShapeError(f"Padding length must be divisible by 2, got {len(pad)}")
    dims = len(pad) // 2
    if input.ndim not in (dims + 1, dims + 2) or dims > 3:
        raise NotImplementedError(f"Only 2D, 3D, 4D, 5D padding with non-constant padding are supported for now "
                                  f"(got {len(pad)} pads for a {input.ndim}-D input)")
    if any(p < 0 for p in pad):
        raise NotImplementedError(f"pad: negative {mode} padding is not supported, got {tuple(pad)}")
    # one op under autocast as torch's pad kernels are (their reflection and replication pads run in float32
    # under CPU autocast): the concatenations inside cast nothing
    return autocast_call(_PAD_OPS[mode], _pad_dims, input, pad, mode)


def _pad_dims(x: Tensor, pad: Sequence[int], mode: str) -> Tensor:
    ndim = x.ndim
    for i in range(len(pad) // 2):
        x = _pad_dim(x, ndim - 1 - i, int(pad[2 * i]), int(pad[2 * i + 1]), mode)
    return x


# ---- interpolation -------------------------------------------------------------------------


_LINEAR = {"linear": 1, "bilinear": 2, "trilinear": 3}
_INTERPOLATING = {**_LINEAR, "bicubic": 2}  # the modes that take align_corners, and their spatial dims
CUBIC_A = -0.75  # the cubic convolution kernel's parameter, as torch's (and OpenCV's)


def _source(out: int, size: int, scale: float | None, align_corners: bool, like: Tensor, mode: str) -> Tensor:
    """Fractional source coordinate of each output position along one dim (torch's rule): nearest floors
    dst / scale, nearest-exact rounds the pixel centre's, the others map centres (or corners) linearly,
    linear clamping below 0 and cubic not (its taps clamp instead)."""
    dst = arange(out, device=like.device).to(like.dtype)
    step = 1.0 / scale if scale else size / out
    if mode == "nearest":
        return (dst * step).floor().clamp(max=size - 1)
    if mode == "nearest-exact":
        return ((dst + 0.5) * step).floor().clamp(max=size - 1)
    if align_corners:
        return dst * ((size - 1) / (out - 1) if out > 1 else 0.0)
    src = (dst + 0.5) * step - 0.5
    return src if mode == "bicubic" else src.clamp(min=0)


def _cubic_weights(t: Tensor) -> list[Tensor]:
    """The weights of the taps at -1, 0, 1 and 2 from the floor of a source coordinate t past it (0 <= t < 1)."""
    def near(x: Tensor) -> Tensor:  # |x| <= 1
        return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1

    def far(x: Tensor) -> Tensor:  # 1 < |x| < 2
        return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


@autocast_op("interpolate")
def interpolate(input: Tensor, size: int | Sequence[int] | None = None,
                scale_factor: float | Sequence[float] | None = None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    """Resize the spatial dims (all but N, C): modes nearest, nearest-exact, area, linear, bilinear, bicubic,
    trilinear."""
    n = input.ndim - 2
    if n < 1:
        raise ShapeError(f"interpolate expects an input with batch and channel dims, got shape {input.shape}")
    if mode not in ("nearest", "nearest-exact", "area", *_INTERPOLATING):
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported (nearest, nearest-exact, area, "
                                  f"linear, bilinear, bicubic, trilinear)")
    if mode in _INTERPOLATING and _INTERPOLATING[mode] != n:
        raise NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs {_INTERPOLATING[mode] + 2}D "
                                  f"input")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    if mode not in _INTERPOLATING and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined" if size is not None else
                         "either size or scale_factor should be defined")
    if size is not None:
        outs = _tuple(size, n)
        scales: tuple[float | None, ...] = (None,) * n
    else:
        factors = (float(scale_factor),) * n if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        if len(factors) != n:
            raise ValueError(f"scale_factor shape must match input shape: {n} spatial dims, got {factors}")
        outs = tuple(int(math.floor(s * f)) for s, f in zip(input.shape[2:], factors))
        scales = (None,) * n if recompute_scale_factor else factors
    if mode == "area":  # torch's area mode is adaptive average pooling
        return {1: adaptive_avg_pool1d, 2: adaptive_avg_pool2d, 3: adaptive_avg_pool3d}[n](input, outs)
    x = input
    for i, (out, scale) in enumerate(zip(outs, scales)):
        dim, length = 2 + i, input.shape[2 + i]
        if mode in _INTERPOLATING and out == length:  # torch copies a dim whose size does not change
            continue
        src = _source(out, length, scale, bool(align_corners), input, mode)
        lo = src.floor().long()
        if mode.startswith("nearest"):
            x = x.index_select(dim, lo)
            continue
        frac = (src - lo.to(src.dtype)).reshape((out,) + (1,) * (n - 1 - i))
        if mode == "bicubic":  # four taps, clamped to the edge
            taps = [x.index_select(dim, (lo + k).clamp(0, length - 1)) for k in (-1, 0, 1, 2)]
            weights = _cubic_weights(frac)
            x = sum((tap * w for tap, w in zip(taps[1:], weights[1:])), taps[0] * weights[0])
            continue
        lo = lo.clamp(max=length - 1)
        hi = (lo + 1).clamp(max=length - 1)
        x = x.index_select(dim, lo) * (1 - frac) + x.index_select(dim, hi) * frac
    return x


def upsample(input: Tensor, size: int | Sequence[int] | None = None, scale_factor: float | None = None,
             mode: str = "nearest", align_corners: bool | None = None) -> Tensor:
    """Deprecated alias of interpolate, as in torch."""
    return interpolate(input, size, scale_factor, mode, align_corners)


# ---- fold / unfold -------------------------------------------------------------------------


def unfold(input: Tensor, kernel_size: IntOrPair, dilation: IntOrPair = 1, padding: IntOrPair = 0,
           stride: IntOrPair = 1) -> Tensor:
    """Sliding blocks of (N, C, H, W) as columns: (N, C * kh * kw, L), a view of the padded input."""
    if input.ndim not in (3, 4):
        raise ShapeError(f"Input Error: Only 3D or 4D input Tensors are supported (got {input.ndim}D)")
    unbatched = input.ndim == 3
    x = input.unsqueeze(0) if unbatched else input
    k, d, p, s = (_tuple(v, 2) for v in (kernel_size, dilation, padding, stride))
    x = _pad_spatial(x, [(pi, pi) for pi in p])
    win = windows(x, k, s, d)  # (N, C, oh, ow, kh, kw)
    nb, c, oh, ow = win.shape[:4]
    cols = win.permute(0, 1, 4, 5, 2, 3).reshape(nb, c * k[0] * k[1], oh * ow)
    return cols.squeeze(0) if unbatched else cols


def fold(input: Tensor, output_size: IntOrPair, kernel_size: IntOrPair, dilation: IntOrPair = 1,
         padding: IntOrPair = 0, stride: IntOrPair = 1) -> Tensor:
    """The inverse arrangement of unfold: columns (N, C * kh * kw, L) summed into (N, C, H, W)."""
    if input.ndim not in (2, 3):
        raise ShapeError(f"Input Error: Only unbatched (2D) or batched (3D) input Tensors are supported "
                         f"(got {input.ndim}D)")
    unbatched = input.ndim == 2
    x = input.unsqueeze(0) if unbatched else input
    size, k, d, p, s = (_tuple(v, 2) for v in (output_size, kernel_size, dilation, padding, stride))
    outs = [(size[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2)]
    nb, rows, blocks = x.shape
    if rows % (k[0] * k[1]) or blocks != outs[0] * outs[1]:
        raise ShapeError(f"fold: input {x.shape} does not fit kernel {k} with {outs[0]} x {outs[1]} blocks for "
                         f"output_size {size}")
    c = rows // (k[0] * k[1])
    x = x.reshape(nb, c, k[0], k[1], outs[0], outs[1])
    full_h, full_w = size[0] + 2 * p[0], size[1] + 2 * p[1]
    total = None
    for i in range(k[0]):
        for j in range(k[1]):
            block = _dilate_input(x[:, :, i, j], s)  # the block's values at their strided places
            top, left = i * d[0], j * d[1]
            placed = block.pad_zeros([(0, 0), (0, 0), (top, full_h - top - block.shape[2]),
                                      (left, full_w - left - block.shape[3])])
            total = placed if total is None else total + placed
    out = total.shrink([(0, nb), (0, c), (p[0], p[0] + size[0]), (p[1], p[1] + size[1])])
    return out.squeeze(0) if unbatched else out

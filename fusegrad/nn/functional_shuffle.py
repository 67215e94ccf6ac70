"""Pixel shuffle: trading channels for spatial resolution and back (sub-pixel convolution), as reshapes."""
from __future__ import annotations

from ..errors import InvalidValueError, ShapeError
from ..tensor import Tensor


def _checked(name: str, input: Tensor, factor: int, what: str) -> None:
    if input.ndim < 3:
        raise ShapeError(f"{name} expects input to have at least 3 dimensions, but got input with {input.ndim} "
                         f"dimension(s)")
    if factor <= 0:
        raise InvalidValueError(f"{name} expects a positive {what}, but got {factor}")


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(*, C * r^2, H, W) -> (*, C, H * r, W * r): each channel group of r^2 fills an r x r block."""
    r = upscale_factor
    _checked("pixel_shuffle", input, r, "upscale_factor")
    *batch, c, h, w = input.shape
    if c % (r * r):
        raise ShapeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                         f"upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    n = len(batch)
    blocks = input.reshape(*batch, c // (r * r), r, r, h, w).permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return blocks.reshape(*batch, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """(*, C, H * r, W * r) -> (*, C * r^2, H, W), the inverse of pixel_shuffle."""
    r = downscale_factor
    _checked("pixel_unshuffle", input, r, "downscale_factor")
    *batch, c, h, w = input.shape
    if h % r or w % r:
        raise ShapeError(f"pixel_unshuffle expects height and width to be divisible by downscale_factor, but input "
                         f"of shape {input.shape} is not divisible by {r}")
    n = len(batch)
    blocks = input.reshape(*batch, c, h // r, r, w // r, r).permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return blocks.reshape(*batch, c * r * r, h // r, w // r)

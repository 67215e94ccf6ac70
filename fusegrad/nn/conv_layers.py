"""Convolution modules (PyTorch's default initialization)."""
from __future__ import annotations

import math
from typing import Any, Sequence

from ..tensor import Tensor
from ..creation import empty
from . import functional as F
from . import init
from .conv import IntOrPair, _conv_padding, _tuple
from .module import Module
from .parameter import Parameter

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    def __init__(self, n: int, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair,
                 padding: str | IntOrPair, dilation: IntOrPair, groups: int, bias: bool, transposed: bool,
                 device: Any, dtype: Any, padding_mode: str = "zeros"):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible "
                             f"by groups ({groups})")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, but got padding_mode={padding_mode!r}")
        if transposed and padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        self.padding_mode = padding_mode
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _tuple(kernel_size, n)
        self.stride, self.dilation = _tuple(stride, n), _tuple(dilation, n)
        self.padding = padding if isinstance(padding, str) else _tuple(padding, n)
        shape = ((in_channels, out_channels // groups) if transposed else (out_channels, in_channels // groups))
        self.weight = Parameter(empty(*shape, *self.kernel_size, device=device, dtype=dtype))
        self.bias = Parameter(empty(out_channels, device=device, dtype=dtype)) if bias else None
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in) if fan_in else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0,) * len(self.kernel_size), "valid"):
            s += f", padding={self.padding if isinstance(self.padding, str) else tuple(self.padding)}"
        if self.dilation != (1,) * len(self.kernel_size):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s + ("" if self.bias is not None else ", bias=False")


class _ConvForward(_ConvNd):
    dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: str | IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None):
        super().__init__(self.dims, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         False, device, dtype, padding_mode)

    def forward(self, x: Tensor) -> Tensor:
        conv = (F.conv1d, F.conv2d, F.conv3d)[self.dims - 1]
        if self.padding_mode == "zeros":
            return conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        # the other modes pad the input by F.pad first, as torch's modules do, and convolve it unpadded
        pads = _conv_padding(self.padding, self.kernel_size, self.stride, self.dilation)
        x = F.pad(x, [p for pair in reversed(pads) for p in pair], self.padding_mode)
        return conv(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Conv1d(_ConvForward):
    dims = 1


class Conv2d(_ConvForward):
    dims = 2


class Conv3d(_ConvForward):
    dims = 3


class _ConvTransposeNd(_ConvNd):
    dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair = 0, output_padding: IntOrPair = 0, groups: int = 1, bias: bool = True,
                 dilation: IntOrPair = 1, padding_mode: str = "zeros", device: Any = None, dtype: Any = None):
        super().__init__(self.dims, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         True, device, dtype, padding_mode)
        self.output_padding = _tuple(output_padding, self.dims)

    def forward(self, x: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[self.dims - 1]
        output_padding = self.output_padding if output_size is None else self._output_padding(x, output_size)
        return conv(x, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups,
                    self.dilation)

    def _output_padding(self, x: Tensor, output_size: Sequence[int]) -> tuple[int, ...]:
        """The output padding that makes the output's spatial size output_size (which may name N and C too):
        each size can be from the unpadded one up to a stride - 1 more."""
        n = self.dims
        sizes = list(output_size)
        if len(sizes) == x.ndim:
            sizes = sizes[x.ndim - n:]
        if len(sizes) != n:
            raise ValueError(f"{type(self).__name__}: for {x.ndim}D input, output_size must have {n} or "
                             f"{x.ndim} elements (got {len(output_size)})")
        least = [(length - 1) * s - 2 * p + d * (k - 1) + 1 for length, s, p, d, k
                 in zip(x.shape[x.ndim - n:], self.stride, self.padding, self.dilation, self.kernel_size)]
        most = [size + s - 1 for size, s in zip(least, self.stride)]
        if any(not lo <= size <= hi for size, lo, hi in zip(sizes, least, most)):
            raise ValueError(f"requested an output size of {tuple(sizes)}, but valid sizes range from {least} to "
                             f"{most} (for an input of {x.shape[x.ndim - n:]})")
        return tuple(size - lo for size, lo in zip(sizes, least))


class ConvTranspose1d(_ConvTransposeNd):
    dims = 1


class ConvTranspose2d(_ConvTransposeNd):
    dims = 2


class ConvTranspose3d(_ConvTransposeNd):
    dims = 3

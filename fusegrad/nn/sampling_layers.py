"""Modules over nn.sampling: Upsample, Unfold, Fold and the padding layers."""
from __future__ import annotations

from typing import Any, Sequence

from ..errors import ShapeError
from ..tensor import Tensor
from .conv import IntOrPair
from . import sampling
from .module import Module


class Upsample(Module):
    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None, recompute_scale_factor: bool | None = None):
        super().__init__()
        self.size, self.mode, self.align_corners = size, mode, align_corners
        self.scale_factor = float(scale_factor) if isinstance(scale_factor, (int, float)) else scale_factor
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, x: Tensor) -> Tensor:
        return sampling.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                                    self.recompute_scale_factor)

    def extra_repr(self) -> str:
        what = f"scale_factor={self.scale_factor}" if self.scale_factor is not None else f"size={self.size}"
        return f"{what}, mode='{self.mode}'"


class UpsamplingNearest2d(Upsample):
    def __init__(self, size: Any = None, scale_factor: Any = None):
        super().__init__(size, scale_factor, "nearest")


class UpsamplingBilinear2d(Upsample):
    def __init__(self, size: Any = None, scale_factor: Any = None):
        super().__init__(size, scale_factor, "bilinear", align_corners=True)


class Unfold(Module):
    def __init__(self, kernel_size: IntOrPair, dilation: IntOrPair = 1, padding: IntOrPair = 0,
                 stride: IntOrPair = 1):
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def forward(self, x: Tensor) -> Tensor:
        return sampling.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, "
                f"stride={self.stride}")


class Fold(Unfold):
    def __init__(self, output_size: IntOrPair, kernel_size: IntOrPair, dilation: IntOrPair = 1,
                 padding: IntOrPair = 0, stride: IntOrPair = 1):
        super().__init__(kernel_size, dilation, padding, stride)
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return sampling.fold(x, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, " + super().extra_repr()


class _PadNd(Module):
    mode = "constant"
    dims = 1

    def __init__(self, padding: int | Sequence[int], value: float = 0.0):
        super().__init__()
        self.padding = (padding,) * (2 * self.dims) if isinstance(padding, int) else tuple(padding)
        self.value = value

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "circular" and x.ndim not in (self.dims + 1, self.dims + 2):
            # torch's circular pad modules check the rank themselves, with ValueError
            raise ShapeError(f"expected {self.dims + 1}D or {self.dims + 2}D input (got {x.ndim}D input)")
        if self.mode == "constant":
            return sampling.pad(x, self.padding, "constant", self.value)
        return sampling.pad(x, self.padding, self.mode)

    def extra_repr(self) -> str:
        return f"{self.padding}" + (f", value={self.value}" if self.mode == "constant" else "")


class ConstantPad1d(_PadNd):
    def __init__(self, padding: int | Sequence[int], value: float):
        super().__init__(padding, value)


class ConstantPad2d(ConstantPad1d):
    dims = 2


class ZeroPad1d(_PadNd):
    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad2d(ZeroPad1d):
    dims = 2


class ReflectionPad1d(_PadNd):
    mode = "reflect"


class ReflectionPad2d(ReflectionPad1d):
    dims = 2


class ReplicationPad1d(_PadNd):
    mode = "replicate"


class ReplicationPad2d(ReplicationPad1d):
    dims = 2


class CircularPad1d(_PadNd):
    mode = "circular"


class CircularPad2d(CircularPad1d):
    dims = 2


class ConstantPad3d(ConstantPad1d):
    dims = 3


class ZeroPad3d(ZeroPad1d):
    dims = 3


class ReflectionPad3d(ReflectionPad1d):
    dims = 3


class ReplicationPad3d(ReplicationPad1d):
    dims = 3


class CircularPad3d(CircularPad1d):
    dims = 3

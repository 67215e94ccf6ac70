"""Normalization layers: BatchNorm1d/2d/3d, InstanceNorm1d/2d/3d, LayerNorm, GroupNorm, RMSNorm,
LocalResponseNorm."""
from __future__ import annotations

from typing import Any, Sequence

from ..errors import ShapeError
from ..tensor import Tensor
from ..creation import ones, zeros
from . import functional as F
from .module import Module
from .parameter import Parameter


class _BatchNorm(Module):
    _dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None, *, bias: bool = True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(ones(num_features, device=device, dtype=dtype).contiguous()) if affine else None
        self.bias = Parameter(zeros(num_features, device=device, dtype=dtype).contiguous()) \
            if affine and bias else None
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, device=device, dtype=dtype).contiguous().realize())
            self.register_buffer("running_var", ones(num_features, device=device, dtype=dtype).contiguous().realize())
            self.register_buffer("num_batches_tracked", zeros((), dtype="int64").contiguous().realize())
        else:
            self.running_mean = self.running_var = None

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self._dims:
            raise ShapeError(f"{type(self).__name__} expects {' or '.join(f'{d}-D' for d in self._dims)} input, "
                             f"got shape {x.shape}")
        use_batch = self.training or not self.track_running_stats
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.item())
        running = (self.running_mean, self.running_var) if self.training or not use_batch else (None, None)
        out = F.batch_norm(x, running[0] if self.track_running_stats else None,
                           running[1] if self.track_running_stats else None, self.weight, self.bias,
                           use_batch, momentum if momentum is not None else 0.0, self.eps)
        if self.training and self.track_running_stats:
            self.running_mean.realize()
            self.running_var.realize()
        return out

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    _dims = (4,)


class BatchNorm3d(_BatchNorm):
    _dims = (5,)


class _InstanceNorm(_BatchNorm):
    """Per-sample, per-channel statistics over the spatial dims; batched or unbatched (no N) input. The
    running statistics, when tracked, are used in eval mode; num_batches_tracked is kept (torch's state
    dict has it) but not counted."""
    _dims: tuple[int, ...] = ()  # (unbatched, batched) input dims

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device: Any = None, dtype: Any = None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self._dims:
            raise ShapeError(f"{type(self).__name__} expects {self._dims[0]}-D (unbatched) or {self._dims[1]}-D "
                             f"input, got shape {x.shape}")
        unbatched = x.ndim == self._dims[0]
        batch = x.unsqueeze(0) if unbatched else x
        if (self.affine or self.track_running_stats) and batch.shape[1] != self.num_features:
            raise ShapeError(f"expected input's size at dim={0 if unbatched else 1} "
                             f"to match num_features ({self.num_features}), but got: {batch.shape[1]}")
        use_input_stats = self.training or not self.track_running_stats
        out = F.instance_norm(batch, self.running_mean, self.running_var, self.weight, self.bias, use_input_stats,
                              self.momentum if self.momentum is not None else 0.0, self.eps)
        if use_input_stats and self.track_running_stats:
            self.running_mean.realize()
            self.running_var.realize()
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    _dims = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    _dims = (3, 4)


class InstanceNorm3d(_InstanceNorm):
    _dims = (4, 5)


class LayerNorm(Module):
    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device: Any = None, dtype: Any = None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Parameter(ones(shape, device=device, dtype=dtype).contiguous()) if elementwise_affine else None
        self.bias = Parameter(zeros(shape, device=device, dtype=dtype).contiguous()) \
            if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}, "
                f"bias={self.bias is not None}")


class GroupNorm(Module):
    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device: Any = None, dtype: Any = None, *, bias: bool = True):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError("num_channels must be divisible by num_groups")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self.weight = Parameter(ones(num_channels, device=device, dtype=dtype).contiguous()) if affine else None
        self.bias = Parameter(zeros(num_channels, device=device, dtype=dtype).contiguous()) \
            if affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class RMSNorm(Module):
    def __init__(self, normalized_shape: int | Sequence[int], eps: float | None = None,
                 elementwise_affine: bool = True, device: Any = None, dtype: Any = None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Parameter(ones(shape, device=device, dtype=dtype).contiguous()) if elementwise_affine else None

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}"


class LocalResponseNorm(Module):
    """Each value divided by a power of the summed squares over `size` neighbouring channels."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: Tensor) -> Tensor:
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"

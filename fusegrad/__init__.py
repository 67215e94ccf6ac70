"""fusegrad: lazy, always-differentiable tensors compiled to native kernels at run time."""
from __future__ import annotations

from typing import Any

from . import dtypes
from .autograd import GradientTape, enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled, value_and_grad
from .dtypes import (DType, bfloat16, float16, float32, float64, int8, int16, int32, int64, uint8)
from .dtypes import bool_ as bool  # noqa: A001  (fg.bool like torch.bool)
from .engine.profile import KernelLaunch, Profile
from .errors import (CompileError, DeviceError, DTypeError, Error, GradError, IndexOutOfRangeError, JitError,
                     ShapeError)
from .ops.datashape import (argwhere, bincount, masked_select, nonzero, repeat_interleave, unique,
                             unique_consecutive)
from .ops.index import gather, index_select, masked_fill, one_hot, scatter, scatter_add, take_along_dim
from .ops.index_reduce import index_add, index_copy, index_fill, index_reduce, scatter_reduce
from .ops.linalg import bmm, dot, einsum, matmul, mm, mv, outer
from .ops.movement import (chunk, concat, concatenate, diag, diag_embed, diagonal, flatten, flip, hstack, meshgrid,
                           movedim, narrow, roll, split, squeeze, transpose, tril, triu, unbind, unsqueeze, vstack)
from .ops.scan import cummax, cummin, cumprod, cumsum, logcumsumexp
from .ops.sorting import (argsort, bucketize, histc, kthvalue, median, mode, msort, nanmedian, searchsorted, sort,
                          topk)
from .random import initial_seed, manual_seed, rand, rand_like, randint, randn, randn_like, randperm
from .runtime import registry as _registry
from .runtime.registry import DeviceInfo
from .tensor import Tensor, cat, from_numpy, realize, stack, tensor, where
from .creation import arange, empty, empty_like, eye, full, full_like, linspace, ones, ones_like, zeros, zeros_like

from . import data, io, nn, optim  # noqa: E402  (they build on the names above)
from . import tensorboard, viz  # noqa: E402
from .io.checkpoint import load, save  # noqa: E402
from .jit import jit  # noqa: E402
from .sampling import multinomial  # noqa: E402

half, float, double, long, int, short = float16, float32, float64, int64, int32, int16  # noqa: A001

__version__ = "0.1.0"


def profile() -> Profile:
    """`with fg.profile() as p:` records every kernel launch in `p.kernels`."""
    return Profile()


def memory_stats(device: Any = None) -> dict[str, int]:
    """Bytes held now, peak bytes and allocation count of a device's allocator."""
    return _registry.get(device if device is not None else "cpu").allocator.stats.as_dict()


def devices(verbose: bool = False) -> list[DeviceInfo]:
    """The devices usable here (cpu first); `verbose=True` also prints them with the absent backends' reasons."""
    return _registry.devices(verbose)


def set_default_device(device: Any) -> None:
    """Device of new tensors (over FUSEGRAD_DEVICE and the config file); None undoes the setting."""
    _registry.set_default_device(device)


def get_default_device() -> str:
    """The device new tensors go to, e.g. "cpu" or "cuda:0"."""
    return _registry.canonical(None)


def set_num_threads(n: int) -> None:
    """Threads the CPU kernels use (OpenMP)."""
    _registry.get("cpu").set_num_threads(n)


def get_num_threads() -> int:
    """Threads the CPU kernels use (like torch.get_num_threads)."""
    return _registry.get("cpu").get_num_threads()

"""fusegrad: lazy, always-differentiable tensors compiled to native kernels at run time."""
from __future__ import annotations

from typing import Any

from . import dtypes
from .autograd import GradientTape, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .dtypes import (DType, bfloat16, float8_e4m3fn, float8_e5m2, float16, float32, float64, int8, int16, int32, int64,
                     uint8)
from .dtypes import bool_ as bool  # noqa: A001  (fg.bool like torch.bool)
from .engine.profile import KernelLaunch, Profile
from .errors import (CacheWarning, CompileError, DeviceError, DTypeError, Error, GradError, IndexOutOfRangeError,
                     IntegerOverflowError, InvalidValueError, JitError, ShapeError, StateDictError, ValueRangeError)
from .ops.datashape import (argwhere, bincount, masked_select, nonzero, repeat_interleave, unique,
                             unique_consecutive)
from .ops.extra import (atleast_1d, atleast_2d, atleast_3d, block_diag, broadcast_shapes, broadcast_tensors, can_cast,
                        cartesian_prod, column_stack, combinations, dsplit, dstack, isin, promote_types, result_type,
                        row_stack, addmv, addmv_, tensordot, tril_indices, triu_indices, vdot)
from .ops.index import gather, index_select, masked_fill, one_hot, scatter, scatter_add, take_along_dim
from .ops.index_reduce import index_add, index_copy, index_fill, index_reduce, scatter_reduce
from .ops.linalg import bmm, dot, einsum, matmul, mm, mv, outer
from .ops.linalg import scaled_mm as _scaled_mm
from .typeinfo import finfo, iinfo
from .ops.inplace import addcdiv, addcmul
from .ops.movement import (chunk, concat, concatenate, diag, diag_embed, diagonal, flatten, flip, hstack, meshgrid,
                           movedim, narrow, roll, split, squeeze, transpose, tril, triu, unbind, unsqueeze, vstack)
from .ops.sampling import multinomial
from .ops.scan import cummax, cummin, cumprod, cumsum, logcumsumexp
from .ops.sorting import (argsort, bucketize, histc, kthvalue, median, mode, msort, nanmedian, searchsorted, sort,
                          topk)
from .random import (Generator, bernoulli, default_generator, get_rng_state, initial_seed, manual_seed, normal, rand,
                     rand_like, randint, randint_like, randn, randn_like, randperm, seed, set_rng_state)
from .runtime import registry as _registry
from .runtime.lru import cache_info, set_cache_limit
from .runtime.registry import DeviceInfo
from .tensor import Tensor, cat, from_numpy, realize, stack, tensor, where
from .functions import *  # noqa: E402,F401,F403  (torch.sin(x) and the other method-functions)
from .creation import (arange, as_tensor, empty, empty_like, eye, full, full_like, is_tensor, linspace, logspace, ones,
                       ones_like, scalar_tensor, zeros, zeros_like)
from .device import device
from .grad_mode import inference_mode, is_inference_mode_enabled
from . import accelerator, backends, cuda  # noqa: E402  (torch.cuda, torch.accelerator, torch.backends)
from . import amp  # noqa: E402
from .amp import autocast  # noqa: E402
from .amp.autocast_mode import (autocast_decrement_nesting, autocast_increment_nesting,  # noqa: E402
                                clear_autocast_cache, get_autocast_dtype, is_autocast_cache_enabled,
                                is_autocast_enabled, set_autocast_cache_enabled, set_autocast_dtype,
                                set_autocast_enabled)

from . import data, io, nn, optim  # noqa: E402  (they build on the names above)
from . import utils  # noqa: E402  (torch.utils.data's path to the data API)
from . import tensorboard, viz  # noqa: E402
from . import linalg  # noqa: E402
from .linalg import det, slogdet  # noqa: E402  (torch.det, torch.slogdet)
from .linalg.lu import inv as inverse, logdet  # noqa: E402
from .linalg.norms import cdist, torch_cross as cross  # noqa: E402
from .linalg.triangular import cholesky_solve, triangular_solve  # noqa: E402
from .linalg.legacy import cholesky, pinverse, qr  # noqa: E402
from .linalg.products import matrix_exp, matrix_power  # noqa: E402
from .io.checkpoint import load, save  # noqa: E402
from .jit import jit  # noqa: E402
from .precision import get_float32_matmul_precision, set_float32_matmul_precision  # noqa: E402
from . import func  # noqa: E402
from .func import grad, value_and_grad  # noqa: E402  (function transforms; torch's is fg.autograd.grad)
from .function import Function  # noqa: E402,F401  (also fg.autograd.Function)

half, float, double, long, int, short = float16, float32, float64, int64, int32, int16  # noqa: A001

__version__ = "0.1.0"


def profile() -> Profile:
    """`with fg.profile() as p:` records every kernel launch in `p.kernels`."""
    return Profile()


def memory_stats(device: Any = None) -> dict[str, int]:
    """Bytes held now, peak bytes and allocation count of a device's allocator (default: the default device)."""
    return _registry.get(device).allocator.stats.as_dict()


def get_default_dtype() -> DType:
    """The dtype of new floating point tensors: float32 (fusegrad's default is fixed)."""
    return float32


def devices(verbose: bool = False) -> list[DeviceInfo]:
    """The devices usable here (cpu first); `verbose=True` also prints them with the absent backends' reasons."""
    return _registry.devices(verbose)


def set_default_device(device: Any) -> None:
    """Device of new tensors (over FUSEGRAD_DEVICE and the config file); None undoes the setting."""
    _registry.set_default_device(device)


def get_default_device() -> device:
    """The device new tensors go to, as an `fg.device` (a str: "cpu", "cuda:0")."""
    return device(_registry.canonical(None))


def set_num_threads(n: int) -> None:
    """Threads the CPU kernels use (OpenMP)."""
    _registry.get("cpu").set_num_threads(n)


def get_num_threads() -> int:
    """Threads the CPU kernels use (like torch.get_num_threads)."""
    return _registry.get("cpu").get_num_threads()

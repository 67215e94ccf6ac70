"""Autocast's per-op policy: which ops run in the low-precision dtype, which in float32, which in
their widest input type, per device type; and the one place that applies it.

The tables are PyTorch 2.13's (`aten/src/ATen/autocast_mode.*`: the CUDA lists, and the CPU lists
checked against torch's CPU autocast), narrowed to the ops fusegrad has and named by the fusegrad op
that applies them. A few entries are what torch does in effect rather than what its table says:
torch ops written as compositions of other ops (`einsum`'s pairwise products are `bmm`s,
`cross_entropy` is `log_softmax` and `nll_loss`) autocast through the ops they call, and fusegrad's
fused ops stand for several of torch's (a recurrent layer for its cells).

An op applies the policy at its entry: `autocast_op(name)` decorates it (or `autocast_call` calls
it), which casts its tensor arguments and runs its body with autocast off, as torch's dispatcher
does, so the ops a composite calls inside do not cast again. Ops torch runs as one kernel but
fusegrad composes from covered ops (`NATIVE`) are decorated only for that: no casts, autocast off
inside. `autocast_args` casts without that, for a step inside a composite (einsum's products).
"""
from __future__ import annotations

import functools
import weakref
from typing import TYPE_CHECKING, Any, Callable

from .. import dtypes
from ..autocast_state import state, suspended
from ..autograd.mode import is_grad_enabled
from ..engine import capture
from ..errors import DTypeError

if TYPE_CHECKING:
    from ..tensor import Tensor

LOWER = "lower_precision_fp"  # inputs cast to the autocast dtype
FP32 = "fp32"  # inputs cast to float32
FP32_OPT = "fp32_set_opt_dtype"  # the input cast to float32 unless the call passes a dtype
PROMOTE = "promote"  # inputs cast to the widest floating type among them
BANNED = "banned"  # raises: unsafe under autocast


def _table(**classes: str) -> dict[str, str]:
    return {name: policy for policy, names in classes.items() for name in names.split()}


CPU = _table(
    lower_precision_fp="""conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d bmm mm vecdot
        baddbmm addmm addbmm linear matmul prelu
        scaled_dot_product_attention tensordot multi_dot lstm rnn_tanh rnn_relu rnn_tanh_cell rnn_relu_cell""",
    fp32="""binary_cross_entropy prod quantile nanquantile cdist trace cholesky cholesky_solve lu_solve
        pinverse reflection_pad replication_pad mse_loss cosine_embedding_loss nll_loss hinge_embedding_loss
        poisson_nll_loss smooth_l1_loss cross_entropy l1_loss huber_loss margin_ranking_loss soft_margin_loss
        triplet_margin_loss multi_margin_loss ctc_loss kl_div binary_cross_entropy_with_logits linalg_cond
        linalg_solve linalg_cholesky linalg_svdvals linalg_eigvalsh linalg_inv qr triangular_solve linalg_qr
        linalg_cholesky_ex linalg_eigh linalg_lstsq linalg_inv_ex""",
    promote="cat stack index_copy",
)

CUDA = _table(
    lower_precision_fp="""conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d prelu addmm addmv
        addr matmul einsum mm mv vecdot linear
        addbmm baddbmm bmm multi_dot lstm gru rnn_tanh rnn_relu lstm_cell gru_cell rnn_tanh_cell rnn_relu_cell
        scaled_dot_product_attention""",
    fp32="""acos asin cosh erfinv exp expm1 log log10 log2 log1p reciprocal rsqrt sinh tan pow softplus layer_norm
        rms_norm group_norm cosine_similarity poisson_nll_loss cosine_embedding_loss nll_loss hinge_embedding_loss
        kl_div l1_loss smooth_l1_loss huber_loss mse_loss margin_ranking_loss soft_margin_loss triplet_margin_loss
        multi_margin_loss binary_cross_entropy_with_logits cross_entropy dist cdist logsumexp interpolate""",
    fp32_set_opt_dtype="prod softmax log_softmax cumprod cumsum norm vector_norm matrix_norm sum",
    promote="addcdiv addcmul atan2 bilinear cross dot vdot tensordot scatter_add",
    banned="binary_cross_entropy",
)

# OpenCL GPUs autocast as CUDA GPUs do: float16 by default, CUDA's table
POLICIES = {"cpu": CPU, "cuda": CUDA, "opencl": CUDA}

# ops torch runs as one kernel that fusegrad composes from ops the tables cover: autocast is off
# inside them, so their result keeps their inputs' dtype as torch's does
NATIVE = frozenset("""mean var std var_mean std_mean nansum nanmean sigmoid tanh gelu silu mish elu selu celu
    logsigmoid logit xlogy logaddexp logaddexp2 logcumsumexp batch_norm matrix_exp det slogdet logdet lu lu_factor
    linalg_solve_ex linalg_solve_triangular linalg_cross circular_pad instance_norm""".split())
KNOWN = frozenset(CPU) | frozenset(CUDA) | NATIVE


def _is_tensor(x: Any) -> bool:
    from ..tensor import Tensor
    return isinstance(x, Tensor)


def _first_device(args: Any) -> str | None:
    """The device type of the first tensor among the arguments (in lists, tuples and dicts too)."""
    stack = [args]
    while stack:
        x = stack.pop()
        if _is_tensor(x):
            return x.device.split(":")[0]
        if type(x) in (list, tuple):
            stack.extend(reversed(x))
        elif type(x) is dict:
            stack.extend(reversed(list(x.values())))
    return None


def _map(fn: Callable[["Tensor"], "Tensor"], x: Any) -> Any:
    if _is_tensor(x):
        return fn(x)
    if type(x) in (list, tuple):
        return type(x)(_map(fn, v) for v in x)
    if type(x) is dict:
        return {k: _map(fn, v) for k, v in x.items()}
    return x


def _eligible(t: "Tensor", device_type: str) -> bool:
    """Floating, not float64, on the device type autocast runs for (torch's is_eligible)."""
    dt = t.dtype
    return dt.kind == "f" and dt is not dtypes.float64 and t.device.split(":")[0] == device_type


def _cast(t: "Tensor", dtype: dtypes.DType, device_type: str) -> "Tensor":
    """`t` in `dtype` if autocast casts it; a float32 leaf that requires grad (a weight) is cast to the
    autocast dtype once per outermost region, as torch caches it. An entry is used only for the same
    value (an in-place write makes a new node), grad mode and capture by fg.jit, so a cast reused is
    never stale, cut from the graph, or a constant baked into a recording it does not belong to."""
    if t.dtype is dtype or not _eligible(t, device_type):
        return t
    if not (state.cache_enabled and dtype is state.dtype[device_type] and t.dtype is dtypes.float32
            and t.requires_grad and t._ctx is None):
        return t.cast(dtype)
    recording, grad = capture.current(), is_grad_enabled()
    entry = state.cache.get(id(t))
    if entry is not None and entry[0]() is t and entry[1] is t._node and entry[2] is recording \
            and entry[3] == grad and entry[4].dtype is dtype:
        return entry[4]
    out = t.cast(dtype)
    state.cache[id(t)] = (weakref.ref(t), t._node, recording, grad, out)
    return out


def _promote_type(args: Any, device_type: str) -> dtypes.DType:
    """The widest floating type among the eligible tensors, float64 aside (torch's prioritize)."""
    low = current = state.dtype[device_type]
    found: list["Tensor"] = []
    _map(found.append, args)
    for t in found:
        if not _eligible(t, device_type):
            continue
        if current is dtypes.float32 or t.dtype is dtypes.float32:
            current = dtypes.float32
        elif t.dtype is not low:
            raise DTypeError(f"autocast cannot promote {t.dtype.name} and {low.name} (autocast's {device_type} "
                             f"dtype): cast the inputs to one of them first")
    return current


def _apply(name: str, policy: str, device_type: str, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    if policy == BANNED:
        raise RuntimeError(f"{name} is unsafe to autocast: its float16 input is usually a sigmoid's output, which "
                           f"rounds to 0 or 1; use binary_cross_entropy_with_logits (nn.BCEWithLogitsLoss), "
                           f"which autocasts safely")
    if policy == FP32_OPT:
        # only the input is cast, and not when the call asks for a dtype of its own
        if kwargs.get("dtype") is not None or any(isinstance(a, dtypes.DType) for a in args):
            return args, kwargs
        first = _cast(args[0], dtypes.float32, device_type) if args and _is_tensor(args[0]) else None
        return ((first, *args[1:]) if first is not None else args), kwargs
    if policy == LOWER:
        dtype = state.dtype[device_type]
    elif policy == FP32:
        dtype = dtypes.float32
    else:
        dtype = _promote_type((args, kwargs), device_type)

    def cast(t: "Tensor") -> "Tensor":
        return _cast(t, dtype, device_type)

    return _map(cast, args), _map(cast, kwargs)


def _autocast_device(args: Any) -> str | None:
    """The device type of the arguments' tensors if autocast is on for it, else None."""
    device_type = _first_device(args)
    return device_type if device_type is not None and state.enabled.get(device_type, False) else None


def _policy(name: str, args: Any) -> tuple[str | None, str | None]:
    """(device type, policy) for a call of op `name`: (None, None) where autocast does not touch it."""
    device_type = _autocast_device(args)
    return (device_type, POLICIES[device_type].get(name)) if device_type is not None else (None, None)


def autocast_call(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)` as op `name` under the current autocast state: its tensor arguments cast
    by the policy of their device type, its body run with autocast off."""
    if not state.active:
        return fn(*args, **kwargs)
    device_type, policy = _policy(name, (args, kwargs))
    if device_type is None:
        return fn(*args, **kwargs)
    if policy is not None:
        args, kwargs = _apply(name, policy, device_type, args, kwargs)
    with suspended():
        return fn(*args, **kwargs)


def autocast_op(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the function is op `name` of the policy tables (or of NATIVE)."""
    if name not in KNOWN:
        raise ValueError(f"{name!r} is in no autocast table")

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def op(*args: Any, **kwargs: Any) -> Any:
            if not state.active:  # the common case: one attribute read
                return fn(*args, **kwargs)
            return autocast_call(name, fn, *args, **kwargs)
        return op
    return wrap


def autocasts(*tensors: Any) -> bool:
    """Whether autocast runs for the device type of these tensors here."""
    return state.active and _autocast_device(tensors) is not None


def autocast_args(name: str, *tensors: Any) -> tuple[Any, ...]:
    """The tensors cast as op `name`'s inputs would be (for a step inside a composite op)."""
    if not state.active:
        return tensors
    device_type, policy = _policy(name, tensors)
    if policy is None:
        return tensors
    return _apply(name, policy, device_type, tensors, {})[0]

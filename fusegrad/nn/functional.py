"""nn.functional: stateless layers and losses, composed from tensor ops."""
from __future__ import annotations

from typing import Any, Sequence

from .. import dtypes
from .. import random as fgrandom
from ..autograd import no_grad
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor, where
from ..creation import arange
from ..ops.autocast import autocast_op
from ..ops.composite import rounds_once
from ..ops.scatter import gather_rows
from .conv import expand_over_batch as _expand_over_batch
from .conv import conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d  # noqa: F401
from .pooling import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d, adaptive_max_pool1d,  # noqa: F401
                      adaptive_max_pool1d_with_indices, adaptive_max_pool2d, adaptive_max_pool2d_with_indices,
                      adaptive_max_pool3d, adaptive_max_pool3d_with_indices, avg_pool1d, avg_pool2d, avg_pool3d,
                      max_pool1d, max_pool1d_with_indices, max_pool2d, max_pool2d_with_indices, max_pool3d,
                      max_pool3d_with_indices, max_unpool1d, max_unpool2d, max_unpool3d)
from .functional_act import (celu, glu, hardshrink, hardsigmoid, hardswish, hardtanh, logsigmoid,  # noqa: F401
                             mish, prelu, relu6, selu, softmin, softplus, softshrink, softsign, tanhshrink,
                             threshold)
from .sampling import fold, interpolate, pad, unfold, upsample  # noqa: F401
from .functional_dist import cosine_similarity, normalize, pairwise_distance  # noqa: F401
from .sdpa import scaled_dot_product_attention  # noqa: F401
from .functional_shuffle import pixel_shuffle, pixel_unshuffle  # noqa: F401
from .functional_loss import _reduce  # the reductions every loss shares
from .functional_loss import (cosine_embedding_loss, ctc_loss, gaussian_nll_loss,  # noqa: F401
                              hinge_embedding_loss, margin_ranking_loss, multi_margin_loss,
                              multilabel_soft_margin_loss, poisson_nll_loss, soft_margin_loss, triplet_margin_loss)

# ---- activations and simple layers -------------------------------------------------------


@autocast_op("linear")
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias."""
    out = input @ weight.T
    return out + bias if bias is not None else out


@autocast_op("bilinear")
def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """out[..., o] = sum_ij input1[..., i] weight[o, i, j] input2[..., j] + bias[o]: one product, one reduction."""
    out_f, in1, in2 = weight.shape
    if input1.shape[-1] != in1 or input2.shape[-1] != in2 or input1.shape[:-1] != input2.shape[:-1]:
        raise ShapeError(f"bilinear: inputs {input1.shape} and {input2.shape} do not fit weight {weight.shape}")
    left = (input1 @ weight.permute(1, 0, 2).reshape(in1, out_f * in2)).unflatten(-1, (out_f, in2))
    out = (left * input2.unsqueeze(-2)).sum(-1)
    return out + bias if bias is not None else out


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return input.relu()


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    return input.gelu(approximate=approximate)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    return input.silu()


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return input.leaky_relu(negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return input.elu(alpha)


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def softmax(input: Tensor, dim: int = -1, dtype: Any = None) -> Tensor:
    return input.softmax(dim, dtype=dtype)  # the dtype passed on: under autocast a call's own dtype wins


def log_softmax(input: Tensor, dim: int = -1, dtype: Any = None) -> Tensor:
    return input.log_softmax(dim, dtype=dtype)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero elements with probability p and scale the rest by 1/(1-p) (identity when not training)."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return _dropped(input, p, training, input.shape)


def _dropped(input: Tensor, p: float, training: bool, mask_shape: Sequence[int]) -> Tensor:
    """input with a keep-mask of mask_shape (broadcast over the rest) applied and the kept values scaled by 1/(1-p)."""
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0
    keep = fgrandom.rand(tuple(mask_shape), device=input.device) >= p
    return input.where(keep, 0) * (1.0 / (1 - p))


def _feature_dropout(input: Tensor, p: float, training: bool, n: int) -> Tensor:
    """Dropout of whole channels for n spatial dims: (N, C, *spatial) or unbatched (C, *spatial) input."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if input.ndim not in (n + 1, n + 2):
        raise ShapeError(f"dropout{n}d expects {n + 1}-D or {n + 2}-D input, got shape {input.shape}")
    # one draw per (sample, channel); torch reads a 3-D input to dropout2d as (N, C, L), which
    # this rule gives too, and a 4-D input to dropout3d as one unbatched sample
    channel_dims = 1 if n == 3 and input.ndim == n + 1 else 2
    return _dropped(input, p, training, input.shape[:channel_dims] + (1,) * (input.ndim - channel_dims))


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, H, W) input with probability p, scaling the rest by 1/(1-p)."""
    return _feature_dropout(input, p, training, 2)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) input with probability p, scaling the rest."""
    return _feature_dropout(input, p, training, 3)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    return tensor.one_hot(num_classes)


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of weight picked by the integer indices in input."""
    if input.dtype.is_floating_point:
        raise DTypeError(f"embedding indices must be integers, got {input.dtype.name}")
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-D, got shape {weight.shape}")
    # rows by index_select's rules: negative indices are out of range, as in torch; the weight's
    # gradient is a fused scatter-add of the rows (ops/scatter.py)
    out = gather_rows(weight, input, "embedding")
    if padding_idx is None:
        return out
    # like torch, lookups of the padding row give its value but send it no gradient
    pad_row = (input == (padding_idx % weight.shape[0])).unsqueeze(-1)
    return out.detach().where(pad_row, out)


# ---- normalization -------------------------------------------------------------------------


@autocast_op("layer_norm")
@rounds_once
def layer_norm(input: Tensor, normalized_shape: Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[-len(shape):]) != shape:
        raise ShapeError(f"layer_norm: input shape {input.shape} does not end with normalized_shape {shape}")
    out = _standardized(input, tuple(range(-len(shape), 0)), eps)[0]
    if weight is not None:
        out = out * weight
    return out + bias if bias is not None else out


@autocast_op("rms_norm")
@rounds_once
def rms_norm(input: Tensor, normalized_shape: Sequence[int], weight: Tensor | None = None,
             eps: float | None = None) -> Tensor:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    dims = tuple(range(-len(shape), 0))
    eps = eps if eps is not None else float(dtypes_eps(input))
    out = input * ((input * input).mean(dims, keepdim=True) + eps).rsqrt()
    return out * weight if weight is not None else out


def dtypes_eps(t: Tensor) -> float:
    return {"float16": 9.765625e-04, "bfloat16": 0.0078125, "float64": 2.220446049250313e-16}.get(
        t.dtype.name, 1.1920928955078125e-07)


@autocast_op("group_norm")
@rounds_once
def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    n, c = input.shape[0], input.shape[1]
    if c % num_groups:
        raise ShapeError(f"group_norm: {c} channels are not divisible into {num_groups} groups")
    out = _standardized(input.reshape(n, num_groups, -1), (-1,), eps)[0].reshape(input.shape)
    return _channel_affine(out, weight, bias)


def _standardized(x: Tensor, dims: tuple[int, ...], eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """(x - mean) / sqrt(var + eps) over dims (biased variance), with the mean and variance, both kept."""
    mean = x.mean(dims, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(dims, keepdim=True)
    return centered * (var + eps).rsqrt(), mean, var


def _channel_affine(out: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    """out * weight + bias, both per channel (dim 1)."""
    shape = (1, out.shape[1]) + (1,) * (out.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(shape)
    return out + bias.reshape(shape) if bias is not None else out


@autocast_op("instance_norm")
@rounds_once
def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each (sample, channel) over its spatial dims. Running statistics, when given, move toward
    the batch's average of the per-instance mean and unbiased variance; without use_input_stats they
    normalize instead, as batch_norm in eval mode."""
    if input.ndim < 3:
        raise ShapeError(f"instance_norm expects (N, C, ...) input with at least one spatial dim, got shape "
                         f"{input.shape}")
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    count = input.numel() // max(input.shape[0] * input.shape[1], 1)
    if count <= 1:
        raise ShapeError(f"expected more than 1 spatial element when training, got input of shape {input.shape}")
    out, mean, var = _standardized(input, tuple(range(2, input.ndim)), eps)
    if running_mean is not None and running_var is not None:
        with no_grad():
            running_mean.mul_(1 - momentum).add_(mean.detach().mean(0).reshape(-1) * momentum)
            running_var.mul_(1 - momentum).add_(var.detach().mean(0).reshape(-1) * (momentum * count / (count - 1)))
    return _channel_affine(out, weight, bias)


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:
    """input / (k + alpha / size * (sum of squares over `size` neighbouring channels)) ** beta, the window
    zero-padded by size // 2 channels before and (size - 1) // 2 after, like torch."""
    if input.ndim < 3:
        raise ShapeError(f"Expected 3D or higher dimensionality input (got {input.ndim} dimensions)")
    if size < 1:
        raise ValueError(f"local_response_norm: size must be positive, got {size}")
    channels = input.shape[1]
    squares = (input * input).pad((0, 0) * (input.ndim - 2) + (size // 2, (size - 1) // 2))
    window = squares[:, :channels]
    for i in range(1, size):
        window = window + squares[:, i:i + channels]
    return input / (window * (alpha / size) + k) ** beta


def _batch_stat(x: Tensor) -> Tensor:
    """The mean over every dim but 1, kept: over the spatial dims per sample first, then over the batch."""
    spatial = tuple(range(2, x.ndim))
    return (x.mean(spatial, keepdim=True) if spatial else x).mean(0, keepdim=True)


@autocast_op("batch_norm")
@rounds_once  # as torch's kernel: half inputs normalized in float32 (running statistics too), rounded once
def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize over every dim but 1; in training update running stats (unbiased variance) in place."""
    shape = (1, input.shape[1]) + (1,) * (input.ndim - 2)
    if training:
        count = input.numel() // input.shape[1]
        if count <= 1:
            raise ShapeError(f"expected more than 1 value per channel when training, got input of shape {input.shape}")
        # mean and variance get their own buffers (the backward reads them instead of recomputing
        # each with a pass over the input). The mean's gradient takes a per-channel path: centered
        # values use the detached mean plus (mean - mean.detach()), zero in value; the variance's
        # dependence on the mean drops out exactly (centered values sum to zero). The backward then
        # makes two passes over the activations (sums of dy and of dy * centered), not five.
        # statistics per (sample, channel) first, then over the batch, and per-channel factors
        # broadcast over the batch first, so the backward's sums are staged the same way: a sum over
        # a whole channel in one go has one output per channel, which leaves a GPU nearly idle
        # (32 blocks reading a B=1024 batch's 87 MB), where N * C outputs fill it
        mean = _batch_stat(input).contiguous()
        centered = input - mean.detach()
        var = _batch_stat(centered * centered).contiguous()
        if running_mean is not None and running_var is not None:
            with no_grad():
                running_mean.mul_(1 - momentum).add_(mean.detach().reshape(-1) * momentum)
                running_var.mul_(1 - momentum).add_(var.detach().reshape(-1) * (momentum * count / (count - 1)))
        scale = (var + eps).rsqrt()
        if weight is not None:
            scale = scale * weight.reshape(shape)
        # one per-channel shift, broadcast once: the backward sums the output gradient over the
        # batch once and hands that sum to the bias and (times scale) to the mean, where adding
        # each to the activations made two identical passes over them
        shift = (mean.detach() - mean) * scale
        if bias is not None:
            shift = shift + bias.reshape(shape)
        return centered * _expand_over_batch(scale, input.shape[0]) + _expand_over_batch(shift, input.shape[0])
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm in eval mode needs running_mean and running_var")
    out = (input - running_mean.reshape(shape)) * (running_var.reshape(shape) + eps).rsqrt()
    return _channel_affine(out, weight, bias)


# ---- losses --------------------------------------------------------------------------------


def _class_mask(target: Tensor, num_classes: int, like: Tensor, ignore_index: int) -> Tensor:
    """(N, C, ...) bool: target[n, ...] == c, and False everywhere for targets equal to ignore_index."""
    shape = [1] * like.ndim
    shape[1] = num_classes
    hit = target.unsqueeze(1) == arange(num_classes, device=target.device).reshape(shape)
    if 0 <= ignore_index < num_classes:  # an in-range ignore_index would otherwise still select its class
        hit = hit & (target != ignore_index).unsqueeze(1)
    return hit


def _check_targets(target: Tensor, num_classes: int, ignore_index: int) -> tuple[Tensor, bool]:
    """The targets, checked to be class indices (or ignore_index), and True when their values were
    read and every one is a class (so none is ignored). Targets already in host memory are checked
    there, raising at the call; any other (lazy, on a GPU, inside fg.jit) by the kernel that reads
    them, raising at the next synchronization, so a bad label never silently drops out of the loss."""
    if target.dtype.is_floating_point or target.dtype is dtypes.bool_:
        raise DTypeError(f"class-index targets must be integers, got {target.dtype.name}")
    if not target.numel():
        return target, False
    if target._is_host_value():
        values = target.numpy()
        if values.min() >= 0 and values.max() < num_classes:  # the usual batch: nothing to search
            return target, not 0 <= ignore_index < num_classes
        bad = values[(values != ignore_index) & ((values < 0) | (values >= num_classes))]
        if bad.size:
            raise IndexError(f"target {int(bad[0])} is out of bounds for {num_classes} classes")
        return target, False
    ok = ((target >= 0) & (target < num_classes)) | (target == ignore_index)
    return target._device_check(ok, f"target {{value}} is out of bounds for {num_classes} classes "
                                    "(at position {position} of the targets)"), False


def _check_index_target(name: str, input: Tensor, target: Tensor) -> None:
    """Class indices for an (N, C, d1, ...) input have shape (N, d1, ...)."""
    if target.shape != (input.shape[0],) + input.shape[2:]:
        raise ShapeError(f"{name}: target shape {target.shape} does not match input shape {input.shape}")


@autocast_op("nll_loss")
def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class indices given log-probabilities (N, C, ...)."""
    if input.ndim < 1:
        raise ShapeError(f"nll_loss: input must have at least one dimension, got shape {input.shape}")
    if input.ndim >= 2:
        _check_index_target("nll_loss", input, target)
    if input.ndim == 1:
        loss = nll_loss(input.unsqueeze(0), target.reshape(1), weight, ignore_index, reduction)
        return loss.reshape(()) if reduction == "none" else loss
    c = input.shape[1]
    target, all_counted = _check_targets(target, c, ignore_index)
    hit = _class_mask(target, c, input, ignore_index)
    w = weight.reshape([1, c] + [1] * (input.ndim - 2)) if weight is not None else None
    picked = input.where(hit, 0) if w is None else (input * w).where(hit, 0)
    loss = -picked.sum(1)
    if reduction != "mean":
        return _reduce(loss, reduction)
    if w is None and all_counted:  # the mean's count is known: no count kernel, the same value
        return loss.sum() / loss.numel()
    counted = hit.sum() if w is None else w.expand(hit.shape).where(hit, 0).sum()
    return loss.sum() / counted.to(loss.dtype)


def _index_cross_entropy(input: Tensor, target: Tensor, ignore_index: int, reduction: str) -> Tensor:
    """logsumexp(x) - x[target] per sample. Its gradient, softmax(x) - onehot, is one elementwise
    kernel; through log_softmax + nll the backward first summed each row's gradient, and the MLP
    training step ran 3 kernels more."""
    _check_index_target("cross_entropy", input, target)
    target, all_counted = _check_targets(target, input.shape[1], ignore_index)
    hit = _class_mask(target, input.shape[1], input, ignore_index)
    counted = target != ignore_index
    # masked whether or not the targets were read (a capture cannot read them), so eager and jitted
    # steps run the same kernels and round alike
    loss = (input.logsumexp(1) - input.where(hit, 0).sum(1)).where(counted, 0)
    if reduction != "mean":
        return _reduce(loss, reduction)
    if all_counted:
        return loss.sum() / loss.numel()
    return loss.sum() / counted.sum().to(loss.dtype)


@autocast_op("cross_entropy")
def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """log_softmax + nll for class indices, or soft cross entropy for class probabilities (like torch)."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    class_dim = 1 if input.ndim >= 2 else 0
    if input.ndim >= 2 and not target.dtype.is_floating_point and weight is None and not label_smoothing:
        return _index_cross_entropy(input, target, ignore_index, reduction)
    logp = input.log_softmax(class_dim)
    c = input.shape[class_dim]
    wshape = [1] * input.ndim
    wshape[class_dim] = c
    w = weight.reshape(wshape) if weight is not None else None
    if target.dtype.is_floating_point:  # class probabilities
        if target.shape != input.shape:
            raise ShapeError(f"cross_entropy: probability targets of shape {target.shape} must match {input.shape}")
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / c
        terms = logp * target if w is None else logp * target * w
        loss = -terms.sum(class_dim)
        if reduction == "mean":
            return loss.sum() / (input.numel() // c)
        return _reduce(loss, reduction)
    if input.ndim == 1:
        loss = cross_entropy(input.unsqueeze(0), target.reshape(1), weight, ignore_index, reduction, label_smoothing)
        return loss.reshape(()) if reduction == "none" else loss
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if not label_smoothing:
        return nll
    keep = target != ignore_index
    smooth = -(logp if w is None else logp * w).sum(1).where(keep, 0) / c
    if reduction == "mean":
        if w is None:
            denom = keep.sum().to(logp.dtype)
        else:
            hit = _class_mask(target, c, input, ignore_index)
            denom = w.expand(hit.shape).where(hit, 0).sum()
        smooth_loss = smooth.sum() / denom
    else:
        smooth_loss = _reduce(smooth, reduction)
    return nll * (1 - label_smoothing) + smooth_loss * label_smoothing


@autocast_op("mse_loss")
def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    diff = input - target
    return _reduce(diff * diff, reduction)


@autocast_op("l1_loss")
def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    return _reduce((input - target).abs(), reduction)


@autocast_op("smooth_l1_loss")
def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    diff = (input - target).abs()
    if beta == 0:
        return _reduce(diff, reduction)
    return _reduce(where(diff < beta, diff * diff * (0.5 / beta), diff - 0.5 * beta), reduction)


@autocast_op("huber_loss")
def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    diff = (input - target).abs()
    return _reduce(where(diff < delta, diff * diff * 0.5, (diff - 0.5 * delta) * delta), reduction)


@autocast_op("binary_cross_entropy")
def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """-(y log p + (1-y) log(1-p)), logs clamped at -100 like torch."""
    log_p = input.log().clamp(min=-100)
    log_1mp = (1 - input).log().clamp(min=-100)
    loss = -(target * log_p + (1 - target) * log_1mp)
    return _reduce(loss * weight if weight is not None else loss, reduction)


@autocast_op("binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """Stable for any logit: only exp(-|x|) is ever computed."""
    pos = input >= 0
    # -|x| spelled with where so the derivative at x = 0 is exact (abs has derivative 0 there)
    lp = input.where(pos.logical_not(), -input).exp().log1p()
    log_sig_neg = (-lp).where(pos, input - lp)  # log(sigmoid(x))
    log_sig_pos = log_sig_neg - input  # log(1 - sigmoid(x))
    if pos_weight is not None:
        loss = -(pos_weight * target * log_sig_neg + (1 - target) * log_sig_pos)
    else:
        loss = -(target * log_sig_neg + (1 - target) * log_sig_pos)
    return _reduce(loss * weight if weight is not None else loss, reduction)


@autocast_op("kl_div")
def kl_div(input: Tensor, target: Tensor, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL(target || exp(input)) with input given as log-probabilities."""
    if log_target:
        loss = target.exp() * (target - input)
    else:
        loss = where(target > 0, target * (target.where(target > 0, 1).log() - input), 0 * input)
    if reduction == "batchmean":
        return loss.sum() / input.shape[0]
    return _reduce(loss, reduction)

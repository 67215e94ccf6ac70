"""Losses of nn.functional beyond the classification basics: margin, embedding, Poisson, Gaussian and
CTC losses, composed from tensor ops (CTC as a log-space recursion over time steps)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import ShapeError
from ..ops.autocast import autocast_op
from ..tensor import Tensor, tensor, where
from ..creation import arange
from .conv import _gradient_buffer
from .functional_act import logsigmoid
from .functional_dist import pairwise_distance

# stands in for log(0) in the CTC recursion: finite, so sums of impossible paths keep a gradient of 0, not NaN
_LOG_ZERO = -1e30


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    """A loss's `reduction=` (torch's names), for every loss in nn.functional."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction!r} is not a valid value for reduction ('none', 'mean' or 'sum')")


@autocast_op("margin_ranking_loss")
def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                        reduction: str = "mean") -> Tensor:
    """max(0, -target * (input1 - input2) + margin)."""
    if input1.ndim != input2.ndim or input1.ndim != target.ndim:
        raise ShapeError(f"margin_ranking_loss: all input tensors should have the same number of dimensions, got "
                         f"{input1.shape}, {input2.shape} and {target.shape}")
    return _reduce((-target * (input1 - input2) + margin).relu(), reduction)


@autocast_op("triplet_margin_loss")
def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, reduction: str = "mean") -> Tensor:
    """max(d(a, p) - d(a, n) + margin, 0) with pairwise p-norm distances."""
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise ShapeError(f"triplet_margin_loss: anchor {anchor.shape}, positive {positive.shape} and negative "
                         f"{negative.shape} must have the same number of dimensions")
    if margin <= 0:
        raise ValueError(f"TripletMarginLoss: expected margin to be greater than 0, got {margin} instead")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = d_neg.minimum(pairwise_distance(positive, negative, p, eps))
    return _reduce((d_pos - d_neg + margin).clamp(min=0), reduction)


@autocast_op("cosine_embedding_loss")
def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                          reduction: str = "mean") -> Tensor:
    """1 - cos(x1, x2) for target 1, max(0, cos(x1, x2) - margin) for target -1."""
    if input1.shape != input2.shape:
        raise ShapeError(f"cosine_embedding_loss: input1 {input1.shape} and input2 {input2.shape} must match")
    if input1.ndim not in (1, 2) or target.ndim != input1.ndim - 1:
        raise ShapeError(f"cosine_embedding_loss: expected (N, D) inputs with (N,) target or (D,) with (), got "
                         f"{input1.shape} and {target.shape}")
    eps = 1e-12  # torch's: added to each squared magnitude
    dim = input1.ndim - 1
    prod = (input1 * input2).sum(dim)
    mag = (((input1 * input1).sum(dim) + eps) * ((input2 * input2).sum(dim) + eps)).sqrt()
    cos = prod / mag
    zero = cos * 0
    loss = where(target == 1, 1 - cos, zero) + where(target == -1, (cos - margin).clamp(min=0), zero)
    return _reduce(loss, reduction)


@autocast_op("hinge_embedding_loss")
def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    """x where target is 1, max(0, margin - x) where target is -1."""
    zero = input * 0
    loss = where(target != 1, (margin - input).clamp(min=0), zero) + where(target != -1, input, zero)
    return _reduce(loss, reduction)


@autocast_op("soft_margin_loss")
def soft_margin_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """log(1 + exp(-target * input))."""
    return _reduce((-target * input).softplus(1.0, math.inf), reduction)


@autocast_op("poisson_nll_loss")
def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False,
                     size_average: Any = None, eps: float = 1e-8, reduce: Any = None,
                     reduction: str = "mean") -> Tensor:
    """exp(input) - target * input (log_input), else input - target * log(input + eps); full adds Stirling's term."""
    if log_input:
        loss = input.exp() - target * input
    else:
        loss = input - target * (input + eps).log()
    if full:
        safe = where(target > 1, target, 1.0)
        stirling = safe * safe.log() - safe + 0.5 * (safe * (2 * math.pi)).log()
        loss = loss + where(target > 1, stirling, 0.0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input: Tensor, target: Tensor, var: Tensor | float, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean") -> Tensor:
    """0.5 * (log(var) + (input - target)^2 / var), var clamped at eps (the clamp passes gradients, like torch)."""
    if not isinstance(var, Tensor):
        var = input._const(float(var), shape=())
        if float(var.item()) < 0:
            raise ValueError("var has negative entry/entries")
        var = var.expand(input.shape)
    if var.shape != input.shape:
        if input.shape[:-1] == var.shape:
            var = var.unsqueeze(-1)
        elif not (input.shape[:-1] == var.shape[:-1] and var.shape[-1] == 1):
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    # torch clamps a clone under no_grad: the value is clamped, the gradient flows as if it were not
    var = var + (var.clamp(min=eps) - var).detach()
    loss = 0.5 * (var.log() + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def multilabel_soft_margin_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                size_average: Any = None, reduce: Any = None, reduction: str = "mean") -> Tensor:
    """-mean over classes of y log sigmoid(x) + (1 - y) log sigmoid(-x), per sample."""
    terms = target * logsigmoid(input) + (1 - target) * logsigmoid(-input)
    if weight is not None:
        terms = terms * weight
    return _reduce(-terms.mean(-1), reduction)


@autocast_op("multi_margin_loss")
def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0, weight: Tensor | None = None,
                      size_average: Any = None, reduce: Any = None, reduction: str = "mean") -> Tensor:
    """sum over classes i != y of max(0, margin - x[y] + x[i])^p (times weight[y]), divided by C."""
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    x = input.unsqueeze(0) if input.ndim == 1 else input
    y = target.reshape(-1)
    if x.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ShapeError(f"multi_margin_loss: expected input (N, C) with target (N,), got {input.shape} and "
                         f"{target.shape}")
    classes = x.shape[1]
    hit = y.unsqueeze(1) == arange(classes, device=x.device).reshape(1, classes)
    picked = x.where(hit, 0.0).sum(1, keepdim=True)
    gap = (x - picked + margin).clamp(min=0)
    gap = gap * gap if p == 2 else gap
    if weight is not None:
        gap = gap * weight[y.long()].unsqueeze(1)
    loss = where(hit, 0.0, gap).sum(1) / classes  # the target class itself does not count
    return _reduce(loss.reshape(()) if input.ndim == 1 else loss, reduction)


# ---- CTC -----------------------------------------------------------------------------------


def _host_ints(values: Tensor | Sequence[int] | int) -> np.ndarray:
    """Lengths as host integers (they decide shapes: the padded target layout and its gather indices)."""
    if isinstance(values, Tensor):
        return values.numpy().astype(np.int64).reshape(-1)
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _logsumexp3(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """log(e^a + e^b + e^c); the shift is detached (it cancels, and the gradient stays the softmax)."""
    m = a.maximum(b).maximum(c).detach()
    return m + ((a - m).exp() + (b - m).exp() + (c - m).exp()).log()


def _logaddexp(a: Tensor, b: Tensor) -> Tensor:
    """log(e^a + e^b), shifted like _logsumexp3."""
    m = a.maximum(b).detach()
    return m + ((a - m).exp() + (b - m).exp()).log()


def _shift(alpha: Tensor, k: int) -> Tensor:
    """alpha moved k places right along the last dim, log(0) filling in."""
    return alpha.pad((k, 0), value=_LOG_ZERO)[..., :alpha.shape[-1]]


def _padded_targets(targets: Tensor, target_lengths: np.ndarray, batch: int) -> Tensor:
    """(N, S) targets: 2-D ones as given, 1-D concatenated ones gathered into rows (indices from host lengths)."""
    if targets.ndim == 2:
        if targets.shape[0] != batch:
            raise ShapeError(f"ctc_loss: targets {targets.shape} do not match the batch size {batch}")
        return targets
    longest = max(int(target_lengths.max()), 1) if target_lengths.size else 1
    if int(target_lengths.sum()) > targets.shape[0]:
        raise ShapeError(f"ctc_loss: target_lengths sum to {int(target_lengths.sum())}, more than the "
                         f"{targets.shape[0]} concatenated targets")
    starts = np.concatenate([[0], np.cumsum(target_lengths)[:-1]])
    index = np.minimum(starts[:, None] + np.arange(longest)[None, :], max(targets.shape[0] - 1, 0))
    return targets[tensor(index, device=targets.device)]


@autocast_op("ctc_loss")
def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths: Tensor | Sequence[int],
             target_lengths: Tensor | Sequence[int], blank: int = 0, reduction: str = "mean",
             zero_infinity: bool = False) -> Tensor:
    """Connectionist temporal classification loss of log_probs (T, N, C) (or (T, C)) against targets
    (N, S) padded or 1-D concatenated. The forward variables are a log-space recursion over time;
    lengths are read on the host (they decide the layout of concatenated targets)."""
    unbatched = log_probs.ndim == 2
    if unbatched:
        log_probs = log_probs.unsqueeze(1)
        targets = targets.unsqueeze(0) if targets.ndim == 1 else targets
    if log_probs.ndim != 3:
        raise ShapeError(f"ctc_loss: log_probs must be (T, N, C) or (T, C), got {log_probs.shape}")
    steps, batch, classes = log_probs.shape
    in_lens, tgt_lens = _host_ints(input_lengths), _host_ints(target_lengths)
    if in_lens.size != batch or tgt_lens.size != batch:
        raise ShapeError(f"ctc_loss: expected {batch} input and target lengths, got {in_lens.size} and {tgt_lens.size}")
    if (in_lens > steps).any() or (in_lens < 0).any():
        raise ShapeError(f"ctc_loss: input_lengths must be in [0, {steps}], got {in_lens.tolist()}")
    if not 0 <= blank < classes:
        raise ValueError(f"blank must be in label range [0, {classes})")
    labels = _padded_targets(targets, tgt_lens, batch)
    if labels.shape[1] < int(tgt_lens.max(initial=0)):
        raise ShapeError(f"ctc_loss: targets {labels.shape} are shorter than target_lengths {tgt_lens.tolist()}")
    if labels.shape[1] == 0:  # no labels at all: the only path is all blanks
        labels = labels.pad((0, 1), value=blank)
    s_len = labels.shape[1]
    ext_len = 2 * s_len + 1
    dev = log_probs.device
    # extended labels: blank, l1, blank, l2, ..., blank
    pos = arange(ext_len, device=dev).reshape(1, ext_len)
    label_at = labels.long()[:, tensor(np.minimum(np.arange(ext_len) // 2, s_len - 1), device=dev)]
    ext = where(pos % 2 == 1, label_at, blank)  # (N, 2S+1)
    # a path may skip the blank between two different labels
    ext_prev2 = ext.pad((2, 0), value=blank)[:, :ext_len]
    can_skip = (pos >= 2) & (ext != blank) & (ext != ext_prev2)
    emit = log_probs.gather(2, ext.unsqueeze(0).expand(steps, batch, ext_len))  # (T, N, 2S+1)
    alpha = where(pos < 2, emit[0], _LOG_ZERO)
    lens = tensor(in_lens, device=dev).reshape(batch, 1)
    for t in range(1, steps):
        skip = where(can_skip, _shift(alpha, 2), _LOG_ZERO)
        new = _logsumexp3(alpha, _shift(alpha, 1), skip) + emit[t]
        # sequences that ended keep their last forward variables. Each step gets its own buffer, and so
        # does its gradient: fused, the recursion's gradient reads each step's three times, an expression
        # that grows as 3^T (T = 7 took a minute of gcc)
        alpha = _gradient_buffer(where(lens > t, new, alpha))
    ends = tensor(2 * tgt_lens, device=dev).reshape(batch, 1)
    # a path ends on the last label or on the blank after it
    last = where(pos == ends, alpha, 0.0).sum(-1)
    before = where(pos == ends - 1, alpha, 0.0).sum(-1)
    has_labels = ends.reshape(batch) > 0
    loss = -_logaddexp(last, where(has_labels, before, _LOG_ZERO))
    # an empty input aligns only with an empty target (the recursion above started at step 0 regardless)
    empty = lens.reshape(batch) == 0
    loss = where(empty, where(has_labels, -_LOG_ZERO, 0.0), loss)
    loss = where(loss > -_LOG_ZERO / 2, 0.0 if zero_infinity else math.inf, loss)
    if unbatched:
        loss = loss.reshape(())
    if reduction == "mean":
        return (loss / tensor(np.maximum(tgt_lens, 1), device=dev).to(loss.dtype).reshape(loss.shape)).mean()
    return _reduce(loss, reduction)

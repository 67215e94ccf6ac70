"""F.scaled_dot_product_attention with PyTorch's signature and checks.

softmax(q @ k^T * scale + mask) @ v over the last two dims, any leading (batch, head) dims
broadcast. Without a mask (or with is_causal) and without dropout, in float32 or float64, it is
the fused attention kernel (ops/attention.py: one kernel per direction, no T x T scores stored; on
the CPU from 256 x 256 scores on, `prefers_fused`).
Otherwise it is composed from primitives, as (exp(s - max) @ v) / sum(exp(s - max)) so that the
softmax's division applies to the T x E result instead of the T x T weights; the scheduler fuses
the masked, scaled scores into the kernels that read them (see docs/architecture.md).
"""
from __future__ import annotations

import math

from .. import dtypes
from ..creation import arange
from ..errors import DTypeError, ShapeError
from ..ops.autocast import autocast_op
from ..ops.extra import broadcast_shapes
from ..ops.attention import fused_attention, prefers_fused
from ..tensor import Tensor

FUSED_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _check(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None, is_causal: bool,
           enable_gqa: bool) -> None:
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.ndim < 2:
            raise ShapeError(f"scaled_dot_product_attention: {name} must have at least 2 dims, got shape {t.shape}")
        if not t.dtype.is_floating_point:
            raise DTypeError(f"scaled_dot_product_attention: {name} must be floating point, got {t.dtype.name}")
    if query.dtype != key.dtype or query.dtype != value.dtype:
        raise DTypeError(f"scaled_dot_product_attention: query, key and value must have one dtype, got "
                         f"{query.dtype.name}, {key.dtype.name} and {value.dtype.name}")
    if query.shape[-1] != key.shape[-1]:
        raise ShapeError(f"scaled_dot_product_attention: query and key must have one embedding size, got "
                         f"{query.shape[-1]} and {key.shape[-1]}")
    if key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: key and value must have one sequence length, got "
                         f"{key.shape[-2]} and {value.shape[-2]}")
    if attn_mask is not None and is_causal:
        raise ShapeError("scaled_dot_product_attention: an explicit attn_mask must not be given with is_causal=True")
    if enable_gqa and query.ndim >= 3:
        heads, kv_heads = query.shape[-3], key.shape[-3]
        if key.shape[-3] != value.shape[-3] or kv_heads == 0 or heads % kv_heads:
            raise ShapeError(f"scaled_dot_product_attention: the {kv_heads} heads of key and {value.shape[-3]} of "
                             f"value must be equal and divide the query's {heads}")


def _repeat_heads(t: Tensor, groups: int) -> Tensor:
    """(..., Hkv, S, E) -> (..., Hkv * groups, S, E), each head repeated `groups` times in a row (a view)."""
    *lead, h, s, e = t.shape
    return t.unsqueeze(-3).expand(*lead, h, groups, s, e).reshape(*lead, h * groups, s, e)


@autocast_op("scaled_dot_product_attention")
def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(q @ k^T * scale + mask) @ v; a bool mask keeps positions where it is True; is_causal
    keeps key j for query i where j <= i (top-left aligned, as PyTorch); with enable_gqa, key and
    value may have fewer heads than query, each serving a group of query heads."""
    from .functional import dropout
    _check(query, key, value, attn_mask, is_causal, enable_gqa)
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        groups = query.shape[-3] // key.shape[-3]
        key, value = _repeat_heads(key, groups), _repeat_heads(value, groups)
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    if attn_mask is None and dropout_p == 0 and query.dtype.name in FUSED_DTYPES and \
            query.numel() and key.numel() and value.numel():
        batch = broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
        if prefers_fused(str(query.device), query.shape[-2], key.shape[-2]):
            q, k, v = (t.expand(*batch, *t.shape[-2:]) for t in (query, key, value))
            return fused_attention(q, k, v, scale, is_causal)
    return _composite(query, key, value, attn_mask, dropout_p, is_causal, scale)


def _composite(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None, dropout_p: float,
               is_causal: bool, scale: float) -> Tensor:
    from .functional import dropout
    scores = (query @ key.transpose(-2, -1)) * scale
    if is_causal:
        lq, lk = query.shape[-2], key.shape[-2]
        causal = arange(lq, device=query.device).reshape(lq, 1) >= arange(lk, device=query.device).reshape(1, lk)
        scores = scores.where(causal, float("-inf"))
    if attn_mask is not None:
        scores = scores.where(attn_mask, float("-inf")) if attn_mask.dtype is dtypes.bool_ else scores + attn_mask
    # softmax(s) @ v == (exp(s - max) @ v) / sum(exp(s - max)): the division moves from the T x T
    # weights to the T x E result, and the normalized weights are never stored (dropout of the
    # weights is dropout of the exponentials, the sum being of the undropped ones)
    e = (scores - scores.detach().amax(-1, keepdim=True)).exp()
    total = e.sum(-1, keepdim=True)
    if dropout_p > 0:
        e = dropout(e, dropout_p)
    return (e @ value) / total

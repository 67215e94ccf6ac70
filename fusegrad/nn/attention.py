"""MultiheadAttention and TransformerEncoderLayer with PyTorch's parameter layout and names."""
from __future__ import annotations

import math
from typing import Any, Callable

from .. import dtypes
from ..errors import ShapeError
from ..tensor import Tensor
from ..creation import arange, empty
from . import functional as F
from . import init
from .linear import Dropout, Linear
from .module import Module
from .norm import LayerNorm
from .parameter import Parameter


def _additive(scores: Tensor, mask: Tensor) -> Tensor:
    """Apply a torch-style mask: bool True means 'may not attend', a float mask is added."""
    if mask.dtype is dtypes.bool_:
        return scores.where(mask.logical_not(), float("-inf"))
    return scores + mask.to(scores.dtype)


class MultiheadAttention(Module):
    """Multi-head attention (Vaswani et al.) laid out like torch.nn.MultiheadAttention."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, kdim: int | None = None, vdim: int | None = None,
                 device: Any = None, dtype: Any = None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be positive and divisible by num_heads ({num_heads})")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, device=device, dtype=dtype))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, device=device, dtype=dtype))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, device=device, dtype=dtype))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, device=device, dtype=dtype))
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, device=device, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _projections(self) -> tuple[tuple[Tensor, Tensor, Tensor], tuple[Tensor | None, ...]]:
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            weights = self.in_proj_weight.split(e, 0)
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        biases = self.in_proj_bias.split(e, 0) if self.in_proj_bias is not None else (None, None, None)
        return weights, biases  # type: ignore[return-value]

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        """(attention output, attention weights or None); masks follow torch (bool True = masked out)."""
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if query.ndim != 3 or key.ndim != 3 or value.ndim != 3:
            raise ShapeError(f"MultiheadAttention expects 2-D or 3-D query/key/value, got {query.shape}, "
                             f"{key.shape}, {value.shape}")
        # from here on: (L, N, E) sequence-first like torch's reference implementation
        tgt_len, bsz, _ = query.shape
        src_len = key.shape[0]
        if query.shape[2] != self.embed_dim or key.shape[:2] != value.shape[:2] or key.shape[1] != bsz:
            raise ShapeError(f"MultiheadAttention(embed_dim={self.embed_dim}): query {query.shape}, key {key.shape} "
                             f"and value {value.shape} do not fit together")
        (wq, wk, wv), (bq, bk, bv) = self._projections()
        h, hd = self.num_heads, self.head_dim

        def heads(x: Tensor, w: Tensor, b: Tensor | None, length: int) -> Tensor:
            return F.linear(x, w, b).reshape(length, bsz, h, hd).permute(1, 2, 0, 3)  # (N, H, L, hd)

        q = heads(query, wq, bq, tgt_len)
        k = heads(key, wk, bk, src_len)
        v = heads(value, wv, bv, src_len)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))  # (N, H, L, S)
        if attn_mask is None and is_causal:  # True above the diagonal: a query may not see later keys
            rows = arange(tgt_len, device=query.device).reshape(tgt_len, 1)
            attn_mask = arange(src_len, device=query.device).reshape(1, src_len) > rows
        if attn_mask is not None:
            scores = _additive(scores, self._attn_mask_4d(attn_mask, bsz, tgt_len, src_len))
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (bsz, src_len):
                raise ShapeError(f"key_padding_mask must have shape {(bsz, src_len)}, got {key_padding_mask.shape}")
            scores = _additive(scores, key_padding_mask.reshape(bsz, 1, 1, src_len))
        weights = scores.softmax(-1)
        if self.training and self.dropout > 0:
            weights = F.dropout(weights, self.dropout)
        out = (weights @ v).permute(2, 0, 1, 3).reshape(tgt_len, bsz, self.embed_dim)
        out = self.out_proj(out)
        if unbatched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)
        return out, (weights.squeeze(0) if unbatched else weights)

    def _attn_mask_4d(self, mask: Tensor, bsz: int, tgt_len: int, src_len: int) -> Tensor:
        if mask.ndim == 2 and tuple(mask.shape) == (tgt_len, src_len):
            return mask
        if mask.ndim == 3 and tuple(mask.shape) == (bsz * self.num_heads, tgt_len, src_len):
            return mask.reshape(bsz, self.num_heads, tgt_len, src_len)
        raise ShapeError(f"attn_mask must have shape {(tgt_len, src_len)} or "
                         f"{(bsz * self.num_heads, tgt_len, src_len)}, got {mask.shape}")


def _activation(activation: str | Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    if callable(activation):
        return activation
    raise ValueError(f"activation should be relu/gelu, not {activation}")


class TransformerEncoderLayer(Module):
    """Self-attention + feed-forward block, post-norm (default) or pre-norm, with torch's submodule names."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable[[Tensor], Tensor] = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True, device: Any = None,
                 dtype: Any = None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        # a Module activation registers as a submodule (like torch); strings map to functions
        self.activation = activation if isinstance(activation, Module) else _activation(activation)

    def forward(self, src: Tensor, src_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                is_causal: bool = False) -> Tensor:
        """One encoder block over src ((S, N, E), or (N, S, E) when batch_first)."""
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x: Tensor, attn_mask: Tensor | None, key_padding_mask: Tensor | None,
                  is_causal: bool) -> Tensor:
        out, _ = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                need_weights=False, is_causal=is_causal)
        return self.dropout1(out)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

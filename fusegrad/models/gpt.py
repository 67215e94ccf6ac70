"""A GPT language model (decoder-only transformer), written with `fusegrad.nn` as a PyTorch user would.

Token and position embeddings, `n_layer` pre-LayerNorm blocks of causal self-attention
(`F.scaled_dot_product_attention`) and a GELU MLP, a final LayerNorm and a head tied to the token
embedding. Weights start as GPT-2's: normal(0, 0.02), the residual projections scaled by
1/sqrt(2 * n_layer), biases zero.

`generate` samples with a key/value cache of fixed size (`block_size` positions per layer): a step
writes its token's keys and values at its position and attends to the positions up to it through a
mask, so every step has the same shapes and `fg.jit` replays one recorded step however long the text
grows. Past `block_size` tokens the context is cropped to the last `block_size`, as without a cache,
and each step runs the whole cropped window.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import nn
from ..autograd import no_grad
from ..creation import arange, zeros
from ..jit import jit
from ..nn import functional as F
from ..tensor import Tensor, cat, tensor

CONFIGS = {  # the example's named sizes
    "tiny": dict(n_layer=4, n_head=4, n_embd=128, block_size=128),
    "baby": dict(n_layer=6, n_head=6, n_embd=384, block_size=256),  # nanoGPT's Shakespeare-char model
}


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True  # biases in the Linear and LayerNorm layers
    tie_weights: bool = True  # the head shares the token embedding's matrix

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def named(cls, name: str, **overrides: Any) -> "GPTConfig":
        """One of CONFIGS ("tiny", "baby"), with fields overridden."""
        if name not in CONFIGS:
            raise ValueError(f"unknown GPT config {name!r}; choose from {sorted(CONFIGS)}")
        return cls(**{**CONFIGS[name], **overrides})


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        return tuple(z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))  # type: ignore

    def _merge(self, y: Tensor) -> Tensor:
        b, _, t, _ = y.shape
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(b, t, self.n_embd)))

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self._heads(x)
        dropout = self.dropout if self.training else 0.0
        return self._merge(F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True))

    def cached(self, x: Tensor, at: Tensor, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One new position `at` (x is (B, 1, C)): its keys and values written into the caches
        (B, heads, block_size, head size), attending to every position up to it."""
        q, k, v = self._heads(x)
        places = arange(keys.shape[2], device=x.device)
        here = (places == at).view(1, 1, -1, 1)
        keys, values = k.expand(keys.shape).where(here, keys), v.expand(values.shape).where(here, values)
        seen = (places <= at).view(1, 1, 1, -1)
        return self._merge(F.scaled_dot_product_attention(q, keys, values, attn_mask=seen)), keys, values


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def cached(self, x: Tensor, at: Tensor, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y, keys, values = self.attn.cached(self.ln_1(x), at, keys, values)
        x = x + y
        return x + self.mlp(self.ln_2(x)), keys, values


class GPT(nn.Module):
    """`GPT(GPTConfig(...))` or `GPT.from_name("tiny", vocab_size=...)`; forward(idx, targets) -> (logits, loss)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        self._step: Any = None
        self._window_step: Any = None

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> "GPT":
        return cls(GPTConfig.named(name, **overrides))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameters counted once (the tied head is the embedding); without the position embedding."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Logits of every position and the mean cross-entropy with `targets`; without targets, the
        logits of the last position only (B, 1, vocab), as generation needs."""
        b, t = idx.shape
        if t > self.config.block_size:
            raise ValueError(f"a sequence of {t} tokens is longer than the block size {self.config.block_size}")
        tr = self.transformer
        x = tr.drop(tr.wte(idx) + tr.wpe(arange(t, device=idx.device)))
        for block in tr.h:
            x = block(x)
        x = tr.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, -1:, :]), None
        logits = self.lm_head(x)
        return logits, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))

    def configure_optimizers(self, weight_decay: float, learning_rate: float, betas: tuple[float, float] = (0.9, 0.95),
                             **kwargs: Any) -> Any:
        """AdamW with weight decay on the matrices (embeddings and linear weights) only."""
        from ..optim import AdamW
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        return AdamW(groups, lr=learning_rate, betas=betas, **kwargs)

    def _cached_step(self, token: Tensor, at: Tensor, caches: list[Tensor], temperature: float, top_k: int | None,
                     sample: bool) -> tuple[Tensor, list[Tensor], Tensor]:
        """After `token` (B, 1) at position `at` (1,): the caches updated, the next token sampled (or, for
        a prompt's tokens, the logits: a prompt draws no random numbers, as without a cache), and the
        next position."""
        tr = self.transformer
        x = tr.wte(token) + tr.wpe(at)
        new: list[Tensor] = []
        for i, block in enumerate(tr.h):
            x, keys, values = block.cached(x, at, caches[2 * i], caches[2 * i + 1])
            new += [keys, values]
        logits = self.lm_head(tr.ln_f(x))[:, -1, :]
        return (_sample(logits, temperature, top_k) if sample else logits), new, at + 1

    def _sliding_step(self, window: Tensor, temperature: float, top_k: int | None) -> tuple[Tensor, Tensor]:
        """The token after a full window (B, block_size), and the window moved on by it."""
        logits, _ = self(window)
        nxt = _sample(logits[:, -1, :], temperature, top_k)
        return nxt, cat([window[:, 1:], nxt], 1)

    @no_grad()
    def generate(self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 use_cache: bool = True) -> Tensor:
        """`idx` (B, T) followed by `max_new_tokens` sampled tokens. temperature 0 picks the most likely token."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and not 1 <= top_k <= self.config.vocab_size:
            raise ValueError(f"top_k must be in [1, {self.config.vocab_size}], got {top_k}")
        cfg = self.config
        b, t = idx.shape
        if t < 1:
            raise ValueError("generate needs at least one prompt token")
        out = [idx[:, i:i + 1] for i in range(t)]
        if use_cache and t < cfg.block_size:
            if self._step is None:
                # errors of the prompt's tokens raise when the text is read: the steps queue up on a GPU
                self._step = jit(self._cached_step, check_errors="at_sync")
            head = cfg.n_embd // cfg.n_head
            caches = [zeros(b, cfg.n_head, cfg.block_size, head, device=idx.device) for _ in range(2 * cfg.n_layer)]
            # the position stays on the device, advanced by the step: no upload per token, and on a GPU
            # the replays' pointers repeat, so their graphs are launched again, not captured anew
            at = tensor([0], device=idx.device)
            for pos in range(min(t + max_new_tokens, cfg.block_size) - 1):
                nxt, caches, at = self._step(out[pos], at, caches, temperature, top_k, pos + 1 >= t)
                if pos + 1 >= t:
                    out.append(nxt)
        if use_cache and len(out) < t + max_new_tokens:
            # past the block size the window slides, and every position's embedding with it: each token
            # is a whole window's forward, one replay of a jitted step of fixed shape
            if self._window_step is None:
                self._window_step = jit(self._sliding_step, check_errors="at_sync")
            window = _join(out[-cfg.block_size:]).realize()
            while len(out) < t + max_new_tokens:
                nxt, window = self._window_step(window, temperature, top_k)
                out.append(nxt)
        while len(out) < t + max_new_tokens:  # without a cache: the growing, then cropped, window
            window = _join(out[-cfg.block_size:])
            logits, _ = self(window)
            # realized one by one: a lazy token would hold the graph of every window before it, and
            # the last realization would build and plan all of them (seconds per token, growing)
            out.append(_sample(logits[:, -1, :], temperature, top_k).realize())
        return _join(out)


JOIN_GROUP = 16  # tokens per concatenation: one kernel for every group, compiled once


def _join(tokens: list[Tensor]) -> Tensor:
    """The (B, 1) tokens side by side, concatenated in groups of JOIN_GROUP, then groups of groups: a
    single concatenation of every token is one kernel with an input per token, whose source (and
    compile time) grows with the text (docs/benchmarks.md)."""
    while len(tokens) > JOIN_GROUP:  # each group a buffer of its own: fused, the groups were one kernel again
        tokens = [cat(tokens[i:i + JOIN_GROUP], 1).contiguous() for i in range(0, len(tokens), JOIN_GROUP)]
    return cat(tokens, 1)


def _sample(logits: Tensor, temperature: float, top_k: int | None) -> Tensor:
    """One token per row of logits (B, vocab): (B, 1) int64."""
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(top_k, -1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits.softmax(-1).multinomial(1)

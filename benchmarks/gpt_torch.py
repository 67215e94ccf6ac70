"""fusegrad's GPT (`fusegrad.models.gpt`) written again in PyTorch, for the GPT benchmark's peers.

Same parameter names, so `load_fusegrad_state` copies a fusegrad model's weights through its state_dict
(the head is tied to the token embedding, as in fusegrad's model). `generate` is nanoGPT's loop: the
whole cropped context runs through the model for every new token, no cache; `generate_cached` keeps
each layer's keys and values and runs one position per token (falling back to the cropped window past
the block size, like fusegrad's `generate`).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, c: Any):
        super().__init__()
        self.n_head, self.n_embd = c.n_head, c.n_embd
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)

    def forward(self, x: torch.Tensor, cache: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Causal attention over x (B, T, C); with `cache` ([keys, values] of the earlier positions,
        updated in place), x holds the new positions only."""
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            if cache:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[:] = [k, v]
            # one new position attends to every cached one; a prompt of several needs the causal mask
            y = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class MLP(nn.Module):
    def __init__(self, c: Any):
        super().__init__()
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.c_proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, c: Any):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = Attention(c)
        self.ln_2 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = MLP(c)

    def forward(self, x: torch.Tensor, cache: list[torch.Tensor] | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class TorchGPT(nn.Module):
    """The PyTorch twin of `fusegrad.models.GPT` for a `GPTConfig` (dropout is left out: the benchmark uses 0)."""

    def __init__(self, c: Any):
        super().__init__()
        self.config = c
        self.transformer = nn.ModuleDict(dict(wte=nn.Embedding(c.vocab_size, c.n_embd),
                                              wpe=nn.Embedding(c.block_size, c.n_embd),
                                              h=nn.ModuleList([Block(c) for _ in range(c.n_layer)]),
                                              ln_f=nn.LayerNorm(c.n_embd, bias=c.bias)))
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                caches: list[list[torch.Tensor]] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, mean cross-entropy) like fusegrad's GPT; without targets, the last position's logits."""
        tr = self.transformer
        start = caches[0][0].shape[2] if caches and caches[0] else 0
        x = tr.wte(idx) + tr.wpe(torch.arange(start, start + idx.shape[1], device=idx.device))
        for i, block in enumerate(tr.h):
            x = block(x, None if caches is None else caches[i])
        x = tr.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, -1:, :]), None
        logits = self.lm_head(x)
        return logits, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))

    def configure_optimizers(self, weight_decay: float, learning_rate: float,
                             betas: tuple[float, float]) -> torch.optim.AdamW:
        """AdamW with weight decay on the matrices only, as fusegrad's GPT.configure_optimizers."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None) -> torch.Tensor:
        """nanoGPT's sampling loop: the context cropped to the block size runs whole for every token."""
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.config.block_size:])
            idx = torch.cat([idx, _sample(logits[:, -1, :], temperature, top_k)], 1)
        return idx

    @torch.no_grad()
    def generate_cached(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                        top_k: int | None = None) -> torch.Tensor:
        """The same samples with a growing key/value cache: one position per token up to the block size."""
        caches: list[list[torch.Tensor]] = [[] for _ in self.transformer.h]
        logits, _ = self(idx[:, -self.config.block_size:], caches=caches)
        for i in range(max_new_tokens):
            if i and idx.shape[1] <= self.config.block_size:
                logits, _ = self(idx[:, -1:], caches=caches)
            elif i:
                logits, _ = self(idx[:, -self.config.block_size:])
            idx = torch.cat([idx, _sample(logits[:, -1, :], temperature, top_k)], 1)
        return idx


def _sample(logits: torch.Tensor, temperature: float, top_k: int | None) -> torch.Tensor:
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(F.softmax(logits, dim=-1), 1)


def load_fusegrad_state(twin: TorchGPT, state: dict[str, Any]) -> TorchGPT:
    """Copy a fusegrad GPT's state_dict (numpy arrays by name) into `twin`; the tied head comes with wte."""
    missing, unexpected = twin.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    if unexpected or any(k != "lm_head.weight" for k in missing):
        raise ValueError(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
    return twin

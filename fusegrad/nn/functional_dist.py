"""Normalization by a norm, and similarities and distances between vectors, from tensor ops."""
from __future__ import annotations

from ..ops.autocast import autocast_op
from ..tensor import Tensor


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: None = None) -> Tensor:
    """input / max(||input||_p along dim, eps)."""
    return input / input.norm(p, dim, keepdim=True).clamp(min=eps)


@autocast_op("cosine_similarity")
def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """sum(x1 / max(||x1||, eps) * x2 / max(||x2||, eps)) along dim (each norm clamped alone, like torch)."""
    n1, n2 = _clamped(x1.norm(2, dim, keepdim=True), eps), _clamped(x2.norm(2, dim, keepdim=True), eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """||x1 - x2 + eps||_p over the last dim."""
    return (x1 - x2 + eps).norm(p, -1, keepdim=keepdim)


def _clamped(norm: Tensor, eps: float) -> Tensor:
    """max(norm, eps) in value, the norm's own gradient (torch clamps in place under no_grad)."""
    return norm + (norm.clamp(min=eps) - norm).detach()

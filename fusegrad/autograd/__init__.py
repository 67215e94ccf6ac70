"""Reverse-mode autodiff over the tensors' recorded primitive ops.

Every primitive has one derivative rule in `RULES`, written with tensor ops, so gradients are
lazy tensors like any other and differentiate again (higher order comes free). Composite ops
(softmax, layer_norm, ...) are built from primitives and need no rules of their own.
Traversals use explicit stacks: training graphs go deeper than Python's recursion limit.
"""
from __future__ import annotations

from typing import Any

from .engine import GradientTape, RemovableHandle, backward, grad
from .mode import (_state, enable_grad, is_grad_enabled, no_grad, recording, set_grad_enabled, should_record,
                   watching)
from .rules import READS_INPUTS, READS_OUTPUT, RULES, Ctx, Past

__all__ = ["Ctx", "GradientTape", "Past", "READS_INPUTS", "READS_OUTPUT", "RULES", "RemovableHandle", "_state",
           "backward", "enable_grad", "grad", "is_grad_enabled", "no_grad", "recording", "set_grad_enabled",
           "should_record", "watching"]


def __getattr__(name: str) -> Any:
    """`fusegrad.autograd.Function` lives in fusegrad/function.py, which builds on Tensor."""
    if name in ("Function", "FunctionCtx", "once_differentiable"):
        from .. import function
        return getattr(function, name)
    raise AttributeError(f"module 'fusegrad.autograd' has no attribute {name!r}")

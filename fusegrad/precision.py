"""The float32 product precision, process-wide as in torch: `fg.set_float32_matmul_precision("highest")`
(the default: float32 products are exact float32) or "high"/"medium" (CUDA may compute them on the
TF32 tensor cores: 10-bit mantissas, float32 sums). `fg.backends.cuda.matmul.allow_tf32` is the same
switch seen as a bool.

It sits with the foundation so that the CUDA renderer reads it when it writes a product's cuBLAS
descriptor and plans its Hopper kernel. Kernels are keyed by their source, which names the choice,
so changing it never reuses a kernel compiled under the other.
"""
from __future__ import annotations

import warnings

PRECISIONS = ("highest", "high", "medium")
_current = ["highest"]


def get_float32_matmul_precision() -> str:
    """"highest", "high" or "medium" (torch.get_float32_matmul_precision)."""
    return _current[0]


def set_float32_matmul_precision(precision: str) -> None:
    """torch.set_float32_matmul_precision: "highest" keeps float32 products exact; "high" and "medium"
    allow TF32 on CUDA (fusegrad has no bfloat16-based float32 products, so "medium" is "high"). Another
    name warns and changes nothing, as in torch."""
    if precision not in PRECISIONS:
        warnings.warn(f"{precision!r} is not one of {', '.join(map(repr, PRECISIONS))}; the float32 matmul "
                      "precision stays as it was", UserWarning, stacklevel=2)
        return
    _current[0] = precision


def allow_tf32() -> bool:
    """Whether float32 products may run on TF32 tensor cores."""
    return _current[0] != "highest"

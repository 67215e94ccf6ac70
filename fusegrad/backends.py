"""`fg.backends`: the switches of torch.backends that training scripts set, accepted so the scripts
run unchanged. They change nothing: fusegrad generates its own kernels (no cuDNN), which are
deterministic and never use TF32. The `is_available()` queries give fusegrad's answers."""
from __future__ import annotations

from types import SimpleNamespace

from . import cuda as _cuda


def _no() -> bool:
    return False


def _no_version() -> None:
    return None


# torch's defaults; assignments are kept so scripts that read them back see what they set
cudnn = SimpleNamespace(enabled=True, benchmark=False, deterministic=False, allow_tf32=True,
                        is_available=_no, version=_no_version)
cuda = SimpleNamespace(matmul=SimpleNamespace(allow_tf32=False, allow_fp16_reduced_precision_reduction=True,
                                              allow_bf16_reduced_precision_reduction=True),
                       is_built=_cuda.is_available)
mps = SimpleNamespace(is_available=_no, is_built=_no)

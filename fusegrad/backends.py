"""`fg.backends`: the switches of torch.backends that training scripts set, accepted so the scripts
run unchanged. Only `cuda.matmul.allow_tf32` acts (fusegrad/precision.py: float32 products on CUDA
may use TF32, in cuBLAS or in the Hopper kernel); the others change nothing: fusegrad generates its
own kernels (no cuDNN). The `is_available()` queries give fusegrad's answers."""
from __future__ import annotations

from types import SimpleNamespace

from . import cuda as _cuda
from . import precision


def _no() -> bool:
    return False


def _no_version() -> None:
    return None


# torch's defaults; assignments are kept so scripts that read them back see what they set
cudnn = SimpleNamespace(enabled=True, benchmark=False, deterministic=False, allow_tf32=True,
                        is_available=_no, version=_no_version)
class _Matmul:
    """torch.backends.cuda.matmul: `allow_tf32` is fg.set_float32_matmul_precision seen as a bool."""

    allow_fp16_reduced_precision_reduction = True
    allow_bf16_reduced_precision_reduction = True

    @property
    def allow_tf32(self) -> bool:
        return precision.allow_tf32()

    @allow_tf32.setter
    def allow_tf32(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise RuntimeError(f"allow_tf32 expects a bool, but got {type(value).__name__}")  # torch's error
        precision.set_float32_matmul_precision("high" if value else "highest")


cuda = SimpleNamespace(matmul=_Matmul(), is_built=_cuda.is_available)
mps = SimpleNamespace(is_available=_no, is_built=_no)

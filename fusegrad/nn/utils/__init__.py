"""nn.utils: gradient clipping, and packed sequences in nn.utils.rnn."""
from __future__ import annotations

from typing import Iterable

from ...autograd import no_grad
from ...errors import GradError
from ...tensor import Tensor, realize, tensor


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so their joint norm is at most max_norm; returns the norm before."""
    params = _grads(parameters)
    if not params:
        return tensor(0.0)
    with no_grad():
        if norm_type == float("inf"):
            norms = [p.grad.abs().amax() for p in params]
            total = norms[0]
            for n in norms[1:]:
                total = total.maximum(n)
        else:
            total = sum(((p.grad.abs() ** norm_type).sum() for p in params[1:]),
                        (params[0].grad.abs() ** norm_type).sum()) ** (1.0 / norm_type)
        if error_if_nonfinite and not bool(total.isfinite()):
            raise GradError(f"the total norm of order {norm_type} of the gradients is non-finite")
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for p in params:
            p.grad = (p.grad * scale.to(p.grad.dtype)).detach()
        realize(total, *[p.grad for p in params])
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element to [-clip_value, clip_value]."""
    params = _grads(parameters)
    with no_grad():
        for p in params:
            p.grad = p.grad.clamp(-clip_value, clip_value).detach()
        realize(*[p.grad for p in params])


from . import rnn  # noqa: E402,F401  (nn.utils.rnn, as in torch)

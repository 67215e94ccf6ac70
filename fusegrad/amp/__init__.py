"""`fg.amp`: automatic mixed precision, as torch.amp: `autocast` regions and `GradScaler`."""
from __future__ import annotations

from .autocast_mode import autocast, is_autocast_available
from .grad_scaler import GradScaler, OptState

__all__ = ["GradScaler", "OptState", "autocast", "is_autocast_available"]

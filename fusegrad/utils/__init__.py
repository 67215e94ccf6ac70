"""torch.utils's layout: `fusegrad.utils.data` is `torch.utils.data` with only the import changed."""
from . import data

__all__ = ["data"]

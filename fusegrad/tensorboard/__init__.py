"""TensorBoard logging with PyTorch's API: `fg.tensorboard.SummaryWriter(log_dir)`.

The `tensorboard` package (the optional extra `fusegrad[tensorboard]`) is imported only when a
writer is created, so `import fusegrad` works without it.
"""
from .writer import SummaryWriter

__all__ = ["SummaryWriter"]

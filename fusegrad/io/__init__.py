"""Reading and writing fusegrad objects: checkpoints in the safetensors format."""
from .checkpoint import CheckpointError, load, save

__all__ = ["CheckpointError", "load", "save"]

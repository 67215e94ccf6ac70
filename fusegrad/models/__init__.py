"""Ready-made models written with `fusegrad.nn`."""
from .gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig"]

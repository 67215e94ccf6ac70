"""Kernel -> loop IR -> source text. One renderer per language; see `renderer_for`."""
from __future__ import annotations

from .c import CRenderer
from .cuda import CUDARenderer
from .opencl import OpenCLRenderer
from .render import CStyleRenderer

_RENDERERS: dict[str, CStyleRenderer] = {"cpu": CRenderer(), "opencl": OpenCLRenderer(),
                                        "cuda": CUDARenderer()}


def renderer_for(device_kind: str) -> CStyleRenderer:
    """The renderer producing source for a device kind ("cpu", "opencl", "cuda")."""
    return _RENDERERS[device_kind]

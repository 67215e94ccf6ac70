"""Kernel -> loop IR -> source text. One renderer per language; see `renderer_for`."""
from __future__ import annotations

from .c import CRenderer
from .opencl import OpenCLRenderer
from .render import CStyleRenderer

_RENDERERS: dict[str, CStyleRenderer] = {"cpu": CRenderer(), "opencl": OpenCLRenderer()}


def renderer_for(device_kind: str) -> CStyleRenderer:
    """The renderer producing source for a device kind ("cpu", "opencl", later "cuda")."""
    return _RENDERERS[device_kind]

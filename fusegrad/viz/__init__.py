"""Graph pictures: `fg.viz.draw(tensors, path)` for the op graph behind tensors (optionally with the
gradient graph, or grouped into the kernels the scheduler makes) and `fg.viz.draw_module(model,
example_input, path)` for the layer graph of a model. The file extension picks the format: .dot is
text we write; .svg, .png and .pdf go through Graphviz's `dot` program."""
from __future__ import annotations

import gc
import os
from typing import Any, Mapping, Sequence

from ..errors import GradError
from ..nn.module import Module
from ..tensor import Tensor
from .dot import PCluster, PEdge, Picture, limit, render, to_dot
from .tensor_graph import gradients, kernel_picture, op_picture
from .trace import ModuleCall, ModuleTrace, trace_module

__all__ = ["draw", "draw_module", "render", "trace_module", "ModuleTrace", "ModuleCall"]

LINE_WIDTH = 48


def _names(params: Module | Mapping[str, Tensor] | None) -> dict[int, str]:
    """Display names by id of the tensors' lazy nodes."""
    if params is None:
        return {}
    items = params.named_parameters() if isinstance(params, Module) else params.items()
    return {id(t._node): name for name, t in items}


def _live_names() -> dict[int, str]:
    """Names of live tensors by lazy node. A node does not know its tensors, and where no history
    was recorded (nothing required grad) a named input is reachable only as a node; a scan of the
    live objects finds its name. Only drawing pays for it (about 0.1 s per million objects)."""
    found = (o for o in gc.get_objects() if issubclass(type(o), Tensor))
    # getattr: a tensor another thread is constructing may not have its slots set yet
    return {id(o._node): o.name for o in found if getattr(o, "name", None) and hasattr(o, "_node")}


def draw(tensors: Tensor | Sequence[Tensor], path: str | os.PathLike | None = None, *, backward: bool = False,
         fusion: bool = False, max_nodes: int | None = 500, depth: int | None = None,
         params: Module | Mapping[str, Tensor] | None = None) -> str:
    """Draw the graph behind `tensors` to `path` and return its DOT text.

    Nodes show the op, shape and dtype, and the tensor's name where it has one. `backward=True`
    adds the gradient graph of each tensor with respect to the leaves of its history (the
    tensors' `.grad` stay untouched); `fusion=True` groups the lazy graph into the kernels that
    realizing it would run, without running them. `max_nodes` and `depth` keep the nodes nearest
    the results; `params` (a module or a name -> tensor mapping) names tensors.
    """
    outputs = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    for t in outputs:
        if not isinstance(t, Tensor):
            raise TypeError(f"draw() takes tensors, got {type(t).__name__}")
    names = {**_live_names(), **_names(params)}
    grads = gradients(outputs, names) if backward else []
    if backward and not grads:
        raise GradError("backward=True needs a floating-point tensor with recorded history: make an input "
                        "require grad, or compute the tensors inside fg.GradientTape()")
    picture = kernel_picture(outputs, grads, names) if fusion else op_picture(outputs, grads, names)
    source = to_dot(limit(picture, max_nodes, depth))
    if path is not None:
        render(source, path)
    return source


def _wrap(text: str, width: int = LINE_WIDTH) -> list[str]:
    """Break a long "Layer(a=1, b=2, ...)" description after commas so boxes stay narrow."""
    lines = [""]
    for part in text.split(", "):
        if lines[-1] and len(lines[-1]) + len(part) + 2 > width:
            lines[-1] += ","
            lines.append(part)
        else:
            lines[-1] = f"{lines[-1]}, {part}" if lines[-1] else part
    return lines


def _shapes_text(shapes: list[tuple[tuple[int, ...], str]]) -> str:
    return ", ".join(f"{shape} {dtype}" for shape, dtype in shapes)


def module_picture(trace: ModuleTrace) -> Picture:
    """Inputs, one node per layer call, outputs; nested modules (not the model itself) as clusters."""
    picture = Picture(title=type(trace.model).__name__)
    clusters: dict[int, int] = {}
    for call in trace.calls:  # parents come before their children
        if call.is_leaf or call.parent is None:
            continue
        clusters[call.index] = len(picture.clusters)
        picture.clusters.append(PCluster(f"{call.path}: {type(call.module).__name__}", "module",
                                         clusters.get(call.parent)))
    ids: dict[tuple[str, int], str] = {}
    for i, shapes in enumerate(trace.input_shapes):
        ids[("input", i)] = picture.add([f"input {i}" if len(trace.input_shapes) > 1 else "input",
                                         _shapes_text([shapes])], "input")
    for call in trace.leaves():
        name = call.path or type(call.module).__name__
        lines = [name, *_wrap(call.describe()), _shapes_text(call.output_shapes)]
        ids[("call", call.index)] = picture.add(lines, "module", clusters.get(call.parent))
    for j, shapes in enumerate(trace.output_shapes):
        ids[("output", j)] = picture.add([f"output {j}" if len(trace.output_shapes) > 1 else "output",
                                          _shapes_text([shapes])], "output")
        picture.roots.append(ids[("output", j)])
    for src, dst in trace.edges:
        picture.edges.append(PEdge(ids[src], ids[dst]))
    return picture


def draw_module(model: Module, example_input: Any, path: str | os.PathLike | None = None) -> str:
    """Draw the layer graph of `model` on `example_input` (a tensor, or a tuple of arguments):
    one box per layer call in call order, nested modules as boxes around their layers. Returns DOT."""
    source = to_dot(module_picture(trace_module(model, example_input)))
    if path is not None:
        render(source, path)
    return source

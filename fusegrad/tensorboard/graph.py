"""A TensorBoard GraphDef of a model's layer graph, from `fg.viz.trace_module`.

Names are scoped like PyTorch's (`Sequential/Linear[1]/forward`, `Sequential/Linear[1]/weight`) so
TensorBoard's graph view folds each module into a box that opens to show its call and parameters.
"""
from __future__ import annotations

from tensorboard.compat.proto.attr_value_pb2 import AttrValue
from tensorboard.compat.proto.graph_pb2 import GraphDef
from tensorboard.compat.proto.node_def_pb2 import NodeDef
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.compat.proto.versions_pb2 import VersionDef

from ..viz.trace import ModuleTrace, Ref


def _shapes_attr(shapes: list[tuple[tuple[int, ...], str]]) -> AttrValue:
    protos = [TensorShapeProto(dim=[TensorShapeProto.Dim(size=s) for s in shape]) for shape, _ in shapes]
    return AttrValue(list=AttrValue.ListValue(shape=protos))


def _node(name: str, op: str, inputs: list[str], shapes: list[tuple[tuple[int, ...], str]], info: str) -> NodeDef:
    attr = {"_output_shapes": _shapes_attr(shapes), "attr": AttrValue(s=info.encode("utf-8"))}
    return NodeDef(name=name, op=op, input=inputs, attr=attr)


def graph_def(trace: ModuleTrace) -> GraphDef:
    """Input nodes, one node per layer call (its parameters beside it in its scope), output nodes."""
    scopes: dict[int, str] = {}
    for call in trace.calls:  # a call's parent comes before it
        kind = type(call.module).__name__
        if call.parent is None:
            scopes[call.index] = kind
        else:
            scopes[call.index] = f"{scopes[call.parent]}/{kind}[{call.path.rsplit('.', 1)[-1]}]"
    names: dict[Ref, str] = {}
    nodes: list[NodeDef] = []
    for i, shape in enumerate(trace.input_shapes):
        names[("input", i)] = f"input/input.{i}"
        nodes.append(_node(names[("input", i)], "IO Node", [], [shape], f"{shape[0]} {shape[1]}"))
    sources: dict[Ref, list[str]] = {}
    for src, dst in trace.edges:
        sources.setdefault(dst, []).append(src)
    used: set[str] = set()
    param_nodes: dict[int, list[str]] = {}  # by module: a module called twice shares its parameter nodes
    for call in trace.leaves():
        scope = scopes[call.index]
        name, k = f"{scope}/forward", 1
        while name in used:
            name, k = f"{scope}/forward_{k}", k + 1
        used.add(name)
        names[("call", call.index)] = name
        if id(call.module) not in param_nodes:
            param_nodes[id(call.module)] = []
            for pname, p in call.module._parameters.items():
                if p is not None:
                    param_nodes[id(call.module)].append(f"{scope}/{pname}")
                    nodes.append(_node(f"{scope}/{pname}", "Parameter", [], [(p.shape, p.dtype.name)],
                                       f"{p.shape} {p.dtype.name}"))
        param_names = param_nodes[id(call.module)]
        inputs = [names[src] for src in sources.get(("call", call.index), [])] + param_names
        nodes.append(_node(name, type(call.module).__name__, inputs, call.output_shapes, call.describe()))
    for j, shape in enumerate(trace.output_shapes):
        inputs = [names[src] for src in sources.get(("output", j), [])]
        nodes.append(_node(f"output/output.{j}", "IO Node", inputs, [shape], f"{shape[0]} {shape[1]}"))
    return GraphDef(node=nodes, versions=VersionDef(producer=22))

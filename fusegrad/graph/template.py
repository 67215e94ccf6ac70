"""Templates: the nodes a computation added on top of an existing graph, recorded by position.

A computation whose result depends only on the structure of the graph it reads (its ops, args,
shapes, dtypes and wiring, as a key of the caller's choosing says) adds the same nodes to every
graph of that structure. Recording them once lets the caller rebuild them on the next such graph
with plain node construction instead of running the computation again (autograd does this for
the gradient graph of a training step seen before).
"""
from __future__ import annotations

from typing import Any

from .node import Node


class Template:
    """New nodes as (op, source positions, arg, shape, dtype, device), sources first; a position
    below `base_size` is a node of the base graph, above it a node the template builds."""

    __slots__ = ("base_size", "recipes")

    def __init__(self, base_size: int, recipes: list[tuple[Any, ...]]):
        self.base_size = base_size
        self.recipes = recipes

    def build(self, base: list[Node]) -> list[Node]:
        """The base nodes followed by fresh copies of the recorded nodes, wired to them."""
        assert len(base) == self.base_size
        nodes = list(base)
        append, at = nodes.append, nodes.__getitem__
        for op, srcs, arg, shape, dtype, device in self.recipes:
            append(Node(op, tuple(map(at, srcs)), arg, shape, dtype, device))
        return nodes


def record(base: list[Node], outputs: list[Node]) -> tuple[Template, list[Node]] | None:
    """The template of the nodes reachable from `outputs` that are not in `base`, and every node by
    its template position (base first). None when one of them holds a buffer: a value, not a
    structure, so it cannot be rebuilt."""
    position = {id(n): i for i, n in enumerate(base)}
    nodes = list(base)
    recipes: list[tuple[Any, ...]] = []
    for out in outputs:
        stack: list[tuple[Node, bool]] = [(out, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in position:
                continue
            if not expanded:
                if node.buffer is not None:
                    return None
                stack.append((node, True))
                stack.extend((s, False) for s in node.srcs if id(s) not in position)
                continue
            position[id(node)] = len(nodes)
            nodes.append(node)
            recipes.append((node.op, tuple(position[id(s)] for s in node.srcs), node.arg, node.shape, node.dtype,
                            node.device))
    return Template(len(base), recipes), nodes

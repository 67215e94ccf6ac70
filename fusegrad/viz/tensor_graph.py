"""Pictures of the graph behind tensors: the op history, and the kernels the scheduler would make.

The op picture walks each tensor's recorded history (autograd's `Ctx`: op, inputs, argument) and,
for tensors without history, their lazy graph nodes. The kernel picture schedules the lazy graph
(without running anything) and draws one cluster per kernel. All walks use explicit stacks:
training graphs go deeper than Python's recursion limit.
"""
from __future__ import annotations

from typing import Any, Iterable, Union

from ..autograd import GradientTape, enable_grad
from ..engine.realize import _kernel_name, kernel_key
from ..engine.schedule import create_schedule, fused_nodes
from ..graph.node import Node
from ..graph.ops import LEAF, Op
from ..tensor import Tensor
from .dot import PCluster, PEdge, Picture

Item = Union[Tensor, Node]
ARG_WIDTH = 40


def _clip(text: str, width: int = ARG_WIDTH) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def op_text(op: Op, arg: Any) -> str:
    """An op and its argument, short: MUL, SUM (1,), CONST 0.5, CAST float16."""
    if arg is None:
        return op.name
    if op is Op.CONST:
        return f"CONST {arg:g}" if isinstance(arg, float) else f"CONST {arg}"
    text = getattr(arg, "name", None) if op is Op.CAST else None
    return f"{op.name} {_clip(text or str(arg))}"


def shape_text(shape: tuple[int, ...], dtype: Any) -> str:
    return f"{shape} {dtype.name}"


def node_lines(node: Node) -> list[str]:
    """A lazy node's op (BUFFER once it holds a value) and its shape and dtype."""
    return ["BUFFER" if node.buffer is not None else op_text(node.op, node.arg), shape_text(node.shape, node.dtype)]


def _kind_of_node(node: Node) -> str:
    if node.buffer is not None:
        return "data"
    return "const" if node.op in LEAF else "op"


def history_leaves(t: Tensor) -> list[Tensor]:
    """Leaves of `t`'s history that require grad; when none do, every floating-point leaf."""
    seen: set[int] = {id(t)}
    stack, leaves = [t], []
    while stack:
        cur = stack.pop()
        if cur._ctx is None:
            if cur is not t:
                leaves.append(cur)
            continue
        for inp in cur._ctx.inputs:
            if id(inp) not in seen:
                seen.add(id(inp))
                stack.append(inp)
    wanted = [leaf for leaf in leaves if leaf.requires_grad]
    return wanted or [leaf for leaf in leaves if leaf.dtype.is_floating_point]


def gradients(outputs: list[Tensor], names: dict[int, str]) -> list[tuple[Tensor, str]]:
    """Lazy gradients of each output (summed over its elements) with respect to its history's leaves,
    recorded on a tape of our own: the user's `.grad` fields are not touched. `names`: by lazy node."""
    found: list[tuple[Tensor, str]] = []
    with enable_grad(), GradientTape(persistent=True) as tape:
        for out in outputs:
            if out._ctx is None or not out.dtype.is_floating_point:
                continue
            leaves = history_leaves(out)
            if not leaves:
                continue
            seed = None if out.numel() == 1 else out.ones_like()
            for i, (leaf, g) in enumerate(zip(leaves, tape.gradient(out, leaves, output_gradient=seed))):
                if g is not None:
                    found.append((g, f"grad of {names.get(id(leaf._node)) or leaf.name or f'leaf {i}'}"))
    return found


def history(tensors: list[Tensor]) -> list[Tensor]:
    """The tensors and every tensor in their recorded histories."""
    found: list[Tensor] = []
    seen: set[int] = set()
    stack = list(tensors)
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        found.append(t)
        if t._ctx is not None:
            stack.extend(t._ctx.inputs)
    return found


def _reachable(roots: list[Node]) -> set[int]:
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.buffer is None:
            stack.extend(node.srcs)
    return seen


class OpPicture:
    """Builds the op-level picture: one node per recorded op, or per lazy node where there is no
    history. A lazy node that is also a drawn tensor's value is drawn as that tensor, once."""

    def __init__(self, tensors: list[Tensor], names: dict[int, str]):
        self.picture = Picture()
        self.ids: dict[tuple[str, int], str] = {}
        self.alive: list[Item] = []  # the objects whose id() we key on stay alive while we draw
        self.tensor_of: dict[int, Tensor] = {}  # lazy node -> the tensor holding it (one with history first)
        self.names = dict(names)
        found = history(tensors)
        for t in sorted(found, key=lambda t: t._ctx is None):
            self.tensor_of.setdefault(id(t._node), t)
            if t.name:
                self.names.setdefault(id(t._node), t.name)

    def _canonical(self, item: Item) -> Item:
        node = item._node if isinstance(item, Tensor) else item
        if isinstance(item, Tensor) and item._ctx is not None:
            return item
        return self.tensor_of.get(id(node), item)

    @staticmethod
    def _key(item: Item) -> tuple[str, int]:
        if isinstance(item, Tensor):
            return ("t", id(item)) if item._ctx is not None else ("n", id(item._node))
        return ("n", id(item))

    def _make(self, item: Item, kind: str | None) -> str:
        node = item._node if isinstance(item, Tensor) else item
        if isinstance(item, Tensor) and item._ctx is not None:
            lines = [op_text(item._ctx.op, item._ctx.arg), shape_text(item.shape, item.dtype)]
            default = "op"
        else:
            lines = node_lines(node)
            default = "param" if isinstance(item, Tensor) and item.requires_grad else _kind_of_node(node)
        name = self.names.get(id(node)) or (item.name if isinstance(item, Tensor) else None)
        if name:
            lines.insert(0, name)
        self.alive.append(item)
        return self.picture.add(lines, kind or default)

    @staticmethod
    def _inputs(item: Item) -> Iterable[Item]:
        if isinstance(item, Tensor):
            if item._ctx is not None:
                return item._ctx.inputs
            item = item._node
        return item.srcs if item.buffer is None else ()

    def _id(self, item: Item, kind: str | None, stack: list[Item]) -> str:
        key = self._key(item)
        if key not in self.ids:
            self.ids[key] = self._make(item, kind)
            stack.append(item)
        return self.ids[key]

    def add(self, roots: list[Item], root_kind: str, new_kind: str | None, labels: list[str] | None = None) -> None:
        """Draw everything behind `roots`; nodes first seen here get `new_kind` (None: by what they are)."""
        stack: list[Item] = []
        for i, root in enumerate(roots):
            node_id = self._id(self._canonical(root), root_kind, stack)
            self.picture.nodes[node_id].kind = root_kind
            if labels is not None:
                self.picture.nodes[node_id].lines.insert(0, labels[i])
            self.picture.roots.append(node_id)
        while stack:
            item = stack.pop()
            dst = self.ids[self._key(item)]
            for src in self._inputs(item):
                src = self._canonical(src)
                kind = new_kind if new_kind is not None and self._inputs(src) else None
                self.picture.edges.append(PEdge(self._id(src, kind, stack), dst))


def op_picture(outputs: list[Tensor], grads: list[tuple[Tensor, str]], names: dict[int, str]) -> Picture:
    """`names`: display names by id of lazy node."""
    builder = OpPicture(list(outputs) + [g for g, _ in grads], names)
    builder.add(list(outputs), "output", None)
    if grads:
        builder.add([g for g, _ in grads], "grad_output", "grad", [label for _, label in grads])
    return builder.picture


def kernel_picture(outputs: list[Tensor], grads: list[tuple[Tensor, str]], names: dict[int, str]) -> Picture:
    """The lazy graph grouped into the kernels that realizing it would run (a cluster per kernel)."""
    picture = Picture()
    by_node: dict[int, str] = {id(g._node): label for g, label in grads}
    params: set[int] = set()
    for t in history(list(outputs) + [g for g, _ in grads]):
        name = names.get(id(t._node)) or t.name
        if name:
            by_node.setdefault(id(t._node), name)
        if t._ctx is None and t.requires_grad:
            params.add(id(t._node))
    forward = _reachable([t._node for t in outputs])
    canon: dict[int, str] = {}

    def kind_of(node: Node) -> str:
        if node.buffer is not None:
            return "param" if id(node) in params else "data"
        if node.op in LEAF:
            return "const"
        return "op" if id(node) in forward else "grad"

    def lines_of(node: Node) -> list[str]:
        name = by_node.get(id(node)) or names.get(id(node))
        return [name] + node_lines(node) if name else node_lines(node)

    def outside(node: Node) -> str:
        """A node computed elsewhere: an existing buffer, or the root of an earlier kernel."""
        if id(node) not in canon:
            canon[id(node)] = picture.add(lines_of(node), kind_of(node))
        return canon[id(node)]

    targets = [t._node for t in outputs] + [g._node for g, _ in grads]
    for item in create_schedule(targets):
        root = item.spec.root
        if item.alias_of is not None:
            cluster = len(picture.clusters)
            picture.clusters.append(PCluster("view of a buffer (no kernel)", "view"))
            chain, node = [], root
            while node is not item.alias_of:
                chain.append(node)
                node = node.srcs[0]
            prev = outside(item.alias_of)
            for node in reversed(chain):
                canon[id(node)] = picture.add(lines_of(node), kind_of(node), cluster)
                picture.edges.append(PEdge(prev, canon[id(node)]))
                prev = canon[id(node)]
            continue
        cluster = len(picture.clusters)
        members = fused_nodes(root, item.spec.inputs)
        name = _kernel_name(item.spec, kernel_key(item.spec))
        picture.clusters.append(PCluster(f"{name} ({len(members)} nodes)", "kernel"))
        local: dict[int, str] = {}
        for node in members:  # sources first
            if id(node) in canon:  # also computed inside an earlier kernel: fused into this one again
                again = [] if node.op in LEAF else ["(recomputed)"]
                local[id(node)] = picture.add(lines_of(node) + again, kind_of(node), cluster)
            else:
                local[id(node)] = canon[id(node)] = picture.add(lines_of(node), kind_of(node), cluster)
            for src in node.srcs:
                picture.edges.append(PEdge(local[id(src)] if id(src) in local else outside(src), local[id(node)]))
    for i, node in enumerate(targets):
        node_id = outside(node)
        picture.nodes[node_id].kind = "output" if i < len(outputs) else "grad_output"
        picture.roots.append(node_id)
    return picture



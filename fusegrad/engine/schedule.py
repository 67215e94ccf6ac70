"""Turn the lazy graph behind some nodes into an ordered list of kernels.

Fusion rules (which nodes get their own buffer, "materialized"):
- the nodes asked for, and CONTIGUOUS nodes;
- a reduction read by more than one consumer (so it is computed once);
- a reduction feeding another reduction (the inner one gets its own parallel kernel, and a
  matrix product there can use the GEMM routine), unless a node between them has its own
  buffer: then the outer one reads that buffer and nothing is nested;
- the source of a broadcast (EXPAND that grows the element count) unless that source is only
  views of buffers/constants/random bits, or a few elementwise ops on those (not when a large
  tensor is broadcast widely: a product's computed operand, see _is_cheap): recomputing it for
  every broadcast copy would multiply its cost (this keeps reductions like
  x.max(1, keepdim=True) out of the loop they feed);
- a large reduction (FEW_TERMS or more terms per output) read through a PAD, i.e. placed into a
  bigger tensor, and the tensor its pieces add up to (the concatenated gradients of a fused q/k/v
  projection): fused, the pieces were guarded loop nests of one kernel that the GEMM routine could
  not take, and the products reading the concatenation recomputed its guards; now each piece is a
  plain product and the concatenation a copy;
- a matrix product that an elementwise node combines with other reductions (a tied weight's
  gradients, one from the head's product and one from the embedding, added): otherwise each is a
  loop nest of one kernel and none can run the GEMM routine; of products alone, the last keeps
  the combination as its epilogue; past MANY_REDUCTIONS combined (a recurrent weight's gradient,
  one product per step) every product of FEW_TERMS or more terms gets its own kernel;
- an elementwise value that more than one kernel would compute from SHARED_READS or more tensors
  (a transformer's residual stream), or that is read transposed (a sum of per-step gradients laid
  out as the weight), and a large reduction more than one kernel would compute (see
  _share_reductions);
- a node whose fused chain has grown past MAX_FUSED_DEPTH ops, so kernels stay compilable;
- a fused op (ATTENTION, RECURRENCE) and its operands: its template reads buffers, through views without padding.
A float32 value kept by these rules but read only through its cast to a half type is stored as that
cast instead (`_store_narrowed`), and a half or float8 value widened to float32 counts as a plain load
where a broadcast decides (`_widens_narrow`): narrow products read their operands that way.
Everything else is fused: elementwise chains, elementwise producers into reductions, and
elementwise consumers after a reduction (the reduction becomes a loop inside their kernel).
Movement ops are never kernels; a requested view of a buffer that is already contiguous in
that order aliases the buffer instead of copying.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import dtypes
from ..codegen.lower import KernelSpec, source_coords
from ..graph.node import Node
from ..graph.ops import ELEMENTWISE, FUSED, LEAF, MOVEMENT, REDUCE, Op
from ..graph.symbolic import flat_index, var

MAX_FUSED_DEPTH = 200
FEW_TERMS = 8  # a reduction summing fewer terms per output is cheap to recompute in each reader
CHEAP_OPS = 4  # elementwise ops on loaded values recomputed per element rather than stored for a broadcast
FEW_COPIES = 16  # ... unless broadcast to more copies than this
LARGE_OPERAND = 1 << 15  # ... from a tensor of at least this many elements
MANY_REDUCTIONS = 8  # reductions meeting in one elementwise node beyond which each product gets a kernel
SHARED_READS = 4  # an elementwise value reading this many tensors is stored once, not recomputed per kernel


@dataclass
class ScheduleItem:
    """Compute `spec.root` into a new buffer (or alias `alias_of`'s buffer when set)."""

    spec: KernelSpec
    alias_of: Node | None = None


def toposort(roots: list[Node]) -> list[Node]:
    """Unrealized nodes reachable from roots, sources first. Iterative: graphs can be deep."""
    order: list[Node] = []
    # every realization walks its whole graph: locals instead of attribute lookups, and the nodes
    # themselves in the set (they hash by identity in C, so no id() call per visit)
    seen: set[Node] = set()
    mark = seen.add
    # one stack for all roots, the first on top: the same order as a walk per root, without a
    # stack per root (backward walks from every tensor of the tape)
    stack: list[tuple[Node, bool]] = [(root, False) for root in reversed(roots)]
    push, pop = stack.append, stack.pop
    while stack:
        node, expanded = pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        mark(node)
        push((node, True))
        if node.buffer is None:
            for src in node.srcs:
                if src not in seen:
                    push((src, False))
    return order


def _is_cheap(node: Node, keep: set[int], copies: int) -> bool:
    """Views of buffers, constants or random bits, or up to CHEAP_OPS elementwise ops on those: free
    to recompute per broadcast element (a loss gradient's masked -1/N per row was a kernel). Not the
    ops, though, when a large tensor is broadcast to many copies: that is a product's operand (a
    layer norm's output feeding a linear layer), recomputed for every output column and, computed,
    keeping the product from the GEMM routine; stored once, it is a plain load."""
    budget = 0 if copies > FEW_COPIES and node.numel >= LARGE_OPERAND else CHEAP_OPS
    stack = [node]
    while stack:
        node = _view_base(stack.pop())
        if _is_loaded(node, keep):
            continue
        if _widens_narrow(node):  # read as a load (the GEMM routine's packing converts): stored, twice the bytes
            stack.extend(node.srcs)
            continue
        if node.op not in ELEMENTWISE or budget == 0:
            return False
        budget -= 1
        stack.extend(node.srcs)
    return True


def _widens_narrow(node: Node) -> bool:
    """A float16/bfloat16/float8 value cast to float32: how narrow products read their operands (ops/linalg.py)."""
    return node.op is Op.CAST and node.dtype is dtypes.float32 and node.srcs[0].dtype in dtypes.NARROW


def _is_large(reduction: Node) -> bool:
    """Does each output of the reduction sum FEW_TERMS or more terms?"""
    return reduction.srcs[0].numel >= FEW_TERMS * reduction.numel


def _is_product(reduction: Node, short: bool = False) -> bool:
    """A sum of products long and wide enough (FEW_TERMS**2 terms for each of as many outputs; FEW_TERMS
    when `short`) for the GEMM routine to win over a plain loop nest (a linear layer's input gradient
    over 10 classes is not)."""
    terms = FEW_TERMS if short else FEW_TERMS ** 2
    return reduction.op is Op.SUM and reduction.srcs[0].op is Op.MUL and \
        reduction.srcs[0].numel >= terms * reduction.numel and reduction.numel >= FEW_TERMS ** 2


def _is_loaded(node: Node, keep: set[int]) -> bool:
    return node.buffer is not None or node.op in LEAF or id(node) in keep


def _view_base(node: Node) -> Node:
    while node.buffer is None and node.op in MOVEMENT:
        node = node.srcs[0]
    return node


def _guarded(node: Node) -> bool:
    """Do node's views of their base read padding anywhere (a shrink inside a pad reads none)?"""
    coords = tuple(var(f"i{d}", s) for d, s in enumerate(node.shape))
    while node.buffer is None and node.op in MOVEMENT:
        coords, bounds = source_coords(node, coords)
        if bounds is None or bounds:
            return True
        node = node.srcs[0]
    return False


def _aliases_buffer(node: Node, base: Node) -> bool:
    """Does the movement chain from node down to base read base's buffer in row-major order?"""
    if base.numel != node.numel:
        return False
    coords = tuple(var(f"i{d}", s) for d, s in enumerate(node.shape))
    target = flat_index(coords, node.shape)
    cur = node
    while cur is not base:
        coords, bounds = source_coords(cur, coords)
        if bounds is None or bounds:
            return False
        cur = cur.srcs[0]
    return flat_index(coords, base.shape) == target


def materialized_nodes(order: list[Node], targets: list[Node]) -> set[int]:
    consumers: dict[int, int] = {}
    for node in order:
        if node.buffer is None:
            for src in node.srcs:
                consumers[id(src)] = consumers.get(id(src), 0) + 1
    keep = {id(t) for t in targets}
    depth: dict[int, int] = {}
    inner: dict[int, frozenset[int]] = {}  # unmaterialized reductions fused into each node
    placed: set[int] = set()  # large reductions padded into place, and what adds them up
    rank = {id(n): i for i, n in enumerate(order)}
    nodes = {id(n): n for n in order}
    assembled: set[int] = set()  # the last of those sums: the whole assembled tensor
    merged: dict[int, int] = {}  # reductions an elementwise node combines, however many became kernels
    for node in order:
        if node.buffer is not None or node.op in LEAF:
            depth[id(node)], inner[id(node)] = 0, frozenset()
            continue
        if node.op in FUSED:  # a template kernel reading its operands from buffers, through plain views
            keep.add(id(node))
            keep.update(id(src) if _guarded(src) else id(_view_base(src)) for src in node.srcs)
            depth[id(node)], inner[id(node)], merged[id(node)] = 0, frozenset(), 0
            continue
        if node.op is Op.CONTIGUOUS or (node.op in REDUCE and consumers.get(id(node), 0) > 1):
            keep.add(id(node))
        if node.op is Op.EXPAND and node.numel > node.srcs[0].numel and \
                not _is_cheap(node.srcs[0], keep, node.numel // max(node.srcs[0].numel, 1)):
            keep.add(id(_view_base(node.srcs[0])))
        if node.op is Op.PAD:
            base = _view_base(node.srcs[0])
            if base.op in REDUCE and base.buffer is None and _is_large(base):
                keep.add(id(base))  # a large reduction placed into a bigger tensor runs as its own kernel
                placed.add(id(node))
        elif node.op in ELEMENTWISE and any(id(s) in placed for s in node.srcs):
            placed.add(id(node))  # the tensor assembled from the placed pieces (a concatenation)
            assembled.add(id(node))
            for s in node.srcs:
                assembled.discard(id(s))
        # a source read through views of a kept node reads its buffer: nothing of it is recomputed
        # here (an expand of a ReLU gradient kept its producing product, nested in the next one,
        # as a kernel of its own, and the ReLU mask after it as another)
        loaded = [_is_loaded(_view_base(s), keep) for s in node.srcs]
        below = frozenset().union(*(inner[id(s)] for s, done in zip(node.srcs, loaded) if not done))
        merged[id(node)] = 1 if node.op in REDUCE else \
            min(MANY_REDUCTIONS + 1, sum(merged.get(id(s), 0) for s in node.srcs))
        if node.op in REDUCE:
            keep.update(below)  # a reduction nested in another runs as its own parallel kernel
            below = frozenset((id(node),))
        elif len(below) > 1 or (below and merged[id(node)] > MANY_REDUCTIONS):
            # matrix products combined elementwise with other reductions (a tied weight's gradients
            # added): each a loop nest of one kernel, none could run the GEMM routine; the products
            # become kernels of their own (of products alone, the last takes the rest as its epilogue)
            # Many of them (a weight used at every step of a recurrence, its gradient a sum of one product
            # per step) count as products however short each is: as nested loops of one kernel the
            # sum ran at scalar speed (an LSTM's hidden weights over 32 steps: 30 ms of a 115 ms step)
            many = merged[id(node)] > MANY_REDUCTIONS  # reductions summed so far, split off or not
            products = [r for _, r in sorted((rank[r], r) for r in below if _is_product(nodes[r], many))]
            split = products if many or len(products) < len(below) else products[:-1]
            keep.update(split)
            below = below.difference(split)
        d = 1 + max((0 if done else depth.get(id(s), 0)) for s, done in zip(node.srcs, loaded))
        if d > MAX_FUSED_DEPTH:
            keep.add(id(node))
        depth[id(node)] = 0 if id(node) in keep else d
        inner[id(node)] = frozenset() if id(node) in keep else below
    keep.update(assembled)  # read as the operand of a product, it must be a plain buffer, not guarded pieces
    _share_reductions(order, keep)
    _store_half_not_widened(order, keep, {id(t) for t in targets})
    _store_narrowed(order, keep, consumers, {id(t) for t in targets})
    return keep


def _store_half_not_widened(order: list[Node], keep: set[int], targets: set[int]) -> None:
    """A kept float32 widening of a half value (a half product's operand, widened as it is read) stores the
    half value instead: half the bytes, the product's packing widens it, and every other reader of the
    half value loads it rather than recomputing it (under autocast a GELU's gradient, the operand of the
    weight gradient's product and the input of the bias gradient's sum, was computed twice)."""
    for node in order:
        if id(node) in keep and id(node) not in targets and node.buffer is None and _widens_narrow(node):
            half = _view_base(node.srcs[0])
            if half.numel == node.numel and half.buffer is None and half.op in ELEMENTWISE | REDUCE:
                keep.discard(id(node))
                keep.add(id(half))


def _store_narrowed(order: list[Node], keep: set[int], consumers: dict[int, int], targets: set[int]) -> None:
    """A kept float32 value read only through a cast to a half type (a product's sums or an activation
    under autocast) stores the cast instead: its kernel rounds the values as it writes them, and every
    reader loads half the bytes (the float32 values stored, each reader rounded them again)."""
    for node in order:
        if node.op is Op.CAST and node.dtype in dtypes.HALF and id(node) not in keep \
                and node.buffer is None:
            source = node.srcs[0]
            while source.op in MOVEMENT and source.buffer is None and consumers.get(id(source), 0) == 1:
                source = source.srcs[0]  # (the product's sums reshaped into the output's shape)
            if id(source) in keep and id(source) not in targets and source.buffer is None \
                    and source.op in REDUCE | ELEMENTWISE and source.dtype is dtypes.float32 \
                    and consumers.get(id(source), 0) == 1:
                keep.discard(id(source))
                keep.add(id(node))


def _share_reductions(order: list[Node], keep: set[int]) -> None:
    """Keep a large reduction (each output sums FEW_TERMS or more) that more than one kernel
    would compute through the elementwise work fused after it: summed once instead of by each
    (batch norm's scale gradient, read by the weight's and the variance's gradients: two passes
    over the activations). Likewise an elementwise value computed from SHARED_READS tensors or more
    that more than one kernel would compute: a transformer's residual stream, the sum of every
    block's output so far, was recomputed from all of them by each layer norm's forward and
    backward kernel (a ReLU's mask, read by its forward and its gradient, reads two: recomputed).
    Walked from the outputs back, so every node's kernels are known when it is seen."""
    # the inputs a kernel reads or computes per element for the node (buffers, reductions, indices and
    # random bits; up to SHARED_READS): a causal softmax's exponentials (scores, row max, two index
    # ranges) are stored once too, which measured faster than computing them in each kernel reading them
    reads: dict[int, frozenset[int]] = {}
    for node in order:
        if node.op is Op.CONST:
            reads[id(node)] = frozenset()
        elif node.buffer is not None or node.op in LEAF or id(node) in keep or node.op in REDUCE:
            reads[id(node)] = frozenset((id(node),))
        else:
            union = frozenset().union(*(reads.get(id(s), frozenset()) for s in node.srcs))
            reads[id(node)] = union if len(union) <= SHARED_READS else frozenset(list(union)[:SHARED_READS])
    for node in order:
        # a sum of many tensors read transposed (a recurrent weight's gradient: the per-step products
        # added, then laid out as the weight) is added in its own layout first: read across, its many
        # inputs were strided streams (14 ms to add 31 of (128, 512); stored, then transposed, ~1 ms)
        if node.op is Op.PERMUTE and node.buffer is None and node.arg[-1] != len(node.arg) - 1:
            base = _view_base(node.srcs[0])
            if base.op in ELEMENTWISE and base.buffer is None and len(reads.get(id(base), ())) >= SHARED_READS:
                keep.add(id(base))
    roots: dict[int, set[int]] = {}  # the kernels each node is computed in
    for node in reversed(order):
        if node.buffer is not None:
            continue
        mine = roots.get(id(node), set())
        if id(node) not in keep and len(mine) > 1 and (
                (node.op in REDUCE and node.srcs[0].numel >= FEW_TERMS * node.numel) or
                (node.op in ELEMENTWISE and len(reads[id(node)]) >= SHARED_READS)):
            keep.add(id(node))
        reach = {id(node)} if id(node) in keep else mine
        for src in node.srcs:
            roots.setdefault(id(src), set()).update(reach)


def create_schedule(targets: list[Node], order: list[Node] | None = None) -> list[ScheduleItem]:
    """Kernels that realize every target, in dependency order (`order`: toposort(targets))."""
    targets = [t for t in targets if t.buffer is None]
    if order is None:
        order = toposort(targets)
    keep = materialized_nodes(order, targets)
    items: list[ScheduleItem] = []
    for node in order:
        if node.buffer is not None or id(node) not in keep:
            continue
        if node.op in MOVEMENT:
            base = _view_base(node)
            if (base.buffer is not None or id(base) in keep) and base.op is not Op.CONST \
                    and _aliases_buffer(node, base):
                items.append(ScheduleItem(KernelSpec(node, []), alias_of=base))
                continue
        items.append(ScheduleItem(KernelSpec(node, _kernel_inputs(node, keep))))
    return items


def fused_nodes(root: Node, inputs: list[Node]) -> list[Node]:
    """The nodes a kernel computes: reachable from its root without entering an input, sources first."""
    stop = {id(n) for n in inputs}
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen or id(node) in stop:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((s, False) for s in reversed(node.srcs))
    return order


def _kernel_inputs(root: Node, keep: set[int]) -> list[Node]:
    """The buffers a kernel rooted at `root` reads, in first-seen order."""
    inputs: list[Node] = []
    seen: set[int] = {id(root)}
    stack = list(reversed(root.srcs))
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.buffer is not None or id(node) in keep:
            inputs.append(node)
        else:
            stack.extend(reversed(node.srcs))
    return inputs

"""Run schedules: compile what is new (one translation unit per batch), allocate, launch.

Compiled kernels are cached in memory by the kernel's structure (ops, shapes, dtypes and how
inputs are read, not their values), so a graph seen before reuses its kernels without codegen.

Threads: `graph_lock` is held while a realization walks the graph and plans (the plan and program
caches are shared), and while it attaches the buffers it computed to the nodes (which drops their
sources, so no walk may see a node half-realized). The compiler runs outside it (two threads that
draft the same new plan at once both compile it), and so do kernels, on buffers the run keeps to
itself, so threads launch concurrently; two threads that compute the same lazy node (a shared
model's gradient) both compute it, and the first to finish keeps its buffer.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Hashable

from .. import flags, precision
from ..codegen import renderer_for
from ..codegen.attention import lower_attention
from ..codegen.recurrence import lower_recurrence
from ..codegen.scatter import lower_index_add
from ..codegen.gather import one_hot_reads
from ..codegen.gemm import use_gemm
from ..codegen.peel import peel_loops
from ..codegen.ir import Gemm
from ..codegen.hoist import hoist_invariants
from ..codegen.interchange import interchange_reduction
from ..codegen.merge import merge_loops
from ..codegen.lower import KernelSpec, lower
from ..graph.attention import attention_flops
from ..graph.recurrence import recurrence_flops
from ..graph.scatter import index_add_flops
from ..graph.node import Node
from ..graph.ops import LEAF, MOVEMENT, REDUCE, Op
from ..runtime import registry
from ..runtime.lru import LRU
from . import capture, tune
from .profile import KernelLaunch, profiling, record
from .schedule import ScheduleItem, create_schedule, fused_nodes, toposort

# by kernel_key: (program, work, scratch bytes). A plan holds its programs itself, so an evicted
# entry stays loaded while a plan (or a jit replay) still runs it
_programs = LRU("programs")
graph_lock = threading.RLock()  # see the module docstring; reentrant: planning may realize (data-dependent shapes)


def kernel_key(spec: KernelSpec) -> tuple:
    """A hashable description of the kernel's structure: equal keys render equal source (a float32
    product's cuBLAS descriptor says whether TF32 is allowed: the setting joins the key when it is)."""
    ids: dict[int, int] = {id(n): i for i, n in enumerate(spec.inputs)}
    entries: list[tuple] = [(spec.root.device, "tf32") if precision.allow_tf32() else (spec.root.device,)]
    entries.extend(("in", n.shape, n.dtype.name) for n in spec.inputs)
    stack: list[tuple[Node, bool]] = [(spec.root, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in ids:
            continue
        if not expanded:
            stack.append((node, True))
            stack.extend((s, False) for s in node.srcs if id(s) not in ids)
            continue
        ids[id(node)] = len(ids)
        entries.append((node.op.value, node.arg, node.shape, node.dtype.name, tuple(ids[id(s)] for s in node.srcs)))
    return tuple(entries)


def _kernel_name(spec: KernelSpec, key: tuple) -> str:
    has_reduce = any(isinstance(e[0], int) and e[0] in {op.value for op in REDUCE} for e in key[1:])
    digest = hashlib.sha1(repr(key).encode()).hexdigest()[:8]
    shape = "_".join(str(s) for s in spec.root.shape) or "scalar"
    kind = {Op.ATTENTION: "A", Op.RECURRENCE: "S", Op.INDEX_ADD: "X"}.get(spec.root.op, "R" if has_reduce else "E")
    return f"{kind}_{shape}_{digest}"


def _describe(item: ScheduleItem) -> str:
    ops = " ".join(n.op.name for n in fused_nodes(item.spec.root, item.spec.inputs))
    return f"{item.spec.root.shape} <- {ops} ({len(item.spec.inputs)} inputs)"


FUSED_FLOPS = {Op.ATTENTION: attention_flops, Op.RECURRENCE: recurrence_flops, Op.INDEX_ADD: index_add_flops}


def _kernel_info(item: ScheduleItem) -> tuple[str, int]:
    """The compute ops fused into a kernel, inputs first (runs of one op as "ADDx2"; "COPY" when it
    only moves data), and an estimate of its operations: each fused op once per element it computes
    (a reduction: per element it reads). Computed once per plan, for the profiler."""
    order = fused_nodes(item.spec.root, item.spec.inputs)
    runs: list[list] = []
    flops = 0
    for node in order:
        if node.op in MOVEMENT or node.op in LEAF or node.op is Op.CONTIGUOUS:
            continue  # index arithmetic and copies, not operations
        flops += node.srcs[0].numel if node.op in REDUCE else FUSED_FLOPS[node.op](node) \
            if node.op in FUSED_FLOPS else node.numel
        if runs and runs[-1][0] == node.op.name:
            runs[-1][1] += 1
        else:
            runs.append([node.op.name, 1])
    label = " ".join(name if count == 1 else f"{name}x{count}" for name, count in runs)
    return label or "COPY", flops


def kernel_ir(spec: KernelSpec, name: str, renderer: Any) -> Any:
    """A kernel's loop IR after one-hot reads and the passes its renderer wants (GEMM, reduction
    interchange, peeling, loop merging, invariant hoisting)."""
    if spec.root.op is Op.ATTENTION:  # a template of its own: no loop passes apply
        return lower_attention(spec, name, renderer.tiled_attention)
    if spec.root.op is Op.RECURRENCE:
        return lower_recurrence(spec, name, renderer.blocked_recurrence, renderer.cooperative_bytes)
    if spec.root.op is Op.INDEX_ADD:
        return lower_index_add(spec, name, renderer.scatter_width, renderer.scatter_threads)
    ir = one_hot_reads(lower(spec, name))
    if renderer.supports_gemm:
        ir = use_gemm(ir)
    if renderer.interchange_reductions:
        ir = interchange_reduction(ir)
    if renderer.peel_loops:
        ir = peel_loops(ir)
    ir = merge_loops(ir)
    return hoist_invariants(ir) if renderer.hoist_invariants else ir


UNIT_CHARS = 6000  # source per compiler invocation worth splitting a batch for


def _split_units(entries: list[tuple[tuple, Any, str]]) -> list[list[tuple[tuple, Any, str]]]:
    """Kernels of one batch in up to one translation unit per CPU, balanced by source length, so
    that a large batch (a training step's first call) compiles in parallel."""
    total = sum(len(src) for _, _, src in entries)
    parts = max(1, min(os.cpu_count() or 1, len(entries), total // UNIT_CHARS))
    bins: list[list[tuple[tuple, Any, str]]] = [[] for _ in range(parts)]
    sizes = [0] * parts
    for entry in sorted(entries, key=lambda e: -len(e[2])):
        i = sizes.index(min(sizes))
        bins[i].append(entry)
        sizes[i] += len(entry[2])
    return bins


# kernel key -> (device, variants (IR, source), products compiled both ways, their stored outcome or None)
Missing = dict[tuple, tuple[str, list[Any], list[tuple[str, int, int, int]], bool | None]]


def _sources(items: list[ScheduleItem], keys: list[tuple], found: dict[tuple, Any]) -> Missing:
    """Source for every kernel not compiled yet (this reads the graph: call it under `graph_lock`); the
    compiled ones go into `found`, so the cache may evict them meanwhile. A matrix product a vendor BLAS
    could compute gets both variants; the first time its shape is seen both are timed (`_build`) and the
    faster is kept (and remembered on disk), later the remembered one is picked from the same
    translation unit, found in the cache."""
    missing: Missing = {}
    debug = flags.debug_level()
    for it, key in zip(items, keys):
        if key in found or key in missing:
            continue
        known = _programs.get(key)
        if known is not None:
            found[key] = known
            continue
        dev = it.spec.root.device
        renderer = renderer_for(registry.get(dev).kind)
        ir = kernel_ir(it.spec, _kernel_name(it.spec, key), renderer)
        race: list[tuple[str, int, int, int]] = []
        outcome = None
        if any(isinstance(s, Gemm) for s in ir.stmts):
            if flags.search_repeats():
                tune.search(ir, dev, renderer, flags.search_repeats())
            else:
                tune.apply_stored(ir, dev)
            race, outcome = tune.raced_products(ir, dev)
        variants = [(ir, tune.render_variant(renderer, ir, race, False) if race else renderer.render_kernel(ir))]
        if race:
            vendor = dataclasses.replace(ir, name=f"{ir.name}_blas")
            variants.append((vendor, tune.render_variant(renderer, vendor, race, True)))
        if debug >= 3:
            print(f"fusegrad: loop IR\n{ir.dump()}", file=sys.stderr)
        if debug >= 4:
            print(f"fusegrad: source\n{variants[0][1]}", file=sys.stderr)
        missing[key] = (dev, variants, race, outcome)
    return missing


def _build(missing: Missing, found: dict[tuple, Any]) -> None:
    """Compile the missing kernels of each device together (in parallel units when large) into `found`
    and `_programs`. Reads no graph: runs outside `graph_lock`, so other threads plan and launch meanwhile."""
    by_device: dict[str, list[tuple[tuple, Any, str]]] = {}
    for key, (dev, variants, _, _) in missing.items():
        by_device.setdefault(dev, []).extend((key, ir, source) for ir, source in variants)
    jobs = [(dev, part) for dev, entries in by_device.items() for part in _split_units(entries)]

    def build(job: tuple[str, list[tuple[tuple, Any, str]]]) -> list[Any]:
        dev, entries = job
        device = registry.get(dev)
        renderer = renderer_for(device.kind)
        unit = renderer.render_unit(sorted({src for _, _, src in entries}))
        return device.compile(unit, [ir.name for _, ir, _ in entries], [len(ir.params) for _, ir, _ in entries],
                              support=renderer.support_source)

    if len(jobs) > 1:  # compilers run in parallel (they release the GIL while they work)
        with ThreadPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(build, jobs))
    else:
        results = [build(job) for job in jobs]
    built: dict[tuple, list[tuple[Any, Any]]] = {}
    for (_, entries), programs in zip(jobs, results):
        for (key, ir, _), prog in zip(entries, programs):
            built.setdefault(key, []).append((ir, prog))
    for key, variants in built.items():
        dev, _, race, outcome = missing[key]
        variants.sort(key=lambda v: v[0].name.endswith("_blas"))  # generated first
        ir, prog = variants[0]
        if race:
            pick = tune.race_vendor(dev, ir, prog, variants[1][1], race) if outcome is None else int(outcome)
            ir, prog = variants[pick]
        scratch = sum(p.numel * p.dtype.itemsize for p in ir.params if p.scratch)
        found[key] = (prog, ir.work, scratch)
        with graph_lock:  # the table is shared; a put may evict
            _programs[key] = found[key]


@dataclass(frozen=True)
class Step:
    """One schedule entry, by positions in the graph's topological order (so plans are reusable)."""

    root: int
    inputs: tuple[int, ...]
    program: Any  # None for an alias of inputs[0] or an empty output
    work: int
    alias: bool
    scratch_bytes: int = 0  # a temporary passed after the inputs (e.g. GEMM partial sums)
    label: str = ""  # the fused ops, for the profiler
    flops: int = 0
    out_bytes: int = 0  # the output's size, allocated per run
    asynchronous: bool = False  # the program can be enqueued (`launch`) without waiting for its time


# by graph_key, or by an object a caller keys a structure with (autograd's backward plans)
_plans = LRU("plans")


def graph_key(order: list[Node], targets: list[Node]) -> tuple:
    """The structure of a graph: ops, args, shapes, dtypes and wiring; realized nodes are leaves."""
    # runs for every node of every realization, so kept lean: nodes hash by identity (in C, no id()
    # calls) and positions are looked up with map (no list comprehension frame per node)
    position = {n: i for i, n in enumerate(order)}.__getitem__
    entries: list[tuple] = []
    append = entries.append
    for n in order:
        if n.buffer is not None:
            append((n.shape, n.dtype, n.device))  # dtypes are singletons: their identity is the key
        else:
            append((n.op, n.arg, n.shape, n.dtype, n.device, tuple(map(position, n.srcs))))
    append(tuple(map(position, targets)))
    return tuple(entries)


@dataclass
class Draft:
    """A plan whose new kernels are still to be compiled: drafted under `graph_lock` (it reads the
    graph), finished outside it. Rows: (root, inputs, kernel key or None, alias, label, flops, out bytes)."""

    key: Hashable
    rows: list[tuple[int, tuple[int, ...], tuple | None, bool, str, int, int]]
    missing: Missing
    found: dict[tuple, Any]  # this plan's programs, whatever the cache evicts meanwhile

    def finish(self) -> list[Step]:
        """Compile what is missing, make the steps and store them under the plan's key."""
        if self.missing:
            _build(self.missing, self.found)
        steps = []
        for root, inputs, key, alias, label, flops, out_bytes in self.rows:
            if alias:
                steps.append(Step(root, inputs, None, 0, True))
                continue
            prog, work, scratch = self.found[key] if key is not None else (None, 0, 0)
            steps.append(Step(root, inputs, prog, work, False, scratch, label, flops, out_bytes,
                              hasattr(prog, "launch")))
        with graph_lock:
            _plans[self.key] = steps
        return steps


def plan(key: Hashable, order: list[Node], targets: list[Node]) -> Draft:
    """Schedule a graph (first sight of its structure) as position-based rows, with the source of its
    new kernels."""
    items = create_schedule(targets, order)
    if flags.debug_level() >= 2:
        for i, it in enumerate(items):
            kind = "alias" if it.alias_of is not None else "kernel"
            print(f"fusegrad: schedule[{i}] {kind} {_describe(it)}", file=sys.stderr)
    kernels = [it for it in items if it.alias_of is None and it.spec.root.numel > 0]
    keys = [kernel_key(it.spec) for it in kernels]
    key_of = dict(zip(map(id, kernels), keys))
    pos = {id(n): i for i, n in enumerate(order)}
    rows = []
    for it in items:
        root = it.spec.root
        if it.alias_of is not None:
            rows.append((pos[id(root)], (pos[id(it.alias_of)],), None, True, "", 0, 0))
        else:
            kernel = key_of.get(id(it))
            label, flops = _kernel_info(it) if kernel is not None else ("", 0)
            rows.append((pos[id(root)], tuple(pos[id(n)] for n in it.spec.inputs), kernel, False, label, flops,
                         root.numel * root.dtype.itemsize))
    found: dict[tuple, Any] = {}
    return Draft(key, rows, _sources(kernels, keys, found), found)


def _packed_outputs(steps: list[Step], order: list[Node], packed: list[Node]) -> dict[int, Any]:
    """Output buffers for the packed nodes that kernels compute: byte ranges of one allocation, in
    the order given. A packed node that aliases another kernel's output of its size (a bias
    gradient reshaped from a sum another kernel also reads) gets that output placed in its range;
    one computed by no kernel of these steps is left out."""
    rank = {id(n): k for k, n in enumerate(packed)}  # walks the steps, not the (larger) graph
    kernels = {step.root for step in steps if not step.alias and step.program is not None}
    computed = []
    for step in steps:
        k = rank.get(id(order[step.root]))
        if k is None:
            continue
        if step.root in kernels:
            computed.append((k, step.root))
        elif step.alias and step.inputs[0] in kernels and id(order[step.inputs[0]]) not in rank:
            source, node = order[step.inputs[0]], order[step.root]
            if source.numel * source.dtype.itemsize == node.numel * node.dtype.itemsize:
                computed.append((k, step.inputs[0]))
                kernels.discard(step.inputs[0])  # an output aliased twice sits in the first range only
    computed.sort()
    chosen = [i for _, i in computed]
    if len(chosen) < 2 or len({order[i].device for i in chosen}) != 1:
        return {}
    device = registry.get(order[chosen[0]].device)
    if not hasattr(device, "sub_buffer"):  # a device without byte ranges of buffers: separate allocations
        return {}
    sizes = [order[i].numel * order[i].dtype.itemsize for i in chosen]
    base = device.alloc(sum(sizes))
    outputs, offset = {}, 0
    for i, size in zip(chosen, sizes):
        outputs[i] = device.sub_buffer(base, offset, size)
        offset += size
    return outputs


def run(steps: list[Step], order: list[Node], packed: list[Node] = ()) -> None:
    """Launch a plan's kernels on the graph `order`, then attach their outputs to its nodes."""
    preallocated = _packed_outputs(steps, order, packed) if packed else {}
    # read once per realization, not per launch: the environment lookup and the launch records cost
    # more than a small kernel's own time, and without a profiler or debug output nobody reads them
    timed = profiling()
    recording = capture._state.recording  # capture.current(), without a call per realization
    devices: dict[str, Any] = {}
    computed: dict[int, Any] = {}  # position -> buffer; nodes get them at the end (see the module docstring)
    own = computed.get
    for step in steps:
        if step.alias:
            source = step.inputs[0]
            computed[step.root] = own(source) or order[source].buffer
            continue
        root = order[step.root]
        device = devices.get(root.device)
        if device is None:
            device = devices[root.device] = registry.get(root.device)
        out = preallocated.get(step.root) or device.alloc(step.out_bytes)
        program = step.program
        if program is not None:
            buffers = [out]
            buffers += [own(i) or order[i].buffer for i in step.inputs]
            if step.scratch_bytes:
                buffers.append(device.alloc(step.scratch_bytes))
            if recording is not None:
                recording.launches.append(capture.Launch(program, out, buffers[1:1 + len(step.inputs)],
                                                         buffers[1 + len(step.inputs):], step.flops, step.label,
                                                         root.shape))
            if step.asynchronous and not timed:
                program.launch(buffers)  # an asynchronous device: enqueue without waiting for a time
            else:
                seconds = program(buffers)
                if timed:
                    moved = sum(b.nbytes for b in buffers)
                    record(KernelLaunch(program.name, root.device, seconds, moved, step.work, root.shape,
                                        step.label, step.flops))
        computed[step.root] = out
    with graph_lock:
        for position, buffer in computed.items():
            node = order[position]
            if node.buffer is None:  # another thread may have computed it meanwhile: its buffer stays
                node.set_buffer(buffer)


def is_view_of_buffer(node: Node) -> bool:
    while node.buffer is None and node.op in MOVEMENT:
        node = node.srcs[0]
    return node.buffer is not None


def pending_nodes(nodes: list[Node]) -> list[Node]:
    """The nodes a realization computes: those without a buffer that are not views of one."""
    return [n for n in nodes if n.buffer is None and not is_view_of_buffer(n)]


def steps_for(key: Hashable, order: list[Node], targets: list[Node]) -> list[Step] | Draft:
    """The plan stored under `key`, or on first sight a draft of it from the graph (`order`:
    toposort(targets)) to `finish()` after releasing `graph_lock`, which the caller holds."""
    steps = _plans.get(key)
    if steps is None:
        return plan(key, order, targets)
    if flags.debug_level() >= 2:
        print(f"fusegrad: schedule reused ({len(steps)} steps)", file=sys.stderr)
    return steps


def realize(nodes: list[Node], packed: list[Node] = ()) -> None:
    """Compute every node that has no buffer yet, reusing the plan of a graph seen before.

    The `packed` nodes (a subset) get their buffers back to back in one allocation, in that order.
    A view of a buffer (movement ops only) is already computed and stays a view: copying it into
    a buffer of its own would cut it off from later in-place updates of what it views.
    """
    with graph_lock:
        pending = pending_nodes(nodes)
        if not pending:
            return
        order = toposort(pending)
        steps = steps_for(graph_key(order, pending), order, pending)
    if isinstance(steps, Draft):
        steps = steps.finish()
    run(steps, order, packed)

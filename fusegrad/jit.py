"""`fg.jit`: run a function's kernels again without running its Python.

Per input signature (shapes, dtypes, devices of the tensor arguments; values of the Python
scalars), a call runs normally while every kernel launch is recorded, and later calls replay the
recording: one native call runs all kernels, with the inputs' buffers swapped in. A recording
that cannot be replayed on first sight (the first optimizer step creates and lays out state) is
simply made again on the next call; a second failure raises JitError.

What a replay carries from one call to the next is the state found through the function: the
parameters, buffers and gradients of the modules, and the state of the optimizers, that it
reaches by name (globals and closures the code names, its arguments, and the attributes of
those), plus global tensors it names. A state tensor the step replaces (the optimizer's
parameters and moments, a gradient, a running mean) is given two buffers that swap roles after
each replay, so it is updated in place as PyTorch does. Before each replay the guards check that
this state is still what the recording left (else the function is captured again) and
optimizers write changed hyperparameters into the device scalars their kernels read.

Intermediates that die inside the call share one arena, planned from their lifetimes; a replay
allocates nothing for them. The tensors a call returns stay valid after later calls, as in JAX:
each output allocation has a small pool of buffers (`engine/memory.py`'s `OutputPool`), and a
replay writes into one that no live result still uses; only when every pooled buffer is still
held (results kept across calls) does it allocate a fresh one. A loop that drops its results
(`loss = step(x, y)`) cycles through two buffers and allocates nothing per replay.
"""
from __future__ import annotations

import functools
import threading
import warnings
import weakref
from typing import Any, Callable, Sequence

import numpy as np

from . import autocast_state
from . import random as fgrandom
from .engine import capture
from .engine.memory import OutputPool, lifetimes, plan_arena
from .engine.profile import KernelLaunch, profiling, record
from .errors import JitError
from .graph import node as G
from .graph.node import Node
from .graph.ops import MOVEMENT
from .jit_buckets import BucketedFunction, Buckets, map_tensors
from .jit_state import Slot, describe, reachable
from .nn.module import Module
from .runtime import device_errors, registry
from .runtime.buffer import Buffer
from .runtime.lru import LRU
from .tensor import Tensor, realize


def _base(node: Node) -> tuple[Node, tuple]:
    """The node whose buffer `node` reads, and the chain of views in between."""
    chain = []
    while node.buffer is None and node.op in MOVEMENT:
        chain.append((node.op, node.arg, node.shape))
        node = node.srcs[0]
    return node, tuple(chain)


def _own_inputs(args: Any) -> Any:
    """The arguments with views of buffers copied into their own (a replay swaps in an argument's
    buffer, and the captured kernels read a view through its base's layout)."""
    def own(t: Tensor) -> Tensor:
        if t._node.buffer is None and _base(t._node)[0].buffer is not None:
            return t.contiguous()
        return t

    return map_tensors(args, own)


def _materialize(tensors: list[Tensor]) -> None:
    """Realize the tensors that are not views of a buffer already (views stay views)."""
    pending = [t for t in tensors if _base(t._node)[0].buffer is None]
    if pending:
        realize(*pending)


# ---- signatures ---------------------------------------------------------------------------------
def _signature(args: tuple, kwargs: dict) -> tuple[tuple, list[Tensor]]:
    """A hashable key for the arguments (tensors by shape/dtype/device, scalars by value) and the autocast
    state, and the argument tensors in order."""
    tensors: list[Tensor] = []
    firsts: dict[int, int] = {}
    # the autocast state decides which casts the recorded ops made: a replay needs the same one
    return (_sig(args, tensors, firsts), _sig(kwargs, tensors, firsts), autocast_state.key()), tensors


def _sig(x: Any, tensors: list[Tensor], firsts: dict[int, int]) -> Any:
    """One argument's part of the key, its tensors appended to `tensors`. A module-level function, not a
    closure: a recursive closure is a reference cycle, which kept every call's argument tensors alive
    until the cyclic collector ran (and their memory from the output pools)."""
    if isinstance(x, Tensor):
        index = firsts.setdefault(id(x), len(tensors))
        tensors.append(x)
        return (x._node.shape, x._node.dtype, x._node.device, x.requires_grad, index)
    if x is None or isinstance(x, (bool, int, float, complex, str, bytes)):
        return (type(x), x)
    if isinstance(x, (tuple, list)):
        return (type(x), tuple(_sig(v, tensors, firsts) for v in x))
    if isinstance(x, dict):
        return (dict, tuple((k, _sig(v, tensors, firsts)) for k, v in x.items()))
    return (object, id(x))  # modules, optimizers and other objects: by identity


def _flatten_outputs(out: Any, leaves: list[Tensor]) -> Any:
    """The structure of a return value with tensors replaced by their index in `leaves`."""
    if isinstance(out, Tensor):
        leaves.append(out)
        return len(leaves) - 1
    if out is None:
        return None
    if isinstance(out, (tuple, list)):
        return type(out)(_flatten_outputs(v, leaves) for v in out)
    if isinstance(out, dict):
        return {k: _flatten_outputs(v, leaves) for k, v in out.items()}
    raise JitError(f"a function compiled with fg.jit may return tensors, None, and tuples, lists and dicts of "
                   f"them; it returned a {type(out).__name__}, which a replay could not recompute")


def _rebuild(structure: Any, leaves: list[Tensor]) -> Any:
    if isinstance(structure, int):
        return leaves[structure]
    if structure is None:
        return None
    if isinstance(structure, (tuple, list)):
        return type(structure)(_rebuild(v, leaves) for v in structure)
    return {k: _rebuild(v, leaves) for k, v in structure.items()}


class _NotReplayable(JitError):
    """The call ran (its results are attached) but its recording cannot be replayed."""

    def __init__(self, message: str, results: Any = None):
        super().__init__(message)
        self.results = results


class _Unsupported(_NotReplayable):
    """The device cannot replay at all: the signature runs eagerly from now on."""


_EAGER = object()  # a signature whose device cannot replay


# ---- one captured call --------------------------------------------------------------------------
_START_READ, _START_NONE, _START_UNREAD = range(3)


class _Replay:
    """A recorded call ready to replay: the kernel sequence, its slots and its guards."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.device = ""
        self.sequence: Any = None
        self.slot_arrays: list[Any] = []  # one pointer table per parity of the buffer swaps
        self.parity = 0
        self.input_slots: list[int | None] = []
        self.pairs: list[tuple[Buffer, Buffer]] = []  # (start, end) allocations of carried state
        self.swaps: list[tuple[Node, Buffer, Buffer]] = []  # state base nodes and their two buffers
        self.random_states: list[tuple[Buffer, int]] = []  # (seed/offset state buffer, numbers drawn)
        self.checks: list[Callable[[], bool]] = []
        self.reports_errors = False  # a kernel checks data through the device's error word
        self.state: list[tuple[Slot, int, Any, Node | None, bool]] = []
        # for `valid`: (getter, end node, requires_grad) of the state read, and getters of state that was None
        self.read_checks: list[tuple[Callable[[], Any], Node | None, bool]] = []
        self.none_checks: list[Callable[[], Any]] = []
        # state read and left in place, whose memory something else may swap (another jitted function
        # updating the same parameters): (slot, pointer-table index, root bytes, offset, root now)
        self.followed: list[list[Any]] = []
        self.training: list[tuple[Module, bool]] = []
        self.pools: list[OutputPool] = []  # one per allocation the results live in
        self.structure: Any = None
        self.keep: list[Any] = []  # buffers the replay reads or writes, kept alive
        self.launches: list[tuple[Any, list[tuple[int, int]], int, str, int, tuple[int, ...]]] = []
        self.kernels = 0
        self.flops = 0
        self.bytes_moved = 0
        self.arena_bytes = 0
        self.live_bytes = 0

    def valid(self) -> bool:
        for module, training in self.training:
            if module.training is not training:
                return False
        for get, end_node, requires_grad in self.read_checks:
            current = get()
            if current is None or current._node is not end_node or current.requires_grad is not requires_grad:
                return False
        for get in self.none_checks:
            if get() is not None:
                return False
        for node, start_buffer, end_buffer in self.swaps:  # state another function moved since: capture again
            if node.buffer is not (end_buffer if self.parity == 0 else start_buffer):
                return False
        for entry in self.followed:
            slot, _, nbytes, offset, _ = entry
            buf = _base(slot.get()._node)[0].buffer
            root, at = (buf.base, buf.offset) if buf.base is not None else (buf, 0)
            if root.nbytes != nbytes or at != offset:
                return False
            entry[4] = root
        return all(check() for check in self.checks)

    def run(self, tensors: list[Tensor]) -> Any:
        _materialize(tensors)
        device = registry.get(self.device)
        table = self.slot_arrays[self.parity]
        # outputs first: choosing a pool buffer may move kept results out of it (sequence_keeps_pointers),
        # and one of them may be an argument of this call, read where it moved to
        for pool in self.pools:
            buf = pool.choose(device)
            if pool.slot is not None:
                table[pool.slot] = device.pointer(buf)
        for t, index in zip(tensors, self.input_slots):
            if index is not None:
                table[index] = device.pointer(t._node.buffer)
        for _, index, _, _, root in self.followed:  # read where the state lives now
            table[index] = device.pointer(root)
        if self.random_states:
            gen = fgrandom._gen
            for buf, count in self.random_states:  # device memory on GPUs: written through the device
                device.copy_in(buf, np.array([gen.seed, gen.offset], dtype=np.uint64))
                gen.offset += count
        if profiling():
            self._run_profiled(table)
        else:
            self.sequence.run(table)
        if self.reports_errors:  # raised before the state swaps: the carried state keeps its old values
            device_errors.raise_pending(self.device)
        if self.pairs:
            self.parity ^= 1
            for node, start_buffer, end_buffer in self.swaps:  # the state's nodes follow the newest memory
                node.buffer = start_buffer if self.parity else end_buffer
        for slot, start_kind, end, _, _ in self.state:
            if start_kind != _START_READ and slot.get() is not end:
                slot.set(end)
        return self.results()

    def _run_profiled(self, table: Any) -> None:
        """Under fg.profile(): the same kernels launched one by one, each timed and recorded."""
        for program, args, nbytes, label, flops, shape in self.launches:
            seconds = program.call_pointers([table[slot] + offset for slot, offset in args])
            record(KernelLaunch(program.name, self.device, seconds, nbytes, 0, shape, label, flops))

    def results(self) -> Any:
        """Fresh tensors over the memory the last call wrote its outputs to."""
        device = registry.get(self.device)
        leaves: list[Tensor | None] = [None] * sum(len(pool.ranges) for pool in self.pools)
        for pool in self.pools:
            for (leaf, shape, dtype, _, _), buf in zip(pool.ranges, pool.hand_out(device)):
                leaves[leaf] = Tensor._from_node(G.buffer_node(buf, shape, dtype, buf.device))
        return _rebuild(self.structure, leaves)


def _capture(fn: Callable, name: str, args: tuple, kwargs: dict, tensors: list[Tensor]) -> tuple[_Replay, Any]:
    """Run `fn` once while recording, and turn the recording into a replay."""
    _materialize(tensors)
    slots, modules = reachable(fn, args, kwargs)
    _materialize([t for t in (s.get() for s in slots) if isinstance(t, Tensor)])
    start_nodes = {id(s): (s.get()._node if isinstance(s.get(), Tensor) else None) for s in slots}
    recording = capture.begin()
    try:
        out = fn(*args, **kwargs)
        leaves: list[Tensor] = []
        structure = _flatten_outputs(out, leaves)
        # state the call created (an optimizer's first moments) is found again at the end
        end_slots, _ = reachable(fn, args, kwargs)
        known = {(id(s.holder), s.key) for s in slots}
        for s in end_slots:
            if (id(s.holder), s.key) not in known:
                slots.append(s)
                start_nodes[id(s)] = None
        state_tensors = [t for t in (s.get() for s in slots) if isinstance(t, Tensor)]
        _materialize(leaves + state_tensors)
        replay = _Replay(name)
        leaf_nodes = [t._node for t in _own_outputs(leaves, recording, tensors, state_tensors)]
    finally:
        capture.end()
    # the recorded call ran for real: a bad index it met raises here, before any result is returned
    replay.reports_errors = device_errors.uses_word([b for launch in recording.launches for b in launch.inputs])
    if replay.reports_errors:
        for device in {launch.out.device for launch in recording.launches}:
            device_errors.raise_pending(device)
    del out, leaves, state_tensors, end_slots  # the call's autograd graph: its buffers may now die
    replay.structure = structure
    replay.training = [(m, m.training) for m in modules]
    replay.checks = recording.replay_checks
    try:
        _build(replay, recording, tensors, slots, start_nodes, leaf_nodes)
    except JitError as e:
        results = _rebuild(structure, [Tensor._from_node(n) for n in leaf_nodes])
        raise (type(e) if isinstance(e, _NotReplayable) else _NotReplayable)(str(e), results) from None
    return replay, replay.results()


def _own_outputs(leaves: list[Tensor], recording: capture.Recording, inputs: list[Tensor],
                 state: list[Tensor]) -> list[Tensor]:
    """Outputs in buffers of their own: a result that is an input, a state tensor or a view gets a copy."""
    written = {id(launch.out) for launch in recording.launches}
    shared = {id(_base(t._node)[0].buffer) for t in inputs + state}
    owned = []
    for t in leaves:
        node = t._node
        if node.buffer is None or id(node.buffer) not in written or id(node.buffer) in shared:
            t = Tensor._from_node(G.contiguous(node)).realize()
        owned.append(t)
    return owned


def _build(replay: _Replay, recording: capture.Recording, inputs: list[Tensor], slots: list[Slot],
           start_nodes: dict[int, Node | None], leaf_nodes: list[Node]) -> None:
    """Turn a recording into a replay: find the carried state, plan the arena, generate the runner.

    Memory is handled per allocation ("root"): a buffer that is a byte range of another (packed
    gradients) is its root plus an offset. Input buffers are swapped whole on every call.
    """
    launches = recording.launches
    if not launches:
        raise JitError("the function ran no kernels; fg.jit has nothing to replay")
    devices = {launch.out.device for launch in launches}
    if len(devices) > 1:
        raise JitError(f"fg.jit captures one device per function; this one ran kernels on {sorted(devices)}")
    replay.device = devices.pop()
    device = registry.get(replay.device)
    if not hasattr(device, "sequence") or not hasattr(device, "sub_buffer"):
        raise _Unsupported(f"fg.jit cannot replay kernels on {replay.device} yet (the device has no captured "
                           "sequences or byte ranges of buffers); the function runs eagerly there")
    input_ids = {id(t._node.buffer) for t in inputs}

    def place(b: Buffer) -> tuple[Buffer, int]:
        if b.base is None or id(b) in input_ids:
            return b, 0
        return b.base, b.offset

    first_write, last_use, read_first, roots = lifetimes(launches, place)
    _carried_state(replay, slots, start_nodes, place, read_first, first_write, input_ids)
    paired = {id(b) for pair in replay.pairs for b in pair}

    # roots written by the call that nothing references afterwards share an arena; every other
    # root keeps its memory (read-first ones include constants only the recording still holds)
    outputs = {id(place(n.buffer)[0]) for n in leaf_nodes}
    keep = {rid: r for rid, r in roots.items() if rid not in first_write or rid in paired or rid in outputs}
    refs = {rid: weakref.ref(r) for rid, r in roots.items() if rid not in keep}
    nbytes = {rid: r.nbytes for rid, r in roots.items()}
    slot_of, launch_args, replay.bytes_moved = _launch_arguments(launches, place)
    for slot, kind, end, end_node, _ in replay.state:
        if kind == _START_READ and end_node is start_nodes.get(id(slot)):
            root, offset = place(_base(end_node)[0].buffer)
            if id(root) in slot_of and id(root) not in paired:
                replay.followed.append([slot, slot_of[id(root)], root.nbytes, offset, root])
    programs = [launch.program for launch in launches]
    replay.launches = [(launch.program, args, sum(b.nbytes for b in [launch.out, *launch.inputs, *launch.scratch]),
                        launch.label, launch.flops, launch.shape) for launch, args in zip(launches, launch_args)]
    replay.kernels = len(launches)
    replay.flops = sum(launch.flops for launch in launches)
    del roots, launches  # the recording's references: what else still holds a buffer decides its fate
    recording.launches = []
    for rid, ref in refs.items():
        alive = ref()
        if alive is not None:  # still referenced (a gradient the call set): keeps its memory
            keep[rid] = alive
    dead = [rid for rid in refs if rid not in keep]
    offsets, replay.arena_bytes, replay.live_bytes = plan_arena(
        [nbytes[rid] for rid in dead], [(first_write[rid], last_use[rid]) for rid in dead])
    arena = device.alloc(replay.arena_bytes) if dead else None

    replay.sequence = device.sequence(list(zip(programs, launch_args)), len(slot_of))
    tables = [replay.sequence.new_slots() for _ in range(2 if replay.pairs else 1)]
    for table in tables:
        if arena is not None:
            base = device.pointer(arena)
            for rid, offset in zip(dead, offsets):
                table[slot_of[rid]] = base + offset
        for rid, r in keep.items():
            table[slot_of[rid]] = device.pointer(r)
    # replay 1 reads the state the capture wrote (end roots) and writes the other memory; they alternate
    for parity, table in enumerate(tables):
        for start_root, end_root in replay.pairs:
            newest, other = (end_root, start_root) if parity == 0 else (start_root, end_root)
            table[slot_of[id(start_root)]] = device.pointer(newest)
            table[slot_of[id(end_root)]] = device.pointer(other)
    replay.slot_arrays = tables
    replay.input_slots = [slot_of.get(id(t._node.buffer)) for t in inputs]
    replay.random_states = list(recording.random_states)
    # the pools hold the outputs' memory (a root evicted from a pool lives on in its results)
    replay.keep = [r for rid, r in keep.items() if rid not in outputs] + [arena]
    replay.keep += [buf for buf, _ in recording.random_states]
    pools: dict[int, OutputPool] = {}
    for leaf, n in enumerate(leaf_nodes):
        root, offset = place(n.buffer)
        pool = pools.setdefault(id(root), OutputPool(slot_of.get(id(root)), root, []))
        pool.ranges.append((leaf, n.shape, n.dtype, offset, n.buffer.nbytes))
    replay.pools = list(pools.values())


def _carried_state(replay: _Replay, slots: list[Slot], start_nodes: dict[int, Node | None],
                   place: Callable[[Buffer], tuple[Buffer, int]], read_first: set[int], first_write: dict[int, int],
                   input_ids: set[int]) -> None:
    """Classify each state slot by how the call used its start value; pair the memory of state that
    the call read and replaced, so that the two swap roles after every replay."""
    root_pairs: dict[int, tuple[Buffer, Buffer]] = {}
    swaps: dict[int, tuple[Node, Buffer, Buffer]] = {}
    for slot in slots:
        current = slot.get()
        end = current if isinstance(current, Tensor) else None
        start = start_nodes.get(id(slot))
        start_buffer = _base(start)[0].buffer if start is not None else None
        if start is None:
            kind = _START_NONE
        elif id(place(start_buffer)[0]) in read_first:
            kind = _START_READ
        else:
            kind = _START_UNREAD
        if kind == _START_READ and end is None:
            raise JitError(f"fg.jit cannot replay a call that reads {describe(slot)} and then sets it to None")
        if kind == _START_READ and end._node is not start:
            (end_base, end_chain), (_, start_chain) = _base(end._node), _base(start)
            end_buffer = end_base.buffer
            if end_buffer is not start_buffer:
                (start_root, start_offset), (end_root, end_offset) = place(start_buffer), place(end_buffer)
                if end_chain != start_chain or end_buffer.nbytes != start_buffer.nbytes or \
                        start_offset != end_offset or start_root.nbytes != end_root.nbytes or \
                        id(end_root) not in first_write or id(start_buffer) in input_ids:
                    raise JitError(f"fg.jit cannot carry the state held in {describe(slot)} from one call to the "
                                   "next: the call replaced it with a tensor of another layout or buffer")
                existing = root_pairs.setdefault(id(start_root), (start_root, end_root))
                if existing[1] is not end_root:
                    raise JitError(f"fg.jit cannot carry the state held in {describe(slot)}: its memory is "
                                   "replaced by two different buffers")
                swaps[id(end_base)] = (end_base, start_buffer, end_buffer)
        end_node, requires_grad = (end._node, end.requires_grad) if end is not None else (None, False)
        replay.state.append((slot, kind, end, end_node, requires_grad))
        if kind == _START_READ:
            replay.read_checks.append((slot.getter(), end_node, requires_grad))
        elif kind == _START_NONE:
            replay.none_checks.append(slot.getter())
    replay.pairs = list(root_pairs.values())
    replay.swaps = list(swaps.values())


def _launch_arguments(launches: list[capture.Launch], place: Callable[[Buffer], tuple[Buffer, int]]
                      ) -> tuple[dict[int, int], list[list[tuple[int, int]]], int]:
    """A slot per root, each launch's (slot, byte offset) arguments, and the bytes the launches touch."""
    slot_of: dict[int, int] = {}
    launch_args: list[list[tuple[int, int]]] = []
    moved = 0
    for launch in launches:
        args = []
        for b in [launch.out, *launch.inputs, *launch.scratch]:
            root, offset = place(b)
            args.append((slot_of.setdefault(id(root), len(slot_of)), offset))
            moved += b.nbytes
        launch_args.append(args)
    return slot_of, launch_args, moved


# ---- the decorator ------------------------------------------------------------------------------
class JitFunction:
    """A function compiled by `fg.jit`; call it like the function."""

    def __init__(self, fn: Callable, check_errors: str = "each_call"):
        if check_errors not in ("each_call", "at_sync"):
            raise ValueError(f"check_errors must be 'each_call' or 'at_sync', got {check_errors!r}")
        self.fn = fn
        self.check_errors = check_errors
        functools.update_wrapper(self, fn)
        # None: the last capture was not replayable; _EAGER: the device cannot replay at all
        label = f"jit_variants[{getattr(fn, '__name__', 'fn')} at {id(self):#x}]"
        self._variants = LRU("jit_variants", label=label)
        self.captures = 0
        self.replays = 0
        # one call at a time per function object: the variants, their buffers and results are shared
        self._lock = threading.RLock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if capture.current() is not None:  # inside another capture on this thread: part of that recording
            return self.fn(*args, **kwargs)
        with self._lock:
            return self._call(args, kwargs)

    def _call(self, args: tuple, kwargs: dict) -> Any:
        args, kwargs = _own_inputs(args), _own_inputs(kwargs)
        key, tensors = _signature(args, kwargs)
        known = key in self._variants
        replay = self._variants.get(key)
        if replay is _EAGER:
            return self.fn(*args, **kwargs)
        if replay is not None:
            if replay.valid():
                self.replays += 1
                return replay.run(tensors)
        # capture (again: state or hyperparameters changed since the last capture)
        try:
            replay, result = _capture(self.fn, getattr(self.fn, "__name__", "fn"), args, kwargs, tensors)
        except _Unsupported as e:
            warnings.warn(str(e), RuntimeWarning, stacklevel=3)
            self._variants.put(key, _EAGER)
            return e.results
        except _NotReplayable as e:
            # first sight: state is often created or re-laid out by the first call; try again next call
            if known and self._variants[key] is None:
                raise JitError(str(e)) from None
            self._variants.put(key, None)
            return e.results
        if self.check_errors == "at_sync":  # the error word is read at the next synchronization instead
            replay.reports_errors = False
        self._variants.put(key, replay)
        self.captures += 1
        return result

    def memory_plan(self) -> list[dict[str, int]]:
        """Per captured signature: the intermediates' arena size and the most bytes live at once."""
        return [{"kernels": r.kernels, "arena_bytes": r.arena_bytes, "live_bytes": r.live_bytes}
                for r in self._variants.values() if isinstance(r, _Replay)]

    def reset(self) -> None:
        """Forget every capture (the next call runs normally)."""
        with self._lock:
            self._variants.clear()


def jit(fn: Callable | None = None, *, buckets: bool | Sequence[int] | None = None, batch_dim: int = 0,
        check_errors: str = "each_call") -> Any:
    """Compile a function (e.g. a whole training step) into a replayable kernel sequence.

    Use as `@fg.jit` or `fg.jit(fn)`. See the module docstring for what is captured and replayed.
    `buckets` (True: powers of two, or increasing sizes) pads the tensor arguments along `batch_dim`
    to a bucket and slices the results back, so that many batch sizes share a few captures; valid only
    where each output row depends on its own input row (see `fusegrad/jit_buckets.py`).
    `check_errors`: a replay whose kernels check data (indices, labels) raises what they found
    before it returns and before its state changes ("each_call", which waits for a GPU to finish
    the replay), or at the next synchronization, a value read or `fg.cuda.synchronize()` ("at_sync":
    replays queue up on a GPU; for loops such as sampling whose inputs are their own outputs).
    """
    if fn is None:
        return functools.partial(jit, buckets=buckets, batch_dim=batch_dim, check_errors=check_errors)
    if not callable(fn):
        raise TypeError(f"fg.jit expects a function, got {type(fn).__name__}")
    if buckets is None or buckets is False:
        return JitFunction(fn, check_errors)
    return BucketedFunction(JitFunction(fn, check_errors), Buckets(fn, buckets, batch_dim))

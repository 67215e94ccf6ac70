"""Lower one scheduled kernel (a root node over loaded inputs) to loop IR.

Movement ops become index arithmetic: each node is evaluated at symbolic coordinates, and a
movement op maps its coordinates to its source's. Padding adds bounds that guard every load
beneath it, so no generated load can leave its buffer. Reductions open loops in place.
The walk is iterative (an explicit task stack), so graph depth is not bounded by recursion.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..dtypes import NARROW, DType, bool_, int32, int64
from ..graph.node import Node
from ..graph.ops import ELEMENTWISE, REDUCE, Op
from ..graph.symbolic import ZERO, Bound, Lin, bound, flat_index, fold_bounded_mod, replace_atoms, unflatten, var
from .ir import (Accumulate, Alu, Cond, Const, Define, DefineAcc, EndLoop, Expr, Index, Load, Loop, LoopIR, Param,
                 Rand, Ref, Store)

Coords = tuple[Lin, ...]
Valid = tuple[Bound, ...]


@dataclass
class KernelSpec:
    """What the scheduler hands to codegen: compute `root`, reading `inputs` from buffers."""

    root: Node
    inputs: list[Node]


def source_coords(node: Node, coords: Coords) -> tuple[Coords, list[Bound] | None]:
    """Coordinates in node.srcs[0] of element `coords` of movement node `node`.

    Returns the bounds that must hold for the element to come from the source (PAD), or None
    when the element is padding everywhere.
    """
    src, arg = node.srcs[0], node.arg
    if node.op is Op.RESHAPE:
        return reshape_coords(coords, node.shape, src.shape), []
    if node.op is Op.PERMUTE:
        out: list[Lin] = [ZERO] * len(coords)
        for i, axis in enumerate(arg):
            out[axis] = coords[i]
        return tuple(out), []
    if node.op is Op.EXPAND:
        return tuple(ZERO if s == 1 else c for c, s in zip(coords, src.shape)), []
    if node.op is Op.SHRINK:
        return tuple(c + lo for c, (lo, _) in zip(coords, arg)), []
    if node.op is Op.FLIP:
        return tuple(num_flip(c, s) if i in arg else c for i, (c, s) in enumerate(zip(coords, src.shape))), []
    assert node.op is Op.PAD
    bounds: list[Bound] = []
    for d, ((lo, _), s) in enumerate(zip(arg, src.shape)):
        c, low = coords[d], lo
        fold = fold_bounded_mod(c, lo, lo + s)
        if fold is not None:  # past this bound every load beneath sees the division-free form
            coords = tuple(replace_atoms(x, fold[0]) for x in coords)
            c, low = coords[d], fold[1]
        b = bound(c, low, lo + s)
        if b is False:
            return coords, None
        if b is not True:
            bounds.append(b)
    return tuple(c - lo for c, (lo, _) in zip(coords, arg)), bounds


def reshape_coords(coords: Coords, shape: tuple[int, ...], src_shape: tuple[int, ...]) -> Coords:
    """Source coordinates of a reshape, mapped per group of dims whose sizes multiply to the same
    product on both sides: splitting or merging one dim then never divides another dim's index
    (a whole-tensor flat index gave e.g. (26*i2+i3)/52 for a split of i2, which the simplifier
    cannot reduce to i2/2, and every pooled element paid for the division). Size-1 dims take no
    part: a valid element has coordinate 0 there, and any other value (a padded coordinate read
    under its bound) never reaches memory."""
    keep = [d for d, s in enumerate(shape) if s != 1]
    dims = [s for s in src_shape if s != 1]
    mapped: list[Lin] = []
    i = j = 0
    while i < len(keep) or j < len(dims):
        i0, j0 = i, j
        p = q = 1
        while i == i0 or j == j0 or p != q:  # grow the smaller side until both cover the same product
            if (p <= q or j == len(dims)) and i < len(keep):
                p *= shape[keep[i]]
                i += 1
            elif j < len(dims):
                q *= dims[j]
                j += 1
            else:
                break
        group = [coords[d] for d in keep[i0:i]]
        mapped.extend(_split_index(flat_index(tuple(group), tuple(shape[d] for d in keep[i0:i])), dims[j0:j]))
    it = iter(mapped)
    return tuple(ZERO if s == 1 else next(it) for s in src_shape)


def _split_index(index: Lin, dims: list[int]) -> list[Lin]:
    """Row-major coordinates of `index` in dims (all > 1). The first needs no remainder: a valid
    element's index is in range, and a padded one (beyond it) is read only under its bound."""
    if 0 in dims:  # an empty array has no elements to address
        return [ZERO] * len(dims)
    if not dims:
        return []
    rest = unflatten(index, tuple(dims[1:])) if len(dims) > 1 else ()
    return [index // math.prod(dims[1:]), *rest]


def num_flip(c: Lin, size: int) -> Lin:
    return (c * -1) + (size - 1)


class _Builder:
    def __init__(self, spec: KernelSpec):
        self.spec = spec
        self.params = {id(n): i + 1 for i, n in enumerate(spec.inputs)}
        self.stmts: list = []
        self.scopes: list[dict] = [{}]
        self.counter = 0
        self.reduce_work = 1

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def lookup(self, key: tuple) -> Expr | None:
        for scope in reversed(self.scopes):
            if key in scope:
                return scope[key]
        return None

    def define(self, key: tuple, value: Expr, dtype: DType) -> Expr:
        name = self.fresh("v")
        self.stmts.append(Define(name, value, dtype))
        ref = Ref(name, dtype)
        self.scopes[-1][key] = ref
        return ref

    def evaluate(self, root: Node, coords: Coords) -> Expr:
        # a task is (kind, node, coords, valid, extra); values holds evaluated operands
        tasks: list[tuple] = [("visit", root, coords, (), None)]
        values: list[Expr] = []
        while tasks:
            kind, node, coords, valid, extra = tasks.pop()
            key = (id(node), coords, valid)
            if kind == "visit":
                hit = self.lookup(key)
                if hit is not None:
                    values.append(hit)
                else:
                    self._visit(node, coords, valid, key, tasks, values)
            elif kind == "alu":
                args = tuple(values[-len(node.srcs):])
                del values[-len(node.srcs):]
                values.append(self.define(key, Alu(node.op, args, node.dtype), node.dtype))
            elif kind == "check":
                ok = values.pop()
                if valid:  # padding around the checked values is not checked
                    ok = Alu(Op.OR, (ok, Alu(Op.NOT, (Cond(valid),), bool_)), bool_)
                value = values.pop()
                reported = Const(0, int64) if node.dtype.is_floating_point else value  # messages name no float
                args = (value, ok, Index(flat_index(coords, node.shape), int64), Const(node.arg, int32),
                        Const(self.params[id(node.srcs[2])], int32))
                values.append(self.define(key, Alu(Op.CHECK, args + (reported,), node.dtype), node.dtype))
            elif kind == "pad":
                inner = values.pop()
                padded = Alu(Op.WHERE, (Cond(extra), inner, Const(0, node.dtype)), node.dtype)
                values.append(self.define(key, padded, node.dtype))
            elif kind == "reduce_end":
                acc, loops = extra
                self.stmts.append(Accumulate(acc, node.op, values.pop(), node.dtype))
                self.stmts.extend(EndLoop("reduce") for _ in range(loops))
                self.scopes.pop()
                # a narrow float's sum is kept in float32: its readers see it rounded, as if stored
                ref = Ref(acc, node.dtype) if node.dtype not in NARROW else Alu(Op.CAST, (Ref(acc, node.dtype),),
                                                                              node.dtype)
                self.scopes[-1][key] = ref
                values.append(ref)
            else:
                raise AssertionError(kind)
        assert len(values) == 1
        return values[0]

    def _visit(self, node: Node, coords: Coords, valid: Valid, key: tuple, tasks: list, values: list) -> None:
        if id(node) in self.params:
            load = Load(self.params[id(node)], flat_index(coords, node.shape), valid, node.dtype)
            values.append(self.define(key, load, node.dtype))
        elif node.op is Op.CONST:
            values.append(Const(node.arg, node.dtype))
        elif node.op is Op.RAND:
            rand = Rand(self.params[id(node.srcs[0])], flat_index(coords, node.shape))
            values.append(self.define(key, Alu(Op.CAST, (rand,), node.dtype), node.dtype))
        elif node.op is Op.IOTA:
            values.append(Index(flat_index(coords, node.shape), node.dtype))
        elif node.op is Op.CONTIGUOUS:
            tasks.append(("visit", node.srcs[0], coords, valid, None))
        elif node.op in ELEMENTWISE:
            tasks.append(("alu", node, coords, valid, None))
            for src in reversed(node.srcs):
                tasks.append(("visit", src, coords, valid, None))
        elif node.op is Op.CHECK:
            tasks.append(("check", node, coords, valid, None))
            tasks.append(("visit", node.srcs[1], coords, valid, None))
            tasks.append(("visit", node.srcs[0], coords, valid, None))
        elif node.op in REDUCE:
            self._open_reduce(node, coords, valid, tasks)
        else:
            src_coords, new_bounds = source_coords(node, coords)
            if new_bounds is None:
                values.append(Const(0, node.dtype))
            elif new_bounds:
                inner_valid = valid + tuple(new_bounds)
                tasks.append(("pad", node, coords, valid, tuple(new_bounds)))
                tasks.append(("visit", node.srcs[0], src_coords, inner_valid, None))
            else:
                tasks.append(("visit", node.srcs[0], src_coords, valid, None))

    def _open_reduce(self, node: Node, coords: Coords, valid: Valid, tasks: list) -> None:
        src = node.srcs[0]
        acc = self.fresh("acc")
        self.stmts.append(DefineAcc(acc, node.op, node.dtype))
        inner = list(coords)
        loops = 0
        # a sum over a padded axis adds zeros outside the source: loop over the source's extent only
        # (the gradient of a broadcast-then-shrink, like _gradient_buffer's, then sums one term)
        padded = src.arg if node.op is Op.SUM and src.op is Op.PAD and src.srcs and src.srcs[0].numel else None
        for axis in node.arg:
            size, start = src.shape[axis], 0
            if padded is not None:
                size, start = src.srcs[0].shape[axis], padded[axis][0]
            inner[axis] = var(self.fresh("r"), size) + start
            if size > 1:
                self.stmts.append(Loop(inner[axis].terms[0][0], "reduce"))
                loops += 1
        self.reduce_work *= max(1, math.prod(src.shape[a] for a in node.arg))
        self.scopes.append({})
        tasks.append(("reduce_end", node, coords, valid, (acc, loops)))
        tasks.append(("visit", src, tuple(inner), valid, None))


def lower(spec: KernelSpec, name: str) -> LoopIR:
    """The loop IR of `spec`: global loops over the root's shape, its value stored contiguously."""
    root = spec.root
    b = _Builder(spec)
    coords = tuple(var(f"i{d}", s) for d, s in enumerate(root.shape))
    globals_ = [c.terms[0][0] for c in coords if not c.is_const]
    b.stmts.extend(Loop(v, "global") for v in globals_)
    value = b.evaluate(root, coords)
    b.stmts.append(Store(0, flat_index(coords, root.shape), value, root.dtype))
    b.stmts.extend(EndLoop("global") for _ in globals_)
    return LoopIR(name, kernel_params(spec), b.stmts, root.numel * b.reduce_work)


def kernel_params(spec: KernelSpec) -> list[Param]:
    """A kernel's parameters: its output, then its inputs in order."""
    return [Param(spec.root.dtype, spec.root.numel, True)] + [Param(n.dtype, n.numel, False) for n in spec.inputs]


def load_at(spec: KernelSpec, node: Node, coords: Coords) -> Load:
    """The load of `node`, a view of one of the kernel's inputs without padding, at `coords`."""
    b = _Builder(spec)
    b.evaluate(node, coords)
    if len(b.stmts) != 1 or not isinstance(b.stmts[0].value, Load) or b.stmts[0].value.valid:
        raise AssertionError(f"{node} is not a plain view of an input of {spec.root}")
    return b.stmts[0].value

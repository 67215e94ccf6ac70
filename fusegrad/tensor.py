"""The user-facing Tensor: lazy, differentiable, PyTorch-shaped.

This module holds the core: construction, realization, the primitive ops (each one records
its history for autograd), broadcasting and type promotion. Composite ops live in the mixins
of `fusegrad.ops` (elementwise, reduce, movement, index, linalg), built from these primitives.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import autograd, dtypes, float8, views
from .dtypes import DType
from .engine import capture
from .engine.realize import realize as _realize_nodes
from .errors import DeviceError, DTypeError, GradError, ShapeError
from .graph import node as G
from .graph.node import Node
from .graph.ops import Op
from .graph.shapes import (broadcast_shape, check_numel, infer_reshape, normalize_dim, shape_arg, shape_tuple,
                           two_stage_reduction)
from .hostdata import node_from_data
from .ops.arith import ArithmeticMixin
from .ops.autocast import autocast_op
from .ops.datashape import DataShapeMixin
from .ops.elementwise import ElementwiseMixin
from .ops.extra import ExtraMixin
from .ops.index import IndexMixin
from .ops.index_reduce import IndexReduceMixin
from .ops.inplace import InplaceMixin
from .ops.linalg import LinalgMixin
from .ops.math import MathMixin
from .ops.movement import MovementMixin
from .ops.reduce import ReduceMixin
from .ops.sampling import SamplingMixin
from .ops.scan import ScanMixin
from .ops.sorting import SortingMixin
from .runtime import device_errors, registry

Scalar = int | float | bool


class Tensor(ArithmeticMixin, ElementwiseMixin, MathMixin, ReduceMixin, MovementMixin, IndexMixin, LinalgMixin,
             SortingMixin, ScanMixin, IndexReduceMixin, DataShapeMixin, SamplingMixin, ExtraMixin, InplaceMixin):
    """A lazy n-dimensional array. Operations build a graph; values are computed on demand."""

    # _version counts in-place writes (shared by a base and its views, as torch's is); _base is the
    # tensor a view reads (None for a tensor that owns its value), _chain the movement steps from it,
    # and a base's _views weak references to its views, refreshed when the base is written
    __slots__ = ("_node", "_ctx", "requires_grad", "grad", "name", "_version", "_base", "_chain", "_views",
                 "_past", "_hooks", "_retains_grad", "__weakref__")
    __array_priority__ = 1000  # numpy defers `ndarray op Tensor` to us

    def __init__(self, *args: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False,
                 name: str | None = None):
        if len(args) > 1 or (args and type(args[0]) in (int, float)):
            # torch.Tensor(2, 3): a new (2, 3) tensor; a float size raises TypeError, as in torch
            data: Any = np.zeros(shape_arg(args), dtype=np.float32)
        else:
            data = args[0] if args else []
        dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.float32
        node = node_from_data(data, dt, registry.canonical(device))
        self._init(node, None, False)
        self.name = name
        if requires_grad:
            self.requires_grad_(True)

    def _init(self, node: Node, ctx: autograd.Ctx | None, requires_grad: bool) -> None:
        self._node = node
        self._ctx = ctx
        self.requires_grad = requires_grad
        self.grad: Tensor | None = None
        self.name = None
        self._version = 0
        self._base = self._views = self._hooks = self._retains_grad = None

    @classmethod
    def _from_node(cls, node: Node) -> "Tensor":
        t = cls.__new__(cls)
        t._init(node, None, False)
        return t

    def _apply(self, node: Node, op: Op, inputs: tuple["Tensor", ...], arg: Any = None) -> "Tensor":
        """Wrap a new node, recording how it was made when autograd needs it."""
        t = Tensor.__new__(Tensor)  # attributes set here, not through _init: this runs for every op built
        t._node = node
        t.grad = t.name = t._base = t._views = t._hooks = t._retains_grad = None
        t._version = 0
        wants = False
        for i in inputs:  # a loop, not any()
            if i.requires_grad:
                wants = True
                break
        state = autograd._state  # autograd.recording(wants), inlined
        # bool and integer results carry no history, like torch's: no gradient flows through them,
        # and comparisons and masks are a third of a model's ops, so the tape stays short
        if state.grad_enabled and (wants or state.tapes) and node.dtype.kind == "f":
            t._ctx = autograd.Ctx(op, inputs, arg)
            t.requires_grad = wants
        else:
            t._ctx = None
            t.requires_grad = False
        return t

    # ---- properties ---------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._node.shape

    @property
    def dtype(self) -> DType:
        return self._node.dtype

    @property
    def device(self) -> str:
        return self._node.device

    @property
    def ndim(self) -> int:
        return len(self._node.shape)

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return self._node.numel

    def size(self, dim: int | None = None) -> Any:
        """The shape, or one dimension's size."""
        if dim is None:
            return self.shape
        return self.shape[normalize_dim(dim, self.ndim)] if self.ndim else 1

    def __len__(self) -> int:
        if not self.ndim:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self) -> str | None:
        """The primitive op that made this tensor (None for leaves)."""
        return self._ctx.op.name if self._ctx is not None else None

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def element_size(self) -> int:
        return self.dtype.itemsize

    # ---- autograd -----------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and not self.dtype.is_floating_point:
            raise DTypeError(f"only floating point tensors can require gradients, got {self.dtype.name}")
        if not requires_grad and self._ctx is not None:
            raise GradError("requires_grad can only be switched off on leaf tensors; use detach()")
        self.requires_grad = requires_grad
        return self

    def detach(self) -> "Tensor":
        """The same values, cut from the graph; shares this tensor's memory (writes to it write this one)."""
        return views.alias(self)

    def backward(self, gradient: "Tensor | None" = None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs: Sequence["Tensor"] | None = None) -> None:
        """Accumulate gradients of this tensor into `.grad` of the leaves that require grad."""
        autograd.backward(self, gradient, create_graph=create_graph, inputs=inputs, retain_graph=retain_graph)

    def register_hook(self, hook: Any) -> "autograd.RemovableHandle":
        """Call hook(grad) when this tensor's gradient is computed; a returned tensor replaces it."""
        if not self.requires_grad:
            raise GradError("cannot register a hook on a tensor that doesn't require gradient")
        if self._hooks is None:
            self._hooks = {}
        return autograd.RemovableHandle(self._hooks, hook)

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in `.grad` after backward (a leaf always does)."""
        if not self.requires_grad:
            raise GradError("can't retain_grad on Tensor that has requires_grad=False")
        if self._ctx is not None:
            self._retains_grad = True

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad is True

    # ---- realization ------------------------------------------------------------------
    def realize(self) -> "Tensor":
        """Compute the value now (kernels run); returns self."""
        _realize_nodes([self._node])
        return self

    def numpy(self) -> np.ndarray:
        """A numpy copy of the value (bfloat16 and the float8 types are returned as float32)."""
        capture.forbid_host_read("reading a tensor's value (.numpy(), .item(), .tolist(), bool(), float())")
        node = self._node
        if node.buffer is None:
            self.realize()
            if node.buffer is None:  # a view of a buffer: read a copy, the tensor stays a view
                node = G.contiguous(node)
                _realize_nodes([node])
        device = registry.get(node.device)
        arr = device.copy_out(node.buffer, node.dtype.np, node.numel).reshape(node.shape)
        device_errors.raise_pending(node.device)  # a value computed from bad indices is never returned
        if node.dtype is dtypes.bfloat16:
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        elif node.dtype in dtypes.FLOAT8:
            arr = float8.decode(arr, float8.FORMATS[node.dtype.name])
        return arr

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self.numpy()
        return arr.astype(dtype) if dtype is not None else arr

    def item(self) -> Scalar:
        if self.numel() != 1:
            raise ShapeError(f"a Tensor with {self.numel()} elements cannot be converted to a Python scalar")
        return self.numpy().reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise ShapeError(f"the truth value of a Tensor with {self.numel()} elements is ambiguous")
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.dtype.is_floating_point or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __repr__(self) -> str:
        from .printing import tensor_repr
        return tensor_repr(self)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        """`f"{loss:.4f}"` formats a 0-d tensor's value; other tensors take only an empty spec, like torch."""
        if self.ndim == 0:
            return format(self.item(), spec)
        if spec:
            raise TypeError("unsupported format string passed to Tensor.__format__")
        return repr(self)

    # by identity, as object does (== builds a comparison tensor, which set and dict lookups never
    # reach: equal identity hashes mean the same object); object's is C code, cheaper than id() in Python
    __hash__ = object.__hash__

    def __iter__(self) -> Any:
        if not self.ndim:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    # ---- dtype and device -------------------------------------------------------------
    def to(self, *args: Any, dtype: Any = None, device: Any = None) -> "Tensor":
        """`x.to(dtype)`, `x.to(device)`, `x.to(device, dtype)`."""
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif isinstance(a, str) and a.split(":")[0].strip().lower() in registry.known():  # absent ones raise
                device = a
            else:
                dtype = a
        out = self
        if device is not None and registry.canonical(device) != self.device:
            out = out._to_device(registry.canonical(device))
        if dtype is not None:
            out = out.cast(dtypes.to_dtype(dtype))
        return out

    def _to_device(self, device: str) -> "Tensor":
        return Tensor._from_node(node_from_data(self.numpy(), self.dtype, device))

    def cast(self, dtype: DType) -> "Tensor":
        if dtype is self.dtype:
            return self
        return self._apply(G.cast(self._node, dtype), Op.CAST, (self,), dtype)

    def type(self, dtype: Any = None) -> Any:
        return self.dtype.name if dtype is None else self.cast(dtypes.to_dtype(dtype))

    def float(self) -> "Tensor":
        return self.cast(dtypes.float32)

    def double(self) -> "Tensor":
        return self.cast(dtypes.float64)

    def half(self) -> "Tensor":
        return self.cast(dtypes.float16)

    def bfloat16(self) -> "Tensor":
        return self.cast(dtypes.bfloat16)

    def long(self) -> "Tensor":
        return self.cast(dtypes.int64)

    def int(self) -> "Tensor":
        return self.cast(dtypes.int32)

    def bool(self) -> "Tensor":
        return self.cast(dtypes.bool_)

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, device: int | None = None) -> "Tensor":
        """This tensor on GPU `device` (default 0)."""
        return self.to(f"cuda:{device or 0}")

    # ---- primitive plumbing -----------------------------------------------------------
    def _const(self, value: Scalar, dtype: DType | None = None, shape: tuple[int, ...] | None = None) -> "Tensor":
        node = G.const(value, self.shape if shape is None else shape, dtype or self.dtype, self.device)
        return Tensor._from_node(node)

    def _operand(self, x: Any) -> "Tensor":
        """A Tensor for x on this device (Python scalars become constants of their own dtype)."""
        if isinstance(x, Tensor):
            if x.device != self.device:
                raise DeviceError(f"expected all tensors on the same device, got {self.device} and {x.device}")
            return x
        if isinstance(x, (bool, int, float)):
            if type(x) is int:
                dtypes.check_python_int(x)
            return self._const(x, dtypes.python_scalar_dtype(x), ())
        if isinstance(x, np.generic) or isinstance(x, np.ndarray) or isinstance(x, (list, tuple)):
            return tensor(x, device=self.device)
        raise TypeError(f"unsupported operand type {type(x).__name__} for a Tensor op")

    def _promote(self, *others: Any, floating: bool = False) -> tuple[list["Tensor"], DType]:
        """Operands as tensors plus their PyTorch result dtype (the least float one if floating)."""
        ts = [self] + [self._operand(o) for o in others]
        groups: tuple[list[DType], list[DType], list[DType]] = ([], [], [])
        for t, raw in zip(ts, (self, *others)):
            if not isinstance(raw, Tensor):
                groups[2].append(dtypes.python_scalar_dtype(raw) if isinstance(raw, (bool, int, float)) else t.dtype)
            else:
                groups[1 if t.ndim == 0 else 0].append(t.dtype)
        dt = dtypes.result_type(*groups)
        return ts, dtypes.least_float(dt) if floating else dt

    def _broadcast_all(self, ts: list["Tensor"], dtype: DType,
                       shape: tuple[int, ...] | None = None) -> list["Tensor"]:
        """`ts` cast to `dtype` and broadcast to `shape` (default: their common shape)."""
        shape = broadcast_shape(*(t.shape for t in ts)) if shape is None else shape
        return [t._cast_broadcast(dtype, shape) for t in ts]

    def _cast_broadcast(self, dtype: DType, shape: tuple[int, ...]) -> "Tensor":
        """This tensor cast to `dtype` and broadcast to `shape`, a shape it broadcasts to."""
        node = self._node
        if node.dtype is dtype and node.shape == shape:
            return self
        if node.op is Op.CONST and node.buffer is None and self._ctx is None:
            return self._const(node.arg, dtype, shape)  # a fresh constant: no cast or expand nodes
        x = self.cast(dtype)
        if len(shape) > len(node.shape):
            x = x._movement(Op.RESHAPE, (1,) * (len(shape) - len(node.shape)) + node.shape)
        return x._movement(Op.EXPAND, shape)

    def _binary(self, op: Op, other: Any, reverse: bool = False, floating: bool = False) -> "Tensor":
        node, dt = self._node, self._node.dtype
        if not floating or dt.is_floating_point:
            # fast paths (most ops in a model): tensors of the same dtype, or a scalar that does not
            # change the dtype; the general path below gives the same result
            if isinstance(other, Tensor) and other._node.dtype is dt and other._node.device == node.device:
                a, b = (other, self) if reverse else (self, other)
                if a._node.shape != b._node.shape:
                    shape = broadcast_shape(a._node.shape, b._node.shape)
                    a, b = a._cast_broadcast(dt, shape), b._cast_broadcast(dt, shape)
                return a._apply(G.binary(op, a._node, b._node), op, (a, b))
            if (type(other) is float and dt.is_floating_point) or (type(other) is int and dt.kind in "iuf"):
                if type(other) is int:
                    dtypes.check_python_int(other)  # a wider one would wrap silently in the literal
                c = Tensor._from_node(G.const(other, node.shape, dt, node.device))
                a, b = (c, self) if reverse else (self, c)
                return a._apply(G.binary(op, a._node, b._node), op, (a, b))
        ts, dt = self._promote(other, floating=floating)
        a, b = self._broadcast_all(ts, dt)
        if reverse:
            a, b = b, a
        return a._apply(G.binary(op, a._node, b._node), op, (a, b))

    def _unary(self, op: Op, floating: bool = True) -> "Tensor":
        x = self.cast(dtypes.least_float(self.dtype)) if floating else self
        return x._apply(G.unary(op, x._node), op, (x,))

    def _movement(self, op: Op, arg: Any) -> "Tensor":
        node = G.movement(op, self._node, arg)
        if node is self._node:
            return self
        arg = tuple(arg)
        out = self._apply(node, op, (self,), arg)
        views.register(out, self, (op, arg, self._node.shape))
        return out

    def _reduce(self, op: Op, dim: Any, keepdim: bool) -> "Tensor":
        axes = self._axes(dim)
        # a long sum into few outputs: partial sums first, in parallel (a max stays one reduction: in
        # two stages its gradient would split among ties by partial, not evenly as torch does)
        staged = two_stage_reduction(self.shape, axes) if op is Op.SUM else None
        if staged is not None:
            shape, inner, outer = staged
            x = self.reshape(shape)._reduce(op, inner, keepdim=True)._reduce(op, outer, keepdim=True)
            kept = tuple(1 if i in axes else s for i, s in enumerate(self.shape))
            return x.reshape(kept if keepdim else tuple(s for i, s in enumerate(self.shape) if i not in axes))
        node = G.reduce(op, self._node, axes)
        out = self if node is self._node else self._apply(node, op, (self,), axes)
        if not keepdim:
            out = out._movement(Op.RESHAPE, tuple(s for i, s in enumerate(self.shape) if i not in axes))
        return out

    def _axes(self, dim: Any) -> tuple[int, ...]:
        if dim is None:
            return tuple(range(self.ndim))
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        axes = tuple(sorted({normalize_dim(d, self.ndim) for d in dims}))
        return axes if self.ndim else ()

    # ---- primitive reductions ---------------------------------------------------------
    @autocast_op("sum")
    def sum(self, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> "Tensor":
        x = self
        if dtype is not None:
            x = x.cast(dtypes.to_dtype(dtype))
        elif not x.dtype.is_floating_point:
            x = x.cast(dtypes.int64)  # like torch: integer and bool sums are int64
        return x._reduce(Op.SUM, dim, keepdim)

    @autocast_op("prod")
    def prod(self, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> "Tensor":
        x = self.cast(dtypes.to_dtype(dtype)) if dtype is not None else (
            self if self.dtype.is_floating_point else self.cast(dtypes.int64))
        return x._reduce(Op.PROD, dim, keepdim)

    def amax(self, dim: Any = None, keepdim: bool = False) -> "Tensor":
        self._check_nonempty_reduce("amax", dim)
        if self.dtype is dtypes.bool_:
            # any() as a count: GCC 12 -O3 -march=native miscompiles a vectorized max over bools
            # cast to uint8 (it mixes 0xFF lane masks with 0/1 values)
            return self.cast(dtypes.int32)._reduce(Op.SUM, dim, keepdim) > 0
        return self._reduce(Op.RMAX, dim, keepdim)

    def amin(self, dim: Any = None, keepdim: bool = False) -> "Tensor":
        self._check_nonempty_reduce("amin", dim)
        if self.dtype is dtypes.bool_:
            return self.logical_not().amax(dim, keepdim).logical_not()
        if self.dtype.is_int:
            return ~((~self).amax(dim, keepdim))  # ~ reverses the order of every integer type
        return -((-self).amax(dim, keepdim))

    def _check_nonempty_reduce(self, name: str, dim: Any) -> None:
        axes = self._axes(dim)
        if self.numel() == 0 and (dim is None or any(self.shape[a] == 0 for a in axes)):
            raise IndexError(f"{name}(): cannot reduce over a zero-size dimension of a tensor of shape {self.shape}")

    # ---- primitive movement -----------------------------------------------------------
    def reshape(self, *shape: Any) -> "Tensor":
        new = infer_reshape(self.shape, shape_tuple(shape))
        return self._movement(Op.RESHAPE, new)

    def view(self, *shape: Any) -> "Tensor":
        """`x.view(2, -1)` reshapes; `x.view(dtype)` reinterprets the bits (like torch, without gradient)."""
        if len(shape) == 1 and not isinstance(shape[0], (int, float, tuple, list, np.integer, Tensor)):
            return self._view_dtype(dtypes.to_dtype(shape[0]))
        return self.reshape(*shape)

    def _view_dtype(self, dtype: DType) -> "Tensor":
        """The same bytes read as `dtype`. Same itemsize: a lazy BITCAST, shape unchanged. Otherwise the
        last dim scales by the itemsize ratio, and the bytes are regrouped on the host (a sync point)."""
        src = self.dtype
        if dtype.itemsize == src.itemsize:
            if dtype is src:
                return self.detach()
            return Tensor._from_node(G.unary(Op.BITCAST, self._node, dtype))
        what = f"to view {src.name} as {dtype.name} (different element sizes)"
        if self.ndim == 0:
            raise ShapeError(f"a 0-d tensor cannot be viewed {what[3:]}")
        ratio = dtype.itemsize // src.itemsize
        if ratio and self.shape[-1] % ratio:
            raise ShapeError(f"the last dim ({self.shape[-1]}) must be divisible by {ratio} {what}")
        bits = {1: dtypes.uint8, 2: dtypes.int16, 4: dtypes.int32, 8: dtypes.int64}
        raw = np.ascontiguousarray(self._view_dtype(bits[src.itemsize]).numpy())
        regrouped = raw.view(bits[dtype.itemsize].np)  # numpy scales the last dim
        return Tensor._from_node(node_from_data(regrouped, bits[dtype.itemsize], self.device))._view_dtype(dtype)

    def permute(self, *dims: Any) -> "Tensor":
        order = tuple(normalize_dim(d, self.ndim) for d in shape_tuple(dims))
        if sorted(order) != list(range(self.ndim)):
            raise ShapeError(f"permute({order}) is not a permutation of the {self.ndim} dims of shape {self.shape}")
        return self._movement(Op.PERMUTE, order)

    def expand(self, *sizes: Any) -> "Tensor":
        sizes = shape_tuple(sizes)
        if len(sizes) < self.ndim:
            raise ShapeError(f"expand{sizes}: the number of sizes must be at least the tensor's {self.ndim} dims")
        src = (1,) * (len(sizes) - self.ndim) + self.shape
        new = check_numel(tuple(s if n == -1 else n for s, n in zip(src, sizes)))
        for s, n in zip(src, new):
            if s != n and s != 1:
                raise ShapeError(f"cannot expand shape {self.shape} to {tuple(sizes)}")
        x = self.reshape(src) if src != self.shape else self
        return x._movement(Op.EXPAND, new)

    def broadcast_to(self, *shape: Any) -> "Tensor":
        if len(shape) == 1 and shape[0] == self._node.shape:  # the common case in broadcasting: nothing to do
            return self
        return self.expand(*shape)

    def expand_as(self, other: "Tensor") -> "Tensor":
        return self.expand(other.shape)

    def contiguous(self) -> "Tensor":
        """Values in a buffer of their own, row-major (a copy kernel unless already so)."""
        return self._apply(G.contiguous(self._node), Op.CONTIGUOUS, (self,))

    def clone(self) -> "Tensor":
        """A copy with its own buffer (differentiable, like torch.clone)."""
        return self._apply(G.contiguous(self._node), Op.CONTIGUOUS, (self,))

    # ---- creation helpers -------------------------------------------------------------
    def zeros_like(self) -> "Tensor":
        return self._const(0)

    def ones_like(self) -> "Tensor":
        return self._const(1)


# ---- module-level API ------------------------------------------------------------------

def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False,
           name: str | None = None) -> Tensor:
    """A new leaf tensor holding a copy of `data` (dtype inferred like torch.tensor)."""
    dt = dtypes.to_dtype(dtype) if dtype is not None else None
    t = Tensor._from_node(node_from_data(data, dt, registry.canonical(device)))
    t.name = name
    if requires_grad:
        t.requires_grad_(True)
    return t


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor with a copy of a numpy array's values and dtype."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(arr).__name__}")
    return tensor(arr)


def where(condition: Any, input: Any, other: Any) -> Tensor:
    """input where condition holds, else other (broadcast and promoted like torch.where)."""
    cond = condition if isinstance(condition, Tensor) else tensor(condition)
    # the common case (relu, masked fills): a bool mask, a float tensor of its shape and a Python
    # number, which promotion would turn into a constant of the tensor's dtype; built directly
    number_first = type(input) in (int, float)
    t = other if number_first else input
    if type(input if number_first else other) in (int, float) and isinstance(t, Tensor) \
            and t.dtype.is_floating_point and cond.dtype is dtypes.bool_ and cond.shape == t.shape \
            and cond.device == t.device:
        value = dtypes.checked_scalar(input if number_first else other, t.dtype, half_range=False)
        a, b = (t._const(value), t) if number_first else (t, t._const(value))
        return cond._apply(G.where(cond._node, a._node, b._node), Op.WHERE, (cond, a, b))
    anchor = input if isinstance(input, Tensor) else (other if isinstance(other, Tensor) else cond)
    ts, dt = anchor._promote(input, other) if anchor is not input else input._promote(other)
    for v in (input, other):  # a number must fit the result (torch: where(m, int8, 1000) raises; float16 takes inf)
        dtypes.checked_scalar(v, dt, half_range=False)
    if anchor is not input:
        ts = ts[1:]
    shape = broadcast_shape(cond.shape, *(t.shape for t in ts))
    c = cond.bool().broadcast_to(shape)
    a, b = anchor._broadcast_all(ts, dt, shape)
    return c._apply(G.where(c._node, a._node, b._node), Op.WHERE, (c, a, b))


def realize(*tensors: Tensor) -> None:
    """Compute several tensors in one schedule (kernels fuse across them)."""
    _realize_nodes([t._node for t in tensors])


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    from .ops.movement import cat as _cat
    return _cat(tensors, dim)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    from .ops.movement import stack as _stack
    return _stack(tensors, dim)


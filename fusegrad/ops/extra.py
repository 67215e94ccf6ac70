"""More of torch's Tensor API: introspection, splitting and stacking helpers, and products with an added term.

Everything is composed from existing Tensor methods, so gradients, fusion and every device come free.
fusegrad tensors are lazy and have no strides of their own: `stride()`, `is_contiguous()` and
`storage_offset()` describe the row-major layout a contiguous torch tensor of the same shape has.
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

from .. import dtypes
from ..errors import DTypeError, GradError, ShapeError
from ..graph.shapes import broadcast_shape, normalize_dim
from .autocast import autocast_op
from .extra_math import ExtraMathMixin
from .inplace import _inplace

if TYPE_CHECKING:
    from ..tensor import Tensor


class MinMax(NamedTuple):
    """What aminmax returns, like torch.return_types.aminmax: unpacks as (min, max)."""

    min: "Tensor"
    max: "Tensor"


def _scaled(x: "Tensor", factor: Any) -> "Tensor":
    """x * factor, skipping the multiply for 1 (torch's beta/alpha default)."""
    return x if isinstance(factor, (int, float)) and factor == 1 else x * factor


def _add_product(name: str, input: "Tensor", product: "Tensor", beta: Any, alpha: Any) -> "Tensor":
    """beta * input + alpha * product; with beta == 0 input is ignored (its NaNs do not propagate), like torch."""
    if input.dtype is not product.dtype:
        raise DTypeError(f"{name}: expected input of dtype {product.dtype.name}, got {input.dtype.name}")
    if not product.dtype.is_floating_point and (isinstance(beta, float) or isinstance(alpha, float)):
        raise DTypeError(f"{name}: for integer inputs, beta and alpha must be integers, got {beta!r} and {alpha!r}")
    out = _scaled(product, alpha)
    shape = broadcast_shape(input.shape, out.shape)
    if shape != out.shape:
        raise ShapeError(f"{name}: input of shape {input.shape} does not broadcast to the product's shape {out.shape}")
    if isinstance(beta, (int, float)) and beta == 0:
        return out
    return _scaled(input, beta) + out


def _need_dims(name: str, t: "Tensor", ndim: int) -> None:
    if t.ndim != ndim:
        raise ShapeError(f"{name}: expected a {ndim}-D tensor, got shape {t.shape}")


class ExtraMixin(ExtraMathMixin):
    __slots__ = ()

    # ---- introspection ------------------------------------------------------------------
    def stride(self: "Tensor", dim: int | None = None) -> Any:
        """Row-major strides of the shape (fusegrad tensors are lazy: they report a contiguous layout)."""
        strides, step = [], 1
        for n in reversed(self.shape):
            strides.append(step)
            step *= max(n, 1)
        strides.reverse()
        if dim is None:
            return tuple(strides)
        if self.ndim == 0:
            raise IndexError(f"stride(): dimension specified as {dim} but tensor has no dimensions")
        return strides[normalize_dim(dim, self.ndim)]

    def is_contiguous(self: "Tensor", memory_format: Any = None) -> bool:
        """True: a lazy tensor is always read as if row-major (see `stride`)."""
        return True

    def storage_offset(self: "Tensor") -> int:
        """0: a lazy tensor starts at the beginning of its (logical) storage."""
        return 0

    def nelement(self: "Tensor") -> int:
        """The number of elements (numel)."""
        return self.numel()

    def ndimension(self: "Tensor") -> int:
        """The number of dimensions (dim)."""
        return self.ndim

    def get_device(self: "Tensor") -> int:
        """-1 on the CPU, else the device index ("cuda:1" -> 1)."""
        name, _, index = self.device.partition(":")
        return -1 if name == "cpu" else int(index or 0)

    def is_inference(self: "Tensor") -> bool:
        """False: inference mode in fusegrad is no_grad and makes no special tensors."""
        return False

    def is_complex(self: "Tensor") -> bool:
        """False: fusegrad has no complex dtypes."""
        return False

    def is_set_to(self: "Tensor", tensor: "Tensor") -> bool:
        """True when both tensors read the same value node (an alias such as detach(), or the same buffer)."""
        node, other = self._node, tensor._node
        same_buffer = node.buffer is not None and node.buffer is other.buffer
        return node.shape == other.shape and (node is other or same_buffer)

    def byte(self: "Tensor") -> "Tensor":
        return self.cast(dtypes.uint8)

    def char(self: "Tensor") -> "Tensor":
        return self.cast(dtypes.int8)

    def short(self: "Tensor") -> "Tensor":
        return self.cast(dtypes.int16)

    def data_ptr(self: "Tensor") -> int:
        """The address of the realized buffer (realizes the tensor; 0 for an empty one, like torch)."""
        from ..runtime import registry
        if self.numel() == 0:
            return 0
        device = registry.get(self.device)
        if self.device.startswith("opencl"):
            raise NotImplementedError("data_ptr(): OpenCL buffers have no address a program can use")
        self.realize()
        if self._node.buffer is None:
            raise NotImplementedError("data_ptr(): this tensor is a lazy view of another tensor's buffer and has "
                                      "no address of its own; call .contiguous() first")
        return device.pointer(self._node.buffer)

    # ---- shapes ---------------------------------------------------------------------------
    def ravel(self: "Tensor") -> "Tensor":
        """The elements as a 1-D tensor."""
        return self.reshape(-1)

    def tensor_split(self: "Tensor", indices_or_sections: Any, dim: int = 0) -> tuple["Tensor", ...]:
        """Split into n nearly equal parts (the first size % n one longer), or at the given indices (an index
        tensor is read on the host: the parts' shapes depend on it)."""
        from ..tensor import Tensor
        if self.ndim == 0:
            raise ShapeError("tensor_split(): expected at least a 1-dimensional tensor, got a 0-d one")
        d = normalize_dim(dim, self.ndim)
        size = self.shape[d]
        spec = indices_or_sections
        if isinstance(spec, Tensor):
            if spec.dtype.kind not in "iu" or spec.ndim > 1:
                raise DTypeError("tensor_split(): indices_or_sections must be a 0-d or 1-D integer tensor")
            spec = spec.item() if spec.ndim == 0 else [int(i) for i in spec.tolist()]
        if isinstance(spec, int):
            if spec <= 0:
                raise ShapeError(f"tensor_split(): number of sections must be larger than 0, got {spec}")
            base, extra = divmod(size, spec)
            bounds = list(itertools.accumulate([0] + [base + (i < extra) for i in range(spec)]))
        else:
            bounds = [0, *(min(max(i + size if i < 0 else i, 0), size) for i in spec), size]
        return tuple(self._narrow(d, lo, max(lo, hi)) for lo, hi in zip(bounds, bounds[1:]))

    def _split_exact(self: "Tensor", name: str, spec: Any, dim: int, min_ndim: int) -> tuple["Tensor", ...]:
        if self.ndim < min_ndim:
            raise ShapeError(f"torch.{name} requires a tensor with at least {min_ndim} dimension, "
                             f"but got a tensor with {self.ndim} dimensions!")
        if isinstance(spec, int) and (spec == 0 or self.shape[dim] % spec):
            raise ShapeError(f"torch.{name} attempted to split along dimension {dim}, but the size of the "
                             f"dimension {self.shape[dim]} is not divisible by the split_size {spec}!")
        return self.tensor_split(spec, dim)

    def hsplit(self: "Tensor", indices_or_sections: Any) -> tuple["Tensor", ...]:
        """tensor_split along dim 1 (dim 0 for 1-D); an integer must divide that dim."""
        return self._split_exact("hsplit", indices_or_sections, 1 if self.ndim > 1 else 0, 1)

    def vsplit(self: "Tensor", indices_or_sections: Any) -> tuple["Tensor", ...]:
        """tensor_split along dim 0 of a tensor of at least 2 dims."""
        return self._split_exact("vsplit", indices_or_sections, 0, 2)

    def dsplit(self: "Tensor", indices_or_sections: Any) -> tuple["Tensor", ...]:
        """tensor_split along dim 2 of a tensor of at least 3 dims."""
        return self._split_exact("dsplit", indices_or_sections, 2, 3)

    def rot90(self: "Tensor", k: int = 1, dims: Sequence[int] = (0, 1)) -> "Tensor":
        """Rotate by k quarter turns in the plane of `dims`, from the first toward the second."""
        if len(dims) != 2:
            raise ShapeError(f"rot90(): expected total rotation dims == 2, but got dims = {len(dims)}")
        if self.ndim < 2:
            raise ShapeError(f"rot90(): expected total dims >= 2, but got total dims = {self.ndim}")
        d0, d1 = (normalize_dim(d, self.ndim) for d in dims)
        if d0 == d1:
            raise ShapeError(f"rot90(): expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
        k %= 4
        if k == 1:
            return self.flip(d1).transpose(d0, d1)
        if k == 2:
            return self.flip(d0, d1)
        if k == 3:
            return self.flip(d0).transpose(d0, d1)
        return self.clone()

    def diagflat(self: "Tensor", offset: int = 0) -> "Tensor":
        """A 2-D matrix with the flattened input on diagonal `offset`."""
        return self.reshape(-1).diag(offset)

    def diff(self: "Tensor", n: int = 1, dim: int = -1, prepend: Any = None, append: Any = None) -> "Tensor":
        """n-th forward difference along dim (logical xor for bool), after joining prepend and append."""
        from .movement import cat
        if self.ndim == 0:
            raise ShapeError("diff expects input to be at least one-dimensional")
        if n < 0:
            raise ValueError(f"order must be non-negative but got {n}")
        d = normalize_dim(dim, self.ndim)
        from ..tensor import Tensor
        parts = []
        for extra in (prepend, self, append):
            if extra is None:
                continue
            if not isinstance(extra, Tensor):
                raise TypeError(f"diff(): argument 'prepend'/'append' must be Tensor, not {type(extra).__name__}")
            if extra.ndim != self.ndim:
                raise ShapeError("diff expects prepend or append to be the same dimension as input")
            parts.append(extra)
        x = cat(parts, d) if len(parts) > 1 else self
        for _ in range(n):
            size = x.shape[d]
            if size == 0:
                break
            hi, lo = x._narrow(d, 1, size), x._narrow(d, 0, size - 1)
            x = hi.logical_xor(lo) if x.dtype is dtypes.bool_ else hi - lo
        return x

    # ---- products -------------------------------------------------------------------------
    @autocast_op("trace")
    def trace(self: "Tensor") -> "Tensor":
        """Sum of the main diagonal of a 2-D tensor (int64 for integers)."""
        _need_dims("trace", self, 2)
        return self.diagonal().sum()

    def kron(self: "Tensor", other: Any) -> "Tensor":
        """Kronecker product: block (i, j, ...) is self[i, j, ...] * other."""
        other = self._operand(other)
        nd = max(self.ndim, other.ndim)
        a = self.reshape((1,) * (nd - self.ndim) + self.shape)
        b = other.reshape((1,) * (nd - other.ndim) + other.shape)
        # a's dims interleaved with b's: (a0, 1, a1, 1, ...) * (1, b0, 1, b1, ...)
        ai = a.reshape(tuple(s for n in a.shape for s in (n, 1)))
        bi = b.reshape(tuple(s for n in b.shape for s in (1, n)))
        return (ai * bi).reshape(tuple(x * y for x, y in zip(a.shape, b.shape)))

    def inner(self: "Tensor", other: Any) -> "Tensor":
        """Sum over the last dims of both: out[i..., j...] = sum_k self[i..., k] * other[j..., k]."""
        other = self._operand(other)
        if self.ndim == 0 or other.ndim == 0:
            return self * other
        if self.shape[-1] != other.shape[-1]:
            raise ShapeError(f"inner() the last dimension must match on both input tensors but got shapes "
                             f"{self.shape} and {other.shape}")
        return tensordot(self, other, ([-1], [-1]))

    @autocast_op("vdot")
    def vdot(self: "Tensor", other: Any) -> "Tensor":
        """Dot product of two 1-D tensors (no conjugation: fusegrad is real)."""
        return self.dot(other)

    @autocast_op("addmm")
    def addmm(self: "Tensor", mat1: "Tensor", mat2: "Tensor", *, beta: Any = 1, alpha: Any = 1) -> "Tensor":
        """beta * self + alpha * (mat1 @ mat2) for 2-D mat1 and mat2."""
        _need_dims("addmm", mat1, 2)
        _need_dims("addmm", mat2, 2)
        return _add_product("addmm", self, mat1.matmul(mat2), beta, alpha)

    @autocast_op("addmv")
    def addmv(self: "Tensor", mat: "Tensor", vec: "Tensor", *, beta: Any = 1, alpha: Any = 1) -> "Tensor":
        """beta * self + alpha * (mat @ vec)."""
        _need_dims("addmv", mat, 2)
        _need_dims("addmv", vec, 1)
        return _add_product("addmv", self, mat.matmul(vec), beta, alpha)

    @autocast_op("addr")
    def addr(self: "Tensor", vec1: "Tensor", vec2: "Tensor", *, beta: Any = 1, alpha: Any = 1) -> "Tensor":
        """beta * self + alpha * outer(vec1, vec2)."""
        _need_dims("addr", vec1, 1)
        _need_dims("addr", vec2, 1)
        return _add_product("addr", self, vec1.outer(vec2), beta, alpha)

    @autocast_op("baddbmm")
    def baddbmm(self: "Tensor", batch1: "Tensor", batch2: "Tensor", *, beta: Any = 1, alpha: Any = 1) -> "Tensor":
        """beta * self + alpha * bmm(batch1, batch2)."""
        return _add_product("baddbmm", self, batch1.bmm(batch2), beta, alpha)

    @autocast_op("addbmm")
    def addbmm(self: "Tensor", batch1: "Tensor", batch2: "Tensor", *, beta: Any = 1, alpha: Any = 1) -> "Tensor":
        """beta * self + alpha * (the sum over the batch of batch1[b] @ batch2[b])."""
        return _add_product("addbmm", self, batch1.bmm(batch2).sum(0, dtype=batch1.dtype), beta, alpha)

    addmm_, addmv_, addr_, baddbmm_, addbmm_ = (_inplace(n) for n in ("addmm", "addmv", "addr", "baddbmm", "addbmm"))

    def aminmax(self: "Tensor", *, dim: int | None = None, keepdim: bool = False) -> MinMax:
        """(min, max) over dim (all elements when None)."""
        return MinMax(self.amin(dim, keepdim), self.amax(dim, keepdim))


# ---- functions that are not Tensor methods ---------------------------------------------------------

def _tensors(name: str, tensors: tuple[Any, ...]) -> list["Tensor"]:
    """The tensors of `f(a, b)` or `f([a, b])`."""
    from ..tensor import Tensor
    ts = list(tensors[0]) if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else list(tensors)
    if not all(isinstance(t, Tensor) for t in ts):
        raise TypeError(f"{name}(): expected Tensors, got {[type(t).__name__ for t in ts]}")
    return ts


def broadcast_shapes(*shapes: Any) -> tuple[int, ...]:
    """The shape tensors of these shapes broadcast to (ints count as 1-D shapes)."""
    norm = []
    for s in shapes:
        shape = (s,) if isinstance(s, int) else tuple(s)
        if any(n < 0 for n in shape):
            raise ShapeError(f"broadcast_shapes(): trying to create a tensor with negative dimension in {shape}")
        norm.append(shape)
    return broadcast_shape(*norm) if norm else ()


def broadcast_tensors(*tensors: Any) -> tuple["Tensor", ...]:
    """The tensors expanded to their common shape (views, like torch)."""
    ts = _tensors("broadcast_tensors", tensors)
    shape = broadcast_shape(*(t.shape for t in ts)) if ts else ()
    return tuple(t.expand(shape) for t in ts)


def _atleast(name: str, tensors: tuple[Any, ...], shape_of: Any) -> Any:
    single = len(tensors) == 1 and not isinstance(tensors[0], (list, tuple))
    out = tuple(t.reshape(shape_of(t.shape)) for t in _tensors(name, tensors))
    return out[0] if single else out


def atleast_1d(*tensors: Any) -> Any:
    """0-d tensors as 1-D; others unchanged (a tuple for several inputs)."""
    return _atleast("atleast_1d", tensors, lambda s: s or (1,))


def atleast_2d(*tensors: Any) -> Any:
    """0-d and 1-D tensors as rows (1, n); others unchanged."""
    return _atleast("atleast_2d", tensors, lambda s: s if len(s) >= 2 else (1, math.prod(s)))


def atleast_3d(*tensors: Any) -> Any:
    """0-d -> (1, 1, 1), (n) -> (1, n, 1), (m, n) -> (m, n, 1); others unchanged."""
    three = {0: lambda s: (1, 1, 1), 1: lambda s: (1, s[0], 1), 2: lambda s: (*s, 1)}
    return _atleast("atleast_3d", tensors, lambda s: three[len(s)](s) if len(s) < 3 else s)


def column_stack(tensors: Sequence["Tensor"]) -> "Tensor":
    """0-d and 1-D tensors as columns, then joined along dim 1."""
    from .movement import cat
    ts = _tensors("column_stack", (tensors,))
    return cat([t.reshape(t.numel(), 1) if t.ndim < 2 else t for t in ts], 1)


def row_stack(tensors: Sequence["Tensor"]) -> "Tensor":
    """Alias of vstack."""
    from .movement import vstack
    return vstack(_tensors("row_stack", (tensors,)))


def dstack(tensors: Sequence["Tensor"]) -> "Tensor":
    """atleast_3d of each, joined along dim 2."""
    from .movement import cat
    return cat(list(atleast_3d(_tensors("dstack", (tensors,)))), 2)


def block_diag(*tensors: "Tensor") -> "Tensor":
    """The tensors (0-d, 1-D as a row, or 2-D) on the diagonal of one matrix; dtypes promoted."""
    from ..creation import zeros
    from .movement import cat
    ts = _tensors("block_diag", tensors)
    if not ts:
        return zeros(1, 0)
    for i, t in enumerate(ts):
        if t.ndim > 2:
            raise ShapeError(f"torch.block_diag: Input tensors must have 2 or fewer dimensions. Input {i} has "
                             f"{t.ndim} dimensions")
    mats = [t.reshape(1, -1) if t.ndim < 2 else t for t in ts]
    dtype = functools.reduce(dtypes.promote_types, (t.dtype for t in mats))
    cols = sum(m.shape[1] for m in mats)
    rows, left = [], 0
    for m in mats:
        rows.append(m.cast(dtype).pad_zeros(((0, 0), (left, cols - left - m.shape[1]))))
        left += m.shape[1]
    return cat(rows, 0)


def cartesian_prod(*tensors: "Tensor") -> "Tensor":
    """All combinations of the elements of 1-D tensors, one per row (one tensor: itself)."""
    from .movement import meshgrid, stack
    ts = _tensors("cartesian_prod", tensors)
    if any(t.ndim != 1 for t in ts):
        raise ShapeError(f"cartesian_prod: expects 1-D tensors, got shapes {[t.shape for t in ts]}")
    if len({t.dtype for t in ts}) > 1:
        raise DTypeError(f"cartesian_prod: expects all tensors to have the same dtype, got "
                         f"{[t.dtype.name for t in ts]}")
    if len(ts) == 1:
        return ts[0]
    return stack([g.reshape(-1) for g in meshgrid(*ts, indexing="ij")], 1)


def combinations(input: "Tensor", r: int = 2, with_replacement: bool = False) -> "Tensor":
    """Length-r combinations of a 1-D tensor's elements, one per row (itertools order). The index
    pattern depends only on the length, so it is made on the host; the values are gathered lazily."""
    from ..tensor import tensor
    if input.ndim != 1:
        raise ShapeError(f"Expect a 1D vector, but got shape {list(input.shape)}")
    if r < 0:
        raise ValueError(f"Expect a non-negative number, but got {r}")
    if r == 0:
        return input[:0]
    make = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    rows = list(make(range(input.shape[0]), r))
    if not rows:
        return input[:0].reshape(0, r)
    index = tensor(rows, dtype=dtypes.int64, device=input.device)
    return input.index_select(0, index.reshape(-1)).reshape(len(rows), r)


def _tri_indices(row: int, col: int, offset: int, lower: bool, dtype: Any, device: Any) -> "Tensor":
    from ..tensor import tensor
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.int64
    if dt not in (dtypes.int32, dtypes.int64):
        raise DTypeError(f"tril_indices/triu_indices: dtype must be int32 or int64, got {dt.name}")
    if row < 0 or col < 0:
        raise ShapeError(f"row and col must be non-negative, got {row} and {col}")
    pairs = [(i, j) for i in range(row) for j in range(col) if (j - i <= offset if lower else j - i >= offset)]
    return tensor([[p[0] for p in pairs], [p[1] for p in pairs]], dtype=dt, device=device).reshape(2, len(pairs))


def tril_indices(row: int, col: int, offset: int = 0, *, dtype: Any = None, device: Any = None,
                 layout: Any = None) -> "Tensor":
    """(2, N) coordinates of the lower triangle of a row x col matrix, row by row (made on the host:
    they depend only on the arguments)."""
    return _tri_indices(row, col, offset, True, dtype, device)


def triu_indices(row: int, col: int, offset: int = 0, *, dtype: Any = None, device: Any = None,
                 layout: Any = None) -> "Tensor":
    """(2, N) coordinates of the upper triangle of a row x col matrix, row by row (made on the host)."""
    return _tri_indices(row, col, offset, False, dtype, device)


@autocast_op("tensordot")
def tensordot(a: "Tensor", b: "Tensor", dims: Any = 2, out: Any = None) -> "Tensor":
    """Contract a's dims dims[0] with b's dims[1] (an int n: a's last n with b's first n)."""
    from ..tensor import Tensor
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError("tensordot(): expected Tensors for a and b")
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, int):
        if dims < 0:
            raise ShapeError(f"tensordot expects dims >= 0, but got dims={dims}")
        if dims > min(a.ndim, b.ndim):
            raise ShapeError(f"tensordot expects dims < ndim_a or ndim_b, but got dims={dims}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
    if len(da) != len(db):
        raise ShapeError(f"both dimension lists should have same length, got {da} and {db}")
    da = [normalize_dim(d, a.ndim) for d in da]
    db = [normalize_dim(d, b.ndim) for d in db]
    for i, j in zip(da, db):
        if a.shape[i] != b.shape[j]:
            raise ShapeError(f"contracted dimensions need to match, but first has size {a.shape[i]} in dim {i} "
                             f"and second has size {b.shape[j]} in dim {j}")
    free_a = [i for i in range(a.ndim) if i not in da]
    free_b = [j for j in range(b.ndim) if j not in db]
    k = math.prod(a.shape[i] for i in da)
    am = a.permute(*free_a, *da).reshape(math.prod(a.shape[i] for i in free_a), k)
    bm = b.permute(*db, *free_b).reshape(k, math.prod(b.shape[j] for j in free_b))
    result = am.matmul(bm).reshape(*(a.shape[i] for i in free_a), *(b.shape[j] for j in free_b))
    return _write_out("tensordot", out, result)


def _write_out(name: str, out: Any, result: "Tensor") -> "Tensor":
    """`result` written into `out` (when given) and returned, refused like torch (see functions.py)."""
    from ..tensor import Tensor
    if out is None:
        return result
    if not isinstance(out, Tensor) or out.shape != result.shape:
        raise ShapeError(f"{name}(): out= must be a Tensor of the result's shape {result.shape}")
    if result.requires_grad:
        raise GradError(f"{name}(): functions with out=... arguments don't support automatic differentiation")
    return out.copy_(result)


def vdot(input: "Tensor", other: "Tensor", *, out: Any = None) -> "Tensor":
    """Dot product of two 1-D tensors (no conjugation: fusegrad is real)."""
    return _write_out("vdot", out, input.vdot(other))


def addmv(input: "Tensor", mat: "Tensor", vec: "Tensor", *, beta: Any = 1, alpha: Any = 1,
          out: Any = None) -> "Tensor":
    """beta * input + alpha * (mat @ vec)."""
    return _write_out("addmv", out, input.addmv(mat, vec, beta=beta, alpha=alpha))


def addmv_(input: "Tensor", mat: "Tensor", vec: "Tensor", *, beta: Any = 1, alpha: Any = 1) -> "Tensor":
    """In-place addmv: input becomes beta * input + alpha * (mat @ vec)."""
    return input.addmv_(mat, vec, beta=beta, alpha=alpha)


def dsplit(input: "Tensor", indices_or_sections: Any) -> tuple["Tensor", ...]:
    """tensor_split along dim 2 of a tensor of at least 3 dims."""
    return input.dsplit(indices_or_sections)


def isin(elements: Any, test_elements: Any, *, assume_unique: bool = False, invert: bool = False) -> "Tensor":
    """True where an element of `elements` occurs in `test_elements` (either may be a scalar)."""
    from ..tensor import Tensor, tensor
    if not isinstance(elements, Tensor) and not isinstance(test_elements, Tensor):
        raise TypeError("isin(): expected at least one of elements and test_elements to be a Tensor")
    anchor = elements if isinstance(elements, Tensor) else test_elements
    e = anchor._operand(elements) if not isinstance(elements, Tensor) else elements
    t = tensor(test_elements, device=e.device) if not isinstance(test_elements, Tensor) else test_elements
    dt = dtypes.promote_types(e.dtype, t.dtype)
    if e.dtype is dtypes.bool_ or t.dtype is dtypes.bool_:
        raise DTypeError("isin(): bool tensors are not supported")
    found = (e.cast(dt).unsqueeze(-1) == t.cast(dt).reshape(-1)).any(-1)
    return found.logical_not() if invert else found


def result_type(tensor1: Any, tensor2: Any) -> dtypes.DType:
    """The dtype an arithmetic op on these operands returns (Tensors or Python numbers)."""
    from ..tensor import Tensor
    groups: tuple[list[dtypes.DType], list[dtypes.DType], list[dtypes.DType]] = ([], [], [])
    for x in (tensor1, tensor2):
        if isinstance(x, Tensor):
            groups[1 if x.ndim == 0 else 0].append(x.dtype)
        elif isinstance(x, (bool, int, float)):
            groups[2].append(dtypes.python_scalar_dtype(x))
        else:
            raise TypeError(f"result_type(): expected a Tensor or a Number, got {type(x).__name__}")
    return dtypes.result_type(*groups)


def promote_types(type1: Any, type2: Any) -> dtypes.DType:
    """The smallest dtype both dtypes convert to without losing their kind."""
    return dtypes.promote_types(dtypes.to_dtype(type1), dtypes.to_dtype(type2))


def can_cast(from_: Any, to: Any) -> bool:
    """torch's casting rule: no float into integers, nothing but bool into bool."""
    src, dst = dtypes.to_dtype(from_), dtypes.to_dtype(to)
    if src.is_floating_point and not dst.is_floating_point:
        return False
    return dst is not dtypes.bool_ or src is dtypes.bool_

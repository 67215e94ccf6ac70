"""Matrix products from broadcast multiply + sum (one fused reduction kernel), and einsum."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from .. import dtypes
from ..errors import DTypeError, Error, InvalidValueError, ShapeError
from ..graph.ops import Op
from .autocast import autocast_args, autocast_op, autocasts

if TYPE_CHECKING:
    from ..tensor import Tensor


def _same_dtype(what: str, *ts: "Tensor") -> None:
    """Like torch, products do not promote: operands must share a dtype, and bool is not supported."""
    if len({t.dtype for t in ts}) > 1:
        raise DTypeError(f"{what}: expected operands of the same dtype, got {', '.join(t.dtype.name for t in ts)}")
    if ts[0].dtype is dtypes.bool_:
        raise DTypeError(f"{what}: bool tensors are not supported")


def _contract(a: "Tensor", b: "Tensor", axis: int) -> "Tensor":
    """Sum over `axis` of a * b. float16/bfloat16/float8 operands multiply and sum in float32 and the sums
    round once, as torch's (and cuBLAS's) narrow products do: a half times a half is exact in float32,
    where a product rounded to the half type would lose half its bits before the sum."""
    if a.dtype in dtypes.NARROW:
        return _contract(a.float(), b.float(), axis).to(a.dtype)
    prod = a * b
    return prod._reduce(Op.SUM, axis, False)  # operands of one non-bool dtype: no cast to make


class LinalgMixin:
    __slots__ = ()

    # torch.Tensor's linear-algebra methods: fusegrad.linalg computes them (imported when called,
    # as ops modules reach the Tensor layer above them)
    def inverse(self: "Tensor") -> "Tensor":
        """The matrix inverse (torch.linalg.inv)."""
        from ..linalg import inv
        return inv(self)

    def det(self: "Tensor") -> "Tensor":
        from ..linalg import det
        return det(self)

    def logdet(self: "Tensor") -> "Tensor":
        from ..linalg.lu import logdet
        return logdet(self)

    def slogdet(self: "Tensor") -> Any:
        from ..linalg import slogdet
        return slogdet(self)

    def cholesky(self: "Tensor", upper: bool = False) -> "Tensor":
        from ..linalg.legacy import cholesky
        return cholesky(self, upper)

    def cholesky_solve(self: "Tensor", input2: "Tensor", upper: bool = False) -> "Tensor":
        from ..linalg.triangular import cholesky_solve
        return cholesky_solve(self, input2, upper)

    def triangular_solve(self: "Tensor", A: "Tensor", upper: bool = True, transpose: bool = False,
                         unitriangular: bool = False) -> Any:
        from ..linalg.triangular import triangular_solve
        return triangular_solve(self, A, upper, transpose, unitriangular)

    def cross(self: "Tensor", other: "Tensor", dim: int | None = None) -> "Tensor":
        from ..linalg.norms import torch_cross
        return torch_cross(self, other, dim)

    def pinverse(self: "Tensor", rcond: float = 1e-15) -> "Tensor":
        from ..linalg.legacy import pinverse
        return pinverse(self, rcond)

    def matrix_power(self: "Tensor", n: int) -> "Tensor":
        from ..linalg import matrix_power
        return matrix_power(self, n)

    def matrix_exp(self: "Tensor") -> "Tensor":
        from ..linalg import matrix_exp
        return matrix_exp(self)

    def qr(self: "Tensor", some: bool = True) -> Any:
        from ..linalg.legacy import qr
        return qr(self, some)

    @autocast_op("matmul")
    def matmul(self: "Tensor", other: "Tensor") -> "Tensor":
        """torch.matmul semantics: 1-D vectors, 2-D matrices and broadcast batches."""
        a, b = self, self._operand(other)
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(f"matmul needs at least 1-D inputs, got shapes {a.shape} and {b.shape}")
        _same_dtype("matmul", a, b)
        a2 = a.unsqueeze(0) if a.ndim == 1 else a
        b2 = b.unsqueeze(-1) if b.ndim == 1 else b
        if a2.shape[-1] != b2.shape[-2]:
            raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied "
                             f"({a2.shape[-1]} != {b2.shape[-2]})")
        # (..., m, k, 1) * (..., 1, k, n) summed over k; the reshapes are unsqueeze(-1) and unsqueeze(-3)
        out = _contract(a2._movement(Op.RESHAPE, a2.shape + (1,)),
                        b2._movement(Op.RESHAPE, b2.shape[:-2] + (1,) + b2.shape[-2:]), -2)
        if a.ndim == 1:
            out = out.squeeze(-2)
        if b.ndim == 1:
            out = out.squeeze(-1)
        return out

    def __matmul__(self: "Tensor", other: "Tensor") -> "Tensor":
        return self.matmul(other)

    def __rmatmul__(self: "Tensor", other: "Tensor") -> "Tensor":
        return self._operand(other).matmul(self)

    @autocast_op("dot")
    def dot(self: "Tensor", other: "Tensor") -> "Tensor":
        """Inner product of two 1-D tensors of the same length."""
        other = self._operand(other)
        if self.ndim != 1 or other.ndim != 1 or self.shape != other.shape:
            raise ShapeError(f"dot: expected two 1-D tensors of the same length, got shapes {self.shape} "
                             f"and {other.shape}")
        _same_dtype("dot", self, other)
        return _contract(self, other, 0)

    @autocast_op("mm")
    def mm(self: "Tensor", mat2: "Tensor") -> "Tensor":
        """Product of two 2-D matrices."""
        mat2 = self._operand(mat2)
        if self.ndim != 2 or mat2.ndim != 2:
            raise ShapeError(f"mm: expected 2-D matrices, got shapes {self.shape} and {mat2.shape}")
        return self.matmul(mat2)

    @autocast_op("bmm")
    def bmm(self: "Tensor", mat2: "Tensor") -> "Tensor":
        """Batched product of 3-D tensors with equal batch sizes (no broadcasting)."""
        mat2 = self._operand(mat2)
        if self.ndim != 3 or mat2.ndim != 3 or self.shape[0] != mat2.shape[0]:
            raise ShapeError(f"bmm: expected 3-D tensors with the same batch size, got shapes {self.shape} "
                             f"and {mat2.shape}")
        return self.matmul(mat2)

    @autocast_op("mv")
    def mv(self: "Tensor", vec: "Tensor") -> "Tensor":
        """Product of a 2-D matrix and a 1-D vector."""
        vec = self._operand(vec)
        if self.ndim != 2 or vec.ndim != 1:
            raise ShapeError(f"mv: expected a 2-D matrix and a 1-D vector, got shapes {self.shape} and {vec.shape}")
        return self.matmul(vec)

    def outer(self: "Tensor", vec2: "Tensor") -> "Tensor":
        """Outer product of two 1-D tensors (dtypes promote, as in torch)."""
        vec2 = self._operand(vec2)
        if self.ndim != 1 or vec2.ndim != 1:
            raise ShapeError(f"outer: expected two 1-D tensors, got shapes {self.shape} and {vec2.shape}")
        return self.unsqueeze(1) * vec2.unsqueeze(0)

    ger = outer


# ---- module-level functions ---------------------------------------------------------------

def matmul(input: "Tensor", other: "Tensor") -> "Tensor":
    return input.matmul(other)


def dot(input: "Tensor", other: "Tensor") -> "Tensor":
    return input.dot(other)


def scaled_mm(input: "Tensor", mat2: "Tensor", scale_a: "Tensor", scale_b: "Tensor", bias: "Tensor | None" = None,
              scale_result: "Tensor | None" = None, out_dtype: Any = None, use_fast_accum: bool = False) -> "Tensor":
    """torch._scaled_mm: float8 matrices times their float32 scales (one per tensor, or one per row of
    `input` (m, 1) and column of `mat2` (1, n)), multiplied and summed in float32, plus `bias`, in
    `out_dtype` (input's dtype by default); a float8 result is divided by `scale_result` first, as
    PyTorch's CPU kernel does. `use_fast_accum` changes nothing: the sums are float32 either way."""
    if input.ndim != 2 or mat2.ndim != 2:
        raise ShapeError(f"_scaled_mm: both operands must be matrices, got shapes {input.shape} and {mat2.shape}")
    m, k = input.shape
    if mat2.shape[0] != k:
        raise ShapeError(f"_scaled_mm: shapes {input.shape} and {mat2.shape} cannot be multiplied")
    n = mat2.shape[1]
    tensorwise = scale_a.numel() == 1 and scale_b.numel() == 1
    rowwise = scale_a.shape == (m, 1) and scale_b.shape == (1, n)
    if input.dtype not in dtypes.FLOAT8 or mat2.dtype not in dtypes.FLOAT8 or not (tensorwise or rowwise) \
            or scale_a.dtype is not dtypes.float32 or scale_b.dtype is not dtypes.float32:
        raise InvalidValueError(
            "_scaled_mm: operands must be float8 matrices with float32 scales, one per tensor (single "
            f"elements) or per row of input (m, 1) and column of mat2 (1, n); got {input.dtype.name} "
            f"{input.shape}, {mat2.dtype.name} {mat2.shape}, scales {scale_a.dtype.name} {scale_a.shape} and "
            f"{scale_b.dtype.name} {scale_b.shape}")
    out = dtypes.to_dtype(out_dtype) if out_dtype is not None else input.dtype
    scales = [s.reshape(()) if tensorwise else s for s in (scale_a, scale_b)]
    result = input.float().matmul(mat2.float()) * scales[0] * scales[1]
    if bias is not None:
        result = result + bias.float()
    if scale_result is not None and out in dtypes.FLOAT8:
        result = result / scale_result.float().reshape(())
    return result.to(out)


def mm(input: "Tensor", mat2: "Tensor") -> "Tensor":
    return input.mm(mat2)


def bmm(input: "Tensor", mat2: "Tensor") -> "Tensor":
    return input.bmm(mat2)


def mv(input: "Tensor", vec: "Tensor") -> "Tensor":
    return input.mv(vec)


def outer(input: "Tensor", vec2: "Tensor") -> "Tensor":
    return input.outer(vec2)


class EinsumError(Error, ValueError):
    """An einsum equation that does not parse or does not fit its operands."""


def _parse_term(term: str, equation: str) -> list[str]:
    """Labels of one subscript term, '...' kept as a single entry."""
    labels: list[str] = []
    i = 0
    while i < len(term):
        if term.startswith("...", i):
            labels.append("...")
            i += 3
            continue
        if not (term[i].isascii() and term[i].isalpha()):
            raise EinsumError(f"einsum: invalid subscript {term[i]!r} in {equation!r} (letters and '...' only)")
        labels.append(term[i])
        i += 1
    if labels.count("...") > 1:
        raise EinsumError(f"einsum: more than one ellipsis in term {term!r} of {equation!r}")
    return labels


def _expand_ellipsis(labels: list[str], t: "Tensor", equation: str) -> tuple[list[str], int]:
    """Labels with '...' replaced by one pseudo-label per covered dim (numbered from the right)."""
    named = [lab for lab in labels if lab != "..."]
    if "..." not in labels:
        if len(named) != t.ndim:
            raise ShapeError(f"einsum: {len(named)} subscripts in {''.join(labels)!r} for an operand of shape "
                             f"{t.shape} ({equation!r})")
        return named, 0
    n_ell = t.ndim - len(named)
    if n_ell < 0:
        raise ShapeError(f"einsum: {len(named)} subscripts in {''.join(labels)!r} for an operand of shape "
                         f"{t.shape} ({equation!r})")
    at = labels.index("...")
    return labels[:at] + [f"...{n_ell - i}" for i in range(n_ell)] + labels[at + 1:], n_ell


def _diagonals(t: "Tensor", labels: list[str]) -> tuple["Tensor", list[str]]:
    """Take the diagonal for every label repeated within one operand (a view)."""
    while len(set(labels)) != len(labels):
        first = next(lab for lab in labels if labels.count(lab) > 1)
        i = labels.index(first)
        j = labels.index(first, i + 1)
        if t.shape[i] != t.shape[j]:
            raise ShapeError(f"einsum: subscript {first!r} is repeated for dims of sizes {t.shape[i]} and "
                             f"{t.shape[j]} (shape {t.shape})")
        t = t.diagonal(0, i, j)
        labels = [lab for k, lab in enumerate(labels) if k not in (i, j)] + [first]
    return t, labels


def einsum(equation: str, *operands: Any) -> "Tensor":
    """Einstein summation (torch.einsum): 'ij,jk->ik', implicit outputs, '...', and repeated subscripts."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise EinsumError("einsum: needs at least one operand")
    ops: Sequence["Tensor"] = autocast_args("einsum", *operands)
    if not autocasts(*ops):  # under autocast, torch's einsum casts its products' operands and promotes the rest
        _same_dtype("einsum", *ops)
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ops):
        raise EinsumError(f"einsum: {equation!r} has {len(terms)} operand terms but {len(ops)} operands were given")
    parsed = [_parse_term(term, equation) for term in terms]
    expanded = [_expand_ellipsis(labels, t, equation) for labels, t in zip(parsed, ops)]
    n_ell = max(n for _, n in expanded)
    ell = [f"...{n_ell - i}" for i in range(n_ell)]
    if arrow:
        out_labels = _parse_term(rhs, equation)
        if len(set(out_labels)) != len(out_labels):
            raise EinsumError(f"einsum: output subscripts repeat in {equation!r}")
        known = {lab for labels in parsed for lab in labels}
        # an output '...' may cover no dims, so it needs no ellipsis among the inputs (as in torch)
        missing = [lab for lab in out_labels if lab not in known and lab != "..."]
        if missing:
            raise EinsumError(f"einsum: output subscripts {missing} do not appear in the inputs of {equation!r}")
        at = out_labels.index("...") if "..." in out_labels else None
        out = out_labels if at is None else out_labels[:at] + ell + out_labels[at + 1:]
    else:
        counts: dict[str, int] = {}
        for labels in parsed:
            for lab in labels:
                counts[lab] = counts.get(lab, 0) + 1
        out = ell + sorted(lab for lab, c in counts.items() if c == 1 and lab != "...")
    # every operand becomes a view over one shared label order: output labels, then summed ones
    prepared = [_diagonals(t, labels) for t, (labels, _) in zip(ops, expanded)]
    order = list(out) + sorted({lab for _, labels in prepared for lab in labels} - set(out))
    sizes: dict[str, int] = {}
    for t, labels in prepared:
        for lab, s in zip(labels, t.shape):
            if sizes.get(lab, 1) != 1 and s != 1 and sizes[lab] != s:
                raise ShapeError(f"einsum: subscript {lab!r} has sizes {sizes[lab]} and {s} in {equation!r} "
                                 f"(operand shapes {[tuple(o.shape) for o in ops]})")
            if s != 1:
                sizes[lab] = s
    position = {lab: i for i, lab in enumerate(order)}
    aligned = []
    for t, labels in prepared:
        perm = sorted(range(len(labels)), key=lambda k: position[labels[k]])
        t = t.permute(perm)
        size_of = dict(zip((labels[k] for k in perm), t.shape))
        aligned.append(t.reshape(tuple(size_of.get(lab, 1) for lab in order)))
    # multiply left to right, summing a label away once no later operand uses it
    # (half operands: each pairwise product exact in float32 and rounded once, as torch's bmm steps round)
    acc = aligned[0]
    half = acc.dtype if acc.dtype in dtypes.HALF else None
    for k in range(len(aligned)):
        later = {lab for _, labels in prepared[k + 1:] for lab in labels}
        if k:
            right = aligned[k]
            # a product summing labels both sides hold is a bmm in torch's einsum, which autocast casts
            if any(lab not in out and lab not in later and acc.shape[i] != 1 and right.shape[i] != 1
                   for i, lab in enumerate(order)):
                acc, right = autocast_args("bmm", acc, right)
            half = acc.dtype if acc.dtype in dtypes.HALF and right.dtype is acc.dtype else None
            acc = acc.float() * right.float() if half else acc * right
        done = tuple(i for i, lab in enumerate(order) if lab not in out and lab not in later and acc.shape[i] != 1)
        if done:
            acc = acc.sum(done, keepdim=True, dtype=acc.dtype)
        if half:
            acc = acc.to(half)
    return acc.reshape(tuple(acc.shape[:len(out)]))

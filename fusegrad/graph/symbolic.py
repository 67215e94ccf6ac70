"""Integer index arithmetic for views: linear forms over loop variables, with floor-division
and modulo atoms that simplify away when value ranges allow (so reshapes cost nothing).

An expression is `Lin`: sum(coef * atom) + const. Atoms are loop variables or Div/Mod of a
Lin by a positive constant. Every expression knows its [lo, hi] range.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Var:
    name: str
    extent: int  # the variable runs over [0, extent)

    @property
    def lo(self) -> int:
        return 0

    @property
    def hi(self) -> int:
        return self.extent - 1

    def render(self) -> str:
        return self.name


@dataclass(frozen=True)
class DivAtom:
    num: "Lin"
    k: int

    @property
    def lo(self) -> int:
        return self.num.lo // self.k

    @property
    def hi(self) -> int:
        return self.num.hi // self.k

    def render(self) -> str:
        return f"({self.num.render()}/{self.k})"


@dataclass(frozen=True)
class ModAtom:
    num: "Lin"
    k: int

    @property
    def lo(self) -> int:
        return 0 if self.num.lo >= 0 else -(self.k - 1)

    @property
    def hi(self) -> int:
        return self.k - 1

    def render(self) -> str:
        return f"({self.num.render()}%{self.k})"


Atom = Var | DivAtom | ModAtom


@dataclass(frozen=True)
class Lin:
    terms: tuple[tuple[Atom, int], ...]  # sorted by atom repr, coefficients non-zero
    const: int

    @property
    def lo(self) -> int:
        return self.const + sum(c * (a.lo if c > 0 else a.hi) for a, c in self.terms)

    @property
    def hi(self) -> int:
        return self.const + sum(c * (a.hi if c > 0 else a.lo) for a, c in self.terms)

    @property
    def is_const(self) -> bool:
        return not self.terms

    def __add__(self, other: "Lin | int") -> "Lin":
        if isinstance(other, int):
            return Lin(self.terms, self.const + other) if other else self
        merged: dict[Atom, int] = dict(self.terms)
        for a, c in other.terms:
            merged[a] = merged.get(a, 0) + c
        return _make(merged, self.const + other.const)

    def __mul__(self, k: int) -> "Lin":
        if k == 0:
            return ZERO
        return Lin(tuple((a, c * k) for a, c in self.terms), self.const * k)

    def __neg__(self) -> "Lin":
        return self * -1

    def __sub__(self, other: "Lin | int") -> "Lin":
        return self + (-other if isinstance(other, int) else other * -1)

    def __floordiv__(self, k: int) -> "Lin":
        assert k > 0
        if k == 1:
            return self
        quotient: dict[Atom, int] = {}
        rest: dict[Atom, int] = {}
        for a, c in self.terms:
            q, r = divmod(c, k)  # c*a = q*k*a + r*a, so q*a moves out of the division
            if q:
                quotient[a] = q
            if r:
                rest[a] = r
        q_const, r_const = divmod(self.const, k)
        remainder = _make(rest, r_const)
        if remainder.lo >= 0 and remainder.hi < k:
            return _make(quotient, q_const)
        if remainder.is_const:
            return _make(quotient, q_const + remainder.const // k)
        inner = _single_div(remainder)
        if inner is not None:  # (x/a)/k == x/(a*k): one division, and reshapes' pieces recombine in _make
            return _make(quotient, q_const) + atom(DivAtom(inner.num, inner.k * k))
        return _make(quotient, q_const) + atom(DivAtom(remainder, k))

    def __mod__(self, k: int) -> "Lin":
        assert k > 0
        if k == 1:
            return ZERO
        rest = {a: c % k for a, c in self.terms if c % k}
        remainder = _make(rest, self.const % k)
        if remainder.lo >= 0 and remainder.hi < k:
            return remainder
        return atom(ModAtom(remainder, k))

    def render(self) -> str:
        parts = []
        for a, c in self.terms:
            r = a.render()
            parts.append(r if c == 1 else f"{c}*{r}")
        if self.const or not parts:
            parts.append(str(self.const))
        return "(" + "+".join(parts).replace("+-", "-") + ")" if len(parts) > 1 else parts[0]


def _single_div(expr: Lin) -> DivAtom | None:
    """The division when expr is exactly x/a."""
    if expr.const == 0 and len(expr.terms) == 1 and expr.terms[0][1] == 1 and isinstance(expr.terms[0][0], DivAtom):
        return expr.terms[0][0]
    return None


def _make(terms: dict[Atom, int], const: int) -> Lin:
    # k*(x/k) + (x%k) == x, and k*(x/(a*k)) + ((x/a)%k) == x/a: recombine the pieces a reshape split
    # apart (flattening (C, 5, 5) to 1600 and back gave 25*(i/25) + 5*((i/5)%5) + i%5 for i)
    for a in [a for a in terms if isinstance(a, ModAtom)]:
        c = terms.get(a, 0)
        inner = _single_div(a.num)
        if c and inner is not None and terms.get(DivAtom(inner.num, inner.k * a.k)) == c * a.k:
            del terms[a], terms[DivAtom(inner.num, inner.k * a.k)]
            return _make(terms, const) + a.num * c
        div = DivAtom(a.num, a.k)
        if c and terms.get(div) == c * a.k:
            del terms[a], terms[div]
            return _make(terms, const) + a.num * c
    return Lin(tuple(sorted(((a, c) for a, c in terms.items() if c), key=lambda t: repr(t[0]))), const)


def num(value: int) -> Lin:
    return Lin((), value)


def atom(a: Atom) -> Lin:
    return Lin(((a, 1),), 0)


def var(name: str, extent: int) -> Lin:
    """A loop variable; a dimension of extent 1 is the constant 0."""
    return atom(Var(name, extent)) if extent > 1 else ZERO


ZERO = Lin((), 0)


@dataclass(frozen=True)
class Bound:
    """The condition lo <= expr < hi."""

    expr: Lin
    lo: int
    hi: int

    def render(self) -> str:
        conds = []
        if self.expr.lo < self.lo:
            conds.append(f"{self.expr.render()}>={self.lo}")
        if self.expr.hi >= self.hi:
            conds.append(f"{self.expr.render()}<{self.hi}")
        return "&&".join(conds)


def bound(expr: Lin, lo: int, hi: int) -> Bound | bool:
    """A bound, or True/False when the range decides it statically."""
    if expr.lo >= lo and expr.hi < hi:
        return True
    if expr.hi < lo or expr.lo >= hi:
        return False
    return Bound(expr, lo, hi)


def flat_index(coords: tuple[Lin, ...], shape: tuple[int, ...]) -> Lin:
    """Row-major linear index of `coords` in a contiguous array of `shape`."""
    index, stride = ZERO, 1
    for c, s in zip(reversed(coords), reversed(shape)):
        index = index + c * stride
        stride *= s
    return index


def unflatten(index: Lin, shape: tuple[int, ...]) -> tuple[Lin, ...]:
    """Coordinates in `shape` of a row-major linear index."""
    if 0 in shape:  # an empty array has no elements to address
        return tuple(ZERO for _ in shape)
    coords = []
    stride = 1
    for s in reversed(shape):
        coords.append(ZERO if s == 1 else (index // stride) % s)
        stride *= s
    return tuple(reversed(coords))


def fold_bounded_mod(expr: Lin, lo: int, hi: int) -> tuple[dict[Atom, Lin], int] | None:
    """Under the bound lo <= expr < hi, where expr is X%m + c: split X = m*q + y with y's coefficients
    the remainders nearest zero. When y spans [-m, m) and every negative y (where X%m wraps to y+m)
    falls outside the bound, the bound implies y >= 0, so X/m == q and X%m == y there.

    Returns ({X/m: q, X%m: y} to substitute, the bound's new lower end on the rewritten expr), or None.
    The sliding-window gradient needs this: its rows of width w+d reshaped to width w index with
    (i + w*r) / (w+d) and % (w+d), which become r and i - d*r (no division per element)."""
    if len(expr.terms) != 1:
        return None
    mod, coef = expr.terms[0]
    if coef != 1 or not isinstance(mod, ModAtom) or mod.num.lo >= 0 and mod.num.hi < mod.k:
        return None
    m, c = mod.k, expr.const
    quotient: dict[Atom, int] = {}
    rest: dict[Atom, int] = {}
    for a, k in mod.num.terms:
        q = (k + m // 2) // m
        if q:
            quotient[a] = q
        if k - q * m:
            rest[a] = k - q * m
    q_const, r_const = divmod(mod.num.const, m)
    y = _make(rest, r_const)
    if y.lo < -m or y.hi >= m or y.lo + m < hi - c:
        return None
    return {DivAtom(mod.num, m): _make(quotient, q_const), mod: y}, max(lo, c)


def replace_atoms(expr: Lin, mapping: dict[Atom, Lin]) -> Lin:
    """expr with the given atoms (anywhere, also inside divisions) replaced by Lins (re-simplified)."""
    out = num(expr.const)
    for a, c in expr.terms:
        if a in mapping:
            out = out + mapping[a] * c
        elif isinstance(a, DivAtom):
            out = out + (replace_atoms(a.num, mapping) // a.k) * c
        elif isinstance(a, ModAtom):
            out = out + (replace_atoms(a.num, mapping) % a.k) * c
        else:
            out = out + atom(a) * c
    return out


def substitute(expr: Lin, v: Var, value: Lin) -> Lin:
    """expr with every occurrence of the variable v replaced by value (re-simplified)."""
    return replace_atoms(expr, {v: value})

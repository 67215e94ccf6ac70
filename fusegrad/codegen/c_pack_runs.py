"""Packing a GEMM operand by runs: copies along one variable, the padding written as intervals.

A convolution's window operand (the input read through a sliding window, with padding bounds) is a
gather when packed element by element: per element the carries of every coordinate and a test of
every bound. Along the innermost variable of one side of the panel (the output column of a window,
or a flattened stretch of variables laid out contiguously) the source advances by a fixed stride and
each bound is linear in the position, so it holds on an interval of the run: the run is copied as a
strided (mostly unit-stride, vectorized) loop and the positions outside the interval are zeroed, with
no test per element. Runs along w (the panel's rows/columns: a forward's output columns) land
contiguously in the panel; runs along k (a weight gradient's output positions) land one panel row
apart, so they are copied into rows of a scratch first and transposed in registers by the support
library's `fg_pack_rows`, whatever the panel's width (one element per panel row at a time was no faster).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..graph.symbolic import Bound, Lin, Var, atom
from .gemm import lin_vars
from .gemm_c import pack_rows
from .ir import Load

if TYPE_CHECKING:
    from .c import CRenderer

MIN_RUN = 4  # shorter runs cost more in interval arithmetic than the per-element tests they save
# an operand without bounds packs by offset tables and gathers instead (codegen/c.py), which beat runs
# shorter than this (a 13x13 input's 11-wide output rows)
MIN_PLAIN_RUN = 16
MAX_STRIDE = 8  # source elements between a run's neighbours: wider strides read a cache line per element
K_RUN_CAP = 256  # a k-run never spans more than one panel's depth


@dataclass(frozen=True)
class Run:
    """The variables of one side of a panel split into a prefix, stepped with carries, and a suffix
    walked in runs: `extent` positions `stride` elements apart in the source."""
    prefix: tuple[Var, ...]
    suffix: tuple[Var, ...]
    stride: int

    @property
    def extent(self) -> int:
        return math.prod(v.extent for v in self.suffix)

    @property
    def coordinates(self) -> tuple[Var, ...]:
        """The prefix and the position within the suffix, as C variables."""
        return (*self.prefix, Var(self.position, self.extent))

    @property
    def position(self) -> str:
        """The C name of the position within the suffix."""
        return self.suffix[0].name if len(self.suffix) == 1 else "fg_u"


def find_run(load: Load, variables: tuple[Var, ...]) -> Run | None:
    """The longest suffix of `variables` that the load reads as one strided run: the last variable
    with a non-zero stride of at most MAX_STRIDE, and the ones before it while each steps exactly
    over the ones after (a flattened stretch) and no bound reads them. No variable of the suffix may
    sit inside a division or modulo of the index or the bounds (then the source does not advance by
    a fixed stride)."""
    coefficients = dict(load.index.terms)
    nested = {v for e in (load.index, *(b.expr for b in load.valid)) for a, _ in e.terms
              if not isinstance(a, Var) for v in lin_vars(atom(a))}
    bounded = {v for b in load.valid for v in lin_vars(b.expr)}
    last = variables[-1]
    stride = coefficients.get(last, 0)
    if stride == 0 or abs(stride) > MAX_STRIDE or last in nested:
        return None
    start, step = len(variables) - 1, stride * last.extent
    if last not in bounded:
        while start > 0 and coefficients.get(variables[start - 1]) == step and \
                variables[start - 1] not in bounded | nested:
            start -= 1
            step *= variables[start].extent
    return Run(variables[:start], variables[start:], stride)


def choose(load: Load, outer: tuple[Var, ...], ks: tuple[Var, ...], width: int) -> tuple[str, Run] | None:
    """("w", run) or ("k", run): the side whose runs are longer (w on ties: its runs land contiguously),
    or None when neither side has runs of MIN_RUN (MIN_PLAIN_RUN for a load without bounds)."""
    sides = [(side, run) for side, variables in (("w", outer), ("k", ks))
             if (run := find_run(load, variables)) is not None]
    cap = {"w": width, "k": K_RUN_CAP}
    shortest = MIN_RUN if load.valid else MIN_PLAIN_RUN
    sides = [(side, run) for side, run in sides if min(run.extent, cap[side]) >= shortest]
    if not sides:
        return None
    return max(sides, key=lambda item: (min(item[1].extent, cap[item[0]]), item[0] == "w"))


def render(r: CRenderer, buf: str, load: Load, outer: tuple[Var, ...], ks: tuple[Var, ...], first: str, end: str,
           width: int, size: int, side: str, run: Run) -> list[str]:
    """Loops packing `load` into panels buf[(blk*kc + kk)*width + w] by runs along `side`."""
    t = panel_type(r, load)
    if side == "w":
        return _in_blocks(first, end, declare(ks, "pc"),
                          runs_along_w(r, f"{buf} + (blk * kc + kk) * {width}", load, ks, width, size, run))
    transpose = pack_rows("float32" if t == "float" else "float64")
    body = [f"for (int64_t w = 0; w < {width}; w++) {{",
            f"  {t}* restrict dst = fg_rows + w * kc;",
            f"  const int64_t flat = blk * {width} + w;",
            f"  if (flat >= {size}) {{ for (int64_t kk = 0; kk < kc; kk++) dst[kk] = 0; continue; }}",
            *["  " + line for line in declare(outer, "flat")],
            *["  " + line for line in declare(run.coordinates, "pc")],
            "  int64_t kk = 0;",
            *["  " + line for line in _runs(r, load, run, "kk", "kc")],
            "}",
            # the scratch rows transposed into the panel (8 x 8 blocks in registers, a partial last block too)
            f"int32_t fg_off[{width}];",
            f"for (int64_t w = 0; w < {width}; w++) fg_off[w] = (int32_t)(w * kc);",
            f"{transpose}({buf} + blk * kc * {width}, fg_rows, fg_off, {width}, kc);"]
    head = [f"{t}* fg_rows = ({t}*)fg_pack_scratch(3, sizeof({t}) * {width} * kc);"]
    return _in_blocks(first, end, head + _in_place(load, outer, run, buf, width, size, transpose), body)


def panel_type(r: CRenderer, load: Load) -> str:
    """The C type of the float panels `load` is packed into: half types widen to float."""
    return r.storage_type(load.dtype) if load.dtype.name in ("float32", "float64") else "float"


def runs_along_w(r: CRenderer, row: str, load: Load, ks: tuple[Var, ...], width: int, size: int,
                 run: Run) -> list[str]:
    """The body of one panel's packing by runs along its rows/columns: for each k (from the coordinates
    `ks` declared at the panel's first k, stepped with carries) the row at `row` (an expression in kk),
    `width` values of panel_type, zero past `size`."""
    return [*declare(run.coordinates, f"blk * {width}", "_row"),
            "for (int64_t kk = 0; kk < kc; kk++) {",
            f"  {panel_type(r, load)}* restrict dst = {row};",
            *[f"  int64_t {v.name} = {v.name}_row;" for v in run.coordinates],
            f"  const int64_t live = {size} - blk * {width} < {width} ? {size} - blk * {width} : {width};",
            "  int64_t w = 0;",
            *["  " + line for line in _runs(r, load, run, "w", "live")],
            f"  for (; w < {width}; w++) dst[w] = 0;",
            *["  " + line for line in step(ks)],
            "}"]


def _in_place(load: Load, outer: tuple[Var, ...], run: Run, buf: str, width: int, size: int,
              transpose: str) -> list[str]:
    """For rows read contiguously along k with no bounds (an output gradient), lines transposing a
    panel straight from the source when it lies within one run of every row (the run's position
    depends on k alone), skipping the copy into scratch rows; none for other loads."""
    index = _index(load, run)
    if load.valid or run.stride != 1 or load.dtype.name not in ("float32", "float64") or index.hi >= 1 << 31 \
            or not all(isinstance(a, Var) for a, _ in index.terms):
        return []
    across = Lin(tuple((a, c) for a, c in index.terms if a in outer), 0)
    along = index - across
    return ["{",
            *["  " + line for line in declare(run.coordinates, "pc")],
            f"  if ({run.position} + kc <= {run.extent}) {{",
            f"    int32_t fg_off[{width}];",
            f"    for (int64_t w = 0; w < {width}; w++) {{",
            f"      const int64_t flat = blk * {width} + w < {size} ? blk * {width} + w : 0;",  # (sums never stored)
            *["      " + line for line in declare(outer, "flat")],
            f"      fg_off[w] = (int32_t)({across.render()});",
            "    }",
            f"    {transpose}({buf} + blk * kc * {width}, p{load.param} + {along.render()}, fg_off, {width}, kc);",
            "    continue;",
            "  }",
            "}"]


def whole_vectors(type_name: str, width: int) -> bool:
    """Whether a panel row of `width` elements of this C type is a whole number of 32-byte vectors."""
    return type_name in ("float", "double") and width * (4 if type_name == "float" else 8) % 32 == 0


def _in_blocks(first: str, end: str, head: list[str], body: list[str]) -> list[str]:
    return [f"      for (int64_t blk = {first}; blk < {end}; blk++) {{",
            *["        " + line for line in head + body],
            "      }"]


def _runs(r: CRenderer, load: Load, run: Run, counter: str, limit: str) -> list[str]:
    """Runs from `counter` to `limit` into dst[counter]: each the rest of the suffix or of the range,
    its valid interval [t0, t1) copied and the rest zeroed; the coordinates then advance."""
    value = r.widened(f"src[{run.stride} * t]", load.dtype)
    d = f"dst[{counter} + t]"
    u, last = run.position, run.suffix[-1]
    return [f"while ({counter} < {limit}) {{",
            f"  const int64_t n = {limit} - {counter} < {run.extent} - {u} ? {limit} - {counter} : "
            f"{run.extent} - {u};",
            "  int64_t t0 = 0, t1 = n;",
            *["  " + line for b in load.valid for line in _interval(b, last)],
            "  t0 = t0 < n ? t0 : n;",
            "  t1 = t1 > t0 ? t1 : t0;",
            f"  const {r.storage_type(load.dtype)}* restrict src = p{load.param} + {_index(load, run).render()};",
            f"  if (t0 == 0 && t1 == {run.extent}) {{  /* a whole run inside the bounds: a copy of constant length */",
            f"    for (int64_t t = 0; t < {run.extent}; t++) {d} = {value};",
            f"  }} else if (n == {run.extent}) {{  /* a whole run into padding: zeroed first */",
            f"    for (int64_t t = 0; t < {run.extent}; t++) {d} = 0;",
            f"    for (int64_t t = t0; t < t1; t++) {d} = {value};",
            "  } else {",
            f"    for (int64_t t = 0; t < t0; t++) {d} = 0;",
            f"    for (int64_t t = t0; t < t1; t++) {d} = {value};",
            f"    for (int64_t t = t1; t < n; t++) {d} = 0;",
            "  }",
            f"  {counter} += n;",
            f"  {u} += n;",
            *([f"  if ({u} == {run.extent}) {{ {u} = 0; {_carry(run.prefix)} }}"] if run.prefix else []),
            "}"]


def _interval(b: Bound, v: Var) -> list[str]:
    """Lines narrowing [t0, t1) to the positions t of the run where lo <= expr < hi with v + t for v."""
    a = dict(b.expr.terms).get(v, 0)
    e = b.expr.render()
    low, high = b.expr.lo < b.lo, b.expr.hi >= b.hi
    if a == 0:  # the same for the whole run
        return [f"if (!({b.render()})) t1 = 0;"]
    if a > 0:  # t >= ceil((lo - e) / a), t < ceil((hi - e) / a)
        lo_t, hi_t = _ceil(f"{b.lo} - {e}", a), _ceil(f"{b.hi} - {e}", a)
    else:  # t <= floor((e - lo) / -a), t > floor((e - hi) / -a)
        lo_t, hi_t = f"{_floor(f'{e} - {b.hi}', -a)} + 1", f"{_floor(f'{e} - {b.lo}', -a)} + 1"
        low, high = high, low
    lines = []
    if low:
        lines.append(f"{{ const int64_t x = {lo_t}; t0 = x > t0 ? x : t0; }}")
    if high:
        lines.append(f"{{ const int64_t x = {hi_t}; t1 = x < t1 ? x : t1; }}")
    return lines


def _floor(num: str, k: int) -> str:
    return f"({num})" if k == 1 else f"fg_floordiv({num}, {k})"


def _ceil(num: str, k: int) -> str:
    return f"({num})" if k == 1 else f"-fg_floordiv(-({num}), {k})"


def _index(load: Load, run: Run) -> Lin:
    """The load's index at the start of the run (a multi-variable suffix by its flat position)."""
    if len(run.suffix) == 1:
        return load.index
    kept = Lin(tuple((a, c) for a, c in load.index.terms if a not in run.suffix), load.index.const)
    return kept + atom(Var(run.position, run.extent)) * run.stride


def declare(variables: tuple[Var, ...], flat: str, suffix: str = "") -> list[str]:
    """Mutable row-major coordinates of the flat index `flat` (computed once)."""
    out, stride = [], 1
    for i in reversed(range(len(variables))):
        v = variables[i]
        div = f"({flat}) / {stride}" if stride > 1 else f"({flat})"
        out.append(f"int64_t {v.name}{suffix} = {div if i == 0 else f'({div}) % {v.extent}'};")
        stride *= v.extent
    return out


def step(variables: tuple[Var, ...]) -> list[str]:
    """Advance row-major coordinates by one: the last variable counts, carrying into the ones
    before it (the first one is never wrapped: a guard on the flat index bounds it)."""
    return [_carry(variables)]


def _carry(variables: tuple[Var, ...]) -> str:
    text = f"++{variables[0].name};"
    for v in variables[1:]:
        text = f"if (++{v.name} == {v.extent}) {{ {v.name} = 0; {text} }}"
    return text

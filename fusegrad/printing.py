"""PyTorch-style repr/str of tensors: the same number formats, line wrapping, summarization and suffixes.

All values of a tensor share one format, chosen from its non-zero finite values: integer-valued
floats print as `1.`, others with 4 decimals, and scientific notation is used when the magnitudes
span more than 1000x, exceed 1e8 or (for non-integers) drop below 1e-4. Tensors with more than
1000 elements print only their first and last 3 entries along each dimension, around `...`.
This runs on the host copy of the values: it formats text, it computes no tensor op.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from . import dtypes
from .runtime import registry

if TYPE_CHECKING:
    from .tensor import Tensor

PRECISION = 4  # digits after the decimal point
THRESHOLD = 1000  # more elements than this are summarized
EDGEITEMS = 3  # entries kept at each end of a summarized dimension
LINEWIDTH = 80
PREFIX = "tensor("

# dtypes a PyTorch user would assume without being told, so their repr omits `dtype=`
_IMPLIED_DTYPES = (dtypes.float32, dtypes.int64, dtypes.bool_)


class _Formatter:
    """One format and width for every value of a tensor, chosen the way PyTorch chooses it."""

    def __init__(self, values: list[Any], floating: bool):
        self.floating = floating
        self.int_mode = True
        self.sci_mode = False
        self.width = 1
        if not floating:
            self.width = max([1] + [len(str(v)) for v in values])
            return
        finite = [v for v in values if math.isfinite(v) and v != 0]
        if not finite:
            return
        smallest = min(abs(v) for v in finite)
        largest = max(abs(v) for v in finite)
        self.int_mode = all(v == math.ceil(v) for v in finite)
        self.sci_mode = largest / smallest > 1000.0 or largest > 1.0e8 or (not self.int_mode and smallest < 1.0e-4)
        if self.sci_mode:
            texts = [f"{v:.{PRECISION}e}" for v in finite]
        elif self.int_mode:
            texts = [f"{v:.0f}." for v in finite]
        else:
            texts = [f"{v:.{PRECISION}f}" for v in finite]
        self.width = max(len(t) for t in texts)

    def format(self, value: Any) -> str:
        """One value, right-aligned to the shared width."""
        if not self.floating:
            text = str(value)
        elif self.sci_mode:
            text = f"{value:.{PRECISION}e}"
        elif self.int_mode:
            text = f"{value:.0f}" + ("" if math.isinf(value) or math.isnan(value) else ".")
        else:
            text = f"{value:.{PRECISION}f}"
        return text.rjust(self.width)


def _host_values(t: "Tensor") -> np.ndarray:
    """The values as a numpy array whose .tolist() gives Python bools, ints or floats."""
    arr = t.numpy()
    if t.dtype in dtypes.HALF:
        arr = arr.astype(np.float32)  # half types print through float32, as in PyTorch
    return arr


def _summary(arr: np.ndarray) -> np.ndarray:
    """The entries a summarized print shows: the edge items of every long dimension."""
    index = []
    for size in arr.shape:
        if size > 2 * EDGEITEMS:
            index.append(list(range(EDGEITEMS)) + list(range(size - EDGEITEMS, size)))
        else:
            index.append(list(range(size)))
    return arr[np.ix_(*index)] if arr.ndim else arr


def _vector(arr: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    values = arr.tolist()
    if summarize and len(values) > 2 * EDGEITEMS:
        items = [fmt.format(v) for v in values[:EDGEITEMS]] + [" ..."] + \
            [fmt.format(v) for v in values[-EDGEITEMS:]]
    else:
        items = [fmt.format(v) for v in values]
    per_line = max(1, (LINEWIDTH - indent) // (fmt.width + 2))  # each item also takes ", "
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _body(arr: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    """Nested brackets; recursion goes one level per dimension, never deeper than ndim."""
    if arr.ndim == 0:
        return fmt.format(arr.item())
    if arr.ndim == 1:
        return _vector(arr, indent, summarize, fmt)
    rows = range(arr.shape[0])
    if summarize and arr.shape[0] > 2 * EDGEITEMS:
        head = [_body(arr[i], indent + 1, summarize, fmt) for i in rows[:EDGEITEMS]]
        tail = [_body(arr[i], indent + 1, summarize, fmt) for i in rows[-EDGEITEMS:]]
        pieces = head + ["..."] + tail
    else:
        pieces = [_body(arr[i], indent + 1, summarize, fmt) for i in rows]
    return "[" + ("," + "\n" * (arr.ndim - 1) + " " * (indent + 1)).join(pieces) + "]"


def _with_suffixes(text: str, suffixes: list[str]) -> str:
    """Append `, key=value` suffixes, starting a new line where one would pass the line width."""
    parts = [text]
    last_line = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line + len(suffix) + 2 > LINEWIDTH:
            parts.append(",\n" + " " * len(PREFIX) + suffix)
            last_line = len(PREFIX) + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line += len(suffix) + 2
    return "".join(parts) + ")"


def tensor_repr(t: "Tensor") -> str:
    """`tensor([1.5000, 2.0000], requires_grad=True)`, formatted like PyTorch (realizes the tensor)."""
    suffixes = []
    if t.device != registry.canonical(None):
        suffixes.append(f"device='{t.device}'")
    if t.numel() == 0:
        body = "[]"
        if t.ndim != 1:
            suffixes.append(f"size={tuple(t.shape)}")
        if t.dtype is not dtypes.float32:  # no values to tell an int or bool tensor apart
            suffixes.append(f"dtype={t.dtype!r}")
    else:
        arr = _host_values(t)
        summarize = arr.size > THRESHOLD
        shown = _summary(arr) if summarize else arr
        fmt = _Formatter(shown.reshape(-1).tolist(), t.dtype.is_floating_point)
        body = _body(arr, len(PREFIX), summarize, fmt)
        if t.dtype not in _IMPLIED_DTYPES:
            suffixes.append(f"dtype={t.dtype!r}")
    if t.requires_grad and t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{t.grad_fn.title()}Backward>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    return _with_suffixes(PREFIX + body, suffixes)

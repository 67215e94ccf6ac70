"""Recurrent cells: RNNCell, LSTMCell and GRUCell with torch's parameter names, gate order and initialization."""
from __future__ import annotations

import math
from typing import Any

from ..errors import ShapeError
from ..ops.autocast import autocast_call
from ..tensor import Tensor
from ..creation import empty, zeros
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter


class _RNNCellBase(Module):
    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device: Any,
                 dtype: Any):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        rows = num_chunks * hidden_size
        self.weight_ih = Parameter(empty(rows, input_size, device=device, dtype=dtype))
        self.weight_hh = Parameter(empty(rows, hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(rows, device=device, dtype=dtype))
            self.bias_hh = Parameter(empty(rows, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), like torch."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _check(self, input: Tensor, hx: Tensor | None) -> tuple[Tensor, bool]:
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ShapeError(f"{type(self).__name__}: expected input of shape (N, {self.input_size}) or "
                             f"({self.input_size},), got {input.shape}")
        unbatched = input.ndim == 1
        if hx is not None and hx.ndim != input.ndim:
            raise ShapeError(f"{type(self).__name__}: input {input.shape} and hidden state {hx.shape} must both be "
                             f"batched (2-D) or both unbatched (1-D)")
        return (input.unsqueeze(0) if unbatched else input), unbatched

    def _hidden(self, hx: Tensor | None, like: Tensor) -> Tensor:
        if hx is None:
            return zeros(like.shape[0], self.hidden_size, device=like.device, dtype=like.dtype)
        hx = hx.unsqueeze(0) if hx.ndim == 1 else hx
        if tuple(hx.shape) != (like.shape[0], self.hidden_size):
            raise ShapeError(f"{type(self).__name__}: hidden state of shape {hx.shape} does not match "
                             f"{(like.shape[0], self.hidden_size)}")
        return hx

    def _params(self) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


# one step of each cell from explicit tensors: under autocast a cell is one op, its tensors cast together
def _lstm_step(x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
               b_hh: Tensor | None) -> tuple[Tensor, Tensor]:
    i, f, g, o = (F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)).chunk(4, 1)
    c_next = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c_next.tanh(), c_next


def _gru_step(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor:
    xr, xz, xn = F.linear(x, w_ih, b_ih).chunk(3, 1)
    hr, hz, hn = F.linear(h, w_hh, b_hh).chunk(3, 1)
    r = (xr + hr).sigmoid()
    z = (xz + hz).sigmoid()
    n = (xn + r * hn).tanh()
    return (1 - z) * n + z * h


def _rnn_step(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None, *,
              relu: bool) -> Tensor:
    pre = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)
    return pre.relu() if relu else pre.tanh()


class LSTMCell(_RNNCellBase):
    """One LSTM step; gates (input, forget, cell, output) stacked in that order in the weights."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """(h', c') from input (N, input_size) or (input_size,) and optional (h, c)."""
        x, unbatched = self._check(input, None if hx is None else hx[0])
        h = self._hidden(None if hx is None else hx[0], x)
        c = self._hidden(None if hx is None else hx[1], x)
        h_next, c_next = autocast_call("lstm_cell", _lstm_step, x, h, c, *self._params())
        if unbatched:
            return h_next.squeeze(0), c_next.squeeze(0)
        return h_next, c_next


class GRUCell(_RNNCellBase):
    """One GRU step; gates (reset, update, new) stacked in that order in the weights."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """h' from input (N, input_size) or (input_size,) and an optional hidden state h."""
        x, unbatched = self._check(input, hx)
        h_next = autocast_call("gru_cell", _gru_step, x, self._hidden(hx, x), *self._params())
        return h_next.squeeze(0) if unbatched else h_next


class RNNCell(_RNNCellBase):
    """One Elman RNN step: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh), or relu."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device: Any = None, dtype: Any = None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """h' from input (N, input_size) or (input_size,) and an optional hidden state h."""
        x, unbatched = self._check(input, hx)
        relu = self.nonlinearity == "relu"
        h_next = autocast_call("rnn_relu_cell" if relu else "rnn_tanh_cell", _rnn_step, x, self._hidden(hx, x),
                               *self._params(), relu=relu)
        return h_next.squeeze(0) if unbatched else h_next

    def extra_repr(self) -> str:
        extra = "" if self.nonlinearity == "tanh" else ", nonlinearity=relu"
        return super().extra_repr() + extra

"""Multi-layer recurrent networks (RNN, LSTM, GRU) with torch's parameter names, shapes and state layout.

The input projections of a whole sequence are one product per layer and direction; the steps of a
layer direction then run inside one fused kernel per direction of the gradient (ops/recurrence.py).
Packed sequences and LSTM projections (proj_size) run step by step as lazy tensor ops instead, an
unrolled graph that differentiates like any other."""
from __future__ import annotations

import math
import warnings
from typing import Any

from ..errors import ShapeError
from ..tensor import Tensor, cat, stack, where
from ..creation import empty, zeros
from ..ops.autocast import autocast_call
from ..ops.recurrence import fused_recurrence
from . import functional as F
from .conv import _gradient_buffer
from . import init
from .module import Module
from .utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from .parameter import Parameter

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
_AUTOCAST_OPS = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}


class RNNBase(Module):
    """Shared layout of RNN, LSTM and GRU: weights per layer and direction, sequence loop, states."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device: Any = None, dtype: Any = None):
        super().__init__()
        if not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError("hidden_size must be an integer greater than zero")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError("num_layers must be an integer greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        directions = 2 if bidirectional else 1
        real_hidden = proj_size if proj_size > 0 else hidden_size
        gate_size = _GATES[mode] * hidden_size
        kw = {"device": device, "dtype": dtype}
        self._flat_weights_names: list[str] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = [("weight_ih", (gate_size, layer_input)), ("weight_hh", (gate_size, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size > 0:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                for name, shape in shapes:
                    setattr(self, name + suffix, Parameter(empty(*shape, **kw)))
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), like torch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _weights(self, layer: int, direction: int) -> dict[str, Tensor | None]:
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
        return {n: self._parameters.get(n + suffix) for n in names}

    def _check_input(self, input: Tensor) -> tuple[Tensor, bool]:
        """The input as (L, N, H_in) and whether it was unbatched."""
        if input.ndim not in (2, 3):
            raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                             f"got {input.shape[-1]}")
        if input.ndim == 2:
            return input.unsqueeze(1), True
        return (input.transpose(0, 1) if self.batch_first else input), False

    def _state(self, hx: Tensor | None, unbatched: bool, batch: int, size: int, like: Tensor, what: str) -> Tensor:
        """An initial state as (layers * directions, N, size), zeros when not given."""
        expected = (self.num_layers * self._directions, batch, size)
        if hx is None:
            return zeros(*expected, device=like.device, dtype=like.dtype)
        if unbatched:
            if hx.ndim != 2:
                raise ShapeError(f"For unbatched 2-D input, {what} should also be 2-D but got {hx.ndim}-D tensor")
            hx = hx.unsqueeze(1)
        elif hx.ndim != 3:
            raise ShapeError(f"For batched 3-D input, {what} should also be 3-D but got {hx.ndim}-D tensor")
        if tuple(hx.shape) != expected:
            raise ShapeError(f"Expected {what} size {expected}, got {tuple(hx.shape)}")
        return hx

    def _step(self, x_proj: Tensor, state: tuple[Tensor, ...], w: dict[str, Tensor | None]) -> tuple[Tensor, ...]:
        """One time step from the precomputed input projection; returns the new state (h first)."""
        h = state[0]
        hh = h @ w["weight_hh_t"]
        if w["bias_hh"] is not None:
            hh = hh + w["bias_hh"]
        if self.mode == "RNN_TANH":
            return ((x_proj + hh).tanh(),)
        if self.mode == "RNN_RELU":
            return ((x_proj + hh).relu(),)
        if self.mode == "GRU":
            xr, xz, xn = x_proj.chunk(3, -1)
            hr, hz, hn = hh.chunk(3, -1)
            r = (xr + hr).sigmoid()
            z = (xz + hz).sigmoid()
            n = (xn + r * hn).tanh()
            return ((1 - z) * n + z * h,)
        i, f, g, o = (x_proj + hh).chunk(4, -1)
        c = f.sigmoid() * state[1] + i.sigmoid() * g.tanh()
        h_new = o.sigmoid() * c.tanh()
        if w["weight_hr_t"] is not None:
            h_new = h_new @ w["weight_hr_t"]
        return h_new, c

    def _run(self, x: Tensor, states: list[Tensor], lengths: Tensor | None) -> tuple[Tensor, list[list[Tensor]]]:
        """All layers over x (L, N, H_in); states holds h0 (and c0) in (layers*dirs, N, *) layout. With
        lengths (N, 1), a sequence's state changes only at its own steps (t < length), in both directions.
        Under autocast the layers are one op, as torch's fused recurrent kernels are: inputs, states and
        weights cast together."""
        weights = [[self._weights(layer, d) for d in range(self._directions)] for layer in range(self.num_layers)]
        return autocast_call(_AUTOCAST_OPS[self.mode], self._layers, x, states, lengths, weights)

    def _layers(self, x: Tensor, states: list[Tensor], lengths: Tensor | None,
                weights: list[list[dict[str, Tensor | None]]]) -> tuple[Tensor, list[list[Tensor]]]:
        length = x.shape[0]
        finals: list[list[Tensor]] = [[] for _ in states]
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self._directions):
                w = weights[layer][direction]
                # the recurrent weights transposed once for all steps: each step's gradient then adds up in
                # the products' own layout, one transpose at the end (32 transposed reads of every step's
                # product took 14 ms of an LSTM's 29 ms jitted iteration)
                w["weight_hh_t"] = w["weight_hh"].T
                w["weight_hr_t"] = None if w["weight_hr"] is None else w["weight_hr"].T
                idx = layer * self._directions + direction
                state = tuple(s[idx] for s in states)
                proj = F.linear(x, w["weight_ih"], w["bias_ih"])  # (L, N, G): one product for the sequence
                if lengths is None and w["weight_hr"] is None and length > 0:
                    out, state = self._fused(proj, state, w, direction == 1)
                    outs.append(out)
                    for k, s in enumerate(state):
                        finals[k].append(s)
                    continue
                steps: list[Tensor] = [x] * length
                order = range(length - 1, -1, -1) if direction == 1 else range(length)
                for t in order:
                    # each step's state, and its gradient, gets a buffer: fused across steps, the backward
                    # through time grew into kernels that took gcc minutes to compile for 40 steps
                    new = self._step(proj[t], state, w)
                    if lengths is not None:
                        new = tuple(where(lengths > t, n, s) for n, s in zip(new, state))
                    state = tuple(_gradient_buffer(s) for s in new)
                    steps[t] = state[0]
                outs.append(stack(steps, 0))
                for k, s in enumerate(state):
                    finals[k].append(s)
            x = outs[0] if len(outs) == 1 else cat(outs, -1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        return x, finals

    def _fused(self, proj: Tensor, state: tuple[Tensor, ...], w: dict[str, Tensor | None],
               reverse: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One layer direction's steps as one fused kernel (ops/recurrence.py): the outputs (L, N, H)
        and the final states."""
        bias = w["bias_hh"] if w["bias_hh"] is not None else \
            zeros(w["weight_hh"].shape[0], device=proj.device, dtype=proj.dtype)
        rows = fused_recurrence(self.mode, reverse, proj, w["weight_hh"], bias, state)
        size, last = self.hidden_size, 0 if reverse else proj.shape[0] - 1
        return rows[..., :size], tuple(rows[last, :, k * size:(k + 1) * size] for k in range(len(state)))

    def _forward(self, input: Tensor | PackedSequence, hx: tuple[Tensor | None, ...]) -> tuple[Any, list[Tensor]]:
        """(output, final states) in torch's layout for a tensor or a packed input."""
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        x, unbatched = self._check_input(input)
        batch = x.shape[1]
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        states = [self._state(hx[0], unbatched, batch, real_hidden, x, "hidden")]
        if self.mode == "LSTM":
            states.append(self._state(hx[1], unbatched, batch, self.hidden_size, x, "cell"))
        out, finals = self._run(x, states, None)
        ends = [stack(f, 0) for f in finals]
        if unbatched:
            return out.squeeze(1), [e.squeeze(1) for e in ends]
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, ends

    def _forward_packed(self, packed: PackedSequence, hx: tuple[Tensor | None, ...]) -> tuple[Any, list[Tensor]]:
        """Run on the padded form with per-sequence lengths; states come and go in the caller's batch order."""
        sorted_idx, unsorted_idx = packed.sorted_indices, packed.unsorted_indices
        raw = PackedSequence(packed.data, packed.batch_sizes)  # without the permutation: padded in sorted order
        x, lengths = pad_packed_sequence(raw)
        if x.shape[-1] != self.input_size:
            raise ShapeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                             f"got {x.shape[-1]}")
        batch = x.shape[1]
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        sizes = [real_hidden, self.hidden_size]
        states = []
        for k in range(2 if self.mode == "LSTM" else 1):
            h = self._state(hx[k], False, batch, sizes[k], x, "hidden" if k == 0 else "cell")
            states.append(h.index_select(1, sorted_idx) if hx[k] is not None and sorted_idx is not None else h)
        lens = lengths.to(x.device).reshape(batch, 1)
        out, finals = self._run(x, states, lens)
        ends = [stack(f, 0) for f in finals]
        if unsorted_idx is not None:
            ends = [e.index_select(1, unsorted_idx) for e in ends]
        data = pack_padded_sequence(out, lengths).data
        return PackedSequence(data, packed.batch_sizes, sorted_idx, unsorted_idx), ends

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


def _rnn_args(args: tuple, kwargs: dict) -> tuple[dict, str]:
    """torch.nn.RNN's signature: (input_size, hidden_size, num_layers, nonlinearity, bias, ...)."""
    names = ["input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first", "dropout",
             "bidirectional"]
    merged = dict(zip(names, args), **kwargs)
    nonlinearity = merged.pop("nonlinearity", "tanh")
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    return merged, nonlinearity


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu)."""

    def __init__(self, *args: Any, **kwargs: Any):
        merged, nonlinearity = _rnn_args(args, kwargs)
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", **merged)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | None = None) -> tuple[Any, Tensor]:
        """(output, h_n) with torch's shapes."""
        out, ends = self._forward(input, (hx,))
        return out, ends[0]


class LSTM(RNNBase):
    """Long short-term memory; gates (input, forget, cell, output), optional output projection proj_size."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: Any = None, dtype: Any = None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)

    def forward(self, input: Tensor | PackedSequence, hx: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Any, tuple[Tensor, Tensor]]:
        """(output, (h_n, c_n)) with torch's shapes."""
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError("LSTM expects hx as a tuple (h_0, c_0)")
        out, ends = self._forward(input, (None, None) if hx is None else tuple(hx))
        return out, (ends[0], ends[1])


class GRU(RNNBase):
    """Gated recurrent unit; gates (reset, update, new) stacked in that order in the weights."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         0, device, dtype)

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | None = None) -> tuple[Any, Tensor]:
        """(output, h_n) with torch's shapes."""
        out, ends = self._forward(input, (hx,))
        return out, ends[0]

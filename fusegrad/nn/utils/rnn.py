"""nn.utils.rnn: packed variable-length sequences in torch's layout.

A PackedSequence holds the time-major rows of every sequence still running at each step. Packing
and unpacking are gathers whose indices come from the lengths, read on the host (they decide the
packed shape)."""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from ...errors import ShapeError
from ...tensor import Tensor, cat, tensor


class PackedSequence(NamedTuple):
    """data (sum(lengths), *), batch_sizes (T,) int64, and the sort permutation and its inverse (or None)."""

    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None


def _lengths(lengths: Any) -> np.ndarray:
    values = lengths.numpy() if isinstance(lengths, Tensor) else np.asarray(lengths)
    return values.astype(np.int64).reshape(-1)


def _batch_sizes(sorted_lengths: np.ndarray) -> np.ndarray:
    steps = int(sorted_lengths[0]) if sorted_lengths.size else 0
    return np.array([(sorted_lengths > t).sum() for t in range(steps)], dtype=np.int64)


def pack_padded_sequence(input: Tensor, lengths: Any, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch (T, N, *) (or (N, T, *) with batch_first) of sequences of the given lengths."""
    lens = _lengths(lengths)
    x = input.transpose(0, 1) if batch_first else input
    if lens.size != x.shape[1]:
        raise ShapeError(f"Expected `len(lengths)` to be equal to batch_size, but got {lens.size} "
                         f"(batch_size={x.shape[1]})")
    if lens.size and lens.min() <= 0:
        raise ShapeError("Length of all samples has to be greater than 0")
    if lens.size and lens.max() > x.shape[0]:
        raise ShapeError(f"lengths {lens.tolist()} exceed the padded length {x.shape[0]}")
    if enforce_sorted:
        if (np.diff(lens) > 0).any():
            raise ShapeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                             "You can pass `enforce_sorted=False` to pack_padded_sequence and/or "
                             "pack_sequence to sidestep this requirement if you do not need ONNX exportability.")
        order = None
    else:
        order = np.argsort(-lens, kind="stable")
        lens = lens[order]
        x = x.index_select(1, tensor(order, device=x.device))
    sizes = _batch_sizes(lens)
    batch = x.shape[1]
    rows = np.concatenate([t * batch + np.arange(n) for t, n in enumerate(sizes)]) if sizes.size else \
        np.zeros(0, np.int64)
    data = x.reshape(x.shape[0] * batch, *x.shape[2:])[tensor(rows, device=x.device)]
    if order is None:
        return PackedSequence(data, tensor(sizes))
    return PackedSequence(data, tensor(sizes), tensor(order), tensor(np.argsort(order)))


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Tensor, Tensor]:
    """The padded batch (T, N, *) (or (N, T, *)) and the lengths (int64), in the original batch order."""
    data = sequence.data
    sizes = _lengths(sequence.batch_sizes)
    steps, batch = sizes.size, int(sizes[0]) if sizes.size else 0
    if total_length is not None:
        if total_length < steps:
            raise ValueError(f"Expected total_length to be at least the length of the longest sequence ({steps}), "
                             f"but got total_length={total_length}")
        steps_out = total_length
    else:
        steps_out = steps
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if sizes.size else np.zeros(0, np.int64)
    # a padding row after the data: every position past a sequence's end gathers it
    filler = data.shape[0]
    index = np.full((steps_out, batch), filler, dtype=np.int64)
    for t, (start, n) in enumerate(zip(starts, sizes)):
        index[t, :n] = start + np.arange(n)
    pad_row = data._const(float(padding_value), shape=(1,) + tuple(data.shape[1:]))
    padded = cat([data, pad_row], 0)[tensor(index.reshape(-1), device=data.device)]
    padded = padded.reshape(steps_out, batch, *data.shape[1:])
    lengths = (sizes[None, :] > np.arange(batch)[:, None]).sum(1) if batch else np.zeros(0, np.int64)
    if sequence.unsorted_indices is not None:
        unsorted = sequence.unsorted_indices
        padded = padded.index_select(1, unsorted)
        lengths = lengths[_lengths(unsorted)]
    if batch_first:
        padded = padded.transpose(0, 1)
    return padded, tensor(lengths.astype(np.int64))


def pack_sequence(sequences: Sequence[Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of (L_i, *) sequences."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def pad_sequence(sequences: Sequence[Tensor], batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack (L_i, *) sequences padded to the longest: (L, N, *) (or (N, L, *) with batch_first)."""
    longest = max(s.shape[0] for s in sequences)
    rows = []
    for s in sequences:
        extra = longest - s.shape[0]
        spec = [0, 0] * (s.ndim - 1) + ([0, extra] if padding_side == "right" else [extra, 0])
        rows.append(s.pad(spec, value=padding_value) if extra else s)
    out = cat([r.unsqueeze(1) for r in rows], 1)
    return out.transpose(0, 1) if batch_first else out

"""Convolutions from movement ops: sliding windows are views (no im2col copy),
and a convolution is one broadcast multiply + sum that the scheduler fuses into one kernel."""
from __future__ import annotations

import math
from typing import Callable, Sequence

from .. import autograd, dtypes
from ..errors import ShapeError
from ..function import Function
from ..ops.autocast import autocast_op
from ..tensor import Tensor, stack
from ..creation import zeros

IntOrPair = int | Sequence[int]
WINOGRAD_CHANNELS = 64  # Winograd F(2x2, 3x3) for channels and work from here (winograd_applies)
WINOGRAD_WORK = 1 << 26
WINOGRAD_F4_SIZE = 28  # F(4x4, 3x3) for outputs from this height and width on, else F(2x2) (winograd_tile)
THIN_GROUP = 16  # output channels per group below which a strided convolution's input gradient is transposed
STRIDED_POSITIONS = 4096  # output positions (N * Ho * Wo) from which a padded strided one's is transposed too


def _tuple(v: IntOrPair, n: int) -> tuple[int, ...]:
    return (v,) * n if isinstance(v, int) else tuple(v)


def _out_size(length: int, k: int, stride: int, dilation: int) -> int:
    return (length - dilation * (k - 1) - 1) // stride + 1


def _windows_last(x: Tensor, k: int, stride: int, dilation: int) -> Tensor:
    """(..., L) -> (..., O, k) with out[..., o, i] = x[..., o*stride + i*dilation]; a view."""
    length = x.shape[-1]
    o = _out_size(length, k, stride, dilation)
    if o <= 0:
        raise ShapeError(f"kernel {k} (dilation {dilation}) is larger than the padded input size {length}")
    lead = x.shape[:-1]
    width = max(length, o * stride - dilation)  # each of the k rows must hold o*stride elements
    if width > length:
        x = x.pad_zeros([(0, 0)] * len(lead) + [(0, width - length)])
    # k copies laid out with row stride width+dilation: row i then starts at offset i*dilation
    rows = x.unsqueeze(-2).expand(*lead, k, width).reshape(*lead, k * width)
    rows = rows.pad_zeros([(0, 0)] * len(lead) + [(0, k * dilation)]).reshape(*lead, k, width + dilation)
    picked = rows.shrink([(0, s) for s in lead] + [(0, k), (0, o * stride)])
    picked = picked.reshape(*lead, k, o, stride).shrink([(0, s) for s in lead] + [(0, k), (0, o), (0, 1)])
    picked = picked.reshape(*lead, k, o)
    return picked.transpose(-1, -2)


def windows(x: Tensor, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> Tensor:
    """Sliding windows over the trailing len(kernel) dims: (..., L1..Ln) -> (..., O1..On, k1..kn).

    Dims are windowed last to first, so the first one windowed needs no permute: the gradient's
    final reduction (the backward of that step) then writes the input's own row-major layout, which
    the kernels after it read contiguously (first to last, they read it transposed)."""
    n = len(kernel)
    lead = x.ndim - n
    labels = [("d", j) for j in range(lead)] + [("s", i) for i in range(n)]
    for i in reversed(range(n)):
        axis = labels.index(("s", i))
        order = [d for d in range(len(labels)) if d != axis] + [axis]
        if order != list(range(len(labels))):
            x = x.permute(order)
        labels = [labels[d] for d in order[:-1]] + [("o", i), ("k", i)]
        x = _windows_last(x, kernel[i], stride[i], dilation[i])
    final = [("d", j) for j in range(lead)] + [("o", i) for i in range(n)] + [("k", i) for i in range(n)]
    return x.permute([labels.index(label) for label in final])


def _gradient_buffer(x: Tensor) -> Tensor:
    """x as a view whose gradient is computed once into a buffer: x expanded along a new axis of 2
    and shrunk back to one copy, so the backward ends in a sum (of the gradient and a zero), which
    the scheduler materializes for its several readers. Without it, each batch-norm backward kernel
    after a 2x2 max-pool recomputed the pool's scattered gradient (the CNN step's four: 6.6 ms ->
    2.6 ms, plus 0.7 ms for the buffer). The forward materializes x too (the source of a broadcast).
    Taken before a floor-mode shrink, the buffer keeps the consumers' reads unguarded (vectorized)."""
    return x.unsqueeze(-1).expand(*x.shape, 2).shrink([(0, s) for s in x.shape] + [(0, 1)]).reshape(x.shape)


def _pad_spatial(x: Tensor, pads: Sequence[tuple[int, int]], value: float = 0.0) -> Tensor:
    if not any(lo or hi for lo, hi in pads):
        return x
    flat: list[int] = []
    for lo, hi in reversed(pads):
        flat += [lo, hi]
    return x.pad(flat, value=value)


def _check_lengths(name: str, n: int, **values: Sequence) -> None:
    for what, v in values.items():
        if len(v) != n:
            raise ShapeError(f"{name}: expected {what} to be a single integer or a list of {n} values, got {v}")


def _conv_padding(padding: str | IntOrPair, kernel: tuple[int, ...], stride: tuple[int, ...],
                  dilation: tuple[int, ...]) -> list[tuple[int, int]]:
    if padding == "valid":
        return [(0, 0)] * len(kernel)
    if padding == "same":
        if any(s != 1 for s in stride):
            # RuntimeError as torch's; ShapeError is a ValueError too
            raise ShapeError("padding='same' is not supported for strided convolutions")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return [(t // 2, t - t // 2) for t in totals]
    if isinstance(padding, str):
        raise ValueError(f"invalid padding string {padding!r}, expected 'same' or 'valid'")
    return [(p, p) for p in _tuple(padding, len(kernel))]


def _convnd(x: Tensor, weight: Tensor, bias: Tensor | None, stride: IntOrPair, padding: str | IntOrPair,
            dilation: IntOrPair, groups: int, n: int) -> Tensor:
    if x.ndim == n + 1 and weight.ndim == n + 2:  # unbatched (C, spatial...), as torch takes it
        return _convnd(x.unsqueeze(0), weight, bias, stride, padding, dilation, groups, n).squeeze(0)
    if x.ndim != n + 2 or weight.ndim != n + 2:
        raise ShapeError(f"conv{n}d expects input ([N,] C, {n} spatial dims) and weight of {n + 2} dims, "
                         f"got {x.shape} and {weight.shape}")
    cout, cin_g = weight.shape[0], weight.shape[1]
    cin = x.shape[1]
    if cin != cin_g * groups or cout % groups:
        raise ShapeError(f"conv{n}d: input {x.shape} with {groups} groups does not fit weight {weight.shape}")
    kernel = tuple(weight.shape[2:])
    st, dil = _tuple(stride, n), _tuple(dilation, n)
    pads = tuple(_conv_padding(padding, kernel, st, dil))
    _check_lengths(f"conv{n}d", n, stride=st, padding=pads, dilation=dil)
    # the transposed convolution pads the output gradient by d*(k-1) - p a side: no more than the forward
    # pads the input, its product packs no more than the forward's
    padded_alike = all(d * (k - 1) - lo <= lo and d * (k - 1) - hi <= hi for (lo, hi), k, d in zip(pads, kernel, dil))
    many_positions = min(kernel) > 1 and _positions(x, kernel, st, pads, dil) >= STRIDED_POSITIONS
    transposed_pays = weight.dtype not in dtypes.HALF and (cout // groups < THIN_GROUP or
                                                           (padded_alike and (st == (1, 1) or many_positions)))
    if n == 2 and (transposed_pays or winograd_applies(x, weight, st, dil, groups)):
        out = _Convolution.apply(x, weight, st, pads, dil, groups)
    else:
        out = _product(x, weight, st, pads, dil, groups)
    if bias is not None:
        out = out + expand_over_batch(bias.reshape(1, cout, *([1] * n)), x.shape[0])
    return out


def _positions(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], pads: Sequence[tuple[int, int]],
               dilation: tuple[int, ...]) -> int:
    """The convolution's output positions over the batch: N * O1 * ... * On."""
    return x.shape[0] * math.prod(_out_size(length + lo + hi, k, s, d) for length, (lo, hi), k, s, d
                                  in zip(x.shape[2:], pads, kernel, stride, dilation))


def _window_operand(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], pads: Sequence[tuple[int, int]],
                    dilation: tuple[int, ...], groups: int) -> Tensor:
    """The input's side of a convolution's product: its windows laid out (N, groups, 1, Cin/groups, k..., O...)."""
    n = len(kernel)
    win = windows(_pad_spatial(x, pads), kernel, stride, dilation)  # (N, Cin, O..., k...)
    outs = win.shape[2:2 + n]
    # product laid out (N, groups, Cout/groups, Cin/groups, k..., O...): each GEMM of the step then writes its
    # sums in its output's own order (forward (N, Cout, O...), window gradient (N, Cin, k..., O...), weight
    # gradient (Cout, Cin, k...)) instead of into a scratch that a second pass scatters. With the outputs
    # last, the window gradient's GEMM packs both operands by plain copies and the col2im pass after it
    # reads along output rows (the CNN step's: 2.0 -> 0.5-0.8 ms; (N, O..., Cin, k...) read 3168 apart)
    g_in = win.reshape(x.shape[0], groups, x.shape[1] // groups, *outs, *kernel)
    g_in = g_in.permute(0, 1, 2, *range(3 + n, 3 + 2 * n), *range(3, 3 + n))
    return g_in.reshape(x.shape[0], groups, 1, x.shape[1] // groups, *kernel, *outs)


def _product(x: Tensor, weight: Tensor, stride: tuple[int, ...], pads: Sequence[tuple[int, int]],
             dilation: tuple[int, ...], groups: int, g_in: Tensor | None = None) -> Tensor:
    """The convolution without bias: one broadcast product of windows and weights, summed (`g_in`: x's
    window operand, when the caller has it)."""
    kernel = tuple(weight.shape[2:])
    n, cout = len(kernel), weight.shape[0]
    if g_in is None:
        g_in = _window_operand(x, kernel, stride, pads, dilation, groups)
    outs = g_in.shape[4 + n:]
    g_w = weight.reshape(1, groups, cout // groups, weight.shape[1], *kernel, *([1] * n))
    reduce_axes = tuple(range(3, 4 + n))
    if weight.dtype in dtypes.HALF:  # half products exact, summed in float32
        return (g_in.float() * g_w.float()).sum(reduce_axes).to(weight.dtype).reshape(x.shape[0], cout, *outs)
    return (g_in * g_w).sum(reduce_axes).reshape(x.shape[0], cout, *outs)


class _Convolution(Function):
    """A 2-D convolution whose input gradient is the transposed convolution of the output gradient with
    the same weight, as torch computes it: a product over windows of the gradient. Through the windows
    view's own derivative each tap's products are scattered back instead: a product summing over the
    output channels of a group into a buffer of taps x input, then a sum over the taps reading it across
    rows. That pays where the transposed convolution pads the gradient more than the forward pads the
    input (a valid 5x5 convolution of an 8x8 map: 16x16 windows to pack; a valid 3x3/2 one), and for a
    strided convolution padded alike (3x3/2 with padding 1) of few output positions (N * Ho * Wo below
    STRIDED_POSITIONS: the transposed one is stride x stride products too small to keep the threads busy,
    and an interleave) or of a 1x1 kernel (a plain scatter). Otherwise the scatter is overhead, and with
    few output channels per group its product is too thin for the GEMM tiles whatever the padding
    (docs/benchmarks.md, "Convolutions", has the numbers). The weight gradient is the product the
    forward's autograd builds."""

    replayable = True

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, stride: tuple[int, int], pads: tuple[tuple[int, int], ...],
                dilation: tuple[int, int], groups: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, pads, dilation, groups)
        ctx.wanted = _wanted(ctx)
        ctx.winograd = winograd_applies(x, weight, stride, dilation, groups)
        if ctx.winograd:
            ctx.windows = None
            return _winograd(x, weight, pads)
        ctx.windows = _window_operand(x, tuple(weight.shape[2:]), stride, pads, dilation, groups)
        return _product(x, weight, stride, pads, dilation, groups, ctx.windows)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple:
        x, weight = ctx.saved_tensors
        stride, pads, dilation, groups = ctx.geometry
        gx = gw = None
        if ctx.wanted[0] and ctx.winograd and all(p <= 2 for pair in pads for p in pair):
            # the transposed convolution pads the output gradient by 2 - p a side
            gx = _winograd(g, weight, [(2 - lo, 2 - hi) for lo, hi in pads], transposed=True)
        elif ctx.wanted[0]:
            gx = _input_gradient(g, weight, x.shape[2:], stride, pads, dilation, groups)
        if ctx.wanted[1]:  # the forward's window view of x, when it made one
            gw = _weight_gradient(x, g, weight.shape, stride, pads, dilation, groups, ctx.windows)
        return gx, gw, None, None, None, None


def _wanted(ctx) -> tuple[bool, bool]:
    """Which of a convolution's input and weight gradients its backward builds: those that can be asked
    for (a GradientTape's sources need not require grad). The graph of a gradient no one reads would
    never run, but building it costs host time every step."""
    return tuple(needs or autograd.watching() for needs in ctx.needs_input_grad[:2])


def winograd_applies(x: Tensor, weight: Tensor, stride: tuple[int, ...], dilation: tuple[int, ...],
                     groups: int) -> bool:
    """Does conv2d of x with weight run as Winograd F(2x2, 3x3) (`_winograd`)? On the CPU, for float32 and
    float64 3x3 convolutions of stride and dilation 1 without groups, with at least WINOGRAD_CHANNELS input
    and output channels and N * H * W * Cin * Cout of at least WINOGRAD_WORK: with fewer channels the
    transforms, with less work the weight's transform and the host's graph cost more than the products save
    (docs/benchmarks.md, "Convolutions", has the measurements behind the rule)."""
    if x.ndim != 4 or weight.shape[2:] != (3, 3) or stride != (1, 1) or dilation != (1, 1) or groups != 1:
        return False
    if not x.device.startswith("cpu") or weight.dtype not in (dtypes.float32, dtypes.float64):
        return False
    n, cin, h, w = x.shape
    cout = weight.shape[0]
    return min(cin, cout) >= WINOGRAD_CHANNELS and n * h * w * cin * cout >= WINOGRAD_WORK


def _four_rows(d: list[Tensor]) -> list[Tensor]:
    """B^T d of F(2x2, 3x3) for the four rows d of an input tile: sums and differences."""
    return [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]


def _weight_rows(g: list[Tensor]) -> list[Tensor]:
    """G g of F(2x2, 3x3) for the three rows g of a kernel."""
    return [g[0], (g[0] + g[1] + g[2]) * 0.5, (g[0] - g[1] + g[2]) * 0.5, g[2]]


def _output_rows(m: list[Tensor]) -> list[Tensor]:
    """A^T m of F(2x2, 3x3) for the four rows m of a tile's products."""
    return [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]


def _six_rows(d: list[Tensor]) -> list[Tensor]:
    """B^T d of F(4x4, 3x3) (points 0, 1, -1, 2, -2 and infinity) for the six rows d of an input tile."""
    a, b = d[4] - d[2] * 4, d[3] - d[1] * 4
    c, e = d[4] - d[2], (d[3] - d[1]) * 2
    return [d[0] * 4 - d[2] * 5 + d[4], a + b, a - b, c + e, c - e, d[1] * 4 - d[3] * 5 + d[5]]


def _weight_rows6(g: list[Tensor]) -> list[Tensor]:
    """G g of F(4x4, 3x3) for the three rows g of a kernel: the kernel's polynomial at the six points, scaled."""
    even, odd = g[0] + g[2], g[1]
    near, far = g[0] + g[2] * 4, g[1] * 2
    return [g[0] * 0.25, (even + odd) * (-1 / 6), (even - odd) * (-1 / 6), (near + far) * (1 / 24),
            (near - far) * (1 / 24), g[2]]


def _output_rows6(m: list[Tensor]) -> list[Tensor]:
    """A^T m of F(4x4, 3x3) for the six rows m of a tile's products."""
    a, b = m[1] + m[2], m[1] - m[2]
    c, e = m[3] + m[4], m[3] - m[4]
    return [m[0] + a + c, b + e * 2, a + c * 4, b + e * 8 + m[5]]


WINOGRAD_ROWS = {2: (_four_rows, _weight_rows, _output_rows), 4: (_six_rows, _weight_rows6, _output_rows6)}


def _transform(t: Tensor, rows: Callable[[list[Tensor]], list[Tensor]], before: Sequence[int] | None = None,
               staged: bool = False) -> Tensor:
    """`rows` applied along t's first two axes (a tile's rows, then its columns) to their parts taken in the
    order `before` (all in order if None). `staged`: the rows' results get a buffer before the columns are
    transformed (F(4x4)'s sums of 6 x 6 parts, fused, would each read up to 36 values, F(2x2)'s up to 9)."""
    for axis in (0, 1):
        parts = [t.select(axis, i) for i in range(t.shape[axis])]  # views whose index along axis is a constant
        t = stack(rows(parts if before is None else [parts[i] for i in before]), axis)
        if staged and axis == 0:
            t = t.contiguous()
    return t


def winograd_tile(outs: Sequence[int]) -> int:
    """The output tile m of F(m x m, 3x3) for an output of spatial size outs: 4 from WINOGRAD_F4_SIZE on, where
    its products (4x fewer positions per tile for 2.25x more of them) save more than its larger transforms of
    the weight and of partial tiles at the edges cost; else 2 (docs/benchmarks.md, "Winograd")."""
    return 4 if min(outs) >= WINOGRAD_F4_SIZE else 2


def _winograd(x: Tensor, weight: Tensor, pads: Sequence[tuple[int, int]], transposed: bool = False) -> Tensor:
    """conv2d of stride 1 with a 3x3 weight as Winograd F(m x m, 3x3), m 2 or 4 (`winograd_tile`; Lavin and
    Gray, 2015): the padded input cut into (m+2)x(m+2) tiles at stride m, each transformed to V = B^T d B, the
    weight to U = G g G^T, then one product per tile position over the channels, M = U V ((m+2)^2 GEMMs
    batched), and each m x m output tile A^T M A. The transforms are sums and differences stacked along
    leading axes, which the CPU's peeling unrolls into straight loops; both transformed operands and the
    products get buffers of their own, and F(4x4)'s transforms a buffer between rows and columns.

    `transposed`: the convolution with the flipped kernels of weight's transpose (a stride-1 input
    gradient): U of the kernels taken flipped (the weight's rows in reverse order), read transposed."""
    n, c, h, w = x.shape
    k = weight.shape[1] if transposed else weight.shape[0]
    outs = [length + lo + hi - 2 for length, (lo, hi) in zip((h, w), pads)]
    m = winograd_tile(outs)
    rows_in, rows_w, rows_out = WINOGRAD_ROWS[m]
    t = m + 2
    tiles = [-(-o // m) for o in outs]
    # padded at the end to whole tiles: rows past the output read zeros and are cropped
    xp = _pad_spatial(x, [(lo, m * n_t + 2 - length - lo) for length, (lo, _), n_t in zip((h, w), pads, tiles)])
    if m == 4:
        # rows of tiles first, read along whole padded rows, then the columns of that buffer's tiles
        d = windows(xp, (t, 1), (m, 1), (1, 1))[..., 0].permute(4, 1, 0, 2, 3)  # (t, C, N, tile rows, width)
        d = stack(rows_in([d.select(0, a) for a in range(t)]), 0).contiguous()
        d = _windows_last(d, t, m, 1).permute(5, 0, 1, 2, 3, 4)  # (t, t, C, N, tiles...)
        v = stack(rows_in([d.select(0, b) for b in range(t)]), 1).contiguous()
    else:
        d = windows(xp, (t, t), (m, m), (1, 1)).permute(4, 5, 1, 0, 2, 3)  # (t, t, C, N, tiles...)
        v = _transform(d, rows_in).contiguous()
    g = weight.permute(2, 3, 0, 1).contiguous()  # (3, 3, Cout, Cin): the transform then reads whole planes
    u = _transform(g, rows_w, (2, 1, 0) if transposed else None, staged=m == 4).contiguous()
    u = u.reshape(t * t, *weight.shape[:2])
    prod = ((u.transpose(1, 2) if transposed else u) @ v.reshape(t * t, c, -1)).reshape(t, t, k, n, *tiles)
    y = _transform(prod, rows_out, staged=m == 4)  # (m, m, Cout, N, tiles...)
    y = y.permute(3, 2, 4, 0, 5, 1).contiguous().reshape(n, k, m * tiles[0], m * tiles[1])
    if [m * n_t for n_t in tiles] != outs:
        y = y[:, :, :outs[0], :outs[1]]
    return y


def _weight_gradient(x: Tensor, g: Tensor, shape: Sequence[int], stride: tuple[int, ...],
                     pads: Sequence[tuple[int, int]], dilation: tuple[int, ...], groups: int,
                     g_in: Tensor | None = None) -> Tensor:
    """The gradient of a convolution's weight (of `shape`) given its input x and output gradient g: the
    product of x's windows (`g_in`, when the caller has them) and g summed over the images and output
    positions."""
    kernel = tuple(shape[2:])
    n = len(kernel)
    if g_in is None:
        g_in = _window_operand(x, kernel, stride, pads, dilation, groups)
    gy = g.reshape(g.shape[0], groups, shape[0] // groups, 1, *([1] * n), *g.shape[2:])
    return (g_in * gy).sum((0, *range(4 + n, 4 + 2 * n))).reshape(shape)


def _input_gradient(g: Tensor, weight: Tensor, size: Sequence[int], stride: tuple[int, int],
                    pads: Sequence[tuple[int, int]], dilation: tuple[int, int], groups: int) -> Tensor:
    """The gradient of conv2d with respect to its unpadded input of spatial `size`: conv_transpose2d of
    the output gradient, its output padding restoring the rows the forward's stride dropped and
    uneven padding ('same') cropped after."""
    common = tuple(min(lo, hi) for lo, hi in pads)
    kernel = weight.shape[2:]
    extra = [length + lo + hi - ((o - 1) * s + d * (k - 1) + 1)
             for length, (lo, hi), o, s, d, k in zip(size, pads, g.shape[2:], stride, dilation, kernel)]
    gx = conv_transpose2d(g, weight, None, stride, common, tuple(extra), groups, dilation)
    if any(lo != hi for lo, hi in pads):
        gx = gx.shrink([(0, gx.shape[0]), (0, gx.shape[1])] +
                       [(lo - c, lo - c + length) for (lo, _), c, length in zip(pads, common, size)])
    return gx


def expand_over_batch(v: Tensor, batch: int) -> Tensor:
    """A per-channel (1, C, 1, ...) tensor broadcast over the batch first: (batch, C, 1, ...). Added
    to (batch, C, spatial...) activations, its gradient is then summed per (sample, channel) and
    over the batch after: N * C outputs and a short second sum, where one sum over a whole channel
    had C outputs (an H200 ran a B=1024 conv bias's 32 of them at 58 GFLOP/s, 0.38 ms)."""
    return v.expand((batch,) + v.shape[1:])


@autocast_op("conv2d")
def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntOrPair = 1,
           padding: str | IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, like torch) with stride, padding, dilation and groups."""
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 2)


@autocast_op("conv1d")
def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntOrPair = 1,
           padding: str | IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1) -> Tensor:
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 1)


@autocast_op("conv3d")
def conv3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntOrPair = 1,
           padding: str | IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1) -> Tensor:
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 3)


def _dilate_input(x: Tensor, stride: tuple[int, ...]) -> Tensor:
    """Insert stride-1 zeros between spatial elements (the input side of a transposed conv)."""
    n = len(stride)
    for i, s in enumerate(stride):
        if s == 1:
            continue
        axis = x.ndim - n + i
        length = x.shape[axis]
        y = x.unsqueeze(axis + 1)
        pads = [(0, 0)] * y.ndim
        pads[axis + 1] = (0, s - 1)
        y = y.pad_zeros(pads)
        shape = list(x.shape)
        shape[axis] = length * s
        y = y.reshape(shape)
        bounds = [(0, d) for d in y.shape]
        bounds[axis] = (0, (length - 1) * s + 1)
        x = y.shrink(bounds)
    return x


def _conv_transpose(x: Tensor, weight: Tensor, bias: Tensor | None, stride: IntOrPair, padding: IntOrPair,
                    output_padding: IntOrPair, groups: int, dilation: IntOrPair, n: int) -> Tensor:
    if x.ndim == n + 1 and weight.ndim == n + 2:  # unbatched (C, spatial...), as torch takes it
        return _conv_transpose(x.unsqueeze(0), weight, bias, stride, padding, output_padding, groups, dilation,
                               n).squeeze(0)
    st, pad, opad, dil = (_tuple(v, n) for v in (stride, padding, output_padding, dilation))
    _check_lengths(f"conv_transpose{n}d", n, stride=st, padding=pad, output_padding=opad, dilation=dil)
    cin = weight.shape[0]
    if x.ndim != n + 2 or weight.ndim != n + 2 or x.shape[1] != cin or cin % groups:
        raise ShapeError(f"conv_transpose{n}d: input {x.shape} with {groups} groups does not fit weight "
                         f"{weight.shape}")
    if any(op >= s and op >= d for op, s, d in zip(opad, st, dil)):
        raise ShapeError(f"conv_transpose{n}d: output padding must be smaller than either stride or dilation, "
                         f"got output_padding {opad}, stride {st}, dilation {dil}")
    if weight.dtype in dtypes.HALF:
        out = _transposed(x, weight, st, pad, opad, dil, groups)
    else:
        out = _TransposedConvolution.apply(x, weight, st, pad, opad, dil, groups)
    if bias is None:
        return out
    return out + expand_over_batch(bias.reshape(1, out.shape[1], *([1] * n)), x.shape[0])


@autocast_op("conv_transpose1d")
def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntOrPair = 1,
                     padding: IntOrPair = 0, output_padding: IntOrPair = 0, groups: int = 1,
                     dilation: IntOrPair = 1) -> Tensor:
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 1)


@autocast_op("conv_transpose2d")
def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntOrPair = 1,
                     padding: IntOrPair = 0, output_padding: IntOrPair = 0, groups: int = 1,
                     dilation: IntOrPair = 1) -> Tensor:
    """The gradient of conv2d with respect to its input, as a layer (weight: (Cin, Cout/groups, kh, kw))."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 2)


@autocast_op("conv_transpose3d")
def conv_transpose3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntOrPair = 1,
                     padding: IntOrPair = 0, output_padding: IntOrPair = 0, groups: int = 1,
                     dilation: IntOrPair = 1) -> Tensor:
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 3)


class _TransposedConvolution(Function):
    """A transposed convolution, whose gradients are those of the convolution it is the adjoint of: the
    input's is the convolution of the output gradient with the same weight (one product; through the
    phases' autograd it was a de-interleaving copy and a product per phase), the weight's is that
    convolution's weight gradient with the roles of input and output gradient exchanged."""

    replayable = True

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, stride: tuple[int, ...], padding: tuple[int, ...],
                output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, output_padding, dilation, groups)
        ctx.wanted = _wanted(ctx)
        return _transposed(x, weight, stride, padding, output_padding, dilation, groups)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple:
        x, weight = ctx.saved_tensors
        stride, padding, output_padding, dilation, groups = ctx.geometry
        # a negative output padding cropped the end: its rows are zeros of the gradient
        g = _pad_spatial(g, [(0, max(0, -op)) for op in output_padding])
        # the convolution of g covers the input's positions and, past the stride, positions no input reaches
        outs = [_out_size(length + 2 * p, k, s, d) for length, p, k, s, d
                in zip(g.shape[2:], padding, weight.shape[2:], stride, dilation)]
        gx = gw = None
        if ctx.wanted[0]:
            gx = _convnd(g, weight, None, stride, padding, dilation, groups, len(stride))
            if tuple(outs) != x.shape[2:]:
                gx = gx.shrink([(0, s) for s in x.shape])
        if ctx.wanted[1]:
            x = _pad_spatial(x, [(0, o - length) for o, length in zip(outs, x.shape[2:])])
            gw = _weight_gradient(g, x, weight.shape, stride, [(p, p) for p in padding], dilation, groups)
        return gx, gw, None, None, None, None, None


def _transposed(x: Tensor, weight: Tensor, stride: tuple[int, ...], padding: tuple[int, ...],
                output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> Tensor:
    """A transposed convolution without bias: by phases when strided, else a convolution of the padded input."""
    cin, cout_g = weight.shape[0], weight.shape[1]
    kernel = tuple(weight.shape[2:])
    st, pad, opad, dil = stride, padding, output_padding, dilation
    if any(s > 1 for s in st) and all(d == 1 for d in dil):
        return _transposed_by_phases(x, weight, st, pad, opad, groups)
    x = _dilate_input(x, st)
    pads = []
    for k, p, op, d in zip(kernel, pad, opad, dil):
        edge = d * (k - 1) - p
        pads.append((edge, edge + op))
    crop = [(max(0, -lo), max(0, -hi)) for lo, hi in pads]
    x = _pad_spatial(x, [(max(0, lo), max(0, hi)) for lo, hi in pads])
    if any(c for pair in crop for c in pair):
        x = x.shrink([(0, x.shape[0]), (0, x.shape[1])] +
                     [(lo, s - hi) for (lo, hi), s in zip(crop, x.shape[2:])])
    w = weight.reshape(groups, cin // groups, cout_g, *kernel).transpose(1, 2)
    w = w.reshape(groups * cout_g, cin // groups, *kernel).flip(tuple(range(-len(kernel), 0)))
    return _convnd(x, w, None, 1, 0, dil, groups, len(kernel))


def _transposed_by_phases(x: Tensor, weight: Tensor, stride: tuple[int, ...], padding: tuple[int, ...],
                          output_padding: tuple[int, ...], groups: int) -> Tensor:
    """A strided transposed convolution as prod(stride) stride-1 ones, one per output phase.

    Output row s*v + a is row s*v + a + p before the padding is cropped, which sums only the kernel
    taps c, c + s, ... with c = (a + p) % s: each phase is a stride-1 transposed convolution with that
    slice of the kernel, its rows shifted by (a + p) // s, and no product meets the zeros a dilated
    input would hold (a quarter of the work for stride 2 in 2-D). The phases are taken in the cropped
    output's own order, so interleaving them is a plain reshape (row s*v + a: phase a's row v) and only
    rows past the end are cropped; a phase without taps (stride above the kernel) is zeros."""
    n = len(stride)
    sizes = [(length - 1) * s - 2 * p + k + op
             for length, s, p, k, op in zip(x.shape[2:], stride, padding, weight.shape[2:], output_padding)]
    rows = [-(-size // s) for size, s in zip(sizes, stride)]  # rows of every phase along each dim
    batch, c = x.shape[0], weight.shape[1] * groups

    def phase(offsets: tuple[int, ...]) -> Tensor:
        shifts = [divmod(a + p, s) for a, p, s in zip(offsets, padding, stride)]  # (q, c) per dim
        taps = weight[(slice(None), slice(None)) +
                      tuple(slice(first, None, s) for (_, first), s in zip(shifts, stride))]
        if 0 in taps.shape[2:]:
            return zeros(batch, c, *rows, dtype=x.dtype, device=x.device)
        # phase rows q, q + 1, ... of the full stride-1 product: padding q crops the first q, the
        # output padding (of either sign) sets how many follow
        extra = [r - (length - 1 - 2 * q + t)
                 for r, length, (q, _), t in zip(rows, x.shape[2:], shifts, taps.shape[2:])]
        # its own product: fused into the interleave, the sums would each run masked per output
        return _transposed(x, taps, (1,) * n, tuple(q for q, _ in shifts), tuple(extra), (1,) * n, groups).contiguous()

    def interleaved(offsets: tuple[int, ...]) -> Tensor:
        """The phases of the given leading offsets, stacked after each of their dims' rows: (N, C, v0, s0, ...)."""
        i = len(offsets)
        if i == n:
            return phase(offsets)
        return stack([interleaved(offsets + (a,)) for a in range(stride[i])], 3 + i)

    out = interleaved(()).reshape(batch, c, *[r * s for r, s in zip(rows, stride)])  # interleaved as stored
    if tuple(sizes) != out.shape[2:]:
        out = out.shrink([(0, batch), (0, c)] + [(0, size) for size in sizes])
    return out

"""Codegen passes that change loop structure must not change results."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad.codegen.interchange import interchange_reduction
from fusegrad.codegen.ir import Loop
from fusegrad.codegen.lower import lower
from fusegrad.codegen.merge import merge_loops
from fusegrad.engine.schedule import create_schedule
from tests import helpers


def interchanged(t: fg.Tensor) -> bool:
    items = create_schedule([t._node])
    return any(interchange_reduction(ir) is not ir for ir in (lower(it.spec, "k") for it in items))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
@pytest.mark.parametrize("shape, dim", [((300, 70), 0), ((4, 50, 1030), 1), ((64, 128), (0,)), ((7, 3, 5), (0, 1))])
def test_column_reductions_match_numpy(dtype, shape, dim):
    x = np.random.default_rng(0).uniform(-3, 3, size=shape).astype(dtype)
    t = fg.tensor(x)
    np.testing.assert_allclose(t.sum(dim).numpy(), x.sum(dim), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(t.amax(dim).numpy(), x.max(dim), rtol=1e-6)
    np.testing.assert_allclose((t.sum(dim, keepdim=True) * 2 + 1).numpy(), x.sum(dim, keepdims=True) * 2 + 1,
                               rtol=1e-5, atol=1e-4)


def test_column_reduction_is_interchanged_row_reduction_is_not():
    x = fg.randn(300, 70).realize()
    assert interchanged(x.sum(0))
    assert interchanged((x * x).sum(0) + fg.randn(70).realize())
    assert not interchanged(x.sum(1))
    assert not interchanged(fg.randn(3, 700).realize().sum(0))  # 3 terms: unrolled in place by gcc


def test_bias_gradient_through_interchanged_reduction():
    x = fg.randn(256, 33).realize()
    b = fg.zeros(33, requires_grad=True)
    ((x + b) * (x + b)).sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), (2 * x.numpy()).sum(0), rtol=1e-4, atol=1e-3)


def test_sum_loops_vectorize_and_max_keeps_nan():
    from fusegrad.codegen import renderer_for
    x = fg.tensor(np.array([[1.0, float("nan"), 3.0, 0, 2], [4.0, 5.0, 6.0, 1, 0]], np.float32))

    def source(t: fg.Tensor) -> str:
        return renderer_for("cpu").render_kernel(lower(create_schedule([t._node])[0].spec, "k"))
    assert "#pragma omp simd reduction(+:" in source(x.sum(1))
    assert "#pragma omp simd" not in source(x[:, :3].sum(1))  # a few plain terms: unrolled by gcc instead
    np.testing.assert_array_equal(np.isnan(x.amax(1).numpy()), [True, False])
    # a max runs in lanes too, a NaN anywhere (each lane position, the remainder) still the result
    assert "reduction(max:" in source(x.amax(1))
    rows = np.random.default_rng(7).standard_normal((40, 37)).astype(np.float32)
    rows[np.arange(37), np.arange(37)] = np.nan
    rows[38] = -np.inf
    got = fg.tensor(rows).amax(1).numpy()
    np.testing.assert_array_equal(got, torch.tensor(rows).amax(1).numpy())


def loops_after_merge(t: fg.Tensor) -> list[list[int]]:
    """Extents of the loops of each kernel after the merge pass."""
    items = create_schedule([t._node])
    return [[s.var.extent for s in merge_loops(lower(it.spec, "k")).stmts if isinstance(s, Loop)] for it in items]


def test_contiguous_loops_merge_and_strided_ones_stay():
    x = fg.randn(8, 4, 13, 13).realize()
    assert loops_after_merge(x.sum((2, 3))) == [[32, 169]]  # (8, 4) outputs, planes of 169 reduced at once
    assert loops_after_merge(x.sum()) == [[8 * 4 * 169]]
    scale = fg.randn(1, 4, 1, 1).realize()
    assert loops_after_merge(x * scale) == [[8, 4, 169]]  # merging the channel loop would divide per element
    assert loops_after_merge(x.permute(0, 1, 3, 2) + 1) == [[32, 13, 13]]  # a transposed plane keeps two loops


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_merged_loops_match_numpy(dtype):
    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, size=(5, 6, 7, 9)).astype(dtype)
    s = rng.uniform(-3, 3, size=(1, 6, 1, 1)).astype(dtype)
    t, ts = fg.tensor(x), fg.tensor(s)
    tol = dict(rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(t.sum((2, 3)).numpy(), x.sum((2, 3)), **tol)
    np.testing.assert_allclose(t.sum().numpy(), x.sum(), **tol)
    np.testing.assert_allclose((t * ts).amax((0, 2, 3)).numpy(), (x * s).max((0, 2, 3)), **tol)
    np.testing.assert_allclose((t.permute(0, 1, 3, 2) * 2).numpy(), x.transpose(0, 1, 3, 2) * 2, **tol)
    if dtype != "int64":  # mean is for floating tensors
        np.testing.assert_allclose((t - t.mean((2, 3), keepdim=True)).numpy(), x - x.mean((2, 3), keepdims=True),
                                   **tol)


def test_reshape_maps_each_group_of_dims_alone():
    from fusegrad.codegen.lower import reshape_coords
    from fusegrad.graph.symbolic import DivAtom, flat_index, unflatten, var
    cases = [((13, 2, 13, 2), (26, 26)), ((26, 26), (13, 2, 13, 2)), ((1, 4, 1, 6), (24,)), ((24,), (2, 1, 12, 1)),
             ((2, 3, 4), (6, 4)), ((3, 1, 1), (1, 3)), ((), (1, 1)), ((4, 6), (3, 8)), ((2, 1, 3), (6, 1, 1))]
    for shape, src in cases:
        coords = tuple(var(f"i{d}", s) for d, s in enumerate(shape))
        got = reshape_coords(coords, shape, src)
        assert len(got) == len(src)
        # same element as the whole-tensor flat index, at every coordinate
        want = unflatten(flat_index(coords, shape), src)
        for point in np.ndindex(*shape):
            env = {f"i{d}": p for d, p in enumerate(point)}
            assert [_eval(g, env) for g in got] == [_eval(w, env) for w in want], (shape, src, point)
    split = reshape_coords((var("a", 26), var("b", 26)), (26, 26), (13, 2, 13, 2))
    assert all(not isinstance(atom, DivAtom) or len(atom.num.terms) == 1 for c in split for atom, _ in c.terms)


def _eval(lin, env: dict) -> int:
    """Value of a symbolic index at integer values of its variables."""
    from fusegrad.graph.symbolic import DivAtom, ModAtom, Var
    total = lin.const
    for a, c in lin.terms:
        if isinstance(a, Var):
            total += c * env[a.name]
        elif isinstance(a, DivAtom):
            total += c * (_eval(a.num, env) // a.k)
        else:
            assert isinstance(a, ModAtom)
            total += c * (_eval(a.num, env) % a.k)
    return total


@pytest.mark.parametrize("width, dilation, k, offset, lo, hi", [
    (13, 1, 3, 0, 0, 11), (13, 2, 3, 0, 0, 9), (10, 1, 5, 0, 1, 8), (6, 3, 4, 0, 0, 4), (13, 1, 3, 0, 0, 13),
    (7, 2, 2, 0, 0, 6), (13, 1, 3, 2, 0, 13), (8, 2, 3, -1, 0, 5)])
def test_bounded_mod_folds_only_where_the_bound_excludes_every_wrap(width, dilation, k, offset, lo, hi):
    """The window-gradient index (i + w*r) % (w+d) (+ offset) under lo <= . < hi: where the fold
    applies, its division-free form must agree with the original at every point the bound admits,
    and admit no other point."""
    from fusegrad.graph.symbolic import bound, fold_bounded_mod, replace_atoms, var
    i, r = var("i", width), var("r", k)
    flat = i + r * width
    row, col = flat // (width + dilation), flat % (width + dilation) + offset
    fold = fold_bounded_mod(col, lo, hi)
    wraps = any(lo <= (x + width * y) % (width + dilation) + offset < hi and x - dilation * y < 0
                for x in range(width) for y in range(k))
    assert (fold is None) == wraps
    if fold is None:
        return
    mapping, low = fold
    row2, col2 = replace_atoms(row, mapping), replace_atoms(col, mapping)
    assert "/" not in row2.render() + col2.render()
    for x in range(width):
        for y in range(k):
            env = {"i": x, "r": y}
            inside = lo <= _eval(col, env) < hi
            b = bound(col2, low, hi)
            inside2 = b if isinstance(b, bool) else b.lo <= _eval(b.expr, env) < b.hi
            assert inside == inside2, (x, y)
            if inside:
                assert (_eval(row2, env), _eval(col2, env)) == (_eval(row, env), _eval(col, env))


def test_conv_input_gradient_reads_windows_without_division():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    tw = fg.tensor(w)
    grad = fg.func.grad(lambda t: fg.nn.functional.conv2d(t, tw, dilation=(1, 2)).sum())(fg.tensor(x))
    sources = [lower(it.spec, "k") for it in create_schedule([grad._node])]
    assert not any("DivAtom" in repr(ir.stmts) or "ModAtom" in repr(ir.stmts) for ir in sources)
    px = torch.tensor(x, requires_grad=True)
    torch.nn.functional.conv2d(px, torch.tensor(w), dilation=(1, 2)).sum().backward()
    np.testing.assert_allclose(grad.numpy(), px.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loops_read_through_divisions_are_split(dtype):
    rng = np.random.default_rng(5)
    x = rng.uniform(-2, 2, size=(3, 4, 10, 6)).astype(dtype)
    g = rng.uniform(-2, 2, size=(3, 4, 5, 3)).astype(dtype)
    tx, tg = fg.tensor(x), fg.tensor(g)
    # a max-pool gradient's shape: g broadcast over 2x2 blocks of x, masked by a ReLU
    up = tg.reshape(3, 4, 5, 1, 3, 1).expand(3, 4, 5, 2, 3, 2).reshape(3, 4, 10, 6)
    out = (tx > 0).to(dtype) * up * tx
    assert loops_after_merge(out) == [[60, 2, 3, 2]]  # i2 -> (5, 2) (5 merged with 3 x 4), i3 -> (3, 2)
    want = (x > 0) * np.repeat(np.repeat(g, 2, axis=2), 2, axis=3) * x
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-6)
    odd = fg.tensor(rng.uniform(-2, 2, size=(3, 4, 7)).astype(dtype))
    assert loops_after_merge(odd.reshape(3, 4, 7, 1).expand(3, 4, 7, 3).reshape(3, 4, 21) * 2) == [[84, 3]]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_pool_and_amax_propagate_nan_from_any_position(dtype):
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(dtype)
    x[0, 0, 0, 0] = x[0, 1, 3, 2] = x[1, 2, 5, 5] = np.nan  # first, middle and last element of a window
    want = torch.nn.functional.max_pool2d(torch.tensor(x), 2).numpy()
    np.testing.assert_array_equal(fg.nn.functional.max_pool2d(fg.tensor(x), 2).numpy(), want)
    np.testing.assert_array_equal(fg.tensor(x).amax((2, 3)).numpy(), np.max(x, (2, 3)))


def test_reshape_round_trip_through_nested_divisions_is_the_plain_index():
    from fusegrad.codegen.lower import reshape_coords
    from fusegrad.graph.symbolic import flat_index, var
    # Flatten of (C, 5, 5) read back: 25*(i/25) + 5*((i/5)%5) + i%5 must fold to i (no division per element)
    coords = reshape_coords((var("a", 6), var("b", 1600)), (6, 1600), (6, 64, 5, 5))
    assert flat_index(coords, (6, 64, 5, 5)) == flat_index((var("a", 6), var("b", 1600)), (6, 1600))
    i = var("i", 360)
    assert ((i // 4) // 3).render() == "(i/12)"


@pytest.mark.parametrize("op", ["sum", "amax"])
def test_reduction_over_a_padded_axis(op):
    rng = np.random.default_rng(3)
    x = -rng.uniform(1, 2, size=(5, 3, 1)).astype(np.float32)  # all negative: max over the padding is 0
    padded = fg.tensor(x).pad_zeros([(0, 0), (0, 0), (2, 3)])
    out = getattr(padded, op)(2)
    reduce_loops = [s.var.extent for it in create_schedule([out._node]) for s in lower(it.spec, "k").stmts
                    if isinstance(s, Loop) and s.kind == "reduce"]
    want = getattr(np.pad(x, [(0, 0), (0, 0), (2, 3)]), "max" if op == "amax" else op)(2)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-6)
    # a sum skips the zeros of the padding (one term left: no loop); a max must still see them
    assert reduce_loops == ([] if op == "sum" else [6])


def peeled_loops(t: fg.Tensor) -> list[list[Loop]]:
    from fusegrad.codegen.peel import peel_loops
    items = create_schedule([t._node])
    return [[s for s in merge_loops(peel_loops(lower(it.spec, "k"))).stmts if isinstance(s, Loop)] for it in items]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", [11, 9, 26])
def test_pool_gradient_of_odd_planes_is_peeled_and_right(dtype, size):
    rng = np.random.default_rng(size)
    x = rng.standard_normal((2, 3, size, size)).astype(dtype)
    tx = fg.tensor(x)
    grad = fg.func.grad(lambda t: (fg.nn.functional.max_pool2d(t, 2) * 3).sum())(tx)
    loops = peeled_loops(grad)
    px = torch.tensor(x, requires_grad=True)
    (torch.nn.functional.max_pool2d(px, 2) * 3).sum().backward()
    np.testing.assert_allclose(grad.numpy(), px.grad.numpy(), rtol=1e-6)
    # odd planes: the last column (dropped by floor mode) is its own piece, the rest unguarded and split by 2
    names = [loop.var.name for kernel in loops for loop in kernel]
    assert any(name.endswith("p1") for name in names) == (size % 2 == 1)
    for kernel in loops:
        assert len(kernel) <= 6


def test_peeled_pieces_fold_their_guards():
    from fusegrad.codegen.ir import Const
    from fusegrad.codegen.peel import peel_loops
    x = fg.randn(4, 7).realize()
    out = x.pad_zeros([(0, 0), (2, 1)]) * 2 + 1  # (4, 10): columns 0-1 and 9 are padding
    (item,) = create_schedule([out._node])
    ir = peel_loops(lower(item.spec, "k"))
    np.testing.assert_allclose(out.numpy(), np.pad(x.numpy(), [(0, 0), (2, 1)]) * 2 + 1, rtol=1e-6)
    pieces = [s.var.extent for s in ir.stmts if isinstance(s, Loop)]
    assert pieces == [4, 2, 7, 1]
    text = repr(ir.stmts)
    assert text.count("Bound(") == 0  # every piece decided its guard statically
    assert text.count(repr(Const(0, x.dtype))) >= 2  # the two padding pieces read zeros


def test_concatenation_of_many_pieces_is_peeled_into_plain_copies():
    """fg.cat of 10 flat tensors (as an optimizer's update of unpacked gradients reads them) is one
    loop cut at every seam: each piece copies its source with no guard left."""
    from fusegrad.codegen.peel import peel_loops
    rng = np.random.default_rng(3)
    sizes = [5, 17, 1, 64, 3, 100, 8, 2, 33, 40]
    arrays = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    out = fg.cat([fg.tensor(a) for a in arrays]) * 2
    (item,) = create_schedule([out._node])
    ir = peel_loops(lower(item.spec, "k"))
    np.testing.assert_array_equal(out.numpy(), np.concatenate(arrays) * 2)
    assert [s.var.extent for s in ir.stmts if isinstance(s, Loop)] == sizes
    assert "Bound(" not in repr(ir.stmts)


def test_per_channel_factors_are_hoisted_out_of_the_reduce_loop():
    """Batch norm's backward sum over a ReLU mask: the square root and division of the channel's
    scale run once per channel, not per element, the mask is computed as an int (gcc vectorizes
    the loop then), and the sums stay right."""
    from fusegrad.codegen import renderer_for
    from fusegrad.codegen.ir import Alu, Define
    from fusegrad.engine.realize import kernel_ir
    from fusegrad.graph.ops import Op
    rng = np.random.default_rng(0)
    x, var, mean = rng.standard_normal((6, 3, 50)), rng.uniform(0.5, 2, (1, 3, 1)), rng.standard_normal((1, 3, 1))
    tx, tv, tm = (fg.tensor(a.astype(np.float32)) for a in (x, var, mean))
    centered = tx - tm
    scaled = centered * (tv + 1e-5).rsqrt()
    total = (scaled > 0).float().mul(centered).sum(2)
    (item,) = create_schedule([total._node])
    renderer = renderer_for("cpu")
    stmts = kernel_ir(item.spec, "k", renderer).stmts
    loop = next(i for i, s in enumerate(stmts) if isinstance(s, Loop) and s.kind == "reduce")
    roots = [s for s in stmts if isinstance(s, Define) and isinstance(s.value, Alu) and s.value.op is Op.SQRT]
    assert roots and all(stmts.index(s) < loop for s in roots)
    source = renderer.render_kernel(kernel_ir(item.spec, "k", renderer))
    assert "_Bool v" not in source and "int v" in source
    c = x - mean
    np.testing.assert_allclose(total.numpy(), ((c / np.sqrt(var + 1e-5) > 0) * c).sum(2), rtol=1e-5, atol=1e-5)


def test_peeled_pieces_inside_a_parallel_nest_compile_and_match_torch():
    """The gradient of a fused q/k/v projection concatenates three products; peeling cuts the output
    loop into pieces side by side, and only the loops above them may be collapsed into one parallel
    range (gcc refused the kernel: "collapsed loops not perfectly nested")."""
    b, t, c, heads = 2, 64, 64, 4
    rng = np.random.default_rng(0)
    x = rng.standard_normal((b, t, c)).astype(np.float32)
    w = (rng.standard_normal((c, 3 * c)) * 0.1).astype(np.float32)

    fx, fw = fg.tensor(x, requires_grad=True), fg.tensor(w, requires_grad=True)
    helpers.qkv_attention(fg, fx, fw, heads).backward()
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    helpers.qkv_attention(torch, tx, tw, heads).backward()
    np.testing.assert_allclose(fw.grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)


def reduce_loops(t: fg.Tensor) -> list[int]:
    """Extents of the reduce loops of every kernel `t` needs, after the one-hot pass."""
    from fusegrad.codegen.gather import one_hot_reads
    return [s.var.extent for it in create_schedule([t._node]) for s in one_hot_reads(lower(it.spec, "k")).stmts
            if isinstance(s, Loop) and s.kind == "reduce"]


@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_one_hot_sums_become_single_reads(dtype):
    rng = np.random.default_rng(3)
    table = rng.uniform(-4, 4, (50, 24)).astype(dtype)
    picks = rng.integers(-60, 110, 70)  # out of range on both sides: the one-hot sum gives 0 there
    t, idx = fg.tensor(table), fg.tensor(picks)
    hot = idx.reshape(70, 1, 1) == fg.arange(50).reshape(1, 50, 1)
    onehot = fg.where(hot, t.reshape(1, 50, 24), 0).sum(1)
    assert reduce_loops(onehot) == []
    want = np.where(((picks >= 0) & (picks < 50))[:, None], table[np.clip(picks, 0, 49)], 0)
    np.testing.assert_array_equal(onehot.numpy(), want)
    # the pick inside a longer sum over rows: the row loop stays, the one-hot loop goes
    rows = fg.where(hot, t.reshape(1, 50, 24), 0).sum((0, 1))
    assert reduce_loops(rows) == [70]
    np.testing.assert_allclose(rows.numpy(), want.sum(0), rtol=1e-5)


def test_gathers_embeddings_and_loss_targets_read_one_element():
    rng = np.random.default_rng(4)
    w = fg.tensor(rng.standard_normal((84, 32)).astype(np.float32))
    tokens = fg.tensor(rng.integers(0, 84, (4, 16)))
    assert reduce_loops(fg.nn.functional.embedding(tokens, w)) == []
    logits = fg.tensor(rng.standard_normal((64, 84)).astype(np.float32))
    x, i = torch.tensor(logits.numpy()), torch.tensor(tokens.numpy().reshape(-1))
    assert 84 not in reduce_loops(logits.gather(1, tokens.reshape(64, 1)))
    loss = fg.nn.functional.cross_entropy(logits, tokens.reshape(-1))
    np.testing.assert_allclose(loss.item(), torch.nn.functional.cross_entropy(x, i).item(), rtol=1e-6)
    np.testing.assert_array_equal(logits[fg.arange(64), tokens.reshape(-1)].numpy(), x[torch.arange(64), i].numpy())


def test_column_sum_over_two_reduce_loops_with_row_statistics_is_interchanged():
    """A layer norm's weight gradient, sum over (batch, positions) of dy * (x - mean) * rstd: two
    reduce loops, per-row statistics read along the reduction, the columns along the outputs. Run
    with the reduction outside, the inner loop streams the rows; results as numpy's."""
    rng = np.random.default_rng(6)
    dy, x = (rng.standard_normal((16, 64, 96)).astype(np.float32) for _ in range(2))
    mean, rstd = (rng.standard_normal((16, 64, 1)).astype(np.float32) for _ in range(2))
    pos = rng.standard_normal((64, 96)).astype(np.float32)  # read per position: broadcast over the batch
    t = fg.tensor(dy) * ((fg.tensor(x) + fg.tensor(pos) - fg.tensor(mean)) * fg.tensor(rstd))
    g = t.sum((0, 1))
    assert interchanged(g)
    np.testing.assert_allclose(g.numpy(), (dy * ((x + pos - mean) * rstd)).sum((0, 1)), rtol=1e-4, atol=1e-3)


def test_position_compares_render_in_32_bits_and_keep_their_values():
    """A causal mask compares positions; in 32 bits the float loop around it keeps its full width."""
    from fusegrad.codegen import renderer_for
    x = fg.tensor(np.random.default_rng(8).standard_normal((3, 40, 40)).astype(np.float32))
    i, j = fg.arange(40).reshape(40, 1), fg.arange(40).reshape(1, 40)
    masked = x.where(i >= j, float("-inf"))
    src = renderer_for("cpu").render_kernel(lower(create_schedule([masked._node])[0].spec, "k"))
    assert "(int32_t)" in src
    np.testing.assert_array_equal(masked.numpy(), torch.tensor(x.numpy()).tril().masked_fill(
        ~torch.ones(40, 40, dtype=torch.bool).tril(), float("-inf")).numpy())


def _kernels(t: fg.Tensor) -> list:
    from fusegrad.codegen import renderer_for
    from fusegrad.engine.realize import kernel_ir
    renderer = renderer_for("cpu")
    return [kernel_ir(it.spec, "k", renderer).stmts for it in create_schedule([t._node])]


def _innermost_guards(stmts: list) -> list:
    """The bounds read inside loops that open no loop, per such loop, that mention its own variable."""
    from fusegrad.codegen.peel import _body_bounds
    from fusegrad.codegen.merge import _end
    found = []
    for i, s in enumerate(stmts):
        if isinstance(s, Loop):
            body = stmts[i + 1:_end(stmts, i)]
            if not any(isinstance(b, Loop) for b in body):
                found += [b for b in _body_bounds(body) if s.var in dict(b.expr.terms)]
    return found


@pytest.mark.parametrize("groups, per_group, out_per_group", [(8, 1, 1), (3, 4, 2), (5, 2, 3)])
@pytest.mark.parametrize("kernel, stride, padding, dilation", [(3, 1, 1, 1), (3, 2, 1, 1), (5, 2, 2, 1),
                                                               (7, 1, 3, 1), (3, 1, 2, 2)])
def test_grouped_and_depthwise_convolutions_match_torch(groups, per_group, out_per_group, kernel, stride, padding,
                                                        dilation):
    """The window passes (interchanged output rows, taps unrolled and cut at their edges) on odd planes."""
    rng = np.random.default_rng(groups * 100 + kernel * 10 + stride)
    x = rng.standard_normal((2, groups * per_group, 13, 17)).astype(np.float32)
    w = rng.standard_normal((groups * out_per_group, per_group, kernel, kernel)).astype(np.float32)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    px, pw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    py = torch.nn.functional.conv2d(px, pw, **kw)
    gy = rng.standard_normal(tuple(py.shape)).astype(np.float32)
    py.backward(torch.tensor(gy))
    tx, tw = fg.tensor(x, requires_grad=True), fg.tensor(w, requires_grad=True)
    y = fg.nn.functional.conv2d(tx, tw, **kw)
    gx, gw = fg.autograd.grad(y, [tx, tw], fg.tensor(gy))
    np.testing.assert_allclose(y.numpy(), py.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gx.numpy(), px.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gw.numpy(), pw.grad.numpy(), rtol=1e-4, atol=2e-4)


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_forward_and_weight_gradient_run_unguarded_rows(stride):
    """A depthwise convolution is one kernel whose output rows accumulate tap by tap, and its weight
    gradient one kernel summing along input rows: no innermost loop tests a bound on its own variable."""
    x = fg.randn(2, 6, 15, 15).realize()
    w = fg.randn(6, 1, 3, 3).realize().requires_grad_()
    y = fg.nn.functional.conv2d(x, w, stride=stride, padding=1, groups=6)
    (forward,) = _kernels(y)
    assert _innermost_guards(forward) == []
    # a row's three taps of one window row added per output in one inner loop
    from fusegrad.codegen.ir import Store
    from fusegrad.codegen.merge import _end
    rows = [forward[i + 1:_end(forward, i)] for i, s in enumerate(forward) if isinstance(s, Loop) and s.kind == "inner"]
    assert max(sum(isinstance(s, Store) for s in row) for row in rows) == 3
    gy = fg.randn(*y.shape).realize()
    (gw,) = fg.autograd.grad(y, [w], gy)
    (weight_grad,) = _kernels(gw)
    assert _innermost_guards(weight_grad) == []


def test_window_unrolling_stops_at_long_loops():
    """A guard shared by two loops longer than a window row is left to the plain loops."""
    from fusegrad.codegen.peel import UNROLL
    taps, length = UNROLL + 1, 3 * UNROLL
    x, w = fg.randn(3, 1, length).realize(), fg.randn(1, 1, taps).realize()
    y = fg.nn.functional.conv1d(x, w, padding=2)  # out[i, j] = sum_r x[i, j + r - 2]: j and r both long
    (kernel,) = _kernels(y)
    assert _innermost_guards(kernel)
    want = torch.nn.functional.conv1d(torch.tensor(x.numpy()), torch.tensor(w.numpy()), padding=2)
    np.testing.assert_allclose(y.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)

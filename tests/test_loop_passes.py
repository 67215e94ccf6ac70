"""Codegen passes that change loop structure must not change results."""
import numpy as np
import pytest

import fusegrad as fg
from fusegrad.codegen.interchange import interchange_reduction
from fusegrad.codegen.ir import Loop
from fusegrad.codegen.lower import lower
from fusegrad.codegen.merge import merge_loops
from fusegrad.engine.schedule import create_schedule


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


def test_bias_gradient_through_interchanged_reduction():
    x = fg.randn(256, 33).realize()
    b = fg.zeros(33, requires_grad=True)
    ((x + b) * (x + b)).sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), (2 * x.numpy()).sum(0), rtol=1e-4, atol=1e-3)


def test_sum_loops_vectorize_and_max_keeps_nan():
    from fusegrad.codegen import renderer_for
    x = fg.tensor(np.array([[1.0, float("nan"), 3.0], [4.0, 5.0, 6.0]], np.float32))
    items = create_schedule([x.sum(1)._node])
    source = renderer_for("cpu").render_kernel(lower(items[0].spec, "k"))
    assert "#pragma omp simd reduction(+:" in source
    np.testing.assert_array_equal(np.isnan(x.amax(1).numpy()), [True, False])  # max: no lane reassociation


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

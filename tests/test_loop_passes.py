"""Codegen passes that change loop structure must not change results."""
import numpy as np
import pytest

import fusegrad as fg
from fusegrad.codegen.interchange import interchange_reduction
from fusegrad.codegen.lower import lower
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

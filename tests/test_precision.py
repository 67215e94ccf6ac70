"""fg.set_float32_matmul_precision and fg.backends.cuda.matmul.allow_tf32 against torch's; half sums
rounded as torch rounds them."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from tests.helpers import RNG


@pytest.fixture(autouse=True)
def _restore():
    yield
    fg.set_float32_matmul_precision("highest")
    torch.set_float32_matmul_precision("highest")


def test_precision_and_allow_tf32_are_one_switch_as_in_torch():
    assert fg.get_float32_matmul_precision() == torch.get_float32_matmul_precision() == "highest"
    for lib in (fg, torch):
        lib.backends.cuda.matmul.allow_tf32 = True
    assert fg.get_float32_matmul_precision() == torch.get_float32_matmul_precision() == "high"
    for p in ("medium", "highest", "high"):
        fg.set_float32_matmul_precision(p)
        torch.set_float32_matmul_precision(p)
        assert fg.backends.cuda.matmul.allow_tf32 is torch.backends.cuda.matmul.allow_tf32 is (p != "highest")


def test_bad_settings_warn_or_raise_as_in_torch():
    fg.set_float32_matmul_precision("high")
    with pytest.warns(UserWarning, match="not one of"):
        fg.set_float32_matmul_precision("fast")
    assert fg.get_float32_matmul_precision() == "high"  # unchanged
    for lib in (fg, torch):
        with pytest.raises(RuntimeError, match="bool"):
            lib.backends.cuda.matmul.allow_tf32 = "yes"


@pytest.mark.skipif(not fg.cuda.is_available(), reason="TF32 products need a CUDA device")
def test_tf32_products_on_cuda_stay_within_tf32_precision():
    """With TF32 allowed a float32 product may lose the mantissa bits past the 10th, no more."""
    rng = torch.Generator().manual_seed(0)
    a, b = torch.randn(256, 512, generator=rng), torch.randn(512, 384, generator=rng)
    want = (a.double() @ b.double()).numpy()
    fg.backends.cuda.matmul.allow_tf32 = True
    got = (fg.tensor(a.numpy(), device="cuda") @ fg.tensor(b.numpy(), device="cuda")).numpy()
    scale = abs(want).max()
    assert abs(got - want).max() <= 2.0 ** -10 * 4 * scale


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_sum_read_in_the_same_kernel_is_rounded(dtype: str) -> None:
    """A half sum is accumulated in float32 and rounded once, also where the kernel that sums goes on
    to widen it (`x.sum(1).float()`, one fused kernel), as PyTorch's rounded output would read."""
    a = (RNG.standard_normal((6, 7)) * 4).astype(np.float32)
    want = torch.from_numpy(a).to(getattr(torch, dtype)).sum(1).float().numpy()
    got = fg.tensor(a, dtype=dtype).sum(1).float().numpy()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_stores_of_exact_and_inexact_values_match_torch(dtype: str) -> None:
    """A value already of the half type (a load, a rounded result, a selection or maximum among such values
    and constants the type holds) is stored without a second rounding; a constant it does not hold (0.1) is
    read as the type's value (0.10009765625 in bfloat16) by selections, comparisons, sums, differences,
    powers and remainders, as torch casts such a scalar, and as written by products and quotients, as
    torch's float op reads it. Every case, NaN and infinities included, gives torch's bits."""
    a = (RNG.standard_normal((5, 37)) * 3).astype(np.float32)
    a[0, :5] = [np.nan, np.inf, -np.inf, -0.0, 0.1]  # (0.1 rounds to the half value a scalar 0.1 becomes)
    mask = RNG.standard_normal((5, 37)) > 0
    tdt = getattr(torch, dtype)
    x, tx = fg.tensor(a, dtype=dtype), torch.from_numpy(a).to(tdt)
    m, tm = fg.tensor(mask), torch.from_numpy(mask)
    cases = [(x.relu(), tx.relu()), (fg.where(m, 0.5, x), torch.where(tm, 0.5, tx)),
             (fg.where(m, 0.1, x), torch.where(tm, torch.tensor(0.1, dtype=tdt), tx)),
             (x.maximum(x * 0.5), tx.maximum(tx * 0.5)), (-x, -tx), (x * 1.5, tx * 1.5), (x * 0.1, tx * 0.1),
             (x + 0.1, tx + 0.1), (x - 0.1, tx - 0.1), (0.1 - x, 0.1 - tx), (x.abs() ** 0.1, tx.abs() ** 0.1),
             (x / 0.1, tx / 0.1), (fg.fmod(x, 0.1), torch.fmod(tx, 0.1)), ((x == 0.1).to(x.dtype), (tx == 0.1).to(tdt)),
             ((x < 0.1).to(x.dtype), (tx < 0.1).to(tdt)), (x.clamp(min=0.1), tx.clamp(min=0.1))]
    for got, want in cases:
        np.testing.assert_array_equal(got.float().numpy(), want.float().numpy())

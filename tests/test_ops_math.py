"""Inverse trigonometric and hyperbolic functions, atan2, copysign, logaddexp, hypot, isclose, shifts."""
import math

import numpy as np
import pytest
import torch

import fusegrad as fg
from tests.helpers import check_op

RNG = np.random.default_rng(20261206)

UNARY = ["atan", "asin", "acos", "sinh", "cosh", "asinh", "acosh", "atanh"]
BINARY = ["atan2", "copysign", "logaddexp", "logaddexp2", "hypot"]
# where each function's gradient is finite, for the random comparisons
DOMAIN = {"asin": (-0.99, 0.99), "acos": (-0.99, 0.99), "atanh": (-0.99, 0.99), "acosh": (1.01, 5.0)}
SPECIAL = [0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, 5e-324, 1e-300, -1e300, 0.5, -0.5]


def _wide_values(dtype: str) -> np.ndarray:
    """Magnitudes over the whole range of the dtype, both signs, plus the special values."""
    top = 300 if dtype == "float64" else 37
    mag = 10.0 ** RNG.uniform(-top, top, 600)
    unit = RNG.uniform(-1.2, 1.2, 400)
    with np.errstate(over="ignore"):  # float32 takes 1e-300 as 0 and -1e300 as -inf: more special values
        return np.concatenate([mag, -mag, unit, SPECIAL]).astype(dtype)


def _max_relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    """Largest relative error over finite references; NaN and infinities must match exactly."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(ref)], ref[~finite & ~np.isnan(ref)])
    g, r = got[finite].astype(np.float64), ref[finite].astype(np.float64)
    tiny = np.finfo(ref.dtype).tiny  # subnormal results are compared absolutely
    return float((np.abs(g - r) / np.maximum(np.abs(r), tiny)).max())


ACCURACY = {"float64": 2e-15, "float32": 1e-6}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_unary_accuracy_over_the_whole_range(dtype):
    x = _wide_values(dtype)
    fx, tx = fg.tensor(x), torch.tensor(x)
    got = fg.stack([getattr(fx, name)() for name in UNARY]).numpy()
    for i, name in enumerate(UNARY):
        ref = getattr(tx, name)().numpy()
        assert _max_relative_error(got[i], ref) < ACCURACY[dtype], name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_binary_accuracy_over_the_whole_range(dtype):
    x = _wide_values(dtype)
    y = RNG.permutation(x)
    fx, fy, tx, ty = fg.tensor(x), fg.tensor(y), torch.tensor(x), torch.tensor(y)
    got = fg.stack([getattr(fx, name)(fy) for name in BINARY]).numpy()
    for i, name in enumerate(BINARY):
        ref = getattr(tx, name)(ty).numpy()
        # logaddexp's max + log1p(...) loses digits where the two nearly cancel, in torch as here
        bound = ACCURACY[dtype] * (10 if name.startswith("logaddexp") else 1)
        assert _max_relative_error(got[i], ref) < bound, name


def test_atan2_signed_zeros_and_infinities():
    ys = [0.0, -0.0, 0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.inf, -math.inf, 1.0, math.nan, -0.0]
    xs = [0.0, 0.0, -0.0, -0.0, -0.0, 0.0, math.inf, math.inf, -math.inf, -math.inf, -math.inf, 1.0, -1.0]
    for dtype, tdtype in ((fg.float32, torch.float32), (fg.float64, torch.float64)):
        got = fg.atan2(fg.tensor(ys, dtype=dtype), fg.tensor(xs, dtype=dtype)).numpy()
        ref = torch.atan2(torch.tensor(ys, dtype=tdtype), torch.tensor(xs, dtype=tdtype)).numpy()
        np.testing.assert_allclose(got, ref, rtol=ACCURACY[dtype.name], atol=0)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_unary_matches_torch_with_gradient(name, dtype):
    low, high = DOMAIN.get(name, (-4.0, 4.0))
    check_op([(3, 17)], lambda x: getattr(x, name)(), dtype=dtype, low=low, high=high)


@pytest.mark.parametrize("name", UNARY)
def test_unary_low_precision_and_integer(name):
    low, high = DOMAIN.get(name, (-4.0, 4.0))
    for dtype in ("float16", "bfloat16"):
        check_op([(40,)], lambda x: getattr(x, name)(), dtype=dtype, low=low, high=high, grad=False)
    # integers compute in float32 like torch
    check_op([(40,)], lambda x: getattr(x, name)(), dtype="int32", low=-3, high=4, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_binary_matches_torch_with_gradient(name, dtype):
    check_op([(4, 13), (13,)], lambda a, b: getattr(a, name)(b), dtype=dtype, low=-3, high=3)


@pytest.mark.parametrize("name", BINARY)
def test_binary_low_precision_and_integer(name):
    for dtype in ("float16", "bfloat16"):
        check_op([(40,), (40,)], lambda a, b: getattr(a, name)(b), dtype=dtype, low=-3, high=3, grad=False)
    if name in ("atan2", "copysign"):
        check_op([(40,), (40,)], lambda a, b: getattr(a, name)(b), dtype="int64", low=-3, high=4,
                 rtol=1e-6, atol=1e-6)
    else:  # torch has no integer kernels for these
        with pytest.raises(fg.DTypeError):
            getattr(fg.tensor([1, 2]), name)(fg.tensor([3, 4]))


def test_gradients_at_the_edges():
    """Where torch's derivative formulas give 0 or inf, so do the compositions."""
    a = [0.0, 1.0, 0.0, -2.0, 0.0, 3.0, -0.0]
    b = [0.0, 0.0, 1.0, -2.0, -1.0, 0.0, 2.0]
    for name in ("atan2", "copysign", "logaddexp"):
        fa, fb = fg.tensor(a, dtype=fg.float64, requires_grad=True), fg.tensor(b, dtype=fg.float64, requires_grad=True)
        ta, tb = torch.tensor(a, dtype=torch.float64, requires_grad=True), torch.tensor(b, dtype=torch.float64,
                                                                                        requires_grad=True)
        getattr(fg, name)(fa, fb).sum().backward()
        getattr(torch, name)(ta, tb).sum().backward()
        np.testing.assert_allclose(fa.grad.numpy(), ta.grad.numpy(), err_msg=name)
        np.testing.assert_allclose(fb.grad.numpy(), tb.grad.numpy(), err_msg=name)
    x = [0.0, -0.0, 1.0, -1.0]
    for name in ("atan", "asin", "acos", "sinh", "cosh", "asinh", "atanh"):
        fx, tx = fg.tensor(x, dtype=fg.float64, requires_grad=True), torch.tensor(x, dtype=torch.float64,
                                                                                  requires_grad=True)
        getattr(fx, name)().sum().backward()
        getattr(tx, name)().sum().backward()
        np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), err_msg=name)


def test_logaddexp_infinities():
    a = [-math.inf, math.inf, -math.inf, 2.0, math.nan]
    b = [-math.inf, math.inf, 1.0, math.inf, 1.0]
    for name in ("logaddexp", "logaddexp2"):
        got = getattr(fg, name)(fg.tensor(a), fg.tensor(b)).numpy()
        np.testing.assert_array_equal(got, getattr(torch, name)(torch.tensor(a), torch.tensor(b)).numpy())


def test_copysign_with_scalars_and_negative_zero():
    x = fg.tensor([1.0, -2.0, 0.0])
    np.testing.assert_array_equal(fg.copysign(x, -0.0).numpy(), [-1.0, -2.0, -0.0])
    assert np.signbit(fg.copysign(x, -0.0).numpy()).all()
    assert fg.copysign(fg.tensor([1, -2]), 3).dtype == fg.float32


def test_aliases():
    x = fg.tensor([0.25, -0.5])
    for alias, name in [("arctan", "atan"), ("arcsin", "asin"), ("arccos", "acos"), ("arcsinh", "asinh"),
                        ("arctanh", "atanh")]:
        np.testing.assert_array_equal(getattr(x, alias)().numpy(), getattr(x, name)().numpy())
    np.testing.assert_array_equal(fg.arctan2(x, x).numpy(), fg.atan2(x, x).numpy())
    y = fg.tensor([1.5, 3.0])
    np.testing.assert_array_equal(y.arccosh().numpy(), y.acosh().numpy())


# ---- closeness ---------------------------------------------------------------------------------
@pytest.mark.parametrize("equal_nan", [False, True], ids=["nan-differs", "nan-equal"])
def test_isclose_matches_torch(equal_nan):
    a = [1.0, 1.0 + 1e-6, 1.0 + 1e-4, math.inf, math.inf, -math.inf, math.nan, math.nan, 0.0, 1e-9]
    b = [1.0, 1.0, 1.0, math.inf, -math.inf, -math.inf, math.nan, 1.0, 1e-9, 0.0]
    for dtype, tdtype in ((fg.float32, torch.float32), (fg.float64, torch.float64)):
        got = fg.isclose(fg.tensor(a, dtype=dtype), fg.tensor(b, dtype=dtype), equal_nan=equal_nan)
        ref = torch.isclose(torch.tensor(a, dtype=tdtype), torch.tensor(b, dtype=tdtype), equal_nan=equal_nan)
        assert got.dtype == fg.bool
        np.testing.assert_array_equal(got.numpy(), ref.numpy())


def test_isclose_integers_bool_and_errors():
    a, b = [1, 5, 100, -7], [1, 6, 120, -7]
    got = fg.isclose(fg.tensor(a), fg.tensor(b), rtol=0.2, atol=0)
    np.testing.assert_array_equal(got.numpy(), torch.isclose(torch.tensor(a), torch.tensor(b), rtol=0.2,
                                                             atol=0).numpy())
    np.testing.assert_array_equal(fg.isclose(fg.tensor([True, False]), fg.tensor([True, True])).numpy(),
                                  [True, False])
    with pytest.raises(fg.DTypeError):
        fg.isclose(fg.tensor([1.0]), fg.tensor([1.0], dtype=fg.float64))
    with pytest.raises(ValueError):
        fg.isclose(fg.tensor([1.0]), fg.tensor([1.0]), rtol=-1)
    with pytest.raises(TypeError):
        fg.isclose(fg.tensor([1.0]), 1.0)


def test_allclose_returns_a_python_bool():
    a = fg.tensor([1.0, 2.0])
    assert fg.allclose(a, a + 1e-7) is True
    assert fg.allclose(a, a + 1e-3) is False
    assert a.allclose(a + 1e-3, atol=1e-2) is True


# ---- bitwise ---------------------------------------------------------------------------------------
INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8"]


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_shifts_match_torch_for_every_amount(dtype):
    info = np.iinfo(dtype)
    x = np.concatenate([RNG.integers(info.min, info.max, 20, endpoint=True), [info.min, info.max, 0, 1]])
    x = x.astype(dtype)
    bits = 8 * np.dtype(dtype).itemsize
    k = np.arange(-2, bits + 3, dtype=dtype if dtype != "uint8" else "int64")
    xs, ks = np.repeat(x, len(k)), np.tile(k, len(x))
    fx, fk = fg.tensor(xs), fg.tensor(ks)
    tx, tk = torch.tensor(xs), torch.tensor(ks)
    for got, ref in [(fx << fk, tx << tk), (fx >> fk, tx >> tk),
                     (fg.bitwise_left_shift(fx, 3), torch.bitwise_left_shift(tx, 3)),
                     (fg.bitwise_right_shift(fx, 1), torch.bitwise_right_shift(tx, 1))]:
        assert got.dtype.name == str(ref.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(got.numpy(), ref.numpy())


def test_shift_promotion_scalars_and_errors():
    x8 = fg.tensor([1, -3, 64], dtype=fg.int8)
    t8 = torch.tensor([1, -3, 64], dtype=torch.int8)
    for got, ref in [(1 << x8.abs().clamp(max=6), 1 << t8.abs().clamp(max=6)), (100 >> x8.abs().clamp(max=6),
                                                                              100 >> t8.abs().clamp(max=6)),
                     (x8 << fg.tensor([1, 2, 3]), t8 << torch.tensor([1, 2, 3])),
                     (fg.tensor([True, False]) << 2, torch.tensor([True, False]) << 2)]:
        assert got.dtype.name == str(ref.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(got.numpy(), ref.numpy())
    with pytest.raises(fg.DTypeError):
        fg.tensor([1.0]) << 1
    with pytest.raises(fg.DTypeError):
        fg.tensor([True]) >> fg.tensor([True])


@pytest.mark.parametrize("dtype", ["bool", "int8", "int32", "int64", "uint8"])
def test_bitwise_functions(dtype):
    info = np.iinfo(dtype) if dtype != "bool" else None
    a = RNG.integers(0, 2, 30).astype(bool) if info is None else RNG.integers(info.min, info.max, 30).astype(dtype)
    b = RNG.permutation(a)
    fa, fb, ta, tb = fg.tensor(a), fg.tensor(b), torch.tensor(a), torch.tensor(b)
    for name in ("bitwise_and", "bitwise_or", "bitwise_xor"):
        np.testing.assert_array_equal(getattr(fg, name)(fa, fb).numpy(), getattr(torch, name)(ta, tb).numpy())
        np.testing.assert_array_equal(getattr(fa, name)(fb).numpy(), getattr(ta, name)(tb).numpy())
    np.testing.assert_array_equal(fg.bitwise_not(fa).numpy(), torch.bitwise_not(ta).numpy())
    with pytest.raises(fg.DTypeError):
        fg.bitwise_not(fg.tensor([1.0]))


# ---- more of torch's elementwise functions ---------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_more_elementwise_functions_with_gradient(dtype):
    check_op([(4, 9)], lambda x: x.deg2rad(), dtype=dtype)
    check_op([(4, 9)], lambda x: x.rad2deg(), dtype=dtype)
    check_op([(4, 9)], lambda x: x.frac(), dtype=dtype, low=-5, high=5)
    check_op([(4, 9)], lambda x: x.sinc(), dtype=dtype, low=-3, high=3)
    check_op([(4, 9)], lambda x: x.logit(), dtype=dtype, low=0.05, high=0.95)
    check_op([(4, 9)], lambda x: x.logit(eps=0.2), dtype=dtype, low=0.01, high=0.99)
    check_op([(4, 9), (9,)], lambda x, y: x.xlogy(y), dtype=dtype, low=0.1, high=3)
    check_op([(4, 9), (9,)], lambda x, y: x.fmax(y), dtype=dtype)
    check_op([(4, 9), (9,)], lambda x, y: x.fmin(y), dtype=dtype)
    check_op([(4, 9)], lambda x: x.float_power(3), dtype=dtype)
    check_op([(4, 9)], lambda x: x.nansum(1), dtype=dtype)


def test_more_elementwise_special_values():
    a = [0.0, -0.0, 1.5, -2.0, math.nan, math.nan, math.inf, 0.0]
    b = [0.0, 2.0, math.nan, -3.0, 1.0, math.nan, 0.5, math.nan]
    fa, fb, ta, tb = fg.tensor(a), fg.tensor(b), torch.tensor(a), torch.tensor(b)
    for name in ("fmax", "fmin", "xlogy", "heaviside"):
        np.testing.assert_array_equal(getattr(fg, name)(fa, fb).numpy(), getattr(torch, name)(ta, tb).numpy(), name)
    for name in ("signbit", "sinc", "nansum", "nanmean", "positive"):
        np.testing.assert_array_equal(getattr(fg, name)(fa).numpy(), getattr(torch, name)(ta).numpy(), name)
    ints = [3, -4, 0]
    for name in ("signbit", "deg2rad", "sinc"):
        got, ref = getattr(fg, name)(fg.tensor(ints)), getattr(torch, name)(torch.tensor(ints))
        assert got.dtype.name == str(ref.dtype).removeprefix("torch.")
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(fg.ldexp(fg.tensor([1.0, -3.0]), fg.tensor([3, -1])).numpy(), [8.0, -1.5])
    assert fg.float_power(fg.tensor([2]), 2).dtype == fg.float64
    for name in ("greater", "greater_equal", "less", "less_equal", "not_equal"):
        np.testing.assert_array_equal(getattr(fg, name)(fa, 0.0).numpy(), getattr(torch, name)(ta, 0.0).numpy())
    with pytest.raises(fg.DTypeError):
        fg.frac(fg.tensor([1]))
    with pytest.raises(fg.DTypeError):
        fg.nanmean(fg.tensor([1]))
    with pytest.raises(fg.DTypeError):
        fg.heaviside(fg.tensor([1.0]), fg.tensor([1]))

"""repr/str of tensors match PyTorch's text, with `torch.` read as `fusegrad.`."""
import numpy as np
import pytest
import torch

import fusegrad as fg

RNG = np.random.default_rng(1234)


def torch_text(t: torch.Tensor) -> str:
    return repr(t).replace("torch.", "fusegrad.")


def check(arr: np.ndarray, dtype: str | None = None) -> None:
    """fusegrad and torch tensors made from the same values print identically."""
    fg_t = fg.tensor(arr) if dtype is None else fg.tensor(arr, dtype=dtype)
    t = torch.tensor(arr) if dtype is None else torch.tensor(arr).to(getattr(torch, dtype))
    assert repr(fg_t) == torch_text(t)
    assert str(fg_t) == repr(fg_t)


FLOAT_CASES = {
    "integer_valued": [1.0, 2.0, -3.0],
    "four_decimals": [1.5, 2.0, -0.25],
    "small_needs_scientific": [1e-5, 1.0, 2.5],
    "wide_range_scientific": [1.0, 12345.0, 0.5],
    "huge_integers_scientific": [1e9, 2.0, 3.0],
    "nonfinite": [float("nan"), float("inf"), -float("inf"), 1.0],
    "nonfinite_and_decimals": [float("nan"), 0.125, -2.5],
    "all_zero": [0.0, 0.0],
    "negative_zero": [-0.0, 1.0],
    "only_nan": [float("nan")],
    "wide_integers": [100.0, -2.0, 999.0],
}


@pytest.mark.parametrize("name", sorted(FLOAT_CASES))
def test_float32_vectors(name: str) -> None:
    check(np.array(FLOAT_CASES[name], dtype=np.float32))


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_float_dtypes_show_their_name(dtype: str) -> None:
    check(RNG.uniform(-3, 3, size=(2, 3)).astype(np.float32), dtype=dtype)


@pytest.mark.parametrize("dtype", ["int64", "int32", "int16", "int8", "uint8"])
def test_integer_tensors(dtype: str) -> None:
    low = 0 if dtype == "uint8" else -100
    check(RNG.integers(low, 100, size=(3, 4)).astype(dtype))


def test_bool_tensor() -> None:
    check(np.array([[True, False, True], [False, False, True]]))


@pytest.mark.parametrize("value", [3.0, 3.5, -0.001, 1e10])
def test_zero_dim_float(value: float) -> None:
    check(np.array(value, dtype=np.float32))


@pytest.mark.parametrize("arr", [np.array(7), np.array(True), np.array(-2, dtype=np.int32)], ids=str)
def test_zero_dim_int_and_bool(arr: np.ndarray) -> None:
    check(arr)


def test_multi_dim_layout() -> None:
    check(RNG.standard_normal((2, 3, 4)).astype(np.float32))
    check(RNG.standard_normal((2, 1, 2, 3)).astype(np.float64))


def test_long_vector_wraps_lines() -> None:
    check(RNG.standard_normal(40).astype(np.float32))
    check(np.arange(100, dtype=np.int64) * 12345)


@pytest.mark.parametrize("shape", [(2000,), (1000, 2), (20, 60), (10, 10, 11)])
def test_large_tensors_are_summarized(shape: tuple) -> None:
    arr = RNG.standard_normal(shape).astype(np.float32)
    check(arr)
    assert "..." in repr(fg.tensor(arr))


def test_summarized_integers() -> None:
    check(np.arange(3000, dtype=np.int64).reshape(30, 100))


@pytest.mark.parametrize("shape,dtype", [((0,), "float32"), ((0, 3), "float32"), ((2, 0, 3), "float64"),
                                         ((0,), "int64"), ((0,), "bool"), ((0, 2), "float16")])
def test_empty(shape: tuple, dtype: str) -> None:
    check(np.zeros(shape, dtype="float32" if dtype == "float16" else dtype), dtype=dtype)


def test_requires_grad_suffix() -> None:
    arr = RNG.standard_normal(3).astype(np.float32)
    assert repr(fg.tensor(arr, requires_grad=True)) == torch_text(torch.tensor(arr, requires_grad=True))
    wide = RNG.standard_normal((2, 6)).astype(np.float64)
    assert repr(fg.tensor(wide, requires_grad=True)) == torch_text(torch.tensor(wide, requires_grad=True))


def test_grad_fn_suffix() -> None:
    a, b = RNG.standard_normal(3).astype(np.float32), RNG.standard_normal(3).astype(np.float32)
    got = repr(fg.tensor(a, requires_grad=True) * fg.tensor(b))
    want = torch_text(torch.tensor(a, requires_grad=True) * torch.tensor(b)).replace("Backward0", "Backward")
    assert got == want
    assert "grad_fn" not in repr(fg.tensor(a) * fg.tensor(b))


def test_lazy_views_print_their_values() -> None:
    arr = RNG.standard_normal((3, 4)).astype(np.float32)
    assert repr(fg.tensor(arr).T.exp()) == torch_text(torch.tensor(arr).T.exp())

"""Integers that do not fit and sizes that are not sizes raise, as torch does, instead of wrapping.

Each case runs in torch and in fusegrad: either both raise and fusegrad's exception is an instance of
torch's type, or both return the same dtype and values."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch

import fusegrad as fg

INT_DTYPES = ["int8", "uint8", "int16", "int32", "int64", "bool"]


def _outcome(fn: Callable[[Any], Any], lib: Any) -> Any:
    try:
        r = fn(lib)
    except Exception as e:  # noqa: BLE001 - the type is the result
        return e
    return str(r.dtype).split(".")[-1], np.asarray(r.tolist() if lib is torch else r.numpy()).tolist()


def assert_like_torch(fn: Callable[[Any], Any]) -> Any:
    """fn(fg) raises what fn(torch) raises (an instance of its type) or returns the same values."""
    want, got = _outcome(fn, torch), _outcome(fn, fg)
    if isinstance(want, Exception):
        assert isinstance(got, type(want)), f"torch raised {type(want).__name__}: {want}; fusegrad gave {got!r}"
    else:
        assert not isinstance(got, Exception), f"torch returned {want}; fusegrad raised {got!r}"
        assert got == want
    return got


def _x(lib: Any, dt: str) -> Any:
    return lib.tensor([1, 0], dtype=getattr(lib, dt))


def _setitem(lib: Any, dt: str, key: Any, value: Any) -> Any:
    x = _x(lib, dt)
    x[key] = value
    return x


# (id, fn(lib, dtype name)): every scalar entry point, with a value that wraps or overflows
SCALAR_CASES: list[tuple[str, Callable[[Any, str], Any]]] = [
    ("add", lambda lib, dt: _x(lib, dt) + 2 ** 70),
    ("radd", lambda lib, dt: 2 ** 70 + _x(lib, dt)),
    ("sub", lambda lib, dt: _x(lib, dt) - 2 ** 64),
    ("rmul", lambda lib, dt: 2 ** 70 * _x(lib, dt)),
    ("rsub", lambda lib, dt: -2 ** 63 - 1 - _x(lib, dt)),
    ("truediv", lambda lib, dt: _x(lib, dt) / 2 ** 70),
    ("floordiv", lambda lib, dt: _x(lib, dt) // 2 ** 70),
    ("mod", lambda lib, dt: _x(lib, dt) % 2 ** 70),
    ("and", lambda lib, dt: _x(lib, dt) & 2 ** 70),
    ("lt", lambda lib, dt: _x(lib, dt) < 2 ** 70),
    ("eq", lambda lib, dt: _x(lib, dt) == -2 ** 70),
    ("full", lambda lib, dt: lib.full((2,), 2 ** 70, dtype=getattr(lib, dt))),
    ("full_1000", lambda lib, dt: lib.full((2,), 1000, dtype=getattr(lib, dt))),
    ("full_2**40", lambda lib, dt: lib.full((2,), 2 ** 40, dtype=getattr(lib, dt))),
    ("full_2**63", lambda lib, dt: lib.full((2,), 2 ** 63, dtype=getattr(lib, dt))),
    ("full_float", lambda lib, dt: lib.full((2,), 1000.5, dtype=getattr(lib, dt))),
    ("full_nan", lambda lib, dt: lib.full((2,), float("nan"), dtype=getattr(lib, dt))),
    ("full_like", lambda lib, dt: lib.full_like(_x(lib, dt), 2 ** 40)),
    ("fill_", lambda lib, dt: _x(lib, dt).fill_(1000)),
    ("fill_big", lambda lib, dt: _x(lib, dt).fill_(2 ** 70)),
    ("tensor_list", lambda lib, dt: lib.tensor([1, 2 ** 40], dtype=getattr(lib, dt))),
    ("tensor_scalar", lambda lib, dt: lib.tensor(1000, dtype=getattr(lib, dt))),
    ("tensor_big", lambda lib, dt: lib.tensor([2 ** 70], dtype=getattr(lib, dt))),
    ("masked_fill", lambda lib, dt: _x(lib, dt).masked_fill(lib.tensor([True, False]), 1000)),
    ("masked_fill_big", lambda lib, dt: _x(lib, dt).masked_fill(lib.tensor([True, False]), 2 ** 70)),
    ("clamp_max", lambda lib, dt: _x(lib, dt).clamp(max=1000)),
    ("clamp_min", lambda lib, dt: _x(lib, dt).clamp(min=-2 ** 40)),
    ("clamp_big", lambda lib, dt: _x(lib, dt).clamp(max=2 ** 70)),
    ("where", lambda lib, dt: lib.where(lib.tensor([True, False]), _x(lib, dt), 1000)),
    ("where_big", lambda lib, dt: lib.where(lib.tensor([True, False]), _x(lib, dt), 2 ** 70)),
    ("setitem", lambda lib, dt: _setitem(lib, dt, 0, 1000)),
    ("setitem_slice", lambda lib, dt: _setitem(lib, dt, slice(None), 2 ** 40)),
    ("setitem_big", lambda lib, dt: _setitem(lib, dt, 0, 2 ** 70)),
    ("add_alpha", lambda lib, dt: _x(lib, dt).add(1, alpha=1000)),
    ("pow", lambda lib, dt: _x(lib, dt) ** 1000),
    ("new_full", lambda lib, dt: _x(lib, dt).new_full((2,), 2 ** 40)),
    ("fill_diagonal_", lambda lib, dt: lib.zeros(2, 2, dtype=getattr(lib, dt)).fill_diagonal_(1000)),
    ("pad_value", lambda lib, dt: lib.nn.functional.pad(_x(lib, dt), (1, 1), value=1000)),
    ("randint_high", lambda lib, dt: lib.randint(0, 1000, (2,), dtype=getattr(lib, dt)).zero_()),
    ("randint_low", lambda lib, dt: lib.randint(-1, 2, (2,), dtype=getattr(lib, dt)).zero_()),
    ("randint_big", lambda lib, dt: lib.randint(0, 2 ** 70, (2,), dtype=getattr(lib, dt)).zero_()),
]


@pytest.mark.parametrize("dt", INT_DTYPES)
def test_scalar_entry_points_raise_like_torch(dt: str) -> None:
    for name, case in SCALAR_CASES:
        try:
            assert_like_torch(lambda lib: case(lib, dt))
        except AssertionError as e:
            raise AssertionError(f"{name} ({dt}): {e}") from None


def test_old_wrong_results_are_gone() -> None:
    with pytest.raises(OverflowError):
        fg.tensor([1], dtype=fg.int64) + 2 ** 70
    with pytest.raises(RuntimeError, match="int32 without overflow"):
        fg.full((2,), 2 ** 40, dtype=fg.int32)
    with pytest.raises(RuntimeError, match="Storage size"):
        fg.ones(2 ** 62, 4).sum()


@pytest.mark.parametrize("dt", ["int8", "uint8", "int64"])
def test_in_range_scalars_wrap_like_torch(dt: str) -> None:
    """Arithmetic and comparisons with ints that fit int64 wrap into the dtype, as torch's do."""
    assert_like_torch(lambda lib: lib.stack([(_x(lib, dt) + 1000), 1000 - _x(lib, dt), _x(lib, dt) * 2 ** 63,
                                             (_x(lib, dt) < 1000).to(getattr(lib, dt)),
                                             (_x(lib, dt) == 2 ** 63).to(getattr(lib, dt)),
                                             lib.full((2,), -1, dtype=getattr(lib, dt))]))


def test_tensor_from_lists_with_big_ints() -> None:
    """Beside a float, an int beyond int64 makes a float tensor; among ints it raises (as in torch)."""
    for data in ([1.5, 2 ** 70], [[1, 2 ** 70], [2.5, 3]], [1, 2 ** 70], [2 ** 63], [-2 ** 63 - 1]):
        assert_like_torch(lambda lib: lib.tensor(data))
    assert_like_torch(lambda lib: lib.tensor([1, 2 ** 70], dtype=lib.float32))
    assert_like_torch(lambda lib: lib.tensor(np.array([1000, -1]), dtype=lib.int8))  # numpy data wraps
    assert_like_torch(lambda lib: lib.tensor([-255, 255], dtype=lib.uint8))


@pytest.mark.parametrize("dt", ["int8", "uint8", "int32"])
def test_float_writes_into_integers(dt: str) -> None:
    """A float fits a signed type down to its minimum (truncated), an unsigned one from 0 (even -0.0)."""
    for value in (-5.0, -128.0, -128.5, -5.5, -0.0, -0.5, 255.0, 127.9):
        assert_like_torch(lambda lib: lib.full((2,), value, dtype=getattr(lib, dt)))
        assert_like_torch(lambda lib: lib.tensor([value, 1.0], dtype=getattr(lib, dt)))


@pytest.mark.parametrize("dt", ["float16", "float32", "float64"])
def test_float_fills(dt: str) -> None:
    for value in (1e40, 65519.0, float("inf"), float("nan"), 2 ** 70):
        assert_like_torch(lambda lib: lib.full((2,), value, dtype=getattr(lib, dt)).isnan())
    assert_like_torch(lambda lib: lib.ones(2, dtype=getattr(lib, dt)) + 2 ** 70)


@pytest.mark.parametrize("dt", ["float16", "float32"])
def test_float_range_where_torch_checks_it(dt: str) -> None:
    """Fills, masked_fill and clamp check a float dtype's range; item assignment and where do so for
    float32 but round to inf in float16 (an attention mask's -1e9 raises in float16 masked_fill, as in torch)."""
    def setitem(lib: Any, key: Any) -> Any:
        x = lib.ones(3, dtype=getattr(lib, dt))
        x[key] = 1e5 if dt == "float16" else 1e40
        return x
    big = 1e5 if dt == "float16" else 1e40
    assert_like_torch(lambda lib: lib.ones(3, dtype=getattr(lib, dt)).masked_fill(lib.ones(3) > 0, -big))
    assert_like_torch(lambda lib: lib.ones(3, dtype=getattr(lib, dt)).clamp(min=-big))
    assert_like_torch(lambda lib: lib.where(lib.ones(3) > 0, lib.ones(3, dtype=getattr(lib, dt)), -big))
    assert_like_torch(lambda lib: lib.where(lib.ones(3) > 0, lib.ones(3, dtype=getattr(lib, dt)), -1e40))
    for key in (0, slice(None)):
        assert_like_torch(lambda lib: setitem(lib, key))


SIZE_CASES: list[tuple[str, Callable[[Any], Any]]] = [
    ("ones_overflow", lambda lib: lib.ones(2 ** 62, 4)),
    ("zeros_3d_overflow", lambda lib: lib.zeros(2 ** 31, 2 ** 31, 4)),
    ("full_overflow", lambda lib: lib.full((2 ** 62, 4), 1)),
    ("randn_overflow", lambda lib: lib.randn(2 ** 62, 4)),
    ("expand_overflow", lambda lib: lib.ones(1, 1).expand(2 ** 40, 2 ** 40)),
    ("broadcast_overflow", lambda lib: lib.ones(1, 1).expand(2 ** 40, 1) + lib.ones(1, 1).expand(1, 2 ** 40)),
    ("reshape_overflow", lambda lib: lib.ones(1, 1).reshape(2 ** 62, 4)),
    ("zeros_negative", lambda lib: lib.zeros(-1)),
    ("zeros_negative_2d", lambda lib: lib.zeros(2, -3)),
    ("full_negative", lambda lib: lib.full((-1,), 2)),
    ("randn_negative", lambda lib: lib.randn(-1)),
    ("zeros_float", lambda lib: lib.zeros(2.7)),
    ("zeros_whole_float", lambda lib: lib.zeros(2.0)),
    ("ones_tuple_float", lambda lib: lib.ones((2, 3.0))),
    ("randn_float", lambda lib: lib.randn(2.0)),
    ("rand_float", lambda lib: lib.rand(2.0)),
    ("full_float_size", lambda lib: lib.full((2.0,), 1)),
    ("zeros_size_kw_float", lambda lib: lib.zeros(size=(2.0, 3))),
    ("reshape_float", lambda lib: lib.ones(6).reshape((2.0, 3))),
    ("view_float", lambda lib: lib.ones(6).view(2.5)),
    ("view_whole_float", lambda lib: lib.ones(6).view(6.0)),
    ("view_tuple_float", lambda lib: lib.ones(6).view((2.0, 3))),
    ("expand_float", lambda lib: lib.ones(6).expand((2.0, 6))),
    ("repeat_float", lambda lib: lib.ones(6).repeat(2.0)),
    ("new_zeros_float", lambda lib: lib.ones(6).new_zeros(2.0)),
    ("permute_float", lambda lib: lib.ones(6).permute(0.0)),
    ("zeros_bool", lambda lib: lib.zeros(True)),
    ("zeros_numpy_float", lambda lib: lib.zeros(np.float64(3))),
    ("zeros_float_tensor", lambda lib: lib.zeros(lib.tensor(3.0))),
    ("zeros_numpy_int", lambda lib: lib.zeros(np.int64(3))),
    ("zeros_numpy_int_tuple", lambda lib: lib.zeros((np.int32(3), 2))),
    ("zeros_int_tensor", lambda lib: lib.zeros(lib.tensor(3))),
    ("zeros_int_tensor_tuple", lambda lib: lib.zeros((lib.tensor(3), 2))),
    ("reshape_int_tensor", lambda lib: lib.ones(6).reshape(lib.tensor(2), 3)),
    ("view_numpy_int", lambda lib: lib.ones(6).view(2, np.int64(3))),
    ("arange_float", lambda lib: lib.arange(2.5)),
    ("Tensor_float_size", lambda lib: lib.Tensor(2.0, 3)),
    ("Tensor_numpy_size", lambda lib: lib.Tensor(np.int64(3), 2).zero_()),
    ("empty_dim_beyond_int64", lambda lib: lib.empty(2 ** 63)),
]


def test_sizes_like_torch() -> None:
    for name, case in SIZE_CASES:
        try:
            assert_like_torch(case)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None


def test_error_types() -> None:
    """The two new errors are fusegrad errors with the builtin bases torch users catch."""
    with pytest.raises(fg.errors.IntegerOverflowError) as big:
        fg.tensor([1, 2], dtype=fg.int32).fill_(2 ** 70)
    assert isinstance(big.value, (OverflowError, ValueError, fg.errors.Error))
    with pytest.raises(fg.errors.ValueRangeError, match="value 1000 cannot be converted to type int8"):
        fg.full((1,), 1000, dtype=fg.int8)
    with pytest.raises(fg.errors.ShapeError, match="negative dimension -1"):
        fg.zeros(-1)

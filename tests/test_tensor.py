"""Tensor basics: creation, dtypes and promotion, properties, realization, random, in-place."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from tests.helpers import random_array

ALL = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64"]


@pytest.mark.parametrize("data", [3, 2.5, True, [1, 2, 3], [[1.0, 2.0], [3.0, 4.0]], [True, False], [],
                                  np.arange(6, dtype=np.int16).reshape(2, 3), np.float64(1.5)])
def test_tensor_infers_dtype_and_shape_like_torch(data):
    ours, ref = fg.tensor(data), torch.tensor(data)
    assert ours.shape == tuple(ref.shape)
    assert ours.dtype.name == str(ref.dtype).removeprefix("torch.")
    np.testing.assert_array_equal(ours.numpy(), ref.numpy())


@pytest.mark.parametrize("dtype", ALL)
def test_roundtrip_every_dtype(dtype):
    arr = random_array((3, 4), dtype)
    t = fg.tensor(arr, dtype=dtype)
    assert t.dtype == getattr(fg, dtype if dtype != "bool" else "bool")
    expected = torch.tensor(arr).to(getattr(torch, dtype)).float().numpy()
    np.testing.assert_array_equal(t.float().numpy(), expected)
    np.testing.assert_array_equal((t.float() * 1).numpy(), expected)  # through a kernel too


@pytest.mark.parametrize("a", ALL)
@pytest.mark.parametrize("b", ["bool", "uint8", "int8", "int32", "float16", "bfloat16", "float64"])
def test_type_promotion_matches_torch(a, b):
    x, y = fg.ones(2, dtype=a), fg.ones(2, dtype=b)
    tx, ty = torch.ones(2, dtype=getattr(torch, a)), torch.ones(2, dtype=getattr(torch, b))
    assert (x + y).dtype.name == str((tx + ty).dtype).removeprefix("torch.")
    assert (x * 2.5).dtype.name == str((tx * 2.5).dtype).removeprefix("torch.")
    assert (x + fg.tensor(1, dtype=b)).dtype.name == str((tx + torch.tensor(1, dtype=getattr(torch, b))).dtype
                                                         ).removeprefix("torch.")
    assert (x < y).dtype == fg.bool


def test_true_and_floor_division_of_integers():
    a, b = np.array([7, -7, 9, -9]), np.array([2, 2, -4, -4])
    assert (fg.tensor(a) / fg.tensor(b)).dtype == fg.float32
    np.testing.assert_array_equal((fg.tensor(a) // fg.tensor(b)).numpy(), a // b)
    np.testing.assert_array_equal((fg.tensor(a) % fg.tensor(b)).numpy(), a % b)
    np.testing.assert_allclose((fg.tensor(a, dtype=fg.float32) % 2.5).numpy(), np.mod(a, 2.5))


def test_creation_functions_match_torch():
    cases = [
        (fg.zeros(2, 3), torch.zeros(2, 3)), (fg.ones((4,), dtype=fg.int32), torch.ones((4,), dtype=torch.int32)),
        (fg.full((2, 2), 7), torch.full((2, 2), 7)), (fg.full((2,), 1.5), torch.full((2,), 1.5)),
        (fg.empty(0, 3), torch.zeros(0, 3)), (fg.arange(5), torch.arange(5)),
        (fg.arange(1, 2.5, 0.25), torch.arange(1, 2.5, 0.25)), (fg.arange(10, 0, -3), torch.arange(10, 0, -3)),
        (fg.linspace(-1, 1, 7), torch.linspace(-1, 1, 7)), (fg.eye(3, 4), torch.eye(3, 4)),
        (fg.zeros_like(fg.ones(2, dtype=fg.int8)), torch.zeros(2, dtype=torch.int8)),
        (fg.full_like(fg.ones(3), 2.0), torch.full((3,), 2.0)),
    ]
    for ours, ref in cases:
        assert ours.shape == tuple(ref.shape) and ours.dtype.name == str(ref.dtype).removeprefix("torch.")
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-6, atol=1e-6)


def test_properties():
    t = fg.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.numel() == 24 and len(t) == 2
    assert t.size() == (2, 3, 4) and t.size(-1) == 4 and t.device == fg.get_default_device()
    assert t.T.shape == (4, 3, 2) and t.mT.shape == (2, 4, 3)
    assert fg.tensor(5).item() == 5 and isinstance(fg.tensor(2.5).item(), float)
    assert fg.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    np.testing.assert_array_equal(np.asarray(fg.tensor([1.0, 2.0])), [1.0, 2.0])
    assert fg.from_numpy(np.arange(3, dtype=np.int32)).dtype == fg.int32


def test_conversions():
    t = fg.tensor([1.7, -2.2, 0.0])
    assert t.long().tolist() == [1, -2, 0] and t.int().dtype == fg.int32
    assert t.bool().tolist() == [True, True, False] and t.half().dtype == fg.float16
    assert t.to(fg.float64).dtype == fg.float64 and t.to("cpu", fg.int16).dtype == fg.int16
    assert t.to("float64").dtype == fg.float64 and t.double().dtype == fg.float64


@pytest.mark.parametrize("source", ["bool", "int8", "uint8"])
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_small_integers_convert_to_half_types_exactly(source, half):
    """Every bool, int8 and uint8 value is a float16 and a bfloat16: converted in a fused kernel (with no
    rounding step), each comes out as torch converts it, and arithmetic on it still rounds."""
    values = {"bool": np.array([True, False]), "int8": np.arange(-128, 128, dtype=np.int8),
              "uint8": np.arange(256, dtype=np.uint8)}[source]
    t = fg.tensor(values)
    computed = t.logical_and(t) if source == "bool" else t * 1  # (the cast then follows an op in a kernel)
    assert computed.dtype == t.dtype
    got = computed.to(getattr(fg, half))
    want = torch.from_numpy(values).to(getattr(torch, half))
    np.testing.assert_array_equal(got.float().numpy(), want.float().numpy())
    third = computed.to(getattr(fg, half)) / 3
    np.testing.assert_array_equal(third.float().numpy(), (want / 3).float().numpy())


def test_float16_conversions_in_kernels_match_numpy_for_every_value():
    """float16 to float: all 65,536 bit patterns; float to float16 (round to nearest even): every float16
    value, the midpoints between neighbours (ties) and the floats next to them, subnormals, overflow
    to inf, NaN, and random floats over 50 binades, each converted inside a fused kernel."""
    h = np.arange(65536, dtype=np.uint16).view(np.float16)
    widened = (fg.tensor(h) * 1).float().numpy()
    want = h.astype(np.float32)
    assert np.array_equal(np.isnan(widened), np.isnan(want))
    finite = ~np.isnan(want)
    assert np.array_equal(widened[finite].view(np.uint32), want[finite].view(np.uint32))
    values = np.unique(want[np.isfinite(want)].astype(np.float64))
    mids = ((values[1:] + values[:-1]) / 2).astype(np.float32)
    rng = np.random.default_rng(9)
    spread = (rng.standard_normal(100_000) * np.exp2(rng.uniform(-30, 20, 100_000))).astype(np.float32)
    edges = np.array([65504, 65519.996, 65520, 1e9, np.inf, np.nan, 1e-45, 2.9802322e-08, 6.1035156e-05], np.float32)
    xs = np.concatenate([values.astype(np.float32), mids, np.nextafter(mids, np.float32(np.inf)),
                         np.nextafter(mids, np.float32(-np.inf)), spread, edges])
    xs = np.concatenate([xs, -xs])
    narrowed = (fg.tensor(xs) * 1).half().numpy()
    with np.errstate(over="ignore"):
        want = xs.astype(np.float16)
    assert np.array_equal(np.isnan(narrowed), np.isnan(want))
    finite = ~np.isnan(want)
    assert np.array_equal(narrowed[finite].view(np.uint16), want[finite].view(np.uint16))


def test_random_reproducible_and_distributed():
    fg.manual_seed(123)
    a, b = fg.rand(1000).numpy(), fg.randn(20000).numpy()
    fg.manual_seed(123)
    np.testing.assert_array_equal(fg.rand(1000).numpy(), a)
    np.testing.assert_array_equal(fg.randn(20000).numpy(), b)
    assert 0 <= a.min() and a.max() < 1 and abs(a.mean() - 0.5) < 0.05
    assert abs(b.mean()) < 0.05 and abs(b.std() - 1) < 0.05
    r = fg.randint(3, 9, (5000,)).numpy()
    assert r.dtype == np.int64 and set(np.unique(r)) == set(range(3, 9))
    assert not np.array_equal(fg.rand(100).numpy(), fg.rand(100).numpy())
    assert fg.rand_like(fg.ones(2, 3)).shape == (2, 3) and fg.randn_like(fg.ones(4)).dtype == fg.float32
    assert sorted(fg.randperm(10).tolist()) == list(range(10))


def test_inplace_ops_rebind_lazily():
    t = fg.tensor([1.0, 2.0, 3.0])
    alias = t
    t.add_(1).mul_(2).sub_(fg.tensor([1.0, 1.0, 1.0]), alpha=2)
    assert alias is t
    np.testing.assert_allclose(t.numpy(), [2.0, 4.0, 6.0])
    t.div_(2)
    np.testing.assert_allclose(t.numpy(), [1.0, 2.0, 3.0])
    t.zero_()
    assert t.tolist() == [0.0, 0.0, 0.0]
    t.fill_(4).copy_(fg.tensor([9.0]))
    assert t.tolist() == [9.0, 9.0, 9.0]


def test_inplace_on_leaf_requiring_grad_needs_no_grad():
    w = fg.ones(3, requires_grad=True)
    with pytest.raises(fg.GradError):
        w.add_(1)
    with fg.no_grad():
        w.sub_(0.5)
    assert w.requires_grad and w.is_leaf
    np.testing.assert_allclose(w.numpy(), [0.5] * 3)


def test_realize_many_and_repr():
    a, b = fg.tensor([1.0, 2.0]) * 2, fg.tensor([3, 4]) + 1
    fg.realize(a, b)
    assert a._node.buffer is not None and b._node.buffer is not None
    assert repr(fg.tensor([1.0, 2.0])).startswith("tensor(")

"""Typed errors raised when an op is built, naming the shapes/dtypes involved."""
import numpy as np
import pytest

import fusegrad as fg


def test_error_hierarchy():
    assert issubclass(fg.ShapeError, fg.Error) and issubclass(fg.ShapeError, ValueError)
    assert issubclass(fg.DTypeError, fg.Error) and issubclass(fg.DTypeError, TypeError)
    assert issubclass(fg.IndexOutOfRangeError, IndexError)
    assert issubclass(fg.DeviceError, fg.Error) and issubclass(fg.CompileError, fg.Error)


def test_broadcast_mismatch_names_both_shapes():
    with fg.profile() as p:
        with pytest.raises(fg.ShapeError, match=r"\(2, 3\).*\(4, 3\)"):
            fg.ones(2, 3) + fg.ones(4, 3)
    assert p.kernels == []  # raised at build time, nothing ran


@pytest.mark.parametrize("build, match", [
    (lambda: fg.ones(2, 3).reshape(4, 2), r"\(4, 2\).*6"),
    (lambda: fg.ones(2, 3).reshape(-1, -1), "one dimension"),
    (lambda: fg.ones(2, 3) @ fg.ones(2, 3), r"\(2, 3\).*\(2, 3\)"),
    (lambda: fg.ones(2, 3).expand(4, 4), r"\(2, 3\).*\(4, 4\)"),
    (lambda: fg.ones(2, 3).permute(0, 0), "permutation"),
    (lambda: fg.ones(3).item(), "3 elements"),
])
def test_shape_errors(build, match):
    with pytest.raises(fg.ShapeError, match=match):
        build()


def test_dim_out_of_range_is_index_error():
    with pytest.raises(IndexError, match="out of range"):
        fg.ones(2, 3).sum(2)


@pytest.mark.parametrize("build", [
    lambda: fg.ones(2) & fg.ones(2),
    lambda: ~fg.ones(2),
    lambda: -fg.ones(2, dtype=fg.bool),
    lambda: fg.ones(2, dtype=fg.int32).mean(),
    lambda: fg.tensor(["a", "b"]),
    lambda: fg.ones(2, dtype="complex64"),
])
def test_dtype_errors(build):
    with pytest.raises(fg.DTypeError):
        build()


def test_unknown_device():
    with pytest.raises(fg.DeviceError, match="tpu"):
        fg.ones(2, device="tpu")


def test_errors_leave_tensors_intact():
    a = fg.tensor([1.0, 2.0, 3.0])
    with pytest.raises(fg.ShapeError):
        a.add_(fg.ones(2))
    np.testing.assert_array_equal(a.numpy(), [1.0, 2.0, 3.0])


def test_integer_division_by_zero_does_not_crash():
    a = fg.tensor([7, -7, 5])
    b = fg.tensor([0, 0, -1])
    assert (a // b).tolist()[2] == -5
    assert (a % b).shape == (3,)

"""fg.finfo and fg.iinfo against torch.finfo and torch.iinfo: every field, the repr, equality and the errors."""
from __future__ import annotations

import pytest
import torch

import fusegrad as fg

FLOATS = ["float16", "bfloat16", "float32", "float64", "float8_e4m3fn", "float8_e5m2"]
INTS = ["uint8", "int8", "int16", "int32", "int64"]


@pytest.mark.parametrize("name", FLOATS)
def test_finfo_matches_torch(name: str) -> None:
    ours, theirs = fg.finfo(getattr(fg, name)), torch.finfo(getattr(torch, name))
    for field in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert repr(ours) == repr(theirs)
    assert fg.finfo(name) == ours and fg.finfo(getattr(torch, name)) == ours  # names and torch dtypes too


def test_finfo_default_and_errors() -> None:
    assert fg.finfo() == fg.finfo(fg.float32) and repr(fg.finfo()) == repr(torch.finfo())
    assert fg.finfo(fg.float16) != fg.finfo(fg.bfloat16)
    for bad in (fg.int32, fg.bool):
        with pytest.raises(TypeError, match="floating point"):
            fg.finfo(bad)


@pytest.mark.parametrize("name", INTS)
def test_iinfo_matches_torch(name: str) -> None:
    ours, theirs = fg.iinfo(getattr(fg, name)), torch.iinfo(getattr(torch, name))
    assert (ours.bits, ours.min, ours.max, ours.dtype) == (theirs.bits, theirs.min, theirs.max, theirs.dtype)
    assert repr(ours) == repr(theirs)


def test_iinfo_errors() -> None:
    with pytest.raises(TypeError, match="integer"):
        fg.iinfo(fg.float32)
    with pytest.raises(TypeError, match="bool"):
        fg.iinfo(fg.bool)

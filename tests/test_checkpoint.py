"""fusegrad.io.checkpoint: nested state round trips, safetensors interop both ways, atomic writes."""
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

import fusegrad as fg
from fusegrad.io.checkpoint import CheckpointError, load, save

REPO = Path(__file__).resolve().parents[1]


def random_tensor(shape, dtype) -> fg.Tensor:
    values = np.random.default_rng(0).standard_normal(shape) * 10
    return fg.tensor(values > 0 if dtype == fg.bool else values, dtype=dtype)


def assert_same(a: fg.Tensor, b: fg.Tensor) -> None:
    assert isinstance(b, fg.Tensor) and a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def state() -> dict:
    """Something shaped like {model, optimizer, epoch}: int keys, tuples, None, floats, nested lists."""
    return {
        "model": {"fc1.weight": random_tensor((4, 3), fg.float32), "fc1.bias": random_tensor((4,), fg.float32),
                  "bn.num_batches_tracked": fg.tensor(7)},
        "optimizer": {"state": {0: {"step": fg.tensor(3.0), "exp_avg": random_tensor((4, 3), fg.float32)}},
                      "param_groups": [{"params": [0, 1], "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8,
                                        "foreach": None, "amsgrad": False, "name": "default"}]},
        "epoch": 3,
        "best": float("inf"),
        "history": [0.5, 0.25],
    }


def assert_state_equal(expected, got) -> None:
    assert type(expected) is type(got) or isinstance(expected, dict) and isinstance(got, dict)
    if isinstance(expected, fg.Tensor):
        assert_same(expected, got)
    elif isinstance(expected, dict):
        assert list(expected) == list(got)
        for key in expected:
            assert_state_equal(expected[key], got[key])
    elif isinstance(expected, (list, tuple)):
        assert len(expected) == len(got)
        for e, g in zip(expected, got):
            assert_state_equal(e, g)
    else:
        assert expected == got or (isinstance(expected, float) and math.isnan(expected) and math.isnan(got))


def test_nested_state_round_trip(tmp_path):
    original = state()
    save(original, tmp_path / "ckpt.safetensors")
    assert_state_equal(original, load(tmp_path / "ckpt.safetensors"))


@pytest.mark.parametrize("dtype", [fg.float32, fg.float64, fg.float16, fg.bfloat16, fg.int64, fg.int32, fg.int16,
                                   fg.int8, fg.uint8, fg.bool])
@pytest.mark.parametrize("shape", [(2, 3), (), (0, 4)])
def test_dtypes_and_shapes_round_trip(tmp_path, dtype, shape):
    t = random_tensor(shape, dtype)
    save({"t": t}, tmp_path / "c.safetensors")
    assert_same(t, load(tmp_path / "c.safetensors")["t"])


def test_non_contiguous_tensor_and_numpy_array(tmp_path):
    t = random_tensor((3, 4), fg.float32)
    arr = np.arange(6, dtype=np.uint16).reshape(2, 3)[:, ::2]
    save({"view": t.T[1:], "arr": arr, "scalar": np.float32(1.5)}, tmp_path / "c.st")
    out = load(tmp_path / "c.st")
    np.testing.assert_array_equal(out["view"].numpy(), t.numpy().T[1:])
    assert isinstance(out["arr"], np.ndarray) and out["arr"].dtype == np.uint16
    np.testing.assert_array_equal(out["arr"], arr)
    assert out["scalar"] == 1.5 and isinstance(out["scalar"], float)


def test_bare_tensor_and_empty_dict(tmp_path):
    t = random_tensor((2,), fg.float32)
    save(t, tmp_path / "t.st")
    assert_same(t, load(tmp_path / "t.st"))
    save({}, tmp_path / "e.st")
    assert load(tmp_path / "e.st") == {}


def test_fg_file_loads_with_safetensors_numpy(tmp_path):
    original = state()
    save(original, tmp_path / "c.st")
    flat = safetensors.numpy.load_file(tmp_path / "c.st")
    assert set(flat) == {"model.fc1.weight", "model.fc1.bias", "model.bn.num_batches_tracked",
                         "optimizer.state.0.step", "optimizer.state.0.exp_avg"}
    np.testing.assert_array_equal(flat["model.fc1.weight"], original["model"]["fc1.weight"].numpy())
    assert flat["model.bn.num_batches_tracked"].dtype == np.int64


def test_safetensors_numpy_file_loads_as_flat_dict(tmp_path):
    arrays = {"a.weight": np.random.default_rng(0).standard_normal((3, 2)).astype(np.float16),
              "b": np.array([1, -2, 3], dtype=np.int8), "flag": np.array(True)}
    safetensors.numpy.save_file(arrays, tmp_path / "foreign.st")
    out = load(tmp_path / "foreign.st")
    assert set(out) == set(arrays)
    for key, array in arrays.items():
        assert out[key].dtype == fg.dtypes.from_numpy_dtype(array.dtype)
        np.testing.assert_array_equal(out[key].numpy(), array)


def test_bfloat16_interop_with_torch(tmp_path):
    t = random_tensor((5,), fg.bfloat16)
    save({"w": t}, tmp_path / "fg.st")
    bits = safetensors.numpy.load_file(tmp_path / "fg.st")["w"]
    expected = torch.from_numpy(t.numpy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(bits, expected)
    safetensors.torch.save_file({"w": torch.from_numpy(t.numpy()).to(torch.bfloat16)}, tmp_path / "torch.st")
    assert_same(t, load(tmp_path / "torch.st")["w"])


def test_unsupported_content(tmp_path):
    with pytest.raises(CheckpointError, match="same name 'a.b'"):
        save({"a.b": fg.ones(1), "a": {"b": fg.ones(1)}}, tmp_path / "c.st")
    with pytest.raises(CheckpointError, match="cannot save a set .*at opt"):
        save({"opt": {1, 2}}, tmp_path / "c.st")
    with pytest.raises(CheckpointError, match="keys must be str or int"):
        save({(1, 2): 3}, tmp_path / "c.st")
    with pytest.raises(CheckpointError, match="dtype object"):
        save({"o": np.array([None])}, tmp_path / "c.st")
    assert not list(tmp_path.iterdir())


def test_unreadable_files(tmp_path):
    (tmp_path / "garbage.st").write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="garbage.st"):
        load(tmp_path / "garbage.st")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.st")
    safetensors.numpy.save_file({"u": np.zeros(2, np.uint16)}, tmp_path / "u16.st")
    with pytest.raises(CheckpointError, match="U16"):
        load(tmp_path / "u16.st")
    safetensors.numpy.save_file({"x": np.zeros(1)}, tmp_path / "bad.st", metadata={"fusegrad.structure": "{oops"})
    with pytest.raises(CheckpointError, match="damaged"):
        load(tmp_path / "bad.st")


def test_missing_safetensors_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(CheckpointError, match="pip install safetensors"):
        save({"x": fg.ones(1)}, tmp_path / "c.st")


def test_load_on_a_device(tmp_path):
    save({"x": fg.ones(2)}, tmp_path / "c.st")
    assert load(tmp_path / "c.st", device="cpu")["x"].device == "cpu"


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.st"
    old = {"w": random_tensor((64,), fg.float32), "epoch": 1}
    save(old, path)

    def torn_write(arrays, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", torn_write)
    with pytest.raises(OSError, match="disk full"):
        save({"w": fg.zeros(64), "epoch": 2}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.st"]
    assert_state_equal(old, load(path))


CHILD = """
import sys
import numpy as np
from fusegrad.io.checkpoint import save
weights = np.zeros(4_000_000, np.float32)
for version in range(1, 1000):
    weights.fill(version)
    save({"version": version, "w": weights}, sys.argv[1])
    print(version, flush=True)
"""


def test_killed_save_leaves_a_complete_checkpoint(tmp_path):
    path = tmp_path / "ckpt.st"
    save({"version": 0, "w": np.zeros(4_000_000, np.float32)}, path)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, env=env)
    try:
        while int(child.stdout.readline() or -1) not in (-1, 2):  # two saves have replaced the file
            pass
        deadline = time.monotonic() + 20
        while not list(tmp_path.glob(".ckpt.st.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)  # while the third save is writing
    finally:
        child.kill()
        child.wait()
    out = load(path)
    assert out["version"] >= 2
    assert (out["w"] == out["version"]).all(), "the checkpoint mixes two saves"
    save({"version": -1, "w": np.zeros(1)}, path)  # the next save removes what the killed one left
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.st"]

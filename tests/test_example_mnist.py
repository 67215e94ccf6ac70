"""The main job end to end on small synthetic IDX files (the real data set is not needed)."""
import gzip
import struct

import numpy as np
import pytest

from fusegrad.examples import mnist


def write_idx(folder, prefix, n, seed):
    """Learnable fake Fashion-MNIST: class c lights a 7x7 block at a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        r, col = divmod(int(c), 4)
        images[i, r * 7:(r + 1) * 7 + 3, col * 7:(col + 1) * 7] = 230
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 2049, n) + labels.tobytes())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fake-fashion")
    write_idx(folder, "train", 2048, 0)
    write_idx(folder, "t10k", 512, 1)
    return folder


def test_mlp_learns_and_checkpoints_resume(data_dir, tmp_path, capsys):
    ckpt = tmp_path / "run.safetensors"
    args = ["--data-dir", str(data_dir), "--epochs", "1", "--batch-size", "64", "--checkpoint", str(ckpt)]
    assert mnist.main(args) == 0
    out = capsys.readouterr().out
    first = float(out.strip().splitlines()[-1].split()[-1].rstrip("%"))
    assert first > 90.0, out
    assert "epoch 1: train loss" in out and ckpt.exists()
    assert mnist.main(args[:3] + ["2", "--resume", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "epoch 1:" not in out and "epoch 2:" in out


def test_cnn_runs_one_short_epoch(data_dir, capsys):
    assert mnist.main(["--data-dir", str(data_dir), "--model", "cnn", "--epochs", "1", "--limit", "256",
                       "--batch-size", "64"]) == 0
    assert "test accuracy" in capsys.readouterr().out


def test_resnet18_runs_a_few_steps(tmp_path, capsys):
    write_idx(tmp_path, "train", 64, 2)
    write_idx(tmp_path, "t10k", 16, 3)
    assert mnist.main(["--data-dir", str(tmp_path), "--model", "resnet18", "--epochs", "1", "--limit", "32",
                       "--batch-size", "16"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-2].startswith("epoch 1: train loss") and out[-1].startswith("test accuracy: ")
    assert 0.0 <= float(out[-1].split()[-1].rstrip("%")) <= 100.0


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--model", "resnet"], ["--lr", "-1"]])
def test_bad_arguments_exit_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as e:
        mnist.main(argv)
    assert e.value.code != 0
    assert "Traceback" not in capsys.readouterr().err


def test_missing_data_is_one_line_error(tmp_path, capsys):
    assert mnist.main(["--data-dir", str(tmp_path / "nowhere"), "--dataset", "mnist"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


REAL = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not __import__("os").path.isdir(REAL), reason="Debian's dataset-fashion-mnist is not installed")
def test_mlp_on_real_fashion_mnist_subset(capsys):
    """200 steps on the first 12,800 real training images must already classify 80% of the test set."""
    assert mnist.main(["--limit", "12800", "--epochs", "1", "--batch-size", "64"]) == 0
    accuracy = float(capsys.readouterr().out.strip().splitlines()[-1].split()[-1].rstrip("%"))
    assert accuracy >= 80.0

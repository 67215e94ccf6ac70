"""fg.tensorboard.SummaryWriter: every kind of summary read back with TensorBoard's own reader, a real
TensorBoard server listing the run, and the MNIST example's --tensorboard/--graph/--profile flags."""
import json
import queue
import re
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib

import numpy as np
import pytest

import fusegrad as fg
from fusegrad import nn
from fusegrad.examples import mnist
from tests.test_example_mnist import write_idx

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                        reason="the tensorboard package (extra fusegrad[tensorboard]) is not installed")


def read(folder):
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"tensors": 0, "scalars": 0,
                                                                         "images": 0, "histograms": 0})
    acc.Reload()
    return acc


def decode_png(data):
    """Pixels of an 8-bit, unfiltered PNG (what our encoder writes): (H, W, C) uint8."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[color]
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, 1 + width * channels)
    assert depth == 8 and (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, channels)


def test_scalars(tmp_path):
    with fg.tensorboard.SummaryWriter(tmp_path) as w:
        w.add_scalar("loss", 0.5, 0, walltime=100.0)
        w.add_scalar("loss", fg.tensor(0.25), 1)
        w.add_scalar("loss", np.float64(0.125), 2)
        w.add_scalar("exact", 1 / 3, 5, new_style=True, double_precision=True)
        with pytest.raises(fg.ShapeError, match="one value"):
            w.add_scalar("bad", fg.ones(2))
    acc = read(tmp_path)
    events = acc.Scalars("loss")
    assert [(e.step, e.value) for e in events] == [(0, 0.5), (1, 0.25), (2, 0.125)]
    assert events[0].wall_time == 100.0
    exact = acc.Tensors("exact")[0]
    assert exact.step == 5 and exact.tensor_proto.double_val[0] == 1 / 3


def test_add_scalars_writes_one_run_per_key(tmp_path):
    with fg.tensorboard.SummaryWriter(tmp_path) as w:
        for step in range(3):
            w.add_scalars("loss/split", {"train": 1.0 / (step + 1), "test": 2.0 / (step + 1)}, step)
    for key, scale in (("train", 1.0), ("test", 2.0)):
        events = read(tmp_path / f"loss_split_{key}").Scalars("loss/split")
        assert [e.value for e in events] == pytest.approx([scale, scale / 2, scale / 3])


def test_histograms(tmp_path):
    values = np.random.default_rng(0).standard_normal(1000)
    with fg.tensorboard.SummaryWriter(tmp_path) as w:
        w.add_histogram("default", fg.tensor(values.astype(np.float32)), 0)
        w.add_histogram("ten", values, 1, bins=10)
        w.add_histogram("few", values, 2, bins=100, max_bins=7)
        with pytest.raises(fg.ShapeError):
            w.add_histogram("empty", np.zeros(0), 0)
    acc = read(tmp_path)
    default = acc.Histograms("default")[0].histogram_value
    assert default.num == 1000 and sum(default.bucket) == 1000
    assert default.min == pytest.approx(values.min()) and default.max == pytest.approx(values.max())
    assert default.sum == pytest.approx(values.sum(), rel=1e-5)
    assert default.sum_squares == pytest.approx((values ** 2).sum(), rel=1e-5)
    assert list(default.bucket_limit) == sorted(default.bucket_limit)
    ten = acc.Histograms("ten")[0].histogram_value
    counts, edges = np.histogram(values, bins=10)
    assert list(ten.bucket) == counts.tolist() and list(ten.bucket_limit) == pytest.approx(edges[1:].tolist())
    few = acc.Histograms("few")[0].histogram_value
    assert len(few.bucket) <= 7 and sum(few.bucket) == 1000


def test_images(tmp_path):
    chw = np.random.default_rng(1).random((3, 5, 7)).astype(np.float32)
    hwc = np.random.default_rng(2).integers(0, 256, (4, 6, 4)).astype(np.uint8)
    gray = np.linspace(0, 1, 12).reshape(3, 4)
    with fg.tensorboard.SummaryWriter(tmp_path) as w:
        w.add_image("chw", fg.tensor(chw), 0)
        w.add_image("hwc", hwc, 0, dataformats="HWC")
        w.add_image("gray", gray, 0, dataformats="HW")
        with pytest.raises(fg.ShapeError):
            w.add_image("bad", np.zeros((5, 3, 3)))  # 5 channels
        with pytest.raises(ValueError):
            w.add_image("bad", gray, dataformats="NCHW")
    acc = read(tmp_path)
    image = acc.Images("chw")[0]
    assert (image.width, image.height) == (7, 5)
    pixels = decode_png(image.encoded_image_string)
    assert np.array_equal(pixels, np.round(chw.transpose(1, 2, 0).astype(np.float64) * 255).astype(np.uint8))
    assert np.array_equal(decode_png(acc.Images("hwc")[0].encoded_image_string), hwc)
    assert np.array_equal(decode_png(acc.Images("gray")[0].encoded_image_string)[:, :, 0],
                          np.round(gray * 255).astype(np.uint8))


def test_text_and_reopen_after_close(tmp_path):
    w = fg.tensorboard.SummaryWriter(tmp_path)
    w.add_text("notes", "**bold** and ünïcode", 3)
    w.close()
    w.add_text("notes", "after close", 4)  # like torch: a closed writer opens a new event file
    w.close()
    events = read(tmp_path).Tensors("notes")
    assert [(e.step, e.tensor_proto.string_val[0].decode()) for e in events] == [
        (3, "**bold** and ünïcode"), (4, "after close")]


def test_add_graph(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    with fg.tensorboard.SummaryWriter(tmp_path) as w:
        w.add_graph(model, fg.zeros(2, 1, 28, 28))
    graph = read(tmp_path).Graph()
    nodes = {n.name: n for n in graph.node}
    fc1 = nodes["Sequential/Linear[1]/forward"]
    assert fc1.op == "Linear"
    assert list(fc1.input) == ["Sequential/Flatten[0]/forward", "Sequential/Linear[1]/weight",
                               "Sequential/Linear[1]/bias"]
    assert [d.size for d in fc1.attr["_output_shapes"].list.shape[0].dim] == [2, 32]
    assert [d.size for d in nodes["Sequential/Linear[1]/weight"].attr["_output_shapes"].list.shape[0].dim] == [32, 784]
    assert list(nodes["Sequential/ReLU[2]/forward"].input) == ["Sequential/Linear[1]/forward"]
    assert list(nodes["output/output.0"].input) == ["Sequential/Linear[3]/forward"]
    assert list(nodes["Sequential/Flatten[0]/forward"].input) == ["input/input.0"]


def test_missing_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard.summary.writer.event_file_writer", None)
    with pytest.raises(fg.Error, match=r"pip install 'fusegrad\[tensorboard\]'"):
        fg.tensorboard.SummaryWriter(tmp_path)


def pump(stream, lines):
    """Hand a process's output lines to the test thread, which waits on them with a timeout."""
    for line in stream:
        lines.put(line)


def test_tensorboard_server_lists_the_run(tmp_path):
    with fg.tensorboard.SummaryWriter(tmp_path / "run1") as w:
        w.add_scalar("loss", 1.0, 0)
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path), "--host",
                               "127.0.0.1", "--port", "0", "--load_fast", "false"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=pump, args=(server.stderr, lines), daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        port = None
        while port is None:  # TensorBoard prints "TensorBoard x.y.z at http://127.0.0.1:PORT/ ..."
            assert server.poll() is None, "tensorboard exited"
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail("tensorboard did not start in 60 s")
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            port = int(found.group(1)) if found else None
        runs = []
        while "run1" not in runs:
            assert time.monotonic() < deadline, f"run not listed in 60 s: {runs}"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=10) as response:
                runs = json.loads(response.read())
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_mnist_example_logs_draws_and_profiles(tmp_path, capsys):
    write_idx(tmp_path, "train", 256, 0)
    write_idx(tmp_path, "t10k", 128, 1)
    logdir, picture = tmp_path / "tb", tmp_path / "mlp.svg"
    assert mnist.main(["--data-dir", str(tmp_path), "--epochs", "2", "--limit", "256", "--batch-size", "64",
                       "--tensorboard", str(logdir), "--graph", str(picture), "--profile"]) == 0
    out = capsys.readouterr().out
    assert picture.read_text().lstrip().startswith("<?xml") and "Linear" in picture.read_text()
    assert out.count("kernel profile of epoch") == 1  # one epoch is profiled
    table = out.split("kernel profile of epoch 1 (training steps):\n")[1]
    assert table.splitlines()[0].split()[:4] == ["kernel", "op", "device", "calls"]
    assert re.search(r"^\d+ launches of \d+ kernels", table, re.M)
    acc = read(logdir)
    assert [e.step for e in acc.Scalars("loss/train")] == [1, 2]
    assert [e.step for e in acc.Scalars("accuracy/test")] == [1, 2]
    lrs = [e.value for e in acc.Scalars("learning_rate")]
    assert lrs[0] > lrs[1] >= 0  # cosine decay
    tags = acc.Tags()["histograms"]
    assert {"weights/1.weight", "weights/1.bias", "weights/5.weight"} <= set(tags)
    assert any(n.op == "Linear" for n in acc.Graph().node)
    with pytest.raises(SystemExit):
        mnist.main(["--profile", "--graph"])  # --graph needs a path

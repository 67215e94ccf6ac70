"""IDX reading and validation, MNIST/FashionMNIST, and downloading from a local HTTP server."""
import functools
import gzip
import hashlib
import http.server
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

import fusegrad as fg
from fusegrad.data import DataLoader, DatasetError, DownloadError, read_idx
from fusegrad.data.datasets import MNIST, FashionMNIST
from fusegrad.data.download import fetch

CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B, np.dtype(np.int32): 0x0C,
         np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file's bytes, written independently of the reader under test."""
    header = bytes([0, 0, CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def fake_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def write_dataset(folder: Path, gz: bool = True, train: int = 12, test: int = 5) -> dict[str, np.ndarray]:
    """The four MNIST files of a small fake dataset; returns the arrays by file stem."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = fake_split(n, seed)
        arrays[f"{split}-images-idx3-ubyte"], arrays[f"{split}-labels-idx1-ubyte"] = images, labels
    for stem, array in arrays.items():
        write(folder / (stem + (".gz" if gz else "")), idx_bytes(array))
    return arrays


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server: (folder it serves, its base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    """A local address nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.gz"))}


# ---- IDX reader ------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype,shape", [(np.uint8, (4, 28, 28)), (np.int32, (5,)), (np.float32, (2, 3)),
                                         (np.int16, (0, 2)), (np.float64, (3, 1, 2))])
def test_idx_round_trip(tmp_path, suffix, dtype, shape):
    array = (np.random.default_rng(0).standard_normal(shape) * 100).astype(dtype)
    path = write(tmp_path / f"a.idx{suffix}", idx_bytes(array))
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype).newbyteorder("=") and out.shape == shape
    np.testing.assert_array_equal(out, array)


def test_idx_wrong_magic_names_the_file(tmp_path):
    path = write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: wrong magic number 2049.*2051"):
        read_idx(path, 2051)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_truncated(tmp_path, suffix):
    data = idx_bytes(np.ones((10, 28, 28), np.uint8))
    path = write(tmp_path / f"images{suffix}", data[:-100])
    with pytest.raises(DatasetError, match=rf"images{suffix}: truncated"):
        read_idx(path)


def test_idx_damaged_gzip_stream(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.ones((10, 28, 28), np.uint8)))[:-20])
    with pytest.raises(DatasetError, match="images.gz"):
        read_idx(path)


@pytest.mark.parametrize("content,message", [(b"hello world, not idx", "not an IDX file"), (b"\0\0", "not an IDX"),
                                             (b"\0\0\x08\x03\0\0", "truncated IDX header"),
                                             (idx_bytes(np.zeros(4, np.uint8)) + b"extra", "longer than")])
def test_idx_malformed(tmp_path, content, message):
    path = write(tmp_path / "f", content)
    with pytest.raises(DatasetError, match=message):
        read_idx(path)


def test_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# ---- MNIST / FashionMNIST from local files ----------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_a_folder(tmp_path, gz):
    arrays = write_dataset(tmp_path / "d", gz=gz)
    train, test = MNIST(tmp_path / "d"), MNIST(tmp_path / "d", train=False)
    assert (len(train), len(test)) == (12, 5)
    np.testing.assert_array_equal(train.data, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(test.targets, arrays["t10k-labels-idx1-ubyte"])
    assert train.data.dtype == np.uint8 and train.targets.dtype == np.int64
    image, label = train[3]
    assert image.shape == (1, 28, 28) and image.dtype == fg.float32 and isinstance(label, int)
    np.testing.assert_allclose(image.numpy()[0], arrays["train-images-idx3-ubyte"][3] / 255.0, rtol=1e-6)
    assert label == arrays["train-labels-idx1-ubyte"][3]


def test_mnist_batches_through_the_loader(tmp_path):
    arrays = write_dataset(tmp_path)
    ds = MNIST(tmp_path)
    loader = DataLoader(ds, batch_size=5, shuffle=True, seed=0)
    order = loader.order(0)
    before = fg.memory_stats()["allocations"]
    images, labels = next(iter(loader))
    assert images.shape == (5, 1, 28, 28) and images.dtype == fg.float32 and labels.dtype == fg.int64
    np.testing.assert_allclose(images.numpy()[:, 0], arrays["train-images-idx3-ubyte"][order[:5]] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), arrays["train-labels-idx1-ubyte"][order[:5]])
    batches = list(loader)
    assert [len(y) for _, y in batches] == [5, 5, 2]
    before = fg.memory_stats()["allocations"]
    ds.get_batch(order[:5])
    assert fg.memory_stats()["allocations"] - before == 2


def test_mismatched_counts(tmp_path):
    images, _ = fake_split(4)
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(images))
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DatasetError, match="4 images but .*train-labels-idx1-ubyte.gz holds 3 labels"):
        MNIST(tmp_path)


def test_wrong_image_size_and_label_range(tmp_path):
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((2, 27, 28), np.uint8)))
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(DatasetError, match=r"shape \(27, 28\)"):
        MNIST(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.array([3, 10], np.uint8)))
    with pytest.raises(DatasetError, match=r"label 10 outside \[0, 10\)"):
        MNIST(tmp_path)


def test_images_and_labels_swapped(tmp_path):
    images, labels = fake_split(2)
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(labels))
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(images))
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte: wrong magic number 2049"):
        MNIST(tmp_path)


def test_missing_files_tell_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(FashionMNIST, "system_roots", (str(tmp_path / "system"),))
    with pytest.raises(DatasetError, match=r"apt-get install -y dataset-fashion-mnist.*download=True") as info:
        FashionMNIST()
    assert str(tmp_path / "cache" / "datasets" / "fashion-mnist") in str(info.value)
    assert str(tmp_path / "system") in str(info.value)
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte") as info:
        MNIST(tmp_path / "empty", train=False)
    assert "download=True" in str(info.value) and "apt-get" not in str(info.value)


def test_fashion_mnist_searches_the_system_folder_after_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(FashionMNIST, "system_roots", (str(tmp_path / "system"),))
    write_dataset(tmp_path / "system", test=3)
    assert FashionMNIST(train=False).root == tmp_path / "system"
    write_dataset(tmp_path / "cache" / "datasets" / "fashion-mnist", test=4)
    ds = FashionMNIST(train=False)
    assert ds.root == tmp_path / "cache" / "datasets" / "fashion-mnist" and len(ds) == 4


# ---- download ---------------------------------------------------------------------------------

def test_download_verifies_and_loads(server, tmp_path, monkeypatch):
    served, url = server
    arrays = write_dataset(served)
    monkeypatch.setattr(MNIST, "mirrors", (closed_port_url(), url))  # the dead mirror is skipped
    monkeypatch.setattr(MNIST, "resources", digests(served))
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", str(tmp_path / "cache"))
    ds = MNIST(download=True)
    root = tmp_path / "cache" / "datasets" / "mnist"
    assert ds.root == root
    assert sorted(p.name for p in root.iterdir()) == sorted(digests(served))  # all four, no temporaries
    np.testing.assert_array_equal(ds.data, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(MNIST(train=False).targets, arrays["t10k-labels-idx1-ubyte"])
    (served / "train-images-idx3-ubyte.gz").unlink()  # present files are not fetched again
    assert len(MNIST(download=True)) == 12


def test_checksum_mismatch_leaves_nothing_behind(server, tmp_path, monkeypatch):
    served, url = server
    write_dataset(served)
    wrong = {name: hashlib.sha256(b"other").hexdigest() for name in digests(served)}
    monkeypatch.setattr(MNIST, "mirrors", (url,))
    monkeypatch.setattr(MNIST, "resources", wrong)
    with pytest.raises(DownloadError, match="checksum mismatch") as info:
        MNIST(tmp_path / "root", download=True)
    assert "\n" not in str(info.value)
    assert list((tmp_path / "root").iterdir()) == []


def test_offline_gives_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", (closed_port_url(), closed_port_url()))
    with pytest.raises(DownloadError, match=r"could not download train-images-idx3-ubyte.gz .*no network") as info:
        MNIST(tmp_path, download=True)
    message = str(info.value)
    assert "\n" not in message and "refused" in message.lower()
    assert isinstance(info.value, DatasetError) and isinstance(info.value, fg.Error)
    assert list(tmp_path.iterdir()) == []


def test_http_error_and_timeout_are_reported(server, tmp_path, monkeypatch):
    _, url = server  # serves an empty folder: 404
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        monkeypatch.setattr(MNIST, "mirrors", (url, f"http://127.0.0.1:{silent.getsockname()[1]}/"))
        monkeypatch.setattr(MNIST, "timeout", 0.3)
        with pytest.raises(DownloadError, match=r"HTTP 404.*timed out"):
            MNIST(tmp_path, download=True)


def test_fetch_without_a_digest_and_quietly(server, tmp_path, capsys):
    served, url = server
    (served / "blob.bin").write_bytes(b"x" * 3_000_000)  # several read chunks
    path = fetch("blob.bin", [url], tmp_path / "out", sha256=None, quiet=True)
    assert path == tmp_path / "out" / "blob.bin" and path.read_bytes() == b"x" * 3_000_000
    assert capsys.readouterr().err == ""
    fetch("blob.bin", [url], tmp_path / "out", sha256=hashlib.sha256(b"x" * 3_000_000).hexdigest().upper())
    assert "downloading " + url + "blob.bin" in capsys.readouterr().err


# ---- the real Fashion-MNIST (Debian's dataset-fashion-mnist) -----------------------------------

@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="dataset-fashion-mnist is not installed "
                    "(apt-get install -y dataset-fashion-mnist)")
def test_real_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", str(tmp_path))  # an empty cache: the system folder is used
    train, test = FashionMNIST(), FashionMNIST(train=False)
    assert train.root == DEBIAN_FASHION
    assert train.data.shape == (60000, 28, 28) and test.data.shape == (10000, 28, 28)
    assert np.bincount(train.targets).tolist() == [6000] * 10
    assert np.bincount(test.targets).tolist() == [1000] * 10
    images, labels = next(iter(DataLoader(test, batch_size=256)))
    assert images.shape == (256, 1, 28, 28)
    np.testing.assert_allclose(images.numpy()[:, 0], test.data[:256] / 255.0, rtol=1e-6)
    assert labels.numpy().tolist() == test.targets[:256].tolist()

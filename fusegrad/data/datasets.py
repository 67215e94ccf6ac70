"""MNIST and Fashion-MNIST read from their IDX files (gzipped or raw), with optional download.

The images stay on the host as one uint8 array (`data`). The first batch converts the whole split to
float32 in [0, 1] with one kernel and keeps the result on the host, so that afterwards each batch is
just a numpy gather of its rows and one upload per tensor, with no per-batch conversion kernel.
With a `transform`, samples are the raw uint8 (28, 28) images passed through it on the host (the input
pipeline, as torchvision's datasets pass PIL images), and a batch stacks the transformed samples.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import dtypes, flags
from ..tensor import tensor
from .collate import HostArray, from_host, host_collate
from .dataset import Dataset, DatasetError
from .download import DEFAULT_TIMEOUT, fetch
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

IMAGE_SIZE = 28


def default_root(name: str) -> Path:
    """Where datasets are cached and downloaded to: <fusegrad cache dir>/datasets/<name>."""
    return flags.cache_dir() / "datasets" / name


def find_file(directory: Path, stem: str) -> Path | None:
    """`stem` or `stem.gz` inside `directory`, raw first (it reads faster)."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_images_and_labels(images_path: Path, labels_path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read and cross-check one split: uint8 images (N, 28, 28) and int64 labels (N,)."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DatasetError(f"{images_path}: images of shape {images.shape[1:]}, expected ({IMAGE_SIZE}, {IMAGE_SIZE})")
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
                           f"{labels.shape[0]} labels")
    if labels.size and int(labels.max()) >= num_classes:
        raise DatasetError(f"{labels_path}: label {int(labels.max())} outside [0, {num_classes})")
    return images, labels.astype(np.int64)


class MNIST(Dataset):
    """The MNIST handwritten digits: 60000 training and 10000 test images of 28x28 pixels, 10 classes.

    `root` is the folder holding the IDX files (default: ~/.cache/fusegrad/datasets/mnist). With
    `download=True`, missing files are fetched from `mirrors` and checked against `resources`.
    Samples are `(image, label)`: a float32 tensor (1, 28, 28) in [0, 1] and a Python int; with
    `transform` / `target_transform`, the uint8 (28, 28) numpy image and the int passed through them.
    `data` (uint8, N x 28 x 28) and `targets` (int64, N) are the host numpy arrays.
    """

    name = "mnist"
    mirrors: Sequence[str] = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                              "https://storage.googleapis.com/cvdf-datasets/mnist/")
    # SHA-256 of the gzipped files as the mirrors serve them (identical on every mirror listed)
    resources: dict[str, str | None] = {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    }
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]
    system_roots: Sequence[str] = ()  # read-only folders searched after the cache when root is None
    install_hint = ""
    timeout = DEFAULT_TIMEOUT

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True,
                 transform: Callable[[np.ndarray], Any] | None = None,
                 target_transform: Callable[[int], Any] | None = None, download: bool = False):
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        split = "train" if train else "t10k"
        self._stems = (f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte")
        self.root = self._locate(root, download)
        images_path, labels_path = (find_file(self.root, stem) for stem in self._stems)
        self.data, self.targets = load_images_and_labels(images_path, labels_path, len(self.classes))
        self._images: np.ndarray | None = None

    def _search_path(self, root: str | os.PathLike | None) -> list[Path]:
        if root is not None:  # torchvision's layout (root/MNIST/raw, where it downloads to), then root itself
            root = Path(root).expanduser()
            return [root / type(self).__name__ / "raw", root]
        return [default_root(self.name), *(Path(r) for r in self.system_roots)]

    def _locate(self, root: str | os.PathLike | None, download: bool) -> Path:
        """The first folder of the search path that holds both files of the split (downloading if asked)."""
        folders = self._search_path(root)
        for folder in folders:
            if all(find_file(folder, stem) is not None for stem in self._stems):
                return folder
        if download:
            # the layout's folders (root/MNIST/raw) that the download makes
            made = [f for f in (folders[0], folders[0].parent) if not f.exists()] if root is not None else []
            try:
                self.download(folders[0])
            except BaseException:
                for folder in made:  # a failed download leaves no folders behind it either
                    if folder.is_dir() and not any(folder.iterdir()):
                        folder.rmdir()
                raise
            return folders[0]
        where = " or ".join(str(f) for f in folders)
        missing = ", ".join(f"{stem}[.gz]" for stem in self._stems)
        ways = "; or ".join(w for w in (self.install_hint, "pass download=True") if w)
        raise DatasetError(f"{type(self).__name__}: {missing} not found in {where}; {ways}")

    def download(self, folder: str | os.PathLike) -> None:
        """Fetch every file of `resources` that `folder` lacks (raw or gzipped) from the mirrors."""
        for filename, sha256 in self.resources.items():
            if find_file(Path(folder), filename.removesuffix(".gz")) is None:
                fetch(filename, self.mirrors, folder, sha256, timeout=self.timeout)

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def _normalized(self) -> np.ndarray:
        """All images as float32 (N, 1, 28, 28) in [0, 1] on the host, converted once by a kernel."""
        if self._images is None:
            images = tensor(self.data).reshape(len(self), 1, IMAGE_SIZE, IMAGE_SIZE)
            self._images = (images.cast(dtypes.float32) / 255.0).numpy()
        return self._images

    @property
    def _plain(self) -> bool:
        return self.transform is None and self.target_transform is None

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if self._plain:
            return tensor(self._normalized()[index]), int(self.targets[index])
        return self._transformed(int(index))

    def _transformed(self, index: int) -> tuple[Any, Any]:
        image, target = self.data[index], int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def host_batch(self, indices: np.ndarray) -> Any:
        """The batch on the host: gathered rows, or the transformed samples collated."""
        if self._plain:
            return (HostArray(np.take(self._normalized(), indices, axis=0), "float32"),
                    HostArray(np.take(self.targets, indices, axis=0), "int64"))
        return host_collate([self._transformed(int(i)) for i in indices])

    def get_batch(self, indices: np.ndarray) -> Any:
        """Images (N, 1, 28, 28) float32 in [0, 1] and int64 labels (N,): one gather and one upload each
        (with transforms: the transformed samples collated, one upload per leaf)."""
        return from_host(self.host_batch(indices))

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}(split={split}, samples={len(self)}, root={self.root})"


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: MNIST's format and sizes, with 10 classes of clothing.

    When `root` is None the search path is ~/.cache/fusegrad/datasets/fashion-mnist, then
    /usr/share/datasets/fashion-mnist (Debian's `dataset-fashion-mnist` package).
    """

    name = "fashion-mnist"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    # SHA-256 of the gzipped files as the mirror serves them. Debian's package recompressed them
    # (same data, other bytes), so files found in system_roots are validated by structure only.
    resources = {
        "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
        "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
        "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
        "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
    }
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
    system_roots = ("/usr/share/datasets/fashion-mnist",)
    install_hint = "`apt-get install -y dataset-fashion-mnist` installs them into /usr/share/datasets/fashion-mnist"

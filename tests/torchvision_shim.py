"""The slice of torchvision that PyTorch's MNIST example uses, for running the example on torch here
(torchvision's wheels do not install beside torch 2.13): MNIST from torchvision's folder layout
(root/MNIST/raw/*-ubyte) and the transforms Compose, ToTensor and Normalize. Test support only."""
from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from fusegrad.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx


class MNIST(torch.utils.data.Dataset):
    def __init__(self, root: str, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False):
        raw = Path(root) / "MNIST" / "raw"
        split = "train" if train else "t10k"
        self.data = read_idx(raw / f"{split}-images-idx3-ubyte", IMAGES_MAGIC)
        self.targets = torch.tensor(read_idx(raw / f"{split}-labels-idx1-ubyte", LABELS_MAGIC).astype(np.int64))
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        image, target = self.data[i], int(self.targets[i])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target


class Compose:
    def __init__(self, steps: list[Callable]):
        self.steps = steps

    def __call__(self, x: Any) -> Any:
        for step in self.steps:
            x = step(x)
        return x


class ToTensor:
    def __call__(self, image: np.ndarray) -> torch.Tensor:
        return torch.tensor(image, dtype=torch.float32).div(255).unsqueeze(0)


class Normalize:
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        self.mean, self.std = mean, std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - torch.tensor(self.mean).view(-1, 1, 1)) / torch.tensor(self.std).view(-1, 1, 1)


module = types.ModuleType("torchvision")
module.datasets = types.SimpleNamespace(MNIST=MNIST)
module.transforms = types.SimpleNamespace(Compose=Compose, ToTensor=ToTensor, Normalize=Normalize)

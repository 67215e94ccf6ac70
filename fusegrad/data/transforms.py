"""Per-sample transforms, named like torchvision.transforms (Compose, ToTensor, Normalize, ...).

They are the input pipeline, not model compute: on numpy arrays (what datasets yield) they run on the
host, sample by sample, inside DataLoader workers when there are any, and the loader uploads the
collated batch in one copy. Given fusegrad tensors, Normalize, RandomCrop and RandomHorizontalFlip use
tensor ops instead. Random choices come from numpy's global generator (`np.random`), which each
DataLoader worker seeds from its worker seed, as torch seeds its own.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Sequence

import numpy as np

from ..tensor import Tensor, tensor


class Compose:
    """Apply transforms one after another."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]):
        self.transforms = list(transforms)

    def __call__(self, sample: Any) -> Any:
        for transform in self.transforms:
            sample = transform(sample)
        return sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(t) for t in self.transforms)})"


class ToTensor:
    """An HWC (or HW) image array, or a PIL image, as a CHW float32 host array; uint8 is scaled to [0, 1].

    Unlike torchvision's, the result is a numpy array (the DataLoader uploads whole batches); wrap it in
    `fg.tensor` to use it directly.
    """

    def __call__(self, picture: Any) -> np.ndarray:
        if type(picture).__module__.startswith("PIL."):
            picture = np.asarray(picture)
        if not isinstance(picture, np.ndarray):
            raise TypeError(f"picture should be a PIL Image or ndarray, got {type(picture).__name__}")
        if picture.ndim not in (2, 3):
            raise ValueError(f"picture should be 2 or 3 dimensional, got {picture.ndim} dimensions")
        image = picture[:, :, None] if picture.ndim == 2 else picture
        image = np.ascontiguousarray(image.transpose(2, 0, 1))
        if image.dtype == np.uint8:
            return image.astype(np.float32) / np.float32(255)
        return image

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Normalize:
    """(x - mean) / std per channel of a (..., C, H, W) float array or tensor."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False):
        self.mean = list(mean) if isinstance(mean, Sequence) else [float(mean)]
        self.std = list(std) if isinstance(std, Sequence) else [float(std)]
        if any(s == 0 for s in self.std):
            raise ValueError(f"std evaluated to zero after conversion to float, leading to division by zero: {std}")
        self.inplace = inplace

    def __call__(self, image: np.ndarray | Tensor) -> np.ndarray | Tensor:
        if image.ndim < 3:
            raise ValueError(f"Expected tensor to be a tensor image of size (..., C, H, W). Got {tuple(image.shape)}")
        if isinstance(image, Tensor):
            if not image.dtype.is_floating_point:
                raise TypeError(f"Input tensor should be a float tensor. Got {image.dtype.name}")
            mean = tensor(self.mean, dtype=image.dtype, device=image.device).reshape(-1, 1, 1)
            std = tensor(self.std, dtype=image.dtype, device=image.device).reshape(-1, 1, 1)
            return (image - mean) / std
        if not np.issubdtype(image.dtype, np.floating):
            raise TypeError(f"Input array should be a float array. Got {image.dtype}")
        mean = np.asarray(self.mean, dtype=image.dtype).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=image.dtype).reshape(-1, 1, 1)
        if self.inplace:
            image -= mean
            image /= std
            return image
        return (image - mean) / std

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    if len(size) == 1:
        return int(size[0]), int(size[0])
    if len(size) != 2:
        raise ValueError("Please provide only two dimensions (h, w) for size.")
    return int(size[0]), int(size[1])


def _padding(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) from torchvision's 1, 2 or 4 padding values."""
    values = [padding] if isinstance(padding, numbers.Number) else list(padding)
    if len(values) == 1:
        return (int(values[0]),) * 4  # type: ignore[return-value]
    if len(values) == 2:
        return int(values[0]), int(values[1]), int(values[0]), int(values[1])
    if len(values) == 4:
        return int(values[0]), int(values[1]), int(values[2]), int(values[3])
    raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not a {len(values)} element tuple")


class RandomCrop:
    """A random (h, w) window of a (..., H, W) array or tensor, after optional zero (or `fill`) padding."""

    def __init__(self, size: int | Sequence[int], padding: int | Sequence[int] | None = None,
                 pad_if_needed: bool = False, fill: float = 0):
        self.size = _pair(size)
        self.padding = None if padding is None else _padding(padding)
        self.pad_if_needed = pad_if_needed
        self.fill = fill

    def _pad(self, image: Any, left: int, top: int, right: int, bottom: int) -> Any:
        if isinstance(image, Tensor):
            return image.pad((left, right, top, bottom), self.fill)
        widths = [(0, 0)] * (image.ndim - 2) + [(top, bottom), (left, right)]
        return np.pad(image, widths, constant_values=self.fill)

    def __call__(self, image: np.ndarray | Tensor) -> np.ndarray | Tensor:
        if self.padding is not None:
            image = self._pad(image, *self.padding)
        height, width = image.shape[-2:]
        h, w = self.size
        if self.pad_if_needed and (height < h or width < w):
            image = self._pad(image, max(0, w - width), max(0, h - height), max(0, w - width), max(0, h - height))
            height, width = image.shape[-2:]
        if height < h or width < w:
            raise ValueError(f"Required crop size {(h, w)} is larger than input image size {(height, width)}")
        top = int(np.random.randint(0, height - h + 1))
        left = int(np.random.randint(0, width - w + 1))
        return image[..., top:top + h, left:left + w]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror the last axis of an array or tensor with probability p."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image: np.ndarray | Tensor) -> np.ndarray | Tensor:
        if np.random.random() >= self.p:
            return image
        if isinstance(image, Tensor):
            return image.flip(-1)
        return np.ascontiguousarray(image[..., ::-1])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class Lambda:
    """A user function as a transform."""

    def __init__(self, lambd: Callable[[Any], Any]):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, sample: Any) -> Any:
        return self.lambd(sample)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

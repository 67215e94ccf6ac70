"""Summary protos in the formats TensorBoard's plugins read, built with the `tensorboard` package's
own protobufs (this module needs it installed; `SummaryWriter` imports it only when created).

Values arrive on the host (`Tensor.numpy()`): a summary is a file format, so its statistics (a
histogram's bucket counts, an image's bytes) are computed here like any serialization, not as ops.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from tensorboard.compat.proto import types_pb2
from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.plugins.text import metadata as text_metadata

from ..errors import ShapeError
from ..tensor import Tensor
from .png import encode_png

IMAGE_FORMATS = ("CHW", "HWC", "HW")


def host_array(value: Any) -> np.ndarray:
    """A numpy copy of a tensor (realized now), array or nested list."""
    if isinstance(value, Tensor):
        return value.detach().numpy()
    return np.asarray(value)


def scalar_of(value: Any, tag: str) -> float:
    array = host_array(value)
    if array.size != 1:
        raise ShapeError(f"add_scalar('{tag}') needs one value, got shape {array.shape}")
    return float(array.reshape(()))


def scalar(tag: str, value: float, new_style: bool = False, double_precision: bool = False) -> Summary.Value:
    """A scalar: old style (`simple_value`) or new style (a 0-d tensor with the scalars plugin's metadata)."""
    if not new_style:
        return Summary.Value(tag=tag, simple_value=value)
    proto = (TensorProto(dtype=types_pb2.DT_DOUBLE, double_val=[value]) if double_precision
             else TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value]))
    proto.tensor_shape.CopyFrom(TensorShapeProto())
    return Summary.Value(tag=tag, tensor=proto, metadata=scalar_metadata.create_summary_metadata(tag, ""))


@functools.lru_cache(maxsize=1)
def tensorflow_edges() -> np.ndarray:
    """TensorFlow's default histogram bucket edges: +-1e-12 growing by 10% per bucket to +-1e20, and 0."""
    positive = [1e-12]
    while positive[-1] < 1e20:
        positive.append(positive[-1] * 1.1)
    return np.array([-v for v in reversed(positive)] + [0.0] + positive)


def histogram(tag: str, values: Any, bins: Any = "tensorflow", max_bins: int | None = None) -> Summary.Value:
    """Bucket counts of the values (bins: "tensorflow", a count, edges, or a numpy bin rule like "auto")."""
    data = host_array(values).astype(np.float64).reshape(-1)
    if data.size == 0:
        raise ShapeError(f"add_histogram('{tag}') needs at least one value, got none")
    if not np.isfinite(data).all():
        raise ValueError(f"add_histogram('{tag}'): values contain NaN or infinity")
    edges = tensorflow_edges() if isinstance(bins, str) and bins == "tensorflow" else bins
    counts, limits = np.histogram(data, bins=edges)
    if max_bins is not None and len(counts) > max_bins:
        starts = np.arange(0, len(counts), math.ceil(len(counts) / max_bins))  # merge neighbouring buckets
        counts = np.add.reduceat(counts, starts)
        limits = np.append(limits[starts], limits[-1])
    used = np.nonzero(counts)[0]
    first, last = int(used[0]), int(used[-1]) + 1
    # bucket i holds values up to bucket_limit[i]; TensorBoard takes the outer edges from min and max
    proto = HistogramProto(min=float(data.min()), max=float(data.max()), num=float(data.size),
                           sum=float(data.sum()), sum_squares=float(data @ data),
                           bucket_limit=limits[first + 1:last + 1].tolist(), bucket=counts[first:last].tolist())
    return Summary.Value(tag=tag, histo=proto)


def image(tag: str, img: Any, dataformats: str = "CHW") -> Summary.Value:
    """A PNG image from (C, H, W), (H, W, C) or (H, W) values: floats in [0, 1], or uint8 in [0, 255]."""
    if dataformats not in IMAGE_FORMATS:
        raise ValueError(f"dataformats must be one of {IMAGE_FORMATS}, got {dataformats!r}")
    pixels = host_array(img)
    if pixels.ndim != len(dataformats):
        raise ShapeError(f"add_image('{tag}'): dataformats {dataformats} needs a {len(dataformats)}-d image, "
                         f"got shape {pixels.shape}")
    if dataformats == "HW":
        pixels = pixels[:, :, None]
    elif dataformats == "CHW":
        pixels = pixels.transpose(1, 2, 0)
    if pixels.shape[2] not in (1, 2, 3, 4):
        raise ShapeError(f"add_image('{tag}'): an image has 1 to 4 channels, got {pixels.shape[2]} "
                         f"(shape {pixels.shape} as HWC)")
    if pixels.dtype != np.uint8:
        scale = 255.0 if pixels.dtype.kind == "f" else 1.0  # like torch: floats are in [0, 1]
        pixels = np.clip(np.nan_to_num(pixels.astype(np.float64) * scale), 0, 255).round().astype(np.uint8)
    height, width, channels = pixels.shape
    encoded = encode_png(np.ascontiguousarray(pixels))
    return Summary.Value(tag=tag, image=Summary.Image(height=height, width=width, colorspace=channels,
                                                      encoded_image_string=encoded))


def text(tag: str, text_string: str) -> Summary.Value:
    """Text (Markdown) for the text plugin: a string tensor with the plugin's metadata."""
    proto = TensorProto(dtype=types_pb2.DT_STRING, string_val=[str(text_string).encode("utf-8")],
                        tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
    return Summary.Value(tag=tag, tensor=proto, metadata=text_metadata.create_summary_metadata(tag, ""))

"""Convolution benchmark over shape families: fusegrad against PyTorch, forward and both gradients.

    python3 benchmarks/conv.py [--threads 1,2] [--rounds 5] [--seconds 0.3]   # CPU: oneDNN's convolutions
    python3 benchmarks/conv.py --device cuda --batch 32                       # CUDA: cuDNN, TF32 off
    python3 benchmarks/conv.py --quick                                        # a smoke run: 4 shapes
    python3 benchmarks/conv.py --threads 1 --shapes depthwise,grouped         # shapes whose name has one of these

The shapes are layers of real networks (`SHAPES`: LeNet-style and the example's MNIST nets, AlexNet's
first layer, VGG-16, ResNet-18/50, MobileNetV2's depthwise and pointwise layers, a dilated layer, a
ResNeXt grouped layer, U-Net and DCGAN decoders' transposed convolutions), each at `--batch` images
(the MNIST nets at 8x that). For each shape three directions are timed: the forward
(`F.conv2d`/`F.conv_transpose2d`), the input gradient and the weight gradient. fusegrad computes a
gradient as a user's backward does, `fg.autograd.grad` of the convolution with a given output
gradient, of which only the gradient's kernels run (the forward is never realized); PyTorch runs
`aten.convolution_backward` with the output mask of that one gradient, its oneDNN (CPU) or cuDNN
(CUDA) kernel. Each thread count runs in its own child process on that many CPUs (the method of
mnist_mlp.py); the two contestants take turns for `--rounds` rounds of `--seconds / --rounds` each
after a warm-up that compiles fusegrad's kernels. Ratios are PyTorch's time / fusegrad's (above 1:
fusegrad is faster); per direction the geometric mean over the shapes and the worst shape are
printed. float32 on both sides (PyTorch's TF32 off on CUDA). The last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (the benchmarks folder is not a package)
from common import Contestant  # noqa: E402

DIRECTIONS = ("forward", "input_grad", "weight_grad")


@dataclass(frozen=True)
class Shape:
    """One convolution layer: input channels and size, output channels, kernel, stride, padding,
    dilation, groups; `transposed` for a transposed convolution; `images` scales the batch."""
    name: str
    c_in: int
    size: int
    c_out: int
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    transposed: bool = False
    images: int = 1

    def flop(self, batch: int) -> float:
        """Multiply-adds x 2 of the forward (each gradient has as many)."""
        n = batch * self.images
        if self.transposed:
            return 2.0 * n * self.c_in * self.size ** 2 * (self.c_out // self.groups) * self.kernel ** 2
        out = (self.size + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) // self.stride + 1
        return 2.0 * n * self.c_out * out ** 2 * (self.c_in // self.groups) * self.kernel ** 2


SHAPES = [
    Shape("lenet c1 5x5", 1, 28, 6, 5, padding=2, images=8),
    Shape("mnist cnn c1 3x3", 1, 28, 32, 3, images=8),
    Shape("mnist cnn c2 3x3", 32, 13, 64, 3, images=8),
    Shape("small cnn c2 5x5", 16, 12, 32, 5, images=8),
    Shape("alexnet c1 11x11/4", 3, 224, 64, 11, stride=4, padding=2),
    Shape("vgg16 c3 3x3", 128, 56, 128, 3, padding=1),
    Shape("resnet18 stem 7x7/2", 3, 224, 64, 7, stride=2, padding=3),
    Shape("resnet18 layer1 3x3", 64, 56, 64, 3, padding=1),
    Shape("resnet18 layer2 3x3/2", 64, 56, 128, 3, stride=2, padding=1),
    Shape("resnet18 downsample 1x1/2", 64, 56, 128, 1, stride=2),
    Shape("resnet18 layer4 3x3", 512, 7, 512, 3, padding=1),
    Shape("resnet50 reduce 1x1", 256, 56, 64, 1),
    Shape("resnet50 expand 1x1", 64, 56, 256, 1),
    Shape("mobilenetv2 depthwise 3x3", 144, 56, 144, 3, padding=1, groups=144),
    Shape("mobilenetv2 depthwise 3x3/2", 96, 112, 96, 3, stride=2, padding=1, groups=96),
    Shape("mobilenetv2 pointwise 1x1", 32, 112, 16, 1),
    Shape("dilated 3x3 d2", 64, 56, 64, 3, padding=2, dilation=2),
    Shape("resnext grouped 3x3 g32", 128, 28, 128, 3, padding=1, groups=32),
    Shape("unet up 2x2/2 (transposed)", 128, 28, 64, 2, stride=2, transposed=True),
    Shape("dcgan up 4x4/2 (transposed)", 128, 16, 64, 4, stride=2, padding=1, transposed=True),
]
QUICK = ("mnist cnn c2 3x3", "resnet18 downsample 1x1/2", "mobilenetv2 depthwise 3x3", "unet up 2x2/2 (transposed)")


def _arrays(shape: Shape, batch: int) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Input, weight and the output's shape (from PyTorch's forward of the same layer)."""
    rng = np.random.default_rng(0)
    n = batch * shape.images
    x = rng.standard_normal((n, shape.c_in, shape.size, shape.size), dtype=np.float32)
    w_shape = ((shape.c_in, shape.c_out // shape.groups) if shape.transposed
               else (shape.c_out, shape.c_in // shape.groups)) + (shape.kernel, shape.kernel)
    w = (rng.standard_normal(w_shape, dtype=np.float32) / math.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    return x, w, w_shape


def _keywords(shape: Shape) -> dict[str, int]:
    return {"stride": shape.stride, "padding": shape.padding, "dilation": shape.dilation, "groups": shape.groups}


def fusegrad_directions(shape: Shape, x: np.ndarray, w: np.ndarray, gy: np.ndarray, device: str) -> \
        dict[str, Callable[[], Any]]:
    import fusegrad as fg
    import fusegrad.nn.functional as F
    conv = F.conv_transpose2d if shape.transposed else F.conv2d
    tx, tw, tgy = (fg.tensor(a, device=device) for a in (x, w, gy))
    kw = _keywords(shape)

    def forward() -> Any:
        return conv(tx, tw, **kw).realize()

    def gradient(which: int) -> Callable[[], Any]:
        def run() -> Any:
            a, b = tx.detach().requires_grad_(), tw.detach().requires_grad_()
            return fg.autograd.grad(conv(a, b, **kw), [(a, b)[which]], tgy)[0].realize()
        return run
    return {"forward": forward, "input_grad": gradient(0), "weight_grad": gradient(1)}


def torch_directions(torch: Any, shape: Shape, x: np.ndarray, w: np.ndarray, gy: np.ndarray, device: str) -> \
        dict[str, Callable[[], Any]]:
    tx, tw, tgy = (torch.from_numpy(a).to(device) for a in (x, w, gy))
    s, p, d, g = shape.stride, shape.padding, shape.dilation, shape.groups
    conv = torch.nn.functional.conv_transpose2d if shape.transposed else torch.nn.functional.conv2d

    def backward(mask: list[bool]) -> Callable[[], Any]:
        def run() -> Any:
            return torch.ops.aten.convolution_backward(tgy, tx, tw, None, [s, s], [p, p], [d, d], shape.transposed,
                                                       [0, 0], g, mask)
        return run
    return {"forward": lambda: conv(tx, tw, stride=s, padding=p, dilation=d, groups=g),
            "input_grad": backward([True, False, False]), "weight_grad": backward([False, True, False])}


def selected(name: str, args: argparse.Namespace) -> bool:
    """Is the shape in this run: among the --quick ones when quick, and naming one of --shapes' substrings?"""
    if args.quick and name not in QUICK:
        return False
    return not args.shapes or any(part in name for part in args.shapes.split(","))


def child(args: argparse.Namespace) -> None:
    torch = common.optional_import("torch")
    common.set_threads(args.child_threads, torch)
    if torch is not None and args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch_device = "cuda" if args.device == "cuda" else "cpu"
    sync: Callable[[Any], Any] = lambda out: out  # noqa: E731
    if args.device == "cuda" and torch is not None:
        sync = lambda out: (torch.cuda.synchronize(), out)[1]  # noqa: E731
    rows = []
    for shape in SHAPES:
        if not selected(shape.name, args):
            continue
        x, w, _ = _arrays(shape, args.batch)
        gy = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), **_keywords(shape)) \
            if shape.transposed else torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                                                **_keywords(shape))
        gy = np.random.default_rng(1).standard_normal(tuple(gy.shape), dtype=np.float32)
        ours = fusegrad_directions(shape, x, w, gy, args.device)
        theirs = torch_directions(torch, shape, x, w, gy, torch_device)
        row: dict[str, Any] = {"shape": asdict(shape), "gflop": shape.flop(args.batch) / 1e9}
        for direction in DIRECTIONS:
            fg_sync = (lambda out: out.numpy()) if args.device != "cpu" else (lambda out: out)
            contestants = [common.warm_up(Contestant("fusegrad", ours[direction], fg_sync)),
                           common.warm_up(Contestant("torch", theirs[direction], sync))]
            common.interleave(contestants, args.seconds, args.rounds)
            fg_ms, torch_ms = (c.median_ms for c in contestants)
            row[direction] = {"fusegrad_ms": fg_ms, "torch_ms": torch_ms, "ratio": torch_ms / fg_ms}
        rows.append(row)
        print(f"  {args.child_threads}T {shape.name:30} " + "  ".join(
            f"{d} {row[d]['fusegrad_ms']:8.3f}/{row[d]['torch_ms']:8.3f} ms {row[d]['ratio']:5.2f}x"
            for d in DIRECTIONS), flush=True)
    common.report_to_parent({"threads": args.child_threads, "rows": rows})


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per direction: the geometric mean of the ratios and the worst shape."""
    out = {}
    for d in DIRECTIONS:
        ratios = [(r[d]["ratio"], r["shape"]["name"]) for r in rows]
        worst = min(ratios)
        out[d] = {"geomean": math.exp(sum(math.log(v) for v, _ in ratios) / len(ratios)),
                  "worst": worst[0], "worst_shape": worst[1]}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "opencl"),
                   help="fusegrad's device (PyTorch runs on CUDA for cuda, else on the CPU)")
    p.add_argument("--batch", type=int, default=8, help="images per layer (the MNIST nets take 8x)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts, one child process each")
    p.add_argument("--seconds", type=float, default=0.6, help="timed seconds per contestant and direction")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="4 shapes, batch 2, 1 thread, 0.1 s, 2 rounds")
    p.add_argument("--shapes", default="", help="comma-separated substrings: only shapes whose name holds one")
    p.add_argument("--child-threads", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.threads, args.seconds, args.rounds = 2, "1", 0.1, 2
    if args.child_threads is not None:
        child(args)
        return 0
    torch = common.optional_import("torch")
    info = {"device": args.device, "batch": args.batch, "fusegrad": common.fusegrad_commit(),
            "torch": getattr(torch, "__version__", None), "cpu": common.cpu_model()}
    print(f"# {info}")
    threads = [int(t) for t in args.threads.split(",")]
    argv_child = list(argv if argv is not None else sys.argv[1:])
    if args.device != "cpu":
        threads = threads[:1]  # a GPU run needs one process
    runs = common.run_children(__file__, argv_child, threads)
    for run in runs:
        s = summary(run["rows"])
        run["summary"] = s
        print(f"{run['threads']} thread(s): " + "; ".join(
            f"{d} geomean {s[d]['geomean']:.2f}x, worst {s[d]['worst']:.2f}x ({s[d]['worst_shape']})"
            for d in DIRECTIONS))
    print(json.dumps({"benchmark": "conv", "machine": info, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training-step benchmark: torchvision's ResNets and MobileNetV2 (`fusegrad.models`), SGD with momentum.

    python3 benchmarks/vision.py [--model resnet18] [--stem cifar] [--image-size 32] [--batch-sizes 16]
                                 [--threads 1,2] [--seconds 3] [--rounds 10]
    python3 benchmarks/vision.py --quick      # a smoke run
    python3 benchmarks/vision.py --profile    # the jitted step's kernels (fg.profile) and cProfile instead of the race
    python3 benchmarks/vision.py --autocast bfloat16  # also the steps under autocast, and its speedup
    python3 benchmarks/vision.py --device cuda        # fusegrad and torch on a GPU

Models: resnet18, resnet34, resnet50 (`--stem cifar`: 3x3 convolution, no max-pool; `--stem imagenet`:
7x7/2 convolution and max-pool) and mobilenet_v2, 10 classes, on seeded random images of
`--image-size` and labels. One step = forward in training mode (batch norm on the batch's statistics,
MobileNetV2's dropout), cross-entropy, backward, SGD with lr 0.01, momentum 0.9 and weight decay 5e-4
(the usual CIFAR recipe). Contestants: fusegrad eager, fusegrad `fg.jit` of the whole step, PyTorch
eager and `torch.compile` of the whole step (the torch models of vision_torch.py, holding the fusegrad
model's state dict: the "1st loss" column agrees, except for MobileNetV2 whose dropout masks differ),
with the methodology of mnist_mlp.py (one child process per thread count, contestants interleaved in
rounds, warm-up apart, median ms/step, FLOP floor from the CPU's measured GEMM rate, JSON last).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from functools import partial
from typing import Any, Callable

import numpy as np

import common
from common import Contestant, Skipped

LR = 0.01
SGD = {"momentum": 0.9, "weight_decay": 5e-4}
CLASSES = 10
BATCHES = 4
PEERS = ("fusegrad", "torch", "torch.compile")
MODELS = ("resnet18", "resnet34", "resnet50", "mobilenet_v2")


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The constructor's arguments, the same for fusegrad's model and its torch twin."""
    return {"num_classes": CLASSES, **({"stem": args.stem} if args.model.startswith("resnet") else {})}


def make_fusegrad_model(args: argparse.Namespace) -> Any:
    import fusegrad as fg
    from fusegrad import models
    fg.manual_seed(0)
    return getattr(models, args.model)(**model_kwargs(args))


def make_torch_model(args: argparse.Namespace) -> Any:
    import vision_torch  # imports torch: only when torch is a peer
    return getattr(vision_torch, args.model)(**model_kwargs(args))


def gemm_layers(args: argparse.Namespace) -> list[tuple[int, int, int]]:
    """(output positions, output features, inputs per output) of each convolution and linear layer, in call order.

    Read from one forward pass of a single image, each layer's forward wrapped to note its output shape.
    """
    import fusegrad as fg
    from fusegrad import nn
    layers: list[tuple[int, int, int]] = []

    def noting(m: Any, forward: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def wrapped(x: Any) -> Any:
            y = forward(x)
            if isinstance(m, nn.Linear):
                layers.append((1, m.out_features, m.in_features))
            else:
                inputs = m.in_channels // m.groups * math.prod(m.kernel_size)
                layers.append((math.prod(y.shape[2:]), m.out_channels, inputs))
            return y
        return wrapped

    model = make_fusegrad_model(args).eval()
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.forward = noting(m, m.forward)
    with fg.no_grad():
        model(fg.zeros(1, 3, args.image_size, args.image_size))
    return layers


def step_flops(layers: list[tuple[int, int, int]], batch: int) -> float:
    """Multiply-add FLOPs of the convolutions and linear layers: forward, weight and input gradients.

    The first layer needs no input gradient (its input is the data). Batch norm, activations, pooling,
    the loss and the optimizer are a few FLOPs per element and left out.
    """
    flops = [2 * positions * features * inputs for positions, features, inputs in layers]
    return float(batch * (2 * flops[0] + 3 * sum(flops[1:])))


def random_batches(batch: int, image_size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`BATCHES` batches of standard-normal images (batch, 3, size, size) and labels: the step's cost does not
    depend on the values."""
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((batch, 3, image_size, image_size), dtype=np.float32) for _ in range(BATCHES)]
    ys = [rng.integers(0, CLASSES, batch).astype(np.int64) for _ in range(BATCHES)]
    return xs, ys


def builders(args: argparse.Namespace, batch: int, peers: set[str], torch: Any,
             autocast: str | None = None) -> tuple[list[Callable[[Skipped], list[Contestant]]], str]:
    """Functions making each peer's contestants for one batch size, and where the data came from."""
    xs, ys = random_batches(batch, args.image_size)
    make_model = partial(make_fusegrad_model, args)
    state = {k: v.numpy() for k, v in make_model().state_dict().items()}
    out: list[Callable[[Skipped], list[Contestant]]] = []
    if "fusegrad" in peers:
        out.append(partial(common.fusegrad_contestants, make_model, xs, ys, LR, device=args.device,
                           autocast=autocast, sgd=SGD))
    if peers & {"torch", "torch.compile"}:
        out.append(partial(common.torch_contestants, torch, partial(make_torch_model, args), state, xs, ys, LR,
                           peers, autocast=autocast, device=args.device, sgd=SGD))
    return out, f"random images {args.image_size}x{args.image_size} (seeded)"


def profile_fusegrad(args: argparse.Namespace) -> None:
    """The jitted step's kernels and cProfile at the first batch size, after warm-up steps that outlast the
    race of new shapes against the vendor BLAS."""
    xs, ys = random_batches(args.batch_sizes[0], args.image_size)
    jitted = common.fusegrad_contestants(partial(make_fusegrad_model, args), xs, ys, LR, {}, device=args.device,
                                         sgd=SGD)[1]
    print(f"{workload(args)}, B={args.batch_sizes[0]}")
    common.profile_steps(jitted, steps=10, warm_calls=30)


def workload(args: argparse.Namespace) -> str:
    stem = f", {args.stem} stem" if args.model.startswith("resnet") else ""
    return f"{args.model}{stem}, {args.image_size}x{args.image_size} images, step on {args.device}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="resnet18", choices=MODELS)
    p.add_argument("--stem", default="cifar", choices=("cifar", "imagenet"), help="ResNet's stem (default cifar)")
    p.add_argument("--image-size", type=int, default=32, help="image height and width (default 32)")
    p.add_argument("--device", default="cpu", help="fusegrad's and torch's device (default cpu)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = common.parse_training_args(argv, __doc__, PEERS, "16", add_arguments)
    if args.profile:
        profile_fusegrad(args)
    elif args.child_threads is not None:
        common.training_child(args, workload(args), partial(builders, args), partial(step_flops, gemm_layers(args)))
    else:
        runs = common.run_children(__file__, argv, args.threads)
        common.print_training_summary(runs)
        print(json.dumps({"benchmark": "vision", "model": args.model,
                          "stem": args.stem if args.model.startswith("resnet") else None,
                          "image_size": args.image_size, "device": args.device, "lr": LR, **SGD,
                          "seconds": args.seconds, "rounds": args.rounds, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

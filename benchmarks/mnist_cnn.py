"""Training-step benchmark: the CNN of the MNIST example (`build_model("cnn")`), fp32, SGD lr 0.01.

    python3 benchmarks/mnist_cnn.py [--batch-sizes 64] [--threads 1,2] [--seconds 3] [--rounds 10]
    python3 benchmarks/mnist_cnn.py --quick      # a smoke run
    python3 benchmarks/mnist_cnn.py --profile    # cProfile of fusegrad eager steps instead of the race
    python3 benchmarks/mnist_cnn.py --autocast bfloat16  # also the steps under autocast, and its speedup

The network: conv 3x3 (1->32) + batch norm + ReLU + max-pool 2, conv 3x3 (32->64) + batch norm +
ReLU + max-pool 2, linear 1600->10; one step = forward (training-mode batch norm), cross-entropy,
backward, SGD update. Contestants: fusegrad eager, fusegrad `fg.jit` (when fusegrad has it),
PyTorch eager and `torch.compile` of the whole step, all from the same weights, with the
methodology of mnist_mlp.py (one child process per thread count, contestants interleaved in
rounds, warm-up apart, median ms/step, FLOP floor from the measured GEMM rate, JSON last).
"""
from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from typing import Any, Callable

import common
from common import Contestant, Skipped

LR = 0.01
BATCHES = 8
PEERS = ("fusegrad", "torch", "torch.compile")
# (output positions, output channels, input channels x kernel) of each convolution, and the linear layer
CONVS = ((26 * 26, 32, 1 * 9), (11 * 11, 64, 32 * 9))
LINEAR = (64 * 5 * 5, 10)


def step_flops(batch: int) -> float:
    """Multiply-add FLOPs of the convolutions and the linear layer: forward, weight and input gradients.

    The first convolution needs no input gradient (its input is the data). Batch norm, pooling and
    the loss are a few FLOPs per element and left out.
    """
    (p1, c1, k1), (p2, c2, k2) = CONVS
    conv1, conv2, linear = 2 * p1 * c1 * k1, 2 * p2 * c2 * k2, 2 * LINEAR[0] * LINEAR[1]
    return float(batch * (2 * conv1 + 3 * conv2 + 3 * linear))


def make_fusegrad_model() -> Any:
    import fusegrad as fg
    from fusegrad.examples.mnist import build_model
    fg.manual_seed(0)
    return build_model("cnn")


def make_torch_model(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 5 * 5, 10))


def builders(batch: int, peers: set[str], torch: Any,
             autocast: str | None = None) -> tuple[list[Callable[[Skipped], list[Contestant]]], str]:
    """Functions making each peer's contestants for one batch size, and where the data came from."""
    xs, ys, source = common.load_batches(batch, BATCHES)
    weights = [p.numpy() for p in make_fusegrad_model().parameters()]
    out: list[Callable[[Skipped], list[Contestant]]] = []
    if "fusegrad" in peers:
        out.append(partial(common.fusegrad_contestants, make_fusegrad_model, xs, ys, LR, autocast=autocast))
    if peers & {"torch", "torch.compile"}:
        out.append(partial(common.torch_contestants, torch, partial(make_torch_model, torch), weights, xs, ys, LR,
                           peers, autocast=autocast))
    return out, source


def profile_fusegrad(args: argparse.Namespace) -> None:
    """cProfile of fusegrad eager steps at the first batch size."""
    xs, ys, source = common.load_batches(args.batch_sizes[0], BATCHES)
    eager = common.fusegrad_contestants(make_fusegrad_model, xs, ys, LR, {})[0]
    print(f"CNN step, B={args.batch_sizes[0]} ({source})")
    common.profile_steps(eager, steps=20)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = common.parse_training_args(argv, __doc__, PEERS, "64")
    if args.profile:
        profile_fusegrad(args)
    elif args.child_threads is not None:
        common.training_child(args, "CNN step", builders, step_flops)
    else:
        runs = common.run_children(__file__, argv, args.threads)
        common.print_training_summary(runs)
        print(json.dumps({"benchmark": "mnist_cnn", "lr": LR, "seconds": args.seconds, "rounds": args.rounds,
                          "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

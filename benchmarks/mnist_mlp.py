"""Training-step benchmark: Zigrad's MNIST MLP (784-128-64-10, fp32, SGD lr 0.01, cross-entropy).

    python3 benchmarks/mnist_mlp.py [--batch-sizes 64,256] [--threads 1,2] [--seconds 3] [--rounds 10]
    python3 benchmarks/mnist_mlp.py --quick      # smoke run: B=64, 1 thread, 0.5 s per contestant
    python3 benchmarks/mnist_mlp.py --profile    # cProfile of fusegrad eager steps instead of the race
    python3 benchmarks/mnist_mlp.py --autocast bfloat16  # also the steps under autocast, and its speedup

One step = forward, cross-entropy, backward, SGD update, on Fashion-MNIST batches (random data of
the same shapes when the data set is not installed). Contestants, each when available: fusegrad
eager (the step's graph built and realized every call), fusegrad `fg.jit` of the step, PyTorch
eager, `torch.compile` of the whole step, JAX `jit` of the step, tinygrad `TinyJit` of the step.
All start from the same weights (the "1st loss" column shows they agree on the first step). Each
thread count runs in its own child process on that many CPUs (thread settings are read when
libraries load); inside it the contestants take turns for `--rounds` rounds of `--seconds /
--rounds` each, after an untimed warm-up whose first call (compilation) is reported apart, with
Python's heap frozen so that no contestant's garbage collections walk another's objects. The table
gives the median ms/step, the fraction of the FLOP floor (GEMM FLOPs of the step at the GEMM rate
measured in the same run) and fusegrad's speedup over each contestant (their time / fusegrad's
time: above 1, fusegrad is faster). The last line is the whole result as JSON.

tinygrad's CPU backend compiles with clang: set CC to a clang binary when none is on PATH.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from functools import partial
from typing import Any, Callable

import numpy as np

import common
from common import Contestant, Skipped

LAYERS = (784, 128, 64, 10)
LR = 0.01
BATCHES = 8  # prepared batches the steps cycle through
PEERS = ("fusegrad", "torch", "torch.compile", "jax", "tinygrad")


def step_flops(batch: int) -> float:
    """GEMM FLOPs of one step: forward, weight and input gradients, less the unused input gradient of layer 1."""
    products = sum(i * o for i, o in zip(LAYERS, LAYERS[1:]))
    return 2.0 * batch * (3 * products - LAYERS[0] * LAYERS[1])


def make_fusegrad_model() -> Any:
    import fusegrad as fg
    from fusegrad.examples.mnist import build_model
    fg.manual_seed(0)  # every fusegrad model starts from the same weights as the peers
    return build_model("mlp")


def make_torch_model(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                         nn.Linear(64, 10))


def jax_contestants(xs: list[np.ndarray], ys: list[np.ndarray], weights: list[np.ndarray],
                    skipped: Skipped) -> list[Contestant]:
    """`jax.jit` of the step as a pure function of the parameters (donated, so updated in place)."""
    jax = common.optional_import("jax")
    if jax is None:
        skipped["jax jit"] = "jax not installed (pip install jax jaxlib)"
        return []
    jnp = jax.numpy

    def loss_fn(params: list[tuple[Any, Any]], x: Any, y: Any) -> Any:
        h = x.reshape(x.shape[0], -1)
        for i, (w, b) in enumerate(params):
            h = h @ w.T + b
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        return -jnp.take_along_axis(jax.nn.log_softmax(h), y[:, None], axis=1).mean()

    def train_step(params: list[tuple[Any, Any]], x: Any, y: Any) -> tuple[Any, Any]:
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads), loss

    jitted = jax.jit(train_step, donate_argnums=0)
    state = {"params": [(jnp.asarray(w), jnp.asarray(b)) for w, b in zip(weights[::2], weights[1::2])]}
    jx, jy = [jnp.asarray(x) for x in xs], [jnp.asarray(y.astype(np.int32)) for y in ys]
    nxt = common.cycler(len(xs))

    def step() -> Any:
        i = nxt()
        state["params"], loss = jitted(state["params"], jx[i], jy[i])
        return loss
    return [Contestant("jax jit", step, lambda loss: loss.block_until_ready())]


def tinygrad_contestants(xs: list[np.ndarray], ys: list[np.ndarray], weights: list[np.ndarray],
                         skipped: Skipped) -> list[Contestant]:
    """tinygrad's `TinyJit` of the step (its CPU backend, which needs clang)."""
    if not (os.environ.get("CC") or shutil.which("clang")):
        skipped["tinygrad jit"] = "skipped: its CPU backend needs clang (none on PATH; set CC=/path/to/clang)"
        return []
    tinygrad = common.optional_import("tinygrad")
    if tinygrad is None:
        skipped["tinygrad jit"] = "tinygrad not installed (pip install tinygrad)"
        return []
    Tensor, Context = tinygrad.Tensor, tinygrad.Context
    layers = []
    for w, b in zip(weights[::2], weights[1::2]):
        layer = tinygrad.nn.Linear(w.shape[1], w.shape[0])
        layer.weight, layer.bias = Tensor(w), Tensor(b)
        layers.append(layer)
    opt = tinygrad.nn.optim.SGD([t for layer in layers for t in (layer.weight, layer.bias)], lr=LR)

    @tinygrad.TinyJit
    def train_step(x: Any, y: Any) -> Any:
        with Context(TRAINING=1):
            opt.zero_grad()
            h = x.reshape(x.shape[0], -1)
            for i, layer in enumerate(layers):
                h = layer(h)
                if i < len(layers) - 1:
                    h = h.relu()
            loss = h.sparse_categorical_crossentropy(y)
            loss.backward()
            # one realization for the loss and the update: realizing the loss after opt.step() would
            # compute it a second time, from the updated weights
            return loss.realize(*opt.schedule_step())

    tx = [Tensor(x).realize() for x in xs]
    ty = [Tensor(y.astype(np.int32)).realize() for y in ys]
    nxt = common.cycler(len(xs))

    def step() -> Any:
        i = nxt()
        return train_step(tx[i], ty[i])
    return [Contestant("tinygrad jit", step, lambda loss: loss.numpy())]


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
    if "jax" in peers:
        out.append(partial(jax_contestants, xs, ys, weights))
    if "tinygrad" in peers:
        out.append(partial(tinygrad_contestants, xs, ys, weights))
    return out, source


def profile_fusegrad(args: argparse.Namespace) -> None:
    """cProfile of fusegrad eager steps at the first batch size: where a step's Python time goes."""
    xs, ys, source = common.load_batches(args.batch_sizes[0], BATCHES)
    eager = common.fusegrad_contestants(make_fusegrad_model, xs, ys, LR, {})[0]
    print(f"MLP step, B={args.batch_sizes[0]} ({source})")
    common.profile_steps(eager, steps=300)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = common.parse_training_args(argv, __doc__, PEERS, "64,256")
    if args.profile:
        profile_fusegrad(args)
    elif args.child_threads is not None:
        common.training_child(args, "MLP step", builders, step_flops)
    else:
        runs = common.run_children(__file__, argv, args.threads)
        common.print_training_summary(runs)
        print(json.dumps({"benchmark": "mnist_mlp", "layers": LAYERS, "lr": LR, "seconds": args.seconds,
                          "rounds": args.rounds, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

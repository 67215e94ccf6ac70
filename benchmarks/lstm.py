"""LSTM benchmark: `nn.LSTM` forward and backward over a sequence, fusegrad against PyTorch eager.

    python3 benchmarks/lstm.py                 # LSTM(64 -> 128), batch 16, 32 steps; 1 and 2 threads
    python3 benchmarks/lstm.py --quick         # smoke run: 1 thread, 0.3 s per contestant
    python3 benchmarks/lstm.py --device cuda   # fusegrad on CUDA against cuDNN's LSTM

Each iteration runs the layer over the whole sequence, a mean-square loss of its outputs, zero_grad
and backward. Contestants: fusegrad eager (as a PyTorch user writes it), fusegrad with the iteration
under `fg.jit`, PyTorch eager (its fused CPU kernels), the same weights in both libraries. The
machinery is the MNIST races' (one child process per thread count pinned to that many CPUs,
contestants taking turns after an untimed warm-up, median times, first call apart). A fresh process
with an empty kernel cache then times the first eager iteration (`cold`), and again with that cache
warm, at the largest thread count asked for. The last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (the benchmarks folder is not a package)

TARGETS = [("eager iteration: fusegrad / torch eager time", "eager_over_torch", 2.0),
           ("first iteration, cold kernel cache (s)", "cold_first_s", 3.0)]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "opencl"],
                   help="fusegrad's device (PyTorch runs on CUDA for cuda, else on the CPU)")
    p.add_argument("--input", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=32, help="sequence length")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts, one child process each")
    p.add_argument("--seconds", type=float, default=6.0, help="timed seconds per contestant")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--quick", action="store_true", help="1 thread, 0.3 s, 2 rounds")
    p.add_argument("--child-threads", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--cold-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.threads, args.seconds, args.rounds = "1", 0.3, 2
    return args


def _data(args: argparse.Namespace) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((args.batch_size, args.steps, args.input)).astype(np.float32)


def _iteration(layer: Any, x: Any) -> Callable[[], Any]:
    """One iteration of either library's LSTM on x: forward, mean-square loss, zero_grad, backward."""
    def iteration() -> Any:
        out, _ = layer(x)
        loss = out.square().mean()
        layer.zero_grad()
        loss.backward()
        return loss
    return iteration


def _fusegrad_iteration(args: argparse.Namespace) -> tuple[Any, Callable[[], Any]]:
    import fusegrad as fg
    fg.manual_seed(0)
    lstm = fg.nn.LSTM(args.input, args.hidden, batch_first=True).to(args.device)
    return lstm, _iteration(lstm, fg.tensor(_data(args), device=args.device))


def cold_child(args: argparse.Namespace) -> None:
    """In a fresh process: import fusegrad, build the layer, time its first eager iteration."""
    start = time.perf_counter()
    import fusegrad as fg
    fg.set_num_threads(args.child_threads)
    built = time.perf_counter()
    _, iteration = _fusegrad_iteration(args)
    t = time.perf_counter()
    iteration().item()
    common.report_to_parent({"import_and_setup_s": t - start, "import_s": built - start,
                             "first_iteration_s": time.perf_counter() - t})


def child(args: argparse.Namespace) -> None:
    import fusegrad as fg
    import torch
    common.set_threads(args.child_threads, torch)
    lstm, iteration = _fusegrad_iteration(args)
    dev = "cuda" if args.device == "cuda" else "cpu"  # cuDNN's fused LSTM on the GPU
    twin = torch.nn.LSTM(args.input, args.hidden, batch_first=True).to(dev)
    twin.load_state_dict({k: torch.tensor(v.numpy()) for k, v in lstm.state_dict().items()})
    torch_iteration = _iteration(twin, torch.tensor(_data(args), device=dev))
    contestants = [common.Contestant("fusegrad eager", iteration, lambda out: out.item()),
                   common.Contestant("fusegrad jit", fg.jit(iteration), lambda out: out.item()),
                   common.Contestant("torch eager", torch_iteration, lambda out: out.item())]
    for c in contestants:
        common.warm_up(c)
    common.interleave(contestants, args.seconds, args.rounds)
    results = {c.name: {"ms": c.median_ms, "min_ms": min(c.rounds_ms), "first_call_s": c.first_call_s,
                        "first_loss": c.first_result} for c in contestants}
    common.report_to_parent({"threads": args.child_threads, "info": common.machine_info(), "results": results})


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.cold_child:
        return cold_child(args)
    if args.child_threads is not None:
        return child(args)
    threads = [int(t) for t in args.threads.split(",")]
    passed = [a for a in argv if a != "--quick"] + (["--seconds", str(args.seconds), "--rounds", str(args.rounds)]
                                                    if args.quick else [])
    runs = common.run_children(__file__, passed, threads)
    old = os.environ.get("FUSEGRAD_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="fusegrad-lstm-cold-") as folder:
        os.environ["FUSEGRAD_CACHE_DIR"] = folder
        try:
            cold, warm = (common.run_children(__file__, [*passed, "--cold-child"], [max(threads)])[0]
                          for _ in range(2))
        finally:
            if old is None:
                del os.environ["FUSEGRAD_CACHE_DIR"]
            else:
                os.environ["FUSEGRAD_CACHE_DIR"] = old
    print(f"\nLSTM({args.input} -> {args.hidden}), batch {args.batch_size}, {args.steps} steps: median ms per "
          "iteration (forward, loss, backward)")
    names = list(runs[0]["results"])
    rows = [[f"threads={r['threads']}"] + [f"{r['results'][n]['ms']:.3f}" for n in names] for r in runs]
    print(common.table(["config", *names], rows))
    first = runs[0]["results"]
    print("first losses: " + ", ".join(f"{n} {first[n]['first_loss']:.6f}" for n in names))
    print(f"cold start ({max(threads)} thread(s)): first eager iteration {cold['first_iteration_s']:.2f} s with "
          f"an empty kernel cache, {warm['first_iteration_s']:.2f} s warm")
    values = [{"eager_over_torch": r["results"]["fusegrad eager"]["ms"] / r["results"]["torch eager"]["ms"],
               "jit_over_torch": r["results"]["fusegrad jit"]["ms"] / r["results"]["torch eager"]["ms"],
               "cold_first_s": cold["first_iteration_s"], "warm_first_s": warm["first_iteration_s"]} for r in runs]
    rows = [[label, f"<= {wanted}"] + [f"{v[key]:.2f} {'met' if v[key] <= wanted else 'missed'}" for v in values]
            for label, key, wanted in TARGETS]
    print("\n" + common.table(["target", "wanted"] + [f"threads={r['threads']}" for r in runs], rows))
    print(json.dumps({"benchmark": "lstm", "config": vars(args) | {"quick": args.quick}, "runs": runs,
                      "cold": cold, "warm": warm, "targets": values}))


if __name__ == "__main__":
    main(sys.argv[1:])

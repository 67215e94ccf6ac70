"""Matmul benchmark: fusegrad vs numpy vs PyTorch on square sizes and the MNIST MLP's products.

    python3 benchmarks/matmul.py [--threads 1,2] [--seconds 1.0] [--rounds 5] [--quick]
    python3 benchmarks/matmul.py --dtype bfloat16   # fusegrad and torch in bfloat16, numpy in float32

Shapes: square n x n @ n x n for n = 256, 512, 1024, 2048, and for the MLP 784-128-64-10 at batch
sizes 64 and 256 each layer's forward product x @ W.T, input gradient dy @ W and weight gradient
dy.T @ x, with the transposes taken as views exactly as a Linear layer's forward and backward use
them (W stored out x in, like torch). Each thread count runs in its own child process on that
many CPUs; inside it the three contestants take turns for `--rounds` rounds per shape after an
untimed warm-up (which compiles fusegrad's kernel and, on one thread, races it against numpy's
OpenBLAS: `fg path` says which one fusegrad kept). fusegrad's time is what a user waits for:
building `a @ b` and realizing it (under fg.profile, ~1 us per launch); `kernel` is its kernel's
own time from that profile, in the same rounds. Ratios are peer time / fusegrad time (above 1:
fusegrad faster). numpy's and torch's BLAS (kernel and threads, via threadpoolctl) and
OPENBLAS_CORETYPE (left as the environment has it) are printed. With `--dtype bfloat16` or `float16`
fusegrad and torch multiply in that type (float32 sums, as both do) and numpy, which has no such type,
multiplies the same values in float32. The last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

import common
from common import Contestant

SQUARE = (256, 512, 1024, 2048)
LAYERS = (784, 128, 64, 10)
MLP_BATCHES = (64, 256)


@dataclass(frozen=True)
class Product:
    """out = op(a) @ op(b) where a, b are stored as given and `ta`/`tb` take the transposed view."""
    name: str
    a_shape: tuple[int, int]
    b_shape: tuple[int, int]
    ta: bool = False
    tb: bool = False

    @property
    def flops_shape(self) -> tuple[int, int, int]:
        """(m, n, k) of the product."""
        m, k = self.a_shape[::-1] if self.ta else self.a_shape
        return m, self.b_shape[0] if self.tb else self.b_shape[1], k

    @property
    def flops(self) -> float:
        m, n, k = self.flops_shape
        return 2.0 * m * k * n

    def apply(self, a: Any, b: Any) -> Any:
        return (a.T if self.ta else a) @ (b.T if self.tb else b)


def products(batches: tuple[int, ...], squares: tuple[int, ...]) -> list[Product]:
    out = [Product(f"square {n}", (n, n), (n, n)) for n in squares]
    for batch in batches:
        for fan_in, fan_out in zip(LAYERS, LAYERS[1:]):
            layer = f"B={batch} {fan_in}->{fan_out}"
            out += [Product(f"{layer} fwd x@W.T", (batch, fan_in), (fan_out, fan_in), tb=True),
                    Product(f"{layer} dX dy@W", (batch, fan_out), (fan_out, fan_in)),
                    Product(f"{layer} dW dy.T@x", (batch, fan_out), (batch, fan_in), ta=True)]
    return out


def run_product(p: Product, torch: Any, seconds: float, rounds: int, dtype: str = "float32") -> dict[str, Any]:
    """Time fusegrad, numpy and torch on one product, interleaved, after checking fusegrad against numpy."""
    import fusegrad as fg
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(p.a_shape, dtype=np.float32), rng.standard_normal(p.b_shape, dtype=np.float32)
    fa, fb = fg.tensor(a).to(dtype).realize(), fg.tensor(b).to(dtype).realize()
    a, b = fa.float().numpy(), fb.float().numpy()  # the values fusegrad and torch multiply
    expected = p.apply(a, b)
    rtol = 1e-3 if dtype == "float32" else 1e-2
    np.testing.assert_allclose(p.apply(fa, fb).float().numpy(), expected, rtol=rtol,
                               atol=rtol * np.abs(expected).max())
    kernel_s: list[float] = []
    launches: list[int] = []

    def ours() -> Any:
        # fg.profile costs ~1 us per launch; it gives the kernel's own time in the same interleaved runs
        with fg.profile() as prof:
            out = p.apply(fa, fb).realize()
        kernel_s.append(sum(k.seconds for k in prof.kernels))
        launches.append(len(prof.kernels))
        return out

    contestants = [Contestant("fusegrad", ours), Contestant("numpy", lambda: p.apply(a, b))]
    if torch is not None:
        ta, tb = torch.from_numpy(a).to(getattr(torch, dtype)), torch.from_numpy(b).to(getattr(torch, dtype))
        contestants.append(Contestant("torch", lambda: p.apply(ta, tb)))
    for c in contestants:
        common.warm_up(c, calls=1)
    common.interleave(contestants, seconds, rounds)
    result: dict[str, Any] = {"flops": p.flops}
    for c in contestants:
        result[f"{c.name}_ms"] = c.median_ms
        result[f"{c.name}_gflops"] = p.flops / c.median_ms / 1e6
    from fusegrad.codegen import gemm_c
    m, n, k = p.flops_shape
    # the vendor race (one thread only) may have handed the product to numpy's OpenBLAS
    vendor = dtype == "float32" and {("float32", m, n, k), ("float32", n, m, k)} & gemm_c.VENDOR
    result["fusegrad_path"] = "vendor" if vendor else (dtype == "bfloat16" and gemm_c.bf16_unit()) or "generated"
    timed = kernel_s[2:]  # the first two calls are the warm-up
    result["fusegrad_kernel_ms"], result["fusegrad_kernels"] = statistics.median(timed) * 1e3, launches[-1]
    result["fusegrad_kernel_gflops"] = p.flops / result["fusegrad_kernel_ms"] / 1e6
    return result


def child(args: argparse.Namespace) -> None:
    torch = common.optional_import("torch")  # before fusegrad: torch's OpenMP keeps its default wait policy
    common.set_threads(args.child_threads, torch)
    load_before = common.machine_info()["load_average"]
    results: dict[str, Any] = {}
    rows = []
    for p in products(args.batches, args.squares):
        r = results[p.name] = run_product(p, torch, args.seconds, args.rounds, args.dtype)
        rows.append([p.name, f"{p.flops / 1e6:.1f}", f"{r['fusegrad_ms']:.4f}", f"{r['fusegrad_kernel_ms']:.4f}",
                     f"{r['numpy_ms']:.4f}", f"{r.get('torch_ms', float('nan')):.4f}",
                     f"{r['fusegrad_gflops']:.1f}", f"{r['fusegrad_kernel_gflops']:.1f}", f"{r['numpy_gflops']:.1f}",
                     f"{r.get('torch_gflops', float('nan')):.1f}", common.ratio(r["numpy_ms"], r["fusegrad_ms"]),
                     common.ratio(r.get("torch_ms"), r["fusegrad_ms"]),
                     common.ratio(r["numpy_ms"], r["fusegrad_kernel_ms"]), r["fusegrad_path"]])
    print(f"\n{args.dtype} matmul (numpy: float32), {args.child_threads} thread(s): median ms and GFLOP/s; "
          "ratios = peer time / fusegrad time")
    print(common.table(["product", "MFLOP", "fg ms", "fg kernel ms", "numpy ms", "torch ms", "fg GF/s",
                        "fg kernel GF/s", "numpy GF/s", "torch GF/s", "numpy/fg", "torch/fg", "numpy/fg kernel",
                        "fg path"],
                       rows), flush=True)
    info = {"machine": common.machine_info(), "blas": common.blas_info(torch),
            "versions": common.versions(["torch"])}
    info["machine"]["load_average_at_start"] = load_before
    common.report_to_parent({"info": info, "threads": args.child_threads, "results": results})


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts, one child process each")
    p.add_argument("--seconds", type=float, default=1.0, help="timed seconds per contestant and product")
    p.add_argument("--rounds", type=int, default=5, help="turns the timed seconds are split into")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="fusegrad's and torch's element type")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 thread, squares up to 1024, B=64, 0.2 s")
    p.add_argument("--child-threads", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.squares, args.batches = SQUARE, MLP_BATCHES
    if args.quick:
        args.threads, args.seconds, args.rounds, args.squares, args.batches = "1", 0.2, 2, SQUARE[:3], (64,)
    try:
        args.threads = [int(t) for t in str(args.threads).split(",")]
    except ValueError:
        p.error("--threads takes comma-separated integers")
    if min(args.threads) <= 0 or args.seconds <= 0 or args.rounds <= 0:
        p.error("threads, seconds and rounds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child_threads is not None:
        child(args)
        return 0
    runs = common.run_children(__file__, argv, args.threads)
    print()
    print(common.header_lines(runs[0]["info"]))
    for run in runs:
        m, big = run["info"]["machine"], run["results"].get("square 1024")
        line = f"# {run['threads']} thread(s), on CPUs {m['cpus']}: load average {m['load_average_at_start']} " \
               f"at start, {m['load_average']} at end; BLAS numpy {run['info']['blas']['numpy']}"
        if big:
            line += f"; 1024^3: fusegrad {big['fusegrad_gflops']:.0f} GFLOP/s = " \
                    f"{100 * big['fusegrad_gflops'] / big['numpy_gflops']:.0f}% of numpy's {big['numpy_gflops']:.0f}"
        print(line)
    print(json.dumps({"benchmark": "matmul", "dtype": args.dtype, "seconds": args.seconds, "rounds": args.rounds,
                      "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

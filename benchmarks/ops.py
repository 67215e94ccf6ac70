"""fusegrad vs numpy vs PyTorch (when installed) on float32 workloads, plus the cost of building ops.

    python3 benchmarks/ops.py [--repeats 10] [--torch-compile]

Every workload is checked against numpy once, run once untimed (kernels compile, caches warm),
then `--repeats` rounds in which the contestants take turns, so a change in machine load hits
all of them alike; the table shows medians. fusegrad's time is what a user waits for: building
the lazy graph plus realizing it; the `kernels` column is its kernels' time alone (fg.profile).
Ratios are peer time / fusegrad time, so > 1 means fusegrad is faster. numpy computes the
elementwise chain unfused, one temporary per op, on one thread; PyTorch and fusegrad use every
core. The last line is the whole result as JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import fusegrad as fg
from fusegrad.runtime import registry


def optional_import(name: str) -> Any:
    """The module, or None when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@dataclass
class Workload:
    name: str
    shapes: list[tuple[int, ...]]
    fusegrad: Callable[..., fg.Tensor]
    numpy: Callable[..., np.ndarray]
    torch: Callable[..., Any]  # takes the torch module, then the inputs
    rtol: float


def _chain_np(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    return np.exp(np.maximum(a * b + c, 0) * d)


# an embedding table's gradient: 2048 token rows summed into a GPT-2-sized vocabulary, repeats included
TOKENS = np.random.default_rng(1).integers(0, 50257, 2048)
TOKENS_FG = fg.tensor(TOKENS)


def _index_add_np(table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = table.copy()
    np.add.at(out, TOKENS, rows)
    return out


WORKLOADS = [
    Workload("elementwise 4M: ((a*b+c).relu()*d).exp()", [(1 << 22,)] * 4,
             lambda a, b, c, d: ((a * b + c).relu() * d).exp(), _chain_np,
             lambda tc, a, b, c, d: tc.exp(tc.relu(a * b + c) * d), 1e-5),
    Workload("reduction 4096x4096: (a*b).sum(1)", [(4096, 4096)] * 2,
             lambda a, b: (a * b).sum(1), lambda a, b: (a * b).sum(1), lambda tc, a, b: (a * b).sum(1), 1e-3),
    Workload("matmul 1024x1024 @ 1024x1024", [(1024, 1024)] * 2,
             lambda a, b: a @ b, lambda a, b: a @ b, lambda tc, a, b: a @ b, 1e-3),
    Workload("index_add 50257x256 table += 2048 rows at token ids", [(50257, 256), (2048, 256)],
             lambda t, r: t.index_add(0, TOKENS_FG, r), _index_add_np,
             lambda tc, t, r: t.index_add(0, tc.from_numpy(TOKENS), r), 1e-5),
]


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: compile kernels, fill caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(contestants: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Seconds per run of each contestant, taking turns each round so load changes hit all alike."""
    for fn in contestants.values():
        fn()  # warm-up: compile kernels, fill caches
    times: dict[str, list[float]] = {name: [] for name in contestants}
    for _ in range(repeats):
        for name, fn in contestants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def run_workload(w: Workload, repeats: int, torch: Any, torch_compile: bool) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s, dtype=np.float32) for s in w.shapes]
    tensors = [fg.tensor(a) for a in arrays]
    reference = w.numpy(*arrays)
    np.testing.assert_allclose(w.fusegrad(*tensors).numpy(), reference, rtol=w.rtol, atol=w.rtol)
    launches: list[list[fg.KernelLaunch]] = []

    def ours() -> None:
        with fg.profile() as p:
            w.fusegrad(*tensors).realize()
        launches.append(p.kernels)

    contestants: dict[str, Callable[[], Any]] = {"fusegrad": ours, "numpy": lambda: w.numpy(*arrays)}
    if torch is not None:
        t_in = [torch.from_numpy(a) for a in arrays]
        contestants["torch"] = lambda: w.torch(torch, *t_in)
        if torch_compile:
            compiled = torch.compile(w.torch)
            contestants["torch_compile"] = lambda: compiled(torch, *t_in)
    with torch.no_grad() if torch is not None else contextlib.nullcontext():
        times = interleaved(contestants, repeats)
    result: dict[str, Any] = {}
    for name in ("fusegrad", "numpy", "torch", "torch_compile"):
        result[f"{name}_s"] = statistics.median(times[name]) if name in times else None
        result[f"{name}_min_s"] = min(times[name]) if name in times else None
    timed = launches[1:]  # launches[0] is the warm-up
    result["fusegrad_kernel_s"] = statistics.median(sum(k.seconds for k in run) for run in timed)
    result["fusegrad_kernels"] = len(timed[-1])
    return result


def lazy_op_cost(n_ops: int, repeats: int) -> dict[str, float]:
    """Microseconds to build one lazy op in Python (no realization), with and without autograd recording."""
    base = fg.tensor(np.ones(64, dtype=np.float32))

    def build(w: fg.Tensor) -> fg.Tensor:
        y = base
        for _ in range(n_ops // 2):
            y = y * w  # tensor op tensor, same shape
            y = y + 1.0  # tensor op Python scalar
        return y

    plain = fg.tensor(np.ones(64, dtype=np.float32))
    tracked = fg.tensor(np.ones(64, dtype=np.float32), requires_grad=True)
    return {
        "lazy_op_us": median_seconds(lambda: build(plain), repeats) / n_ops * 1e6,
        "lazy_op_autograd_us": median_seconds(lambda: build(tracked), repeats) / n_ops * 1e6,
        # a 1-kernel graph whose structure was seen before: plan and kernels are reused
        "realize_seen_graph_us": median_seconds(lambda: (base * plain + 1.0).realize(), repeats * 20) * 1e6,
    }


def blas_info(torch: Any) -> dict[str, str]:
    """Which BLAS kernel numpy and torch run (threadpoolctl sees shared libraries; MKL in torch is static)."""
    threadpoolctl = optional_import("threadpoolctl")
    info = {"numpy": "unknown", "torch": "unknown" if torch is not None else "not installed"}
    if threadpoolctl is not None:
        for lib in threadpoolctl.threadpool_info():
            if lib.get("user_api") != "blas":
                continue
            text = f"{lib['internal_api']} {lib.get('version')} {lib.get('architecture', '')} " \
                   f"({lib['num_threads']} threads)"
            owner = "torch" if "torch" in lib["filepath"] else "numpy" if "numpy" in lib["filepath"] else None
            if owner:
                info[owner] = text.replace("  ", " ")
    if torch is not None and info["torch"] == "unknown":
        blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
        info["torch"] = f"{blas.group(1) if blas else 'unknown'} (statically linked; threadpoolctl cannot see it), " \
                        f"CPU capability {torch.backends.cpu.get_cpu_capability()} ({torch.get_num_threads()} threads)"
    return info


def machine(torch: Any) -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            found = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            model = found.group(1) if found else model
    except OSError:
        pass
    return {
        "cpu": model, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None, "fusegrad": fg.__version__,
        "compiler": registry.get("cpu").compiler()[1],
        "threadpoolctl": optional_import("threadpoolctl") is not None,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT"),
        "load_average_1min": round(os.getloadavg()[0], 2),  # other processes competing for the cores
    }


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:9.2f}"


def fmt_ratio(peer: float | None, ours: float) -> str:
    return "-" if peer is None else f"{peer / ours:6.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--lazy-ops", type=int, default=10_000)
    parser.add_argument("--torch-compile", action="store_true", help="also time torch.compile (column tc)")
    args = parser.parse_args(argv)

    # measured first, before torch's import fills the heap that Python's garbage collector walks
    lazy = lazy_op_cost(args.lazy_ops, max(3, args.repeats // 2))
    torch = optional_import("torch")
    env, blas = machine(torch), blas_info(torch)
    print(f"# {env['cpu']}, {env['cores']} cores; Python {env['python']}, numpy {env['numpy']}, "
          f"torch {env['torch']}, {env['compiler']}; load average {env['load_average_1min']}")
    print(f"# BLAS: numpy {blas['numpy']}; torch {blas['torch']}")
    results = {}
    header = f"{'workload (float32, median ms)':<44} {'fusegrad':>9} {'kernels':>9} {'numpy':>9} {'torch':>9}"
    header += f" {'tc':>9}" if args.torch_compile else ""
    header += f" {'numpy/fg':>9} {'torch/fg':>9}"
    header += f" {'tc/fg':>9}" if args.torch_compile else ""
    print(header)
    for w in WORKLOADS:
        r = run_workload(w, args.repeats, torch, args.torch_compile)
        results[w.name] = r
        ours = r["fusegrad_s"]
        line = f"{w.name:<44} {fmt_ms(ours)} {fmt_ms(r['fusegrad_kernel_s'])} {fmt_ms(r['numpy_s'])} " \
               f"{fmt_ms(r['torch_s'])}"
        line += f" {fmt_ms(r['torch_compile_s'])}" if args.torch_compile else ""
        line += f" {fmt_ratio(r['numpy_s'], ours):>9} {fmt_ratio(r['torch_s'], ours):>9}"
        line += f" {fmt_ratio(r['torch_compile_s'], ours):>9}" if args.torch_compile else ""
        print(line)
    print(f"building one lazy op: {lazy['lazy_op_us']:.2f} us ({lazy['lazy_op_autograd_us']:.2f} us recording "
          f"autograd); realizing a seen 1-kernel graph: {lazy['realize_seen_graph_us']:.1f} us")
    print(json.dumps({"machine": env, "blas": blas, "repeats": args.repeats, "results": results, **lazy}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared machinery of the training and matmul benchmarks.

- Threads: a benchmark's parent process starts one child per thread count n, restricted to n
  CPUs and with the thread variables of every library set in its environment (they are read
  when a library loads, so they cannot change inside one process), then collects each child's
  result line.
- Timing: contestants take turns in rounds (round-robin, the starting one rotating), each round
  running one contestant for a fixed time and synchronizing at its end, so a change in machine
  load hits every contestant alike. Warm-up calls (compilation, caches) are timed apart.
- Facts: CPU model, versions, fusegrad's git commit and compiler, which BLAS kernel numpy and
  torch run (threadpoolctl), the load average, and the machine's measured fp32 GEMM rate.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import ctypes
import gc
import importlib
import importlib.metadata
import itertools
import json
import os
import platform
import pstats
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "@@child-result "  # marks the line a child prints for its parent


def optional_import(name: str) -> Any:
    """The module, or None when it is not installed (or fails to import)."""
    try:
        return importlib.import_module(name)
    except Exception:  # a broken optional peer must not stop the benchmark
        return None


# ---- one child process per thread count -------------------------------------------------

def child_env(threads: int) -> dict[str, str]:
    """The environment that makes every library of a child use `threads` threads."""
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUM_CPU_THREADS"):
        env[key] = str(threads)  # NUM_CPU_THREADS: tinygrad's CPU backend
    return env


def child_cpus(threads: int) -> set[int]:
    """The CPUs a child runs on: `threads` of ours.

    XLA's CPU runtime ignores every thread setting tried (measured: 1.7 cores busy under
    OMP_NUM_THREADS=1 and XLA_FLAGS intra_op_parallelism_threads=1), so only the affinity mask
    makes a one-thread JAX step run on one core.
    """
    allowed = sorted(os.sched_getaffinity(0))
    return set(allowed[-threads:])  # the last ones: the first CPU takes more of the interrupts


def run_children(script: str, argv: Sequence[str], thread_counts: Sequence[int]) -> list[dict[str, Any]]:
    """Run `script argv --child-threads n` for each n on n CPUs, echo its output, return the result of each."""
    results = []
    for n in thread_counts:
        cmd = [sys.executable, script, *argv, "--child-threads", str(n)]
        cpus = child_cpus(n)
        proc = subprocess.Popen(cmd, env=child_env(n), stdout=subprocess.PIPE, text=True, bufsize=1,
                                preexec_fn=lambda cpus=cpus: os.sched_setaffinity(0, cpus))
        result = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
            else:
                print(line, end="", flush=True)
        if proc.wait() != 0 or result is None:
            raise SystemExit(f"child for {n} thread(s) failed (exit {proc.returncode})")
        results.append(result)
    return results


def report_to_parent(result: dict[str, Any]) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def set_threads(threads: int, torch: Any) -> None:
    """Inside a child: tell fusegrad and torch the thread count (the environment told the rest)."""
    import fusegrad as fg
    fg.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)


# ---- machine facts ---------------------------------------------------------------------

def _run(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    except OSError:
        return ""
    return out.stdout.strip()


def fusegrad_commit() -> str:
    """Short commit of the working tree, '+dirty' when it has uncommitted changes."""
    commit = _run(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    return commit + ("+dirty" if dirty else "")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            found = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
    except OSError:
        return platform.processor() or "unknown"
    return found.group(1).strip() if found else "unknown"


def versions(peers: Sequence[str]) -> dict[str, str | None]:
    """Versions of python, fusegrad (+ commit and compiler) and each installed peer package (None: absent)."""
    import fusegrad as fg
    from fusegrad.runtime import registry
    out: dict[str, str | None] = {"python": platform.python_version(), "numpy": np.__version__,
                                  "fusegrad": f"{fg.__version__} ({fusegrad_commit()})",
                                  "fusegrad_compiler": registry.get("cpu").compiler()[1]}
    for name in peers:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(), "cores": os.cpu_count(), "os": platform.platform(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT"),
        "cpus": sorted(os.sched_getaffinity(0)),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def blas_info(torch: Any) -> dict[str, str]:
    """Which BLAS numpy and torch call: threadpoolctl sees shared libraries; torch's MKL is static."""
    threadpoolctl = optional_import("threadpoolctl")
    info = {"numpy": _openblas_core() if threadpoolctl is None else "unknown"}
    info["torch"] = "not installed" if torch is None else "unknown"
    if threadpoolctl is not None:
        for lib in threadpoolctl.threadpool_info():
            if lib.get("user_api") != "blas":
                continue
            owner = "torch" if "torch" in lib["filepath"] else "numpy" if "numpy" in lib["filepath"] else None
            if owner:
                arch = f" {lib['architecture']}" if lib.get("architecture") else ""
                info[owner] = f"{lib['internal_api']} {lib.get('version')}{arch}, {lib['num_threads']} threads"
    if torch is not None and info["torch"] == "unknown":
        found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
        info["torch"] = (f"{found.group(1) if found else 'unknown'} (linked statically, invisible to threadpoolctl), "
                         f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads")
    return info


def _openblas_core() -> str:
    """numpy's OpenBLAS and the kernel it picked, asked through ctypes when threadpoolctl is missing."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "numpy" in line}
    except OSError:
        paths = set()
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                corename = getattr(lib, f"{prefix}_get_corename{suffix}", None)
                config = getattr(lib, f"{prefix}_get_config{suffix}", None)
                if corename is not None and config is not None:
                    corename.restype = config.restype = ctypes.c_char_p
                    return f"OpenBLAS {config().decode().split()[1]}, {corename().decode()} kernel (via ctypes)"
    return "unknown (pip install threadpoolctl)"


def gemm_rate(torch: Any, n: int = 1024, repeats: int = 15) -> dict[str, float]:
    """Best fp32 GFLOP/s of numpy's and torch's n^3 matmul now: the machine's GEMM rate for the FLOP floor."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    fns: dict[str, Callable[[], Any]] = {"numpy": lambda: a @ b}
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        fns["torch"] = lambda: ta @ tb
    rates = {}
    for name, fn in fns.items():
        fn()
        best = min(_seconds(fn) for _ in range(repeats))
        rates[name] = 2 * n ** 3 / best / 1e9
    rates["best"] = max(rates.values())
    return rates


def _seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---- interleaved timing ----------------------------------------------------------------

@dataclass
class Contestant:
    """One way of running the workload: `step()` runs one step, `sync(out)` waits for its result."""
    name: str
    step: Callable[[], Any]
    sync: Callable[[Any], Any] = lambda out: out
    first_call_s: float = 0.0  # the first call: tracing, compilation, cold caches
    first_result: float | None = None  # the first step's loss: equal across contestants when they agree
    rounds_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.rounds_ms)


def warm_up(c: Contestant, calls: int = 3) -> Contestant:
    """Time the first call (compilation) apart, then a few more untimed calls (JIT capture, caches)."""
    start = time.perf_counter()
    out = c.sync(c.step())
    c.first_call_s = time.perf_counter() - start
    try:
        c.first_result = float(out)
    except Exception:  # not a scalar (a matmul's product; each library raises its own error): nothing to compare
        c.first_result = None
    for _ in range(calls):
        c.sync(c.step())
    return c


def timed_round(c: Contestant, seconds: float) -> float:
    """Milliseconds per step of `c` over about `seconds`, waiting for the last step's result."""
    steps = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        out = c.step()
        steps += 1
        if time.perf_counter() >= deadline:
            break
    c.sync(out)
    return (time.perf_counter() - start) / steps * 1e3


def interleave(contestants: Sequence[Contestant], seconds: float, rounds: int) -> None:
    """Fill each contestant's `rounds_ms`: `rounds` turns of `seconds / rounds` each, the order rotating."""
    per_round = seconds / rounds
    for r in range(rounds):
        order = list(contestants[r % len(contestants):]) + list(contestants[:r % len(contestants)])
        for c in order:
            c.rounds_ms.append(timed_round(c, per_round))


# ---- training steps shared by the MNIST benchmarks ---------------------------------------

# Fashion-MNIST's training-set pixel statistics (the MNIST example normalizes with the same)
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530


def load_batches(batch: int, count: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """`count` batches of normalized images (batch, 1, 28, 28) float32 and int64 labels, and their source.

    Real Fashion-MNIST training images when the data set is installed, else uniform random pixels and
    labels of the same shapes and dtypes (the step's cost does not depend on the values).
    """
    import fusegrad as fg
    rng = np.random.default_rng(seed)
    try:
        data = fg.data.datasets.FashionMNIST(train=True)
    except fg.Error as e:
        images = rng.random((count * batch, 1, 28, 28), dtype=np.float32)
        labels = rng.integers(0, 10, count * batch)
        source = f"random data (Fashion-MNIST not found: {str(e).split(';')[0]})"
    else:
        x, y = data.get_batch(rng.choice(len(data), count * batch, replace=False))
        images, labels = x.numpy(), y.numpy()
        source = f"Fashion-MNIST training images from {data.root}"
    images = ((images - PIXEL_MEAN) / PIXEL_STD).astype(np.float32)  # host-side data preparation
    xs = [images[i * batch:(i + 1) * batch] for i in range(count)]
    ys = [labels[i * batch:(i + 1) * batch].astype(np.int64) for i in range(count)]
    return xs, ys, source


def cycler(n: int) -> Callable[[], int]:
    """A function returning 0, 1, ..., n-1, 0, ... : which prepared batch the next step takes."""
    it = itertools.cycle(range(n))
    return lambda: next(it)


Skipped = dict[str, str]  # contestant name -> why it did not run


def fusegrad_contestants(make_model: Callable[[], Any], xs: list[np.ndarray], ys: list[np.ndarray], lr: float,
                         skipped: Skipped, device: str = "cpu", autocast: str | None = None,
                         sgd: dict[str, float] | None = None) -> list[Contestant]:
    """fusegrad eager (graph built and realized every step) and, when fusegrad has it, `fg.jit` of that
    step, with the model and the batches on `device`; with `autocast` (a dtype name) also the jitted step
    with its forward and loss under `fg.autocast` of that dtype ("fusegrad jit autocast"). `sgd`: more
    arguments of the optimizer (momentum, weight_decay)."""
    import fusegrad as fg
    from fusegrad import optim
    from fusegrad.nn import functional as F

    def make_step(amp: str | None = None) -> Callable[[Any, Any], Any]:
        model = make_model().to(device)
        opt = optim.SGD(model.parameters(), lr=lr, **(sgd or {}))

        def train_step(x: Any, y: Any) -> Any:
            with fg.autocast(fg.device(device).type, dtype=getattr(fg, amp)) if amp else contextlib.nullcontext():
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss
        return train_step

    tx, ty = [fg.tensor(x, device=device) for x in xs], [fg.tensor(y, device=device) for y in ys]
    out = []
    variants = [("fusegrad eager", None), ("fusegrad jit", getattr(fg, "jit", None))]
    if autocast is not None:
        variants.append(("fusegrad jit autocast", getattr(fg, "jit", None)))
    for name, wrap in variants:
        if name.startswith("fusegrad jit") and wrap is None:
            skipped[name] = "not available (this fusegrad has no fg.jit)"
            continue
        step_fn = make_step(autocast if name.endswith("autocast") else None)
        fn = step_fn if wrap is None else wrap(step_fn)
        nxt = cycler(len(xs))

        def step(fn: Callable[[Any, Any], Any] = fn, nxt: Callable[[], int] = nxt) -> Any:
            i = nxt()
            return fn(tx[i], ty[i])
        out.append(Contestant(name, step, lambda loss: loss.numpy()))
    return out


def torch_train_step(torch: Any, make_model: Callable[[], Any], weights: list[np.ndarray] | dict[str, np.ndarray],
                     lr: float, device: str = "cpu", autocast: str | None = None,
                     sgd: dict[str, float] | None = None) -> Callable[[Any, Any], Any]:
    """A PyTorch training step (SGD with the extra arguments `sgd`, cross-entropy) of a fresh model on `device`
    holding `weights` (its parameters in order, or a whole state dict), its forward and loss under
    torch.autocast of `autocast` when given."""
    F = torch.nn.functional
    model = make_model()
    if isinstance(weights, dict):
        model.load_state_dict({k: torch.from_numpy(w) for k, w in weights.items()})
    else:
        with torch.no_grad():
            for p, w in zip(model.parameters(), weights, strict=True):
                p.copy_(torch.from_numpy(w))
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, **(sgd or {}))

    def train_step(x: Any, y: Any) -> Any:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.split(":")[0], dtype=getattr(torch, autocast)) if autocast else \
                contextlib.nullcontext():
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return train_step


def torch_contestants(torch: Any, make_model: Callable[[], Any], weights: list[np.ndarray] | dict[str, np.ndarray],
                      xs: list[np.ndarray], ys: list[np.ndarray], lr: float, peers: set[str], skipped: Skipped,
                      autocast: str | None = None, device: str = "cpu",
                      sgd: dict[str, float] | None = None) -> list[Contestant]:
    """PyTorch eager ("torch" in peers) and `torch.compile` of the whole step ("torch.compile" in peers) on
    `device`; with `autocast`, also the eager step under torch.autocast ("torch eager autocast")."""
    if torch is None or not (device == "cpu" or device.startswith("cuda") and torch.cuda.is_available()):
        skipped["torch eager"] = skipped["torch.compile"] = f"torch not installed or without {device}"
        return []
    tx, ty = [torch.from_numpy(x).to(device) for x in xs], [torch.from_numpy(y).to(device) for y in ys]
    # on the CPU torch runs synchronously; a GPU's queue is drained by reading the loss
    sync = (lambda loss: loss.detach()) if device == "cpu" else (lambda loss: float(loss))
    out = []
    variants = [v for v in (("torch eager", False), ("torch.compile", True)) if v[0].split()[0] in peers]
    if autocast is not None and "torch" in peers:
        variants.append(("torch eager autocast", False))
    for name, compiled in variants:
        fn = torch_train_step(torch, make_model, weights, lr, device, autocast if name.endswith("autocast") else None,
                              sgd)
        if compiled:
            torch._dynamo.reset()
            fn = torch.compile(fn, dynamic=False)  # mode "default"; one static graph per batch size
        nxt = cycler(len(xs))

        def step(fn: Callable[[Any, Any], Any] = fn, nxt: Callable[[], int] = nxt) -> Any:
            i = nxt()
            return fn(tx[i], ty[i])
        out.append(Contestant(name, step, sync))
    return out


def race(contestants: Sequence[Contestant], skipped: Skipped, seconds: float, rounds: int,
         calls: int = 3) -> list[Contestant]:
    """Warm each contestant (`calls` untimed calls after the first), then time them interleaved; those that
    fail are named in `skipped` and left out of the returned list."""
    ready: list[Contestant] = []
    for c in contestants:
        try:
            ready.append(warm_up(c, calls))
        except Exception as e:  # a peer that fails to compile or run is reported, not fatal
            skipped[c.name] = f"failed: {type(e).__name__}: {str(e).strip().splitlines()[0][:160]}"
    # The peers' imports (torch.compile, jax) leave millions of long-lived objects; without freezing
    # them, every full collection triggered by a step that allocates many small Python objects walks
    # them all (measured: 4 ms -> 20 ms per fusegrad eager step). Frozen, they cost nobody anything.
    gc.collect()
    gc.freeze()
    try:
        interleave(ready, seconds, rounds)
    finally:
        gc.unfreeze()
    return ready


def run_config(title: str, builders: Sequence[Callable[[Skipped], list[Contestant]]], flops: float,
               gemm: dict[str, float], seconds: float, rounds: int) -> dict[str, Any]:
    """Build and warm every contestant, time them interleaved, print a table; the result as a dict."""
    skipped: Skipped = {}
    ready = race([c for build in builders for c in build(skipped)], skipped, seconds, rounds)
    floor_ms = flops / (gemm["best"] * 1e9) * 1e3
    ours = {name: next((c.median_ms for c in ready if c.name == name), None)
            for name in ("fusegrad eager", "fusegrad jit")}
    print(f"\n{title}: {flops / 1e6:.1f} MFLOP/step; FLOP floor {floor_ms:.3f} ms at the measured "
          f"{gemm['best']:.0f} GFLOP/s (" + ", ".join(f"{k} {v:.0f}" for k, v in gemm.items() if k != "best") + ")")
    rows = []
    results: dict[str, Any] = {}
    for c in ready:
        results[c.name] = {"ms": c.median_ms, "min_ms": min(c.rounds_ms), "steps_per_s": 1e3 / c.median_ms,
                           "first_call_s": c.first_call_s, "first_loss": c.first_result,
                           "floor_fraction": floor_ms / c.median_ms, "rounds_ms": c.rounds_ms}
        rows.append([c.name, f"{c.median_ms:.3f}", f"{1e3 / c.median_ms:.0f}", f"{min(c.rounds_ms):.3f}",
                     f"{c.first_call_s:.2f}", f"{c.first_result:.5f}" if c.first_result is not None else "-",
                     f"{100 * floor_ms / c.median_ms:.1f}%",
                     ratio(c.median_ms, ours["fusegrad eager"]), ratio(c.median_ms, ours["fusegrad jit"])])
    # speedup = this contestant's time / fusegrad's time: above 1, fusegrad is faster
    print(table(["contestant", "ms/step", "steps/s", "min ms", "1st call s", "1st loss", "of floor", "fg-eager speedup",
                 "fg-jit speedup"], rows))
    for name, why in skipped.items():
        print(f"{name}: {why}")
    return {"flops": flops, "floor_ms": floor_ms, "gemm_gflops": gemm, "results": results, "skipped": skipped}


def training_child(args: argparse.Namespace, workload: str, builders: Callable[..., tuple[list[Any], str]],
                   step_flops: Callable[[int], float]) -> None:
    """A child's work: every batch size at its thread count, contestants interleaved; reports to the parent.

    `builders(batch, peers, torch, autocast=...)` gives the functions making each peer's contestants, and the
    data source.
    """
    torch = optional_import("torch")  # before fusegrad: torch's OpenMP keeps its default wait policy
    set_threads(args.child_threads, torch)
    load_before = machine_info()["load_average"]
    gemm: dict[str, float] = {}
    configs = {}
    source = ""
    for batch in args.batch_sizes:
        # re-measured before each configuration, keeping the best: a moment of load must not lower the floor
        gemm = {k: max(v, gemm.get(k, 0.0)) for k, v in gemm_rate(torch).items()}
        made, source = builders(batch, set(args.peers), torch, autocast=args.autocast)
        title = f"{workload}, B={batch}, {args.child_threads} thread(s)"
        result = run_config(title, made, step_flops(batch), gemm, args.seconds, args.rounds)
        configs[f"B={batch},threads={args.child_threads}"] = {"batch": batch, "threads": args.child_threads, **result}
    info = {"machine": machine_info(), "blas": blas_info(torch),
            "versions": versions(["torch", "jax", "jaxlib", "tinygrad"])}
    info["machine"]["load_average_at_start"] = load_before
    report_to_parent({"info": info, "data": source, "configs": configs})


def profile_steps(c: Contestant, steps: int, warm_calls: int = 5) -> None:
    """Where a step's time goes: plain ms/step, its kernels (fg.profile), then cProfile's top functions."""
    import fusegrad as fg
    warm_up(c, calls=warm_calls)
    plain_ms = timed_round(c, seconds=2.0)
    with fg.profile() as prof:
        for _ in range(steps):
            c.sync(c.step())
    per_kernel: dict[str, list[Any]] = {}
    for k in prof.kernels:
        entry = per_kernel.setdefault(k.name, [0.0, k.op, k.shape])
        entry[0] += k.seconds
    kernel_ms = sum(e[0] for e in per_kernel.values()) / steps * 1e3
    print(f"{c.name}: {plain_ms:.3f} ms/step without profilers; its {len(prof.kernels) // steps} kernels take "
          f"{kernel_ms:.3f} ms, so {plain_ms - kernel_ms:.3f} ms ({100 * (1 - kernel_ms / plain_ms):.0f}%) is "
          f"outside them (eager: building the graph, autograd, scheduling; both: launching)")
    rows = [[name, f"{t / steps * 1e3:.4f}", f"{100 * t / steps * 1e3 / kernel_ms:.1f}%",
             op if len(op) <= 48 else op[:45] + "...", str(shape)]
            for name, (t, op, shape) in sorted(per_kernel.items(), key=lambda kv: -kv[1][0])[:12]]
    print(table(["kernel", "ms/step", "of kernels", "ops", "shape"], rows))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        c.sync(c.step())
    profiler.disable()
    print(f"\ncProfile of {steps} steps (its own overhead inflates Python time about 3x):")
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(30)


def parse_training_args(argv: Sequence[str], doc: str, peers: Sequence[str], batch_sizes: str,
                        more: Callable[[argparse.ArgumentParser], Any] | None = None) -> argparse.Namespace:
    """The command line shared by the training benchmarks; `more` adds a benchmark's own arguments."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    if more is not None:
        more(p)
    p.add_argument("--batch-sizes", default=batch_sizes, help=f"comma-separated (default {batch_sizes})")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts, one child process each")
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per contestant and configuration")
    p.add_argument("--rounds", type=int, default=10, help="turns the timed seconds are split into")
    p.add_argument("--peers", default=",".join(peers), help=f"subset of {','.join(peers)}")
    p.add_argument("--quick", action="store_true", help="smoke run: first batch size, 1 thread, 0.5 s in 2 rounds")
    p.add_argument("--profile", action="store_true",
                   help="profile fusegrad steps (kernels, cProfile) instead of racing")
    p.add_argument("--autocast", default=None, choices=("bfloat16", "float16"),
                   help="also race the jitted step (and torch eager) with forward and loss under autocast")
    p.add_argument("--child-threads", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.threads, args.seconds, args.rounds = args.batch_sizes.split(",")[0], "1", 0.5, 2
    try:
        args.batch_sizes = [int(b) for b in str(args.batch_sizes).split(",")]
        args.threads = [int(t) for t in str(args.threads).split(",")]
    except ValueError:
        p.error("--batch-sizes and --threads take comma-separated integers")
    args.peers = [s.strip() for s in args.peers.split(",")]
    unknown = set(args.peers) - set(peers)
    if unknown:
        p.error(f"unknown peers {sorted(unknown)}; choose from {','.join(peers)}")
    if min(args.batch_sizes) <= 0 or min(args.threads) <= 0 or args.seconds <= 0 or args.rounds <= 0:
        p.error("batch sizes, threads, seconds and rounds must be positive")
    return args


def print_training_summary(runs: list[dict[str, Any]]) -> None:
    """The machine, then one table over every configuration: ms/step of each contestant, fusegrad's speedups."""
    print()
    print(header_lines(runs[0]["info"]))
    for run in runs:
        threads = ",".join(sorted({str(cfg["threads"]) for cfg in run["configs"].values()}))
        m = run["info"]["machine"]
        print(f"# {threads} thread(s), on CPUs {m['cpus']}: load average {m['load_average_at_start']} at start, "
              f"{m['load_average']} at end")
    print(f"# data: {runs[0]['data']}")
    configs = {key: cfg for run in runs for key, cfg in run["configs"].items()}
    names = list(dict.fromkeys(n for cfg in configs.values() for n in (*cfg["results"], *cfg["skipped"])))
    peers = [n for n in names if not n.startswith("fusegrad")]
    rows, speedups = [], []
    for key, cfg in configs.items():
        ms = {n: cfg["results"][n]["ms"] if n in cfg["results"] else None for n in names}
        rows.append([key, f"{cfg['floor_ms']:.3f}"] + [f"{ms[n]:.3f}" if ms[n] else "-" for n in names])
        speedups.append([key] + [ratio(ms[n], ms.get("fusegrad eager")) for n in peers])
    print("\nSummary: median ms/step (floor: the step's GEMM FLOPs at the measured GEMM rate)")
    print(table(["config", "floor"] + names, rows))
    print("\nfusegrad eager's speedup over each peer (peer time / fusegrad time; above 1: fusegrad faster)")
    print(table(["config"] + peers, speedups))
    if "fusegrad jit autocast" in names:  # the mixed-precision target: autocast no slower than float32
        rows = [[key, ratio(cfg["results"].get("fusegrad jit", {}).get("ms"),
                            cfg["results"].get("fusegrad jit autocast", {}).get("ms")),
                 ratio(cfg["results"].get("torch eager", {}).get("ms"),
                       cfg["results"].get("torch eager autocast", {}).get("ms"))] for key, cfg in configs.items()]
        print("\nautocast's speedup over float32 (float32 time / autocast time; target for fusegrad: >= 1)")
        print(table(["config", "fusegrad jit", "torch eager"], rows))


# ---- printing --------------------------------------------------------------------------

def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in header]] + [[str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [row[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def ratio(peer_ms: float | None, ours_ms: float | None) -> str:
    """peer time / fusegrad time as '2.50x' (above 1: fusegrad is faster)."""
    return "-" if peer_ms is None or ours_ms is None else f"{peer_ms / ours_ms:.2f}x"


def header_lines(info: dict[str, Any]) -> str:
    """Two comment lines naming the machine, versions and BLAS for the top of a report."""
    m, v, blas = info["machine"], info["versions"], info["blas"]
    peers = ", ".join(f"{k} {val}" for k, val in v.items() if k not in ("python", "fusegrad_compiler") and val)
    return (f"# {m['cpu']}, {m['cores']} cores; load average {m['load_average']}; "
            f"OPENBLAS_CORETYPE={m['OPENBLAS_CORETYPE']}, OMP_WAIT_POLICY={m['OMP_WAIT_POLICY']}, "
            f"GOMP_SPINCOUNT={m.get('GOMP_SPINCOUNT')}\n"
            f"# Python {v['python']}; {peers}; kernels by {v['fusegrad_compiler']}\n"
            f"# BLAS: numpy {blas['numpy']}; torch {blas['torch']}")

"""GPU benchmark: Zigrad's MNIST MLP and the MNIST example's CNN training steps, a large fused
elementwise op and matmuls (float32 and bfloat16), fusegrad on `--device` against PyTorch on the same
GPU, in one process run.

    python3 benchmarks/gpu_steps.py --device cuda [--batch-sizes 64,256,1024] [--cnn-batch-sizes 64,1024]
                                    [--seconds 2] [--rounds 6] [--matmul 4096] [--bf16-matmul 4096,8192]
    python3 benchmarks/gpu_steps.py --device opencl --batch-sizes 64 --cnn-batch-sizes ""  # fusegrad only

MLP step = forward, cross-entropy, backward, SGD (lr 0.01) on Fashion-MNIST batches (random data of the
same shapes without the data set), already on the device; CNN step the same for `build_model("cnn")`
(two 3x3 convolutions with batch norm, ReLU and max-pooling, a linear layer). Contestants: fusegrad eager, fusegrad
`fg.jit` (CUDA graphs on CUDA), PyTorch eager, `torch.compile` (mode default and "reduce-overhead"),
and a whole step captured by hand into one `torch.cuda.CUDAGraph` (static inputs refilled by a copy
each step): PyTorch's best. They take turns for `--rounds` rounds after an untimed warm-up (first call
reported apart); each round runs steps back to back for `--seconds / --rounds` and waits for the last.
Medians in ms/step; ratios are peer time / fusegrad jit time (above 1: fusegrad is faster). Every
contestant computes in float32: PyTorch's TF32 is turned off for matmuls and for cuDNN's
convolutions (both default to TF32 on Ampere and newer), so all run at the same precision. The
elementwise row is `a*b+c` on 2^N float32 against the device-to-device copy bandwidth PyTorch
reaches; the matmul row is float32 n^3 against torch.matmul. The bfloat16 rows are n^3 products
with float32 accumulation: fusegrad as the engine runs it (after its cuBLAS race), each side of that
race (the tensor-core kernel and cuBLAS, median of the race's 5 runs on its patterned data) and
torch.matmul on bfloat16 tensors; matmul rows time back-to-back calls and wait once. The last line
is JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial
from typing import Any, Callable

import numpy as np

import common
import mnist_cnn
import mnist_mlp  # the CPU races' models and steps
from common import Contestant, cycler, interleave, warm_up

BATCHES = 8


def torch_steps(torch: Any, workload: Any, weights: list[np.ndarray], xs: list[np.ndarray],
                ys: list[np.ndarray]) -> list[Contestant]:
    """PyTorch's contestants for `workload` (a benchmark module with make_torch_model and LR)."""
    dev = torch.device("cuda")
    tx = [torch.from_numpy(x).to(dev) for x in xs]
    ty = [torch.from_numpy(y).to(dev) for y in ys]

    def make_step() -> Callable[[Any, Any], Any]:
        return common.torch_train_step(torch, partial(workload.make_torch_model, torch), weights, workload.LR, "cuda")

    def sync(loss: Any) -> float:
        torch.cuda.synchronize()
        return float(loss)

    out = []
    for name, mode in (("torch eager", None), ("torch.compile", "default"), ("torch.compile ro", "reduce-overhead")):
        fn = make_step()
        if mode is not None:
            torch._dynamo.reset()
            fn = torch.compile(fn, mode=mode, dynamic=False)
        nxt = cycler(len(xs))
        # reduce-overhead replays CUDA graphs: each call must say a new step begins (outputs get reused)
        begin = torch.compiler.cudagraph_mark_step_begin if mode == "reduce-overhead" else (lambda: None)

        def step(fn: Callable[[Any, Any], Any] = fn, nxt: Callable[[], int] = nxt, begin: Any = begin) -> Any:
            i = nxt()
            begin()
            return fn(tx[i], ty[i])
        out.append(Contestant(name, step, sync))
    out.append(Contestant("torch cuda graph", _graph_step(torch, make_step(), tx, ty), sync))
    return out


def _graph_step(torch: Any, train_step: Callable[[Any, Any], Any], tx: list[Any], ty: list[Any]) -> Callable[[], Any]:
    """The whole step captured once into a CUDA graph; each call refills the static inputs and replays."""
    static_x, static_y = tx[0].clone(), ty[0].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graphs asks
        for _ in range(3):
            train_step(static_x, static_y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = train_step(static_x, static_y)
    nxt = cycler(len(tx))

    def step() -> Any:
        i = nxt()
        static_x.copy_(tx[i])
        static_y.copy_(ty[i])
        graph.replay()
        return static_loss
    return step


def device_ms(fn: Callable[[], Any], sync: Callable[[], Any], repeats: int) -> float:
    """Median ms of `fn` over `repeats` synchronized calls after two warm-up calls."""
    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def kernels(device: str, torch: Any, log2_elements: int, n: int, repeats: int) -> dict[str, Any]:
    """a*b+c over 2^log2_elements float32 vs the device copy bandwidth; float32 n^3 matmul vs torch."""
    import fusegrad as fg
    rng = np.random.default_rng(0)
    from fusegrad.runtime import registry
    dev = registry.get(device)
    numel = 1 << log2_elements
    a, b, c = (fg.tensor(rng.standard_normal(numel, dtype=np.float32), device=device) for _ in range(3))
    out: dict[str, Any] = {"elements": numel}
    out["fusegrad_fma_ms"] = device_ms(lambda: (a * b + c).realize(), dev.synchronize, repeats)
    out["fusegrad_fma_GBps"] = 4 * 4 * numel / out["fusegrad_fma_ms"] / 1e6
    x = fg.tensor(rng.standard_normal((n, n), dtype=np.float32), device=device)
    y = fg.tensor(rng.standard_normal((n, n), dtype=np.float32), device=device)
    got = (x @ y).numpy()
    out["matmul_n"] = n
    out["matmul_max_rel_err"] = float(np.abs(got - x.numpy() @ y.numpy()).max() / np.abs(got).max())
    out["fusegrad_matmul_ms"] = device_ms(lambda: (x @ y).realize(), dev.synchronize, max(3, repeats // 4))
    out["fusegrad_matmul_TFLOPs"] = 2 * n ** 3 / out["fusegrad_matmul_ms"] / 1e9
    if torch is not None and device.startswith("cuda"):
        ta, tb = (torch.randn(numel, device="cuda") for _ in range(2))
        out["torch_copy_ms"] = device_ms(lambda: tb.copy_(ta), torch.cuda.synchronize, repeats)
        out["copy_GBps"] = 2 * 4 * numel / out["torch_copy_ms"] / 1e6
        tx, ty = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
        out["torch_matmul_ms"] = device_ms(lambda: tx @ ty, torch.cuda.synchronize, max(3, repeats // 4))
        out["torch_matmul_TFLOPs"] = 2 * n ** 3 / out["torch_matmul_ms"] / 1e9
    return out


def back_to_back_ms(fn: Callable[[], Any], sync: Callable[[], Any], calls: int) -> float:
    """ms per call of `fn` enqueued `calls` times in a row, waiting once at the end (host work overlaps)."""
    for _ in range(2):
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - start) / calls * 1e3


def bf16_matmul(device: str, torch: Any, n: int, calls: int) -> dict[str, Any]:
    """bfloat16 n^3 through fusegrad's engine (tensor-core kernel or cuBLAS, raced) and torch.matmul."""
    import fusegrad as fg
    from fusegrad.runtime import registry
    dev = registry.get(device)
    rng = np.random.default_rng(1)
    x, y = (fg.tensor(rng.standard_normal((n, n), dtype=np.float32), dtype="bfloat16", device=device)
            for _ in range(2))
    flop = 2 * n ** 3
    got = (x @ y).realize()  # compiles and races the two implementations
    out: dict[str, Any] = {"n": n}
    for key, medians in getattr(dev, "gemm_races", {}).items():
        d = json.loads(key)
        if d["dtype"] == "bfloat16" and (d["m"], d["n"], d["k"]) == (n, n, n):
            for who, seconds in medians.items():
                out[f"race_{who}_TFLOPs"] = flop / seconds / 1e12
    out["fusegrad_ms"] = back_to_back_ms(lambda: (x @ y).realize(), dev.synchronize, calls)
    out["fusegrad_TFLOPs"] = flop / out["fusegrad_ms"] / 1e9
    if torch is not None and device.startswith("cuda"):
        tx, ty = (torch.from_numpy(t.float().numpy()).cuda() for t in (x, y))  # the rounded operands
        reference = tx @ ty  # float32, TF32 off
        error = torch.from_numpy(got.float().numpy()).cuda() - reference
        out["rel_err_vs_float32"] = float(error.norm() / reference.norm())
        bx, by = tx.bfloat16(), ty.bfloat16()
        out["torch_ms"] = back_to_back_ms(lambda: bx @ by, torch.cuda.synchronize, calls)
        out["torch_TFLOPs"] = flop / out["torch_ms"] / 1e9
    return out


def cnn_kernels(device: str, batch: int, top: int = 8) -> list[dict[str, Any]]:
    """The CNN step's most expensive kernels at `batch`: one eager step profiled (each launch timed
    by events) after two warm-up steps. GFLOP/s counts 2 per multiply-add of a contraction."""
    import fusegrad as fg
    xs, ys, _ = common.load_batches(batch, 1)
    (eager, _jit) = common.fusegrad_contestants(mnist_cnn.make_fusegrad_model, xs, ys, mnist_cnn.LR, {},
                                                device=device)
    for _ in range(2):
        eager.sync(eager.step())
    with fg.profile() as p:
        eager.sync(eager.step())
    stats = sorted(p.by_kernel(), key=lambda k: -k.seconds)
    rows = [{"name": k.name, "ms": k.seconds * 1e3, "GFLOPs": k.gflops} for k in stats[:top]]
    print(common.table([f"CNN B={batch} kernel", "ms", "GFLOP/s"],
                       [[r["name"], f"{r['ms']:.3f}", f"{r['GFLOPs']:.0f}"] for r in rows]))
    print(f"CNN B={batch}: {len(stats)} kernels, {p.total_seconds * 1e3:.3f} ms in all")
    return rows


def race_steps(workload: Any, label: str, device: str, batch_sizes: str, seconds: float, rounds: int,
               torch: Any) -> dict[int, dict[str, Any]]:
    """Every contestant's training step of `workload` (mnist_mlp or mnist_cnn) per batch size; prints a table."""
    results: dict[int, dict[str, Any]] = {}
    names: list[str] = []  # every contestant that ran at some batch size
    for batch in [int(b) for b in batch_sizes.split(",") if b]:
        xs, ys, source = common.load_batches(batch, BATCHES)
        weights = [q.numpy() for q in workload.make_fusegrad_model().parameters()]
        contestants = common.fusegrad_contestants(workload.make_fusegrad_model, xs, ys, workload.LR, {},
                                                  device=device)
        if torch is not None:
            contestants += torch_steps(torch, workload, weights, xs, ys)
        ready = []
        for c in contestants:
            try:
                ready.append(warm_up(c))
            except Exception as e:  # noqa: BLE001  (a peer's own failure: reported, the others still run)
                print(f"# {label} B={batch}: {c.name} skipped: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        contestants = ready
        interleave(contestants, seconds, rounds)
        results[batch] = {c.name: {"ms": c.median_ms, "first_call_s": c.first_call_s,
                                   "first_loss": c.first_result} for c in contestants}
        names += [c.name for c in contestants if c.name not in names]
        print(f"# {label} B={batch}: {source}")
    jit = "fusegrad jit"
    peers = [n for n in names if not n.startswith("fusegrad")]
    rows = []
    for b, r in results.items():
        ms = {n: r[n]["ms"] if n in r else None for n in names}
        rows.append([f"B={b}"] + [f"{ms[n]:.3f}" if ms[n] else "-" for n in names]
                    + [common.ratio(ms[n], ms[jit]) for n in peers])
    if rows:
        print(common.table([f"{label} step ms"] + names + [f"{n}/jit" for n in peers], rows))
    for b, r in results.items():
        print(f"{label} first losses, B={b}:", {n: round(v["first_loss"], 5) for n, v in r.items()})
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-sizes", default="64,256,1024", help="MLP batch sizes (empty: none)")
    p.add_argument("--cnn-batch-sizes", default="64,1024", help="CNN batch sizes (empty: none)")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per contestant and batch size")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--elements-log2", type=int, default=28, help="a*b+c over 2^N float32")
    p.add_argument("--matmul", type=int, default=4096, help="n of the float32 n^3 matmul")
    p.add_argument("--bf16-matmul", default="4096,8192", help="n of the bfloat16 n^3 matmuls (empty: none)")
    p.add_argument("--cnn-kernels", default="", help="CNN batch sizes whose step kernels are profiled (empty: none)")
    p.add_argument("--skip-kernels", action="store_true", help="no elementwise and matmul rows")
    args = p.parse_args(argv)
    from fusegrad.runtime import registry
    torch = common.optional_import("torch")
    if torch is not None and not (args.device.startswith("cuda") and torch.cuda.is_available()):
        torch = None  # PyTorch only competes on the same CUDA GPU
    if torch is not None:  # float32 everywhere, as fusegrad computes (PyTorch defaults to TF32 in convolutions)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    dev = registry.get(args.device)
    info = {"device": args.device, "name": getattr(dev, "device_name", args.device),
            "driver": getattr(dev, "driver_version", None), "fusegrad": common.fusegrad_commit(),
            "torch": getattr(torch, "__version__", None)}
    print(f"# {info}")
    results: dict[str, Any] = {"machine": info}
    results["steps"] = race_steps(mnist_mlp, "MLP", args.device, args.batch_sizes, args.seconds, args.rounds, torch)
    results["cnn_steps"] = race_steps(mnist_cnn, "CNN", args.device, args.cnn_batch_sizes, args.seconds, args.rounds,
                                      torch)
    results["cnn_kernels"] = {b: cnn_kernels(args.device, int(b)) for b in args.cnn_kernels.split(",") if b}
    if args.skip_kernels:
        print(json.dumps({"benchmark": "gpu_steps", **results}))
        return 0
    k = kernels(args.device, torch, args.elements_log2, args.matmul, repeats=20)
    results["kernels"] = k
    line = f"a*b+c on 2^{args.elements_log2} float32: {k['fusegrad_fma_ms']:.3f} ms = {k['fusegrad_fma_GBps']:.0f} GB/s"
    if "copy_GBps" in k:
        line += f" ({k['fusegrad_fma_GBps'] / k['copy_GBps']:.0%} of the {k['copy_GBps']:.0f} GB/s device copy)"
    print(line)
    line = f"matmul {args.matmul}^3 float32: {k['fusegrad_matmul_ms']:.2f} ms, "
    line += f"{k['fusegrad_matmul_TFLOPs']:.2f} TFLOP/s"
    if "torch_matmul_TFLOPs" in k:
        share = k["fusegrad_matmul_TFLOPs"] / k["torch_matmul_TFLOPs"]
        line += f" vs torch {k['torch_matmul_TFLOPs']:.1f} ({share:.0%})"
    print(line + f"; max rel err {k['matmul_max_rel_err']:.1e}")
    sizes = [int(n) for n in args.bf16_matmul.split(",") if n]
    results["bf16_matmul"] = [bf16_matmul(args.device, torch, n, calls=20) for n in sizes]
    for m in results["bf16_matmul"]:
        line = f"matmul {m['n']}^3 bfloat16: fusegrad {m['fusegrad_ms']:.3f} ms = {m['fusegrad_TFLOPs']:.0f} TFLOP/s"
        if "torch_TFLOPs" in m:
            line += (f" vs torch {m['torch_TFLOPs']:.0f} ({m['fusegrad_TFLOPs'] / m['torch_TFLOPs']:.0%}), "
                     f"rel err vs float32 {m['rel_err_vs_float32']:.1e}")
        races = ", ".join(f"{who} {m[f'race_{who}_TFLOPs']:.0f}" for who in ("generated", "cublas")
                          if f"race_{who}_TFLOPs" in m)
        print(line + (f"; race TFLOP/s: {races}" if races else ""))
    print(json.dumps({"benchmark": "gpu_steps", **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tensor-core products on a CUDA GPU: fusegrad's generated kernel alone against cuBLAS and torch.matmul.

    python3 benchmarks/tensor_cores.py [--dtypes bfloat16,float16,tf32] [--calls 20] [--quick]

For each product shape (square n^3, the GPT `baby` config's linear layers forward and both
gradients, LLM-sized linear layers, attention-shaped batched products, an odd size) and each half
type, three contestants compute the same product from the same operands, float32 accumulation:
the kernel fusegrad generates for it (on sm_90 the wgmma/TMA kernel of codegen/cuda_wgmma.py,
chosen with `gemm_choice = "generated"`), the cuBLAS call fusegrad would race it against
(`cublasGemmStridedBatchedEx`), and `torch.matmul` on the same GPU. Each is launched `--calls`
times back to back between two CUDA events after a warm-up, so host overhead is not counted; the
TFLOP/s and the ratio generated / cuBLAS are printed. The epilogue rows time `gelu(x @ W.T + b)`
without autograd: fusegrad's one kernel (bias and GELU fused into the product) against PyTorch's
`gelu(addmm(b, x, W.T))` (cuBLAS with its bias epilogue, then a GELU kernel). `tf32` races float32
products with TF32 allowed on both sides (`fg.backends.cuda.matmul.allow_tf32`, cuBLAS's
`CUBLAS_COMPUTE_32F_FAST_TF32`, torch's `allow_tf32`) over the shapes whose second operand is stored
transposed (TF32_SHAPES: `wgmma` reads float32 operands only K-major). The last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

import numpy as np

import common

# (label, m, n, k, batch, a transposed, b transposed)
SHAPES = [
    ("square 4096", 4096, 4096, 4096, 1, False, False),
    ("square 8192", 8192, 8192, 8192, 1, False, False),
    ("gpt linear fwd x@W.T", 16384, 1536, 384, 1, False, True),
    ("gpt input grad g@W", 16384, 384, 1536, 1, False, False),
    ("gpt weight grad g.T@x", 1536, 384, 16384, 1, True, False),
    ("llm mlp x@W.T", 8192, 11008, 4096, 1, False, True),
    ("attention q@k.T", 1024, 1024, 64, 96, False, True),
    ("attention p@v", 1024, 64, 1024, 96, False, False),
    ("odd 5000x3000x2000", 5000, 3000, 2000, 1, False, False),
]
QUICK = {"square 4096", "gpt linear fwd x@W.T", "gpt weight grad g.T@x", "attention q@k.T", "square 4096 x@W.T"}
# TF32 (float32 operands, `--dtypes tf32`): wgmma reads them only K-major, so the products whose second
# operand is stored transposed (a Linear's forward, q @ k.T), the squares among them
TF32_SHAPES = [(f"square {n} x@W.T", n, n, n, 1, False, True) for n in (4096, 8192)] + \
    [shape for shape in SHAPES if not shape[5] and shape[6]]


def _operands(m: int, n: int, k: int, batch: int, ta: bool, tb: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
    lead = (batch,) if batch > 1 else ()
    return lead + ((k, m) if ta else (m, k)), lead + ((n, k) if tb else (k, n))


def _apply(a: Any, b: Any, ta: bool, tb: bool) -> Any:
    return (a.transpose(-1, -2) if ta else a) @ (b.transpose(-1, -2) if tb else b)


def _kernel(outputs: Any) -> Any:
    """The one loop IR realizing lazy CPU `outputs`, as the engine lowers it for CUDA."""
    from fusegrad.engine.realize import _kernel_name, kernel_ir, kernel_key, renderer_for
    from fusegrad.engine.schedule import create_schedule, toposort
    nodes = [outputs._node]
    items = [it for it in create_schedule(nodes, toposort(nodes)) if it.alias_of is None]
    assert len(items) == 1, "expected one fused kernel"
    spec = items[0].spec
    return kernel_ir(spec, _kernel_name(spec, kernel_key(spec)), renderer_for("cuda"))


def _events_ms(dev: Any, launch: Callable[[], None], calls: int) -> float:
    launch()
    dev.synchronize()
    return dev.timed(lambda: [launch() for _ in range(calls)]) / calls * 1e3


def _programs(dev: Any, ir: Any) -> tuple[Any, Any, list[Any]]:
    """(generated program, cuBLAS program or None, buffers with random operands) for kernel `ir`."""
    from fusegrad.engine.realize import renderer_for
    from fusegrad.runtime import cublas
    renderer = renderer_for("cuda")
    source = renderer.render_unit([renderer.render_kernel(ir)])
    saved, dev.gemm_choice = dev.gemm_choice, "generated"
    try:
        (generated,) = dev.compile(source, [ir.name], [len(ir.params)])
    finally:
        dev.gemm_choice = saved
    descriptors = cublas.parse_descriptors(source)
    vendor = cublas.CublasProgram(ir.name, dev, descriptors[ir.name]) if ir.name in descriptors else None
    rng = np.random.default_rng(0)
    buffers = []
    for p in ir.params:
        buf = dev.alloc(p.numel * p.dtype.itemsize)
        if not p.output:
            values = rng.standard_normal(p.numel).astype(np.float32)
            if p.dtype.name == "bfloat16":
                values = (values.view(np.uint32) >> 16).astype(np.uint16)
            elif p.dtype.name == "float16":
                values = values.astype(np.float16)
            dev.copy_in(buf, values)
        buffers.append(buf)
    return generated, vendor, buffers


def product(fg: Any, dev: Any, torch: Any, dtype: str, shape: tuple, calls: int) -> dict[str, Any]:
    label, m, n, k, batch, ta, tb = shape
    sa, sb = _operands(m, n, k, batch, ta, tb)
    a, b = (fg.tensor(np.zeros(s, np.float32), dtype=dtype) for s in (sa, sb))
    ir = _kernel(_apply(a, b, ta, tb))
    generated, vendor, buffers = _programs(dev, ir)
    pointers = [buf.handle.ptr for buf in buffers]
    flop = 2.0 * m * n * k * batch
    out: dict[str, Any] = {"shape": label, "dtype": dtype, "m": m, "n": n, "k": k, "batch": batch,
                           "generated": type(generated).__name__}
    out["generated_ms"] = _events_ms(dev, lambda: generated.launch_pointers(pointers), calls)
    if vendor is not None:
        out["cublas_ms"] = _events_ms(dev, lambda: vendor.launch_pointers(pointers), calls)
    if torch is not None:
        tdt = getattr(torch, dtype)
        ta_, tb_ = (torch.randn(s, device="cuda", dtype=tdt) for s in (sa, sb))
        out["torch_ms"] = _torch_ms(torch, lambda: _apply(ta_, tb_, ta, tb), calls)
    for who in ("generated", "cublas", "torch"):
        if f"{who}_ms" in out:
            out[f"{who}_TFLOPs"] = flop / out[f"{who}_ms"] / 1e9
    return out


def _torch_ms(torch: Any, fn: Callable[[], Any], calls: int) -> float:
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / calls


def epilogue(fg: Any, dev: Any, torch: Any, dtype: str, m: int, n: int, k: int, calls: int) -> dict[str, Any]:
    """gelu(x @ W.T + b): fusegrad's fused kernel against PyTorch's addmm then GELU."""
    import fusegrad.nn.functional as F
    x, w, b = (fg.tensor(np.zeros(s, np.float32), dtype=dtype) for s in ((m, k), (n, k), (n,)))
    with fg.no_grad():
        ir = _kernel(F.gelu(F.linear(x, w, b)))
    generated, _, buffers = _programs(dev, ir)
    pointers = [buf.handle.ptr for buf in buffers]
    out: dict[str, Any] = {"shape": f"gelu(x@W.T+b) {m}x{n}x{k}", "dtype": dtype,
                           "generated": type(generated).__name__}
    out["fused_ms"] = _events_ms(dev, lambda: generated.launch_pointers(pointers), calls)
    if torch is not None:
        tdt = getattr(torch, dtype)
        tx, tw, tb = (torch.randn(s, device="cuda", dtype=tdt) for s in ((m, k), (n, k), (n,)))
        out["torch_ms"] = _torch_ms(torch, lambda: torch.nn.functional.gelu(torch.addmm(tb, tx, tw.T)), calls)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dtypes", default="bfloat16,float16")
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="four shapes")
    args = p.parse_args(argv)
    import fusegrad as fg
    from fusegrad.runtime import registry
    torch = common.optional_import("torch")
    if torch is not None and not torch.cuda.is_available():
        torch = None
    dev = registry.get("cuda")
    info = {"name": dev.device_name, "arch": dev.arch, "driver": dev.driver_version,
            "fusegrad": common.fusegrad_commit(), "torch": getattr(torch, "__version__", None)}
    print(f"# {info}")
    rows, epilogues = [], []
    for name in args.dtypes.split(","):
        tf32 = name == "tf32"  # float32 products on the TF32 tensor cores, allowed on both sides
        dtype = "float32" if tf32 else name
        fg.backends.cuda.matmul.allow_tf32 = tf32
        if torch is not None:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        for shape in TF32_SHAPES if tf32 else SHAPES:
            if args.quick and shape[0] not in QUICK:
                continue
            r = product(fg, dev, torch, dtype, shape, args.calls)
            r["dtype"] = name
            rows.append(r)
            share = f" = {r['generated_TFLOPs'] / r['cublas_TFLOPs']:.0%} of cuBLAS" if "cublas_TFLOPs" in r else ""
            peers = ", ".join(f"{who} {r[f'{who}_TFLOPs']:.0f}" for who in ("cublas", "torch") if f"{who}_TFLOPs" in r)
            print(f"{name:9} {r['shape']:24} generated {r['generated_TFLOPs']:6.0f} TFLOP/s{share} ({peers}) "
                  f"[{r['generated']}]", flush=True)
        e = epilogue(fg, dev, torch, dtype, 8192, 8192, 8192 if not args.quick else 4096, args.calls)
        e["dtype"] = name
        epilogues.append(e)
        line = f"{name:9} {e['shape']:24} fused {e['fused_ms']:.3f} ms"
        if "torch_ms" in e:
            line += f" vs torch addmm+gelu {e['torch_ms']:.3f} ms ({e['torch_ms'] / e['fused_ms']:.2f}x)"
        print(line, flush=True)
    print(json.dumps({"benchmark": "tensor_cores", "machine": info, "products": rows, "epilogues": epilogues}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The CUDA device. Without a GPU: NVRTC compiles the CUDA rendered for the op suite (when NVRTC
loads) and the device is absent with a reason. On a GPU: every result matches the CPU device on the
same random inputs (bit for bit where the arithmetic is exact: integers, moves, random bits)."""
from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
import pytest

import fusegrad as fg
import fusegrad.nn.functional as F
from fusegrad import dtypes
from fusegrad.codegen import renderer_for
from fusegrad.codegen import cuda_flash, cuda_gemm, cuda_mma, cuda_vector, cuda_wgmma, gemm
from fusegrad.codegen.cuda import MAX_BLOCKS, launch_dims
from fusegrad.codegen.ir import Accumulate, Attention, DefineAcc, EndLoop, Load, Loop, LoopIR, Ref, Store
from fusegrad.codegen.lanes import LaneLoop, LaneStore, plan_lanes, thread_plan
from fusegrad.engine import realize as realize_mod
from fusegrad.engine.realize import _kernel_name, kernel_ir, kernel_key
from fusegrad.engine.schedule import create_schedule, toposort
from fusegrad.errors import CompileError, DeviceError
from fusegrad.graph import node as G
from fusegrad.graph.ops import Op
from fusegrad.graph.symbolic import Lin, Var
from fusegrad.runtime import cublas as cublas_rt
from fusegrad.runtime import cuda as cuda_rt
from fusegrad.runtime import cuda_tma
from fusegrad.runtime import registry
from fusegrad.runtime.cuda_graph import CUDASequence
from tests.helpers import RNG, training_step



def _nvrtc_reason() -> str | None:
    try:
        cuda_rt.nvrtc_version()
    except Exception as e:  # noqa: BLE001  (package or library missing)
        return f"NVRTC cannot be loaded here ({e})"
    return None


NVRTC_REASON = _nvrtc_reason()
GPU_REASON = cuda_rt.unavailable_reason()
needs_nvrtc = pytest.mark.skipif(NVRTC_REASON is not None, reason=str(NVRTC_REASON))
needs_gpu = pytest.mark.skipif(GPU_REASON is not None, reason=f"no CUDA GPU: {GPU_REASON}")
GPU = "cuda:0"


# ---- rendering and NVRTC (no GPU needed) --------------------------------------------------

def kernel_irs(*outputs: fg.Tensor) -> list[LoopIR]:
    """The loop IR of every kernel realizing `outputs` (lazy CPU tensors), as the engine lowers it for CUDA."""
    nodes = [t._node for t in outputs if t._node.buffer is None]
    items = create_schedule(nodes, toposort(nodes))
    renderer = renderer_for("cuda")
    return [kernel_ir(it.spec, _kernel_name(it.spec, kernel_key(it.spec)), renderer)
            for it in items if it.alias_of is None and it.spec.root.numel > 0]


def cpu_array(shape: tuple[int, ...], dtype: str) -> fg.Tensor:
    if dtype == "bool":
        return fg.tensor(RNG.random(shape) < 0.5)
    if dtype in ("uint8", "int8", "int16", "int32", "int64"):
        return fg.tensor(RNG.integers(0 if dtype == "uint8" else -50, 50, size=shape), dtype=dtype)
    return fg.tensor(RNG.uniform(-2, 2, size=shape), dtype=dtype)


def elementwise_outputs(dtype: str) -> list[fg.Tensor]:
    a, b = cpu_array((7, 33), dtype), cpu_array((33,), dtype)
    if dtype == "bool":
        return [a & b, a | b, a ^ b, ~a, a == b, fg.where(a, b, ~b), a.int() + b.int()]
    outs = [a + b, a - b, a * b, a.maximum(b), a.minimum(b), a < b, a == b, fg.where(a < b, a, b),
            a.abs(), a.bool(), a.float()]
    if dtypes.to_dtype(dtype).is_floating_point:
        outs += [a / b, a % b, -a, a.exp(), (a.abs() + 1).log(), a.sin(), a.cos(), a.abs().sqrt(), a.erf(),
                 a.floor(), a.abs() ** b, a.sigmoid(), a.tanh(), a.isnan(), a.double()]
    else:
        outs += [a // b, a % b, a ** 2, a & b, a | b, ~a, a.long()]
        if dtype != "uint8":
            outs.append(-a)
    return outs


def reduction_outputs() -> list[fg.Tensor]:
    x = cpu_array((37, 129), "float32")
    return [x.sum(0), x.sum(1, keepdim=True), x.max(), x.min(1)[0], x.prod(0), x.mean(), x.argmax(1), x.softmax(1),
            x.logsumexp(0), x.var(1), (x > 0).any(1), (x > 0).all(), x.int().sum(0), x.long().max(1)[0],
            x.half().sum(1), x.bfloat16().amax(0)]


def movement_outputs() -> list[fg.Tensor]:
    x = cpu_array((5, 7, 3), "float32")
    return [x.permute(2, 0, 1).contiguous(), x[:, ::2, 1:].contiguous(), x.flip(1) + 1, F.pad(x, (1, 2, 0, 3)),
            fg.cat([x, x * 2], 1), x.roll(3, 2), x[0].tril(), x.reshape(5, 7, 3).transpose(0, 2).contiguous(),
            x[:, 1:2].expand(5, 4, 3) * 1]


def matmul_outputs() -> list[fg.Tensor]:
    return [cpu_array((33, 65), "float32") @ cpu_array((65, 17), "float32"),
            cpu_array((3, 7, 9), "float64") @ cpu_array((3, 9, 5), "float64"),
            cpu_array((8, 16), "float16") @ cpu_array((16, 4), "float16"),
            F.conv2d(cpu_array((2, 3, 9, 9), "float32"), cpu_array((4, 3, 3, 3), "float32"), padding=1)]


def half_product_outputs() -> list[fg.Tensor]:
    """Products the tensor-core kernel takes: plain, either operand transposed, batched, odd sizes."""
    return [cpu_array((129, 257), "bfloat16") @ cpu_array((257, 63), "bfloat16"),
            cpu_array((64, 784), "float16") @ cpu_array((128, 784), "float16").T,
            cpu_array((70, 100), "bfloat16").T @ cpu_array((70, 50), "bfloat16"),
            cpu_array((3, 40, 24), "float16") @ cpu_array((3, 24, 56), "float16")]


def random_outputs() -> list[fg.Tensor]:
    return [fg.rand(5, 7), fg.randn(64), fg.randint(0, 10, (9,)), F.dropout(fg.ones(100), 0.5)]


def cast_outputs() -> list[fg.Tensor]:
    return [cpu_array((11,), a.name).cast(b) for a in dtypes.ALL for b in dtypes.ALL if a is not b]


def huge_outputs() -> list[fg.Tensor]:
    return [fg.zeros(2**31 + 5, dtype=fg.uint8) + 1]  # more threads than 32-bit indices reach


def mlp_outputs() -> list[fg.Tensor]:
    return _mlp_grads(*_mlp_arrays(), device="cpu", lazy=True)


def strided_outputs() -> list[fg.Tensor]:
    return [cpu_array((1000, 256), "float32").sum(0), cpu_array((300, 1536), "float64").amax(0)]


def huge_literal_outputs() -> list[fg.Tensor]:
    """Python floats beyond float32's range become inf in a float kernel (NVRTC refused -1e+40f)."""
    x = cpu_array((7,), "float32")
    return [fg.where(x > 0, x.half(), -1e40), fg.where(x > 0, x.bfloat16(), 1e39)]  # torch rounds these to inf


def checked_index_outputs() -> list[fg.Tensor]:
    """Lazy indices: each is checked by the kernel that computes it (the error word's atomic claim)."""
    x = cpu_array((6, 5), "float32")
    rows, cols = fg.tensor([0, 5, 2]) * 1, fg.tensor([[0, 4]] * 6) * 1
    targets = fg.tensor([0, 1, 2, 3, 4, 0]) * 1
    return [x.index_select(0, rows), x[rows - 3], x.gather(1, cols), F.cross_entropy(x, targets)]


def gpt_outputs() -> list[fg.Tensor]:
    """A one-layer GPT's loss and gradients: embeddings read row by row (one-hot reads), attention, GELU."""
    from fusegrad.models.gpt import GPT, GPTConfig
    fg.manual_seed(0)
    model = GPT(GPTConfig.named("tiny", vocab_size=65, n_layer=1, block_size=16))
    rng = np.random.default_rng(0)
    _, loss = model(fg.tensor(rng.integers(0, 65, (2, 16))), fg.tensor(rng.integers(0, 65, (2, 16))))
    return [loss, *fg.autograd.grad(loss, list(model.parameters()))]


def attention_outputs() -> list[fg.Tensor]:
    """The fused attention kernels: forward and both gradients, causal, head dims of 8 and 5; heads
    of 300 (32 lanes a row: fewer rows a block, shorter tiles); bfloat16 heads of 64."""
    from fusegrad.ops.attention import fused_attention
    outs = []
    for shapes, causal, dtype in ((((2, 3, 16, 8), (2, 3, 12, 8), (2, 3, 12, 5)), True, "float32"),
                                  (((1, 5, 300), (1, 6, 300), (1, 6, 3)), False, "float32"),
                                  (((2, 2, 40, 64),) * 3, True, "bfloat16")):
        q, k, v = (fg.tensor(RNG.standard_normal(s).astype(np.float32), dtype=dtype, requires_grad=True)
                   for s in shapes)
        out = fused_attention(q, k, v, 0.3, causal)
        outs += [out, *fg.autograd.grad(out.square().sum(), [q, k, v])]
    return outs


def recurrence_outputs() -> list[fg.Tensor]:
    """The fused recurrence kernels: LSTM (rows in shared memory) and GRU over 2000 units (too wide: a
    thread per row), both directions of the gradient."""
    outs = []
    for layer, width in ((fg.nn.LSTM(5, 24, bidirectional=True), 5), (fg.nn.GRU(3, 2000), 3)):
        x = fg.tensor(RNG.standard_normal((4, 2, width)).astype(np.float32), requires_grad=True)
        out = layer(x)[0]
        outs += [out, *fg.autograd.grad(out.square().sum(), [x, *layer.parameters()])]
    return outs


def index_add_outputs() -> list[fg.Tensor]:
    """The fused row scatter-add of an embedding's gradient: a column per thread, chunks of rows."""
    w = fg.tensor(RNG.standard_normal((3000, 5)).astype(np.float32), requires_grad=True)
    out = F.embedding(fg.tensor(RNG.integers(0, 3000, (7, 9))), w)
    return [*fg.autograd.grad(out.square().sum(), [w])]


RENDER_CASES: dict[str, Callable[[], list[fg.Tensor]]] = {
    **{f"elementwise_{d.name}": functools.partial(elementwise_outputs, d.name) for d in dtypes.ALL},
    "reductions": reduction_outputs, "strided_reduction": strided_outputs, "movement": movement_outputs,
    "matmul": matmul_outputs, "half_products": half_product_outputs, "random": random_outputs, "casts": cast_outputs,
    "huge_index": huge_outputs, "checked_index": checked_index_outputs, "huge_literals": huge_literal_outputs,
    "mlp_backward": mlp_outputs, "gpt_step": gpt_outputs, "attention": attention_outputs,
    "recurrence": recurrence_outputs, "index_add": index_add_outputs,
}


def test_render_cases_cover_every_dtype() -> None:
    assert {f"elementwise_{d.name}" for d in dtypes.ALL} <= set(RENDER_CASES)


@needs_nvrtc
@pytest.mark.parametrize("case", sorted(RENDER_CASES))
def test_nvrtc_compiles_generated_cuda(case: str) -> None:
    irs = kernel_irs(*RENDER_CASES[case]())
    assert irs, "the case produced no kernels"
    renderer = renderer_for("cuda")
    unit = renderer.render_unit(sorted({renderer.render_kernel(ir) for ir in irs}))
    cubin = cuda_rt.compile_cuda(unit, 90)
    assert cubin[:4] == b"\x7fELF"
    launches = cuda_rt.parse_launches(unit)
    descriptors = cublas_rt.parse_descriptors(unit)
    hopper = cuda_tma.parse(unit)
    if hopper:  # the tensor-map kernels' bodies exist for sm_90a only
        assert b"wgmma.mma_async" in cuda_rt.compile_cuda(unit, "90a", ptx=True)
    for ir in irs:
        assert ir.name.encode() in cubin, f"{ir.name} missing from the CUBIN"
        blocks, threads = launches[ir.name]
        if ir.name in hopper:  # a block per output tile (and split), three warpgroups; the fallback kept
            wgmma = cuda_wgmma.plan(ir, cuda_gemm.plan(ir))
            assert (blocks, threads) == (wgmma.blocks, cuda_wgmma.THREADS) and hopper[ir.name]["smem"] == wgmma.smem
            assert f"{ir.name}_fallback" in launches
            continue
        if ir.name in descriptors and cuda_mma.fits(descriptors[ir.name]):  # a block per output tile
            assert (blocks, threads) == (cuda_mma.blocks(descriptors[ir.name]), cuda_mma.THREADS)
            continue
        tiled = cuda_gemm.plan(ir)
        if tiled is not None:  # a block per output tile (and reduction split)
            assert (blocks, threads) == (tiled.blocks, cuda_gemm.THREADS)
            continue
        threads_of, body, lanes = thread_plan(ir)
        vector = cuda_vector.plan(threads_of, body, lanes)  # 4 elements per thread
        total = math.prod(v.extent for v in (vector.threads if vector else threads_of)) * lanes
        assert 1 <= threads <= 1024 and 1 <= blocks < 2**31
        assert blocks * threads >= total or blocks == MAX_BLOCKS  # else the grid-stride loop covers the rest


def _attention_irs(shapes: tuple, dtype: str, views=lambda q, k, v: (q, k, v)) -> list[LoopIR]:
    """The forward and gradient kernels of causal attention of `dtype` operands shaped `shapes`."""
    from fusegrad.ops.attention import fused_attention
    q, k, v = (cpu_array(s, "float32").to(dtype).detach().requires_grad_() for s in shapes)
    out = fused_attention(*views(q, k, v), 0.3, True)
    irs = kernel_irs(out, *fg.autograd.grad(out.float().square().sum(), [q, k, v]))
    return [ir for ir in irs if any(isinstance(s, Attention) for s in ir.stmts)]


def _flash_plans(irs: list[LoopIR]) -> list:
    return [cuda_flash.plan(ir, next(s for s in ir.stmts if isinstance(s, Attention))) for ir in irs]


@needs_nvrtc
def test_half_attention_takes_the_tensor_core_kernel() -> None:
    """float16/bfloat16 attention with rows of contiguous elements and heads up to 128 renders the
    mma.sync kernel (its shared memory on the launch line, the CUDA-core body kept for older GPUs);
    float32, wider heads and heads strided along their features keep the CUDA-core kernel."""
    irs = _attention_irs(((2, 3, 70, 40), (2, 3, 90, 40), (2, 3, 90, 24)), "bfloat16")
    plans = _flash_plans(irs)
    assert len(irs) == 3 and all(p is not None for p in plans)
    assert [(p.dp, p.ep) for p in plans] == [(48, 32)] * 3
    renderer = renderer_for("cuda")
    unit = renderer.render_unit([renderer.render_kernel(ir) for ir in irs])
    assert cuda_rt.parse_shared_bytes(unit) == {ir.name: p.smem for ir, p in zip(irs, plans)}
    assert {cuda_rt.parse_launches(unit)[ir.name] for ir in irs} == {(2 * 3 * 2, cuda_flash.THREADS)}  # 2 blocks a head
    ptx = cuda_rt.compile_cuda(unit, 80, ptx=True).decode()
    assert "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" in ptx and "ldmatrix.sync.aligned" in ptx
    assert "cp.async" in ptx and "ex2.approx" in ptx
    cuda_rt.compile_cuda(unit, 75)  # the CUDA-core body under #else
    assert _flash_plans(_attention_irs(((1, 2, 40, 64),) * 3, "float32")) == [None] * 3
    assert _flash_plans(_attention_irs(((1, 2, 40, 160),) * 3, "float16")) == [None] * 3
    strided = _attention_irs(((1, 2, 64, 40),) * 3, "float16", lambda *t: (x.transpose(-2, -1) for x in t))
    assert _flash_plans(strided) == [None] * 3


@needs_nvrtc
def test_grouped_key_heads_take_the_tensor_core_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """With enable_gqa the key and value heads are read in place, each by its group of query heads."""
    from fusegrad.ops import attention
    monkeypatch.setattr(attention, "CPU_FUSED_SCORES", 0)
    q = cpu_array((2, 8, 70, 64), "float32").to("bfloat16").detach().requires_grad_()
    k, v = (cpu_array((2, 2, 70, 64), "float32").to("bfloat16").detach().requires_grad_() for _ in range(2))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    irs = kernel_irs(out, *fg.autograd.grad(out.float().sum(), [q, k, v]))
    plans = _flash_plans([ir for ir in irs if any(isinstance(s, Attention) for s in ir.stmts)])
    assert len(plans) == 3 and all(p is not None and "/4" in p.matrices["k"].base for p in plans)


@needs_nvrtc
def test_nvrtc_ptx_for_an_older_architecture() -> None:
    irs = kernel_irs(cpu_array((4, 5), "float32").sum(1), fg.rand(3))
    renderer = renderer_for("cuda")
    ptx = cuda_rt.compile_cuda(renderer.render_unit([renderer.render_kernel(ir) for ir in irs]), 80, ptx=True)
    text = ptx.decode()
    assert ".target sm_80" in text
    for ir in irs:
        assert f".entry {ir.name}(" in text


@needs_nvrtc
def test_nvrtc_error_carries_source_and_log() -> None:
    source = 'extern "C" __global__ void broken(float* p0) { p0[0] = undefined_name; }\n'
    with pytest.raises(CompileError) as info:
        cuda_rt.compile_cuda(source, 90)
    assert info.value.source == source
    assert "undefined_name" in info.value.compiler_output


def test_one_thread_per_output_of_a_wide_column_reduction() -> None:
    """sum(0) of many columns: each thread runs down one column; neighbouring threads read
    neighbouring addresses."""
    (ir,) = kernel_irs(cpu_array((100, 40000), "float32").sum(0))
    assert not any(isinstance(s, Loop) and s.kind == "inner" for s in ir.stmts)  # no CPU cache blocking
    assert thread_plan(ir)[2] == 1
    source = renderer_for("cuda").render_kernel(ir)
    assert "gid < 40000;" in source and "r2 < 100;" in source and "__shfl" not in source


def test_few_outputs_share_their_reduction_among_a_warp() -> None:
    """sum(1) of 64 rows of 784 (a small matmul's shape): 32 lanes per row, combined by shuffles,
    stored by lane 0."""
    (ir,) = kernel_irs(cpu_array((64, 784), "float32").sum(1))
    threads, body, lanes = thread_plan(ir)
    assert lanes == 32 and math.prod(v.extent for v in threads) == 64
    assert any(isinstance(s, LaneLoop) for s in body) and any(isinstance(s, LaneStore) for s in body)
    source = renderer_for("cuda").render_kernel(ir)
    assert f"gid < {64 * 32};" in source and "= lane;" in source and "__shfl_xor_sync" in source
    assert "__syncthreads" not in source and "if (lane == 0)" in source


def test_many_outputs_get_lanes_only_to_make_scattered_reads_coalesced() -> None:
    """x @ W.T with 1024x128 outputs: threads would read W's rows 784 apart, lanes read along them;
    x @ W: threads already read W's rows contiguously, so one thread per output stays."""
    x = cpu_array((1024, 784), "float32")
    (along_rows,) = kernel_irs(x @ cpu_array((128, 784), "float32").T)
    (along_threads,) = kernel_irs(x @ cpu_array((784, 128), "float32"))
    assert thread_plan(along_rows)[2] == 32 and thread_plan(along_threads)[2] == 1


def test_a_kernel_without_parallel_loops_runs_on_one_block_of_lanes() -> None:
    (ir,) = kernel_irs(cpu_array((40, 50), "float32").sum())
    assert launch_dims(ir) == (1, 256)
    assert "__syncthreads();" in renderer_for("cuda").render_kernel(ir)


def test_lanes_only_where_every_lane_may_share_the_work() -> None:
    """A store inside a loop, or an accumulator fed by two loops, keeps one thread per output."""
    f32, r, q = dtypes.float32, Var("r", 4096), Var("q", 4096)
    load = Load(1, Lin(((r, 1),), 0), (), f32)
    acc = [DefineAcc("acc", Op.SUM, f32), Loop(r, "reduce"), Accumulate("acc", Op.SUM, load, f32), EndLoop("reduce")]
    store = Store(0, Lin((), 0), Ref("acc", f32), f32)
    assert plan_lanes((), acc + [store]) == 256
    assert plan_lanes((), acc[:3] + [store, EndLoop("reduce")]) == 1
    second = [Loop(q, "reduce"), Accumulate("acc", Op.SUM, load, f32), EndLoop("reduce")]
    assert plan_lanes((), acc + second + [store]) == 1


def test_plain_products_carry_a_cublas_descriptor() -> None:
    """x @ W.T (the forward of a Linear) is one strided product cuBLAS can compute; with an
    epilogue (ReLU) it is not, and keeps the generated kernel only."""
    x, w = cpu_array((64, 784), "float32"), cpu_array((128, 784), "float32")
    (plain,) = kernel_irs(x @ w.T)
    source = renderer_for("cuda").render_kernel(plain)
    (d,) = cublas_rt.parse_descriptors(source).values()
    assert (d["m"], d["n"], d["k"], d["ta"], d["tb"], d["lda"], d["ldb"]) == (64, 128, 784, False, True, 784, 784)
    (batched,) = kernel_irs(cpu_array((3, 70, 90), "float32") @ cpu_array((3, 90, 50), "float32"))
    (b,) = cublas_rt.parse_descriptors(renderer_for("cuda").render_kernel(batched)).values()
    assert b["batch"] == 3 and b["a"][2] == 70 * 90 and b["b"][2] == 90 * 50 and b["c"][1] == 70 * 50
    for ir in kernel_irs((x @ w.T).relu()):
        assert not cublas_rt.parse_descriptors(renderer_for("cuda").render_kernel(ir))


def test_tf32_is_named_in_float32_descriptors_and_kernel_keys() -> None:
    """With TF32 allowed a float32 product's descriptor asks cuBLAS for it and the kernel's key differs
    (a kernel compiled under the other setting is never reused); half products are unaffected."""
    x, w = cpu_array((64, 96), "float32"), cpu_array((80, 96), "float32")
    h = cpu_array((64, 96), "bfloat16"), cpu_array((80, 96), "bfloat16")
    renderer = renderer_for("cuda")
    keys = {}
    try:
        for allowed in (False, True):
            fg.backends.cuda.matmul.allow_tf32 = allowed
            (ir,) = kernel_irs(x @ w.T)
            (d,) = cublas_rt.parse_descriptors(renderer.render_kernel(ir)).values()
            assert d.get("tf32", False) is allowed
            keys[allowed] = kernel_key(create_schedule([(x @ w.T)._node])[0].spec)
            (half,) = [ir for ir in kernel_irs(h[0] @ h[1].T) if "cublas" in renderer.render_kernel(ir)]
            assert "tf32" not in cublas_rt.parse_descriptors(renderer.render_kernel(half))[half.name]
    finally:
        fg.set_float32_matmul_precision("highest")
    assert keys[False] != keys[True]


@needs_nvrtc
def test_half_products_render_tensor_core_kernels() -> None:
    """float16/bfloat16 products carry a cuBLAS descriptor and render as the wmma kernel (the
    fallback of the Hopper kernel where that applies), with the plain kernel kept for GPUs older
    than sm_80 (compiled for sm_75 and as PTX for compute_80)."""
    irs = kernel_irs(*half_product_outputs())
    renderer = renderer_for("cuda")
    sources = [renderer.render_kernel(ir) for ir in irs]
    for ir, source in zip(irs, sources):
        (d,) = cublas_rt.parse_descriptors(source).values()
        assert d["dtype"] == ir.params[0].dtype.name and cuda_mma.fits(d)
        assert "fg_wmma_mma_" in source and "#else" in source
        wmma = f"{ir.name}_fallback" if ir.name in cuda_tma.parse(source) else ir.name  # Hopper's first
        assert cuda_rt.parse_launches(source)[wmma] == (cuda_mma.blocks(d), cuda_mma.THREADS)
    (first,) = cublas_rt.parse_descriptors(sources[0]).values()
    assert (first["m"], first["n"], first["k"], first["ta"], first["tb"]) == (129, 63, 257, False, False)
    (batched,) = cublas_rt.parse_descriptors(sources[3]).values()
    assert batched["batch"] == 3 and batched["c"] == [0, 40 * 56]
    unit = renderer.render_unit(sources)
    assert cuda_rt.compile_cuda(unit, 75)[:4] == b"\x7fELF"
    ptx = cuda_rt.compile_cuda(unit, 80, ptx=True).decode()
    assert "wmma.mma.sync.aligned" in ptx and "cp.async.cg.shared.global" in ptx
    small = kernel_irs(cpu_array((8, 16), "bfloat16") @ cpu_array((16, 40), "bfloat16"))
    assert "wmma" not in renderer.render_kernel(small[0])  # fewer than 16 rows: the plain kernel


def conv_and_grads(x: fg.Tensor, w: fg.Tensor, **kw: object) -> tuple[fg.Tensor, ...]:
    """A convolution and the gradients of a loss on it with respect to the input and the weight."""
    with fg.GradientTape() as tape:
        y = F.conv2d(x, w, **kw)
        loss = (y * y).sum()
    return (y, *tape.gradient(loss, [x, w]))


# (input shape, weight shape, conv2d keywords): padding, stride, dilation, groups, odd sizes, one channel
CONV_CASES = {"padded_strided_dilated": ((4, 6, 23, 19), (10, 6, 3, 3),
                                         {"padding": 2, "stride": 2, "dilation": 2}),
              "grouped_5x5": ((3, 8, 17, 17), (12, 4, 5, 5), {"padding": 1, "groups": 2}),
              "one_channel": ((2, 1, 7, 7), (4, 1, 3, 3), {"padding": 1}),
              "pointwise": ((5, 7, 13, 11), (9, 7, 1, 1), {}),
              "asymmetric": ((2, 3, 9, 12), (5, 3, 2, 3), {"padding": (1, 0), "stride": (1, 2)})}


def tile_small_products(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let products of any size take the GEMM pass and the tiled kernel (small test cases)."""
    monkeypatch.setattr(cuda_gemm, "MIN_WORK", 0)
    monkeypatch.setattr(gemm, "MIN_GEMM_WORK", 0)
    monkeypatch.setattr(realize_mod, "_programs", {})  # render again under the lowered thresholds
    monkeypatch.setattr(realize_mod, "_plans", {})


@needs_nvrtc
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_convolutions_render_tiled_products(dtype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A convolution's forward, input-gradient and weight-gradient products (padded windows,
    strides, groups as a batch) render as tiled GEMMs: a block of 256 threads per output tile, the
    plain kernel's grid no longer; they compile for sm_90 and sm_75 (float64 atomics need sm_60)."""
    tile_small_products(monkeypatch)
    renderer = renderer_for("cuda")
    sources = []
    for xs, ws, kw in CONV_CASES.values():
        irs = kernel_irs(*conv_and_grads(cpu_array(xs, dtype), cpu_array(ws, dtype), **kw))
        plans = {ir.name: cuda_gemm.plan(ir) for ir in irs}
        tiled = [ir for ir in irs if plans[ir.name] is not None]
        assert len(tiled) >= 2, [ir.name for ir in irs]  # forward, weight gradient (and a window gradient)
        for ir in tiled:
            source = renderer.render_kernel(ir)
            plan = plans[ir.name]
            assert "fg_sa[2]" in source and "for (unsigned int gid" not in source
            assert cuda_rt.parse_launches(source)[ir.name] == (plan.blocks, cuda_gemm.THREADS)
            assert plan.blocks == plan.tiles * plan.splits and 1 <= plan.splits
            sources.append(source)
    unit = renderer.render_unit(sources)
    for arch in (90, 75):
        assert cuda_rt.compile_cuda(unit, arch)[:4] == b"\x7fELF"


def test_tiled_products_choose_tiles_and_splits() -> None:
    """The CNN's second convolution at batch 64: the forward product covers all images as columns;
    the weight gradient (64 x 288 outputs, a reduction of 7744) splits its reduction over blocks."""
    x, w = cpu_array((64, 32, 13, 13), "float32"), cpu_array((64, 32, 3, 3), "float32")
    plans = [cuda_gemm.plan(ir) for ir in kernel_irs(*conv_and_grads(x, w))]
    shapes = {(p.m, p.n, p.k, p.nbatch): p for p in plans if p is not None}
    forward = shapes[(64, 64 * 121, 288, 1)]
    assert forward.splits == 1 and (forward.bm, forward.bn, forward.blocks) == (64, 64, 121)
    weight = next(p for (m, n, k, _), p in shapes.items() if k == 64 * 121)
    assert weight.splits > 1 and weight.k_split % cuda_gemm.BK == 0 and weight.k_split * (weight.splits - 1) < weight.k
    small = kernel_irs(cpu_array((8, 16), "float32") @ cpu_array((16, 8), "float32"))
    assert cuda_gemm.plan(small[0]) is None  # below MIN_WORK: the lanes' reduction per output


def test_contiguous_float32_elementwise_kernels_use_16_byte_accesses() -> None:
    """Each thread takes 4 consecutive outputs when the output and an operand run contiguously in
    steps of 4; broadcast, strided and non-float32 operands are read element by element, and
    kernels that do not qualify keep one thread per element."""
    a, c, bias = cpu_array((64, 128), "float32"), cpu_array((64, 128), "float32"), cpu_array((128,), "float32")

    def vector_plan(t: fg.Tensor) -> cuda_vector.VectorPlan | None:
        ir = kernel_irs(t)[-1]  # the kernel computing t (a contiguous copy may come before)
        return cuda_vector.plan(*thread_plan(ir))

    plan = vector_plan((a * c + bias).relu())
    assert plan is not None and len(plan.vector_loads) == 3  # a, c and the bias (contiguous per row)
    assert plan.threads[-1].extent == 32
    assert len(vector_plan(a * cpu_array((64, 1), "float32")).vector_loads) == 1  # the column is a scalar
    assert len(vector_plan(a.T.contiguous().T + c).vector_loads) == 1  # a transposed copy: strided reads
    assert vector_plan(cpu_array((64, 130), "float32") * 2).threads[-1].extent == 64 * 130 // 4  # one flat loop
    assert vector_plan(cpu_array((64, 130), "float32") + cpu_array((130,), "float32")) is None  # rows of 130
    assert vector_plan(cpu_array((64, 128), "float64") * 2) is None  # 8-byte elements
    assert vector_plan(a[:, 1:125] * 2).vector_loads == ()  # rows start 1 element past a 16-byte boundary
    assert vector_plan(a.sum(1)) is None  # a reduction


def test_launch_comments_round_trip() -> None:
    text = cuda_rt.launch_comment("E_3_abc", 12, 256) + "\nextern ...\n" + cuda_rt.launch_comment("R_1", 1, 1)
    assert cuda_rt.parse_launches(text) == {"E_3_abc": (12, 256), "R_1": (1, 1)}


@pytest.mark.skipif(GPU_REASON is None, reason="a CUDA GPU is present")
def test_missing_gpu_is_a_device_error_with_the_reason() -> None:
    assert "cuda" not in registry.available() and "cuda" in registry.unavailable()
    with pytest.raises(DeviceError, match="not available"):
        fg.tensor([1.0], device="cuda")


# ---- on the GPU: the same results as the CPU device ------------------------------------------

TOL = {"float64": (1e-10, 1e-12), "float32": (2e-5, 1e-6), "float16": (2e-3, 1e-3), "bfloat16": (1e-2, 1e-2)}
# sums of hundreds of terms: the CPU adds in SIMD lanes, a GPU thread in order
SUM_TOL = {"float32": (1e-4, 1e-3), "float64": (1e-9, 1e-9)}


def on_both(fn: Callable[..., fg.Tensor | tuple], arrays: list[np.ndarray], dtype: str | None = None,
            tol: tuple[float, float] | None = None) -> None:
    """fn on CPU tensors and on GPU tensors made from the same arrays: equal results (within `tol`
    or the dtype's (rtol, atol) for floats, exactly otherwise)."""
    outs = []
    for device in ("cpu", GPU):
        result = fn(*[fg.tensor(a, dtype=dtype, device=device) for a in arrays])
        results = result if isinstance(result, tuple) else (result,)
        assert all(r.device == device for r in results)
        outs.append([r.numpy() for r in results])
    for want, got in zip(*outs):
        assert want.dtype == got.dtype and want.shape == got.shape
        if want.dtype.kind == "f":
            rtol, atol = tol or TOL.get(dtype or want.dtype.name, TOL["float32"])
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
        else:
            np.testing.assert_array_equal(got, want)


def random_array(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if dtype == "bool":
        return RNG.random(shape) < 0.5
    if dtype in ("int32", "int64"):
        return RNG.integers(-1000, 1000, size=shape).astype(dtype)
    return RNG.uniform(-3, 3, size=shape).astype("float32" if dtype == "bfloat16" else dtype)


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "bool", "float16", "bfloat16"])
def test_elementwise_matches_cpu(dtype: str) -> None:
    a, b = random_array((37, 65), dtype), random_array((65,), dtype)
    if dtype in ("int32", "int64"):
        b[b == 0] = 7
    on_both(lambda x, y: tuple(elementwise_like(x, y, dtype)), [a, b], dtype)


def elementwise_like(a: fg.Tensor, b: fg.Tensor, dtype: str) -> list[fg.Tensor]:
    if dtype == "bool":
        return [a & b, a | b, a ^ b, ~a, a == b, fg.where(a, b, ~b), a.int() + b.int()]
    outs = [a + b, a - b, a * b, a.maximum(b), a < b, a == b, fg.where(a < b, a, b), a.abs(), -a]
    if dtypes.to_dtype(dtype).is_floating_point:
        outs += [a / b, a % b, a.exp(), (a.abs() + 1).log(), a.sin(), a.abs().sqrt(), a.erf(), a.floor(),
                 a.abs() ** b, a.sigmoid(), a.tanh(), (a / 0 * 0).maximum(a)]  # the last: NaN propagates
    else:
        outs += [a // b, a % b, a ** 3, a & b, a | b, ~a]
    return outs


@needs_gpu
def test_half_precision_rounding_is_the_cpus_bit_for_bit() -> None:
    """float32 -> float16/bfloat16 rounds to nearest even on both devices (subnormals, overflow, NaN too)."""
    x = np.concatenate([RNG.standard_normal(4000) * 10.0 ** RNG.integers(-8, 6, 4000),
                        [np.nan, np.inf, -np.inf, 0.0, -0.0, 65520.0, 6e-8, 1 + 2**-11]]).astype(np.float32)
    on_both(lambda t: (t.half(), t.bfloat16(), t.half().float() * 3), [x], tol=(0.0, 0.0))


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_reductions_match_cpu(dtype: str) -> None:
    x = random_array((37, 129), dtype)
    on_both(lambda t: (t.sum(0), t.sum(1, keepdim=True), t.sum(), t.max(), t.max(1)[0], t.min(0)[0], t.argmax(1)),
            [x], dtype, SUM_TOL.get(dtype))
    if dtype.startswith("float"):
        on_both(lambda t: ((t / 2).prod(0), t.mean(1), t.softmax(1), t.logsumexp(0), t.var(0)), [x], dtype,
                SUM_TOL[dtype])
        x[5, 7] = np.nan  # a maximum meeting NaN stays NaN, wherever it comes in the reduction
        on_both(lambda t: (t.amax(1), t.amax(0), t.max()), [x], dtype)
    else:
        on_both(lambda t: (t % 2).prod(0), [x], dtype)  # products of 0 and 1: no overflow


@needs_gpu
def test_strided_reductions_and_a_grid_larger_than_one_launch() -> None:
    on_both(lambda t: (t.sum(0), t.amax(0)), [random_array((1000, 1024), "float32")], tol=SUM_TOL["float32"])
    on_both(lambda t: t.sum(0), [random_array((3, 2000, 512), "float64")], tol=SUM_TOL["float64"])
    n = (1 << 25) + 3  # more threads than one launch has: the grid-stride loop covers the rest
    poison = [fg.full((n,), float("nan"), device=GPU).realize() for _ in range(2)]
    del poison  # the input and the output below get these NaN-filled blocks back: every element must be written
    x = random_array((n,), "float32")
    got = (fg.tensor(x, device=GPU) * 2 + 1).numpy()
    np.testing.assert_allclose(got, x * 2 + 1, rtol=1e-6)


@needs_gpu
def test_reductions_shared_by_lanes_match_cpu() -> None:
    """Warp lanes (few rows, long rows) and block lanes (very few outputs, very long reductions):
    every combine op and accumulator type, NaN propagation, outputs of more than one block."""
    x = random_array((3, 5000), "float32")
    on_both(lambda t: (t.sum(1), t.amax(1), t.min(1)[0], t.argmax(1), (t > 1).any(1), (t > -3).all(1),
                       t.half().sum(1), (t * 100).long().amax(1), (t * 1e-4 + 1).prod(1)),
            [x], tol=(2e-3, 1e-3))
    big = random_array((1 << 20) + 7, "float32")
    on_both(lambda t: (t.sum(), t.max(), t.double().sum()), [big], tol=(1e-4, 1e-2))
    big[123457] = np.nan
    on_both(lambda t: (t.max(), t.amax(0, keepdim=True)), [big])
    on_both(lambda t: (t.sum(1), t.amax(0)), [random_array((64, 784), "float64")], tol=SUM_TOL["float64"])


@needs_gpu
@pytest.mark.skipif(cublas_rt.unavailable_reason() is not None, reason=str(cublas_rt.unavailable_reason()))
@pytest.mark.parametrize("choice", ["cublas", "generated", "race"])
def test_products_through_cublas_or_generated_match_cpu(choice: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way a product can be computed gives the CPU's result: forward, transposed and batched
    operands, float64, odd sizes; a jitted step replays cuBLAS calls inside its CUDA graphs."""
    device = registry.get(GPU)
    monkeypatch.setattr(device, "gemm_choice", choice)
    monkeypatch.setattr(realize_mod, "_programs", {})  # compile again under this choice
    monkeypatch.setattr(realize_mod, "_plans", {})
    tol = SUM_TOL["float32"]
    a, w = random_array((64, 784), "float32"), random_array((128, 784), "float32")
    with fg.profile() as p:
        on_both(lambda x, y: x @ y.T, [a, w], tol=tol)
        # sums of thousands-sized terms that cancel: float32 reassociation error reaches ~1e-3 absolute
        on_both(lambda x, y: x.T @ (x @ y.T), [a, w], tol=(1e-4, 1e-2))
    names = {k.name for k in p.kernels if k.device == GPU}
    assert any(n.endswith("_cublas") for n in names) == (choice == "cublas") or choice == "race"
    on_both(lambda x, y: x @ y, [random_array((129, 257), "float32"), random_array((257, 63), "float32")], tol=tol)
    on_both(lambda x, y: x @ y, [random_array((3, 70, 90), "float32"), random_array((3, 90, 50), "float32")],
            tol=tol)
    on_both(lambda x, y: x @ y, [random_array((65, 300), "float64"), random_array((300, 33), "float64")],
            tol=SUM_TOL["float64"])

    def make_step() -> Callable[[fg.Tensor], fg.Tensor]:
        fg.manual_seed(2)
        layer = fg.nn.Linear(784, 128).to(GPU)
        opt = fg.optim.SGD(layer.parameters(), lr=0.1)

        def step(x: fg.Tensor) -> fg.Tensor:
            opt.zero_grad()
            loss = (layer(x) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        return step
    eager, jitted = make_step(), fg.jit(make_step())
    x = fg.tensor(a, device=GPU)
    losses = [(eager(x).item(), jitted(x).item()) for _ in range(6)]
    np.testing.assert_allclose([j for _, j in losses], [e for e, _ in losses], rtol=1e-5)
    assert jitted.replays >= 3


@needs_gpu
@pytest.mark.skipif(cublas_rt.unavailable_reason() is not None, reason=str(cublas_rt.unavailable_reason()))
def test_a_cublas_call_that_disagrees_never_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The race checks cuBLAS's result against the generated kernel's before comparing times."""
    device = registry.get(GPU)
    monkeypatch.setattr(device, "gemm_choice", "generated")
    (ir,) = kernel_irs(cpu_array((64, 784), "float32") @ cpu_array((128, 784), "float32").T)
    renderer = renderer_for("cuda")
    source = renderer.render_unit([renderer.render_kernel(ir)])
    (program,) = device.compile(source, [ir.name], [len(ir.params)])
    (descriptor,) = cublas_rt.parse_descriptors(source).values()
    winner, medians = cublas_rt.race(device, program, descriptor)
    assert winner is not None and set(medians) == {"generated", "cublas"} and min(medians.values()) > 0
    half = dict(descriptor, k=descriptor["k"] // 2)  # a wrong call that stays inside the buffers
    with pytest.warns(RuntimeWarning, match="disagrees"):
        assert cublas_rt.race(device, program, half)[0] is program


def _half_product_error(fn: Callable[..., fg.Tensor], arrays: list[np.ndarray], dtype: str) -> float:
    """‖fn(GPU tensors) - float64 reference‖ / ‖reference‖ on `arrays` rounded to `dtype`, with the
    output's memory poisoned with NaN first (every element must be written)."""
    tensors = [fg.tensor(a, dtype=dtype, device=GPU) for a in arrays]
    exact = [t.float().numpy().astype(np.float64) for t in tensors]  # the operands as rounded to `dtype`
    want = fn(*exact)
    poison = [fg.full(want.shape, float("nan"), dtype=dtype, device=GPU).realize() for _ in range(2)]
    del poison  # freed blocks are reused first: the product's output gets a NaN-filled one
    got = fn(*tensors).numpy().astype(np.float64)  # the product alone: a cast would be fused into its kernel
    assert got.shape == want.shape and not np.isnan(got).any()
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


HALF_PRODUCT_TOL = {"bfloat16": 1e-2, "float16": 2e-3}  # the output's rounding: 2^-9 and 2^-12 relative


@needs_gpu
@pytest.mark.skipif(cublas_rt.unavailable_reason() is not None, reason=str(cublas_rt.unavailable_reason()))
@pytest.mark.parametrize("choice", ["generated", "cublas", "race"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_products_match_float64(dtype: str, choice: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tensor-core kernels and cuBLAS's Ex call (float32 accumulation) against a float64 reference:
    odd sizes, both operands transposed, batches, an operand at an odd offset (element copies),
    aligned sizes (16-byte copies)."""
    device = registry.get(GPU)
    monkeypatch.setattr(device, "gemm_choice", choice)
    monkeypatch.setattr(realize_mod, "_programs", {})
    monkeypatch.setattr(realize_mod, "_plans", {})
    cases = [(lambda x, y: x @ y, [(129, 257), (257, 63)]), (lambda x, y: x @ y.T, [(64, 784), (128, 784)]),
             (lambda x, y: x.T @ y, [(70, 100), (70, 50)]), (lambda x, y: x.T @ y.T, [(33, 47), (65, 33)]),
             (lambda x, y: x @ y, [(3, 70, 90), (3, 90, 50)]), (lambda x, y: x[:, 1:] @ y, [(100, 257), (256, 72)]),
             (lambda x, y: x @ y, [(256, 512), (512, 384)]), (lambda x, y: x @ y, [(17, 16), (16, 300)])]
    with fg.profile() as p:
        for fn, shapes in cases:
            error = _half_product_error(fn, [random_array(s, "float32") for s in shapes], dtype)
            assert error < HALF_PRODUCT_TOL[dtype], (shapes, error)
    names = {k.name for k in p.kernels if k.device == GPU}
    assert any(n.endswith("_cublas") for n in names) == (choice == "cublas") or choice == "race"


@needs_gpu
def test_tensor_core_kernel_on_misaligned_pointers() -> None:
    """Operands and output 2 bytes past 16-byte alignment: the kernel checks and copies element by
    element instead of 16 bytes at a time."""
    device = registry.get(GPU)
    m, k, n = 256, 512, 384
    (ir,) = kernel_irs(cpu_array((m, k), "bfloat16") @ cpu_array((k, n), "bfloat16"))
    renderer = renderer_for("cuda")
    source = renderer.render_unit([renderer.render_kernel(ir)])
    (d,) = cublas_rt.parse_descriptors(source).values()
    assert not d["ta"] and not d["tb"] and (d["m"], d["k"], d["n"]) == (m, k, n)
    saved, device.gemm_choice = device.gemm_choice, "generated"
    try:
        (program,) = device.compile(source, [ir.name], [len(ir.params)])
    finally:
        device.gemm_choice = saved
    a, b = (fg.tensor(random_array(s, "float32"), dtype="bfloat16") for s in ((m, k), (k, n)))
    buffers = [device.alloc(p.numel * 2 + 16) for p in ir.params]
    for param, t in ((d["a"][0], a), (d["b"][0], b)):
        device.copy_in(buffers[param], np.concatenate([[0], t.numpy().ravel().view(np.uint32) >> 16]).astype(np.uint16))
    device.copy_in(buffers[0], np.full(m * n + 8, 0xFFFF, np.uint16))  # NaN
    program.call_pointers([buf.handle.ptr + 2 for buf in buffers])
    got = (device.copy_out(buffers[0], np.dtype(np.uint16), m * n + 1)[1:].astype(np.uint32) << 16).view(np.float32)
    want = a.numpy().astype(np.float64) @ b.numpy().astype(np.float64)
    assert not np.isnan(got).any()
    assert np.linalg.norm(got.reshape(m, n) - want) / np.linalg.norm(want) < HALF_PRODUCT_TOL["bfloat16"]


@needs_gpu
@pytest.mark.parametrize("shape", [(64, 128), (3, 5, 8), (1000, 4)])
def test_16_byte_elementwise_kernels_match_cpu(shape: tuple[int, ...]) -> None:
    """The 4-elements-per-thread path (cuda_vector.py) on aligned buffers and, through packed
    sub-buffers 4 bytes off 16-byte alignment, its element-by-element fallback."""
    a, b, c = (random_array(shape, "float32") for _ in range(3))
    row = random_array(shape[-1:], "float32")
    on_both(lambda x, y, z: ((x * y + z).relu(), x * row[0] + z.exp(), x.where(y > 0, z)), [a, b, c], "float32")
    device = registry.get(GPU)
    size = a.nbytes
    base = device.alloc(3 * size + 4)
    parts = [device.sub_buffer(base, 4 + i * size, size) for i in range(3)]
    for part, array in zip(parts, (a, b, c)):
        device.copy_in(part, array)
    device_name = registry.canonical(GPU)
    x, y, z = (fg.Tensor._from_node(G.buffer_node(part, shape, dtypes.float32, device_name)) for part in parts)
    np.testing.assert_allclose(((x * y + z).relu()).numpy(), np.maximum(a * b + c, 0), rtol=1e-6, atol=1e-6)


@needs_gpu
def test_movement_matches_cpu() -> None:
    on_both(lambda t: (t.permute(2, 0, 1).contiguous(), t[:, ::2, 1:] * 1, t.flip(1) + 1, F.pad(t, (1, 2, 0, 3)),
                       fg.cat([t, t * 2], 1), t.roll(3, 2), t[0].tril(), t.reshape(5, 7, 3).transpose(0, 2) + 0,
                       t[:, 1:2].expand(5, 4, 3) * 1, t.unsqueeze(0).repeat(2, 1, 1, 1) * 1),
            [random_array((5, 7, 3), "float32")])


@needs_gpu
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (33, 65, 17), (129, 257, 63)])
def test_matmul_odd_sizes_match_cpu(m: int, k: int, n: int) -> None:
    on_both(lambda a, b: a @ b, [random_array((m, k), "float32"), random_array((k, n), "float32")],
            tol=SUM_TOL["float32"])
    on_both(lambda a, b: a @ b, [random_array((3, m, k), "float64"), random_array((3, k, n), "float64")],
            tol=SUM_TOL["float64"])


@needs_gpu
def test_conv2d_matches_cpu() -> None:
    on_both(lambda x, w: F.conv2d(x, w, padding=1).relu(),
            [random_array((2, 3, 17, 15), "float32"), random_array((5, 3, 3, 3), "float32")], tol=SUM_TOL["float32"])


def assert_close_to(got: np.ndarray, want: np.ndarray, rel: float) -> None:
    """Elementwise within `rel` of the largest magnitude (sums of thousands of terms that cancel
    differ in their absolute rounding, not relative to each element), and no NaN."""
    assert got.shape == want.shape and not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=rel, atol=rel * float(np.abs(want).max()))


def compare_tiled(fn: Callable[..., tuple], shapes: list[tuple[int, ...]], dtype: str = "float32",
                  rel: float = 2e-5, runs: int = 2) -> None:
    """fn on the CPU and (`runs` times, to catch state left by a launch) on the GPU, where at least
    one of its kernels renders as a tiled product."""
    arrays = [random_array(s, dtype) for s in shapes]
    irs = kernel_irs(*fn(*[fg.tensor(a, dtype=dtype) for a in arrays]))
    assert any(cuda_gemm.plan(ir) is not None for ir in irs), "no tiled product in this case"
    want = [t.float().numpy() for t in fn(*[fg.tensor(a, dtype=dtype) for a in arrays])]
    for _ in range(runs):
        got = [t.float().numpy() for t in fn(*[fg.tensor(a, dtype=dtype, device=GPU) for a in arrays])]
        for g, w in zip(got, want):
            assert_close_to(g, w, rel)


@needs_gpu
@pytest.mark.parametrize("case", CONV_CASES)
def test_tiled_convolutions_match_cpu(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forward and both gradients of padded, strided, dilated, grouped and odd-sized convolutions,
    every product tiled (small ones too); float64 and float16 on one case."""
    tile_small_products(monkeypatch)
    xs, ws, kw = CONV_CASES[case]
    compare_tiled(lambda x, w: conv_and_grads(x, w, **kw), [xs, ws])
    if case == "padded_strided_dilated":
        compare_tiled(lambda x, w: conv_and_grads(x, w, **kw), [xs, ws], "float64", rel=1e-12)
        compare_tiled(lambda x, w: conv_and_grads(x, w, **kw), [xs, ws], "float16", rel=2e-2)


@needs_gpu
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 129, 9), (129, 7, 129), (129, 300, 257)])
def test_tiled_products_with_epilogues_match_cpu(m: int, k: int, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Odd sizes, a fused epilogue (bias, ReLU, a second output), transposed and batched operands."""
    tile_small_products(monkeypatch)
    if min(m, n) > 1:  # the pass leaves dot products (one row or column) to the plain loops
        compare_tiled(lambda a, b, c: ((a @ b + c).relu(), a @ b * 2), [(m, k), (k, n), (n,)])
        compare_tiled(lambda a, b: ((a.T @ b.T * 0.01).exp(),), [(k, m), (n, k)], rel=1e-4)
        compare_tiled(lambda a, b: ((a @ b * 0.01).tanh(),), [(3, m, k), (3, k, n)])
    a, b = (fg.tensor(random_array(shape, "float32"), device=GPU) for shape in ((m, k), (k, n)))
    assert (a @ b).numpy().shape == (m, n)


@needs_gpu
def test_split_reductions_match_cpu_launch_after_launch() -> None:
    """The CNN's second convolution at batch 32, at the default thresholds: its weight gradient
    splits the reduction over blocks (workspace and counters reset by the last block); jitted
    replays (CUDA graphs) give the eager results."""
    xs, ws = (32, 32, 13, 13), (64, 32, 3, 3)
    x, w = cpu_array(xs, "float32"), cpu_array(ws, "float32")
    assert any(p is not None and p.splits > 1 for p in map(cuda_gemm.plan, kernel_irs(*conv_and_grads(x, w))))
    compare_tiled(conv_and_grads, [xs, ws], runs=3)
    arrays = [random_array(s, "float32") for s in (xs, ws)]
    jitted = fg.jit(lambda a, b: conv_and_grads(a, b)[2])
    tensors = [fg.tensor(a, device=GPU) for a in arrays]
    want = conv_and_grads(*[fg.tensor(a) for a in arrays])[2].numpy()
    for _ in range(4):
        assert_close_to(jitted(*tensors).numpy(), want, 2e-5)


@needs_gpu
def test_rand_is_the_same_stream_as_on_the_cpu() -> None:
    for device in ("cpu", GPU):
        fg.manual_seed(1234)
        values = (fg.rand(1001, 3, device=device).numpy(), fg.randint(0, 100, (77,), device=device).numpy(),
                  fg.randn(500, device=device).numpy())
        if device == "cpu":
            want = values
    np.testing.assert_array_equal(values[0], want[0])  # Philox bits: identical
    np.testing.assert_array_equal(values[1], want[1])
    np.testing.assert_allclose(values[2], want[2], rtol=1e-5, atol=1e-5)  # log/cos differ by ulps
    assert 0 <= values[0].min() and values[0].max() < 1 and values[0].std() > 0.2


def _mlp_arrays() -> list[np.ndarray]:
    return [RNG.standard_normal((16, 20)).astype(np.float32), RNG.integers(0, 5, 16),
            (RNG.standard_normal((20, 32)) * 0.3).astype(np.float32), RNG.standard_normal(32).astype(np.float32),
            (RNG.standard_normal((32, 5)) * 0.3).astype(np.float32)]


def _mlp_grads(x: np.ndarray, y: np.ndarray, *weights: np.ndarray, device: str, lazy: bool = False) -> list:
    def loss_of(w1: fg.Tensor, b1: fg.Tensor, w2: fg.Tensor) -> fg.Tensor:
        logits = (fg.tensor(x, device=device) @ w1 + b1).relu() @ w2
        return F.cross_entropy(logits, fg.tensor(y, device=device))

    loss, grads = fg.value_and_grad(loss_of, argnums=(0, 1, 2))(*[fg.tensor(w, device=device) for w in weights])
    return [loss, *grads] if lazy else [t.numpy() for t in (loss, *grads)]


@needs_gpu
def test_mlp_gradients_match_cpu() -> None:
    arrays = _mlp_arrays()
    want, got = _mlp_grads(*arrays, device="cpu"), _mlp_grads(*arrays, device=GPU)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@needs_gpu
def test_sgd_steps_match_cpu() -> None:
    def train(device: str) -> list[np.ndarray]:
        fg.manual_seed(3)
        model = fg.nn.Sequential(fg.nn.Linear(12, 24), fg.nn.ReLU(), fg.nn.Linear(24, 4)).to(device)
        assert all(p.device == device for p in model.parameters())
        opt = fg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for x, y in batches:
            opt.zero_grad()
            loss = F.cross_entropy(model(fg.tensor(x, device=device)), fg.tensor(y, device=device))
            loss.backward()
            opt.step()
        return [p.numpy() for p in model.parameters()] + [loss.numpy()]

    batches = [(RNG.standard_normal((8, 12)).astype(np.float32), RNG.integers(0, 4, 8)) for _ in range(5)]
    for want, got in zip(train("cpu"), train(GPU)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@needs_gpu
@pytest.mark.parametrize("dtype", [d.name for d in dtypes.ALL])
def test_copies_both_ways(dtype: str) -> None:
    x = random_array((3, 5), "int32" if dtype in ("uint8", "int8", "int16") else dtype)
    t = fg.tensor(x, dtype=dtype)
    on_gpu = t.to(GPU)
    assert on_gpu.device == GPU and on_gpu.dtype == t.dtype
    back = on_gpu.cpu()
    assert back.device == "cpu"
    np.testing.assert_array_equal(back.numpy(), t.numpy())
    np.testing.assert_array_equal(on_gpu.numpy(), t.numpy())


@needs_gpu
def test_empty_and_scalar_tensors() -> None:
    assert fg.zeros(0, device=GPU).numpy().shape == (0,)
    assert (fg.ones(0, 3, device=GPU) * 2).sum(0).numpy().tolist() == [0.0, 0.0, 0.0]
    assert fg.tensor(2.5, device=GPU).item() == 2.5
    assert registry.get(GPU).alloc(0).nbytes == 0


@needs_gpu
def test_allocations_are_counted_and_reused() -> None:
    device = registry.get(GPU)
    before = fg.memory_stats(GPU)
    buf = device.alloc(1 << 20)
    assert fg.memory_stats(GPU)["current_bytes"] == before["current_bytes"] + (1 << 20)
    address = buf.handle.ptr
    del buf
    assert fg.memory_stats(GPU)["current_bytes"] == before["current_bytes"]
    assert device.alloc(1 << 20).handle.ptr == address  # the freed block came back from the cache


@needs_gpu
def test_mixing_devices_raises_naming_both() -> None:
    a, b = fg.tensor([1.0, 2.0], device=GPU), fg.tensor([3.0, 4.0], device="cpu")  # whatever the default
    for op in (lambda: a + b, lambda: b * a, lambda: a @ b):
        with pytest.raises(DeviceError) as info:
            op()
        assert "cpu" in str(info.value) and GPU in str(info.value)


@needs_gpu
def test_device_names_and_missing_index() -> None:
    assert registry.canonical("cuda") == GPU and registry.canonical("CUDA:0") == GPU
    device = registry.get("cuda")
    assert device.kind == "cuda" and device.arch >= 50 and device.memory > 0
    with pytest.raises(DeviceError, match="does not exist"):
        registry.get("cuda:64")


@needs_gpu
def test_ptx_path_loads_and_runs() -> None:
    """The fallback for a driver that rejects NVRTC's CUBIN: PTX, JIT-compiled by the driver, also
    with its ISA version lowered to the driver's."""
    device = registry.get(GPU)
    x = random_array((300,), "float32")
    (ir,) = kernel_irs(fg.tensor(x) * 3 - 1)
    renderer = renderer_for("cuda")
    source = renderer.render_unit([renderer.render_kernel(ir)])
    saved, device.use_ptx = device.use_ptx, True
    try:
        (program,) = device.compile(source, [ir.name], [len(ir.params)])
    finally:
        device.use_ptx = saved
    out, inp = device.alloc(x.nbytes), device.alloc(x.nbytes)
    device.copy_in(inp, x)
    assert program([out, inp]) > 0
    # the GPU contracts x * 3 - 1 into one FMA: near zero that differs from numpy's two roundings
    np.testing.assert_allclose(device.copy_out(out, np.dtype(np.float32), 300), x * 3 - 1, rtol=1e-6, atol=1e-6)
    lowered = device._lower_ptx_version(cuda_rt.compile_cuda(source, device.arch, ptx=True))
    assert cuda_rt._check(cuda_rt._bindings()[0].cuModuleLoadData(lowered), "loading lowered PTX") is not None


@needs_gpu
def test_jitted_training_step_replays_as_cuda_graphs() -> None:
    """fg.jit on the GPU: replays (CUDA graphs) give the eager step's losses and parameters, draw new
    dropout masks, allocate nothing, and keep only a few graphs for a loop over recycled inputs."""
    def make() -> tuple[fg.nn.Module, Callable[[fg.Tensor, fg.Tensor], fg.Tensor]]:
        fg.manual_seed(5)
        model = fg.nn.Sequential(fg.nn.Linear(20, 32), fg.nn.ReLU(), fg.nn.Dropout(0.25),
                                 fg.nn.Linear(32, 5)).to(GPU)
        return model, training_step(model, fg.optim.Adam(model.parameters(), lr=1e-2))

    batches = [(fg.tensor(RNG.standard_normal((16, 20)), dtype="float32", device=GPU),
                fg.tensor(RNG.integers(0, 5, 16), device=GPU)) for _ in range(4)]
    (m1, eager), (m2, step) = make(), make()
    jitted = fg.jit(step)
    fg.manual_seed(11)
    eager_losses = [eager(*batches[i % 4]).item() for i in range(10)]
    fg.manual_seed(11)
    jit_losses = []
    for i in range(10):
        if i == 6:
            before = fg.memory_stats(GPU)["allocations"]
        jit_losses.append(jitted(*batches[i % 4]).item())
    assert fg.memory_stats(GPU)["allocations"] == before, "replays must allocate nothing"
    assert jitted.replays >= 7, "later calls must replay, not capture again"
    np.testing.assert_allclose(jit_losses, eager_losses, rtol=1e-5)
    assert len(set(np.round(jit_losses, 6))) > 5  # dropout masks and parameters change every step
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
    sequences = [r.sequence for r in jitted._variants.values() if getattr(r, "sequence", None) is not None]
    assert sequences and all(isinstance(s, CUDASequence) for s in sequences)
    assert all(1 <= len(s._graphs) <= 4 for s in sequences)  # 4 input batches x 2 state parities in step

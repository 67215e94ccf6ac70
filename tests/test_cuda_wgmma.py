"""Hopper's tensor-core products (codegen/cuda_wgmma.py, runtime/cuda_tma.py): plans and sm_90a
compilation here; on an sm_90 GPU, results against float64 for every operand layout, odd sizes,
batches, misaligned operands, split reductions, fused epilogues and jit replays."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest
import torch

import fusegrad as fg
import fusegrad.nn.functional as F
from fusegrad.codegen import cuda_gemm, cuda_wgmma
from fusegrad.engine import realize as realize_mod
from fusegrad.engine.realize import renderer_for
from fusegrad.runtime import cuda as cuda_rt
from fusegrad.runtime import cuda_tma, registry
from tests.helpers import RNG
from tests.test_cuda import GPU, GPU_REASON, _half_product_error, cpu_array, kernel_irs, needs_nvrtc


def _plans(*outputs: fg.Tensor) -> list[cuda_wgmma.WgmmaPlan | None]:
    return [cuda_wgmma.plan(ir, cuda_gemm.plan(ir)) for ir in kernel_irs(*outputs)]


@needs_nvrtc
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_plans_for_every_operand_layout(dtype: str) -> None:
    """A linear layer's three products: the forward reads both operands K-major; the input gradient
    the weight N-major; the weight gradient both MN-major, its reduction over 1536 rows split over
    blocks. Batches become tensor-map dimensions; float32 products, and rows whose stride is no
    multiple of 16 bytes, stay SIMT."""
    x, w = cpu_array((4, 384, 384), dtype).requires_grad_(), cpu_array((1536, 384), dtype).requires_grad_()
    y = F.linear(x, w)
    plans = [p for p in _plans(y, *fg.autograd.grad(y.square().sum(), [x, w])) if p is not None]
    layouts = {(p.a.k_major, p.b.k_major): p for p in plans}
    assert set(layouts) == {(True, True), (True, False), (False, False)}
    forward, grad_w = layouts[(True, True)], layouts[(False, False)]
    assert (forward.tiled.m, forward.tiled.n, forward.tiled.k, forward.splits) == (1536, 1536, 384, 1)
    assert (grad_w.tiled.m, grad_w.tiled.n, grad_w.tiled.k) == (1536, 384, 1536) and grad_w.splits > 1
    assert grad_w.blocks >= cuda_wgmma.SMS // 2
    (bmm,) = _plans(cpu_array((16, 512, 256), dtype) @ cpu_array((16, 256, 320), dtype))
    assert bmm is not None and len(bmm.a.dims) == len(bmm.b.dims) == 3 and bmm.a.dims[2] == 16
    (shared,) = _plans(cpu_array((16, 512, 256), dtype) @ cpu_array((256, 320), dtype))
    assert shared is not None and len(shared.b.dims) == 2  # one weight for every batch element
    assert _plans(cpu_array((512, 512), "float32") @ cpu_array((512, 512), "float32")) == [None]
    assert _plans(cpu_array((512, 30), dtype) @ cpu_array((30, 512), dtype)) == [None]  # 60-byte rows: no map


@needs_nvrtc
def test_tile_width_follows_waves() -> None:
    """Wide products take 256-column tiles; a 384-wide one takes 128 (three full tiles, not 1.5)."""
    assert cuda_wgmma._choose_bn(1, 8192, 8192) == 256
    assert cuda_wgmma._choose_bn(1, 16384, 384) == 128


@pytest.fixture
def tf32() -> Iterator[None]:
    fg.backends.cuda.matmul.allow_tf32 = True
    yield
    fg.backends.cuda.matmul.allow_tf32 = False


@needs_nvrtc
def test_tf32_plans_need_both_operands_k_major(tf32: None) -> None:
    """float32 products take the TF32 kernel only where TF32 is allowed and both operands have the
    reduction contiguous (wgmma has no transpose for TF32): a Linear's forward, not its gradients."""
    x, w = cpu_array((512, 384), "float32").requires_grad_(), cpu_array((768, 384), "float32").requires_grad_()
    y = fg.nn.functional.linear(x, w)
    plans = [p for p in _plans(y, *fg.autograd.grad(y.square().sum(), [x, w])) if p is not None]
    assert len(plans) == 1 and plans[0].a.k_major and plans[0].b.k_major and plans[0].slice == 32
    assert plans[0].a.spec("float32")["dtype"] == "tfloat32" and plans[0].a.box == (32, cuda_wgmma.BM)
    (ir,) = kernel_irs(y)
    renderer = renderer_for("cuda")
    ptx = cuda_rt.compile_cuda(renderer.render_unit([renderer.render_kernel(ir)]), "90a", ptx=True).decode()
    assert "wgmma.mma_async.sync.aligned.m64n" in ptx and ".tf32.tf32" in ptx
    fg.backends.cuda.matmul.allow_tf32 = False
    assert _plans(y) == [None]


@needs_nvrtc
def test_clusters_pair_row_tiles() -> None:
    """Two blocks of neighbouring row tiles share operand b's copies where the rows pair up (an odd
    count only when few of them would idle); each copies half of b's box."""
    for m, cluster in ((1024, 2), (1000, 2), (384, 1), (128, 1), (2176, 2)):
        (p,) = _plans(cpu_array((m, 256), "bfloat16") @ cpu_array((256, 512), "bfloat16"))
        assert p is not None and p.cluster == cluster, (m, p)
        assert p.blocks % cluster == 0 and p.tiles >= -(-m // cuda_wgmma.BM) * -(-512 // p.bn)
        assert p.b.box == ((64, cuda_wgmma.BK // cluster) if not p.b.k_major else (cuda_wgmma.BK, p.bn // cluster))


@needs_nvrtc
def test_sm90a_compilation_and_launch_line() -> None:
    """The unit compiles for sm_90a with wgmma, bulk tensor copies and mbarriers; the launch line
    carries the shared memory and both tensor maps."""
    a, b = cpu_array((1000, 520), "bfloat16"), cpu_array((300, 520), "bfloat16")
    (ir,) = kernel_irs((a @ b.T).relu() * 3)
    renderer = renderer_for("cuda")
    unit = renderer.render_unit([renderer.render_kernel(ir)])
    (spec,) = cuda_tma.parse(unit).values()
    plan = cuda_wgmma.plan(ir, cuda_gemm.plan(ir))
    assert spec["smem"] == plan.smem <= 227 * 1024
    assert [m["dims"] for m in spec["maps"]] == [[520, 1000], [520, 300]]
    assert [m["strides"] for m in spec["maps"]] == [[1040], [1040]]
    ptx = cuda_rt.compile_cuda(unit, "90a", ptx=True).decode()
    for instruction in ("wgmma.mma_async.sync.aligned.m64n", "cp.async.bulk.tensor.2d", "mbarrier.try_wait.parity",
                        "wgmma.wait_group", ".multicast::cluster", "mapa.shared::cluster", "barrier.cluster.wait"):
        assert instruction in ptx, instruction
    assert cuda_rt.compile_cuda(unit, "90a")[:4] == b"\x7fELF"
    assert spec["cluster"] == plan.cluster == 2 and ".reqnctapercluster 2, 1, 1" in ptx
    (ir,) = kernel_irs(cpu_array((2048, 2048), "float16") @ cpu_array((2048, 2048), "float16"))
    wide = renderer.render_unit([renderer.render_kernel(ir)])
    assert "setmaxnreg.inc" in cuda_rt.compile_cuda(wide, "90a", ptx=True).decode()  # 256-wide tiles, one block


# ---- on an sm_90 GPU ----------------------------------------------------------------------------

def _hopper_reason() -> str | None:
    if GPU_REASON is not None:
        return f"no CUDA GPU: {GPU_REASON}"
    device = registry.get(GPU)
    return None if device.target == "90a" else f"{device.device_name} is sm_{device.arch}, not sm_90"


HOPPER_REASON = _hopper_reason()
needs_hopper = pytest.mark.skipif(HOPPER_REASON is not None, reason=str(HOPPER_REASON))


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Every launch of a tensor-map kernel as (name, whether its operands were aligned), with the
    generated kernels chosen over cuBLAS and every product above 64 x 64 on the tensor cores."""
    device = registry.get(GPU)
    monkeypatch.setattr(device, "gemm_choice", "generated")
    monkeypatch.setattr(cuda_wgmma, "MIN_WORK", 0)
    monkeypatch.setattr(realize_mod, "_programs", {})
    monkeypatch.setattr(realize_mod, "_plans", {})
    seen: list[tuple[str, bool]] = []
    original = cuda_tma.TensorMapProgram.launch_pointers

    def record(self: cuda_tma.TensorMapProgram, pointers: list[int]) -> None:
        aligned = all((pointers[s["param"]] + s["itemsize"] * s["offset"]) % 16 == 0 for s in self._specs)
        seen.append((self.name, aligned))
        original(self, pointers)
    monkeypatch.setattr(cuda_tma.TensorMapProgram, "launch_pointers", record)
    return seen


TOL = {"bfloat16": 1e-2, "float16": 2e-3}


def _random(shape: tuple[int, ...]) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


@needs_hopper
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_products_every_layout_and_odd_sizes(dtype: str, launches: list) -> None:
    """Both operands in both layouts, sizes off every tile edge, batched and broadcast operands,
    a 256-wide tile, against float64; rows whose byte stride is no multiple of 16 (70 and 65
    halves) have no tensor map and take the fallback kernel."""
    cases = [(lambda x, y: x @ y, [(200, 72), (72, 136)]), (lambda x, y: x @ y.T, [(1000, 520), (300, 520)]),
             (lambda x, y: x.T @ y, [(136, 200), (136, 96)]), (lambda x, y: x.T @ y.T, [(264, 72), (80, 264)]),
             (lambda x, y: x @ y, [(5, 130, 64), (5, 64, 72)]), (lambda x, y: x @ y, [(3, 2, 96, 40), (40, 72)]),
             (lambda x, y: x @ y, [(1024, 256), (256, 2048)])]
    fallbacks = [(lambda x, y: x @ y, [(5, 130, 64), (5, 64, 70)]), (lambda x, y: x @ y, [(65, 8), (8, 65)])]
    for fn, shapes in cases + fallbacks:
        error = _half_product_error(fn, [_random(s) for s in shapes], dtype)
        assert error < TOL[dtype], (shapes, error)
    assert len(launches) == len(cases) and all(aligned for _, aligned in launches)


@needs_hopper
def test_tf32_products(launches: list, tf32: None) -> None:
    """float32 products with TF32 allowed: K-major operands on the TF32 kernel (a split one too), within
    TF32's precision of float64 (operands rounded to 10-bit mantissas, float32 sums); a fused bias."""
    for shapes in ([(1000, 520), (300, 520)], [(256, 8192), (384, 8192)], [(3, 130, 96), (3, 72, 96)]):
        a, b = (_random(s) for s in shapes)
        with fg.no_grad():
            got = (fg.tensor(a, device=GPU) @ fg.tensor(b, device=GPU).transpose(-1, -2) + 1.0).numpy()
        want = a.astype(np.float64) @ np.swapaxes(b, -1, -2).astype(np.float64) + 1.0
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 2e-3, shapes
    assert len(launches) == 3 and all(aligned for _, aligned in launches)


@needs_hopper
def test_misaligned_operand_runs_the_fallback(launches: list) -> None:
    """An operand starting 2 bytes past 16-byte alignment cannot have a tensor map: the call runs the
    fallback kernel, with the same result."""
    flat = fg.tensor(_random((1 + 256 * 128,)), dtype="bfloat16", device=GPU)
    b = fg.tensor(_random((128, 192)), dtype="bfloat16", device=GPU)
    a = flat[1:].reshape(256, 128)
    want = a.float().numpy().astype(np.float64) @ b.float().numpy().astype(np.float64)
    got = (a @ b).float().numpy()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < TOL["bfloat16"]
    assert launches and not launches[-1][1]


@needs_hopper
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_split_reduction_twice(dtype: str, launches: list) -> None:
    """A weight gradient's shape (384 x 384 outputs, 8192 summed): partial tiles meet in the
    workspace; the second call finds it zeroed again."""
    x, g = _random((8192, 384)), _random((8192, 384))
    (ir,) = kernel_irs(cpu_array((8192, 384), dtype).T @ cpu_array((8192, 384), dtype))
    assert cuda_wgmma.plan(ir, cuda_gemm.plan(ir)).splits > 1
    for _ in range(2):
        error = _half_product_error(lambda a, b: a.T @ b, [x, g], dtype)
        assert error < TOL[dtype], error


@needs_hopper
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_fused_epilogues(dtype: str, launches: list) -> None:
    """Bias, GELU, scaling, a residual and a float32 output computed on the tile, not in a second kernel."""
    a, w, bias, res = _random((512, 320)), _random((448, 320)), _random((448,)), _random((512, 448))
    ta, tw, tbias, tres = (fg.tensor(v, dtype=dtype, device=GPU) for v in (a, w, bias, res))
    ea, ew, ebias, eres = (t.float().numpy().astype(np.float64) for t in (ta, tw, tbias, tres))
    with fg.no_grad():
        got = ((ta @ tw.T).float() * 0.5 + tbias.float()).relu() + tres.float()
        got = got.numpy()
    want = np.maximum(ea @ ew.T * 0.5 + ebias, 0) + eres
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < TOL[dtype]
    assert len(launches) == 1
    with fg.no_grad():
        gelu = F.gelu(ta @ tw.T).float().numpy()
    want = torch.nn.functional.gelu(torch.from_numpy(ea @ ew.T)).numpy()
    assert np.abs(gelu - want).max() < 0.05 * np.abs(want).max()  # the product rounded to the half type first


@needs_hopper
def test_jit_replays_tensor_map_kernels(launches: list) -> None:
    """A jitted bf16 training step of a linear layer (its two products on the tensor cores) replays
    as CUDA graphs whose launches carry the tensor maps; losses equal the eager step's."""
    def make_step():  # noqa: ANN202
        fg.manual_seed(3)
        layer = fg.nn.Linear(256, 320).to(GPU)
        opt = fg.optim.SGD(layer.parameters(), lr=0.01)

        def step(x: fg.Tensor) -> fg.Tensor:
            opt.zero_grad()
            with fg.autocast("cuda", dtype=fg.bfloat16):
                loss = layer(x).float().square().mean()
            loss.backward()
            opt.step()
            return loss
        return step
    x = fg.tensor(_random((512, 256)), device=GPU)
    eager, jitted = make_step(), fg.jit(make_step())
    losses = [(eager(x).item(), jitted(x).item()) for _ in range(5)]
    np.testing.assert_allclose([j for _, j in losses], [e for e, _ in losses], rtol=1e-3)
    assert jitted.replays >= 2 and len({name for name, _ in launches}) == 2  # the forward and the weight gradient

"""The OpenCL device against the CPU device: same random inputs, same programs, same results.

Skipped as a whole where no OpenCL device exists (pyopencl, an ICD loader and a platform such
as PoCL are needed; see docs/gpu.md).
"""
from __future__ import annotations

import gc
import re
import subprocess
import sys
import warnings
from typing import Callable, Iterator, Sequence

import numpy as np
import pytest

import fusegrad as fg
from fusegrad import dtypes
from fusegrad.codegen import renderer_for
from fusegrad.codegen.lanes import thread_plan
from fusegrad.codegen.ir import Accumulate, DefineAcc, EndLoop, Load, Loop, LoopIR, Param, Ref, Store
from fusegrad.codegen.lanes import BLOCK_LANES, WARP
from fusegrad.engine.realize import _kernel_name, kernel_ir, kernel_key
from fusegrad.engine.schedule import create_schedule, toposort
from fusegrad.graph.ops import Op
from fusegrad.graph.symbolic import Var, var
from fusegrad.runtime import cache, registry
from tests.helpers import RNG, training_step

if "opencl" not in registry.available():
    pytest.skip(f"no OpenCL device: {registry.unavailable().get('opencl')}", allow_module_level=True)

CL = "opencl"
TOL = {"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-12)}
# long sums: the CPU adds in SIMD lanes, a work-item in order, lanes in a tree (float16 rounds once, at the end)
SUM_TOL = {"float32": (1e-4, 1e-3), "float64": (1e-10, 1e-9), "float16": (2e-3, 1e-2)}


@pytest.fixture(params=["device-lanes", "lanes-forced"])
def lanes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Once with the device's own lanes setting, once with lanes forced on, so that PoCL (one lane
    per output by default) runs the lane kernels too."""
    device = registry.get(CL)
    saved = device.lanes
    if request.param == "lanes-forced":
        device.lanes = BLOCK_LANES
    yield
    device.lanes = saved


def on_both(fn: Callable[..., Sequence[fg.Tensor]], arrays: Sequence[np.ndarray], dtype: str | None = None
            ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """fn's outputs on the CPU and on OpenCL for the same inputs, realized in one schedule per device."""
    results = []
    for device in ("cpu", CL):
        outs = list(fn(*[fg.tensor(a, dtype=dtype, device=device) for a in arrays]))
        assert all(o.device == registry.canonical(device) for o in outs)
        fg.realize(*outs)
        results.append([o.numpy() for o in outs])
    return results[0], results[1]


def assert_same(cpu: Sequence[np.ndarray], cl: Sequence[np.ndarray], dtype: str) -> None:
    rtol, atol = TOL.get(dtype, (0, 0))
    for i, (want, got) in enumerate(zip(cpu, cl)):
        assert got.dtype == want.dtype and got.shape == want.shape, f"output {i}"
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=f"output {i}")


def float_ops(a: fg.Tensor, b: fg.Tensor) -> list[fg.Tensor]:
    pos = a.abs() + 0.5
    return [a + b, a - b, a * b, a / pos, -a, a.exp(), pos.log(), a.sin(), a.cos(), pos.sqrt(), a.erf(),
            a.floor(), a.relu(), a.maximum(b), a.tanh(), a.sigmoid(), pos ** b, a % b.abs().clamp_min(0.25),
            (a < b).float(), (a == a.floor()).float(), fg.where(a > 0, a, b), a.amax(1), a.round(1),
            a.sum(1)]  # last: a sum rounds differently in SIMD lanes and in order (SUM_TOL)


def int_ops(a: fg.Tensor, b: fg.Tensor) -> list[fg.Tensor]:
    nz = fg.where(b == 0, b + 3, b)
    return [a + b, a - b, a * b, a // nz, a % nz, -a, a.maximum(b), (a < b), (a == b), a & b, a | b, a ^ b, ~a,
            a.abs(), a ** 2, fg.where(a > b, a, b), a.sum(0), a.amax(1), a.float() / 3]


def bool_ops(a: fg.Tensor, b: fg.Tensor) -> list[fg.Tensor]:
    return [a & b, a | b, a ^ b, ~a, a == b, fg.where(a, b, ~b), a.int() + b.int(), a.any(1), a.all(0),
            a.float() * 2, (a.int() * 5).bool()]


@pytest.mark.usefixtures("lanes")
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "bool"])
def test_elementwise_matches_cpu(dtype: str) -> None:
    shape = (13, 29)
    if dtype == "bool":
        arrays, fn = [RNG.random(shape) < 0.5, RNG.random(shape) < 0.5], bool_ops
    elif dtype.startswith("int"):
        # int64 values beyond 32 bits: a 32-bit index or literal type would show
        scale = 2**40 if dtype == "int64" else 1000
        arrays = [RNG.integers(-scale, scale, shape).astype(dtype) for _ in range(2)]
        arrays[1][0, :5] = [0, -1, 1, -7, 7]  # division by zero and by -1 are defined (0 and -a)
        fn = int_ops
    else:
        arrays = [RNG.uniform(-3, 3, shape).astype(dtype) for _ in range(2)]
        arrays[0][0, 0] = np.nan  # max, where and comparisons must propagate NaN like the CPU does
        fn = float_ops
    cpu, cl = on_both(fn, arrays, dtype)
    if fn is float_ops:
        np.testing.assert_allclose(cl.pop(), cpu.pop(), *SUM_TOL[dtype], equal_nan=True)
    assert_same(cpu, cl, dtype)


@pytest.mark.usefixtures("lanes")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_storage_matches_cpu(dtype: str) -> None:
    arrays = [RNG.uniform(-4, 4, (9, 31)).astype(np.float32) for _ in range(2)]
    cpu, cl = on_both(lambda a, b: [(a * b + 1).exp(), a.maximum(b), a.sum(1).float()], arrays, dtype)
    for want, got in zip(cpu, cl):
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=1e-2, atol=1e-2)


@pytest.mark.usefixtures("lanes")
def test_reductions_match_cpu_and_numpy() -> None:
    x = RNG.standard_normal((37, 53)).astype(np.float32)
    y = RNG.standard_normal((4, 5, 6)).astype(np.float64)

    def fn(a: fg.Tensor, b: fg.Tensor) -> list[fg.Tensor]:
        return [a.sum(0), a.sum(1), a.sum(), a.amax(0), a.amax(1, keepdim=True), a.mean(), a.mean(0),
                b.sum((0, 2)), b.amax((1, 2)), b.mean(1, keepdim=True), b.permute(2, 0, 1).sum(1), b.prod(0)]
    cpu = [[t.numpy() for t in fn(fg.tensor(x), fg.tensor(y))]]
    dev = fn(fg.tensor(x, device=CL), fg.tensor(y, device=CL))
    fg.realize(*dev)
    got = [t.numpy() for t in dev]
    for want, g in zip(cpu[0], got):
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[0], x.sum(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[3], x.max(0))
    np.testing.assert_allclose(got[8], y.max((1, 2)))
    np.testing.assert_allclose(got[11], y.prod(0), rtol=1e-12)


@pytest.mark.usefixtures("lanes")
def test_movement_matches_cpu() -> None:
    x = RNG.standard_normal((5, 6, 7)).astype(np.float32)
    z = RNG.standard_normal((5, 2, 7)).astype(np.float32)

    def fn(a: fg.Tensor, b: fg.Tensor) -> list[fg.Tensor]:
        return [a.permute(2, 0, 1).contiguous(), a[:, :1].expand(5, 4, 7).contiguous(),
                a.pad((1, 2, 0, 0, 3, 0)).contiguous(), a[1:4, 2:, ::2].contiguous(),
                a.flip(0, 2).contiguous(), fg.cat([a, b], dim=1), (a.permute(1, 0, 2) * 2).flip(1)[1:, 2:4]]
    cpu, cl = on_both(fn, [x, z])
    assert_same(cpu, cl, "float32")
    np.testing.assert_array_equal(cl[0], x.transpose(2, 0, 1))
    np.testing.assert_array_equal(cl[4], x[::-1, :, ::-1])
    np.testing.assert_array_equal(cl[5], np.concatenate([x, z], axis=1))


@pytest.mark.usefixtures("lanes")
def test_matmul_odd_sizes() -> None:
    a, b = RNG.standard_normal((17, 23)), RNG.standard_normal((23, 9))
    c, d = RNG.standard_normal((3, 5, 7)), RNG.standard_normal((3, 7, 4))
    cpu, cl = on_both(lambda p, q, r, s: [p @ q, r @ s, p.T @ p], [a, b, c, d], "float32")
    for want, got in zip(cpu, cl):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(cl[0], a.astype(np.float32) @ b.astype(np.float32), rtol=1e-4, atol=1e-4)
    cpu64, cl64 = on_both(lambda p, q: [p @ q], [a, b], "float64")
    # summation orders differ (the CPU may block the product): an absolute floor for sums near zero
    np.testing.assert_allclose(cl64[0], a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cl64[0], cpu64[0], rtol=1e-12, atol=1e-12)


def test_rand_in_unit_interval_and_same_stream_as_cpu() -> None:
    seed = int(RNG.integers(0, 2**63))
    fg.manual_seed(seed)
    on_cl = fg.rand(1000, 3, device=CL).numpy()
    fg.manual_seed(seed)
    on_cpu = fg.rand(1000, 3).numpy()
    assert on_cl.min() >= 0 and on_cl.max() < 1
    assert 0.45 < on_cl.mean() < 0.55
    np.testing.assert_array_equal(on_cl, on_cpu)
    fg.manual_seed(seed)
    n_cl = fg.randn(500, device=CL).numpy()
    fg.manual_seed(seed)
    np.testing.assert_allclose(n_cl, fg.randn(500).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("lanes")
def test_mlp_gradients_match_cpu() -> None:
    x = RNG.standard_normal((8, 5)).astype(np.float32)
    params = [RNG.standard_normal(s).astype(np.float32) * 0.5 for s in ((5, 16), (16,), (16, 3), (3,))]
    target = RNG.integers(0, 3, 8)
    grads = {}
    for device in ("cpu", CL):
        w1, b1, w2, b2 = [fg.tensor(p, device=device, requires_grad=True) for p in params]
        inp = fg.tensor(x, device=device)
        logits = (inp @ w1 + b1).tanh() @ w2 + b2
        loss = fg.nn.functional.cross_entropy(logits, fg.tensor(target, device=device))
        loss.backward()
        grads[device] = [loss.numpy()] + [p.grad.numpy() for p in (w1, b1, w2, b2)]
        buffers = [p.grad._node.buffer for p in (w1, b1, w2, b2)]  # packed back to back, as on the CPU
        (base,) = {b.base for b in buffers}
        flat = registry.get(device).copy_out(base, np.dtype(np.float32), base.nbytes // 4)
        for b, g in zip(buffers, grads[device][1:]):
            np.testing.assert_array_equal(flat[b.offset // 4:(b.offset + b.nbytes) // 4], g.reshape(-1))
    for want, got in zip(grads["cpu"], grads[CL]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.abs(grads[CL][1]).sum() > 0


@pytest.mark.usefixtures("lanes")
def test_sgd_steps_match_cpu() -> None:
    x = RNG.standard_normal((16, 6)).astype(np.float32)
    y = RNG.standard_normal((16, 2)).astype(np.float32)
    seed = int(RNG.integers(0, 2**31))
    runs = {}
    for device in ("cpu", CL):
        fg.manual_seed(seed)
        model = fg.nn.Sequential(fg.nn.Linear(6, 10), fg.nn.ReLU(), fg.nn.Linear(10, 2)).to(device)
        opt = fg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        losses = []
        for _ in range(3):
            opt.zero_grad()
            loss = fg.nn.functional.mse_loss(model(fg.tensor(x, device=device)), fg.tensor(y, device=device))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert all(p.device == registry.canonical(device) for p in model.parameters())
        runs[device] = (losses, [p.numpy() for p in model.parameters()])
    np.testing.assert_allclose(runs[CL][0], runs["cpu"][0], rtol=1e-5)
    assert runs[CL][0][-1] < runs[CL][0][0]
    for want, got in zip(runs["cpu"][1], runs[CL][1]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def jit_pair(device: str, seed: int) -> tuple[Callable, Callable, fg.nn.Module, fg.nn.Module]:
    """(eager step, jitted step, eager model, jitted model): SGD with momentum on a small MLP with
    dropout (random state, state carried in swapped buffers, arena ranges at unaligned offsets)."""
    def make() -> tuple[Callable, fg.nn.Module]:
        fg.manual_seed(seed)
        model = fg.nn.Sequential(fg.nn.Linear(20, 32), fg.nn.ReLU(), fg.nn.Dropout(0.2), fg.nn.Linear(32, 5))
        model = model.to(device)
        return training_step(model, fg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)), model

    (eager, m1), (step, m2) = make(), make()
    return eager, fg.jit(step), m1, m2


@pytest.mark.usefixtures("lanes")
def test_jit_training_step_replays_like_eager_and_cpu() -> None:
    batches = [(RNG.standard_normal((16, 20)).astype(np.float32), RNG.integers(0, 5, 16)) for _ in range(4)]
    seed = int(RNG.integers(0, 2**31))
    runs = {}
    for device in (CL, "cpu"):
        eager, jitted, m1, m2 = jit_pair(device, seed)
        inputs = [(fg.tensor(x, device=device), fg.tensor(y, device=device)) for x, y in batches]
        losses = []
        with warnings.catch_warnings():
            # falling back to eager warns (a RuntimeWarning); a driver's build notes are not failures
            warnings.simplefilter("error", RuntimeWarning)
            for i in range(8):
                fg.manual_seed(seed + i)  # the same dropout masks for both steps
                a = eager(*inputs[i % 4]).item()
                fg.manual_seed(seed + i)
                b = jitted(*inputs[i % 4]).item()
                assert abs(a - b) <= 1e-6 * abs(a), f"{device} call {i}: eager {a}, replay {b}"
                losses.append(b)
        assert jitted.replays == 8 - jitted.captures and jitted.replays >= 5, "later calls must replay"
        for p, q in zip(m1.parameters(), m2.parameters()):
            np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-5, atol=1e-6)
        runs[device] = losses, [p.numpy() for p in m2.parameters()]
    np.testing.assert_allclose(runs[CL][0], runs["cpu"][0], rtol=1e-5)
    for want, got in zip(runs["cpu"][1], runs[CL][1]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_jit_replays_allocate_nothing_and_profile_each_kernel() -> None:
    _, jitted, _, _ = jit_pair(CL, 0)
    inputs = [(fg.tensor(RNG.standard_normal((16, 20)), dtype="float32", device=CL),
               fg.tensor(RNG.integers(0, 5, 16), device=CL)) for _ in range(3)]
    for x, y in inputs:  # warm-up: the loss of the call before is held during a call, so two buffers alternate
        loss = jitted(x, y)
    before = fg.memory_stats(CL)["allocations"]
    for x, y in inputs:
        loss = jitted(x, y)
    assert fg.memory_stats(CL)["allocations"] == before
    assert np.isfinite(loss.item())
    with fg.profile() as prof:  # a profiled replay launches the same kernels one by one, each timed
        profiled = jitted(*inputs[0]).item()
    (plan,) = jitted.memory_plan()
    assert len(prof.kernels) == plan["kernels"] and all(k.device == "opencl:0" for k in prof.kernels)
    assert np.isfinite(profiled) and jitted.replays == 7 - jitted.captures
    assert fg.memory_stats(CL)["allocations"] == before


def test_jit_results_of_earlier_calls_stay_valid() -> None:
    f = fg.jit(lambda x: x + 1)
    first = f(fg.tensor([1.0], device=CL))
    pending = first * 10  # lazy: a kernel reads first's memory when realized
    np.testing.assert_array_equal(f(fg.tensor([5.0], device=CL)).numpy(), [6.0])
    np.testing.assert_array_equal(first.numpy(), [2.0])
    np.testing.assert_array_equal(pending.numpy(), [20.0])


def test_virtual_addresses_resolve_to_buffers_and_offsets() -> None:
    device = registry.get(CL)
    a, b = device.alloc(1024), device.alloc(16)
    pa, pb = device.pointer(a), device.pointer(b)
    assert pa != pb and device.pointer(a) == pa
    before = fg.memory_stats(CL)["allocations"]
    for offset in (0, 4, 128, 1020):  # any offset inside the buffer: kernels take it as an argument
        memory, at = device.addresses.resolve(pa + offset)
        assert memory is a.handle and at == offset
    assert fg.memory_stats(CL)["allocations"] == before  # an address inside a buffer allocates nothing
    with pytest.raises(fg.JitError):
        device.addresses.resolve(pb + 16)  # past the end
    del b
    gc.collect()
    with pytest.raises(fg.JitError):  # a dead buffer leaves the table of addresses
        device.addresses.resolve(pb)


def test_kernels_read_and_write_at_byte_offsets_into_buffers() -> None:
    """A program called on addresses inside buffers (as a replay's arena ranges are) reads and
    writes there and nowhere else."""
    device = registry.get(CL)
    x = fg.tensor(np.arange(6, dtype=np.float32), device=CL)
    y = x * 2 + 1
    ir = kernel_irs(fg.tensor(np.arange(6, dtype=np.float32)) * 2 + 1)[0]
    [program] = device.compile(renderer_for(CL).render_unit([renderer_for(CL).render_kernel(ir)]), [ir.name],
                               [len(ir.params)])
    arena = device.alloc(4096)
    device.copy_in(arena, np.full(1024, -1, dtype=np.float32))
    device.copy_in(arena, np.concatenate([np.full(40, -1, np.float32), np.arange(6, dtype=np.float32)]))
    base = device.pointer(arena)
    program.call_pointers([base + 1000, base + 160] if ir.params[0].output else [base + 160, base + 1000])
    out = device.copy_out(arena, np.dtype(np.float32), 1024)
    np.testing.assert_array_equal(out[250:256], y.numpy())
    np.testing.assert_array_equal(out[40:46], np.arange(6))
    untouched = np.delete(out, np.r_[40:46, 250:256])
    assert (untouched == -1).all()


# ---- reductions shared by the lanes of a work-group ----------------------------------------

def kernel_irs(*outputs: fg.Tensor) -> list[LoopIR]:
    """The loop IR of every kernel realizing `outputs` (lazy CPU tensors), as the engine lowers it for OpenCL."""
    nodes = [t._node for t in outputs if t._node.buffer is None]
    renderer = renderer_for(CL)
    return [kernel_ir(it.spec, _kernel_name(it.spec, kernel_key(it.spec)), renderer)
            for it in create_schedule(nodes, toposort(nodes)) if it.alias_of is None and it.spec.root.numel > 0]


def random_array(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if dtype.startswith("int"):
        return RNG.integers(-1000, 1000, shape).astype(dtype)
    return RNG.uniform(-3, 3, shape).astype(dtype)


def lane_reductions(t: fg.Tensor) -> list[fg.Tensor]:
    """Every combine: sums, maxima, minima, argmax (a max, then a min of indices), products, any, all."""
    floating = t.dtype.is_floating_point
    factor = t * 1e-4 + 1 if floating else 1 - 2 * (t % 2)  # products that stay finite: near 1, or of 1 and -1
    rare = 2.99 if floating else 995  # rows of 100 hold a value beyond it now and then
    outs = [t.sum(1), t.amax(1), t.min(1)[0], t.argmax(1), factor.prod(1), (t > rare).any(1), (t > -rare).all(1)]
    return outs + [t.half().sum(1), t.bfloat16().amax(1)] if floating else outs


def assert_close(cpu: Sequence[np.ndarray], cl: Sequence[np.ndarray], tol: dict[str, tuple[float, float]]) -> None:
    """Floats within their dtype's (rtol, atol) of `tol`, everything else exactly."""
    for i, (want, got) in enumerate(zip(cpu, cl)):
        assert got.dtype == want.dtype and got.shape == want.shape, f"output {i}"
        if want.dtype.kind == "f":
            rtol, atol = tol[str(want.dtype)]
            np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=rtol, atol=atol,
                                       equal_nan=True, err_msg=f"output {i}")
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"output {i}")


# 32 lanes (warp-like plans) and 256 (block-like); 1000 and 64 outputs are more than a PoCL launch
# has work-groups, so each group takes several outputs in turn (other dtypes take only those: PoCL
# compiles kernels with barriers slowly)
LANE_SHAPES = {(1000, 100): WARP, (64, 4096): BLOCK_LANES, (64, 784): WARP}


@pytest.mark.usefixtures("lanes")
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_reductions_shared_by_lanes_match_cpu(dtype: str) -> None:
    shapes = list(LANE_SHAPES.items())[:None if dtype == "float32" else 2]
    arrays = [random_array(shape, dtype) for shape, _ in shapes]
    for x, (_, planned) in zip(arrays, shapes):
        assert thread_plan(kernel_irs(fg.tensor(x).sum(1))[0])[2] == planned
    cpu, cl = on_both(lambda *ts: [r for t in ts for r in lane_reductions(t)], arrays)
    assert_close(cpu, cl, SUM_TOL)
    if dtype.startswith("float"):
        for x in arrays:
            x[1, 7] = np.nan  # a maximum meeting NaN stays NaN, whichever lane holds it
        cpu, cl = on_both(lambda *ts: [r for t in ts for r in (t.amax(1), t.min(1)[0], t.sum(1))], arrays)
        assert all(np.isnan(c[1]) and not np.isnan(c[0]) for c in cl)
        assert_close(cpu, cl, SUM_TOL)


@pytest.mark.usefixtures("lanes")
def test_full_reductions_of_a_million_elements_match_cpu() -> None:
    x = random_array(((1 << 20) + 7,), "float32")
    assert thread_plan(kernel_irs(fg.tensor(x).sum())[0])[2] == BLOCK_LANES
    cpu, cl = on_both(lambda t: [t.sum(), t.max(), t.min(), t.argmax(), t.double().sum(), (t > 2.99).any()], [x])
    # float32 sums of a million values in (-3, 3), added in different orders, differed by up to 0.027
    # (a run after other tests drew other data); 0.1 is still far below a dropped element or lane
    assert_close(cpu, cl, {"float32": (1e-4, 0.1), "float64": (1e-12, 1e-9)})
    np.testing.assert_allclose(cl[4], x.astype(np.float64).sum(), rtol=1e-9)
    assert cl[3] == np.argmax(x)
    n = random_array(((1 << 20) + 7,), "int64")
    cpu, cl = on_both(lambda t: [t.sum(), t.amax(), (t != 5000).all()], [n])
    assert_close(cpu, cl, {})
    assert cl[0] == n.sum()
    x[123457] = np.nan
    cpu, cl = on_both(lambda t: [t.max(), t.sum()], [x])
    assert np.isnan(cl[0]) and np.isnan(cl[1])


def test_lanes_combine_in_local_memory_and_the_first_lane_stores() -> None:
    """The kernel with lanes for builds that define FG_LANES, the plain one for the others."""
    (ir,) = kernel_irs(fg.tensor(random_array((64, 784), "float32")).sum(1))
    source = renderer_for(CL).render_kernel(ir)
    head, shared, plain = re.fullmatch(r"(.*)\n#ifdef FG_LANES\n(.*)\n#else\n(.*)\n#endif", source, re.DOTALL).groups()
    assert head == f"// fusegrad lanes {ir.name} 32 64"
    assert "__local float fg_red_float_0[32];" in shared
    assert shared.count("barrier(CLK_LOCAL_MEM_FENCE);") == 3  # partials written; each halving; array reused
    assert "fg_gid += get_num_groups(0)" in shared and re.search(r"= lane; \w+ < 784; \w+ \+= fg_lanes\)", shared)
    assert "if (lane == 0) {" in shared and "get_global_id" not in shared
    assert "barrier" not in plain and "__local" not in plain and "fg_gid += get_global_size(0)" in plain


def test_launches_give_whole_work_groups_of_as_many_lanes_as_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The device's setting caps the lanes (rounded down to a power of two, as the combine halves
    them; 1 runs the plain build); the kernel gives the same sums with any of them."""
    device, renderer = registry.get(CL), renderer_for(CL)
    x = random_array((64, 4096), "float32")
    (ir,) = kernel_irs(fg.tensor(x).sum(1))
    (program,) = device.compile(renderer.render_unit([renderer.render_kernel(ir)]), [ir.name], [2])
    out, inp = device.alloc(64 * 4), device.alloc(x.nbytes)
    device.copy_in(inp, x)
    for setting, lanes in ((1, 0), (2, 2), (100, 64), (256, 256), (4096, 256)):
        monkeypatch.setattr(device, "lanes", setting)
        groups = min(64, device.global_size // max(lanes, 1))
        plain = (False, (device.global_size,), None)
        assert program.launch_plan() == ((True, (lanes * groups,), (lanes,)) if lanes else plain)
        program([out, inp])
        np.testing.assert_allclose(device.copy_out(out, np.dtype(np.float32), 64), x.sum(1), rtol=1e-4, atol=1e-3)


def store_in_loop_ir(store_inside: bool) -> LoopIR:
    """Four running sums of 4096 values; with `store_inside`, the sum so far is stored every step."""
    f32, g, r = dtypes.float32, Var("g0", 4), Var("r1", 4096)
    load = Load(1, var("g0", 4) * 4096 + var("r1", 4096), (), f32)
    store = Store(0, var("g0", 4), Ref("acc", f32), f32)
    inside, after = ([store], []) if store_inside else ([], [store])
    stmts = [Loop(g, "global"), DefineAcc("acc", Op.SUM, f32), Loop(r, "reduce"), Accumulate("acc", Op.SUM, load, f32),
             *inside, EndLoop("reduce"), *after, EndLoop("global")]
    params = [Param(f32, 4, True), Param(f32, 4 * 4096, False)]
    return LoopIR(f"k_store_{'inside' if store_inside else 'after'}", params, stmts, 4 * 4096)


def test_a_store_inside_a_loop_keeps_one_work_item_per_output(monkeypatch: pytest.MonkeyPatch) -> None:
    device, renderer = registry.get(CL), renderer_for(CL)
    monkeypatch.setattr(device, "lanes", BLOCK_LANES)
    assert "barrier" in renderer.render_kernel(store_in_loop_ir(False))  # the same sums stored after their loop
    source = renderer.render_kernel(store_in_loop_ir(True))
    assert "barrier" not in source and "fusegrad lanes" not in source and "get_global_id(0)" in source
    (program,) = device.compile(renderer.render_unit([source]), ["k_store_inside"], [2])
    assert program.launch_plan() == (False, (device.global_size,), None)
    x = random_array((4, 4096), "float32")
    out, inp = device.alloc(16), device.alloc(x.nbytes)
    device.copy_in(inp, x)
    program([out, inp])
    np.testing.assert_allclose(device.copy_out(out, np.dtype(np.float32), 4), x.sum(1), rtol=1e-4, atol=1e-3)


def test_replays_launch_with_the_work_groups_of_eager_launches(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel that writes the sizes it was launched with, planned as 4 outputs of 32 lanes."""
    device = registry.get(CL)
    monkeypatch.setattr(device, "lanes", BLOCK_LANES)
    source = ("// fusegrad lanes k 32 4\n__kernel void k(__global uchar* base, ulong at) {\n"
              "  __global int* p0 = (__global int*)(base + at);\n  size_t i = get_global_id(0);\n"
              "  if (i < 256) p0[i] = (int)get_local_size(0);\n  if (i == 0) p0[256] = (int)get_global_size(0);\n}\n")
    (program,) = device.compile(source, ["k"], [1])
    want = np.zeros(257, np.int32)
    want[:128], want[256] = 32, 128
    eager, replayed = device.alloc(257 * 4), device.alloc(257 * 4)
    for buf in (eager, replayed):
        device.copy_in(buf, np.zeros(257, np.int32))
    program([eager])
    sequence = device.sequence([(program, [(0, 0)])], 1)
    table = sequence.new_slots()
    table[0] = device.pointer(replayed)
    sequence.run(table)
    for buf in (eager, replayed):
        np.testing.assert_array_equal(device.copy_out(buf, np.dtype(np.int32), 257), want)


def test_jit_replays_lane_kernels_like_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry.get(CL), "lanes", BLOCK_LANES)
    f = fg.jit(lambda t: (t.sum(1), t.amax(), (t * 2).sum(0), t.argmax(1)))
    for _ in range(4):
        x = random_array((64, 3000), "float32")
        rows, top, cols, arg = f(fg.tensor(x, device=CL))
        np.testing.assert_allclose(rows.numpy(), x.sum(1), rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(cols.numpy(), 2 * x.sum(0), rtol=1e-4, atol=1e-3)
        assert top.item() == x.max()
        np.testing.assert_array_equal(arg.numpy(), x.argmax(1))
    assert f.replays == 4 - f.captures and f.replays >= 2


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool", "float16"])
def test_transfer_both_ways(dtype: str) -> None:
    data = RNG.standard_normal((3, 4, 5)) * 100
    host = fg.tensor(data.astype(np.bool_) if dtype == "bool" else data, dtype=dtype)
    there = host.to(CL)
    assert there.device == "opencl:0" and there.dtype == host.dtype
    back = (there * 1).cpu() if dtype != "bool" else there.cpu()
    assert back.device == "cpu"
    np.testing.assert_array_equal(back.numpy(), host.numpy())
    np.testing.assert_array_equal(host.to("opencl:0").numpy(), host.numpy())


def test_mixing_devices_names_both() -> None:
    a = fg.ones(3)
    b = fg.ones(3, device=CL)
    with pytest.raises(fg.DeviceError, match=r"cpu.*opencl:0|opencl:0.*cpu"):
        a + b
    with pytest.raises(fg.DeviceError, match=r"cpu.*opencl:0|opencl:0.*cpu"):
        b @ a


def test_device_names_and_memory_accounting() -> None:
    assert registry.canonical("opencl") == "opencl:0" and registry.get("opencl") is registry.get("opencl:0")
    with pytest.raises(fg.DeviceError, match="opencl:99"):
        fg.tensor([1.0, 2.0], device="opencl:99")
    before = fg.memory_stats(CL)["current_bytes"]
    t = fg.tensor(np.zeros(1000, np.float32), device=CL)
    assert fg.memory_stats(CL)["current_bytes"] - before >= 4000
    del t
    empty = fg.zeros(0, 3, device=CL) + 1  # 0-byte buffers allocate and copy
    assert empty.numpy().shape == (0, 3)


def test_binary_cache_and_corrupt_entry(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", str(tmp_path))
    device = registry.get(CL)
    value = int(RNG.integers(1, 1000))  # a fresh source, so the first build is not a cache hit
    source = (f"__kernel void k(__global uchar* base, ulong at) {{\n"
              f"  if (get_global_id(0) == 0) ((__global float*)(base + at))[0] = {value}.0f;\n}}\n")
    device.compile(source, ["k"], [1])
    key = cache.cache_key(source, device.identity, *device.build_options(device.lanes > 1))
    assert cache.lookup(key, "clbin") is not None
    cache.store(key, "clbin", lambda out: out.write_bytes(b"not a program binary"))
    (program,) = device.compile(source, ["k"], [1])  # falls back to a source build and re-caches
    assert cache.lookup(key, "clbin").read_bytes() != b"not a program binary"
    buf = device.alloc(4)
    assert program([buf]) >= 0
    assert device.copy_out(buf, np.dtype(np.float32), 1)[0] == value


def test_build_error_carries_source_and_log() -> None:
    source = "__kernel void k(__global float* p0) { p0[0] = not_declared; }\n"
    with pytest.raises(fg.CompileError) as info:
        registry.get(CL).compile(source, ["k"], [1])
    assert info.value.source == source
    assert "not_declared" in info.value.compiler_output


def test_missing_pyopencl_makes_device_absent() -> None:
    code = ("import sys; sys.modules['pyopencl'] = None\n"
            "import fusegrad as fg\nfrom fusegrad.runtime import registry\n"
            "assert 'opencl' not in registry.available(), registry.available()\n"
            "print(registry.unavailable()['opencl'])\n"
            "try:\n    fg.ones(2, device='opencl')\nexcept fg.DeviceError as e:\n    print('DeviceError', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pyopencl" in out.stdout and "DeviceError" in out.stdout

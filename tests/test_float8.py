"""float8_e4m3fn and float8_e5m2: the codec against PyTorch's casts (every code, random values, every
rounding midpoint), casts inside kernels on every device, arithmetic computed in float32 and rounded
after each operation, products summed in float32, movement ops, promotion errors, gradients,
torch._scaled_mm, printing and checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad import float8
from fusegrad.errors import DTypeError, InvalidValueError, ShapeError
from fusegrad.runtime import registry
from tests.helpers import RNG
from tests.test_cuda import needs_nvrtc

FORMATS = [("float8_e4m3fn", torch.float8_e4m3fn), ("float8_e5m2", torch.float8_e5m2)]
# the oracle's float8 semantics are PyTorch 2.13's (the pinned test dependency): earlier versions turn an
# e4m3fn magnitude from 480 up into NaN where 2.13 saturates to 448, and lack row-wise _scaled_mm on the CPU
torch_2_13 = pytest.mark.skipif(tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) < (2, 13),
                                reason=f"float8 casts compare with PyTorch 2.13's; this is {torch.__version__}")
DEVICES = [pytest.param(d, marks=pytest.mark.skipif(d not in registry.available(), reason=f"no {d} device here"))
           for d in ("cpu", "opencl", "cuda")]


def _values() -> np.ndarray:
    """Random magnitudes over every binade of both formats, the specials, and each format's rounding
    midpoints with their float32 neighbours."""
    scales = [RNG.standard_normal(4000) * 10.0 ** e for e in range(-8, 7)]
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 448, 449, 464, 480, 57344, 61439, 61440, 1e-9, 2 ** -10]
    mids = []
    for _, dt in FORMATS:
        codes = torch.arange(256, dtype=torch.uint8).view(dt).float().numpy()
        finite = np.unique(codes[np.isfinite(codes)]).astype(np.float64)
        mid = ((finite[1:] + finite[:-1]) / 2).astype(np.float32)
        mids += [mid, np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(-np.inf))]
    return np.concatenate(scales + [np.array(special)] + mids).astype(np.float32)


def _torch_codes(values: np.ndarray, dt: torch.dtype) -> np.ndarray:
    return torch.from_numpy(values).to(dt).view(torch.uint8).numpy()


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    return bool(np.all((got == want) | (np.isnan(got) & np.isnan(want))))


@torch_2_13
@pytest.mark.parametrize("name,dt", FORMATS)
def test_host_codec_matches_torch(name: str, dt: torch.dtype) -> None:
    fmt = float8.FORMATS[name]
    values = _values()
    np.testing.assert_array_equal(float8.encode(values, fmt), _torch_codes(values, dt))
    codes = np.arange(256, dtype=np.uint8)
    assert _same(float8.decode(codes, fmt), torch.from_numpy(codes).view(dt).float().numpy())


@torch_2_13
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,dt", FORMATS)
def test_casts_in_kernels_match_torch(device: str, name: str, dt: torch.dtype) -> None:
    """float32 computed in a kernel and cast there; all 256 codes widened in a kernel; a cast between
    the two formats; integers cast to float8 (rounded: 17 is no e4m3 value)."""
    dtype = getattr(fg, name)
    values = _values()
    x = fg.tensor(values, device=device)
    got = (x * 1.0).to(dtype).view(fg.uint8).numpy()
    np.testing.assert_array_equal(got, _torch_codes(values, dt))
    codes = fg.tensor(np.arange(256, dtype=np.uint8), device=device).view(dtype)
    want = torch.arange(256, dtype=torch.uint8).view(dt).float().numpy()
    assert _same((codes.float() * 1.0).numpy(), want)
    other = "float8_e5m2" if name == "float8_e4m3fn" else "float8_e4m3fn"
    crossed = codes.to(getattr(fg, other)).view(fg.uint8).numpy()
    np.testing.assert_array_equal(crossed, torch.arange(256, dtype=torch.uint8).view(dt).to(getattr(torch, other))
                                  .view(torch.uint8).numpy())
    ints = np.arange(-40, 40, dtype=np.int64)
    got = fg.tensor(ints, device=device).to(dtype).float().numpy()
    np.testing.assert_array_equal(got, torch.from_numpy(ints).to(dt).float().numpy())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,dt", FORMATS)
def test_arithmetic_rounds_after_each_op(device: str, name: str, dt: torch.dtype) -> None:
    """Operations on one float8 type compute in float32 and round each result (PyTorch's CPU kernels
    lack most of them; rounding the float32 result is what its narrow types do)."""
    a, b = (RNG.standard_normal((6, 7)).astype(np.float32) * 4 for _ in range(2))
    ta, tb = (torch.from_numpy(v).to(dt) for v in (a, b))
    fa, fb = (fg.tensor(v, dtype=getattr(fg, name), device=device) for v in (a, b))

    def r(t: torch.Tensor) -> np.ndarray:
        return t.to(dt).float().numpy()
    np.testing.assert_array_equal((fa + fb).float().numpy(), r(ta.float() + tb.float()))
    np.testing.assert_array_equal((fa * fb * 3).float().numpy(), r(torch.from_numpy(r(ta.float() * tb.float())) * 3))
    np.testing.assert_array_equal(fa.relu().float().numpy(), r(ta.float().relu()))
    np.testing.assert_array_equal((fa @ fb.T).float().numpy(), (ta @ tb.T).float().numpy())  # summed in float32
    np.testing.assert_array_equal(fa.sum(1).float().numpy(), r(ta.float().sum(1)))


@pytest.mark.parametrize("device", DEVICES)
def test_movement_keeps_codes(device: str) -> None:
    a = RNG.standard_normal((4, 6)).astype(np.float32)
    t = torch.from_numpy(a).to(torch.float8_e4m3fn)
    f = fg.tensor(a, dtype=fg.float8_e4m3fn, device=device)
    for fn in (lambda x: x.T.contiguous(), lambda x: x[1:, ::2], lambda x: x.flip(0), lambda x: x.reshape(3, 8),
               lambda x: x[:, :1].expand(4, 5), lambda x: x.clone()):
        np.testing.assert_array_equal(fn(f).view(fg.uint8).numpy(), fn(t).contiguous().view(torch.uint8).numpy())
    np.testing.assert_array_equal(fg.cat([f, f]).float().numpy(), torch.cat([t, t]).float().numpy())


def test_promotion_and_scaled_mm_errors() -> None:
    """float8 promotes with no other dtype (PyTorch raises too); _scaled_mm checks like torch's."""
    x = fg.tensor([1.0, 2.0], dtype=fg.float8_e4m3fn)
    for other in (fg.tensor([1.0, 2.0]), fg.tensor([1, 2]), x.to(fg.float8_e5m2), x.to(fg.bfloat16)):
        with pytest.raises(DTypeError, match="float8"):
            x + other
    with pytest.raises(DTypeError):
        fg.dtypes.promote_types(fg.float8_e5m2, fg.float16)
    a, b, s = fg.ones(4, 8, dtype=fg.float8_e4m3fn), fg.ones(8, 3, dtype=fg.float8_e4m3fn), fg.tensor(1.0)
    with pytest.raises(ShapeError):
        fg._scaled_mm(a.reshape(1, 4, 8), b, s, s)
    with pytest.raises(ShapeError):
        fg._scaled_mm(a, b[:5], s, s)
    for bad in ((a.float(), b, s, s), (a, b, s.half(), s), (a, b, fg.ones(3), s)):
        with pytest.raises(InvalidValueError):
            fg._scaled_mm(*bad)


@torch_2_13
@pytest.mark.parametrize("rowwise", [False, True])
@pytest.mark.parametrize("out", [None, "float32", "bfloat16"])
def test_scaled_mm_matches_torch(rowwise: bool, out: str | None) -> None:
    a = (RNG.standard_normal((16, 32)) * 0.5).astype(np.float32)
    b = (RNG.standard_normal((32, 24)) * 0.5).astype(np.float32)
    sa = RNG.uniform(0.5, 2, (16, 1) if rowwise else ()).astype(np.float32)
    sb = RNG.uniform(0.5, 2, (1, 24) if rowwise else ()).astype(np.float32)
    bias = RNG.standard_normal(24).astype(np.float32)
    ta, tb = torch.from_numpy(a).to(torch.float8_e4m3fn), torch.from_numpy(b).T.contiguous().to(torch.float8_e4m3fn)
    fa, fb = fg.tensor(a, dtype=fg.float8_e4m3fn), fg.tensor(b, dtype=fg.float8_e4m3fn)
    kw = {} if out is None else {"out_dtype": getattr(torch, out)}
    extra = {} if out != "bfloat16" else {"bias": torch.from_numpy(bias).to(torch.bfloat16)}
    want = torch._scaled_mm(ta, tb.T, torch.from_numpy(sa), torch.from_numpy(sb), **kw, **extra)
    fextra = {} if out != "bfloat16" else {"bias": fg.tensor(bias, dtype=fg.bfloat16)}
    got = fg._scaled_mm(fa, fb, fg.tensor(sa), fg.tensor(sb), **({} if out is None else {"out_dtype": out}), **fextra)
    assert got.dtype.name == str(want.dtype).removeprefix("torch.")
    np.testing.assert_allclose(got.float().numpy(), want.float().numpy(), rtol=1e-6 if out == "float32" else 1e-2,
                               atol=1e-5)


def test_gradient_reaches_a_float8_leaf() -> None:
    """As in PyTorch, a float8 tensor may require grad; its gradient is float8."""
    a = RNG.standard_normal((3, 4)).astype(np.float32)
    x = fg.tensor(a, dtype=fg.float8_e5m2, requires_grad=True)
    w = fg.tensor(RNG.standard_normal((3, 4)).astype(np.float32))
    (x.float() * w).sum().backward()
    tx = torch.from_numpy(a).to(torch.float8_e5m2).requires_grad_()
    (tx.float() * torch.from_numpy(w.numpy())).sum().backward()
    assert x.grad.dtype is fg.float8_e5m2
    np.testing.assert_array_equal(x.grad.float().numpy(), tx.grad.float().numpy())


def test_printing_and_checkpoints(tmp_path) -> None:  # noqa: ANN001
    values = [0.1, -3.3, 448.0, float("nan"), -float("nan")]
    x = fg.tensor(values, dtype=fg.float8_e4m3fn)
    assert repr(x) == repr(torch.tensor(values).to(torch.float8_e4m3fn)).replace("torch.", "fusegrad.")
    codes = x.view(fg.uint8).numpy()
    fg.save({"x": x, "y": x.to(fg.float8_e5m2)}, tmp_path / "f8.safetensors")
    back = fg.load(tmp_path / "f8.safetensors")
    assert back["x"].dtype is fg.float8_e4m3fn and back["y"].dtype is fg.float8_e5m2
    np.testing.assert_array_equal(back["x"].view(fg.uint8).numpy(), codes)
    from safetensors.torch import save_file
    t = torch.tensor([0.5, -2.25, 240.0]).to(torch.float8_e5m2)
    save_file({"w": t}, str(tmp_path / "torch.safetensors"))  # PyTorch's F8_E5M2 entries load as float8_e5m2
    w = fg.load(tmp_path / "torch.safetensors")["w"]
    assert w.dtype is fg.float8_e5m2 and w.float().numpy().tolist() == t.float().tolist()


@pytest.mark.parametrize("device", DEVICES)
def test_products_read_float8_operands_in_one_kernel(device: str) -> None:
    """A product of float8 matrices (mixed formats too, as torch._scaled_mm takes them) reads the codes
    and widens them as it packs: one kernel, equal to torch's product of the widened values."""
    from tests.test_cuda import kernel_irs
    a, w = (RNG.standard_normal(s).astype(np.float32) for s in ((96, 400), (72, 400)))  # broadcast operands
    fa, fw = fg.tensor(a, dtype=fg.float8_e4m3fn, device=device), fg.tensor(w, dtype=fg.float8_e5m2, device=device)
    y = fg._scaled_mm(fa, fw.T, fg.tensor(0.5, device=device), fg.tensor(2.0, device=device), out_dtype="float32")
    assert len(kernel_irs(y)) == 1
    ta, tw = torch.from_numpy(a).to(torch.float8_e4m3fn).float(), torch.from_numpy(w).to(torch.float8_e5m2).float()
    np.testing.assert_allclose(y.numpy(), (ta @ tw.T).numpy(), rtol=1e-5, atol=1e-4)


@needs_nvrtc
def test_cuda_kernels_with_float8_compile() -> None:
    from fusegrad.codegen import cuda_gemm
    from fusegrad.engine.realize import renderer_for
    from fusegrad.runtime import cuda as cuda_rt
    from tests.test_cuda import cpu_array, kernel_irs
    x = cpu_array((64, 32), "float32")
    irs = kernel_irs((x.to(fg.float8_e4m3fn).float() * 2).to(fg.float8_e5m2))
    renderer = renderer_for("cuda")
    unit = renderer.render_unit([renderer.render_kernel(ir) for ir in irs])
    assert "fg_f32_to_e5m2" in unit and cuda_rt.compile_cuda(unit, 80)[:4] == b"\x7fELF"
    a, w = cpu_array((1024, 512), "float32").to(fg.float8_e4m3fn), cpu_array((768, 512), "float32").to(fg.float8_e5m2)
    (ir,) = kernel_irs(a.realize().float() @ w.realize().float().T)
    assert cuda_gemm.plan(ir) is not None  # the tiled product widens the codes as it loads them
    unit = renderer.render_unit([renderer.render_kernel(ir)])
    assert "fg_e5m2_to_f32" in unit and cuda_rt.compile_cuda(unit, 80)[:4] == b"\x7fELF"

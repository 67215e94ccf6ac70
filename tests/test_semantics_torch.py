"""Semantics PyTorch programs rely on, against torch 2.13: view(dtype), the gradients of pow and sign,
type promotion of pow, nested index keys, half-precision products accumulating in float32, half
results rounded after every operation, and exp's accuracy over the whole float range."""
import warnings

import numpy as np
import pytest
import torch

import fusegrad as fg

RNG = np.random.default_rng(2026)
NAMES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"]


def _as_fg(data: np.ndarray, name: str) -> fg.Tensor:
    return fg.tensor(data != 0) if name == "bool" else fg.tensor(data, dtype=name)


def _bits(t, lib) -> np.ndarray:
    """Values to compare exactly: bfloat16 (which numpy lacks) as its 16 bits."""
    if str(t.dtype).endswith("bfloat16"):
        t = t.view(lib.int16)
    return t.numpy()


# ---- view(dtype) ------------------------------------------------------------------------
@pytest.mark.parametrize("src", NAMES)
def test_view_dtype_matches_torch(src):
    floats = np.array([[1.0, -2.5, 0.0, np.inf], [3.25, -0.0, 7.0, 1e-3]], dtype=np.float32)
    ints = np.array([[1, -2, 5, 127], [3, 4, 0, -7]])
    data = floats if src.startswith(("float", "bfloat")) else (np.abs(ints) if src == "uint8" else ints)
    x = _as_fg(data, src)
    t = torch.tensor(data).to(getattr(torch, src))
    checked = []
    for dst in NAMES:
        try:
            want = t.view(getattr(torch, dst))
        except RuntimeError:
            with pytest.raises(fg.ShapeError):
                x.view(getattr(fg, dst))
            continue
        got = x.view(getattr(fg, dst))
        assert got.shape == tuple(want.shape) and got.dtype.name == dst
        checked.append((dst, got, want))
    for dst, got, want in checked:
        np.testing.assert_array_equal(_bits(got, fg), _bits(want, torch), err_msg=f"{src} -> {dst}")


def test_view_dtype_errors_and_gradient():
    with pytest.raises(fg.ShapeError):
        fg.tensor(1.0).view(fg.float16)  # a 0-d tensor cannot change its element size
    with pytest.raises(fg.ShapeError):
        fg.ones(2, 3).view(fg.float64)  # the last dim must divide
    assert fg.tensor(1.0).view(fg.int32).item() == torch.tensor(1.0).view(torch.int32).item()
    x = fg.ones(2, 4, requires_grad=True)
    for dt in (fg.int32, fg.float16, fg.float32, fg.float64):
        assert not x.view(dt).requires_grad  # as in torch: reinterpreting bits has no gradient
    assert fg.zeros(0, 4).view(fg.float64).shape == (0, 2)
    assert fg.ones(4, 2).t().view(fg.int32).shape == (2, 4)


def test_view_dtype_is_one_kernel_of_a_fused_expression():
    x = fg.tensor(RNG.standard_normal(64).astype(np.float32))
    with fg.profile() as p:
        y = ((x * 2).view(fg.int32) & 0x7FFFFFFF).view(fg.float32).realize()  # |2x| through the sign bit
    assert len(p.kernels) == 1
    np.testing.assert_array_equal(y.numpy(), np.abs(x.numpy() * 2))


# ---- pow and sign gradients ----------------------------------------------------------------
POW = {
    "square_at_zero": lambda x, y: x ** 2,
    "power_zero_int": lambda x, y: x ** 0,
    "power_zero_float": lambda x, y: x ** 0.0,
    "cube": lambda x, y: x ** 3,
    "power_1_5": lambda x, y: x ** 1.5,
    "zero_base": lambda x, y: 0.0 ** x,
    "two_base": lambda x, y: 2.0 ** x,
    "tensor_tensor": lambda x, y: x ** y,
    "tensor_tensor_swapped": lambda x, y: y ** x,
    "pow_method": lambda x, y: x.pow(y),
    "zero_exponent_tensor": lambda x, y: x ** (y * 0),
}


@pytest.mark.parametrize("name", list(POW))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pow_gradient_matches_torch_at_zero(name, dtype):
    a = np.array([0.0, 0.0, 1.0, 2.0, 0.5, 0.0], dtype=dtype)
    b = np.array([0.0, 2.0, 0.0, 1.5, -1.0, 0.5], dtype=dtype)
    out = []
    for lib in (fg, torch):
        x, y = lib.tensor(a, requires_grad=True), lib.tensor(b, requires_grad=True)
        r = POW[name](x, y)
        r.sum().backward()
        out.append([np.asarray(r.tolist())] + [np.asarray(t.grad.tolist()) if t.grad is not None else None
                                               for t in (x, y)])
    for ours, theirs in zip(*out):
        if theirs is None:
            assert ours is None or not np.any(ours)
        else:
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, equal_nan=True)


@pytest.mark.parametrize("name", ["power_zero_float", "cube", "square_at_zero"])
def test_pow_second_derivative_matches_torch_at_zero(name):
    a = np.array([0.0, 1.0, 2.0])
    ours = fg.grad(lambda x: fg.grad(lambda z: (POW[name](z, None) * z).sum())(x).sum())(fg.tensor(a))
    t = torch.tensor(a, requires_grad=True)
    (first,) = torch.autograd.grad((POW[name](t, None) * t).sum(), [t], create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), [t])
    np.testing.assert_allclose(ours.numpy(), second.numpy(), rtol=1e-9)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sign_is_differentiable_with_zero_gradient(dtype):
    a = np.array([-1.5, 0.0, 2.0, -0.0], dtype=dtype)
    grads = []
    for lib in (fg, torch):
        x = lib.tensor(a, requires_grad=True)
        s = x.sign()
        assert s.requires_grad
        (s * 3 + x.sgn() + x.abs()).sum().backward()
        grads.append((np.asarray(s.tolist()), np.asarray(x.grad.tolist())))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])
    assert not fg.tensor(a).sign().requires_grad


# ---- promotion ---------------------------------------------------------------------------
PROMOTION = {
    "int_pow_float2": lambda m: m.tensor([1, 2, 3]) ** 2.0,
    "int_pow_int2": lambda m: m.tensor([1, 2, 3]) ** 2,
    "int_pow_half": lambda m: m.tensor([1, 4, 9]) ** 0.5,
    "int_pow_one_float": lambda m: m.tensor([1, 4, 9]) ** 1.0,
    "int_pow_three_float": lambda m: m.tensor([1, 4, 9]).pow(3.0),
    "bool_pow_int": lambda m: m.tensor([True, False]) ** 2,
    "float_scalar_pow_int": lambda m: 2.0 ** m.tensor([1, 2]),
    "int_scalar_pow_int": lambda m: 2 ** m.tensor([1, 2]),
    "int_pow_float_tensor": lambda m: m.tensor([1, 2]) ** m.tensor(2.0),
    "half_pow_float": lambda m: m.tensor([1.5, 2.0], dtype=m.float16) ** 2.0,
}


@pytest.mark.parametrize("name", list(PROMOTION))
def test_pow_promotion_matches_torch(name):
    ours, theirs = PROMOTION[name](fg), PROMOTION[name](torch)
    assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-3)


# ---- nested index keys -------------------------------------------------------------------
KEYS = {
    "tuple_in_key": ((0,), [1, 2], Ellipsis),
    "list_then_ellipsis": ([0, 1], Ellipsis),
    "nested_tuple": ((0, 1),),
    "list_of_list": [[0, 1]],
    "list_of_two_lists": [[0, 1], [1, 2]],
    "list_with_slice": [slice(None), [0, 2]],
    "list_of_ints": [1, 0, 1],
    "one_tuple": ((1,),),
    "bool_list": [True, False],
    "list_with_ellipsis": [[1, 0], Ellipsis],
    "list_with_none": [None, 0],
    "tuple_of_2d_list": ([[0, 1], [1, 0]],),
    "mixed": (slice(1, None), (2, 0), [3, 1]),
}


@pytest.mark.parametrize("name", list(KEYS))
def test_nested_index_keys_match_torch(name):
    key = KEYS[name]
    a = np.arange(24.0).reshape(2, 3, 4)
    ours = fg.tensor(a)[key]
    with warnings.catch_warnings():  # torch warns that list keys holding sequences are read as tuples
        warnings.simplefilter("ignore")
        theirs = torch.tensor(a)[key]
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    x, t = fg.tensor(a), torch.tensor(a)
    x[key] = -1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t[key] = -1.0
    np.testing.assert_array_equal(x.numpy(), t.numpy())


# ---- half-precision products accumulate in float32 -----------------------------------------
PRODUCTS = {
    "matmul": (lambda m, a, b: a @ b, (1, 4096), (4096, 1)),
    "mm": (lambda m, a, b: m.mm(a, b), (2, 3000), (3000, 2)),
    "bmm": (lambda m, a, b: m.bmm(a, b), (2, 1, 2500), (2, 2500, 1)),
    "einsum": (lambda m, a, b: m.einsum("ik,kj->ij", a, b), (1, 4096), (4096, 3)),
    "matmul_blocked": (lambda m, a, b: a @ b, (64, 1024), (1024, 64)),
}


@pytest.mark.parametrize("name", list(PRODUCTS))
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_products_accumulate_in_float32(name, dtype):
    fn, sa, sb = PRODUCTS[name]
    # sums of thousands of ones: a half (bfloat16) accumulator stops growing at 2048 (256)
    a, b = np.ones(sa, dtype=np.float32), np.ones(sb, dtype=np.float32)
    a[..., ::7] = 0.5
    ours = fn(fg, fg.tensor(a, dtype=dtype), fg.tensor(b, dtype=dtype))
    theirs = fn(torch, torch.tensor(a).to(getattr(torch, dtype)), torch.tensor(b).to(getattr(torch, dtype)))
    exact = a @ b
    assert ours.dtype.name == dtype
    np.testing.assert_allclose(ours.numpy(), theirs.float().numpy(), rtol=1e-2)
    np.testing.assert_allclose(ours.numpy(), exact, rtol=1e-2)  # one rounding of the float32 sum


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_fused_half_operations_round_each_result_as_torch(dtype):
    """A fused kernel computes half values in float, but rounds every operation's result to the dtype,
    so the numbers do not depend on what fused: exactly torch's."""
    a, b, c = (RNG.uniform(-3, 3, 4096).astype(np.float32) for _ in range(3))

    def chain(lib, x, y, z):
        h = getattr(lib, dtype)
        x, y, z = x.to(h), y.to(h), z.to(h)
        return [(x * y + z).float(), x.exp().float(), (x / y).sqrt().float() + 0, (x.sin() - z * 3).float(),
                ((x + y) * 0.1).to(lib.float16 if dtype == "bfloat16" else lib.bfloat16).float()]
    ours = chain(fg, fg.tensor(a), fg.tensor(b), fg.tensor(c))
    theirs = chain(torch, torch.tensor(a), torch.tensor(b), torch.tensor(c))
    for o, t in zip(ours, theirs):
        np.testing.assert_array_equal(o.numpy(), t.numpy())


def test_exp_within_one_ulp_over_the_float_range_with_torchs_special_values():
    """The CPU's exp is within 1 ulp of torch's (each within 1 of the true value) everywhere; CUDA's
    expf and OpenCL's exp are specified to 2 and 3 ulp of the true value."""
    x = np.concatenate([np.linspace(-110, 90, 400_001, dtype=np.float32),
                        np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, -87.5, -103.9, 88.7, 88.8], np.float32)])
    t = fg.tensor(x)
    ours, theirs = t.exp().numpy(), torch.tensor(x).exp().numpy()
    assert np.array_equal(np.isnan(ours), np.isnan(theirs)) and np.array_equal(np.isinf(ours), np.isinf(theirs))
    finite = np.isfinite(theirs)
    spacing = np.spacing(np.abs(theirs[finite]))  # one ulp, denormal spacing below the normal range
    ulps = {"cpu": 1.01, "cuda": 3.01}.get(t.device.split(":")[0], 4.01)
    assert np.max(np.abs(ours[finite].astype(np.float64) - theirs[finite]) / spacing) <= ulps
    assert ours[-4] > 0 and ours[-3] > 0  # denormal results are not flushed


# ---- BITCAST in every renderer ----------------------------------------------------------------
def _bitcast_kernels(language: str) -> list:
    """The loop IR of kernels bitcasting between every pair of dtypes of one itemsize, for `language`."""
    from fusegrad.codegen import renderer_for
    from fusegrad.engine.realize import _kernel_name, kernel_ir, kernel_key
    from fusegrad.engine.schedule import create_schedule, toposort
    groups = [["float32", "int32"], ["float64", "int64"], ["float16", "bfloat16", "int16"], ["int8", "uint8", "bool"]]
    outputs = []
    for group in groups:
        for src in group:
            x = _as_fg(np.array([1, 0, 3]), src)
            outputs += [x.view(getattr(fg, dst)) for dst in group if dst != src]
    nodes = [t._node for t in outputs]
    renderer = renderer_for(language)
    items = create_schedule(nodes, toposort(nodes))
    return [kernel_ir(it.spec, _kernel_name(it.spec, kernel_key(it.spec)), renderer) for it in items]


def test_bitcast_renders_in_cuda_and_compiles_where_nvrtc_is():
    from fusegrad.codegen import renderer_for
    from fusegrad.runtime import cuda as cuda_rt
    renderer = renderer_for("cuda")
    unit = renderer.render_unit(sorted({renderer.render_kernel(ir) for ir in _bitcast_kernels("cuda")}))
    for helper in ("fg_f32_bits(", "fg_bits_f64(", "fg_f16_bits(", "fg_bf16_to_f32(", "fg_f32_to_bf16("):
        assert helper in unit
    try:
        cuda_rt.nvrtc_version()
    except Exception as e:  # noqa: BLE001  (package or library missing)
        pytest.skip(f"NVRTC cannot be loaded here ({e}); the source was rendered")
    assert cuda_rt.compile_cuda(unit, 90)[:4] == b"\x7fELF"


@pytest.mark.skipif("opencl" not in fg._registry.available(), reason="no OpenCL device here")
def test_bitcast_runs_on_opencl():
    for name, data in (("float32", [1.0, -2.5]), ("float16", [1.5, -0.0]), ("bfloat16", [3.0, -1.0]),
                       ("float64", [0.1, 2.0])):
        x, ref = fg.tensor(data, dtype=name, device="opencl"), fg.tensor(data, dtype=name)
        bits = {2: fg.int16, 4: fg.int32, 8: fg.int64}[x.dtype.itemsize]
        np.testing.assert_array_equal(x.view(bits).numpy(), ref.view(bits).numpy())
        np.testing.assert_array_equal(_bits(x.view(bits).view(x.dtype), fg), _bits(ref, fg))

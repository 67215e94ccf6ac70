"""The torch-style top-level functions (fusegrad/functions.py): existence, values, out=, errors."""
import inspect

import numpy as np
import pytest
import torch

import fusegrad as fg

RNG = np.random.default_rng(1206)

# torch functions a PyTorch user calls on tensors; each must exist as fg.<name>
EXPECTED = """
abs absolute acos acosh add all allclose amax amin any arccos arccosh arcsin arcsinh arctan arctan2
arctanh argmax argmin asin asinh atan atan2 atanh bitwise_and bitwise_left_shift bitwise_not bitwise_or
bitwise_right_shift bitwise_xor bmm broadcast_to cat ceil chunk clamp clamp_max clamp_min clip clone copysign
cos cosh count_nonzero cumprod cumsum detach diagonal div divide dot einsum eq erf exp exp2 expm1 fix flatten flip
fliplr flipud floor floor_divide fmod gather ge ger gt hypot index_select is_floating_point is_tensor isclose
isfinite isinf isnan isneginf isposinf le lerp log log10 log1p log2 log_softmax logaddexp logaddexp2 logical_and
logical_not logical_or logical_xor logsumexp lt masked_fill masked_select matmul max maximum mean min minimum mm
moveaxis movedim mul multiply mv nan_to_num narrow ne neg negative norm numel outer permute pow prod reciprocal
relu remainder reshape roll round rsqrt select sgn sigmoid sign sin sinh softmax split sqrt square squeeze stack
std std_mean sub subtract sum swapaxes swapdims t take tan tanh tile transpose tril triu true_divide trunc unbind
unflatten unsqueeze var var_mean where greater greater_equal less less_equal not_equal positive signbit deg2rad
rad2deg frac sinc logit float_power ldexp xlogy heaviside fmax fmin nansum nanmean
""".split()


@pytest.mark.parametrize("name", EXPECTED)
def test_torch_function_exists(name):
    assert callable(getattr(torch, name))
    assert callable(getattr(fg, name)), f"fusegrad has no {name}"


def test_every_tensor_method_torch_exposes_is_a_function():
    """A new Tensor method that torch also has as torch.<name> needs its entry in functions.TABLE."""
    missing = [name for name in dir(torch) if not name.startswith("_") and hasattr(fg.Tensor, name)
               and callable(getattr(torch, name)) and not isinstance(getattr(torch, name), type)
               and not hasattr(fg, name)]
    assert not missing, f"add these to fusegrad/functions.py TABLE: {missing}"


def test_generated_functions_look_like_functions():
    assert fg.sin.__name__ == "sin" and fg.logsumexp.__name__ == "logsumexp"
    assert "Tensor.sum" in fg.sum.__doc__ or "input.sum" in fg.sum.__doc__
    params = inspect.signature(fg.sum).parameters
    assert list(params)[:3] == ["input", "dim", "keepdim"] and "out" in params
    assert "out" not in inspect.signature(fg.relu).parameters
    assert fg.is_tensor(fg.ones(1)) and not fg.is_tensor(np.ones(1))


def _pair(shape, dtype="float32", low=-2.0, high=2.0):
    a = RNG.uniform(low, high, size=shape).astype(dtype)
    return fg.tensor(a), torch.tensor(a)


def _same(got, ref, rtol=1e-5):
    if isinstance(ref, torch.Tensor):
        assert got.dtype.name == str(ref.dtype).removeprefix("torch."), (got.dtype, ref.dtype)
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=rtol, atol=1e-6)
    else:
        assert got == ref


UNARY = ["abs", "neg", "sign", "square", "exp", "expm1", "log1p", "sin", "cos", "tanh", "sigmoid", "relu", "erf",
         "floor", "ceil", "trunc", "round", "atan", "sinh", "isnan", "isfinite", "logical_not"]


def test_unary_functions_match_torch():
    f, t = _pair((3, 5), low=-0.9, high=0.9)
    for name in UNARY:
        _same(getattr(fg, name)(f), getattr(torch, name)(t))


def test_binary_functions_match_torch():
    (fa, ta), (fb, tb) = _pair((4, 5)), _pair((5,), low=0.5, high=2.0)
    for name in ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "atan2", "copysign", "logaddexp",
                 "remainder", "fmod", "eq", "lt", "ge"]:
        _same(getattr(fg, name)(fa, fb), getattr(torch, name)(ta, tb))
    _same(fg.add(fa, fb, alpha=3), torch.add(ta, tb, alpha=3))
    _same(fg.sub(fa, 2.5, alpha=2), torch.sub(ta, 2.5, alpha=2))
    _same(fg.lerp(fa, fb.expand(4, 5), 0.3), torch.lerp(ta, tb.expand(4, 5), 0.3))
    _same(fg.clamp(fa, -1, 0.5), torch.clamp(ta, -1, 0.5))
    _same(fg.clip(fa, min=0), torch.clip(ta, min=0))


@pytest.mark.parametrize("mode", [None, "trunc", "floor"])
def test_div_rounding_modes(mode):
    fa, ta = _pair((12,), low=-7, high=7)
    ia, ib = np.array([7, -7, 7, -7, 0, 5]), np.array([2, 2, -2, -2, 3, -5])
    _same(fg.div(fa, 1.5, rounding_mode=mode), torch.div(ta, 1.5, rounding_mode=mode))
    _same(fg.div(fg.tensor(ia), fg.tensor(ib), rounding_mode=mode),
          torch.div(torch.tensor(ia), torch.tensor(ib), rounding_mode=mode))


def test_number_as_input_where_torch_takes_one():
    f, t = _pair((4,))
    for name in ("add", "sub", "mul", "div", "pow", "remainder"):
        _same(getattr(fg, name)(2, f.abs() + 0.5), getattr(torch, name)(2, t.abs() + 0.5))
    with pytest.raises(TypeError):
        fg.sin(1.0)
    with pytest.raises(TypeError):
        fg.atan2(1.0, f)


def test_reductions_match_torch():
    f, t = _pair((3, 4, 5))
    _same(fg.sum(f), torch.sum(t))
    _same(fg.sum(f, (0, 2), keepdim=True), torch.sum(t, (0, 2), keepdim=True))
    for name in ("mean", "prod", "std", "var", "logsumexp", "amax", "amin", "argmax", "argmin", "softmax",
                 "log_softmax", "cumsum", "cumprod"):
        _same(getattr(fg, name)(f, 1), getattr(torch, name)(t, 1))
    _same(fg.norm(f), torch.norm(t))
    _same(fg.any(f > 1), torch.any(t > 1))
    _same(fg.all(f > -3, 2), torch.all(t > -3, 2))
    var, mean = fg.var_mean(f, 1)
    tvar, tmean = torch.var_mean(t, 1)
    _same(var, tvar)
    _same(mean, tmean)


def test_max_and_min_forms():
    f, t = _pair((3, 4))
    _same(fg.max(f), torch.max(t))
    values, indices = fg.max(f, 1)
    res = fg.min(f, dim=0, keepdim=True)
    tres = torch.min(t, dim=0, keepdim=True)
    _same(values, torch.max(t, 1).values)
    _same(indices, torch.max(t, 1).indices)
    _same(res.values, tres.values)
    _same(res.indices, tres.indices)
    g, u = _pair((4,))
    _same(fg.max(f, g), torch.max(t, u))
    _same(fg.min(f, g), torch.min(t, u))


def test_shape_functions():
    f, t = _pair((2, 3, 4))
    _same(fg.reshape(f, (4, 6)), torch.reshape(t, (4, 6)))
    _same(fg.permute(f, (2, 0, 1)), torch.permute(t, (2, 0, 1)))
    _same(fg.swapaxes(f, 0, 2), torch.swapaxes(t, 0, 2))
    _same(fg.t(f[0]), torch.t(t[0]))
    _same(fg.flatten(f, 1), torch.flatten(t, 1))
    assert fg.numel(f) == torch.numel(t)
    assert fg.is_floating_point(f) and not fg.is_floating_point(fg.tensor([1]))


# ---- out= ------------------------------------------------------------------------------------------
def test_out_writes_into_the_given_tensor_and_returns_it():
    f, t = _pair((3, 4))
    for name, args in [("sin", ()), ("add", (1.0,)), ("clamp", (-0.5, 0.5)), ("sum", (1,)), ("atan2", (f,)),
                       ("cumsum", (0,)), ("pow", (2,))]:
        fout = fg.zeros(getattr(fg, name)(f, *args).shape)
        targs = tuple(t if a is f else a for a in args)
        tout = torch.zeros(fout.shape)
        assert getattr(fg, name)(f, *args, out=fout) is fout
        getattr(torch, name)(t, *targs, out=tout)
        _same(fout, tout)


def test_out_casts_into_a_wider_dtype_and_resizes_an_empty_one():
    f = fg.tensor([1, 2, 3])
    out = fg.zeros(3, dtype=fg.float64)
    fg.add(f, f, out=out)
    np.testing.assert_array_equal(out.numpy(), [2.0, 4.0, 6.0])
    assert out.dtype == fg.float64
    empty = fg.empty(0)
    fg.exp(fg.zeros(2, 2), out=empty)
    assert empty.shape == (2, 2) and empty.numpy().tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_out_for_values_and_indices():
    f, t = _pair((3, 4))
    values, indices = fg.zeros(3), fg.zeros(3, dtype=fg.int64)
    res = fg.max(f, 1, out=(values, indices))
    assert res.values is values and res.indices is indices
    _same(values, torch.max(t, 1).values)
    _same(indices, torch.max(t, 1).indices)


def test_out_errors():
    f = fg.ones(2, 3)
    with pytest.raises(fg.ShapeError):
        fg.sin(f, out=fg.zeros(3, 2))
    with pytest.raises(fg.DTypeError):
        fg.sin(f, out=fg.zeros(2, 3, dtype=fg.int64))
    with pytest.raises(fg.DTypeError):
        fg.add(fg.tensor([1, 2]), 1, out=fg.zeros(2, dtype=fg.bool))
    with pytest.raises(fg.GradError):
        fg.exp(fg.ones(2, requires_grad=True), out=fg.zeros(2))
    with pytest.raises(TypeError):
        fg.relu(f, out=fg.zeros(2, 3))  # torch.relu has no out=
    with pytest.raises(TypeError):
        fg.max(f, 1, out=fg.zeros(2))
    with fg.no_grad():  # out= is fine when nothing records
        out = fg.zeros(2)
        fg.exp(fg.zeros(2, requires_grad=True), out=out)
        np.testing.assert_array_equal(out.numpy(), [1.0, 1.0])


# arguments after `input` for calling torch.<name> in the out= check (binary ones take the input again)
_TORCH_ARGS = {
    "lerp": ("x", 0.5), "clamp": (0.2,), "clip": (0.2,), "clamp_min": (0.2,), "clamp_max": (0.2,), "clamp_": (0.2,),
    "fill_": (1.0,), "reshape": ((12,),), "permute": ((1, 0),), "swapaxes": (0, 1), "swapdims": (0, 1),
    "moveaxis": (0, 1), "unflatten": (1, (2, 2)), "broadcast_to": ((3, 4),), "tile": ((2,),), "select": (0, 1),
    "take": ("index",), "masked_select": ("mask",), "float_power": (2.0,), "norm": (2, 1),
    "addcmul": ("x", "x"), "addcdiv": ("x", "x"), "tensor_split": (2,), "hsplit": (2,), "vsplit": (3,),
    "kron": ("x",), "inner": ("x",), "addmm": (torch.ones(3, 2), torch.ones(2, 4)),
    "addr": (torch.ones(3), torch.ones(4)),
    "baddbmm": (torch.ones(2, 3, 2), torch.ones(2, 2, 4)), "addbmm": (torch.ones(2, 3, 2), torch.ones(2, 2, 4)),
    "quantile": (0.5,), "nanquantile": (0.5,),
}
_ONE_ARG = {"add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "floor_divide",
            "remainder", "fmod", "pow", "atan2", "arctan2", "copysign", "hypot", "logaddexp", "logaddexp2",
            "maximum", "minimum", "xlogy", "fmax", "fmin", "eq", "ne", "lt", "le", "gt", "ge", "greater",
            "greater_equal", "less", "less_equal", "not_equal", "isclose", "allclose", "logical_and", "logical_or",
            "logical_xor", "heaviside", "ldexp", "dist", "equal", "is_same_size"}
_DIM_ARG = {"sum", "prod", "argmax", "argmin", "max", "min", "amax", "amin", "any", "all", "mean", "std", "var",
            "nansum", "nanmean", "std_mean", "var_mean", "softmax", "log_softmax", "cumsum", "cumprod", "logsumexp"}


@pytest.mark.filterwarnings("ignore:torch.ger is deprecated")
def test_out_exists_exactly_where_torch_has_it():
    from fusegrad.functions import TABLE
    x = torch.rand(3, 4) + 0.1
    values = {"x": x, "index": torch.tensor([1]), "mask": x > 0.5}
    for name, has_out in TABLE.items():
        if name == "ger":
            inp, args = torch.rand(4), (torch.rand(3),)
        elif name == "is_nonzero":
            inp, args = torch.ones(1), ()
        elif name.startswith("bitwise"):
            inp = torch.tensor([1, 2])
            args = () if name == "bitwise_not" else (inp,)
        else:
            inp = x
            args = (x,) if name in _ONE_ARG else (1,) if name in _DIM_ARG else _TORCH_ARGS.get(name, ())
            args = tuple(values.get(a, a) if isinstance(a, str) else a for a in args)
        result = getattr(torch, name)(inp, *args)
        if isinstance(result, tuple):
            out = tuple(torch.empty(0, dtype=r.dtype) for r in result)
        else:
            out = torch.empty(0, dtype=result.dtype if isinstance(result, torch.Tensor) else torch.float32)
        try:
            getattr(torch, name)(inp.clone(), *args, out=out)
            torch_has_out = True
        except TypeError:
            torch_has_out = False
        assert torch_has_out == has_out, name


def test_addcmul_addcdiv_dist_and_predicates():
    (fa, ta), (fb, tb), (fc, tc) = _pair((3, 4)), _pair((4,)), _pair((3, 1), low=0.5, high=2.0)
    _same(fg.addcmul(fa, fb, fc, value=0.5), torch.addcmul(ta, tb, tc, value=0.5))
    _same(fg.addcdiv(fa, fb, fc, value=-2), torch.addcdiv(ta, tb, tc, value=-2))
    _same(fg.addcmul(fg.tensor([1]), fg.tensor([2]), fg.tensor([3]), value=2),
          torch.addcmul(torch.tensor([1]), torch.tensor([2]), torch.tensor([3]), value=2))
    with pytest.raises(fg.DTypeError):
        fg.addcdiv(fg.tensor([1]), fg.tensor([1]), fg.tensor([1]))
    for p in (1, 2, 3, float("inf")):
        _same(fg.dist(fa, fb, p), torch.dist(ta, tb, p))
    fa.requires_grad_(True)
    ta.requires_grad_(True)
    fg.addcdiv(fa, fb, fc).sum().backward()
    torch.addcdiv(ta, tb, tc).sum().backward()
    np.testing.assert_allclose(fa.grad.numpy(), ta.grad.numpy())
    assert fg.equal(fb, fb) is True and fg.equal(fb, fb + 1) is False and fg.equal(fb, fa) is False
    assert fg.equal(fg.tensor([1.0, 2.0]), fg.tensor([1, 2])) is torch.equal(torch.tensor([1.0, 2.0]),
                                                                           torch.tensor([1, 2]))
    assert fg.is_same_size(fa, fa * 2) and not fg.is_same_size(fa, fb)
    assert [fg.is_signed(fg.tensor([1], dtype=d)) for d in (fg.uint8, fg.bool, fg.int8, fg.float16)] == \
        [False, False, True, True]
    assert fg.is_nonzero(fg.tensor([[3]])) is True and fg.is_nonzero(fg.tensor([0.0])) is False
    with pytest.raises(fg.ShapeError):
        fg.is_nonzero(fg.tensor([1, 2]))

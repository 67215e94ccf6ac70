"""Elementwise composites (fusegrad/ops/elementwise.py) against PyTorch: values, dtypes, gradients."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fusegrad as fg
from tests.helpers import RNG, finite_difference_check, check_op

SHAPE = (4, 5)  # one shape for most tests: every new shape costs a compile

# name -> (fusegrad fn, torch fn, low, high)
UNARY = {
    "abs": (lambda x: x.abs(), torch.abs, -2, 2),
    "exp2": (lambda x: x.exp2(), torch.exp2, -3, 3),
    "log2": (lambda x: x.log2(), torch.log2, 0.1, 4),
    "log10": (lambda x: x.log10(), torch.log10, 0.1, 4),
    "log1p": (lambda x: x.log1p(), torch.log1p, -0.9, 3),
    "expm1": (lambda x: x.expm1(), torch.expm1, -3, 3),
    "rsqrt": (lambda x: x.rsqrt(), torch.rsqrt, 0.2, 4),
    "tan": (lambda x: x.tan(), torch.tan, -1.2, 1.2),
    "tanh": (lambda x: x.tanh(), torch.tanh, -4, 4),
    "sigmoid": (lambda x: x.sigmoid(), torch.sigmoid, -6, 6),
    "relu": (lambda x: x.relu(), torch.relu, -2, 2),
    "leaky_relu": (lambda x: x.leaky_relu(0.2), lambda x: F.leaky_relu(x, 0.2), -2, 2),
    "leaky_relu_default": (lambda x: x.leaky_relu(), F.leaky_relu, -2, 2),
    "elu": (lambda x: x.elu(), F.elu, -3, 3),
    "elu_alpha": (lambda x: x.elu(alpha=0.5), lambda x: F.elu(x, alpha=0.5), -3, 3),
    "gelu": (lambda x: x.gelu(), F.gelu, -4, 4),
    "gelu_tanh": (lambda x: x.gelu(approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"), -4, 4),
    "silu": (lambda x: x.silu(), F.silu, -5, 5),
    "softplus": (lambda x: x.softplus(), F.softplus, -5, 5),
    "softplus_beta": (lambda x: x.softplus(beta=2, threshold=3), lambda x: F.softplus(x, beta=2, threshold=3), -3, 3),
    "mish": (lambda x: x.mish(), F.mish, -5, 5),
    "sign": (lambda x: x.sign(), torch.sign, -2, 2),
    "sgn": (lambda x: x.sgn(), torch.sign, -2, 2),  # torch.sgn's gradient is a ZeroTensor numpy refuses
    "ceil": (lambda x: x.ceil(), torch.ceil, -4, 4),
    "round": (lambda x: x.round(), torch.round, -4, 4),
    "round_decimals": (lambda x: x.round(decimals=2), lambda x: torch.round(x, decimals=2), -4, 4),
    "round_negative_decimals": (lambda x: x.round(decimals=-1), lambda x: torch.round(x, decimals=-1), -40, 40),
    "trunc": (lambda x: x.trunc(), torch.trunc, -4, 4),
    "fix": (lambda x: x.fix(), torch.fix, -4, 4),
    "reciprocal": (lambda x: x.reciprocal(), torch.reciprocal, 0.3, 3),
    "square": (lambda x: x.square(), torch.square, -2, 2),
    "negative": (lambda x: x.negative(), torch.negative, -2, 2),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), lambda x: x.clamp(-0.5, 0.7), -2, 2),
    "clamp_min": (lambda x: x.clamp(min=0.3), lambda x: x.clamp(min=0.3), -2, 2),
    "clamp_max": (lambda x: x.clamp_max(0.3), lambda x: x.clamp_max(0.3), -2, 2),
    "clip": (lambda x: x.clip(max=-0.1), lambda x: x.clip(max=-0.1), -2, 2),
    "nan_to_num": (lambda x: x.nan_to_num(), torch.nan_to_num, -2, 2),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(UNARY))
def test_unary(name, dtype):
    fn, torch_fn, low, high = UNARY[name]
    check_op([SHAPE], fn, torch_fn, dtype=dtype, low=low, high=high)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu", "softplus", "silu", "log1p", "expm1", "round", "abs"])
def test_unary_half_precision(name, dtype):
    fn, torch_fn, low, high = UNARY[name]
    check_op([SHAPE], fn, torch_fn, dtype=dtype, low=low, high=high)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("name", ["abs", "sign", "relu", "square", "ceil", "round", "clamp_min", "nan_to_num",
                                  "exp2", "reciprocal", "sigmoid", "tanh", "log1p"])
def test_unary_integer(name, dtype):
    fn, torch_fn, _, _ = UNARY[name]
    # integer results must be exact; float results (sigmoid, tanh, ...) get float32's tolerance
    check_op([SHAPE], fn, torch_fn, dtype=dtype, low=-5, high=6, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ["sign", "square", "reciprocal", "sigmoid", "exp2", "nan_to_num"])
def test_unary_bool(name):
    fn, torch_fn, _, _ = UNARY[name]
    check_op([SHAPE], fn, torch_fn, dtype="bool", atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ["abs", "relu", "ceil", "round", "trunc"])
def test_unary_rejects_bool_like_torch(name):
    with pytest.raises(fg.DTypeError, match="bool"):
        UNARY[name][0](fg.tensor([True, False]))


@pytest.mark.parametrize("name", ["leaky_relu", "elu", "gelu", "silu", "softplus", "mish"])
def test_activation_rejects_integers_like_torch(name):
    with pytest.raises(fg.DTypeError, match="int64"):
        UNARY[name][0](fg.tensor([1, -2]))


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu", "softplus", "abs"])
def test_non_contiguous_input(name):
    fn, torch_fn, low, high = UNARY[name]
    check_op([(5, 4)], lambda x: fn(x.T), lambda x: torch_fn(x.T), low=low, high=high)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "log1p", "round", "clamp", "isnan"])
def test_empty_and_scalar_tensors(name):
    fn, torch_fn = (lambda x: x.isnan(), torch.isnan) if name == "isnan" else UNARY[name][:2]
    check_op([(0, 5)], fn, torch_fn, grad=name != "isnan")
    check_op([()], fn, torch_fn, grad=name != "isnan")


EXTREME = np.array([-1e4, -200.0, -88.0, -30.0, -20.5, -1.0, -1e-6, 0.0, 1e-6, 1.0, 19.5, 30.0, 88.0, 200.0, 1e4])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "silu", "mish", "elu", "gelu", "gelu_tanh",
                                  "expm1", "leaky_relu"])
def test_extreme_values_are_finite_and_exact(name, dtype):
    fn, torch_fn, _, _ = UNARY[name]
    check_op([], fn, torch_fn, dtype=dtype, arrays=[EXTREME.astype(dtype)])


def test_exact_zero_gradients_match_torch():
    # torch: relu'(0) = 0, abs'(0) = 0, tanh'(0) = 1, sigmoid'(0) = 1/4, elu'(0) = alpha
    zeros = [np.zeros(3, dtype="float64")]
    for name in ["relu", "abs", "tanh", "sigmoid", "elu_alpha", "leaky_relu", "softplus", "gelu", "clamp"]:
        fn, torch_fn, _, _ = UNARY[name]
        check_op([], fn, torch_fn, dtype="float64", arrays=zeros)


def test_abs_of_negative_zero_is_positive_zero():
    # visible through division: 1 / +0 = inf, 1 / -0 = -inf
    check_op([], lambda x: 1 / x.abs(), arrays=[np.array([-0.0, 0.0, -2.0], dtype="float32")], grad=False)


def test_clamp_gradient_at_the_bounds_goes_to_x():
    arr = np.array([-0.5, 0.7, 0.0, -3.0, 3.0], dtype="float64")
    check_op([], lambda x: x.clamp(-0.5, 0.7), dtype="float64", arrays=[arr])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["log1p", "expm1", "tanh", "sigmoid"])
def test_relative_accuracy_near_zero(name, dtype):
    # tiny arguments, where 1 + x or exp(x) - 1 would lose every digit: compare relatively only
    mags = np.logspace(-12 if dtype == "float64" else -7, -2, 10)
    arr = np.concatenate([mags, -mags]).astype(dtype)
    rtol = 1e-14 if dtype == "float64" else 1e-6
    fn, torch_fn, _, _ = UNARY[name]
    check_op([], fn, torch_fn, dtype=dtype, arrays=[arr], atol=0, rtol=rtol, grad_atol=0)


def test_round_half_to_even():
    halves = np.array([-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 4.5, 1e8 + 0.5, -0.49, 0.51, 1e30],
                      dtype="float64")
    check_op([], lambda x: x.round(), dtype="float64", arrays=[halves], grad=False)
    check_op([], lambda x: x.round(decimals=1), dtype="float64", arrays=[np.array([0.25, 0.35, -1.25])],
                   grad=False)
    check_op([], lambda x: x.round(), dtype="float32", arrays=[halves.astype("float32")], grad=False)


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -2.5, 3e38, -3e38, 1e-40], dtype="float32")


CLASSIFY = [lambda x: x.isnan(), lambda x: x.isinf(), lambda x: x.isfinite(), lambda x: x.isposinf(),
            lambda x: x.isneginf(), lambda x: x.nan_to_num(), lambda x: x.nan_to_num(nan=1.0, posinf=2.0, neginf=-3.0)]
PROPAGATE = [lambda x: x.sign(), lambda x: x.abs(), lambda x: x.relu(), lambda x: x.clamp(-1, 1), lambda x: x.round(),
             lambda x: x.ceil(), lambda x: x.trunc(), lambda x: x.sigmoid(), lambda x: x.tanh(), lambda x: x.log1p()]


@pytest.mark.parametrize("fn,dtype", [(f, d) for f in CLASSIFY for d in ["float32", "float64", "float16", "bfloat16"]]
                         + [(f, d) for f in PROPAGATE for d in ["float32", "float16"]])
def test_nan_and_inf(fn, dtype):
    with np.errstate(over="ignore"):  # +-3e38 overflow to +-inf in float16 on purpose
        arr = SPECIAL.astype("float32" if dtype == "bfloat16" else dtype)
    check_op([], fn, dtype=dtype, arrays=[arr], grad=False)


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool", "uint8"])
@pytest.mark.parametrize("fn", [lambda x: x.isnan(), lambda x: x.isinf(), lambda x: x.isfinite()])
def test_float_classification_of_integers(fn, dtype):
    check_op([SHAPE], fn, dtype=dtype, low=-3, high=3)


def test_nan_to_num_gradient_passes_only_finite_values():
    arr = np.array([np.nan, np.inf, -np.inf, 1.5, -0.5], dtype="float64")
    check_op([], lambda x: x.nan_to_num(), dtype="float64", arrays=[arr])


# ---- binary ops ------------------------------------------------------------------------------------
BINARY = {
    "add_alpha": (lambda a, b: a.add(b, alpha=2.5), None),
    "sub": (lambda a, b: a.sub(b), None),
    "sub_alpha": (lambda a, b: a.sub(b, alpha=-0.5), None),
    "sub_alpha_int": (lambda a, b: a.sub(b, alpha=-2), None),
    "subtract": (lambda a, b: a.subtract(b), None),
    "mul": (lambda a, b: a.mul(b), None),
    "multiply": (lambda a, b: a.multiply(b), None),
    "div": (lambda a, b: a.div(b), None),
    "divide": (lambda a, b: a.divide(b), None),
    "true_divide": (lambda a, b: a.true_divide(b), None),
    "div_trunc": (lambda a, b: a.div(b, rounding_mode="trunc"), None),
    "div_floor": (lambda a, b: a.div(b, rounding_mode="floor"), None),
    "fmod": (lambda a, b: a.fmod(b), None),
    "maximum": (lambda a, b: a.maximum(b), None),
    "minimum": (lambda a, b: a.minimum(b), None),
    "clamp_tensors": (lambda a, b: a.clamp(min=b, max=b + 1), lambda a, b: a.clamp(min=b, max=b + 1)),
    "clamp_tensor_min": (lambda a, b: a.clamp(min=b), None),
    "lerp_scalar": (lambda a, b: a.lerp(b, 0.3), None),
    "lerp_scalar_far": (lambda a, b: a.lerp(b, 0.8), None),
    "lerp_tensor": (lambda a, b: a.lerp(b, b * 0.4), None),
    "max_tensor": (lambda a, b: a.max(b), None),
    "min_tensor": (lambda a, b: a.min(b), None),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(BINARY))
def test_binary(name, dtype):
    fn, torch_fn = BINARY[name]
    # |b| >= 0.5 keeps divisions tame; shapes broadcast b along the rows
    a = RNG.uniform(-3, 3, size=SHAPE).astype(dtype)
    b = (RNG.uniform(0.5, 2, size=SHAPE[1:]) * RNG.choice([-1, 1], size=SHAPE[1:])).astype(dtype)
    check_op([], fn, torch_fn, dtype=dtype, arrays=[a, b])


@pytest.mark.parametrize("name,dtype", [(n, d) for n in ["maximum", "minimum", "fmod", "div_trunc", "div_floor",
                                                             "mul", "sub_alpha_int"]
                                        for d in ["int32", "int64", "uint8"]
                                        if not (d == "uint8" and n in ("sub_alpha_int", "div_trunc"))])
def test_binary_integer(name, dtype):
    fn, torch_fn = BINARY[name]
    a = RNG.integers(-9 if dtype != "uint8" else 0, 10, size=SHAPE).astype(dtype)
    b = RNG.integers(1, 4, size=SHAPE[1:]).astype(dtype)
    if dtype != "uint8":
        b = b * RNG.choice([-1, 1], size=b.shape).astype(dtype)
    check_op([], fn, torch_fn, dtype=dtype, arrays=[a, b])


def test_mixed_dtype_promotion():
    # check_op gives every input one dtype, so the integer operand is made inside the expression
    a = RNG.uniform(-3, 3, size=SHAPE).astype("float32")
    b = RNG.integers(-3, 4, size=SHAPE).astype("float32")
    for fn in (lambda x, y: x.minimum(y.int()), lambda x, y: y.int().minimum(x),
               lambda x, y: x.fmod(y.int().clamp(1, 3)), lambda x, y: y.int().clamp(min=x),
               lambda x, y: y.int().add(x, alpha=2), lambda x, y: x.add(y.int(), alpha=0.5)):
        check_op([], fn, arrays=[a, b])
    for fn in (lambda x, y: y.int().div(2, rounding_mode="trunc"), lambda x, y: y.int().minimum(y.bool()),
               lambda x, y: y.int().clamp(max=0.5)):
        check_op([], fn, arrays=[a, b], grad=False)


def test_bool_maximum_minimum():
    a, b = RNG.random(SHAPE) < 0.5, RNG.random(SHAPE) < 0.5
    check_op([], lambda x, y: x.minimum(y), dtype="bool", arrays=[a, b])
    check_op([], lambda x, y: x.maximum(y), dtype="bool", arrays=[a, b])


def test_minimum_and_maximum_propagate_nan_and_split_ties():
    a = np.array([np.nan, 1.0, 2.0, -np.inf, 0.5], dtype="float64")
    b = np.array([1.0, np.nan, 2.0, 3.0, 0.5], dtype="float64")
    check_op([], lambda x, y: x.minimum(y), dtype="float64", arrays=[a, b], grad=False)
    check_op([], lambda x, y: x.maximum(y), dtype="float64", arrays=[a, b], grad=False)
    check_op([], lambda x, y: x.minimum(y), dtype="float64", arrays=[a[2:], b[2:]])


def test_fmod_sign_follows_dividend():
    a = np.array([7.0, -7.0, 7.0, -7.0, 5.0, -0.0, 1e-7], dtype="float64")
    b = np.array([2.0, 2.0, -2.0, -2.0, 1.5, 3.0, 1e8], dtype="float64")
    check_op([], lambda x, y: x.fmod(y), dtype="float64", arrays=[a, b])
    check_op([], lambda x: x.fmod(2.5), dtype="float64", arrays=[a])


def test_lerp_and_clamp_broadcast_all_operands():
    arrays = [RNG.uniform(-2, 2, size=s).astype("float32") for s in [(4, 1), (1, 5), (5,)]]
    check_op([], lambda a, b, w: a.lerp(b, w), arrays=arrays)
    check_op([], lambda a, lo, hi: a.clamp(lo, hi + 2), arrays=arrays)


def test_zero_dim_operands():
    check_op([(), SHAPE], lambda a, b: a.minimum(b))
    check_op([SHAPE, ()], lambda a, b: a.lerp(b, 0.7))
    check_op([(), ()], lambda a, b: a.sub(b, alpha=3))


def test_argument_errors():
    x = fg.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="min"):
        x.clamp()
    with pytest.raises(ValueError, match="rounding_mode"):
        x.div(x, rounding_mode="up")
    with pytest.raises(ValueError, match="approximate"):
        x.gelu(approximate="erf")
    with pytest.raises(fg.DTypeError, match="alpha"):
        fg.tensor([1, 2]).add(fg.tensor([3, 4]), alpha=2.5)
    with pytest.raises(fg.DTypeError, match="float64"):
        x.lerp(fg.tensor([1.0, 2.0], dtype="float64"), 0.5)
    with pytest.raises(fg.DTypeError, match="int64"):
        fg.tensor([1, 2]).round(decimals=1)


def test_second_order_gradients_match_finite_differences():
    x = RNG.uniform(-2, 2, size=(3, 2))
    for name in ["tanh", "sigmoid", "softplus", "gelu", "mish", "log1p", "expm1", "elu"]:
        fn = UNARY[name][0]
        first = fg.grad(lambda t: fn(t).sum())
        arr = np.abs(x) - 0.5 if name == "log1p" else x
        finite_difference_check(lambda t: first(t), arr, tol=1e-5)


def test_fused_activations_are_one_kernel():
    a, b, c = (fg.tensor(RNG.standard_normal((64, 32)).astype("float32")) for _ in range(3))
    a.numpy(), b.numpy(), c.numpy()
    for fn in (lambda: ((a * b + c).relu()).sum(1),
               lambda: (a.gelu() + b.silu() * c.tanh()).sum(1),
               lambda: a.softplus().mish().sigmoid().clamp(0.1, 0.9).sum(0),
               lambda: a.log1p().expm1().lerp(b, c).nan_to_num().round()):
        with fg.profile() as p:
            fn().realize()
        assert len(p.kernels) == 1


@pytest.mark.parametrize("name", ["expm1", "log1p"])
def test_value_path_without_gradient_recording(name):
    # outside autograd, expm1/log1p skip their gradient surrogate: the values must be as accurate
    arr = np.concatenate([EXTREME, np.logspace(-7, -1, 7), -np.logspace(-7, -1, 7), [-1.0, -2.0, np.inf, np.nan]])
    arr = arr.astype("float32")
    with fg.no_grad():
        got = getattr(fg.tensor(arr), name)().numpy()
    np.testing.assert_allclose(got, getattr(torch, name)(torch.tensor(arr)).numpy(), rtol=1e-6, atol=0)

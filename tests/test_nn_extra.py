"""nn extras against torch: activations, Bilinear and parameter containers, distance and resampling
functions, padding modes, fold/unfold, pooling, and losses (forward and gradients)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import fusegrad as fg
import fusegrad.nn.functional as F
from fusegrad import nn
from tests.helpers import check_op

RNG = np.random.default_rng(11)


def _arr(*shape, low=-4.0, high=4.0, dtype="float32"):
    return RNG.uniform(low, high, size=shape).astype(dtype)


ACTIVATIONS = [
    ("relu6", lambda m, x: m.relu6(x * 2)),
    ("selu", lambda m, x: m.selu(x)),
    ("celu", lambda m, x: m.celu(x, alpha=0.7)),
    ("softsign", lambda m, x: m.softsign(x)),
    ("hardsigmoid", lambda m, x: m.hardsigmoid(x)),
    ("hardswish", lambda m, x: m.hardswish(x)),
    ("hardtanh", lambda m, x: m.hardtanh(x, -0.5, 2.0)),
    ("logsigmoid", lambda m, x: m.logsigmoid(x * 10)),
    ("softmin", lambda m, x: m.softmin(x, dim=1)),
    ("mish", lambda m, x: m.mish(x)),
    ("softshrink", lambda m, x: m.softshrink(x, 0.7)),
    ("hardshrink", lambda m, x: m.hardshrink(x, 0.7)),
    ("tanhshrink", lambda m, x: m.tanhshrink(x)),
    ("softplus", lambda m, x: m.softplus(x, beta=2.0, threshold=3.0)),
    ("threshold", lambda m, x: m.threshold(x, 0.5, -2.0)),
    ("glu", lambda m, x: m.glu(x, dim=1)),
    ("gelu_tanh", lambda m, x: m.gelu(x, approximate="tanh")),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fn", [a[1] for a in ACTIVATIONS], ids=[a[0] for a in ACTIVATIONS])
def test_activation_functions(fn, dtype):
    check_op([], lambda x: fn(F, x), lambda x: fn(TF, x), dtype=dtype, arrays=[_arr(3, 6, dtype=dtype)])


MODULES = [
    ("ReLU6", (), {}), ("SELU", (), {}), ("CELU", (0.5,), {}), ("Softsign", (), {}),
    ("Hardsigmoid", (), {}), ("Hardswish", (), {}), ("Hardtanh", (-2.0, 1.5), {}), ("LogSigmoid", (), {}),
    ("Softmin", (1,), {}), ("Mish", (), {}), ("Softshrink", (0.3,), {}), ("Hardshrink", (0.3,), {}),
    ("Tanhshrink", (), {}), ("Softplus", (), {"beta": 0.5}), ("GLU", (), {}), ("Threshold", (0.1, 20.0), {}),
]


@pytest.mark.parametrize("name,args,kwargs", MODULES, ids=[m[0] for m in MODULES])
def test_activation_modules(name, args, kwargs):
    ours, theirs = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    check_op([], ours, theirs, arrays=[_arr(2, 4)])
    assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("num", [1, 3])
def test_prelu_matches_torch(num):
    theirs = torch.nn.PReLU(num, init=0.1)
    ours = nn.PReLU(num, init=0.1)
    assert list(ours.state_dict()) == ["weight"] and ours.weight.shape == (num,)
    x = _arr(2, 3, 4)
    xf, xt = fg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yf, yt = ours(xf), theirs(xt)
    np.testing.assert_allclose(yf.numpy(), yt.detach().numpy(), rtol=1e-6)
    (yf * yf).sum().backward()
    (yt * yt).sum().backward()
    np.testing.assert_allclose(xf.grad.numpy(), xt.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-5)


def test_activation_errors():
    with pytest.raises(fg.ShapeError):
        F.glu(fg.zeros(2, 3), dim=1)
    with pytest.raises(fg.ShapeError):
        F.prelu(fg.zeros(2, 3), fg.zeros(2))
    with pytest.raises(ValueError):
        nn.Hardtanh(2.0, 1.0)
    assert nn.SELU(inplace=True)(fg.tensor([1.0])).shape == (1,)

"""nn.init statistics and fan rules against torch.nn.init's formulas; gradient clipping against torch."""
import math

import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad import nn
from fusegrad.nn import init

BIG = (128, 32, 3, 3)  # 36864 samples: sample std within ~1% of the true one


@pytest.fixture(autouse=True)
def fixed_seed():
    """Each test draws the same numbers whatever ran before it (the checks are statistical)."""
    fg.manual_seed(1234)


def fans(shape):
    """torch's own fan computation is the oracle."""
    return torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


def check_uniform(values, lo, hi):
    """Bounds hold and are reached; mean and std within 5 standard errors of U(lo, hi)'s."""
    n, width = values.size, hi - lo
    assert values.min() >= lo and values.max() <= hi
    assert values.min() < lo + 0.02 * width and values.max() > hi - 0.02 * width
    assert abs(values.mean() - (lo + hi) / 2) < 5 * width / math.sqrt(12 * n)
    assert abs(values.std() / (width / math.sqrt(12)) - 1) < 5 * math.sqrt(0.2 / n)


def check_normal(values, mean, std):
    """Mean, std and the share within one std of N(mean, std), each within 5 standard errors."""
    n = values.size
    assert abs(values.mean() - mean) < 5 * std / math.sqrt(n)
    assert abs(values.std() / std - 1) < 5 * math.sqrt(0.5 / n)
    assert abs((np.abs(values - mean) < std).mean() - 0.6827) < 5 * 0.466 / math.sqrt(n)  # shape, not just moments


@pytest.mark.parametrize("nonlinearity,param", [
    ("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
    ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None), ("conv_transpose2d", None),
])
def test_calculate_gain(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity, param))


def test_uniform_normal_constant():
    t = fg.empty(*BIG)
    assert init.uniform_(t, -0.5, 1.5) is t
    check_uniform(t.numpy(), -0.5, 1.5)
    check_uniform(init.uniform_(fg.empty(*BIG)).numpy(), 0.0, 1.0)
    check_normal(init.normal_(fg.empty(*BIG), 2.0, 0.5).numpy(), 2.0, 0.5)
    check_normal(init.normal_(fg.empty(*BIG)).numpy(), 0.0, 1.0)
    d = fg.empty(3, 4, dtype=fg.float64)
    init.constant_(d, 0.25)
    assert d.dtype == fg.float64 and np.all(d.numpy() == 0.25)
    assert np.all(init.zeros_(d).numpy() == 0) and np.all(init.ones_(d).numpy() == 1)


@pytest.mark.parametrize("shape", [(64, 48), BIG, (16, 8, 5)])
def test_xavier(shape):
    fan_in, fan_out = fans(shape)
    bound = math.sqrt(6 / (fan_in + fan_out))
    check_uniform(init.xavier_uniform_(fg.empty(*shape)).numpy(), -bound, bound)
    check_uniform(init.xavier_uniform_(fg.empty(*shape), gain=2.5).numpy(), -2.5 * bound, 2.5 * bound)
    check_normal(init.xavier_normal_(fg.empty(*shape), gain=0.5).numpy(), 0, 0.5 * math.sqrt(2 / (fan_in + fan_out)))


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("a,nonlinearity", [(0, "relu"), (math.sqrt(5), "leaky_relu"), (0, "leaky_relu"),
                                            (0, "tanh")])
def test_kaiming(mode, a, nonlinearity):
    fan = dict(zip(("fan_in", "fan_out"), fans(BIG)))[mode]
    std = torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    check_uniform(init.kaiming_uniform_(fg.empty(*BIG), a, mode, nonlinearity).numpy(), -math.sqrt(3) * std,
                  math.sqrt(3) * std)
    check_normal(init.kaiming_normal_(fg.empty(*BIG), a, mode, nonlinearity).numpy(), 0, std)


def test_kaiming_default_is_leaky_relu_fan_in():
    std = math.sqrt(2.0) / math.sqrt(fans(BIG)[0])
    check_normal(init.kaiming_normal_(fg.empty(*BIG)).numpy(), 0, std)


@pytest.mark.parametrize("mean,std,a,b", [(0.0, 1.0, -2.0, 2.0), (0.0, 0.02, -0.04, 0.04), (1.0, 2.0, 0.0, 1.5),
                                          (0.0, 1.0, 1.0, 4.0)])
def test_trunc_normal(mean, std, a, b):
    values = init.trunc_normal_(fg.empty(*BIG), mean, std, a, b).numpy().astype(np.float64)
    assert values.min() >= a and values.max() <= b
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = [math.exp(-z * z / 2) / math.sqrt(2 * math.pi) for z in (alpha, beta)]
    mass = (math.erf(beta / math.sqrt(2)) - math.erf(alpha / math.sqrt(2))) / 2
    true_mean = mean + std * (pdf[0] - pdf[1]) / mass
    true_var = std ** 2 * (1 + (alpha * pdf[0] - beta * pdf[1]) / mass - ((pdf[0] - pdf[1]) / mass) ** 2)
    assert abs(values.mean() - true_mean) < 5 * math.sqrt(true_var / values.size)
    assert abs(values.std() / math.sqrt(true_var) - 1) < 0.02
    assert values.min() < a + 0.05 * (b - a) and values.max() > b - 0.05 * (b - a)


def test_init_keeps_parameters_leaves_and_is_reproducible():
    p = nn.Parameter(fg.zeros(64, 32))
    fg.manual_seed(3)
    out = init.kaiming_uniform_(p, a=math.sqrt(5))
    first = p.numpy().copy()
    assert out is p and p.is_leaf and p.requires_grad and p.grad_fn is None
    fg.manual_seed(3)
    init.kaiming_uniform_(p, a=math.sqrt(5))
    np.testing.assert_array_equal(p.numpy(), first)
    d = init.normal_(fg.empty(1000, dtype=fg.float64))
    assert d.dtype == fg.float64 and d.numpy().std() > 0.5


def test_init_errors():
    with pytest.raises(fg.ShapeError):
        init.xavier_uniform_(fg.empty(5))
    with pytest.raises(ValueError):
        init.kaiming_normal_(fg.empty(4, 4), mode="fan_avg")
    with pytest.raises(ValueError):
        init.calculate_gain("swish")


def test_default_layer_inits_follow_torch_bounds():
    lin, conv = nn.Linear(300, 200), nn.Conv2d(16, 32, 5)
    for m, fan_in in ((lin, 300), (conv, 16 * 25)):
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) and the bias rule both give 1/sqrt(fan_in)
        w, b = m.weight.numpy(), m.bias.numpy()
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
        assert abs(w.std() * math.sqrt(3) / bound - 1) < 0.05
        assert np.abs(b).max() <= bound
    emb = nn.Embedding(1000, 64).weight.numpy()
    check_normal(emb, 0.0, 1.0)


# ---- gradient clipping --------------------------------------------------------------------------------


def grads_pair(seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-2, 2, s).astype(np.float32) for s in ((4, 5), (7,), (2, 3, 2))]
    ps, tps = [], []
    for a in arrays:
        p, tp = nn.Parameter(fg.zeros(*a.shape)), torch.nn.Parameter(torch.zeros(a.shape))
        p.grad, tp.grad = fg.tensor(a), torch.tensor(a)
        ps.append(p)
        tps.append(tp)
    return ps, tps


@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (100.0, 2.0), (2.0, 1.0), (0.5, float("inf")),
                                                (3.0, 3.0)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    ps, tps = grads_pair()
    total = nn.utils.clip_grad_norm_(ps, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type)
    np.testing.assert_allclose(total.numpy(), ttotal.numpy(), rtol=1e-5)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_clip_grad_norm_single_tensor_none_grads_and_nonfinite():
    ps, tps = grads_pair(1)
    ps[1].grad, tps[1].grad = None, None
    np.testing.assert_allclose(nn.utils.clip_grad_norm_(ps, 0.1).numpy(),
                               torch.nn.utils.clip_grad_norm_(tps, 0.1).numpy(), rtol=1e-5)
    assert ps[1].grad is None
    np.testing.assert_allclose(ps[2].grad.numpy(), tps[2].grad.numpy(), rtol=1e-5)
    nn.utils.clip_grad_norm_(ps[0], 0.01)
    torch.nn.utils.clip_grad_norm_(tps[0], 0.01)
    np.testing.assert_allclose(ps[0].grad.numpy(), tps[0].grad.numpy(), rtol=1e-5)
    ps[0].grad = fg.tensor([[float("inf")] * 5] * 4)
    with pytest.raises(fg.GradError):
        nn.utils.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    assert float(nn.utils.clip_grad_norm_([nn.Parameter(fg.zeros(2))], 1.0).numpy()) == 0.0


@pytest.mark.parametrize("clip", [0.5, 10.0])
def test_clip_grad_value_matches_torch(clip):
    ps, tps = grads_pair(2)
    nn.utils.clip_grad_value_(ps, clip)
    torch.nn.utils.clip_grad_value_(tps, clip)
    for p, tp in zip(ps, tps):
        np.testing.assert_array_equal(p.grad.numpy(), tp.grad.numpy())


def test_a_models_initializers_run_together_when_it_is_built():
    """Inside a module's construction the fills stay lazy and are computed in one schedule when the
    outermost module is built (one compiler batch); the values are those of filling one by one."""
    seen = {}

    class Net(fg.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = fg.nn.Linear(6, 5)
            self.b = fg.nn.Linear(5, 3)
            seen["lazy"] = self.a.weight._node.buffer is None and self.b.bias._node.buffer is None

    fg.manual_seed(11)
    net = Net()
    assert seen["lazy"]
    assert all(p._node.buffer is not None for p in net.parameters())
    fg.manual_seed(11)
    a, b = fg.nn.Linear(6, 5), fg.nn.Linear(5, 3)  # built alone: each realized at its own end
    for got, want in zip(net.parameters(), [*a.parameters(), *b.parameters()]):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    w = fg.empty(4, 4)
    fg.nn.init.normal_(w)  # outside any construction: computed at once
    assert w._node.buffer is not None

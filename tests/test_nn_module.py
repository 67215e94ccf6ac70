"""nn.Module API against torch.nn.Module: registration, traversal order, modes, state_dict, repr."""
from collections import OrderedDict

import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad import nn


def make_net(M, lib):
    """The same small model class for both libraries: nested modules, tied weights, buffers, a None param."""
    class Block(M.Module):
        def __init__(self):
            super().__init__()
            self.conv = M.Conv2d(2, 4, 3, padding=1)
            self.bn = M.BatchNorm2d(4)
            self.register_buffer("scale", lib.ones(4))
            self.register_buffer("cache", lib.zeros(2), persistent=False)
            self.register_parameter("unused", None)

        def forward(self, x):
            return self.bn(self.conv(x)).relu() * self.scale.reshape(1, 4, 1, 1)

    class Net(M.Module):
        def __init__(self):
            super().__init__()
            self.features = M.Sequential(Block(), M.MaxPool2d(2), M.Flatten())
            self.heads = M.ModuleDict({"cls": M.Linear(16, 3), "aux": M.Linear(16, 3, bias=False)})
            self.extra = M.ModuleList([M.ReLU(), M.Dropout(0.5)])
            self.tied = self.heads["cls"]  # the same module twice: visited once
            self.alpha = M.Parameter(lib.zeros(3))

        def forward(self, x):
            h = self.features(x)
            return self.heads["cls"](h) + self.heads["aux"](h) + self.alpha
    return Net()


@pytest.fixture
def nets():
    net, tnet = make_net(nn, fg), make_net(torch.nn, torch)
    net.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    return net, tnet


def names(pairs):
    return [n for n, _ in pairs]


def test_traversal_order_matches_torch(nets):
    net, tnet = nets
    assert names(net.named_parameters()) == names(tnet.named_parameters())
    assert names(net.named_buffers()) == names(tnet.named_buffers())
    assert names(net.named_modules()) == names(tnet.named_modules())
    assert names(net.named_children()) == names(tnet.named_children())
    assert [type(m).__name__ for m in net.modules()] == [type(m).__name__ for m in tnet.modules()]
    assert [type(m).__name__ for m in net.children()] == [type(m).__name__ for m in tnet.children()]
    assert len(list(net.parameters())) == len(list(tnet.parameters()))
    assert names(net.named_parameters(prefix="m", recurse=False)) == names(tnet.named_parameters("m", False))
    assert names(net.features[0].named_buffers()) == names(tnet.features[0].named_buffers())


def test_state_dict_keys_values_and_round_trip(nets):
    net, tnet = nets
    sd, tsd = net.state_dict(), tnet.state_dict()
    assert list(sd) == list(tsd)
    assert "features.0.cache" not in sd and "features.0.bn.num_batches_tracked" in sd
    for k in tsd:
        np.testing.assert_array_equal(sd[k].numpy(), tsd[k].numpy(), err_msg=k)
        assert sd[k].dtype.name == str(tsd[k].dtype).removeprefix("torch."), k
        assert not sd[k].requires_grad
    x = np.random.default_rng(0).uniform(-1, 1, (2, 2, 4, 4)).astype(np.float32)
    net.eval()
    tnet.eval()
    np.testing.assert_allclose(net(fg.tensor(x)).numpy(), tnet(torch.tensor(x)).detach().numpy(), atol=1e-5)
    other = make_net(nn, fg)
    result = other.load_state_dict(net.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), sd[k].numpy())


def test_load_state_dict_strict_and_lenient(nets):
    net, _ = nets
    sd = net.state_dict()
    del sd["heads.cls.bias"]
    sd["foo.weight"] = fg.zeros(2)
    with pytest.raises(fg.Error, match=r"heads\.cls\.bias.*foo\.weight"):
        net.load_state_dict(sd)
    before = net.heads["aux"].weight.numpy().copy()
    sd["heads.aux.weight"] = fg.ones(3, 16)
    result = net.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["heads.cls.bias"] and result.unexpected_keys == ["foo.weight"]
    missing, unexpected = result  # a named tuple like torch's
    assert missing == ["heads.cls.bias"]
    assert not np.array_equal(before, net.heads["aux"].weight.numpy())
    np.testing.assert_array_equal(net.heads["aux"].weight.numpy(), np.ones((3, 16), np.float32))


def test_load_state_dict_shape_mismatch_names_key_and_changes_nothing(nets):
    net, _ = nets
    sd = net.state_dict()
    sd["heads.cls.weight"] = fg.zeros(3, 15)
    sd["alpha"] = fg.ones(3)
    with pytest.raises(fg.ShapeError, match=r"heads\.cls\.weight.*\(3, 15\).*\(3, 16\)"):
        net.load_state_dict(sd, strict=False)
    assert not np.any(net.alpha.numpy())  # validation happens before any copy


def test_load_state_dict_keeps_parameter_identity_and_dtype():
    lin = nn.Linear(3, 2)
    weight = lin.weight
    lin.load_state_dict({"weight": np.ones((2, 3)), "bias": [1.0, 2.0]})
    assert lin.weight is weight and weight.dtype == fg.float32 and weight.requires_grad
    np.testing.assert_array_equal(lin.bias.numpy(), [1.0, 2.0])


def test_train_eval_propagate(nets):
    net, _ = nets
    assert all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.features.train(False)
    assert net.training and not net.features[0].bn.training and net.extra[1].training


def test_dropout_and_batchnorm_follow_mode():
    m = nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(4))
    x = fg.tensor(np.random.default_rng(1).uniform(1, 2, (8, 4)).astype(np.float32))
    m.eval()
    np.testing.assert_allclose(m(x).numpy(), x.numpy() / np.sqrt(1 + 1e-5), rtol=1e-6)
    m.train()
    m(x)
    assert m[1].num_batches_tracked.item() == 1


def test_requires_grad_zero_grad_and_apply(nets):
    net, tnet = nets
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net.requires_grad_()
    assert all(p.requires_grad for p in net.parameters())
    net.train()
    out = net(fg.tensor(np.ones((2, 2, 4, 4), np.float32)))
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not np.any(p.grad.numpy()) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    seen, tseen = [], []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    tnet.apply(lambda m: tseen.append(type(m).__name__))
    assert seen == tseen  # children first (post-order), like torch


def test_apply_initializes_weights():
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))

    def init_fn(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)
            nn.init.zeros_(m.bias)
    net.apply(init_fn)
    np.testing.assert_array_equal(net(fg.ones(1, 4)).numpy(), [[4.0, 4.0]])


def test_to_dtype_casts_floats_only(nets):
    net, tnet = nets
    assert net.to(fg.float64) is net
    tnet.to(torch.float64)
    for (k, v), (_, tv) in zip(net.state_dict().items(), tnet.state_dict().items()):
        assert v.dtype.name == str(tv.dtype).removeprefix("torch."), k
    assert net.features[0].bn.num_batches_tracked.dtype == fg.int64
    p = net.alpha
    net.float()
    assert net.alpha is p and p.dtype == fg.float32 and p.requires_grad and p.is_leaf
    net.to(dtype=fg.float64)
    assert net.heads["aux"].weight.dtype == fg.float64
    net.double().half()
    assert net.alpha.dtype == fg.float16
    net.to("cpu")
    assert net.alpha.device == "cpu"


def test_registration_rules():
    m = nn.Module()
    m.w = nn.Parameter(fg.ones(2))
    m.child = nn.Linear(2, 2)
    m.plain = fg.ones(2)  # a plain tensor attribute is neither parameter nor buffer
    m.register_buffer("buf", fg.zeros(2))
    assert names(m.named_parameters()) == ["w", "child.weight", "child.bias"]
    assert names(m.named_buffers()) == ["buf"] and list(m.state_dict()) == ["w", "buf", "child.weight", "child.bias"]
    m.buf = fg.ones(2)  # re-assigning a buffer keeps it a buffer
    assert m.state_dict()["buf"].numpy().tolist() == [1.0, 1.0]
    m.w = nn.Parameter(fg.zeros(2))  # re-assigning keeps the position, like torch
    assert names(m.named_parameters()) == ["w", "child.weight", "child.bias"]
    with pytest.raises(TypeError):
        m.w = fg.zeros(2)
    m.child = None
    assert names(m.named_parameters()) == ["w"] and "child" in dict(m._modules)
    del m.w
    assert names(m.named_parameters()) == [] and not hasattr(m, "w")
    with pytest.raises(AttributeError):
        m.missing
    tied = nn.Linear(2, 2)
    shared = nn.Sequential(tied, tied)
    assert len(list(shared.parameters())) == 2 and len(shared) == 2


def test_forward_not_defined_and_super_init_required():
    with pytest.raises(NotImplementedError):
        nn.Module()(fg.ones(1))

    class Bad(nn.Module):
        def __init__(self):
            self.x = 1
    with pytest.raises(fg.Error, match="super"):
        Bad()


def test_containers():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and seq[0] is layers[0] and seq[-1] is layers[2] and list(seq) == layers
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 2
    od = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert names(od.named_children()) == ["fc", "act"] and names(od.named_parameters()) == ["fc.weight", "fc.bias"]
    seq.append(nn.Sigmoid())
    assert names(seq.named_children()) == ["0", "1", "2", "3"]
    ml = nn.ModuleList(layers[:1]).extend(layers[1:])
    assert len(ml) == 3 and ml[2] is layers[2] and isinstance(ml[:2], nn.ModuleList)
    md = nn.ModuleDict({"b": nn.ReLU(), "a": nn.Tanh()})
    assert list(md) == ["b", "a"] and "a" in md and list(md.keys()) == ["b", "a"] and len(md) == 2
    x = fg.tensor([[1.0, -1.0]])
    y = x
    for layer in layers:
        y = layer(y)
    np.testing.assert_allclose(seq[:3](x).numpy(), y.numpy())


def test_repr_matches_torch():
    def build(M):
        return M.Sequential(M.Conv2d(1, 4, 3, padding=1), M.BatchNorm2d(4), M.ReLU(), M.MaxPool2d(2),
                            M.Conv2d(4, 8, (3, 5), stride=2, padding=1, dilation=2, groups=2, bias=False),
                            M.AvgPool2d(2), M.AdaptiveAvgPool2d((1, 1)), M.Flatten(), M.Dropout(0.25),
                            M.Linear(8, 10), M.LogSoftmax(dim=1),
                            M.ModuleList([M.GELU(), M.Tanh(), M.Sigmoid(), M.SiLU(), M.LeakyReLU(0.1), M.ELU()]),
                            M.ModuleDict({"a": M.Identity(), "b": M.Embedding(5, 3, padding_idx=0)}),
                            M.LayerNorm(4), M.GroupNorm(2, 4), M.RMSNorm(4), M.BatchNorm1d(3, momentum=None),
                            M.Unflatten(1, (2, 2)), M.ConvTranspose2d(3, 4, 3, stride=2),
                            M.Conv1d(2, 3, 3, padding="same"), M.CrossEntropyLoss(), M.Softmax(dim=-1),
                            M.LSTMCell(3, 4), M.GRUCell(3, 4, bias=False), M.TransformerEncoderLayer(4, 2, 8))
    ours, theirs = repr(build(nn)).splitlines(), repr(build(torch.nn)).splitlines()
    # torch names its attention projection NonDynamicallyQuantizableLinear (a quantization detail)
    theirs = [line.replace("NonDynamicallyQuantizableLinear", "Linear") for line in theirs]
    if not torch.__version__.startswith("2.13"):  # torch before the pinned 2.13 printed no bias= for norms
        ours = [o.replace(", bias=True", "") if "bias=" not in t else o for o, t in zip(ours, theirs)]
    assert ours == theirs
    assert repr(nn.Linear(3, 2)) == "Linear(in_features=3, out_features=2, bias=True)"

"""nn layers against PyTorch with identical weights: forward values, input gradients, parameter gradients."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad import nn
from tests.helpers import RNG, check_op, random_array

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def randomize(tm: torch.nn.Module) -> torch.nn.Module:
    """Random parameters and running stats, so ones/zeros initializations cannot hide a wrong formula."""
    with torch.no_grad():
        for p in tm.parameters():
            p.uniform_(-1, 1)
        for name, b in tm.named_buffers():
            if b.is_floating_point():
                b.uniform_(0.5, 1.5) if name.endswith("var") else b.uniform_(-1, 1)
    return tm


def copy_weights(m: nn.Module, tm: torch.nn.Module) -> None:
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})


def check_module(m, tm, shapes, dtype="float32", fg_call=None, torch_call=None, param_atol=None, **kw):
    """Copy torch's weights into m, compare forward + input grads, then every parameter's gradient."""
    tm = tm.to(TORCH_DTYPES[dtype])
    m.to(getattr(fg, dtype))
    copy_weights(m, tm)
    check_op(shapes, fg_call or (lambda *x: m(*x)), torch_call or (lambda *x: tm(*x)), dtype=dtype, **kw)
    names = [n for n, _ in m.named_parameters()]
    assert names == [n for n, _ in tm.named_parameters()]
    atol = param_atol if param_atol is not None else (1e-4 if dtype == "float32" else 1e-9)
    for (name, p), (_, tp) in zip(m.named_parameters(), tm.named_parameters()):
        if tp.grad is None:
            assert p.grad is None or not np.any(p.grad.numpy()), name
            continue
        assert p.grad is not None, f"no gradient for {name}"
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), atol=atol, rtol=atol, err_msg=name)


# (fusegrad module factory, torch module factory, input shapes); run in float32 with parameter gradients
LAYER_CASES = [
    ("linear", lambda M: M.Linear(5, 3), [(2, 4, 5)]),
    ("linear_nobias", lambda M: M.Linear(5, 3, bias=False), [(4, 5)]),
    ("conv1d", lambda M: M.Conv1d(4, 6, 3, stride=2, padding=1), [(2, 4, 9)]),
    ("conv1d_same_dil", lambda M: M.Conv1d(4, 6, 3, padding="same", dilation=2), [(2, 4, 9)]),
    ("conv2d", lambda M: M.Conv2d(3, 4, 3), [(2, 3, 7, 7)]),
    ("conv2d_stride_pad", lambda M: M.Conv2d(3, 4, 3, stride=2, padding=1), [(2, 3, 7, 7)]),
    ("conv2d_same_dil", lambda M: M.Conv2d(3, 4, 3, padding="same", dilation=2), [(2, 3, 7, 7)]),
    ("conv2d_rect", lambda M: M.Conv2d(3, 4, (2, 3), stride=(1, 2), padding=(1, 0), bias=False), [(2, 3, 7, 7)]),
    ("conv2d_groups", lambda M: M.Conv2d(4, 6, 3, padding=1, groups=2), [(2, 4, 6, 6)]),
    ("conv2d_depthwise", lambda M: M.Conv2d(4, 4, 3, groups=4, bias=False), [(2, 4, 6, 6)]),
    ("convT2d", lambda M: M.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1), [(2, 4, 5, 5)]),
    ("convT2d_plain", lambda M: M.ConvTranspose2d(4, 3, 2, bias=False), [(2, 4, 5, 5)]),
    ("convT2d_groups_dil", lambda M: M.ConvTranspose2d(4, 6, 3, groups=2, dilation=2), [(2, 4, 5, 5)]),
    ("maxpool", lambda M: M.MaxPool2d(2), [(2, 3, 7, 7)]),
    ("maxpool_pad", lambda M: M.MaxPool2d(3, stride=2, padding=1), [(2, 3, 7, 7)]),
    ("maxpool_ceil_dil", lambda M: M.MaxPool2d(2, stride=2, dilation=2, ceil_mode=True), [(2, 3, 7, 7)]),
    ("avgpool", lambda M: M.AvgPool2d(2), [(2, 3, 7, 7)]),
    ("avgpool_pad", lambda M: M.AvgPool2d(3, stride=2, padding=1), [(2, 3, 7, 7)]),
    ("avgpool_nopadcount", lambda M: M.AvgPool2d(3, 2, 1, count_include_pad=False), [(2, 3, 7, 7)]),
    ("avgpool_ceil", lambda M: M.AvgPool2d(2, ceil_mode=True), [(2, 3, 7, 7)]),
    ("adaptive_1", lambda M: M.AdaptiveAvgPool2d(1), [(2, 3, 7, 7)]),
    ("adaptive_uneven", lambda M: M.AdaptiveAvgPool2d((3, 2)), [(2, 3, 7, 5)]),
    ("adaptive_none", lambda M: M.AdaptiveAvgPool2d((None, 2)), [(2, 3, 7, 6)]),
    ("layernorm", lambda M: M.LayerNorm(6), [(2, 4, 6)]),
    ("layernorm_2d", lambda M: M.LayerNorm((4, 6), eps=1e-3), [(2, 4, 6)]),
    ("layernorm_noaffine", lambda M: M.LayerNorm(6, elementwise_affine=False), [(2, 4, 6)]),
    ("layernorm_nobias", lambda M: M.LayerNorm(6, bias=False), [(2, 4, 6)]),
    ("groupnorm", lambda M: M.GroupNorm(2, 4), [(2, 4, 6, 6)]),
    ("groupnorm_noaffine", lambda M: M.GroupNorm(4, 4, affine=False), [(2, 4, 6, 6)]),
    ("groupnorm_3d", lambda M: M.GroupNorm(3, 6), [(2, 6, 5)]),
    ("rmsnorm", lambda M: M.RMSNorm(6), [(2, 4, 6)]),
    ("rmsnorm_eps", lambda M: M.RMSNorm((4, 6), eps=1e-3), [(2, 4, 6)]),
    ("flatten", lambda M: M.Flatten(), [(2, 3, 4, 5)]),
    ("flatten_range", lambda M: M.Flatten(0, 2), [(2, 3, 4, 5)]),
    ("unflatten", lambda M: M.Unflatten(1, (2, 6)), [(2, 12, 5)]),
    ("identity", lambda M: M.Identity(7, foo=1), [(2, 3)]),
    ("seq_cnn", lambda M: M.Sequential(M.Conv2d(3, 4, 3, padding=1), M.ReLU(), M.MaxPool2d(2), M.Flatten(),
                                       M.Linear(36, 5)), [(2, 3, 7, 7)]),
]


@pytest.mark.parametrize("name,factory,shapes", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_matches_torch(name, factory, shapes):
    check_module(factory(nn), randomize(factory(torch.nn)), shapes)


@pytest.mark.parametrize("name,factory,shapes", [LAYER_CASES[0], LAYER_CASES[5], LAYER_CASES[23],
                                                 LAYER_CASES[27]], ids=lambda c: c if isinstance(c, str) else "")
def test_layer_matches_torch_float64(name, factory, shapes):
    check_module(factory(nn), randomize(factory(torch.nn)), shapes, dtype="float64")


ACTIVATIONS = [
    ("ReLU", ()), ("GELU", ()), ("GELU", ("tanh",)), ("SiLU", ()), ("Tanh", ()), ("Sigmoid", ()),
    ("Softmax", (1,)), ("LogSoftmax", (-1,)), ("LeakyReLU", ()), ("LeakyReLU", (0.2,)), ("ELU", ()), ("ELU", (0.5,)),
]


@pytest.mark.parametrize("cls,args", ACTIVATIONS)
def test_activation_modules(cls, args):
    m, tm = getattr(nn, cls)(*args), getattr(torch.nn, cls)(*args)
    check_op([(4, 5)], m, tm, low=-5, high=5)  # the shapes of test_nn_functional: kernels are reused
    assert repr(m) == repr(tm)


def test_activation_module_float64_noncontiguous():
    check_op([(5, 3)], lambda x: nn.GELU()(x.T), lambda x: torch.nn.GELU()(x.T), dtype="float64")


# ---- batch norm: running statistics over several steps ---------------------------------------------


@pytest.mark.parametrize("cls,shape,kwargs", [
    ("BatchNorm2d", (4, 3, 5, 5), {}),
    ("BatchNorm2d", (4, 3, 5, 5), {"momentum": None}),
    ("BatchNorm1d", (6, 3), {"momentum": 0.3}),
    ("BatchNorm1d", (4, 3, 5), {"affine": False}),
])
def test_batchnorm_train_steps_and_eval(cls, shape, kwargs):
    m, tm = getattr(nn, cls)(3, **kwargs), randomize(getattr(torch.nn, cls)(3, **kwargs))
    copy_weights(m, tm)
    for _ in range(3):
        check_op([shape], m, tm, atol=1e-5, grad_atol=1e-4)
    for key, value in tm.state_dict().items():
        np.testing.assert_allclose(m.state_dict()[key].numpy(), value.numpy(), atol=1e-5, rtol=1e-5, err_msg=key)
    assert m.num_batches_tracked.item() == 3 and m.num_batches_tracked.dtype == fg.int64
    for (name, p), (_, tp) in zip(m.named_parameters(), tm.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), atol=1e-4, rtol=1e-4, err_msg=name)
    m.eval()
    tm.eval()
    check_op([shape], m, tm)  # eval normalizes with the running statistics
    np.testing.assert_allclose(m.running_mean.numpy(), tm.running_mean.numpy(), atol=1e-6)  # eval leaves them


def test_batchnorm_without_running_stats_uses_batch_stats_in_eval():
    m = nn.BatchNorm2d(3, track_running_stats=False).eval()
    tm = torch.nn.BatchNorm2d(3, track_running_stats=False).eval()
    check_op([(4, 3, 5, 5)], m, tm)
    assert m.state_dict().keys() == tm.state_dict().keys()


def test_batchnorm_rejects_wrong_rank():
    with pytest.raises(fg.ShapeError, match="BatchNorm2d"):
        nn.BatchNorm2d(3)(fg.zeros(4, 3))


# ---- dropout and embedding ------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_train_statistics_and_scaling(p):
    m = nn.Dropout(p)
    x = fg.tensor(random_array((200, 250), low=1, high=2), requires_grad=True)
    y = m(x)
    out, xs = y.numpy(), x.numpy()
    zeros = out == 0
    assert abs(zeros.mean() - p) < 0.012  # 5 standard errors
    np.testing.assert_allclose(out[~zeros], xs[~zeros] / (1 - p), rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.where(zeros, 0, 1 / (1 - p)), rtol=1e-6)
    assert not np.array_equal(m(x).numpy() == 0, zeros)  # a fresh mask per call


def test_dropout_eval_and_edge_probabilities():
    x = fg.tensor(random_array((4, 5)))
    np.testing.assert_array_equal(nn.Dropout(0.5).eval()(x).numpy(), x.numpy())
    np.testing.assert_array_equal(nn.Dropout(0.0)(x).numpy(), x.numpy())
    np.testing.assert_array_equal(nn.Dropout(1.0)(x).numpy(), np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError):
        nn.Dropout(1.5)
    assert repr(nn.Dropout(0.3)) == repr(torch.nn.Dropout(0.3))


@pytest.mark.parametrize("padding_idx", [None, 1, -2])
def test_embedding_forward_and_weight_grad(padding_idx):
    m, tm = nn.Embedding(7, 4, padding_idx=padding_idx), torch.nn.Embedding(7, 4, padding_idx=padding_idx)
    if padding_idx is not None:  # the padding row starts at zero in both
        assert not np.any(m.weight.numpy()[padding_idx])
    copy_weights(m, randomize(tm))
    idx = np.array([[1, 5, 1, 0], [6, 5, 2, 1]])
    weights = RNG.uniform(-1, 1, size=(2, 4, 4)).astype(np.float32)
    out, tout = m(fg.tensor(idx)), tm(torch.tensor(idx))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy())
    (out * fg.tensor(weights)).sum().backward()
    (tout * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(m.weight.grad.numpy(), tm.weight.grad.numpy(), atol=1e-6)
    assert repr(m) == repr(tm)


# ---- attention --------------------------------------------------------------------------------------

L, S, N, E, H = 3, 4, 2, 8, 2
KPM = np.array([[False, False, True, False], [False, True, True, False]])
BOOL_MASK = np.array([[False, True, False, False], [False, False, True, True], [True, False, False, False]])
FLOAT_MASK = RNG.uniform(-2, 2, size=(L, S)).astype(np.float32)
MASK3D = RNG.uniform(-2, 2, size=(N * H, L, S)).astype(np.float32)


def _masks(lib, kwargs):
    conv = fg.tensor if lib is fg else torch.tensor
    return {k: conv(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kwargs", [
    {},
    {"key_padding_mask": KPM},
    {"attn_mask": BOOL_MASK},
    {"attn_mask": FLOAT_MASK},
    {"attn_mask": MASK3D, "key_padding_mask": KPM.astype(np.float32) * -3},
    {"attn_mask": BOOL_MASK, "key_padding_mask": KPM, "average_attn_weights": False},
], ids=["plain", "kpm", "bool_mask", "float_mask", "3d_mask_float_kpm", "bool_both_per_head"])
def test_multihead_attention(batch_first, kwargs):
    m, tm = nn.MultiheadAttention(E, H, batch_first=batch_first), torch.nn.MultiheadAttention(E, H,
                                                                                              batch_first=batch_first)
    seq = [(N, L, E), (N, S, E), (N, S, E)] if batch_first else [(L, N, E), (S, N, E), (S, N, E)]
    fkw, tkw = _masks(fg, kwargs), _masks(torch, kwargs)
    check_module(m, randomize(tm), seq, fg_call=lambda q, k, v: m(q, k, v, **fkw),
                 torch_call=lambda q, k, v: tm(q, k, v, **tkw))


def test_multihead_attention_self_no_weights_float64():
    m, tm = nn.MultiheadAttention(E, H, batch_first=True), torch.nn.MultiheadAttention(E, H, batch_first=True)
    out = m(*(fg.zeros(N, L, E),) * 3, need_weights=False)
    assert out[1] is None
    check_module(m, randomize(tm), [(N, L, E)], dtype="float64",
                 fg_call=lambda x: m(x, x, x, need_weights=False)[0],
                 torch_call=lambda x: tm(x, x, x, need_weights=False)[0])


def test_multihead_attention_kdim_vdim_and_no_bias():
    m = nn.MultiheadAttention(E, H, bias=False, kdim=5, vdim=6)
    tm = torch.nn.MultiheadAttention(E, H, bias=False, kdim=5, vdim=6)
    assert list(m.state_dict()) == list(tm.state_dict())
    check_module(m, randomize(tm), [(L, N, E), (S, N, 5), (S, N, 6)], fg_call=lambda q, k, v: m(q, k, v),
                 torch_call=lambda q, k, v: tm(q, k, v))


def test_multihead_attention_causal_and_unbatched():
    m, tm = nn.MultiheadAttention(E, H), torch.nn.MultiheadAttention(E, H)
    causal = np.triu(np.ones((L, L), dtype=bool), 1)
    # torch needs the mask as well as the hint; fusegrad builds the causal mask when none is given
    check_module(m, randomize(tm), [(L, N, E)], fg_call=lambda x: m(x, x, x, is_causal=True),
                 torch_call=lambda x: tm(x, x, x, attn_mask=torch.tensor(causal), is_causal=True))
    check_module(m, tm, [(L, E), (S, E), (S, E)], fg_call=lambda q, k, v: m(q, k, v, average_attn_weights=False),
                 torch_call=lambda q, k, v: tm(q, k, v, average_attn_weights=False))


def test_multihead_attention_init_and_errors():
    m = nn.MultiheadAttention(E, H)
    assert not np.any(m.in_proj_bias.numpy()) and not np.any(m.out_proj.bias.numpy())
    bound = np.sqrt(6 / (E + 3 * E))  # xavier on the (3E, E) stacked weight, like torch
    w = m.in_proj_weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    with pytest.raises(ValueError):
        nn.MultiheadAttention(E, 3)
    with pytest.raises(fg.ShapeError, match="attn_mask"):
        x = fg.zeros(L, N, E)
        m(x, x, x, attn_mask=fg.zeros(2, 2))
    with pytest.raises(fg.ShapeError, match="key_padding_mask"):
        m(x, x, x, key_padding_mask=fg.zeros(N, L + 1, dtype=fg.bool))


def test_multihead_attention_dropout_only_in_training():
    m = nn.MultiheadAttention(E, H, dropout=0.5)
    x = fg.tensor(random_array((6, N, E)))
    _, w = m(x, x, x, average_attn_weights=False)
    w = w.numpy()
    assert (w == 0).mean() > 0.25 and np.abs(w.sum(-1) - 1).max() > 0.1  # dropped and rescaled by 2
    _, w = m.eval()(x, x, x, average_attn_weights=False)
    np.testing.assert_allclose(w.numpy().sum(-1), 1, rtol=1e-5)


def test_transformer_encoder_layer_module_activation_is_registered():
    m = nn.TransformerEncoderLayer(E, H, 16, activation=nn.GELU())
    tm = torch.nn.TransformerEncoderLayer(E, H, 16, activation=torch.nn.GELU())
    assert [n for n, _ in m.named_modules()] == [n for n, _ in tm.named_modules()]
    with pytest.raises(ValueError):
        nn.TransformerEncoderLayer(E, H, activation="swish")


@pytest.mark.parametrize("norm_first,activation,batch_first", [(False, "relu", False), (True, "gelu", True)])
def test_transformer_encoder_layer(norm_first, activation, batch_first):
    kw = {"dim_feedforward": 16, "activation": activation, "batch_first": batch_first, "norm_first": norm_first}
    m, tm = nn.TransformerEncoderLayer(E, H, **kw), torch.nn.TransformerEncoderLayer(E, H, **kw)
    assert list(m.state_dict()) == list(tm.state_dict())
    assert [n for n, _ in m.named_modules()] == [n for n, _ in tm.named_modules()]
    m.eval()
    tm.eval()
    shape = (N, S, E) if batch_first else (S, N, E)
    check_module(m, randomize(tm), [shape], fg_call=lambda x: m(x, src_key_padding_mask=fg.tensor(KPM)),
                 torch_call=lambda x: tm(x, src_key_padding_mask=torch.tensor(KPM)))


def test_transformer_encoder_layer_src_mask_train_dropout_off():
    m = nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.0, bias=False)
    tm = torch.nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.0, bias=False)
    causal = np.triu(np.ones((S, S), dtype=bool), 1)
    check_module(m, randomize(tm), [(S, N, E)], fg_call=lambda x: m(x, src_mask=fg.tensor(causal)),
                 torch_call=lambda x: tm(x, src_mask=torch.tensor(causal)))


# ---- recurrent cells --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lstm_cell(dtype):
    m, tm = nn.LSTMCell(4, 5), torch.nn.LSTMCell(4, 5)
    check_module(m, tm, [(3, 4), (3, 5), (3, 5)], dtype=dtype, fg_call=lambda x, h, c: m(x, (h, c)),
                 torch_call=lambda x, h, c: tm(x, (h, c)))
    if dtype == "float32":
        check_module(m, tm, [(3, 4)])  # zero initial state
    assert repr(m) == repr(tm)


def test_lstm_cell_unrolled_unbatched_and_no_bias():
    m, tm = nn.LSTMCell(4, 5, bias=False), torch.nn.LSTMCell(4, 5, bias=False)
    assert list(m.state_dict()) == list(tm.state_dict()) and repr(m) == repr(tm)

    def unroll(cell):
        def run(xs):
            state = None
            for t in range(xs.shape[0]):
                state = cell(xs[t], state)
            return state
        return run
    check_module(m, tm, [(3, 4)], fg_call=unroll(m), torch_call=unroll(tm))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gru_cell(dtype):
    m, tm = nn.GRUCell(4, 5), torch.nn.GRUCell(4, 5)
    check_module(m, tm, [(3, 4), (3, 5)], dtype=dtype)
    if dtype == "float32":
        check_module(m, tm, [(4,)])  # unbatched, zero initial state
    assert repr(m) == repr(tm)


def test_rnn_cell_init_and_errors():
    for cell, rows in ((nn.LSTMCell(6, 16), 64), (nn.GRUCell(6, 16), 48)):
        assert cell.weight_ih.shape == (rows, 6) and cell.weight_hh.shape == (rows, 16)
        for p in cell.parameters():
            values = p.numpy()
            assert np.abs(values).max() <= 0.25 and np.abs(values).max() > 0.2 and np.std(values) > 0.1
    with pytest.raises(fg.ShapeError):
        nn.GRUCell(4, 5)(fg.zeros(3, 3))
    with pytest.raises(fg.ShapeError):
        nn.GRUCell(4, 5)(fg.zeros(3, 4), fg.zeros(2, 5))

"""MultiheadAttention and the Transformer family against torch with copied weights (eval mode, dropout
off): outputs and the gradients of inputs and parameters, with masks of every kind."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad import nn

RNG = np.random.default_rng(5)
E, H, FF = 8, 2, 16


def _copy(ours, theirs):
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ours.eval()
    theirs.eval()


def _compare(ours, theirs, arrays, call, masks=(), tol=1e-5):
    """call(module, inputs, masks) -> one output; masks are passed unchanged (converted per framework)."""
    fins = [fg.tensor(a, requires_grad=True) for a in arrays]
    tins = [torch.tensor(a, requires_grad=True) for a in arrays]
    fm = [None if m is None else fg.tensor(m) for m in masks]
    tm = [None if m is None else torch.tensor(m) for m in masks]
    out_f, out_t = call(ours, fins, fm), call(theirs, tins, tm)
    assert out_f.shape == tuple(out_t.shape)
    np.testing.assert_allclose(out_f.numpy(), out_t.detach().numpy(), rtol=tol, atol=tol)
    w = RNG.uniform(-1, 1, size=tuple(out_t.shape)).astype("float32")
    (out_f * fg.tensor(w)).sum().backward()
    (out_t * torch.tensor(w)).sum().backward()
    for f, t in zip(fins, tins):
        if t.grad is None:  # attention weights do not depend on the values
            assert f.grad is None or not np.abs(f.grad.numpy()).any()
            continue
        np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=10 * tol, atol=10 * tol)
    ours_p = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        if p.grad is not None:
            np.testing.assert_allclose(ours_p[name].grad.numpy(), p.grad.numpy(), rtol=10 * tol, atol=10 * tol,
                                       err_msg=name)


def _x(*shape):
    return RNG.standard_normal(shape).astype("float32")


def _padding(batch, length):
    mask = np.zeros((batch, length), dtype=bool)
    mask[0, -2:] = True
    return mask


def _float_mask(rows, cols):
    return np.triu(np.full((rows, cols), -np.inf, dtype="float32"), 1) + _x(rows, cols) * 0.1


MHA_CASES = [
    ("self_need_weights", {}, "weights"),
    ("bool_attn_mask", {}, "bool"),
    ("float_attn_mask_padding", {"batch_first": True}, "float_pad"),
    ("kdim_vdim", {"kdim": 3, "vdim": 5}, "kv"),
    ("per_head_weights_no_bias", {"bias": False}, "heads"),
    ("mask_per_head", {}, "mask3d"),
]


@pytest.mark.parametrize("kwargs,kind", [c[1:] for c in MHA_CASES], ids=[c[0] for c in MHA_CASES])
def test_multihead_attention_matches_torch(kwargs, kind):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(E, H, **kwargs)
    ours = nn.MultiheadAttention(E, H, **kwargs)
    _copy(ours, theirs)
    L, S, N = 3, 4, 2
    q = _x(N, L, E) if kwargs.get("batch_first") else _x(L, N, E)
    k = _x(N, S, E) if kwargs.get("batch_first") else _x(S, N, kwargs.get("kdim", E))
    v = _x(N, S, E) if kwargs.get("batch_first") else _x(S, N, kwargs.get("vdim", E))
    if kind == "weights":
        _compare(ours, theirs, [q, k, v], lambda m, t, _: m(*t)[1])
        _compare(ours, theirs, [q, k, v], lambda m, t, _: m(*t)[0])
    elif kind == "bool":
        mask = np.triu(np.ones((L, S), dtype=bool), 1)
        _compare(ours, theirs, [q, k, v], lambda m, t, ms: m(*t, attn_mask=ms[0])[0], [mask])
    elif kind == "float_pad":
        _compare(ours, theirs, [q, k, v], lambda m, t, ms: m(*t, attn_mask=ms[0], key_padding_mask=ms[1])[0],
                 [_float_mask(L, S), _padding(N, S)])
    elif kind == "kv":
        _compare(ours, theirs, [q, k, v], lambda m, t, _: m(*t, need_weights=False)[0])
    elif kind == "mask3d":  # a float mask per (batch, head)
        mask = np.where(RNG.random((N * H, L, S)) < 0.3, -np.inf, 0.0).astype("float32")
        mask[..., 0] = 0.0  # every query keeps one key
        _compare(ours, theirs, [q, k, v], lambda m, t, ms: m(*t, attn_mask=ms[0])[0], [mask])
    else:
        _compare(ours, theirs, [q, k, v], lambda m, t, _: m(*t, average_attn_weights=False)[1])


@pytest.mark.parametrize("norm_first,activation,batch_first", [(False, "relu", False), (True, "gelu", True)],
                         ids=["post_norm_relu", "pre_norm_gelu_batch_first"])
def test_encoder_layer_matches_torch(norm_first, activation, batch_first):
    torch.manual_seed(1)
    kw = {"dim_feedforward": FF, "norm_first": norm_first, "activation": activation, "batch_first": batch_first}
    theirs, ours = torch.nn.TransformerEncoderLayer(E, H, **kw), nn.TransformerEncoderLayer(E, H, **kw)
    _copy(ours, theirs)
    S, N = 4, 2
    src = _x(N, S, E) if batch_first else _x(S, N, E)
    causal = np.triu(np.ones((S, S), dtype=bool), 1)
    _compare(ours, theirs, [src], lambda m, t, ms: m(t[0], src_mask=ms[0], src_key_padding_mask=ms[1],
                                                    is_causal=True), [causal, _padding(N, S)])


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
def test_decoder_layer_matches_torch(norm_first):
    torch.manual_seed(2)
    kw = {"dim_feedforward": FF, "norm_first": norm_first}
    theirs, ours = torch.nn.TransformerDecoderLayer(E, H, **kw), nn.TransformerDecoderLayer(E, H, **kw)
    _copy(ours, theirs)
    T, S, N = 3, 4, 2

    def call(m, t, ms):
        return m(t[0], t[1], tgt_mask=ms[0], memory_mask=ms[1], tgt_key_padding_mask=ms[2],
                 memory_key_padding_mask=ms[3])
    _compare(ours, theirs, [_x(T, N, E), _x(S, N, E)], call,
             [_float_mask(T, T), np.zeros((T, S), dtype=bool), _padding(N, T), _padding(N, S)])


def test_transformer_matches_torch():
    torch.manual_seed(3)
    kw = {"d_model": E, "nhead": H, "num_encoder_layers": 2, "num_decoder_layers": 2, "dim_feedforward": FF,
          "batch_first": True}
    theirs, ours = torch.nn.Transformer(**kw), nn.Transformer(**kw)
    _copy(ours, theirs)
    S, T, N = 4, 3, 2
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(T).numpy()
    np.testing.assert_array_equal(tgt_mask, torch.nn.Transformer.generate_square_subsequent_mask(T).numpy())

    def call(m, t, ms):
        return m(t[0], t[1], tgt_mask=ms[0], src_key_padding_mask=ms[1], memory_key_padding_mask=ms[1])
    _compare(ours, theirs, [_x(N, S, E), _x(N, T, E)], call, [tgt_mask, _padding(N, S)], tol=2e-5)


def test_stacks_are_independent_copies_and_init():
    layer = nn.TransformerEncoderLayer(E, H, dim_feedforward=FF)
    enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(E))
    a, b = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    assert a is not b and a is not layer.linear1.weight
    with fg.no_grad():
        a.mul_(0)
    assert np.abs(b.numpy()).sum() > 0 and np.abs(layer.linear1.weight.numpy()).sum() > 0
    assert list(enc.state_dict())[-2:] == ["norm.weight", "norm.bias"]
    model = nn.Transformer(E, H, 1, 1, FF)
    bound = np.sqrt(6 / (FF + E))  # xavier_uniform_ of every matrix, like torch's _reset_parameters
    assert np.abs(model.encoder.layers[0].linear1.weight.numpy()).max() <= bound


def test_transformer_errors():
    model = nn.Transformer(E, H, 1, 1, FF)
    with pytest.raises(fg.ShapeError):
        model(fg.zeros(3, 2, E), fg.zeros(3, 1, E))
    with pytest.raises(fg.ShapeError):
        model(fg.zeros(3, 2, E), fg.zeros(3, 2, E + 1))
    with pytest.raises(ValueError):
        nn.TransformerDecoderLayer(E, H, activation="swish")

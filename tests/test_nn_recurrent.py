"""nn.RNN / LSTM / GRU / RNNCell against torch with copied weights: outputs, final states and the
gradients of inputs, initial states and every parameter."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad import nn

RNG = np.random.default_rng(7)


def _copy(ours: nn.Module, theirs: torch.nn.Module) -> None:
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def _pair(arr: np.ndarray, dtype: str) -> tuple[fg.Tensor, torch.Tensor]:
    return (fg.tensor(arr, dtype=dtype, requires_grad=True),
            torch.tensor(arr).requires_grad_(True))


def _compare(ours, theirs, arrays, dtype, call):
    """call(module, *inputs) returns a flat tuple of outputs; compare values and all gradients."""
    tol = 1e-5 if dtype == "float32" else 1e-10
    fins, tins = zip(*[_pair(a.astype(dtype), dtype) for a in arrays])
    fouts, touts = call(ours, *fins), call(theirs, *tins)
    assert len(fouts) == len(touts)
    loss_f, loss_t = 0, 0
    for f, t in zip(fouts, touts):
        assert f.shape == tuple(t.shape)
        np.testing.assert_allclose(f.numpy(), t.detach().numpy(), rtol=tol, atol=tol)
        w = RNG.uniform(-1, 1, size=tuple(t.shape)).astype(dtype)
        loss_f = loss_f + (f * fg.tensor(w, dtype=dtype)).sum()
        loss_t = loss_t + (t * torch.tensor(w)).sum()
    loss_f.backward()
    loss_t.backward()
    for f, t in zip(fins, tins):
        np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=10 * tol, atol=10 * tol)
    ours_p = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(ours_p[name].grad.numpy(), p.grad.numpy(), rtol=10 * tol, atol=10 * tol,
                                   err_msg=name)


CASES = [
    ("rnn_tanh", lambda m: m.RNN(3, 4), {}),
    ("rnn_relu_2layer_bi", lambda m: m.RNN(3, 4, 2, nonlinearity="relu", bidirectional=True), {}),
    ("lstm_2layer", lambda m: m.LSTM(3, 4, num_layers=2), {}),
    ("lstm_bi_batch_first", lambda m: m.LSTM(3, 4, batch_first=True, bidirectional=True), {"bf": True}),
    ("lstm_proj_bi", lambda m: m.LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=True), {}),
    ("lstm_nobias", lambda m: m.LSTM(3, 4, bias=False), {}),
    ("gru_2layer_bi", lambda m: m.GRU(3, 4, num_layers=2, bidirectional=True), {}),
    ("gru_batch_first", lambda m: m.GRU(3, 4, batch_first=True), {"bf": True}),
]


# float64 for the richest layouts only: each case compiles its own kernels
PARAMS = [(make, opts, "float32") for _, make, opts in CASES] + [
    (make, opts, "float64") for name, make, opts in CASES if name in ("lstm_proj_bi", "gru_2layer_bi")]
IDS = [f"{c[0]}-float32" for c in CASES] + ["lstm_proj_bi-float64", "gru_2layer_bi-float64"]


@pytest.mark.parametrize("make,opts,dtype", PARAMS, ids=IDS)
def test_sequence_models_match_torch(make, opts, dtype):
    torch.manual_seed(0)
    theirs = make(torch.nn)
    ours = make(nn)
    if dtype == "float64":
        theirs = theirs.double()
        ours = ours.double()
    _copy(ours, theirs)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    length, batch = 4, 2
    x = RNG.standard_normal((batch, length, 3) if opts.get("bf") else (length, batch, 3))
    lstm = isinstance(theirs, torch.nn.LSTM)
    h_size = theirs.proj_size or theirs.hidden_size
    dirs = 2 if theirs.bidirectional else 1
    h0 = RNG.standard_normal((theirs.num_layers * dirs, batch, h_size))
    if lstm:
        c0 = RNG.standard_normal((theirs.num_layers * dirs, batch, theirs.hidden_size))

        def call(m, x, h, c):
            out, (hn, cn) = m(x, (h, c))
            return out, hn, cn
        _compare(ours, theirs, [x, h0, c0], dtype, call)
    else:
        def call(m, x, h):
            out, hn = m(x, h)
            return out, hn
        _compare(ours, theirs, [x, h0], dtype, call)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_unbatched_and_default_state(kind):
    torch.manual_seed(1)
    theirs = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True)
    ours = getattr(nn, kind)(3, 4, num_layers=2, bidirectional=True)
    _copy(ours, theirs)

    def call(m, x):
        out, h = m(x)
        return (out,) + (tuple(h) if isinstance(h, tuple) else (h,))
    _compare(ours, theirs, [RNG.standard_normal((5, 3))], "float32", call)


def test_rnn_cell_matches_torch():
    torch.manual_seed(2)
    for nonlinearity in ("tanh", "relu"):
        theirs = torch.nn.RNNCell(3, 4, nonlinearity=nonlinearity)
        ours = nn.RNNCell(3, 4, nonlinearity=nonlinearity)
        _copy(ours, theirs)
        _compare(ours, theirs, [RNG.standard_normal((2, 3)), RNG.standard_normal((2, 4))], "float32",
                 lambda m, x, h: (m(x, h),))
        _compare(ours, theirs, [RNG.standard_normal((3,))], "float32", lambda m, x: (m(x),))


def test_parameter_shapes_init_and_state_dict_keys():
    theirs = torch.nn.LSTM(6, 8, num_layers=2, proj_size=3, bidirectional=True)
    ours = nn.LSTM(6, 8, num_layers=2, proj_size=3, bidirectional=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert p.shape == tuple(q.shape), name
        assert np.abs(p.numpy()).max() <= 1 / np.sqrt(8)
    assert list(nn.GRU(2, 3, bias=False).state_dict()) == ["weight_ih_l0", "weight_hh_l0"]


def test_dropout_between_layers_only_in_training():
    m = nn.GRU(3, 4, num_layers=2, dropout=0.5)
    x = fg.tensor(RNG.standard_normal((3, 2, 3)), dtype="float32")
    m.eval()
    a, _ = m(x)
    b, _ = m(x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    m.train()
    c, _ = m(x)
    assert c.shape == (3, 2, 4)


def test_errors():
    m = nn.LSTM(3, 4)
    with pytest.raises(ValueError):
        m(fg.zeros(3))
    with pytest.raises(RuntimeError if issubclass(fg.ShapeError, RuntimeError) else ValueError):
        m(fg.zeros(2, 1, 5))
    with pytest.raises(fg.ShapeError):
        m(fg.zeros(2, 1, 3), (fg.zeros(1, 2, 4), fg.zeros(1, 1, 4)))
    with pytest.raises(ValueError):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError):
        nn.RNN(3, 4, proj_size=2)
    with pytest.raises(ValueError):
        nn.LSTM(3, 4, dropout=1.5)


def test_long_sequence_backward_matches_torch():
    """30 steps: each step's state and gradient get buffers, so this compiles in seconds."""
    torch.manual_seed(3)
    theirs, ours = torch.nn.LSTM(3, 4), nn.LSTM(3, 4)
    _copy(ours, theirs)

    def call(m, x):
        out, (hn, cn) = m(x)
        return out, cn
    _compare(ours, theirs, [RNG.standard_normal((30, 2, 3))], "float32", call)


def test_pack_pad_roundtrip_matches_torch():
    from torch.nn.utils.rnn import pack_padded_sequence as tpack, pad_packed_sequence as tpad
    from fusegrad.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence
    x = RNG.standard_normal((3, 5, 2)).astype("float32")  # batch_first
    lens = [3, 5, 2]
    ours, theirs = pack_padded_sequence(fg.tensor(x), lens, True, False), tpack(torch.tensor(x), lens, True, False)
    np.testing.assert_array_equal(ours.data.numpy(), theirs.data.numpy())
    for name in ("batch_sizes", "sorted_indices", "unsorted_indices"):
        np.testing.assert_array_equal(getattr(ours, name).numpy(), getattr(theirs, name).numpy())
    (a, la), (b, lb) = pad_packed_sequence(ours, True, -1.0, 6), tpad(theirs, True, -1.0, 6)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(la.numpy(), lb.numpy())
    seqs = [RNG.standard_normal((n, 2)).astype("float32") for n in (2, 4)]
    np.testing.assert_array_equal(pad_sequence([fg.tensor(s) for s in seqs], batch_first=True).numpy(),
                                  torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in seqs], True).numpy())
    with pytest.raises(fg.ShapeError):
        pack_padded_sequence(fg.tensor(x), lens, batch_first=True)  # not sorted


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_packed_input_matches_torch(kind):
    from torch.nn.utils.rnn import pack_padded_sequence as tpack, pad_packed_sequence as tpad
    from fusegrad.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    torch.manual_seed(4)
    theirs = getattr(torch.nn, kind)(2, 3, num_layers=2, bidirectional=True)
    ours = getattr(nn, kind)(2, 3, num_layers=2, bidirectional=True)
    _copy(ours, theirs)
    lens = [2, 4, 3]
    h0 = RNG.standard_normal((4, 3, 3))

    def call(m, x, h):
        torch_side = isinstance(x, torch.Tensor)
        pack, pad = (tpack, tpad) if torch_side else (pack_padded_sequence, pad_packed_sequence)
        state = (h, h * 0.5) if kind == "LSTM" else h
        out, hn = m(pack(x, lens, enforce_sorted=False), state)
        return (pad(out)[0],) + (tuple(hn) if kind == "LSTM" else (hn,))
    _compare(ours, theirs, [RNG.standard_normal((4, 3, 2)), h0], "float32", call)

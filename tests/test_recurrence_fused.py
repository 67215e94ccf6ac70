"""The fused recurrent-layer kernels (Op.RECURRENCE): nn.RNN / LSTM / GRU at widths that take the CPU's
vector product (and its leftover columns) and partial blocks of batch rows, against torch with copied
weights; kernel counts that do not grow with the sequence; second-order gradients; fg.jit."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad import nn
from tests.helpers import RNG

TOL = {"float32": 2e-5, "float64": 1e-10}


def _copy(ours: nn.Module, theirs: torch.nn.Module) -> None:
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def _pair(kind: str, *args, **kwargs) -> tuple[nn.Module, torch.nn.Module]:
    theirs = getattr(torch.nn, kind)(*args, **kwargs)
    ours = getattr(nn, kind)(*args, **kwargs)
    _copy(ours, theirs)
    return ours, theirs


def _run_both(ours, theirs, x: np.ndarray, dtype: str, states: tuple[np.ndarray, ...] = ()):
    """Outputs and the gradients of input, states and parameters of a random weighting of every output."""
    theirs = theirs.to(getattr(torch, dtype))
    ours = ours.to(dtype=getattr(fg, dtype))
    fx, tx = fg.tensor(x.astype(dtype), requires_grad=True), torch.tensor(x.astype(dtype), requires_grad=True)
    fs = [fg.tensor(s.astype(dtype), requires_grad=True) for s in states]
    ts = [torch.tensor(s.astype(dtype), requires_grad=True) for s in states]
    hx_f = (tuple(fs) if len(fs) == 2 else fs[0]) if fs else None
    hx_t = (tuple(ts) if len(ts) == 2 else ts[0]) if ts else None
    fo, tout = ours(fx, hx_f), theirs(tx, hx_t)
    flat_f = [fo[0], *(fo[1] if isinstance(fo[1], tuple) else (fo[1],))]
    flat_t = [tout[0], *(tout[1] if isinstance(tout[1], tuple) else (tout[1],))]
    loss_f, loss_t = 0, 0
    for f, t in zip(flat_f, flat_t):
        w = RNG.uniform(-1, 1, tuple(t.shape)).astype(dtype)
        loss_f = loss_f + (f * fg.tensor(w)).sum()
        loss_t = loss_t + (t * torch.tensor(w)).sum()
    loss_f.backward()
    loss_t.backward()
    values = list(zip(flat_f, flat_t)) + [(a.grad, b.grad) for a, b in zip([fx, *fs], [tx, *ts])]
    ours_p = dict(ours.named_parameters())
    values += [(ours_p[name].grad, p.grad) for name, p in theirs.named_parameters()]
    return values


CASES = {  # kind, constructor args, (L, N, input) of the sequence
    # 40 units: the forward's 160 gate columns are whole vector chunks, the backward's 40 leave 8 over;
    # 10 rows are a block of 8 and one of 2
    "lstm_bi_two_layers": ("LSTM", (24, 40), {"num_layers": 2, "bidirectional": True}, (6, 10, 24)),
    "gru_wide": ("GRU", (16, 48), {}, (5, 3, 16)),
    "rnn_relu_bi": ("RNN", (16, 64), {"nonlinearity": "relu", "bidirectional": True}, (4, 9, 16)),
    "rnn_tanh_no_bias": ("RNN", (8, 32), {"bias": False}, (7, 2, 8)),
    # 600 units: blocks of 3 rows keep the local arrays within 64 KiB
    "lstm_600_units": ("LSTM", (8, 600), {}, (3, 4, 8)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_layers_match_torch(case: str) -> None:
    kind, args, kwargs, (length, batch, width) = CASES[case]
    ours, theirs = _pair(kind, *args, **kwargs)
    x = RNG.standard_normal((length, batch, width))
    for f, t in _run_both(ours, theirs, x, "float32"):
        np.testing.assert_allclose(f.numpy(), t.detach().numpy(), rtol=TOL["float32"], atol=TOL["float32"])


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_float64_with_given_states(kind: str) -> None:
    ours, theirs = _pair(kind, 12, 40, batch_first=True)
    x = RNG.standard_normal((5, 7, 12))
    states = tuple(RNG.standard_normal((1, 5, 40)) for _ in range(2 if kind == "LSTM" else 1))
    for f, t in _run_both(ours, theirs, x, "float64", states):
        np.testing.assert_allclose(f.numpy(), t.detach().numpy(), rtol=TOL["float64"], atol=TOL["float64"])


def _kernel_ops(fn) -> list[str]:
    with fg.profile() as p:
        fn()
    return [k.op for k in p.kernels]


def test_steps_run_inside_two_kernels_whatever_the_length() -> None:
    lstm = nn.LSTM(8, 32)

    def iteration(length: int) -> None:
        x = fg.tensor(RNG.standard_normal((length, 4, 8)).astype(np.float32))
        out, _ = lstm(x)
        lstm.zero_grad()
        out.square().mean().backward()
        lstm.weight_hh_l0.grad.realize()

    iteration(5)
    short, long = _kernel_ops(lambda: iteration(5)), _kernel_ops(lambda: iteration(40))
    assert short.count("RECURRENCE") == 2 and len(short) == len(long) <= 16


def test_second_order_gradients_match_torch() -> None:
    ours, theirs = _pair("GRU", 3, 5)
    x = RNG.standard_normal((4, 2, 3)).astype(np.float32)
    fx, tx = fg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (gf,) = fg.autograd.grad(ours(fx)[0].square().sum(), [fx], create_graph=True)
    (gt,) = torch.autograd.grad(theirs(tx)[0].square().sum(), [tx], create_graph=True)
    gf.square().sum().backward()
    gt.square().sum().backward()
    np.testing.assert_allclose(gf.numpy(), gt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.weight_hh_l0.grad.numpy(), theirs.weight_hh_l0.grad.numpy(), rtol=1e-4,
                               atol=1e-5)


def test_jit_step_equals_eager_step() -> None:
    x = fg.tensor(RNG.standard_normal((6, 3, 8)).astype(np.float32))
    results = []
    for jitted in (False, True):
        fg.manual_seed(0)
        lstm = nn.LSTM(8, 32, num_layers=2)
        opt = fg.optim.SGD(lstm.parameters(), lr=0.1)

        def step() -> fg.Tensor:
            opt.zero_grad()
            loss = lstm(x)[0].square().mean()
            loss.backward()
            opt.step()
            return loss

        run = fg.jit(step) if jitted else step
        results.append([run().item() for _ in range(3)] + [lstm.weight_hh_l1.numpy()])
    np.testing.assert_allclose(results[0][:3], results[1][:3], rtol=1e-6)
    np.testing.assert_allclose(results[0][3], results[1][3], rtol=1e-5, atol=1e-6)


def test_bfloat16_follows_float32() -> None:
    lstm = nn.LSTM(8, 32)
    x = RNG.standard_normal((5, 3, 8)).astype(np.float32)
    want = lstm(fg.tensor(x))[0].numpy()
    got = lstm.to(dtype=fg.bfloat16)(fg.tensor(x, dtype=fg.bfloat16))[0].float().numpy()
    np.testing.assert_allclose(got, want, atol=3e-2)


def test_opencl_work_groups_of_a_wide_layer_fit_their_private_arrays() -> None:
    """PoCL runs a work-group's items on one thread with their private arrays on its stack: groups of
    1024 items of a 600-unit LSTM's 14 KiB rows overflowed it. The kernels require small groups."""
    from fusegrad.codegen.opencl import GROUP_PRIVATE_BYTES, OpenCLRenderer
    from fusegrad.codegen.recurrence import row_bytes
    from fusegrad.engine.realize import _kernel_name, kernel_ir, kernel_key
    from fusegrad.engine.schedule import create_schedule, toposort
    lstm = nn.LSTM(8, 600)
    out = lstm(fg.tensor(RNG.standard_normal((3, 4, 8)).astype(np.float32)))[0]
    grads = fg.autograd.grad(out.square().sum(), list(lstm.parameters()))
    nodes = [t._node for t in (out, *grads)]
    renderer = OpenCLRenderer()
    fused = [it.spec for it in create_schedule(nodes, toposort(nodes)) if it.spec.root.op.name == "RECURRENCE"]
    assert len(fused) == 2
    for spec in fused:
        ir = kernel_ir(spec, _kernel_name(spec, kernel_key(spec)), renderer)
        source = renderer.render_kernel(ir)
        group = int(source.split("reqd_work_group_size(")[1].split(",")[0])
        assert group * row_bytes(2400, 600, 4) <= GROUP_PRIVATE_BYTES and group >= 1

"""How many kernels a realization runs: the scheduler's fusion contract."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad.engine.schedule import create_schedule
from tests import helpers


def kernels(*tensors):
    for t in tensors:
        t.numpy()  # warm: inputs realized, kernels compiled
    return None


def count(fn):
    """Kernels launched when realizing fn()'s result(s) built from realized inputs."""
    with fg.profile() as p:
        out = fn()
        fg.realize(*(out if isinstance(out, tuple) else (out,)))
    return len(p.kernels)


@pytest.fixture
def abc():
    return [fg.tensor(np.random.randn(64, 32).astype(np.float32)) for _ in range(3)]


def test_elementwise_then_reduce_is_one_kernel(abc):
    a, b, c = abc
    assert count(lambda: ((a * b + c).relu()).sum(1)) == 1


def test_elementwise_chain_is_one_kernel(abc):
    a, b, c = abc
    assert count(lambda: ((a * b).exp() - c.sin() / 3).sqrt().maximum(a)) == 1


def test_epilogue_after_reduction_fuses(abc):
    a, _, _ = abc
    assert count(lambda: a.sum(1) * 2 + 1) == 1
    assert count(lambda: a.mean(0)) == 1


def test_movement_ops_are_index_arithmetic(abc):
    a, b, _ = abc
    assert count(lambda: (a.T.reshape(16, 128).flip(0) + b.reshape(128, 16).T)) == 1


def test_reduction_feeding_a_broadcast_is_materialized(abc):
    a, _, _ = abc
    # x - max(x): the max is computed once, then the subtraction: 2 kernels
    assert count(lambda: a - a.amax(1, keepdim=True)) == 2


def test_matmul_with_bias_and_relu_is_one_kernel(abc):
    a, b, _ = abc
    w = fg.tensor(np.random.randn(32, 16).astype(np.float32))
    bias = fg.tensor(np.random.randn(16).astype(np.float32))
    assert count(lambda: (a @ w + bias).relu()) == 1


def test_lazy_until_needed(abc):
    a, b, _ = abc
    with fg.profile() as p:
        y = (a * b).sum()
    assert p.kernels == []
    y.item()
    assert len(p.kernels) == 0  # the profile block has ended
    with fg.profile() as p:
        z = (a + b).sum()
        z.item()
    assert len(p.kernels) == 1


def test_realize_several_outputs_in_one_schedule(abc):
    a, b, _ = abc
    assert count(lambda: (a + b, a * b)) == 2


def test_realized_value_is_reused(abc):
    a, b, _ = abc
    s = (a * b).sum(1).realize()
    assert count(lambda: s * 2) == 1
    assert count(lambda: s.reshape(8, 8)) == 0  # a contiguous view aliases the buffer


def test_same_structure_reuses_compiled_kernels(abc):
    a, b, c = abc
    (a * b + c).numpy()
    from fusegrad.engine import realize as R
    before = len(R._programs)
    (b * c + a).numpy()
    assert len(R._programs) == before


def test_graph_seen_before_reuses_its_schedule(abc, monkeypatch):
    a, b, c = abc
    from fusegrad.engine import realize as R
    ((a * b).exp() + c).sum(0).numpy()
    calls = []
    monkeypatch.setattr(R, "create_schedule", lambda *args: calls.append(args) or [])
    x, y, z = (fg.tensor(np.random.randn(64, 32).astype(np.float32)) for _ in range(3))
    got = ((x * y).exp() + z).sum(0).numpy()
    assert calls == []  # no scheduling: the plan of the same structure ran
    np.testing.assert_allclose(got, (np.exp(x.numpy() * y.numpy()) + z.numpy()).sum(0), rtol=1e-5)


def test_batch_norm_reads_the_activations_in_four_reductions():
    """A training batch norm's forward and backward read the activations in four reductions: the
    mean, the variance, and the sums of dy and of dy * centered, each computed once however many
    gradients use it (the scale's gradient, read by the weight's and the variance's, was summed
    twice; the bias's and the mean's sums of dy were two more). Each sums per (sample, channel),
    N * C outputs that fill a GPU; the sums of those over the batch read N * C values, not the batch."""
    from fusegrad.engine.schedule import create_schedule, fused_nodes
    from fusegrad.graph.ops import REDUCE
    rng = np.random.default_rng(0)
    n, c, h, w = 8, 4, 6, 6
    x = fg.tensor(rng.standard_normal((n, c, h, w)).astype(np.float32))
    weight = fg.tensor(rng.uniform(0.5, 1.5, c).astype(np.float32))
    bias = fg.tensor(rng.standard_normal(c).astype(np.float32))
    dy = fg.tensor(rng.standard_normal((n, c, h, w)).astype(np.float32))

    def loss(x, weight, bias):
        return (fg.nn.functional.batch_norm(x, None, None, weight, bias, training=True) * dy).sum()

    grads = list(fg.func.grad(loss, argnums=(0, 1, 2))(x, weight, bias))
    items = create_schedule([g._node for g in grads])
    def reads_activations(node) -> bool:
        return node.op in REDUCE and node.srcs[0].numel == n * c * h * w and node.numel == n * c

    passes = [it for it in items if it.alias_of is None
              and any(reads_activations(node) for node in fused_nodes(it.spec.root, it.spec.inputs))]
    assert len(passes) == 4
    px = torch.tensor(x.numpy(), requires_grad=True)
    pw, pb = torch.tensor(weight.numpy(), requires_grad=True), torch.tensor(bias.numpy(), requires_grad=True)
    (torch.nn.functional.batch_norm(px, None, None, pw, pb, training=True) * torch.tensor(dy.numpy())).sum().backward()
    for got, want in zip(grads, (px.grad, pw.grad, pb.grad)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


def test_mlp_training_step_kernels():
    """Zigrad's MLP step (forward, cross-entropy, backward, SGD) stays fused: each linear layer's
    bias and ReLU ride on one kernel after its product, no broadcast is copied out, the loss and its
    gradient take 5 kernels (3 row reductions, the mean, softmax - onehot), each ReLU's gradient
    mask rides on the product computing the gradient it masks, and the whole step is at most 19
    kernels (a rule keeping shared reductions once split every ReLU into three kernels and copied a
    (64, 128, 64) broadcast; plain SGD's step counter was one more kernel, and each mask another)."""
    from fusegrad.examples.mnist import build_model
    fg.manual_seed(0)
    model = build_model("mlp")
    opt = fg.optim.SGD(model.parameters(), lr=0.01)
    x = fg.tensor(np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32))
    y = fg.tensor(np.random.default_rng(1).integers(0, 10, 64))

    def step() -> fg.Tensor:
        opt.zero_grad()
        loss = fg.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    step().item()
    with fg.profile() as p:
        step().item()
    labels = [k.op for k in p.kernels]
    # a device that checks indices in its kernels checks the targets in one, and, not having read them,
    # counts the ones not ignored for the mean (CPU: 19)
    assert len(labels) <= (19 if helpers.checks_on_host() else 22), labels
    assert "COPY" not in labels
    assert labels.count("ADD CMPLT CMPEQ OR WHERE") == 2  # bias + ReLU of both hidden layers
    assert labels.count("ADD CMPLT CMPEQ OR NOT MUL SUM WHERE") == 2  # each mask in its gradient's product


def test_conv_bias_gradient_sums_per_sample_first():
    """The bias gradient of a convolution sums dy per (sample, channel), then over the batch: no sum
    reads the activations into one output per channel (C outputs leave a GPU nearly idle)."""
    from fusegrad.engine.schedule import create_schedule, fused_nodes
    from fusegrad.graph.ops import REDUCE
    rng = np.random.default_rng(1)
    n, c, size = 6, 5, 9
    x = fg.tensor(rng.standard_normal((n, 2, size, size)).astype(np.float32))
    weight = fg.tensor(rng.standard_normal((c, 2, 3, 3)).astype(np.float32))
    bias = fg.tensor(rng.standard_normal(c).astype(np.float32))
    dy = fg.tensor(rng.standard_normal((n, c, size - 2, size - 2)).astype(np.float32))
    (g_bias,) = fg.func.grad(lambda b: (fg.nn.functional.conv2d(x, weight, b) * dy).sum())(bias),
    items = create_schedule([g_bias._node])
    sums = [node for it in items if it.alias_of is None for node in fused_nodes(it.spec.root, it.spec.inputs)
            if node.op in REDUCE and node.srcs[0].numel == dy.numel()]
    assert sums and all(node.numel == n * c for node in sums)
    np.testing.assert_allclose(g_bias.numpy(), dy.numpy().sum((0, 2, 3)), rtol=1e-5, atol=1e-5)


def test_a_residual_stream_is_stored_once_not_recomputed_by_each_reader():
    """x_k = x_{k-1} + f_k(x_{k-1}), as a transformer's blocks add to their residual stream: each x_k
    is read by several kernels (its layer norm's statistics and normalization, and the next sums),
    so it is stored once; recomputed, every reader of x_12 would add all twelve terms again."""
    from fusegrad.engine.schedule import create_schedule, fused_nodes
    from fusegrad.graph.ops import Op
    rng = np.random.default_rng(1)
    x = fg.tensor(rng.standard_normal((32, 16)).astype(np.float32))
    w = fg.tensor(rng.standard_normal((16, 16)).astype(np.float32) * 0.2)
    xs = [x]
    for _ in range(12):
        xs.append(xs[-1] + fg.nn.functional.layer_norm(xs[-1], (16,)) @ w)
    out = xs[-1]
    items = create_schedule([out._node])
    most = max(sum(n.op is Op.ADD for n in fused_nodes(it.spec.root, it.spec.inputs)) for it in items)
    assert most <= 3, f"a kernel adds {most} terms of the stream"
    want = torch.tensor(x.numpy())
    for _ in range(12):
        want = want + torch.nn.functional.layer_norm(want, (16,)) @ torch.tensor(w.numpy())
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)


def test_long_reductions_into_few_outputs_run_in_two_parallel_stages():
    """A sum of a million terms into one output is first a sum into many partial results (a parallel
    kernel), then a short sum of those; results as numpy's (in float64), gradients unchanged."""
    from fusegrad.engine.schedule import create_schedule
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1000, 1000)).astype(np.float32)
    t = fg.tensor(x, requires_grad=True)
    total = (t * t).sum()
    items = [it for it in create_schedule([total._node]) if it.alias_of is None]
    assert len(items) == 2 and items[0].spec.root.numel >= 64
    np.testing.assert_allclose(total.item(), (x.astype(np.float64) ** 2).sum(), rtol=1e-6)
    total.backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 * x, rtol=1e-6)
    flat = fg.tensor(x.reshape(-1))
    np.testing.assert_allclose(flat.amax().item(), x.max())
    ties = fg.zeros(100_000, requires_grad=True)  # a max's gradient splits evenly among its ties, as torch's
    ties.amax().backward()
    np.testing.assert_allclose(ties.grad.numpy(), np.full(100_000, 1e-5, np.float32), rtol=1e-5)
    assert count(lambda: flat[:1000].sum()) == 1  # short: one kernel
    rows = fg.tensor(x)
    assert count(lambda: rows.sum(1)) == 1  # many outputs: one kernel


def test_a_weights_gradient_summed_over_many_steps_gives_each_product_a_kernel():
    """A weight used at every step of a recurrence gets one gradient product per step, added up: as
    nested loops of one kernel that sum ran at scalar speed, so past MANY_REDUCTIONS each product is
    a kernel of its own (however short) and one kernel adds them."""
    from fusegrad.engine.schedule import MANY_REDUCTIONS, create_schedule, fused_nodes
    from fusegrad.graph.ops import Op
    rng = np.random.default_rng(4)
    w0, h0 = rng.standard_normal((32, 32)).astype(np.float32) * 0.3, rng.standard_normal((16, 32)).astype(np.float32)
    xs = [rng.standard_normal((16, 32)).astype(np.float32) for _ in range(12)]  # 16 rows: each product sums 16
    w, h = fg.tensor(w0, requires_grad=True), fg.tensor(h0)
    tw, th = torch.tensor(w0, requires_grad=True), torch.tensor(h0)
    for x in xs:
        h, th = (h @ w + fg.tensor(x)).tanh(), (th @ tw + torch.tensor(x)).tanh()
    (grad,) = fg.autograd.grad(h.sum(), [w])
    items = create_schedule([grad._node])
    most = max(sum(n.op is Op.SUM for n in fused_nodes(it.spec.root, it.spec.inputs)) for it in items)
    assert most <= MANY_REDUCTIONS
    th.sum().backward()
    np.testing.assert_allclose(grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_a_sum_of_many_tensors_read_transposed_is_added_in_its_own_layout():
    """A recurrent weight used transposed at every step (h @ W.T, W.T taken once): its gradient adds
    the steps' products in their (H, 4H) layout, then lays the sum out as W (4H, H). Fused, the adding
    kernel read every product across its rows, one strided stream per step."""
    from fusegrad.engine.schedule import create_schedule, fused_nodes
    from fusegrad.graph.ops import Op
    rng = np.random.default_rng(5)
    w0, h0 = rng.standard_normal((128, 32)).astype(np.float32) * 0.2, rng.standard_normal((16, 32)).astype(np.float32)
    w, tw = fg.tensor(w0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    wt, twt = w.T, tw.T
    h, th = fg.tensor(h0), torch.tensor(h0)
    for _ in range(12):
        h, th = (h @ wt)[:, :32].tanh(), (th @ twt)[:, :32].tanh()
    (grad,) = fg.autograd.grad(h.sum(), [w])
    adds = {it.spec.root.shape: sum(n.op is Op.ADD for n in fused_nodes(it.spec.root, it.spec.inputs))
            for it in create_schedule([grad._node])}
    assert adds.get((32, 128), 0) >= 8 and adds.get((128, 32), 0) <= 1, adds
    th.sum().backward()
    np.testing.assert_allclose(grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape, dim, keepdim", [((40009,), None, False), ((3, 40009), 1, True),
                                                 ((64, 256, 65), None, True), ((2, 100000), (1,), False),
                                                 ((65536,), 0, True), ((8, 64, 64, 16), (1, 2, 3), False)])
def test_staged_sums_keep_shapes_and_values(shape, dim, keepdim):
    """Sums staged or not (a prime length is not split) keep torch's shapes and values, forward and
    backward."""
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    t, tt = fg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    got = t.sum(dim, keepdim=keepdim) if dim is not None else t.sum()
    want = tt.sum(dim, keepdim=keepdim) if dim is not None else tt.sum()
    assert tuple(got.shape) == tuple(want.shape)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-3)
    w = np.random.default_rng(7).standard_normal(tuple(want.shape)).astype(np.float32)
    (got * fg.tensor(w)).sum().backward()
    (want * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_sums_read_through_a_cast_to_a_half_type_are_stored_as_that_type():
    """A product that two kernels read only through its cast to bfloat16 (a Linear's output under
    autocast, read by its consumers) is stored as bfloat16: its kernel rounds the sums as it writes them."""
    a, b = fg.randn(256, 384).realize(), fg.randn(384, 320).realize()
    y = (a @ b).to(fg.bfloat16)
    z1, z2 = y.float().sum(0), y.float().sum(1)
    roots = [it.spec.root for it in create_schedule([z1._node, z2._node])]
    assert [r.dtype for r in roots if r.shape == (256, 320)] == [fg.bfloat16]
    rounded = torch.from_numpy(a.numpy() @ b.numpy()).bfloat16().double().numpy()
    # (a sum on either side of a rounding tie may round the other way: a bfloat16 unit in a few terms)
    np.testing.assert_allclose(z1.numpy(), rounded.sum(0), rtol=1e-3, atol=2.0)
    np.testing.assert_allclose(z2.numpy(), rounded.sum(1), rtol=1e-3, atol=2.0)


def test_a_half_operand_of_a_product_is_stored_once_as_half_for_every_reader():
    """Under autocast, a GELU's gradient is the half operand of the weight gradient's product and the
    input of the bias gradient's sum: stored once, as bfloat16, and read by both (it was stored widened
    for the product and computed again inside the sum)."""
    rng = np.random.default_rng(5)
    x = fg.tensor(rng.standard_normal((256, 32)).astype(np.float32))
    w1 = fg.tensor(rng.standard_normal((64, 32)).astype(np.float32) * 0.2, requires_grad=True)
    b1 = fg.tensor(rng.standard_normal(64).astype(np.float32), requires_grad=True)
    w2 = fg.tensor(rng.standard_normal((16, 64)).astype(np.float32) * 0.2, requires_grad=True)
    with fg.profile() as p:
        with fg.autocast("cpu", dtype=fg.bfloat16):
            loss = fg.nn.functional.linear(fg.nn.functional.gelu(fg.nn.functional.linear(x, w1, b1)), w2).float()
            loss = loss.square().mean()
        loss.backward()
        fg.realize(w1.grad, b1.grad, w2.grad)
    with_erf = [k for k in p.kernels if "ERF" in k.op]
    assert len(with_erf) == 2, [k.op for k in with_erf]  # the forward's GELU, and its gradient once
    tx, tw1, tb1, tw2 = (torch.tensor(t.detach().numpy(), requires_grad=True) for t in (x, w1, b1, w2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tloss = torch.nn.functional.linear(torch.nn.functional.gelu(torch.nn.functional.linear(tx, tw1, tb1)), tw2)
        tloss = tloss.float().square().mean()
    tloss.backward()
    for got, want in ((w1.grad, tw1.grad), (b1.grad, tb1.grad), (w2.grad, tw2.grad)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0.02, atol=0.02 * float(want.abs().max()))


@pytest.mark.parametrize("shape", [(2048, 512), (700, 130), (1000, 384)])
def test_sums_over_rows_into_columns_split_the_columns_among_threads(shape):
    """A sum over rows into columns (the bias gradient's layout: rows outside, columns vectorized inside)
    gives ranges of columns to threads (it ran on one); the values stay those of a plain sum."""
    from fusegrad.codegen.c import CRenderer, column_var
    from fusegrad.engine.realize import kernel_ir
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    t = fg.tensor(x)
    out = (t * 2).sum(0) + (t * t).amax(0)
    irs = [kernel_ir(it.spec, f"k{i}", CRenderer()) for i, it in enumerate(create_schedule([out._node]))]
    split = [ir for ir in irs if column_var(ir) is not None]
    assert split and all(column_var(ir).extent == shape[1] for ir in split)
    assert all("#pragma omp parallel for" in CRenderer().render_kernel(ir) for ir in split)
    np.testing.assert_allclose(out.numpy(), (x * 2).sum(0) + (x * x).max(0), rtol=1e-4, atol=1e-3)

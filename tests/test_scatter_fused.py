"""The fused row scatter-add (Op.INDEX_ADD) behind the embedding's gradient: gradients against torch with
repeated indices and partial column blocks, in chunks of rows as GPUs run it, padding_idx, one kernel
instead of the rows x indices comparison, second-order gradients, and fg.jit."""
import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad import nn
from fusegrad.codegen.c import CRenderer
from tests.helpers import RNG

F = nn.functional


def _embedding_grads(rows: int, width: int, index: np.ndarray, dtype: str, padding_idx: int | None = None):
    w = RNG.standard_normal((rows, width)).astype(dtype)
    g = RNG.standard_normal(index.shape + (width,)).astype(dtype)
    fw, tw = fg.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    (F.embedding(fg.tensor(index), fw, padding_idx) * fg.tensor(g)).sum().backward()
    (torch.nn.functional.embedding(torch.tensor(index), tw, padding_idx) * torch.tensor(g)).sum().backward()
    return fw.grad.numpy(), tw.grad.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_embedding_gradient_matches_torch_with_repeated_indices(dtype: str) -> None:
    index = RNG.integers(0, 37, (3, 50))  # most rows hit several times, some never
    ours, theirs = _embedding_grads(1000, 70, index, dtype)  # 70 columns: a block of 64 and one of 6
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_chunks_of_rows_as_gpus_take_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CRenderer, "scatter_width", 1)
    monkeypatch.setattr(CRenderer, "scatter_threads", 40)  # 5 columns: 8 chunks of 13 rows (the last of 10)
    index = RNG.integers(0, 101, (64,))
    ours, theirs = _embedding_grads(101, 5, index, "float32")
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_padding_row_gets_no_gradient() -> None:
    index = np.array([[0, 2, 3, 2], [3, 3, 1, 0]])
    ours, theirs = _embedding_grads(5, 3, index, "float32", padding_idx=3)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    assert not ours[3].any()


def test_one_scatter_kernel_not_a_comparison_per_row() -> None:
    rows, width = 4096, 8
    w = fg.tensor(RNG.standard_normal((rows, width)).astype(np.float32), requires_grad=True)
    index = fg.tensor(RNG.integers(0, rows, (32,)))
    with fg.profile() as p:
        F.embedding(index, w).square().sum().backward()
        w.grad.realize()
    ops = [k.op for k in p.kernels]
    assert ops.count("INDEX_ADD") == 1
    # the one-hot form compares each of the weight's rows with every index, in a kernel of its shape
    assert not [k for k in p.kernels if "CMPEQ" in k.op and k.name.startswith(f"R_{rows}_{width}_")]


def test_second_order_gradients_match_torch() -> None:
    w = RNG.standard_normal((9, 4)).astype(np.float32)
    index = np.array([1, 4, 4, 7])
    fw, tw = fg.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    (gf,) = fg.autograd.grad(F.embedding(fg.tensor(index), fw).pow(3).sum(), [fw], create_graph=True)
    (gt,) = torch.autograd.grad(torch.nn.functional.embedding(torch.tensor(index), tw).pow(3).sum(), [tw],
                                create_graph=True)
    np.testing.assert_allclose(gf.numpy(), gt.detach().numpy(), rtol=1e-5, atol=1e-6)
    gf.square().sum().backward()
    gt.square().sum().backward()
    np.testing.assert_allclose(fw.grad.numpy(), tw.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_jit_step_equals_eager_step() -> None:
    batches = [fg.tensor(RNG.integers(0, 50, (4, 6))) for _ in range(3)]
    results = []
    for jitted in (False, True):
        fg.manual_seed(0)
        emb, head = nn.Embedding(50, 16), nn.Linear(16, 3)
        opt = fg.optim.SGD([*emb.parameters(), *head.parameters()], lr=0.5)

        def step(x: fg.Tensor) -> fg.Tensor:
            opt.zero_grad()
            loss = head(emb(x)).square().mean()
            loss.backward()
            opt.step()
            return loss

        run = fg.jit(step) if jitted else step
        results.append([run(x).item() for x in batches] + [emb.weight.numpy()])
    np.testing.assert_allclose(results[0][:3], results[1][:3], rtol=1e-6)
    np.testing.assert_allclose(results[0][3], results[1][3], rtol=1e-6, atol=1e-7)


def test_index_add_along_a_middle_dim_and_with_empty_slices_matches_torch() -> None:
    x, s = RNG.standard_normal((4, 2, 3)), RNG.standard_normal((4, 5, 3))
    index = [0, 1, 1, 0, 1]
    ours = fg.tensor(x).index_add(1, fg.tensor(index), fg.tensor(s), alpha=0.5).numpy()
    theirs = torch.tensor(x).index_add(1, torch.tensor(index), torch.tensor(s), alpha=0.5).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    empty = fg.zeros(5, 0).index_add(0, fg.tensor([0, 4]), fg.zeros(2, 0))
    assert empty.shape == (5, 0)

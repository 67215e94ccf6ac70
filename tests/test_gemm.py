"""The GEMM path of the CPU codegen: matrix products of every layout against numpy/torch."""
import json

import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad.codegen import gemm_c
from fusegrad.codegen.c import CRenderer
from fusegrad.codegen.gemm import use_gemm
from fusegrad.codegen.ir import Gemm, Loop
from fusegrad.codegen.lower import lower
from fusegrad.engine import realize as realize_module
from fusegrad.graph.ops import FUSED
from fusegrad.engine.schedule import create_schedule
from fusegrad.runtime import registry
from tests.helpers import check_op
from tests import helpers


def tune_ir(t: fg.Tensor):
    (item,) = create_schedule([t._node])
    return use_gemm(lower(item.spec, "k"))


def uses_gemm(t: fg.Tensor) -> bool:
    items = create_schedule([t._node])
    return any(isinstance(s, Gemm) for it in items for s in use_gemm(lower(it.spec, "k")).stmts)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shapes", [((37, 61), (61, 45)), ((128, 784), (784, 64)), ((5, 300), (300, 1))])
def test_matmul_shapes(dtype, shapes):
    check_op(shapes, lambda a, b: a @ b, dtype=dtype, atol=1e-4 if dtype == "float32" else 1e-9,
                   rtol=1e-4 if dtype == "float32" else 1e-9)


@pytest.mark.parametrize("fn", [
    lambda a, b: a.T @ b.T,
    lambda a, b: (a.T @ b.T + 1).relu() * 2,
    lambda a, b: (a.T @ b.T).T,
])
def test_transposed_operands_and_epilogues(fn):
    check_op([(70, 33), (50, 70)], fn, atol=1e-4, rtol=1e-4)


def test_batched_broadcast_matmul():
    check_op([(3, 1, 20, 30), (4, 30, 25)], lambda a, b: a @ b, atol=1e-4, rtol=1e-4)


def test_gemm_is_used_for_linear_layers():
    x = fg.randn(64, 784).realize()
    w = fg.randn(128, 784).realize()
    b = fg.randn(128).realize()
    assert uses_gemm((x @ w.T + b).relu())
    assert uses_gemm(fg.randn(7, 9).realize() @ fg.randn(9, 5).realize()) is False  # tiny: plain loops win
    out = ((x @ w.T + b).relu()).numpy()
    ref = np.maximum(x.numpy() @ w.numpy().T + b.numpy(), 0)
    np.testing.assert_allclose(out, ref, atol=1e-3, rtol=1e-4)


def test_linear_layer_gradients_use_gemm():
    x = fg.randn(64, 100).realize()
    w = fg.randn(100, 80, requires_grad=True)
    loss = (x @ w).relu().sum()
    loss.backward()
    ref = x.numpy().T @ (x.numpy() @ w.numpy() > 0).astype(np.float32)
    np.testing.assert_allclose(w.grad.numpy(), ref, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("rows", sorted(gemm_c.ROW_PREFERENCE))
@pytest.mark.parametrize("m,k,n", [(1, 7, 129), (7, 129, 1), (129, 1000, 7), (1000, 7, 129), (129, 129, 129),
                                   (64, 784, 128)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_tile_height_on_odd_sizes(rows, m, k, n, dtype, monkeypatch):
    """Each micro-kernel height and panel depth, forced, on sizes that leave partial tiles and panels."""
    if rows not in gemm_c.micro_rows():
        pytest.skip(f"a {rows}-row tile needs {2 * rows + 3} vector registers; this CPU's kernels have "
                    f"{gemm_c.simd().registers}")
    monkeypatch.setattr(realize_module, "_programs", {})
    monkeypatch.setattr(realize_module, "_plans", {})
    monkeypatch.setitem(gemm_c.TUNED, (dtype, m, n, k), (rows, 64 if k > 64 else k))
    rng = np.random.default_rng(rows * 1000 + m)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)
    tol = dict(atol=1e-3, rtol=1e-4) if dtype == "float32" else dict(atol=1e-10, rtol=1e-10)
    np.testing.assert_allclose((fg.tensor(a) @ fg.tensor(b).T).numpy(), a @ b.T, **tol)  # transposed B
    np.testing.assert_allclose((fg.tensor(a.T.copy()).T @ fg.tensor(b.T.copy())).numpy(), a @ b.T, **tol)
    batched = rng.standard_normal((3, m, k)).astype(dtype)
    np.testing.assert_allclose((fg.tensor(batched) @ fg.tensor(b).T).numpy(), batched @ b.T, **tol)


def test_tile_heuristic_pads_little():
    for m, n, k in [(1024, 1024, 1024), (64, 128, 784), (10, 64, 64), (7, 129, 1000)]:
        rows, depth = gemm_c.default_tiles(m, n, k)
        cap = gemm_c.max_depth("float32")
        assert rows in gemm_c.micro_rows() and -(-m // rows) * rows - m < rows
        assert depth % 16 == 0 and depth <= cap + 15 and -(-k // depth) == -(-k // cap)
    assert gemm_c.max_depth("float32") * gemm_c.nr("float32") * 4 == 32 << 10


def test_tiles_fit_the_vector_registers():
    """Tiles are two registers wide, and the tallest leaves no accumulator to spill."""
    simd = gemm_c.simd()
    flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "").split()
    if "avx512f" in flags:
        assert (simd.width, simd.registers) == (64, 32)
    elif "avx2" in flags:
        assert (simd.width, simd.registers) == (32, 16)
    assert gemm_c.nr("float32") * 4 == gemm_c.nr("float64") * 8 == 2 * simd.width
    assert max(gemm_c.micro_rows()) == max(r for r in gemm_c.ROW_PREFERENCE if 2 * r + 3 <= simd.registers)
    source = gemm_c.gemm_source()
    assert all(gemm_c.micro_kernel("float32", r) in source for r in gemm_c.micro_rows())


def test_kernel_cache_is_keyed_by_the_instruction_set():
    """Code built with -march=native on one CPU must not be loaded on another that lacks its
    instructions: the compiler identity in every cache key carries a digest of the target macros."""
    from fusegrad.runtime import cpu
    cc = cpu.find_compiler()
    simd, target = cpu._probe_target(cc)
    assert registry.get("cpu").compiler()[1].endswith(f"; target {target}")
    assert (simd, target) == cpu._probe_target(cc)


def test_tile_search_stores_and_reuses_its_choice(monkeypatch, tmp_path):
    """FUSEGRAD_SEARCH=N times every candidate once per new shape; the choice is kept on disk."""
    from fusegrad.engine import tune
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FUSEGRAD_SEARCH", "2")
    monkeypatch.setattr(realize_module, "_programs", {})
    monkeypatch.setattr(realize_module, "_plans", {})
    shape = ("float32", 40, 96, 72)
    monkeypatch.delitem(gemm_c.TUNED, shape, raising=False)
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((40, 72)).astype(np.float32), rng.standard_normal((72, 96)).astype(np.float32)
    np.testing.assert_allclose((fg.tensor(a) @ fg.tensor(b)).numpy(), a @ b, atol=1e-4, rtol=1e-4)
    chosen = gemm_c.TUNED[shape]
    assert chosen in tune._candidates(shape)
    stored = [e for e in (json.loads(p.read_text()) for p in tmp_path.glob("*.json")) if "tiles" in e]
    assert len(stored) == 1 and stored[0]["tiles"] == list(chosen)
    # a later process (no search) finds the stored choice
    del gemm_c.TUNED[shape]
    monkeypatch.setenv("FUSEGRAD_SEARCH", "0")
    monkeypatch.setattr(realize_module, "_programs", {})
    monkeypatch.setattr(realize_module, "_plans", {})
    np.testing.assert_allclose((fg.tensor(a) @ fg.tensor(b)).numpy(), a @ b, atol=1e-4, rtol=1e-4)
    assert gemm_c.TUNED[shape] == chosen
    monkeypatch.delitem(gemm_c.TUNED, shape)


needs_blas = pytest.mark.skipif(not registry.get("cpu").vendor_blas(),
                                reason="numpy has no OpenBLAS with an ILP64 CBLAS loaded in this process")


@needs_blas
@pytest.mark.parametrize("vendor", [False, True])
@pytest.mark.parametrize("m,k,n", [(7, 129, 1000), (129, 1000, 7), (64, 784, 128), (200, 33, 65)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_vendor_blas_and_generated_paths_agree(vendor, m, k, n, dtype, monkeypatch):
    """Each product forced through the vendor BLAS or the generated kernel: plain, transposed, batched."""
    from fusegrad.engine import tune
    monkeypatch.setattr(realize_module, "_programs", {})
    monkeypatch.setattr(realize_module, "_plans", {})
    monkeypatch.setattr(tune, "_vendor_decided", {})
    monkeypatch.setattr(gemm_c, "VENDOR", set())
    for shape in [(dtype, m, n, k), (dtype, k, n, m), (dtype, n, m, k)]:  # the last: narrow products swapped
        tune._decide(shape, vendor)  # no race: the path is chosen
    rng = np.random.default_rng(m + n)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)
    tol = dict(atol=1e-3, rtol=1e-4) if dtype == "float32" else dict(atol=1e-10, rtol=1e-10)
    np.testing.assert_allclose((fg.tensor(a) @ fg.tensor(b).T).numpy(), a @ b.T, **tol)
    np.testing.assert_allclose((fg.tensor(a.T.copy()).T @ fg.tensor(b.T.copy())).numpy(), a @ b.T, **tol)
    batched = rng.standard_normal((3, m, k)).astype(dtype)
    np.testing.assert_allclose((fg.tensor(batched) @ fg.tensor(b).T).numpy(), batched @ b.T, **tol)
    product = fg.tensor(a) @ fg.tensor(b).T
    sources = [CRenderer().render_kernel(use_gemm(lower(it.spec, "k"))) for it in create_schedule([product._node])]
    assert any("fg_blas_" in src for src in sources) == (vendor and uses_gemm(product))


@needs_blas
def test_vendor_race_is_stored(monkeypatch, tmp_path):
    from fusegrad.engine import tune
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the race only runs for single-threaded kernels
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the race only runs for single-threaded kernels
    monkeypatch.setattr(realize_module, "_programs", {})
    monkeypatch.setattr(realize_module, "_plans", {})
    monkeypatch.setattr(tune, "_vendor_decided", {})
    monkeypatch.setattr(gemm_c, "VENDOR", set())
    a, b = fg.randn(96, 80).realize(), fg.randn(80, 112).realize()
    np.testing.assert_allclose((a @ b).numpy(), a.numpy() @ b.numpy(), atol=1e-3, rtol=1e-4)
    (entry,) = [e for e in (json.loads(p.read_text()) for p in tmp_path.glob("*.json")) if "vendor" in e]
    assert entry["shape"] == ["float32", 96, 112, 80] and entry["generated_s"] > 0 and entry["vendor_s"] > 0
    assert entry["vendor"] == (entry["vendor_s"] < tune.VENDOR_MARGIN * entry["generated_s"])
    assert tune._vendor_decided[("float32", 96, 112, 80)] == entry["vendor"]
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # several threads: no race, generated code
    product = fg.randn(90, 80).realize() @ fg.randn(80, 100).realize()
    assert tune.raced_products(tune_ir(product), "cpu") == ([], None)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_invariant_operand_is_packed_once(dtype):
    """A product inside batch loops whose one operand the batch does not index (a convolution's
    weights) packs that operand before the loops; results match numpy on odd sizes, K in panels."""
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((5, 100, 300)).astype(dtype), rng.standard_normal((300, 70)).astype(dtype)
    for a, b, want in ((x, w, x @ w), (w.T.copy(), x.transpose(0, 2, 1).copy(), w.T @ x.transpose(0, 2, 1))):
        product = fg.tensor(a) @ fg.tensor(b)
        sources = [CRenderer().render_kernel(use_gemm(lower(it.spec, "k"))) for it in create_schedule([product._node])]
        assert any("fg_pack_scratch(2" in src for src in sources)
        tol = dict(rtol=1e-4, atol=1e-3) if dtype == "float32" else dict(rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(product.numpy(), want, **tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_operands_contiguous_along_k_are_transposed_in_registers(dtype):
    """x @ W.T's weight rows are contiguous along k: its column panels (two vectors wide) are packed
    by the support library's register transpose, a row-major B by plain copies; both on sizes with
    a partial last panel, K not a multiple of the transpose block, and a batch."""
    rng = np.random.default_rng(11)
    for x_shape, n, k in (((37, 203), 45, 203), ((3, 9, 131), 70, 131)):
        x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal((n, k)).astype(dtype)
        product = fg.tensor(x) @ fg.tensor(w).T
        (item,) = create_schedule([product._node])
        source = CRenderer().render_kernel(use_gemm(lower(item.spec, "k")))
        assert f"{gemm_c.pack_rows(dtype)}(" in source
        tol = dict(rtol=1e-4, atol=1e-3) if dtype == "float32" else dict(rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(product.numpy(), x @ w.T, **tol)
        np.testing.assert_allclose((fg.tensor(x) @ fg.tensor(w.T.copy())).numpy(), x @ w.T, **tol)


@pytest.mark.parametrize("padding", [1, (2, 0)])
def test_padded_convolutions_are_gemms(padding):
    """A padded window's load guards itself; the WHERE the padding adds around it is folded away so
    the product is still a GEMM (padded convolutions ran as plain loops before), right on odd sizes."""
    import torch
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((3, 5, 9, 7)).astype(np.float32), rng.standard_normal((6, 5, 3, 3)).astype(np.float32)
    out = fg.nn.functional.conv2d(fg.tensor(x), fg.tensor(w), padding=padding)
    assert uses_gemm(out)
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=padding).numpy()
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-4)


def gemm_kernels(*tensors: fg.Tensor) -> tuple[int, int]:
    """(kernels with a reduction, those of them that run the GEMM routine) realizing the tensors."""
    items = [it for it in create_schedule([t._node for t in tensors]) if it.alias_of is None]
    irs = [use_gemm(lower(it.spec, "k")) for it in items]
    reducing = [ir for ir in irs if any(type(s).__name__ in ("DefineAcc", "Gemm") for s in ir.stmts)]
    return len(reducing), sum(any(isinstance(s, Gemm) for s in ir.stmts) for ir in reducing)


def test_concatenated_products_are_gemms_and_the_concatenation_a_copy():
    """Attention's gradient concatenates three batched products (dq, dk, dv) back into the fused q/k/v
    projection's output; each runs the GEMM routine, and so do the products reading the concatenation
    (fused, they were guarded loop nests of one kernel that the GEMM routine could not take)."""
    b, t, c, heads = 4, 64, 64, 4
    rng = np.random.default_rng(0)
    x = rng.standard_normal((b, t, c)).astype(np.float32)
    w = (rng.standard_normal((c, 3 * c)) * 0.1).astype(np.float32)

    fx, fw = fg.tensor(x), fg.tensor(w, requires_grad=True)
    (grad,) = fg.autograd.grad(helpers.qkv_attention(fg, fx, fw, heads), [fw])  # lazy: its kernels can be looked at
    reducing, gemms = gemm_kernels(grad)
    assert reducing - gemms <= 3, (reducing, gemms)  # the softmax's max and sum, and its gradient's row sums
    tw = torch.tensor(w, requires_grad=True)
    helpers.qkv_attention(torch, torch.tensor(x), tw, heads).backward()
    np.testing.assert_allclose(grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_products_after_a_layer_norm_are_gemms(activation):
    """A transformer MLP: the layer norm's output, broadcast across the first product's 512 columns,
    is stored once instead of recomputed per column, so the forward product and both weight
    gradients run the GEMM routine (recomputed, each was a plain loop nest)."""
    x = fg.tensor(np.random.default_rng(0).standard_normal((8, 64, 128)).astype(np.float32))
    w1 = fg.tensor(np.random.default_rng(1).standard_normal((512, 128)).astype(np.float32) * 0.05, requires_grad=True)
    w2 = fg.tensor(np.random.default_rng(2).standard_normal((128, 512)).astype(np.float32) * 0.05, requires_grad=True)
    norm = fg.nn.LayerNorm(128)
    act = getattr(fg.nn.functional, activation)
    y = fg.nn.functional.linear(act(fg.nn.functional.linear(norm(x), w1)), w2)
    grads = fg.autograd.grad(y.square().sum(), [w1, w2])
    reducing, gemms = gemm_kernels(*grads)
    assert reducing - gemms <= 2, (reducing, gemms)  # the layer norm's mean and variance
    tx, tw1, tw2 = (torch.tensor(t.detach().numpy(), requires_grad=True) for t in (x, w1, w2))
    tact = getattr(torch.nn.functional, activation)
    TF = torch.nn.functional
    ty = TF.linear(tact(TF.linear(TF.layer_norm(tx, (128,)), tw1)), tw2)
    ty.square().sum().backward()
    for g, t in zip(grads, (tw1, tw2)):
        np.testing.assert_allclose(g.numpy(), t.grad.numpy(), rtol=1e-3, atol=1e-3)


def test_a_tied_weights_product_gradient_is_a_gemm():
    """A language model's head shares the embedding's matrix: its gradient adds the head's product
    (hidden states x logit gradients) to the embedding's scatter-add. The product runs the GEMM
    routine on its own (fused with the other, neither was a GEMM)."""
    rng = np.random.default_rng(0)
    weight = fg.tensor(rng.standard_normal((65, 128)).astype(np.float32) * 0.1, requires_grad=True)
    tokens, targets = (fg.tensor(rng.integers(0, 65, (512,))) for _ in range(2))
    hidden = fg.nn.functional.embedding(tokens, weight).tanh()
    loss = fg.nn.functional.cross_entropy(hidden @ weight.T, targets)
    (grad,) = fg.autograd.grad(loss, [weight])
    items = [it for it in create_schedule([grad._node]) if it.alias_of is None and it.spec.root.op not in FUSED]
    gemm_sizes = [it.spec.root.numel for it in items
                  if any(isinstance(s, Gemm) for s in use_gemm(lower(it.spec, "k")).stmts)]
    assert 65 * 128 in gemm_sizes, gemm_sizes
    tw = torch.tensor(weight.detach().numpy(), requires_grad=True)
    th = torch.nn.functional.embedding(torch.tensor(tokens.numpy()), tw).tanh()
    torch.nn.functional.cross_entropy(th @ tw.T, torch.tensor(targets.numpy())).backward()
    np.testing.assert_allclose(grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch", [4, 32])
def test_each_batch_elements_epilogue_follows_its_product(batch):
    """With many batch elements (attention's score gradients per head) each element's epilogue runs
    right after its product, while the sums are in cache; with few, as one pass after all of them.
    Both give torch's numbers."""
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((batch, 40, 24)), rng.standard_normal((batch, 24, 36))
    c = rng.standard_normal((batch, 40, 36))
    out = ((fg.tensor(a) @ fg.tensor(b)) + 1).relu() * fg.tensor(c)
    ir = use_gemm(lower(create_schedule([out._node])[0].spec, "k"))
    at = next(i for i, s in enumerate(ir.stmts) if isinstance(s, Gemm))
    assert isinstance(ir.stmts[at + 1], Loop) == (batch >= 16)  # the epilogue's loops inside the batch loop
    want = ((torch.tensor(a) @ torch.tensor(b)) + 1).relu() * torch.tensor(c)
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    # a bfloat16 product sums into a float32 scratch; its rounding into the output follows each product too
    half = _bf16(a) @ _bf16(b)
    ir = use_gemm(lower(create_schedule([half._node])[0].spec, "k"))
    at = next(i for i, s in enumerate(ir.stmts) if isinstance(s, Gemm))
    assert ir.stmts[at].c_param != 0 and isinstance(ir.stmts[at + 1], Loop) == (batch >= 16)
    exact = _bf16(a).float().numpy().astype(np.float64) @ _bf16(b).float().numpy().astype(np.float64)
    np.testing.assert_allclose(half.float().numpy(), _round_bf16(exact), rtol=2.0 ** -7, atol=1e-6)


def _bf16(a: np.ndarray) -> fg.Tensor:
    return fg.tensor(a.astype(np.float32)).to(fg.bfloat16).realize()


def _round_bf16(a: np.ndarray) -> np.ndarray:
    return torch.from_numpy(a).bfloat16().double().numpy()


BF16_PRODUCTS = {  # name: (operand shapes, fusegrad function, numpy function on float64)
    "odd": (((37, 203), (203, 45)), lambda a, b: a @ b, lambda a, b: a @ b),
    "transposed": (((70, 33), (50, 70)), lambda a, b: a.T @ b.T, lambda a, b: a.T @ b.T),
    "x @ W.T": (((3, 9, 131), (70, 131)), lambda a, b: a @ b.T, lambda a, b: a @ b.T),
    "panels": (((40, 2500), (2500, 36)), lambda a, b: a @ b, lambda a, b: a @ b),  # K in three panels
    "epilogue": (((64, 96), (96, 80)), lambda a, b: (a @ b + 1).relu(),  # the product rounds before the add
                 lambda a, b: np.maximum(_round_bf16(a @ b) + 1, 0)),
    "batched": (((4, 48, 40), (4, 40, 33)), lambda a, b: a @ b, lambda a, b: a @ b),
    # windows: gathered per panel from offset tables (a strided convolution), and packed element by element
    # (unfolded, its index in divisions)
    "strided conv2d": (((2, 8, 13, 11), (16, 8, 3, 3)), lambda a, b: fg.nn.functional.conv2d(a, b, stride=2),
                       lambda a, b: torch.nn.functional.conv2d(torch.from_numpy(a), torch.from_numpy(b),
                                                               stride=2).numpy()),
    "windows @ W": (((2, 8, 9, 11), (72, 20)), lambda a, b: fg.nn.functional.unfold(a, 3).transpose(1, 2) @ b,
                    lambda a, b: torch.nn.functional.unfold(torch.from_numpy(a), 3).transpose(1, 2).numpy() @ b),
}


BF16_UNITS = ["amx", "avx512_bf16", "float32 panels"]


def _use_bf16_unit(unit: str, monkeypatch) -> None:
    """Run bfloat16 products on `unit` ("float32 panels": none), skipping where this CPU lacks it."""
    if unit != "float32 panels" and unit not in gemm_c.bf16_units():
        pytest.skip(f"this CPU has no {unit} unit for bfloat16 products (or Linux did not grant it)")
    monkeypatch.setattr(gemm_c, "bf16_unit", lambda: None if unit == "float32 panels" else unit)


def _conv_reference(x: np.ndarray, w: np.ndarray, padding: int) -> np.ndarray:
    return torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=padding).numpy()


@pytest.mark.parametrize("tiles", BF16_UNITS)
@pytest.mark.parametrize("case", [*BF16_PRODUCTS, "conv2d"])
def test_bfloat16_products_sum_exact_products_in_float32(case, tiles, monkeypatch):
    """bfloat16 GEMMs (each bfloat16 unit the CPU has, float32 panels on any CPU) on odd sizes,
    transposed and batched operands, K in several panels, an epilogue and a padded convolution's
    windows: the float64 product of the same bfloat16 values, rounded once to bfloat16."""
    _use_bf16_unit(tiles, monkeypatch)
    rng = np.random.default_rng(5)
    if case == "conv2d":
        shapes, fn = ((2, 8, 11, 13), (16, 8, 3, 3)), lambda a, b: fg.nn.functional.conv2d(a, b, padding=1)
        want_fn = lambda a, b: _conv_reference(a, b, 1)  # noqa: E731
    else:
        shapes, fn, want_fn = BF16_PRODUCTS[case]
    arrays = [rng.uniform(-2, 2, s) for s in shapes]
    ops = [_bf16(a) for a in arrays]
    exact = [o.float().numpy().astype(np.float64) for o in ops]
    got = fn(*ops)
    assert got.dtype == fg.bfloat16
    want = fg.tensor(want_fn(*exact).astype(np.float32)).to(fg.bfloat16).float().numpy()
    # sums in another order may round to the neighbouring bfloat16 value: one unit in the last place
    np.testing.assert_allclose(got.float().numpy(), want, rtol=2.0 ** -7, atol=1e-6)


@pytest.mark.parametrize("unit", BF16_UNITS[:-1])
def test_bfloat16_products_run_on_the_units_micro_kernel(unit, monkeypatch):
    _use_bf16_unit(unit, monkeypatch)
    a, b = _bf16(np.ones((64, 96))), _bf16(np.ones((96, 80)))
    (item,) = create_schedule([(a @ b)._node])
    source = CRenderer().render_kernel(use_gemm(lower(item.spec, "k")))
    assert f"{gemm_c.BF16_MICRO[unit]}(" in source and ("fg_amx_begin();" in source) == (unit == "amx")
    # a K below the unit's shallowest depth (mostly zero padding in its steps) stays on float32 panels
    shallow = _bf16(np.ones((64, 9))) @ _bf16(np.ones((9, 80)))
    (item,) = create_schedule([shallow._node])
    source = CRenderer().render_kernel(use_gemm(lower(item.spec, "k")))
    assert (gemm_c.BF16_MICRO[unit] in source) == (9 >= gemm_c.BF16_MIN_DEPTH[unit])
    np.testing.assert_array_equal(shallow.float().numpy(), np.full((64, 80), 9.0))
    np.testing.assert_array_equal((a @ b).float().numpy(), np.full((64, 80), 96.0))
    # a convolution's weights, the same for every image, are packed into the panels' layout once
    x, w = _bf16(np.ones((3, 8, 12, 12))), _bf16(np.ones((32, 8, 3, 3)))
    conv = fg.nn.functional.conv2d(x, w)
    sources = [CRenderer().render_kernel(use_gemm(lower(it.spec, "k"))) for it in create_schedule([conv._node])]
    assert any("fg_pack_scratch(2" in src and gemm_c.BF16_MICRO[unit] in src for src in sources)
    np.testing.assert_array_equal(conv.float().numpy(), np.full((3, 32, 10, 10), 72.0))


@pytest.mark.parametrize("tiles", BF16_UNITS)
def test_a_strided_float32_operand_rounded_in_the_kernel_packs_its_rounded_values(tiles, monkeypatch):
    """An operand no packing routine takes (strided along both its rows and its sums) is packed by the
    generated loops, each float32 value rounded to bfloat16 as it is packed: the product equals the
    product of the rounded values, summed in float32 and rounded once."""
    _use_bf16_unit(tiles, monkeypatch)
    rng = np.random.default_rng(4)
    xa = rng.uniform(-2, 2, (192, 300)).astype(np.float32)
    w = _bf16(rng.uniform(-2, 2, (70, 96)))
    out = fg.tensor(xa)[::2, ::2].T.to(fg.bfloat16) @ w.T
    exact = _round_bf16(xa[::2, ::2].T.astype(np.float64)) @ w.float().numpy().astype(np.float64).T
    want = fg.tensor(exact.astype(np.float32)).to(fg.bfloat16).float().numpy()
    np.testing.assert_allclose(out.float().numpy(), want, rtol=2.0 ** -7, atol=1e-6)


@pytest.mark.parametrize("tiles", BF16_UNITS)
def test_float32_operands_rounded_to_bfloat16_in_the_kernel_are_gemms(tiles, monkeypatch):
    """autocast's cast of a float32 weight fuses into the product's kernel: the GEMM packs the weight
    rounded to bfloat16 (no plain loops), as the product of the rounded values."""
    _use_bf16_unit(tiles, monkeypatch)
    rng = np.random.default_rng(3)
    x = _bf16(rng.uniform(-2, 2, (150, 96)))
    w = fg.tensor(rng.uniform(-2, 2, (70, 96)).astype(np.float32)).realize()
    out = x @ w.to(fg.bfloat16).T
    (item,) = create_schedule([out._node])
    assert any(isinstance(s, Gemm) for s in use_gemm(lower(item.spec, "k")).stmts)
    exact = x.float().numpy().astype(np.float64) @ _round_bf16(w.numpy().astype(np.float64)).T
    want = fg.tensor(exact.astype(np.float32)).to(fg.bfloat16).float().numpy()
    np.testing.assert_allclose(out.float().numpy(), want, rtol=2.0 ** -7, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("m, k, n", [(9, 43264, 32), (7, 20011, 40), (14, 5001, 48), (70, 9001, 200)])
def test_few_tiles_or_a_long_k_split_k_among_threads(dtype, m, k, n, monkeypatch):
    """A product of few C tiles and many K panels (a first convolution layer's weight gradient), or of a
    long K into a small C (a later layer's), sums K ranges into partial Cs added in order: results match
    numpy on odd sizes with a K not divisible by the ranges, and are the same bits at one and two threads.
    Integer products are no GEMM."""
    from fusegrad.engine import tune
    monkeypatch.setattr(realize_module, "_programs", {})
    monkeypatch.setattr(realize_module, "_plans", {})
    monkeypatch.setattr(tune, "_vendor_decided", {})
    monkeypatch.setattr(gemm_c, "VENDOR", set())
    for shape in ((dtype, m, n, k), (dtype, n, m, k)):  # the generated kernel, not the vendor BLAS's sums
        tune._decide(shape, False)
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    if dtype == "int64":
        a, b = (a * 4).astype(dtype), (b * 4).astype(dtype)
    product = fg.tensor(a.astype(dtype)) @ fg.tensor(b.astype(dtype))
    (item,) = create_schedule([product._node])
    source = CRenderer().render_kernel(use_gemm(lower(item.spec, "k")))
    floating = dtype != "int64"
    assert ("fg_pack_scratch(4" in source) == floating
    assert not floating or gemm_c.k_splits(m, n, k, dtype) > 1
    before = fg.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            fg.set_num_threads(threads)
            results.append((fg.tensor(a.astype(dtype)) @ fg.tensor(b.astype(dtype))).numpy())
    finally:
        fg.set_num_threads(before)
    want = a.astype(dtype) @ b.astype(dtype)
    if floating:
        tol = dict(rtol=1e-4, atol=1e-2) if dtype == "float32" else dict(rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(results[0], want, **tol)
        np.testing.assert_array_equal(results[0], results[1])
    else:
        np.testing.assert_array_equal(results[0], want)
        np.testing.assert_array_equal(results[1], want)


def test_split_k_is_left_to_products_of_many_tiles_or_short_k():
    """Products with tiles for every thread and a large C, or too few panels to split, keep the shared
    panels; a long K into a small C (a weight gradient over batch x positions) splits whatever its tiles."""
    assert gemm_c.k_splits(2048, 2048, 100000, "float32") == 1
    assert gemm_c.k_splits(256, 256, 2000, "float32") == 1
    assert gemm_c.k_splits(9, 32, 300, "float32") == 1
    assert gemm_c.k_splits(64, 576, 25088, "float32") > 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_first_layer_weight_gradient_splits_k(dtype):
    """The weight gradient of a one-channel convolution (few outputs, batch x positions terms) takes
    the split path and matches torch, stride and padding included."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((37, 1, 29, 31)), rng.standard_normal((7, 1, 5, 5))
    tx, tw = torch.tensor(x, dtype=dtype), torch.tensor(w, dtype=dtype, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, padding=2)
    gy = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(gy, dtype=dtype))
    name = str(dtype).removeprefix("torch.")
    b = fg.tensor(w.astype(name)).requires_grad_()
    grad = fg.autograd.grad(fg.nn.functional.conv2d(fg.tensor(x.astype(name)), b, padding=2), [b],
                            fg.tensor(gy.astype(name)))[0]
    sources = [CRenderer().render_kernel(use_gemm(lower(it.spec, "k"))) for it in create_schedule([grad._node])]
    assert any("fg_pack_scratch(4" in src for src in sources)
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(grad.numpy(), tw.grad.numpy(), **tol)

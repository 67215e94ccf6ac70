"""The GPT model against the same model written in PyTorch with copied weights, and its generation."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import fusegrad as fg
from fusegrad.models import GPT, GPTConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import gpt_torch  # noqa: E402  (the benchmarks folder is not a package)


def twins(config: GPTConfig) -> tuple[GPT, gpt_torch.TorchGPT]:
    """A fusegrad GPT and the benchmark's PyTorch twin holding the same weights."""
    fg.manual_seed(0)
    model = GPT(config)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    return model, gpt_torch.load_fusegrad_state(gpt_torch.TorchGPT(config), state)


CONFIG = GPTConfig(vocab_size=23, block_size=12, n_layer=2, n_head=2, n_embd=16)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_logits_loss_and_gradients_match_pytorch(bias):
    config = GPTConfig(**{**CONFIG.__dict__, "bias": bias})
    model, twin = twins(config)
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 23, (3, 12)), rng.integers(0, 23, (3, 12))
    logits, loss = model(fg.tensor(idx), fg.tensor(targets))
    t_logits, t_loss = twin(torch.tensor(idx), torch.tensor(targets))
    np.testing.assert_allclose(logits.numpy(), t_logits.detach().numpy(), rtol=1e-4, atol=1e-5)
    assert loss.item() == pytest.approx(t_loss.item(), rel=1e-5)
    loss.backward()
    t_loss.backward()
    grads = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads[name].grad.numpy(), rtol=1e-3, atol=1e-6, err_msg=name)


def test_initialization_follows_gpt2():
    fg.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=4, n_head=4, n_embd=64))
    params = dict(model.named_parameters())
    assert model.lm_head.weight is model.transformer.wte.weight
    assert params["transformer.wte.weight"].numpy().std() == pytest.approx(0.02, rel=0.1)
    assert params["transformer.h.0.mlp.c_proj.weight"].numpy().std() == pytest.approx(0.02 / math.sqrt(8), rel=0.1)
    assert not params["transformer.h.0.attn.c_attn.bias"].numpy().any()
    assert model.num_parameters() == sum(p.numel() for p in model.parameters()) - 32 * 64


def test_configuration_errors():
    with pytest.raises(ValueError, match="multiple of n_head"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="unknown GPT config"):
        GPTConfig.named("huge")
    model = GPT(CONFIG)
    with pytest.raises(ValueError, match="longer than the block size"):
        model(fg.zeros(1, 13, dtype=fg.int64))
    with pytest.raises(ValueError, match="top_k"):
        model.generate(fg.zeros(1, 2, dtype=fg.int64), 3, top_k=0)


def test_weight_decay_goes_to_matrices_only():
    model = GPT(CONFIG)
    opt = model.configure_optimizers(0.1, 1e-3)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decayed["params"]) and all(p.ndim < 2 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


def torch_greedy(twin: gpt_torch.TorchGPT, idx: np.ndarray, new: int, block_size: int) -> np.ndarray:
    out = torch.tensor(idx)
    with torch.no_grad():
        for _ in range(new):
            window = out[:, -block_size:]
            logits, _ = twin(window, torch.zeros_like(window))
            out = torch.cat([out, logits[:, -1:].argmax(-1)], 1)
    return out.numpy()


def test_generation_with_and_without_the_cache_gives_the_same_tokens_as_pytorch():
    model, twin = twins(CONFIG)
    prompt = np.random.default_rng(2).integers(0, 23, (2, 3))
    new = 15  # past the block size of 12: the last steps run the cropped window
    cached = model.generate(fg.tensor(prompt), new, temperature=0).numpy()
    plain = model.generate(fg.tensor(prompt), new, temperature=0, use_cache=False).numpy()
    np.testing.assert_array_equal(cached, plain)
    np.testing.assert_array_equal(cached, torch_greedy(twin, prompt, new, CONFIG.block_size))
    fg.manual_seed(9)
    sampled = model.generate(fg.tensor(prompt), new, temperature=0.9, top_k=5).numpy()
    fg.manual_seed(9)
    np.testing.assert_array_equal(sampled, model.generate(fg.tensor(prompt), new, temperature=0.9, top_k=5,
                                                          use_cache=False).numpy())


def test_cached_generation_replays_one_step_however_long_the_text():
    model = GPT(CONFIG)
    prompt = fg.tensor([[1, 2]])
    out = model.generate(prompt, 9, temperature=0)
    assert out.shape == (1, 11) and not out.requires_grad
    captures = model._step.captures
    model.generate(prompt, 9, temperature=0)
    model.generate(fg.tensor([[4, 5, 6, 7]]), 5, temperature=0)  # another prompt length: same steps
    assert model._step.captures == captures <= 2  # a prompt's step (no sampling) and a sampling step
    assert model._step.replays >= 20
    model.generate(prompt, 30, temperature=0)  # past the block size of 12: the sliding window's step
    assert model._window_step.captures == 1 and model._window_step.replays == 30 - 10 - 1


def test_fifty_jitted_training_steps_give_pytorchs_losses():
    """AdamW with decay on the matrices, gradient clipping, the same batches: fusegrad's jitted steps
    and the PyTorch twin's eager steps print the same 50 losses within 1e-3 (float32)."""
    config = GPTConfig(vocab_size=23, block_size=16, n_layer=2, n_head=2, n_embd=32)
    model, twin = twins(config)
    opt = model.configure_optimizers(0.1, 3e-3, (0.9, 0.95))
    t_opt = twin.configure_optimizers(0.1, 3e-3, (0.9, 0.95))
    params = list(model.parameters())

    @fg.jit
    def step(x: fg.Tensor, y: fg.Tensor) -> fg.Tensor:
        opt.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        fg.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss

    rng = np.random.default_rng(1)
    text = np.where(rng.random(4000) < 0.1, rng.integers(0, 23, 4000), np.arange(4000) * 5 % 23)  # learnable
    ours, theirs = [], []
    for _ in range(50):
        starts = rng.integers(0, len(text) - 17, 8)
        x = np.stack([text[s:s + 16] for s in starts])
        y = np.stack([text[s + 1:s + 17] for s in starts])
        ours.append(step(fg.tensor(x), fg.tensor(y)).item())
        t_opt.zero_grad()
        _, t_loss = twin(torch.tensor(x), torch.tensor(y))
        t_loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
        t_opt.step()
        theirs.append(t_loss.item())
    assert step.replays >= 40
    np.testing.assert_allclose(ours, theirs, rtol=1e-3)
    assert theirs[-1] < theirs[0] - 0.3  # it learned something: the comparison is not of constants

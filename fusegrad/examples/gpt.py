"""Train a character-level GPT on Shakespeare (or any text file) and sample from it.

    python -m fusegrad.examples.gpt                     # the tiny model on Shakespeare, a few minutes on a CPU
    python -m fusegrad.examples.gpt --text notes.txt --steps 2000 --checkpoint gpt.safetensors
    python -m fusegrad.examples.gpt --resume gpt.safetensors --sample-only --prompt "ROMEO:"
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

import fusegrad as fg
from fusegrad.examples.cli import run_main
from fusegrad.examples.progress import progress
from fusegrad.models import GPT, GPTConfig
from fusegrad.models.gpt import CONFIGS

# the fields that shape the parameters: a checkpoint must agree on them (dropout may change on resume)
ARCHITECTURE = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "bias")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fusegrad.examples.gpt", description=__doc__.splitlines()[0])
    p.add_argument("--text", metavar="PATH", default=None, help="train on this UTF-8 file (default: Shakespeare)")
    p.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    for name in ("n-layer", "n-head", "n-embd", "block-size"):
        p.add_argument(f"--{name}", type=int, default=None, help=f"override the config's {name.replace('-', '_')}")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--bias", action=argparse.BooleanOptionalAction, default=True,
                   help="biases in the Linear and LayerNorm layers")
    p.add_argument("--steps", type=int, default=2000, help="train until this many steps are done in all")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate, reached after --warmup steps")
    p.add_argument("--min-lr", type=float, default=3e-4, help="where the cosine decay ends")
    p.add_argument("--warmup", type=int, default=20, help="steps of linear warm-up")
    p.add_argument("--decay-steps", type=int, default=None, help="steps of warm-up plus decay (default: --steps)")
    p.add_argument("--weight-decay", type=float, default=0.1, help="AdamW's decay, on matrices only")
    p.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradients' joint norm to this (0: off)")
    p.add_argument("--eval-interval", type=int, default=500, help="estimate the validation loss every N steps")
    p.add_argument("--eval-iters", type=int, default=10, help="batches per validation estimate")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", default="cpu", help="cpu, cuda or opencl")
    p.add_argument("--autocast", choices=("bfloat16", "float16"), default=None,
                   help="mixed precision: forward and loss under fg.autocast of this dtype (float16 with loss scaling)")
    p.add_argument("--no-jit", dest="jit", action="store_false",
                   help="run each training step eagerly instead of replaying it with fg.jit")
    p.add_argument("--checkpoint", metavar="PATH", default=None, help="save everything here at each eval and the end")
    p.add_argument("--resume", metavar="PATH", default=None, help="continue from a checkpoint written by --checkpoint")
    p.add_argument("--profile", action="store_true",
                   help="print the kernel profile of the training loop (steps and evaluations)")
    p.add_argument("--tensorboard", metavar="DIR", default=None,
                   help="log train loss, learning rate, tokens/s (each step) and val loss (each eval) here")
    p.add_argument("--prompt", default="\n", help="the text the sample continues")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (0: the likeliest token)")
    p.add_argument("--top-k", type=int, default=200, help="sample among the k likeliest tokens (0: all)")
    p.add_argument("--max-new-tokens", type=int, default=500, help="characters to sample at the end")
    p.add_argument("--no-kv-cache", dest="kv_cache", action="store_false",
                   help="sample by running the whole window each step instead of replaying a cached step")
    p.add_argument("--sample-only", action="store_true", help="only sample from the --resume checkpoint")
    args = p.parse_args(argv)
    positive = ["steps", "batch_size", "eval_interval", "eval_iters", "n_layer", "n_head", "n_embd", "block_size"]
    for name in positive + ["decay_steps"]:
        value = getattr(args, name)
        if value is not None and value <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    for name in ("warmup", "min_lr", "weight_decay", "grad_clip", "temperature", "top_k", "max_new_tokens"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must not be negative")
    if args.lr <= 0:
        p.error("--lr must be positive")
    if not 0.0 <= args.dropout < 1.0:
        p.error("--dropout must be in [0, 1)")
    if args.sample_only and not args.resume:
        p.error("--sample-only needs --resume PATH")
    if args.decay_steps is None:
        args.decay_steps = args.steps
    return args


def build_config(args: argparse.Namespace, vocab_size: int) -> GPTConfig:
    overrides = {name: getattr(args, name) for name in ("n_layer", "n_head", "n_embd", "block_size")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return GPTConfig.named(args.config, vocab_size=vocab_size, dropout=args.dropout, bias=args.bias, **overrides)


def learning_rate(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up to --lr, then cosine decay to --min-lr at --decay-steps, then --min-lr."""
    if step < args.warmup:
        return args.lr * (step + 1) / (args.warmup + 1)
    if step >= args.decay_steps:
        return args.min_lr
    progress_ = (step - args.warmup) / max(args.decay_steps - args.warmup, 1)
    return args.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress_)) * (args.lr - args.min_lr)


@dataclass
class Run:
    """What a training run produced: every step's loss, the validation estimates, the sample."""

    losses: list[float] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    summary: str = ""
    sample: str = ""


def save_checkpoint(path: str, model: GPT, opt: Any, step: int, data_rng: np.random.Generator,
                    vocab: list[str], scaler: Any) -> None:
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
             "data_rng": data_rng.bit_generator.state, "rng": fg.get_rng_state(),
             "config": dataclasses.asdict(model.config), "vocab": "".join(vocab)}
    if scaler.is_enabled():
        state["scaler"] = scaler.state_dict()
    fg.save(state, path)


def load_checkpoint(path: str, model: GPT, opt: Any, data_rng: np.random.Generator, vocab: list[str],
                    scaler: Any) -> int:
    """Restore a checkpoint into the run after checking it was written for this model and vocabulary;
    returns the number of steps it had done."""
    state = fg.load(path)
    if state.get("vocab") != "".join(vocab):
        raise ValueError(f"checkpoint {path} does not match this text: its vocabulary of "
                         f"{len(state.get('vocab', ''))} characters differs from the corpus's {len(vocab)}")
    config = state.get("config", {})
    differ = [f"{k} {config.get(k)} != {getattr(model.config, k)}" for k in ARCHITECTURE
              if config.get(k) != getattr(model.config, k)]
    if differ:
        raise ValueError(f"checkpoint {path} does not match this model (checkpoint vs. flags: {', '.join(differ)}); "
                         "pass the --config/--n-layer/--n-head/--n-embd/--block-size/--bias it was trained with")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    data_rng.bit_generator.state = state["data_rng"]
    fg.set_rng_state(state["rng"])
    if scaler.is_enabled() and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    return int(state["step"])


def estimate_loss(model: GPT, loss_of: Any, val: Any, args: argparse.Namespace) -> float:
    """The mean of `loss_of(x, y)` over --eval-iters validation batches; the same batches every time (their
    own seed), so estimates are comparable and the training data stream is untouched."""
    rng = np.random.default_rng(args.seed + 1)
    model.eval()
    with fg.no_grad():
        total = sum(loss_of(*val.random_batch(args.batch_size, rng, args.device)).item()
                    for _ in range(args.eval_iters))
    model.train()
    return total / args.eval_iters


def sample(model: GPT, corpus: Any, args: argparse.Namespace) -> str:
    """--max-new-tokens characters after --prompt, decoded; a prompt character outside the vocabulary raises."""
    if not args.prompt:
        raise ValueError("--prompt must hold at least one character")
    ids = corpus.encode(args.prompt)[-model.config.block_size:]
    top_k = min(args.top_k, corpus.vocab_size) if args.top_k else None
    model.eval()
    idx = fg.tensor(ids[None, :], dtype=fg.int64, device=args.device)
    out = model.generate(idx, args.max_new_tokens, temperature=args.temperature, top_k=top_k,
                         use_cache=args.kv_cache)
    return corpus.decode(out[0])


def load_corpus(args: argparse.Namespace) -> Any:
    return fg.data.CharCorpus.from_file(args.text) if args.text else fg.data.Shakespeare()


def train(args: argparse.Namespace) -> Run:
    began = time.perf_counter()
    fg.manual_seed(args.seed)
    data_rng = np.random.default_rng(args.seed)
    corpus = load_corpus(args)
    config = build_config(args, corpus.vocab_size)
    train_set, val_set = corpus.split("train", config.block_size), corpus.split("val", config.block_size)
    model = GPT(config).to(args.device)
    opt = model.configure_optimizers(args.weight_decay, args.lr, betas=(0.9, 0.95))
    # float16's narrow exponent range needs loss scaling; bfloat16 has float32's range and needs none (a
    # disabled scaler passes everything through, as torch's does)
    scaler = fg.amp.GradScaler(args.device.split(":")[0], enabled=args.autocast == "float16")
    step = load_checkpoint(args.resume, model, opt, data_rng, corpus.vocab, scaler) if args.resume else 0
    print(f"{corpus.name}: {len(corpus.tokens):,} characters, vocabulary of {corpus.vocab_size}; "
          f"GPT {config.n_layer} layers x {config.n_head} heads x {config.n_embd}, block {config.block_size}, "
          f"{model.num_parameters():,} parameters", flush=True)
    run = Run()
    if not args.sample_only:
        train_loop(args, model, opt, step, data_rng, train_set, val_set, corpus.vocab, run, scaler)
        print(f"{run.summary}, wall time {time.perf_counter() - began:.1f}s", flush=True)
    run.sample = sample(model, corpus, args)
    print(f"---- sample ({args.max_new_tokens} characters, temperature {args.temperature}) ----", flush=True)
    print(run.sample, flush=True)
    return run


def train_loop(args: argparse.Namespace, model: GPT, opt: Any, start: int, data_rng: np.random.Generator,
               train_set: Any, val_set: Any, vocab: list[str], run: Run, scaler: Any) -> None:
    """Steps `start` to --steps, evaluating and checkpointing every --eval-interval steps and at the end."""
    params = list(model.parameters())
    device_type = args.device.split(":")[0]

    def mixed() -> Any:
        """The forward's precision: fg.autocast of --autocast's dtype, or float32 throughout."""
        if args.autocast is None:
            return contextlib.nullcontext()
        return fg.autocast(device_type, dtype=getattr(fg, args.autocast))

    def train_step(x: fg.Tensor, y: fg.Tensor) -> fg.Tensor:
        opt.zero_grad()
        with mixed():
            _, loss = model(x, y)
        # torch.amp's recipe; the skip of an overflowed step and the next scale are decided on the device
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        if args.grad_clip:
            fg.nn.utils.clip_grad_norm_(params, args.grad_clip)
        scaler.step(opt)
        scaler.update()
        return loss

    def val_loss_of(x: fg.Tensor, y: fg.Tensor) -> fg.Tensor:
        with mixed():
            return model(x, y)[1]

    step_fn = fg.jit(train_step) if args.jit else train_step
    eval_fn = fg.jit(val_loss_of) if args.jit else val_loss_of  # reads the parameters the step updates
    writer = fg.tensorboard.SummaryWriter(args.tensorboard) if args.tensorboard else None
    tokens = args.batch_size * model.config.block_size
    train_time, val_loss = 0.0, float("nan")
    bar = progress(range(start, args.steps), total=max(args.steps - start, 0), desc="training")
    with fg.profile() if args.profile else contextlib.nullcontext() as profile:
        for step in bar:
            lr = learning_rate(step, args)
            for group in opt.param_groups:
                group["lr"] = lr
            t0 = time.perf_counter()
            loss = step_fn(*train_set.random_batch(args.batch_size, data_rng, args.device)).item()
            train_time += time.perf_counter() - t0
            run.losses.append(loss)
            done = len(run.losses)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tokens_per_s=f"{done * tokens / train_time:.0f}")
            if writer is not None:
                writer.add_scalar("loss/train", loss, step + 1)
                writer.add_scalar("learning_rate", lr, step + 1)
                writer.add_scalar("tokens_per_s", tokens * done / train_time, step + 1)
            if (step + 1) % args.eval_interval == 0 or step + 1 == args.steps:
                val_loss = estimate_loss(model, eval_fn, val_set, args)
                run.val_losses.append((step + 1, val_loss))
                recent = run.losses[-args.eval_interval:]
                bar.write(f"step {step + 1}: train loss {sum(recent) / len(recent):.4f}, val loss {val_loss:.4f}")
                if writer is not None:
                    writer.add_scalar("loss/val", val_loss, step + 1)
                    writer.flush()
                if args.checkpoint:
                    save_checkpoint(args.checkpoint, model, opt, step + 1, data_rng, vocab, scaler)
    bar.close()
    if args.profile:
        print(f"kernel profile of the training loop:\n{profile.table()}", flush=True)
    if writer is not None:
        writer.close()
    if not run.losses:  # a resumed run that was already done
        val_loss = estimate_loss(model, eval_fn, val_set, args)
        run.val_losses.append((start, val_loss))
    recent = run.losses[-args.eval_interval:] or [float("nan")]
    rate = tokens * len(run.losses) / train_time if train_time else 0.0
    run.summary = (f"{max(start, args.steps)} steps: train loss {sum(recent) / len(recent):.4f}, "
                   f"val loss {val_loss:.4f}, {rate:.0f} tokens/s")


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(train, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

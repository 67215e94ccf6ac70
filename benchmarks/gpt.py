"""GPT benchmark: fusegrad's GPT (`fusegrad.models.gpt`) training, attention and generation against PyTorch.

    python3 benchmarks/gpt.py [--config tiny] [--batch-size 16] [--threads 1,2] [--seconds 3] [--rounds 10]
    python3 benchmarks/gpt.py --device cuda      # config "baby", batch 64, torch.compile in three modes
    python3 benchmarks/gpt.py --device cuda --parts train --compile-modes reduce-overhead  # one mode
    python3 benchmarks/gpt.py --quick            # smoke run: tiny, batch 4, T 32, 0.3 s, 16 tokens, no torch.compile

Four parts (`--parts`), each a race of contestants in one child process per thread count, taking turns in
`--rounds` rounds after an untimed warm-up whose first call is reported apart (the method of mnist_mlp.py):
- train: one step = zero_grad, forward, cross-entropy, backward, clip_grad_norm_(1.0), AdamW (lr 6e-4,
  betas (0.9, 0.95), weight decay 0.1 on the matrices) on Shakespeare character windows (random tokens when
  the corpus is not in the cache). Contestants: fusegrad eager, fusegrad `fg.jit`, PyTorch eager,
  `torch.compile` of the whole step (mode "default"; on CUDA also "max-autotune-no-cudagraphs" and
  "reduce-overhead"), JAX (skipped with its reason). All start from the same weights (fusegrad's, copied
  through the state_dict into `gpt_torch.TorchGPT`) and take the same batches: the "1st loss" column agrees.
- attention: `F.scaled_dot_product_attention(q, k, v, is_causal=True)` forward and the gradients of q, k, v
  (`--attention B,H,T,D`), fusegrad eager and jit against torch's SDPA (on CUDA the flash backend when it
  takes the inputs, else the next one; the backend that ran is printed).
- generate: tokens/s sampling `--tokens` tokens at batch 1 from a 1-token prompt with top_k=1 (deterministic):
  fusegrad's `generate` (key/value cache, jitted step), PyTorch eager as nanoGPT samples (the cropped
  context runs whole for every token, no cache) and PyTorch with a key/value cache.
- cold: the first fusegrad eager training step in a fresh process with an empty kernel cache
  (FUSEGRAD_CACHE_DIR a new folder), then again with that cache warm, at the largest thread count asked
  for (a user's first step has the whole machine: its compiler runs on every core); and the sampling of
  --tokens tokens in a fresh process with another empty cache.

`--autocast bfloat16` (or float16) runs each training step's forward and loss under `fg.autocast` and
`torch.autocast` of that dtype (the mixed-precision issue's comparison), and the attention part on
q, k, v and the output's gradient of that dtype. `--device opencl` runs
fusegrad there and PyTorch on the CPU. `--quick` leaves torch.compile out: compiling
the GPT step takes it 40-100 s on a loaded 2-core machine (name it in `--peers` to race it anyway). The summary
gives median times, fusegrad's speedups (peer time / fusegrad time: above 1, fusegrad is faster) and the
targets of the GPT issue; the last line is the whole result as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any, Callable, Sequence

import numpy as np

import common
from common import Contestant, Skipped

PEERS = ("fusegrad", "torch", "torch.compile", "jax")
PARTS = ("train", "attention", "generate", "cold")
LR, BETAS, WEIGHT_DECAY, CLIP = 6e-4, (0.9, 0.95), 0.1, 1.0
BATCHES = 4  # prepared batches the steps cycle through
VOCAB = 65  # random tokens' vocabulary without the corpus (Shakespeare's is 70-odd characters)
ATTENTION = {"cpu": (16, 4, 128, 32), "cuda": (8, 12, 1024, 64)}
TARGETS = (  # (name, key in the summary, bound, "min" or "max") for CPU, tiny, batch 16
    ("jit step: torch eager / fusegrad jit", "jit_vs_torch_eager", 2.0, "min"),
    ("jit step: best torch.compile / fusegrad jit", "jit_vs_torch_compile", 1.3, "min"),
    ("generation tokens/s: fusegrad / torch eager", "generate_vs_torch_eager", 3.0, "min"),
    ("eager step: fusegrad eager / torch eager time", "eager_over_torch_eager", 1.5, "max"),
    ("first step, cold kernel cache (s)", "cold_first_step_s", 3.0, "max"),
    ("first step, warm kernel cache (s)", "warm_first_step_s", 0.5, "max"),
    ("sampling the tokens, cold kernel cache (s)", "cold_generate_s", 5.0, "max"),
)
GPU_TARGETS = (  # the same for CUDA, baby, batch 64, float32 on both sides
    ("jit step: best PyTorch mode / fusegrad jit", "jit_vs_best_torch", 1.3, "min"),
    ("attention fwd+bwd: torch sdpa / fusegrad jit", "attention_vs_sdpa", 1.0, "min"),
    ("generation tokens/s: fusegrad / torch eager", "generate_vs_torch_eager", 2.0, "min"),
)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "opencl"), help="fusegrad's device")
    p.add_argument("--config", default=None, choices=("tiny", "baby"), help="GPT size (tiny on CPU, baby on CUDA)")
    p.add_argument("--batch-size", type=int, default=None, help="training batch (16 for tiny, 64 for baby)")
    p.add_argument("--seq-len", type=int, default=None, help="training sequence length (the block size)")
    p.add_argument("--attention", default=None, help="B,H,T,D of the attention part (16,4,128,32 on CPU)")
    p.add_argument("--tokens", type=int, default=256, help="new tokens per generation")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts, one child process each")
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per contestant and part")
    p.add_argument("--rounds", type=int, default=10, help="turns the timed seconds are split into")
    p.add_argument("--peers", default=None, help=f"subset of {','.join(PEERS)} (default all; --quick: no compile)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"subset of {','.join(PARTS)}")
    p.add_argument("--autocast", default=None, choices=("bfloat16", "float16"),
                   help="train: forward and loss under fg.autocast / torch.autocast in this dtype on both sides")
    p.add_argument("--compile-modes", default=None,
                   help="torch.compile modes to race (default: default, and on CUDA also "
                        "max-autotune-no-cudagraphs,reduce-overhead)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny, batch 4, T 32, 1 thread, 0.3 s, 16 tokens")
    p.add_argument("--child-threads", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--cold-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cold-generate", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    gpu = args.device == "cuda"
    if args.quick:
        args.config, args.batch_size, args.seq_len, args.tokens = "tiny", 4, 32, 16
        args.threads, args.seconds, args.rounds = "1", 0.3, 2
        args.attention = args.attention or "2,4,32,32"
    args.config = args.config or ("baby" if gpu else "tiny")
    args.batch_size = args.batch_size or (64 if args.config == "baby" else 16)
    default_peers = [q for q in PEERS if not (args.quick and q == "torch.compile")]
    args.peers = [q.strip() for q in args.peers.split(",")] if args.peers else default_peers
    args.parts = [q.strip() for q in args.parts.split(",")]
    args.compile_modes = [q.strip() for q in args.compile_modes.split(",")] if args.compile_modes else \
        ["default"] + (["max-autotune-no-cudagraphs", "reduce-overhead"] if gpu else [])
    try:
        args.threads = [int(t) for t in str(args.threads).split(",")]
        args.attention = tuple(int(n) for n in (args.attention or ",".join(map(str, ATTENTION[
            "cuda" if gpu else "cpu"]))).split(","))
    except ValueError:
        p.error("--threads and --attention take comma-separated integers")
    if set(args.peers) - set(PEERS) or set(args.parts) - set(PARTS):
        p.error(f"--peers takes {','.join(PEERS)}; --parts takes {','.join(PARTS)}")
    if len(args.attention) != 4 or min(args.attention) <= 0:
        p.error("--attention takes four positive integers B,H,T,D")
    if min(args.threads) <= 0 or args.seconds <= 0 or args.rounds <= 0 or args.batch_size <= 0 or args.tokens <= 0:
        p.error("threads, seconds, rounds, batch size and tokens must be positive")
    return args


def gpt_config(args: argparse.Namespace, vocab_size: int) -> Any:
    from fusegrad.models import GPTConfig
    return GPTConfig.named(args.config, vocab_size=vocab_size)


def load_tokens() -> tuple[np.ndarray, int, str]:
    """Shakespeare's characters as token ids when the corpus is in the cache (never downloaded here),
    else random tokens; with the vocabulary size and where they came from."""
    import fusegrad as fg
    from fusegrad.data import Shakespeare
    try:
        corpus = Shakespeare(download=False)
    except fg.Error as e:
        tokens = np.random.default_rng(0).integers(0, VOCAB, 1 << 16)
        return tokens, VOCAB, f"random tokens (Shakespeare not in the cache: {str(e).split(';')[0]})"
    return corpus.tokens, corpus.vocab_size, f"Shakespeare characters ({corpus.vocab_size} tokens) from the cache"


def make_batches(tokens: np.ndarray, batch: int, seq_len: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` batches of (inputs, next-token targets), int64 (batch, seq_len), at seeded random offsets."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        rows = rng.integers(0, len(tokens) - seq_len - 1, batch)[:, None] + np.arange(seq_len + 1)
        windows = tokens[rows].astype(np.int64)
        out.append((windows[:, :-1], windows[:, 1:]))
    return out


# ---- the models, from the same weights ------------------------------------------------

def fusegrad_model(config: Any, device: str) -> Any:
    import fusegrad as fg
    from fusegrad.models import GPT
    fg.manual_seed(0)  # every fusegrad model starts from the same weights
    return GPT(config).to(device)


def torch_model(config: Any, state: dict[str, np.ndarray], device: str) -> Any:
    import gpt_torch
    return gpt_torch.load_fusegrad_state(gpt_torch.TorchGPT(config), state).to(device)


def torch_device(args: argparse.Namespace) -> str:
    return "cuda" if args.device == "cuda" else "cpu"  # with --device opencl, PyTorch runs on the CPU


def fusegrad_sync(device: str) -> Callable[[Any], Any]:
    """Wait for a fusegrad result (one tensor or a tuple) and the device's queue; a scalar comes back as numpy."""
    import fusegrad as fg
    from fusegrad.runtime import registry  # the device's own wait, as gpu_steps.py does
    queue = registry.get(device)

    def sync(out: Any) -> Any:
        outs = out if isinstance(out, tuple) else (out,)
        fg.realize(*outs)
        queue.synchronize()
        return outs[0].numpy() if outs[0].numel() == 1 else outs[0]
    return sync


def torch_sync(torch: Any, device: str) -> Callable[[Any], Any]:
    def sync(out: Any) -> Any:
        if device == "cuda":
            torch.cuda.synchronize()
        return out.detach() if not isinstance(out, tuple) else out[0].detach()
    return sync


# ---- part 1: training step ------------------------------------------------------------

def fusegrad_train(args: argparse.Namespace, config: Any, batches: list, skipped: Skipped) -> list[Contestant]:
    import fusegrad as fg
    from fusegrad.nn.utils import clip_grad_norm_

    def make_step() -> Callable[[Any, Any], Any]:
        model = fusegrad_model(config, args.device)
        opt = model.configure_optimizers(WEIGHT_DECAY, LR, BETAS)
        params = list(model.parameters())

        def train_step(x: Any, y: Any) -> Any:
            opt.zero_grad()
            with fg.autocast(fg.device(args.device).type, dtype=getattr(fg, args.autocast or "bfloat16"),
                             enabled=args.autocast is not None):
                _, loss = model(x, y)
            loss.backward()
            clip_grad_norm_(params, CLIP)
            opt.step()
            return loss
        return train_step

    data = [(fg.tensor(x, device=args.device), fg.tensor(y, device=args.device)) for x, y in batches]
    return [Contestant(name, _cycling(fn, data), fusegrad_sync(args.device))
            for name, fn in (("fusegrad eager", make_step()), ("fusegrad jit", fg.jit(make_step())))]


def torch_train(torch: Any, args: argparse.Namespace, config: Any, state: dict[str, np.ndarray], batches: list,
                skipped: Skipped) -> list[Contestant]:
    """PyTorch eager and torch.compile of the whole step in each of `--compile-modes`."""
    dev = torch_device(args)
    modes: list[str | None] = [None] if "torch" in args.peers else []
    if "torch.compile" in args.peers:
        modes += args.compile_modes
    else:
        skipped["torch.compile"] = "left out by --quick (compiling the step takes 40-100 s here)" if args.quick \
            else "not in --peers"
    data = [(torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)) for x, y in batches]
    out = []
    for mode in modes:
        model = torch_model(config, state, dev)
        opt = model.configure_optimizers(WEIGHT_DECAY, LR, BETAS)
        params = list(model.parameters())

        def train_step(x: Any, y: Any, model: Any = model, opt: Any = opt, params: list = params) -> Any:
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev, dtype=getattr(torch, args.autocast or "bfloat16"),
                                enabled=args.autocast is not None):
                _, loss = model(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, CLIP)
            opt.step()
            return loss
        fn: Callable[..., Any] = train_step
        name = "torch eager"
        if mode is not None:
            torch._dynamo.reset()
            fn = torch.compile(train_step, mode=mode, dynamic=False)
            name = "torch.compile" + ("" if mode == "default" else f" {mode}")
        if mode == "reduce-overhead":  # CUDA graphs: each call must say a new step begins (outputs get reused)
            fn = _marking_steps(torch, fn)
        sync = torch_sync(torch, dev)
        out.append(Contestant(name, _cycling(fn, data), lambda loss, sync=sync: float(sync(loss))))
    return out


def _marking_steps(torch: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
    def step(*a: Any) -> Any:
        torch.compiler.cudagraph_mark_step_begin()
        return fn(*a)
    return step


def _cycling(fn: Callable[..., Any], data: list[tuple[Any, ...]]) -> Callable[[], Any]:
    """A step taking the prepared batches in turn."""
    nxt = common.cycler(len(data))
    return lambda: fn(*data[nxt()])


# ---- part 2: attention ----------------------------------------------------------------

def attention_inputs(shape: tuple[int, ...]) -> list[np.ndarray]:
    """q, k, v and the output's gradient, float32 normal."""
    rng = np.random.default_rng(1)
    return [rng.standard_normal(shape, dtype=np.float32) for _ in range(4)]


def fusegrad_attention(args: argparse.Namespace, arrays: list[np.ndarray]) -> list[Contestant]:
    import fusegrad as fg
    from fusegrad.nn import functional as F
    dtype = args.autocast or "float32"  # under --autocast the attention part runs in that dtype
    q, k, v = (fg.tensor(a, dtype=dtype, device=args.device, requires_grad=True) for a in arrays[:3])
    dout = fg.tensor(arrays[3], dtype=dtype, device=args.device)

    def fwd_bwd(q: Any, k: Any, v: Any, dout: Any) -> tuple[Any, ...]:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return (out, *fg.autograd.grad(out, (q, k, v), dout))

    def computed(fn: Callable[..., tuple[Any, ...]]) -> Callable[[], tuple[Any, ...]]:
        def step() -> tuple[Any, ...]:
            out = fn(q, k, v, dout)
            fg.realize(*out)  # a lazy result left unrealized would never be computed: the round times each step
            return out
        return step

    sync = fusegrad_sync(args.device)
    return [Contestant(name, computed(fn), lambda out: (sync(out), out)[1])
            for name, fn in (("fusegrad eager", fwd_bwd), ("fusegrad jit", fg.jit(fwd_bwd)))]


def torch_attention(torch: Any, args: argparse.Namespace, arrays: list[np.ndarray]) -> tuple[list[Contestant], str]:
    """torch's SDPA forward and backward; on CUDA the first backend of flash, efficient, math that runs."""
    dev = torch_device(args)
    dtype = getattr(torch, args.autocast or "float32")
    q, k, v = (torch.from_numpy(a).to(dev, dtype).requires_grad_() for a in arrays[:3])
    dout = torch.from_numpy(arrays[3]).to(dev, dtype)
    F = torch.nn.functional

    def fwd_bwd() -> tuple[Any, ...]:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return (out, *torch.autograd.grad(out, (q, k, v), dout))

    backend, step = ("CPU (torch chooses)", fwd_bwd) if dev != "cuda" else _first_sdpa_backend(fwd_bwd)
    sync = torch_sync(torch, dev)
    return [Contestant("torch sdpa", step, lambda out: (sync(out), out)[1])], backend


def _first_sdpa_backend(fwd_bwd: Callable[[], Any]) -> tuple[str, Callable[[], Any]]:
    """The first of flash, memory-efficient and math attention that takes the inputs, and fwd_bwd pinned to it."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    for choice in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH):
        try:
            with sdpa_kernel(choice):
                fwd_bwd()
        except RuntimeError:  # this backend does not take these inputs (flash: no float32)
            continue

        def pinned(choice: Any = choice) -> Any:
            with sdpa_kernel(choice):
                return fwd_bwd()
        return choice.name, pinned
    raise RuntimeError("no scaled_dot_product_attention backend takes these inputs")


def max_difference(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Largest absolute difference between two results' tensors (fusegrad or torch), as numpy."""
    def arr(t: Any) -> np.ndarray:
        if hasattr(t, "detach") and hasattr(t, "cpu"):  # torch: numpy has no bfloat16
            return t.detach().float().cpu().numpy()
        return t.numpy()
    return max(float(np.abs(arr(x) - arr(y)).max()) for x, y in zip(a, b, strict=True))


# ---- part 3: generation ---------------------------------------------------------------

def generation_contestants(torch: Any, args: argparse.Namespace, config: Any, state: dict[str, np.ndarray],
                           tokens: dict[str, np.ndarray]) -> list[Contestant]:
    """Sampling `args.tokens` tokens after a 1-token prompt; each contestant's last tokens land in `tokens`."""
    import fusegrad as fg

    def keep(name: str, to_numpy: Callable[[Any], np.ndarray]) -> Callable[[Any], np.ndarray]:
        def sync(out: Any) -> np.ndarray:
            tokens[name] = to_numpy(out)
            return tokens[name]
        return sync

    out = []
    if "fusegrad" in args.peers:
        model = fusegrad_model(config, args.device).eval()
        prompt = fg.zeros(1, 1, dtype=fg.int64, device=args.device)
        def generate() -> Any:
            text = model.generate(prompt, args.tokens, top_k=1)
            fg.realize(text)  # every round times whole texts: none may stay lazy
            return text
        out.append(Contestant("fusegrad generate", generate, keep("fusegrad generate", lambda t: t.numpy())))
    if "torch" in args.peers and torch is not None:
        dev = torch_device(args)
        twin = torch_model(config, state, dev).eval()
        start = torch.zeros(1, 1, dtype=torch.long, device=dev)
        for name, fn in (("torch eager", twin.generate), ("torch kv-cache", twin.generate_cached)):
            out.append(Contestant(name, lambda fn=fn: fn(start, args.tokens, top_k=1),
                                  keep(name, lambda t: t.cpu().numpy())))
    return out


# ---- part 4: cold start ---------------------------------------------------------------

def cold_child(args: argparse.Namespace) -> None:
    """In a fresh process: import fusegrad, build the model, time its first and second eager training steps
    (with --cold-generate: the sampling of --tokens tokens instead)."""
    start = time.perf_counter()
    import fusegrad as fg
    imported = time.perf_counter()
    fg.set_num_threads(args.child_threads)
    config = gpt_config(args, VOCAB)  # random tokens: the corpus may live in another cache folder
    if args.cold_generate:
        model = fusegrad_model(config, args.device).eval()
        built = time.perf_counter()
        fg.realize(model.generate(fg.zeros(1, 1, dtype=fg.int64, device=args.device), args.tokens, top_k=1))
        common.report_to_parent({"import_s": imported - start, "setup_s": built - imported,
                                 "generate_s": time.perf_counter() - built})
        return
    batches = make_batches(np.random.default_rng(0).integers(0, VOCAB, 1 << 12), args.batch_size,
                           args.seq_len or config.block_size, 2)
    eager = fusegrad_train(args, config, batches, {})[0]
    built = time.perf_counter()
    times = []
    for _ in range(2):
        t = time.perf_counter()
        eager.sync(eager.step())
        times.append(time.perf_counter() - t)
    common.report_to_parent({"import_s": imported - start, "setup_s": built - imported, "first_step_s": times[0],
                             "second_step_s": times[1], "cache_dir": os.environ.get("FUSEGRAD_CACHE_DIR")})


def cold_start(argv: Sequence[str], threads: int, tokens: int) -> dict[str, Any]:
    """The cold child twice in one fresh kernel cache folder (empty, then warm), then the sampling
    child in another empty one."""
    old = os.environ.get("FUSEGRAD_CACHE_DIR")
    try:
        with tempfile.TemporaryDirectory(prefix="fusegrad-cold-") as folder:
            os.environ["FUSEGRAD_CACHE_DIR"] = folder
            runs = [common.run_children(__file__, [*argv, "--cold-child"], [threads])[0] for _ in range(2)]
        with tempfile.TemporaryDirectory(prefix="fusegrad-cold-") as folder:
            os.environ["FUSEGRAD_CACHE_DIR"] = folder
            sampling = common.run_children(__file__, [*argv, "--cold-child", "--cold-generate"], [threads])[0]
    finally:
        if old is None:
            del os.environ["FUSEGRAD_CACHE_DIR"]
        else:
            os.environ["FUSEGRAD_CACHE_DIR"] = old
    return {"threads": threads, "tokens": tokens, "cold": runs[0], "warm": runs[1], "generate": sampling}


# ---- a child: every part at one thread count ------------------------------------------

def part_result(contestants: list[Contestant], skipped: Skipped, extra: Callable[[Contestant], dict[str, Any]],
                title: str) -> dict[str, Any]:
    """Print a part's table (median ms, fusegrad's speedups) and return it as a dict."""
    ours = {n: next((c.median_ms for c in contestants if c.name == n), None)
            for n in ("fusegrad eager", "fusegrad jit", "fusegrad generate")}
    results, rows = {}, []
    for c in contestants:
        more = extra(c)
        results[c.name] = {"ms": c.median_ms, "min_ms": min(c.rounds_ms), "first_call_s": c.first_call_s,
                           "rounds_ms": c.rounds_ms, **more}
        rows.append([c.name, f"{c.median_ms:.3f}", f"{min(c.rounds_ms):.3f}", f"{c.first_call_s:.2f}",
                     *(f"{v:.6g}" if isinstance(v, float) else str(v) for v in more.values()),
                     *(common.ratio(c.median_ms, ms) for ms in ours.values() if ms is not None)])
    keys = list(extra(contestants[0]).keys()) if contestants else []
    speedups = [f"{n.split()[1]} speedup" for n, ms in ours.items() if ms is not None]
    print(f"\n{title}")
    print(common.table(["contestant", "median ms", "min ms", "1st call s", *keys, *speedups], rows))
    for name, why in skipped.items():
        print(f"{name}: skipped: {why}")
    return {"results": results, "skipped": skipped}


def child(args: argparse.Namespace) -> None:
    torch = common.optional_import("torch")  # before fusegrad: torch's OpenMP keeps its default wait policy
    common.set_threads(args.child_threads, torch)
    if torch is not None and args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # every contestant computes in float32
    load_before = common.machine_info()["load_average"]
    data, vocab, source = load_tokens()
    config = gpt_config(args, vocab)
    seq_len = args.seq_len or config.block_size
    state = {k: v.numpy() for k, v in fusegrad_model(config, "cpu").state_dict().items()}
    parts: dict[str, Any] = {}
    where = f"{args.child_threads} thread(s), fusegrad on {args.device}"
    if "train" in args.parts:
        skipped: Skipped = {}
        batches = make_batches(data, args.batch_size, seq_len, BATCHES)
        made = fusegrad_train(args, config, batches, skipped) if "fusegrad" in args.peers else []
        if torch is None:
            skipped["torch"] = "torch not installed"
        else:
            made += torch_train(torch, args, config, state, batches, skipped)
        if "jax" in args.peers:
            skipped["jax"] = ("jax not installed (pip install jax jaxlib)" if common.optional_import("jax") is None
                              else "this benchmark has no JAX GPT yet")
        ready = common.race(made, skipped, args.seconds, args.rounds)
        parts["train"] = part_result(ready, skipped, lambda c: {"1st loss": c.first_result},
                                     f"Training step, GPT {args.config}, B={args.batch_size}, T={seq_len}, {where}")
    if "attention" in args.parts:
        arrays = attention_inputs(args.attention)
        made = fusegrad_attention(args, arrays) if "fusegrad" in args.peers else []
        backend = "-"
        if torch is not None and "torch" in args.peers:
            theirs, backend = torch_attention(torch, args, arrays)
            made += theirs
        ready = common.race(made, {}, args.seconds, args.rounds)
        first = {c.name: c.sync(c.step()) for c in ready}
        ref = first.get("torch sdpa")
        part = part_result(ready, {}, lambda c: {"max |diff| vs torch": max_difference(first[c.name], ref)
                                                 if ref is not None else "-"},
                           f"Attention forward+backward (B, H, T, D)={args.attention}, causal, {where}")
        parts["attention"] = {**part, "shape": args.attention, "torch_backend": backend}
        print(f"torch SDPA backend: {backend}")
    if "generate" in args.parts:
        tokens: dict[str, np.ndarray] = {}
        ready = common.race(generation_contestants(torch, args, config, state, tokens), {}, args.seconds,
                            args.rounds, calls=1)
        ref = tokens.get("fusegrad generate")

        def gen_extra(c: Contestant) -> dict[str, Any]:
            same = "-" if ref is None else int((tokens[c.name] == ref).sum())
            return {"tokens/s": args.tokens / c.median_ms * 1e3, "same tokens as fusegrad": same}
        parts["generate"] = {**part_result(ready, {}, gen_extra, f"Generation of {args.tokens} tokens at batch 1, "
                                                                f"top_k=1, {where}"), "tokens": args.tokens}
    info = {"machine": common.machine_info(), "blas": common.blas_info(torch),
            "versions": common.versions(["torch", "jax", "jaxlib"])}
    info["machine"]["load_average_at_start"] = load_before
    common.report_to_parent({"threads": args.child_threads, "info": info, "data": source, "seq_len": seq_len,
                             "parts": parts})


# ---- the parent: summary and targets --------------------------------------------------

def _ms(run: dict[str, Any], part: str, name: str) -> float | None:
    found = run["parts"].get(part, {}).get("results", {}).get(name)
    return found["ms"] if found else None


def target_values(run: dict[str, Any], cold: dict[str, Any] | None) -> dict[str, float | None]:
    """The quantities the GPT issue sets targets on, for one thread count."""
    jit, eager, teager = (_ms(run, "train", n) for n in ("fusegrad jit", "fusegrad eager", "torch eager"))
    compiled = [r["ms"] for n, r in run["parts"].get("train", {}).get("results", {}).items()
                if n.startswith("torch.compile")]
    gen_fg, gen_torch = _ms(run, "generate", "fusegrad generate"), _ms(run, "generate", "torch eager")

    def div(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a / b
    best_torch = min([t for t in (teager, *compiled) if t is not None], default=None)
    attention = _ms(run, "attention", "fusegrad jit")
    return {"jit_vs_torch_eager": div(teager, jit), "jit_vs_torch_compile": div(min(compiled, default=None), jit),
            "jit_vs_best_torch": div(best_torch, jit), "attention_vs_sdpa": div(_ms(run, "attention", "torch sdpa"),
                                                                                attention),
            "generate_vs_torch_eager": div(gen_torch, gen_fg), "eager_over_torch_eager": div(eager, teager),
            "cold_first_step_s": cold["cold"]["first_step_s"] if cold else None,
            "warm_first_step_s": cold["warm"]["first_step_s"] if cold else None,
            "cold_generate_s": cold["generate"]["generate_s"] if cold else None}


def print_cold(cold: dict[str, Any]) -> None:
    c, w = cold["cold"], cold["warm"]
    print(f"\ncold start ({cold['threads']} thread(s)): first eager step {c['first_step_s']:.2f} s with an empty "
          f"kernel cache (model setup {c['setup_s']:.2f} s, import {c['import_s']:.2f} s), "
          f"{w['first_step_s']:.2f} s warm (setup {w['setup_s']:.2f} s); sampling {cold['tokens']} tokens "
          f"{cold['generate']['generate_s']:.2f} s with an empty kernel cache (model setup "
          f"{cold['generate']['setup_s']:.2f} s)")


def print_summary(args: argparse.Namespace, runs: list[dict[str, Any]], cold: dict[str, Any] | None) -> None:
    print()
    print(common.header_lines(runs[0]["info"]))
    for run in runs:
        m = run["info"]["machine"]
        print(f"# {run['threads']} thread(s) on CPUs {m['cpus']}: load average {m['load_average_at_start']} at start, "
              f"{m['load_average']} at end")
    print(f"# data: {runs[0]['data']}; GPT {args.config}, batch {args.batch_size}, T {runs[0]['seq_len']}")
    for part, unit in (("train", "ms/step"), ("attention", "ms per forward+backward"), ("generate", "ms per text")):
        names = list(dict.fromkeys(n for r in runs for n in r["parts"].get(part, {}).get("results", {})))
        if not names:
            continue
        rows = [[f"threads={r['threads']}", *(f"{_ms(r, part, n):.3f}" if _ms(r, part, n) else "-" for n in names)]
                for r in runs]
        print(f"\n{part}: median {unit}")
        print(common.table(["config", *names], rows))
    if cold:
        print_cold(cold)
    values = [target_values(r, cold) for r in runs]
    gpu = args.device == "cuda"
    rows = []
    for name, key, bound, kind in GPU_TARGETS if gpu else TARGETS:
        cells = []
        for v in values:
            x = v[key]
            met = x is not None and (x >= bound if kind == "min" else x <= bound)
            cells.append("-" if x is None else f"{x:.2f} {'met' if met else 'missed'}")
        rows.append([name, f"{'>=' if kind == 'min' else '<='} {bound}", *cells])
    print(f"\nTargets (set for {'CUDA, baby, batch 64' if gpu else 'CPU, tiny, batch 16'}; speedups: peer time / "
          "fusegrad time)")
    print(common.table(["target", "wanted", *(f"threads={r['threads']}" for r in runs)], rows))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.cold_child:
        cold_child(args)
    elif args.child_threads is not None:
        child(args)
    else:
        cold = cold_start(argv, max(args.threads), args.tokens) if "cold" in args.parts else None
        runs = common.run_children(__file__, argv, args.threads) if set(args.parts) - {"cold"} else []
        if runs:
            print_summary(args, runs, cold)
        elif cold:
            print_cold(cold)
        print(json.dumps({"benchmark": "gpt", "config": args.config, "batch_size": args.batch_size,
                          "device": args.device, "seconds": args.seconds, "rounds": args.rounds, "quick": args.quick,
                          "runs": runs, "cold_start": cold,
                          "targets": [target_values(r, cold) for r in runs]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

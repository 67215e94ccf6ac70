"""benchmarks/gpt.py: a --quick run ends with a JSON line whose contestants agree; its PyTorch twin's sampling."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fusegrad.models import GPTConfig

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import gpt  # noqa: E402  (the benchmarks folder is not a package)
import gpt_torch  # noqa: E402


@pytest.fixture(scope="module")
def quick_run() -> dict:
    """One `--quick` run on the CPU with 1 thread (torch.compile left out: it compiles for a minute here)."""
    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS.parent)}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "gpt.py"), "--quick", "--device", "cpu"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_quick_run_reports_every_part_as_json(quick_run):
    assert quick_run["benchmark"] == "gpt" and quick_run["quick"] and quick_run["config"] == "tiny"
    (run,) = quick_run["runs"]
    assert run["threads"] == 1 and run["seq_len"] == 32
    assert set(run["parts"]) == {"train", "attention", "generate"}
    assert "torch.compile" in run["parts"]["train"]["skipped"]
    cold = quick_run["cold_start"]
    assert cold["cold"]["first_step_s"] > 0 and cold["warm"]["first_step_s"] > 0 and cold["generate"]["generate_s"] > 0
    assert set(quick_run["targets"][0]) == {key for _, key, _, _ in gpt.TARGETS + gpt.GPU_TARGETS}


def test_quick_run_contestants_agree(quick_run):
    parts = quick_run["runs"][0]["parts"]
    train = parts["train"]["results"]
    assert {"fusegrad eager", "fusegrad jit", "torch eager"} <= set(train)
    reference = train["torch eager"]["1st loss"]
    for name in ("fusegrad eager", "fusegrad jit"):
        assert train[name]["1st loss"] == pytest.approx(reference, abs=1e-4), name
    for name, result in parts["attention"]["results"].items():
        assert result["max |diff| vs torch"] < 1e-4, name
    tokens = parts["generate"]["tokens"]
    for name, result in parts["generate"]["results"].items():  # top_k=1: every contestant samples the same text
        assert result["same tokens as fusegrad"] == tokens + 1, name
        assert result["tokens/s"] > 0


def test_torch_twin_samples_the_same_with_and_without_cache():
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
    torch.manual_seed(0)
    twin = gpt_torch.TorchGPT(config).eval()
    prompt = torch.tensor([[3, 1, 4]])
    # past the block size both crop the context to the last 8 tokens
    plain, cached = twin.generate(prompt, 12, top_k=1), twin.generate_cached(prompt, 12, top_k=1)
    np.testing.assert_array_equal(plain.numpy(), cached.numpy())
    assert plain.shape == (1, 15)


@pytest.mark.parametrize("argv", [["--attention", "1,2,3"], ["--peers", "mxnet"], ["--parts", "train,nothing"],
                                  ["--threads", "0"], ["--batch-size", "x"]],
                         ids=["attention-shape", "peer", "part", "threads", "batch-size"])
def test_bad_arguments_exit_with_usage(argv):
    with pytest.raises(SystemExit) as info:
        gpt.parse_args(argv)
    assert info.value.code == 2

"""PyTorch programs run on fusegrad with only their imports changed, printing PyTorch's losses.

Each program in tests/programs/ is plain PyTorch code. It runs twice in this process: as written,
on torch, and with its import lines rewritten to fusegrad (`translate`), nothing else changed. Both
runs draw the same random numbers (`shared_random_draws`: fusegrad's generator is not torch's
Mersenne twister, so the harness hands both libraries one numpy stream for their random tensors and
initializers, and one shuffle order for their data loaders), and every number each run prints must
agree. On a GPU the PyTorch run keeps float32 products in float32 (TF32 off), as fusegrad computes them.
"""
from __future__ import annotations

import contextlib
import io
import os
import random
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch

import fusegrad as fg

PROGRAMS = Path(__file__).parent / "programs"

# module paths that differ between the two libraries; everything else keeps its name
_MODULES = [("torchvision", "fusegrad.data"), ("torch.utils.data", "fusegrad.utils.data"), ("torch", "fusegrad")]


def translate(source: str) -> str:
    """The program with its import statements pointed at fusegrad; no other line changes."""
    out = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith(("import ", "from ")):
            for theirs, ours in _MODULES:
                if re.match(rf"import {re.escape(theirs)}$", stripped):
                    line = line.replace(f"import {theirs}", f"import {ours} as {theirs.split('.')[-1]}")
                    break
                pattern = rf"(import|from) {re.escape(theirs)}(?=[ .])"
                if re.match(pattern, stripped):
                    line = re.sub(pattern, rf"\1 {ours}", line, count=1)
                    break
        out.append(line)
    return "\n".join(out) + "\n"


def test_translate_changes_only_imports() -> None:
    src = ("import torch\nimport torch.nn as nn\nfrom torch import optim\nfrom torch.utils.data import DataLoader\n"
           "from torchvision import datasets\ny = torch.zeros(3)  # import torch\n")
    assert translate(src).splitlines() == [
        "import fusegrad as torch", "import fusegrad.nn as nn", "from fusegrad import optim",
        "from fusegrad.utils.data import DataLoader", "from fusegrad.data import datasets",
        "y = torch.zeros(3)  # import torch"]


@contextlib.contextmanager
def shared_random_draws(seed: int) -> Iterator[None]:
    """Both libraries' random tensors and initializers take their values from one numpy stream."""
    rng = np.random.default_rng(seed)

    def shape_of(size: tuple[Any, ...]) -> tuple[int, ...]:
        return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else tuple(size)

    def maker(lib: Any, normal: bool) -> Any:
        def make(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False, **_: Any) -> Any:
            values = rng.standard_normal(shape_of(size)) if normal else rng.random(shape_of(size))
            out = lib.tensor(values, dtype=dtype or lib.float32, device=device)
            return out.requires_grad_(requires_grad)
        return make

    def torch_fill(normal: bool) -> Any:
        def fill(self: torch.Tensor, a: float = 0.0, b: float = 1.0, generator: Any = None) -> torch.Tensor:
            values = rng.standard_normal(self.shape) * b + a if normal else rng.random(self.shape) * (b - a) + a
            with torch.no_grad():
                return self.copy_(torch.tensor(values))
        return fill

    def dropout(lib: Any) -> Any:
        def drop(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Any:
            if not training or p == 0:
                return input
            keep = (rng.random(tuple(input.shape)) >= p).astype(np.float32) / (1 - p)
            return input * lib.tensor(keep, dtype=input.dtype, device=input.device)
        return drop

    def torch_shuffle(sampler: Any) -> Iterator[int]:
        yield from rng.permutation(len(sampler.data_source)).tolist()

    import fusegrad.data.sampler as fg_sampler
    import fusegrad.random as fg_random
    import torch.utils.data as torch_data
    patches = [(torch_data.RandomSampler, "__iter__", torch_shuffle),
               (fg_sampler.RandomSampler, "order", lambda sampler, epoch: rng.permutation(len(sampler.data_source))),
               (torch.backends.cudnn, "allow_tf32", False), (torch.backends.cuda.matmul, "allow_tf32", False),
               (torch.nn.functional, "dropout", dropout(torch)), (fg.nn.functional, "dropout", dropout(fg)),
               (torch, "randn", maker(torch, True)), (torch, "rand", maker(torch, False)),
               (torch.Tensor, "normal_", torch_fill(True)), (torch.Tensor, "uniform_", torch_fill(False)),
               (fg, "randn", maker(fg, True)), (fg, "rand", maker(fg, False)),
               (fg_random, "randn", maker(fg, True)), (fg_random, "rand", maker(fg, False))]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, value in patches:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def run_program(source: str, seed: int = 0, argv: list[str] | None = None,
                cwd: Path | None = None) -> list[list[float]]:
    """Run a program's source as __main__ (with `argv`, in `cwd`); the numbers of each line it prints."""
    out = io.StringIO()
    random.seed(seed)
    default_device = torch.get_default_device()
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    with shared_random_draws(seed), contextlib.redirect_stdout(out):
        try:
            sys.argv = ["program"] + (argv or [])
            os.chdir(cwd or saved_cwd)
            exec(compile(source, "<program>", "exec"), {"__name__": "__main__"})  # noqa: S102
        finally:
            sys.argv = saved_argv
            os.chdir(saved_cwd)
            torch.set_default_device(default_device)
            fg.set_default_device(None)
    number = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
    return [[float(v) for v in re.findall(number, line)] for line in out.getvalue().splitlines()]


TUTORIAL = ["poly_tensors", "poly_autograd", "poly_function", "poly_nn", "poly_optim", "poly_module", "poly_dynamic"]


@pytest.mark.parametrize("name", TUTORIAL)
def test_tutorial_program_prints_torchs_numbers(name: str) -> None:
    source = (PROGRAMS / f"{name}.py").read_text()
    theirs = run_program(source)
    assert_same_numbers(run_program(translate(source)), theirs, name)


def assert_same_numbers(ours: list[list[float]], theirs: list[list[float]], name: str, rtol: float = 2e-4) -> None:
    assert len(ours) == len(theirs) and len(theirs) >= 6
    for line, (o, t) in enumerate(zip(ours, theirs)):
        assert len(o) == len(t), f"line {line}: {o} vs {t}"
        np.testing.assert_allclose(o, t, rtol=rtol, atol=1e-5, err_msg=f"line {line} of {name}")


def write_mnist_folder(root: Path, train: int, test: int) -> None:
    """torchvision's MNIST layout (root/MNIST/raw) holding seeded images whose class shows as a bright
    block at a class-dependent place, so that the example's network learns something in a few steps."""
    rng = np.random.default_rng(5)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 90, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            row, col = divmod(int(c), 5)
            images[i, 4 + 10 * row:12 + 10 * row, 2 + 5 * col:6 + 5 * col] = 250
        (raw / f"{split}-images-idx3-ubyte").write_bytes(
            np.array([0, 0, 8, 3], np.uint8).tobytes() + np.array([n, 28, 28], ">i4").tobytes() + images.tobytes())
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(
            np.array([0, 0, 8, 1], np.uint8).tobytes() + np.array([n], ">i4").tobytes() + labels.tobytes())


def test_pytorch_mnist_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyTorch's MNIST example (Adadelta, StepLR, dropout, transforms, DataLoader) for two short epochs."""
    from tests import torchvision_shim
    write_mnist_folder(tmp_path / "data", train=256, test=80)
    (tmp_path / "work").mkdir()
    source = (PROGRAMS / "mnist_example.py").read_text()
    argv = ["--epochs", "2", "--test-batch-size", "80", "--log-interval", "1", "--lr", "0.5"]
    monkeypatch.setitem(sys.modules, "torchvision", torchvision_shim.module)
    theirs = run_program(source, argv=argv, cwd=tmp_path / "work")
    monkeypatch.delitem(sys.modules, "torchvision")
    ours = run_program(translate(source), argv=argv, cwd=tmp_path / "work")
    assert_same_numbers(ours, theirs, "mnist_example", rtol=1e-3)
    accuracy = [line for line in theirs if len(line) == 4][-1]  # loss, correct, total, percent
    assert accuracy[1] > 0.3 * accuracy[2], "the example's network should learn the synthetic classes"


def test_char_lstm_language_model() -> None:
    source = (PROGRAMS / "char_lstm.py").read_text()
    assert_same_numbers(run_program(translate(source)), run_program(source), "char_lstm", rtol=1e-3)

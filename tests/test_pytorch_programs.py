"""PyTorch programs run on fusegrad with only their imports changed, printing PyTorch's losses.

Each program in tests/programs/ is plain PyTorch code. It runs twice in this process: as written,
on torch, and with its import lines rewritten to fusegrad (`translate`), nothing else changed. Both
runs draw the same random numbers (`shared_random_draws`: fusegrad's generator is not torch's
Mersenne twister, so the harness hands both libraries one numpy stream for their random tensors and
initializers), and every number each run prints must agree.
"""
from __future__ import annotations

import contextlib
import io
import random
import re
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

    import fusegrad.random as fg_random
    patches = [(torch, "randn", maker(torch, True)), (torch, "rand", maker(torch, False)),
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


def run_program(source: str, seed: int = 0) -> list[list[float]]:
    """Run a program's source as __main__; the numbers of each line it prints."""
    out = io.StringIO()
    random.seed(seed)
    default_device = torch.get_default_device()
    with shared_random_draws(seed), contextlib.redirect_stdout(out):
        try:
            exec(compile(source, "<program>", "exec"), {"__name__": "__main__"})  # noqa: S102
        finally:
            torch.set_default_device(default_device)
            fg.set_default_device(None)
    number = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
    return [[float(v) for v in re.findall(number, line)] for line in out.getvalue().splitlines()]


TUTORIAL = ["poly_tensors", "poly_autograd", "poly_function", "poly_nn", "poly_optim", "poly_module", "poly_dynamic"]


@pytest.mark.parametrize("name", TUTORIAL)
def test_tutorial_program_prints_torchs_numbers(name: str) -> None:
    source = (PROGRAMS / f"{name}.py").read_text()
    theirs = run_program(source)
    ours = run_program(translate(source))
    assert len(ours) == len(theirs) and len(theirs) >= 6
    for line, (o, t) in enumerate(zip(ours, theirs)):
        assert len(o) == len(t), f"line {line}: {o} vs {t}"
        np.testing.assert_allclose(o, t, rtol=2e-4, atol=1e-5, err_msg=f"line {line} of {name}")

"""FUSEGRAD_DEBUG: 1 prints launches with times, 2 adds the schedule, 3 the loop IR, 4 the source.

Each level runs in a fresh subprocess, so every kernel is generated there (IR and source are
printed when a kernel is generated, which a warm in-memory cache would skip).
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fusegrad as fg

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = """
import json
import fusegrad as fg
a = fg.arange(64).float().reshape(8, 8)
with fg.profile() as p:
    (a * 0.5 + 1).exp().sum(1).realize()
    (a * 0.5 + 1).exp().sum(1).realize()  # the same structure again: its schedule is reused
print(json.dumps(sorted({k.name for k in p.kernels})))
"""


def run_at(level: int) -> tuple[list[str], str]:
    env = {k: v for k, v in os.environ.items() if k != "FUSEGRAD_DEBUG"}
    env.update(FUSEGRAD_DEBUG=str(level), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.fixture(scope="module")
def outputs() -> dict[int, tuple[list[str], str]]:
    return {level: run_at(level) for level in range(5)}


def launch_lines(err: str, name: str) -> list[str]:
    return re.findall(rf"^fusegrad: cpu {re.escape(name)} +\([\d, ]*\) +[\d.]+ us +[\d.]+ MB$", err, re.M)


def test_level_0_is_silent(outputs: dict) -> None:
    assert "fusegrad:" not in outputs[0][1]


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_launches_with_times(outputs: dict, level: int) -> None:
    names, err = outputs[level]
    assert names
    for name in names:
        assert len(launch_lines(err, name)) == 2, f"expected two timed launches of {name}:\n{err}"


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_schedule_from_level_2(outputs: dict, level: int) -> None:
    err = outputs[level][1]
    has_schedule = re.search(r"^fusegrad: schedule\[0\] kernel \(8,\) <- .*EXP.*SUM", err, re.M) is not None
    assert has_schedule == (level >= 2)
    assert ("fusegrad: schedule reused" in err) == (level >= 2)


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_loop_ir_from_level_3(outputs: dict, level: int) -> None:
    names, err = outputs[level]
    for name in names:
        assert (f"kernel {name}(out0: float32[8])" in err) == (level >= 3)
    assert ("(global):" in err and "(reduce):" in err and "= EXP(" in err) == (level >= 3)


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_source_at_level_4(outputs: dict, level: int) -> None:
    names, err = outputs[level]
    for name in names:
        assert (f"void {name}(float* restrict p0" in err) == (level >= 4)
    assert ("expf(" in err) == (level >= 4)


def test_level_read_on_every_use(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """Setting the variable inside a running program takes effect at the next launch."""
    x = fg.arange(16).float()
    monkeypatch.setenv("FUSEGRAD_DEBUG", "0")
    (x * 2).realize()
    assert "fusegrad:" not in capsys.readouterr().err
    monkeypatch.setenv("FUSEGRAD_DEBUG", "1")
    with fg.profile() as p:
        (x * 3).realize()
    err = capsys.readouterr().err
    assert [k.name for k in p.kernels] and all(launch_lines(err, k.name) for k in p.kernels), err


def test_every_flag_is_documented() -> None:
    """docs/debugging.md's settings table names every variable in the flag registry, with its default."""
    from fusegrad import flags
    doc = (ROOT / "docs" / "debugging.md").read_text()
    for flag in flags.ALL_FLAGS:
        row = re.search(rf"^\| `{flag.name}` \| ([^|]+) \|", doc, re.M)
        assert row, f"{flag.name} is missing from the settings table in docs/debugging.md"
        assert flag.default in row.group(1) or not flag.default, f"{flag.name}: default {flag.default!r} not shown"


@pytest.mark.parametrize("given, want", [
    ({}, ("30000", None)),  # spin a while, then sleep
    ({"OMP_WAIT_POLICY": "active"}, (None, "active")),  # the user's policy is left alone
    ({"GOMP_SPINCOUNT": "5"}, ("5", None)),
])
def test_openmp_wait_defaults_respect_the_user(given: dict, want: tuple) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(given, PYTHONPATH=str(ROOT))
    code = "import os, fusegrad; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert tuple(None if v == "None" else v for v in proc.stdout.split()) == want

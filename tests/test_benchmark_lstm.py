"""benchmarks/lstm.py: a --quick run ends with a JSON line; fusegrad's eager and jitted iterations and
PyTorch's give the same first loss from the same weights."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_quick_run_reports_json_with_agreeing_losses() -> None:
    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS.parent)}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "lstm.py"), "--quick", "--steps", "8"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["benchmark"] == "lstm" and report["config"]["steps"] == 8
    (run,) = report["runs"]
    losses = {name: r["first_loss"] for name, r in run["results"].items()}
    assert set(losses) == {"fusegrad eager", "fusegrad jit", "torch eager"}
    for name, loss in losses.items():
        assert loss == pytest.approx(losses["torch eager"], rel=1e-5), name
    assert all(r["ms"] > 0 for r in run["results"].values())
    assert report["cold"]["first_iteration_s"] > 0 and report["warm"]["first_iteration_s"] > 0
    assert set(report["targets"][0]) == {"eager_over_torch", "jit_over_torch", "cold_first_s", "warm_first_s"}

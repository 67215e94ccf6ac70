"""benchmarks/mnist_mlp.py with --autocast: the jitted step and torch's eager step race again with their
forward and loss under autocast, and the summary gives autocast's speedup over float32 (the
mixed-precision target)."""
import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_quick_autocast_run_races_both_precisions() -> None:
    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS.parent)}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "mnist_mlp.py"), "--quick", "--autocast", "bfloat16",
                           "--peers", "fusegrad,torch"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    (run,) = report["runs"]
    (config,) = run["configs"].values()
    names = {"fusegrad eager", "fusegrad jit", "fusegrad jit autocast", "torch eager", "torch eager autocast"}
    assert set(config["results"]) == names and all(r["ms"] > 0 for r in config["results"].values())
    assert "autocast's speedup over float32" in proc.stdout

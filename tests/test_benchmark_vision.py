"""benchmarks/vision.py: a --quick run of a small ResNet-18 step races fusegrad against torch from the same
weights, prints the summary and ends with a JSON line naming the workload and its FLOPs."""
import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_quick_resnet18_run_reports_every_contestant() -> None:
    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS.parent)}
    # torch.compile is left out: compiling the step takes longer than the rest of the run
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "vision.py"), "--quick", "--model", "resnet18",
                           "--stem", "cifar", "--image-size", "16", "--batch-sizes", "2", "--peers", "fusegrad,torch"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Summary: median ms/step" in proc.stdout
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (report["benchmark"], report["model"], report["stem"], report["image_size"]) == ("vision", "resnet18",
                                                                                           "cifar", 16)
    assert (report["momentum"], report["weight_decay"]) == (0.9, 5e-4)
    (run,) = report["runs"]
    (config,) = run["configs"].values()
    assert (config["batch"], config["threads"]) == (2, 1)
    # 2 images: forward, weight and input gradients of ResNet-18's 0.139 GMAC per 16x16 image, less conv1's input grad
    assert 1.6e9 < config["flops"] < 1.7e9
    results = config["results"]
    assert set(results) == {"fusegrad eager", "fusegrad jit", "torch eager"} and not config["skipped"]
    assert all(r["ms"] > 0 for r in results.values())
    losses = [r["first_loss"] for r in results.values()]
    assert max(losses) - min(losses) < 1e-4  # the same weights and batch: the same first loss

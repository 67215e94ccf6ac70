"""benchmarks/conv.py: a --quick run times every direction of its shapes on both sides and ends
with a JSON line whose summary is the geometric mean and worst shape of the ratios it printed."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_quick_run_reports_every_direction() -> None:
    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS.parent)}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "conv.py"), "--quick"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["benchmark"] == "conv"
    (run,) = report["runs"]
    assert len(run["rows"]) == 4 and any(r["shape"]["transposed"] for r in run["rows"])
    for direction in ("forward", "input_grad", "weight_grad"):
        ratios = [r[direction]["ratio"] for r in run["rows"]]
        assert all(r[direction]["fusegrad_ms"] > 0 and r[direction]["torch_ms"] > 0 for r in run["rows"])
        summary = run["summary"][direction]
        assert math.isclose(summary["geomean"], math.prod(ratios) ** (1 / len(ratios)))
        assert summary["worst"] == min(ratios)


def test_shapes_filter_keeps_the_shapes_naming_a_substring() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    import conv
    args = conv.argparse.Namespace(quick=False, shapes="depthwise,g32")
    names = [s.name for s in conv.SHAPES if conv.selected(s.name, args)]
    assert names == ["mobilenetv2 depthwise 3x3", "mobilenetv2 depthwise 3x3/2", "resnext grouped 3x3 g32"]
    args = conv.argparse.Namespace(quick=True, shapes="depthwise")
    assert [s.name for s in conv.SHAPES if conv.selected(s.name, args)] == ["mobilenetv2 depthwise 3x3"]
    args = conv.argparse.Namespace(quick=False, shapes="")
    assert len([s for s in conv.SHAPES if conv.selected(s.name, args)]) == len(conv.SHAPES)

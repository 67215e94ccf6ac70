"""fg.profile(): per-kernel table, GFLOP/s and GB/s estimates, the fused ops, Chrome trace export."""
import json

import numpy as np
import pytest

import fusegrad as fg

M, K, N = 24, 16, 8


def data(shape, seed):
    return fg.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


@pytest.fixture(scope="module")
def profile():
    a, b, c = data((M, K), 0), data((K, N), 1), data((M, K), 2)
    with fg.profile() as p:
        for _ in range(3):
            (a @ b).realize()
        ((a * c + 1).relu()).sum(1).realize()
        a.T.contiguous().realize()
    return p


def table_rows(text):
    lines = text.splitlines()
    return [line.split() for line in lines[2:-2]], lines[-1]


def test_launch_records_have_ops_and_flop_estimates(profile):
    matmul, fused, copy = profile.kernels[0], profile.kernels[3], profile.kernels[4]
    assert [k.name for k in profile.kernels[:3]] == [matmul.name] * 3
    assert matmul.op == "MUL SUM" and matmul.flops == 2 * M * N * K  # one multiply and one add per (m, n, k)
    assert fused.op.split()[:2] == ["MUL", "ADD"] and fused.op.split()[-1] == "SUM"
    assert fused.flops >= 3 * M * K
    assert copy.op == "COPY" and copy.flops == 0 and copy.shape == (K, M)
    for k in profile.kernels:
        assert k.seconds > 0 and k.bytes_moved > 0 and k.device == "cpu"


def test_by_kernel_sums_launches(profile):
    stats = profile.by_kernel()
    assert sum(s.calls for s in stats) == len(profile.kernels) == 5
    mm = stats[0]
    assert mm.calls == 3 and mm.flops == 3 * 2 * M * N * K
    assert mm.seconds == pytest.approx(sum(k.seconds for k in profile.kernels[:3]))
    assert mm.mean_seconds == pytest.approx(mm.seconds / 3)
    assert mm.gflops == pytest.approx(mm.flops / mm.seconds / 1e9) and mm.gflops > 0
    assert all(s.gbps > 0 for s in stats)


def test_table(profile, capsys):
    text = profile.table()
    assert capsys.readouterr().out == ""  # returns the table, prints nothing
    rows, footer = table_rows(text)
    assert text.splitlines()[0].split() == ["kernel", "op", "device", "calls", "total", "ms", "mean", "us",
                                            "GFLOP/s", "GB/s", "time"]
    assert sum(int(r[-6]) for r in rows) == len(profile.kernels)
    totals = [float(r[-5]) for r in rows]
    assert totals == sorted(totals, reverse=True) and all(t > 0 for t in totals)
    assert footer.startswith(f"{len(profile.kernels)} launches of 3 kernels")
    by_calls, _ = table_rows(profile.table(sort_by="calls"))
    assert int(by_calls[0][-6]) == 3 and by_calls[0][0] == profile.kernels[0].name
    top, footer = table_rows(profile.table(top=1))
    assert len(top) == 1 and "(2 more not shown)" in footer
    names, _ = table_rows(profile.table(sort_by="name", top=None))
    assert [r[0] for r in names] == sorted(r[0] for r in names)
    with pytest.raises(ValueError, match="sort_by"):
        profile.table(sort_by="speed")


def test_chrome_trace_schema(profile, tmp_path):
    path = tmp_path / "trace.json"
    profile.export_chrome_trace(path)
    trace = json.loads(path.read_text())
    events = trace["traceEvents"]
    spans = [e for e in events if e["ph"] == "X"]
    assert len(spans) == len(profile.kernels)
    for e, k in zip(spans, profile.kernels):
        assert set(e) >= {"name", "ph", "ts", "dur", "pid", "tid", "args"}
        assert e["name"] == k.name and e["cat"] == "kernel"
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        assert e["ts"] >= 0 and e["dur"] == pytest.approx(k.seconds * 1e6)
        assert e["args"] == {"op": k.op, "shape": list(k.shape), "bytes_moved": k.bytes_moved, "flops": k.flops}
    # launches run one after another on the device: spans are ordered and never overlap
    for first, second in zip(spans, spans[1:]):
        assert first["ts"] + first["dur"] <= second["ts"] + 1e-3
    names = {(e["name"], e["tid"]) for e in events if e["ph"] == "M"}
    assert ("process_name", 0) in names and ("thread_name", spans[0]["tid"]) in names


def test_empty_profile():
    with fg.profile() as p:
        pass
    assert p.table().splitlines()[-1] == "0 launches of 0 kernels, 0.000 ms in kernels"

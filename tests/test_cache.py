"""The on-disk kernel cache: location, corruption recovery, concurrent builders, compiler errors.

Each check runs fusegrad in a fresh subprocess with its own FUSEGRAD_CACHE_DIR, so the
in-memory program cache is empty and the disk cache is the only thing that can be reused.
"""
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# prints the kernel result and the names of the kernels that ran, as one JSON line
PROGRAM = """
import json, sys
import fusegrad as fg
x = fg.arange(12).float().reshape(3, 4)
with fg.profile() as p:
    y = ((x * {const} + 1).sin() * x).sum(1)
    values = y.tolist()
print(json.dumps({{"values": values, "kernels": [k.name for k in p.kernels]}}))
"""


def expected(const: float) -> np.ndarray:
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    return (np.sin(x * const + 1) * x).sum(1)


def run_fusegrad(code: str, cache: Path | None, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEGRAD_")}
    if cache is not None:
        env["FUSEGRAD_CACHE_DIR"] = str(cache)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def run_program(cache: Path, const: float) -> dict:
    proc = run_fusegrad(PROGRAM.format(const=const), cache)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(out["values"], expected(const), rtol=1e-5)
    return out


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.so"))


def digest_ok(path: Path) -> bool:
    sidecar = path.with_name(path.name + ".sha256")
    return sidecar.read_text().strip() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_cache_dir_honours_env(tmp_path: Path) -> None:
    cache = tmp_path / "nested" / "kernels"
    run_program(cache, 0.75)
    assert entries(cache), "no compiled kernels were written to FUSEGRAD_CACHE_DIR"
    assert all(digest_ok(p) for p in entries(cache))
    assert not list(cache.glob("*.tmp")), "temporary files were left behind"


def test_default_cache_dir_is_under_home(tmp_path: Path) -> None:
    proc = run_fusegrad(PROGRAM.format(const=0.5), None, HOME=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert entries(tmp_path / ".cache" / "fusegrad")


def test_warm_cache_is_reused(tmp_path: Path) -> None:
    run_program(tmp_path, 1.25)
    before = {p: p.stat().st_mtime_ns for p in entries(tmp_path)}
    run_program(tmp_path, 1.25)
    assert {p: p.stat().st_mtime_ns for p in entries(tmp_path)} == before, "a cached kernel was rebuilt"


RACED_PRODUCT = """
import json
import numpy as np
import fusegrad as fg
fg.set_num_threads(1)
a = fg.tensor(np.arange(96 * 80, dtype=np.float32).reshape(96, 80) % 7)
b = fg.tensor(np.arange(80 * 112, dtype=np.float32).reshape(80, 112) % 5)
print(json.dumps({"sum": float((a @ b).sum().item())}))
"""


def test_a_raced_product_is_found_in_the_cache_by_the_next_process(tmp_path: Path) -> None:
    """The first process compiles a product both ways and races them (one thread, a vendor BLAS
    loaded); the next process, which reads the stored outcome, asks for the same units."""
    want = float(((np.arange(96 * 80).reshape(96, 80) % 7) @ (np.arange(80 * 112).reshape(80, 112) % 5)).sum())
    sums = []
    for _ in range(2):
        proc = run_fusegrad(RACED_PRODUCT, tmp_path, OMP_NUM_THREADS="1")
        assert proc.returncode == 0, proc.stderr
        sums.append(json.loads(proc.stdout.strip().splitlines()[-1])["sum"])
        if len(sums) == 1:
            first = {p: p.stat().st_mtime_ns for p in entries(tmp_path)}
    np.testing.assert_allclose(sums, [want, want], rtol=1e-6)
    assert {p: p.stat().st_mtime_ns for p in entries(tmp_path)} == first, "the second process compiled again"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "garbage_with_matching_digest", "drop_digest"])
def test_corrupt_entry_is_rebuilt(tmp_path: Path, damage: str) -> None:
    run_program(tmp_path, 2.5)
    damaged = entries(tmp_path)
    assert damaged
    for path in damaged:
        sidecar = path.with_name(path.name + ".sha256")
        data = path.read_bytes()
        if damage == "truncate":
            path.write_bytes(data[: len(data) // 2])
        elif damage == "garbage":
            path.write_bytes(b"\x7fELF not really a shared object" * 20)
        elif damage == "garbage_with_matching_digest":  # passes the checksum, fails to load
            path.write_bytes(b"\x7fELF not really a shared object" * 20)
            sidecar.write_text(hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            sidecar.unlink()
    run_program(tmp_path, 2.5)  # right values from a process that had to go through the damaged cache
    assert [p.name for p in entries(tmp_path)] == [p.name for p in damaged]
    assert all(digest_ok(p) for p in entries(tmp_path)), "damaged entries were not rebuilt"


def test_concurrent_processes_compile_same_kernel(tmp_path: Path) -> None:
    """Several processes building the same new kernel into one empty cache all succeed."""
    start_at = time.time() + 1.5  # start compiling together, after every interpreter has imported fusegrad
    code = f"import time\nimport fusegrad\ntime.sleep(max(0.0, {start_at} - time.time()))\n" + PROGRAM.format(const=3.5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEGRAD_")}
    env.update(FUSEGRAD_CACHE_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        got = json.loads(out.strip().splitlines()[-1])
        np.testing.assert_allclose(got["values"], expected(3.5), rtol=1e-5)
    names = {json.loads(out.strip().splitlines()[-1])["kernels"][0] for out, _ in results}
    assert len(names) == 1, "the processes generated different kernels"
    assert all(digest_ok(p) for p in entries(tmp_path))
    assert not list(tmp_path.glob("*.tmp"))


FAILING_CC = """#!/bin/sh
# a compiler that rejects any source containing the constant 1234.5 and defers to gcc otherwise
for arg in "$@"; do
  case "$arg" in
    *.c) if grep -q "1234.5" "$arg"; then echo "fakecc: error: constant 1234.5 rejected in $arg" >&2; exit 1; fi ;;
  esac
done
exec gcc "$@"
"""

COMPILE_ERROR_PROGRAM = """
import json
import fusegrad as fg
x = fg.arange(8).float()
try:
    (x * 1234.5 + 2).exp().numpy()
except fg.CompileError as e:
    ok = (x * 2).tolist()  # the process carries on: other kernels still compile and run
    print(json.dumps({"base": isinstance(e, fg.Error) and isinstance(e, RuntimeError), "message": str(e),
                      "source": e.source, "output": e.compiler_output, "after": ok}))
"""


def test_compile_error_carries_source_and_compiler_message(tmp_path: Path) -> None:
    cc = tmp_path / "fakecc"
    cc.write_text(FAILING_CC)
    cc.chmod(0o755)
    proc = run_fusegrad(COMPILE_ERROR_PROGRAM, tmp_path / "cache", FUSEGRAD_CC=str(cc))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "no CompileError was raised"
    err = json.loads(proc.stdout.strip().splitlines()[-1])
    assert err["base"]
    assert "1234.5" in err["source"] and "void " in err["source"], "the error does not carry the kernel source"
    assert "fakecc: error: constant 1234.5 rejected" in err["output"]
    assert "fakecc: error" in err["message"]
    assert err["after"] == [2.0 * i for i in range(8)]


def test_missing_compiler_is_a_compile_error(tmp_path: Path) -> None:
    code = ("import fusegrad as fg\ntry:\n    (fg.arange(4).float() * 5.5).numpy()\n"
            "except fg.CompileError as e:\n    print('CompileError:', e)\n")
    proc = run_fusegrad(code, tmp_path, FUSEGRAD_CC=str(tmp_path / "no-such-cc"))
    assert proc.returncode == 0, proc.stderr
    assert "CompileError: no C compiler found" in proc.stdout

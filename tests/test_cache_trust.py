"""The kernel cache as code that gets loaded: private folders and files, refusal of folders and entries
others can write, every load failure a miss that rebuilds, unwritable folders, the size bound.

Each test points FUSEGRAD_CACHE_DIR at its own folder and empties the in-memory program cache, so
kernels go through the disk cache. Kernels run on the default device (FUSEGRAD_DEVICE=opencl runs
the same checks on OpenCL's cached binaries); the tuning files are the CPU device's.
"""
import errno
import hashlib
import json
import os
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import fusegrad as fg
from fusegrad.codegen import gemm_c
from fusegrad.engine import realize as realize_module
from fusegrad.engine import tune
from fusegrad.runtime import cache, registry

KIND = registry.get(registry.default_device()).kind
EXT = {"cpu": "so", "opencl": "clbin"}.get(KIND)
pytestmark = pytest.mark.skipif(EXT is None, reason=f"no binary cache checks for the {KIND} device")


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache folder (not created yet) and an empty in-memory program cache."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", str(folder))
    monkeypatch.setattr(realize_module, "_programs", {})
    monkeypatch.setattr(realize_module, "_plans", {})
    return folder


def run_tensor_kernel(const: float) -> None:
    """A fused kernel of the default device, new for each constant, checked against numpy."""
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = ((fg.tensor(x) * const + 1).sin() * fg.tensor(x)).sum(1).numpy()
    np.testing.assert_allclose(got, (np.sin(x * const + 1) * x).sum(1), rtol=1e-5, atol=1e-5)


def kernel_source(name: str, const: float) -> str:
    """A hand-written kernel `out[i] = a[i] * const + 1` (8 floats) in the default device's language."""
    if KIND == "cpu":
        return (f"void {name}(float *restrict out, const float *restrict a) {{\n"
                f"  for (int i = 0; i < 8; i++) out[i] = a[i] * {const}f + 1.0f;\n}}\n")
    return (f"__kernel void {name}(__global uchar* ob, ulong oo, __global uchar* ab, ulong ao) {{\n"
            f"  size_t i = get_global_id(0);\n"
            f"  if (i < 8) ((__global float*)(ob + oo))[i] = ((__global const float*)(ab + ao))[i] * {const}f + 1.0f;\n"
            f"}}\n")


def entry_path(source: str) -> Path:
    """Where the default device caches the build of `source`."""
    dev = registry.get(registry.default_device())
    if KIND == "cpu":
        key = dev.cache_key(source, dev.kernel_cflags())
    else:
        key = cache.cache_key(source, dev.identity, *dev.build_options(dev.lanes > 1))
    return cache.folder() / f"{key}.{EXT}"


def run_kernel(name: str, const: float) -> None:
    """Compile (through the cache) and run the hand-written kernel; check its values."""
    dev = registry.get(registry.default_device())
    (program,) = dev.compile(kernel_source(name, const), [name], [2])
    a = np.linspace(-2, 2, 8, dtype=np.float32)
    out, inp = dev.alloc(32), dev.alloc(32)
    dev.copy_in(inp, a)
    program([out, inp])
    np.testing.assert_allclose(dev.copy_out(out, np.dtype(np.float32), 8), a * np.float32(const) + 1,
                               rtol=1e-6, atol=1e-6)


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"*.{EXT}"))


def intact(path: Path) -> bool:
    sidecar = path.with_name(path.name + ".sha256")
    return sidecar.read_text().strip() == hashlib.sha256(path.read_bytes()).hexdigest()


def plant(path: Path, data: bytes, matching_digest: bool = True) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest() if matching_digest else "0" * 64
    path.with_name(path.name + ".sha256").write_text(digest)


def cache_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, fg.CacheWarning)]


def test_new_cache_is_private(cache_dir: Path) -> None:
    run_tensor_kernel(0.311)
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    assert entries(cache_dir) and all(intact(p) for p in entries(cache_dir))
    for p in cache_dir.iterdir():
        assert p.stat().st_uid == os.geteuid() and stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, p


@pytest.mark.parametrize("problem", ["group_writable", "other_writable", "other_owner", "a_file"])
def test_untrusted_folder_is_refused_with_one_warning(cache_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                      problem: str) -> None:
    if problem == "a_file":
        cache_dir.write_text("not a folder")
    else:
        cache_dir.mkdir(mode=0o700)
    if problem == "group_writable":
        cache_dir.chmod(0o770)
    elif problem == "other_writable":
        cache_dir.chmod(0o707)
    elif problem == "other_owner":
        if os.geteuid() == 0:
            os.chown(cache_dir, 54321, -1)
        else:  # only root can give a folder away: this user stands in for someone else
            monkeypatch.setattr(cache, "_uid", lambda: os.geteuid() + 1)
    fix = "chmod 700" if "writable" in problem else "FUSEGRAD_CACHE_DIR"
    with pytest.warns(fg.CacheWarning, match=fix) as record:
        run_tensor_kernel(0.412)
    assert str(cache_dir) in cache_warnings(record)[0] and "FUSEGRAD_CACHE_DIR" in cache_warnings(record)[0]
    if problem != "a_file":
        assert not list(cache_dir.iterdir()), "an untrusted folder was written to"
    assert cache.folder() != cache_dir and entries(cache.folder())
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        run_tensor_kernel(0.413)
    assert not cache_warnings(again), "the warning is given once per folder"


def test_untrusted_entry_is_rebuilt(cache_dir: Path) -> None:
    run_kernel("fg_trust_entry", 1.5)
    (path,) = entries(cache_dir)
    path.chmod(0o666)
    with pytest.warns(fg.CacheWarning, match="not used"):
        run_kernel("fg_trust_entry", 1.5)
    assert intact(path) and stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


@pytest.mark.parametrize("damage", ["truncated", "truncated_matching_digest", "garbage_matching_digest",
                                    "foreign_matching_digest", "symlink"])
def test_bad_binary_is_a_miss_that_rebuilds(cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            damage: str) -> None:
    if damage == "truncated_matching_digest" and KIND != "cpu":
        pytest.skip("only ELF libraries are checked for a cut a digest vouches for (PoCL crashes on such a binary)")
    name, const = f"fg_trust_{damage}", 2.25 + len(damage) / 8
    source = kernel_source(name, const)
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", str(tmp_path / "elsewhere"))  # real builds to damage
    run_kernel(name, const)
    good = entry_path(source).read_bytes()
    run_kernel("fg_trust_other", 7.0)
    foreign = entry_path(kernel_source("fg_trust_other", 7.0)).read_bytes()
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", str(cache_dir))
    path = entry_path(source)
    if damage == "foreign_matching_digest":  # a real binary that loads, without the kernel asked for
        plant(path, foreign)
    elif damage == "garbage_matching_digest":
        plant(path, b"\x7fELF not really a binary" * 40)
    elif damage == "symlink":  # a link to a good build elsewhere is not this folder's file
        plant(path, good)
        path.unlink()
        path.symlink_to(tmp_path / "elsewhere" / path.name)
    else:
        plant(path, good[: len(good) // 2], matching_digest=damage.endswith("digest"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        run_kernel(name, const)
    assert bool(cache_warnings(record)) == (damage == "symlink"), "only an untrusted entry is worth a warning"
    assert not path.is_symlink() and intact(path), "the bad entry was not replaced"
    assert path.read_bytes() != foreign
    monkeypatch.setattr(realize_module, "_programs", {})
    run_kernel(name, const)  # the replaced entry serves the next compile


def stored_tiles_shape() -> tuple[tuple[str, int, int, int], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((24, 32)).astype(np.float32), rng.standard_normal((32, 40)).astype(np.float32)
    return ("float32", 24, 40, 32), a, b


@pytest.mark.parametrize("damage", [b"{not json", b'{"format": 1, "tiles": ["4", 64]}', b'{"format": 1, "tiles": [4]}',
                                    b'{"tiles": [4, 32]}', b'{"format": 99, "tiles": [4, 32]}', b"[4, 32]"],
                         ids=["garbage", "wrong_types", "wrong_length", "no_version", "wrong_version", "not_an_object"])
@pytest.mark.parametrize("search", ["0", "1"])
def test_bad_tuning_file_is_a_miss(cache_dir: Path, monkeypatch: pytest.MonkeyPatch, damage: bytes,
                                   search: str) -> None:
    shape, a, b = stored_tiles_shape()
    monkeypatch.setenv("FUSEGRAD_SEARCH", search)
    monkeypatch.delitem(gemm_c.TUNED, shape, raising=False)
    key = tune._entry_key("cpu", tune._identity("cpu"), shape)
    cache.store(key, "json", lambda out: out.write_bytes(damage))  # with its digest: it passes the checksum
    got = (fg.tensor(a, device="cpu") @ fg.tensor(b, device="cpu")).numpy()
    np.testing.assert_allclose(got, a @ b, atol=1e-4, rtol=1e-4)
    path = cache_dir / f"{key}.json"
    if search == "1":  # searched again, and the bad file replaced by the choice
        entry = json.loads(path.read_text())
        assert entry["format"] == tune.FORMAT and tuple(entry["tiles"]) == gemm_c.TUNED[shape]
        assert intact(path)
    else:  # the heuristic serves; the bad file is no longer trusted
        assert shape not in gemm_c.TUNED and cache.lookup(key, "json") is None
    monkeypatch.delitem(gemm_c.TUNED, shape, raising=False)


def test_bad_vendor_choice_is_a_miss(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tune, "_vendor_decided", {})
    shape = ("float32", 24, 40, 32)
    key = tune._vendor_key("cpu", shape)
    cache.store(key, "json", lambda out: out.write_bytes(b'{"format": 1, "vendor": "yes"}'))
    assert tune._stored(key, "vendor", lambda v: isinstance(v, bool)) is None
    assert cache.lookup(key, "json") is None, "a bad choice must read as missing afterwards"


def cannot_write_into(folder: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Make writes into `folder` fail as on a read-only file system or a full disk. chmod 500 stops every
    user but root: where it does not, the cache's one way of making files raises the error instead."""
    if how == "read_only":
        folder.chmod(0o500)
        probe = folder / "probe"
        try:
            probe.write_text("")
        except PermissionError:
            return
        probe.unlink()
        folder.chmod(0o700)
    real = cache._temp_file
    code = errno.EROFS if how == "read_only" else errno.ENOSPC

    def failing(where: Path, prefix: str, suffix: str) -> Path:
        if Path(where) == folder:
            raise OSError(code, os.strerror(code), str(where))
        return real(where, prefix, suffix)

    monkeypatch.setattr(cache, "_temp_file", failing)


@pytest.mark.parametrize("how", ["read_only", "full"])
def test_unwritable_folder_keeps_working(cache_dir: Path, monkeypatch: pytest.MonkeyPatch, how: str,
                                         request: pytest.FixtureRequest) -> None:
    run_tensor_kernel(0.51)  # an entry written while the folder could still be written
    before = {p.name for p in cache_dir.iterdir()}
    request.addfinalizer(lambda: cache_dir.chmod(0o700))
    cannot_write_into(cache_dir, monkeypatch, how)
    with pytest.warns(fg.CacheWarning, match="cannot be written"):
        run_tensor_kernel(0.52)
    assert {p.name for p in cache_dir.iterdir()} == before
    private = cache.folder()
    assert private != cache_dir and entries(private)
    written = {p.name for p in private.iterdir()}
    monkeypatch.setattr(realize_module, "_programs", {})
    monkeypatch.setattr(realize_module, "_plans", {})
    run_tensor_kernel(0.51)  # found in the read-only folder: nothing built again
    assert {p.name for p in private.iterdir()} == written


def test_folder_that_cannot_be_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", str(tmp_path / "a_file" / "cache"))
    monkeypatch.setattr(realize_module, "_programs", {})
    with pytest.warns(fg.CacheWarning, match="cannot be created"):
        run_tensor_kernel(0.61)


def test_stale_lock_files(cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock file that is a link elsewhere is replaced (its target untouched); a lock held by a stuck
    process is waited for only LOCK_WAIT_S, then the entry goes in without it."""
    cache_dir.mkdir(mode=0o700)
    target = tmp_path / "target"
    target.write_text("keep")
    (cache_dir / ".lock").symlink_to(target)
    run_kernel("fg_trust_lock_link", 3.25)
    assert target.read_text() == "keep" and not (cache_dir / ".lock").is_symlink()
    monkeypatch.setattr(cache, "LOCK_WAIT_S", 0.3)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time\nf = open(sys.argv[1], 'a')\n"
                               "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n",
                               str(cache_dir / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        run_kernel("fg_trust_lock_held", 3.5)
        assert time.monotonic() - start < 30
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert intact(entry_path(kernel_source("fg_trust_lock_held", 3.5)))


def test_eviction_drops_least_recently_used(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSEGRAD_CACHE_MAX_MB", str(100_000 / 2**20))  # 100 kB
    payload = bytes(20_000)
    keys = [f"entry{i}" for i in range(4)]
    for key in keys:
        cache.store(key, "bin", lambda out: out.write_bytes(payload))
    old = time.time() - 3600
    for i, key in enumerate(keys):  # entry0 used longest ago ... entry3 last
        os.utime(cache_dir / f"{key}.bin", (old + i, old))
    assert cache.lookup("entry0", "bin") is not None  # a use makes entry0 the most recent
    cache.store("entry4", "bin", lambda out: out.write_bytes(payload))  # 5 x 20 kB + digests: over
    left = {p.stem for p in cache_dir.glob("*.bin")}
    assert left == {"entry0", "entry2", "entry3", "entry4"}
    assert sum(p.stat().st_size for p in cache_dir.iterdir() if p.is_file()) <= 0.9 * 100_000
    assert not list(cache_dir.glob("entry1.*")), "the digest of an evicted entry stayed"


def test_eviction_keeps_the_folder_bounded_and_kernels_running(cache_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cache_dir.mkdir(mode=0o700)
    (cache_dir / "datasets").mkdir()  # a subfolder (downloaded datasets) is no entry and stays
    (cache_dir / "datasets" / "data.bin").write_bytes(bytes(300_000))
    run_tensor_kernel(0.71)
    one = sum(p.stat().st_size for p in cache_dir.iterdir() if p.is_file())
    limit = 3 * one
    monkeypatch.setenv("FUSEGRAD_CACHE_MAX_MB", str(limit / 2**20))
    for const in (0.72, 0.73, 0.74, 0.75, 0.76):
        run_tensor_kernel(const)
        assert sum(p.stat().st_size for p in cache_dir.iterdir() if p.is_file()) <= limit
    assert len(entries(cache_dir)) < 6 and (cache_dir / "datasets" / "data.bin").exists()
    monkeypatch.setattr(realize_module, "_programs", {})
    monkeypatch.setattr(realize_module, "_plans", {})
    run_tensor_kernel(0.71)  # its entry was evicted: a miss, built again


def test_stale_temporary_files_are_removed_by_a_scan(cache_dir: Path) -> None:
    cache_dir.mkdir(mode=0o700)
    stale, fresh = cache_dir / "dead.so.tmp", cache_dir / "building.so.tmp"
    for p in (stale, fresh):
        p.write_bytes(b"x")
    os.utime(stale, (time.time() - 2 * cache.STALE_TEMP_S,) * 2)
    cache.evict(cache_dir, 10**9)
    assert not stale.exists() and fresh.exists()


SHARED_PROGRAM = """
import json, sys
import numpy as np
import fusegrad as fg
x = np.arange(12, dtype=np.float32).reshape(3, 4)
ok = True
for const in {consts}:
    got = ((fg.tensor(x) * const + 1).sin() * fg.tensor(x)).sum(1).numpy()
    ok = ok and bool(np.allclose(got, (np.sin(x * const + 1) * x).sum(1), rtol=1e-5, atol=1e-5))
print(json.dumps({{"ok": ok}}))
"""


def test_processes_sharing_a_bounded_folder(cache_dir: Path) -> None:
    """Two processes compile into one small folder at once, evicting each other's entries: both get
    right values, and the folder ends near its bound."""
    run_tensor_kernel(0.81)
    one = sum(p.stat().st_size for p in cache_dir.iterdir() if p.is_file())
    limit = 2 * one
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEGRAD_") or k == "FUSEGRAD_DEVICE"}
    env.update(FUSEGRAD_CACHE_DIR=str(cache_dir), FUSEGRAD_CACHE_MAX_MB=str(limit / 2**20),
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    consts = [[0.81, 0.82, 0.83, 0.84], [0.84, 0.85, 0.86, 0.81]]
    procs = [subprocess.Popen([sys.executable, "-c", SHARED_PROGRAM.format(consts=c)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in consts]
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["ok"]
    # each process counts the other's writes only when it scans: the folder may pass the bound by them
    assert sum(p.stat().st_size for p in cache_dir.iterdir() if p.is_file()) <= 2 * limit

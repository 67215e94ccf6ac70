"""The CPU device: numpy-backed buffers, C compiled by the system compiler, launched via ctypes."""
from __future__ import annotations

import _ctypes
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import flags
from ..errors import CompileError
from . import cache, elf
from .buffer import Buffer, CountingAllocator
from .host_pool import HostPool

# Threads that finish a parallel loop spin for a while (30000 iterations, tens of microseconds),
# then sleep. Sleeping at once (OMP_WAIT_POLICY=passive, used before) pays a futex wake, and on a VM
# the wake of a halted vCPU, per parallel kernel: on this 2-core guest the jitted 2-thread MLP step
# took 1.7-1.9 ms instead of 0.28 ms, the eager one 3.8 instead of 1.6 ms, and a GEMM with 85
# K-panels (the CNN's conv1 weight gradient) 9.6 instead of 0.9 ms. 10000 spins let the eager step's
# Python gaps outlast the spin (2.2-2.7 ms); libgomp's default 300000 burns the cores longer for
# nothing. Set before libgomp loads; a user's OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "30000")

CFLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-fno-math-errno", "-std=gnu11")


_BLAS_SYMBOLS = {"sgemm": ("scipy_cblas_sgemm64_", "cblas_sgemm64_"),
                 "dgemm": ("scipy_cblas_dgemm64_", "cblas_dgemm64_"),
                 "set_num_threads": ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_")}


def _find_loaded_blas() -> dict[str, int]:
    import numpy  # noqa: F401  (numpy loads its BLAS on import)
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return {}
    paths = sorted({line.split()[-1] for line in maps.splitlines() if "openblas" in line.split()[-1].lower()})
    for path in paths:
        try:
            lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_GLOBAL)
        except OSError:
            continue
        found = {}
        for name, symbols in _BLAS_SYMBOLS.items():
            for symbol in symbols:
                if hasattr(lib, symbol):
                    found[name] = ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value
                    break
        if len(found) == len(_BLAS_SYMBOLS):
            return found
    return {}


def find_compiler() -> str:
    chosen = flags.CC.raw()
    for cc in ([chosen] if chosen else ["cc", "gcc", "clang"]):
        if shutil.which(cc):
            return cc
    raise CompileError("no C compiler found (install gcc or clang, or set FUSEGRAD_CC)")


def _open_library(path: Path, mode: int, symbols: Sequence[str]) -> ctypes.CDLL:
    """Load a shared library that must define `symbols`; raises cache.Unusable when it cannot."""
    try:
        problem = elf.defect(path.read_bytes())
        if problem is not None:
            raise cache.Unusable(f"{path.name}: {problem}")
        lib = ctypes.CDLL(str(path), mode=mode)
    except OSError as e:
        raise cache.Unusable(f"{path.name} does not load: {e}") from None
    missing = [name for name in symbols if not hasattr(lib, name)]
    if missing:
        raise cache.Unusable(f"{path.name} lacks {', '.join(missing)}")
    return lib


def _links_libmvec(cc: str) -> bool:
    """Whether glibc's vector math library links here (x86-64 glibc); kernels then vectorize exp/log/sin."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text("#include <math.h>\nint main(void) { return (int)expf(0.0f) - 1; }\n")
        proc = subprocess.run([cc, str(src), "-o", str(Path(tmp) / "probe"), "-lmvec", "-lm"],
                              capture_output=True, check=False)
        return proc.returncode == 0


@dataclass(frozen=True)
class Simd:
    """The vector registers kernels compiled with -march=native get: bytes each, and how many; `amx`:
    whether they may use the AMX tile unit for bfloat16 products (the target has it and the kernel
    let this process use it); `avx512_bf16`: whether the target has AVX-512's bfloat16 dot products."""

    width: int
    registers: int
    amx: bool = False
    avx512_bf16: bool = False


ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 0x1023, 18
SYS_ARCH_PRCTL = 158  # x86-64 Linux


def _amx_permitted() -> bool:
    """Ask Linux for the AMX tile state (off by default: the registers take 8 KiB of every context
    switch); without that permission a tile instruction kills the process."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0


def _probe_target(cc: str) -> tuple[Simd, str]:
    """The vector unit -march=native targets here, and a digest of every target macro: code built
    for one instruction set must never be loaded from the cache on a machine that lacks it."""
    proc = subprocess.run([cc, "-march=native", "-dM", "-E", "-x", "c", os.devnull],
                          capture_output=True, text=True, check=False)
    macros = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("#define ")}
    if "__AVX512F__" in macros:
        simd = Simd(64, 32, {"__AMX_TILE__", "__AMX_BF16__"} <= macros and _amx_permitted(),
                    "__AVX512BF16__" in macros)
    elif "__AVX__" in macros:
        simd = Simd(32, 16)
    elif "__aarch64__" in macros:
        simd = Simd(16, 32)
    else:
        simd = Simd(16, 16)
    return simd, hashlib.sha256(proc.stdout.encode()).hexdigest()[:16]


def _compiler_identity(cc: str, target: str) -> str:
    out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False)
    version = out.stdout.splitlines()[0] if out.stdout else cc
    return f"{version}; target {target}"


# kernels round each operation's result as written: a product and a sum contracted into one fused
# multiply-add would skip a rounding (a half-precision kernel then differs from PyTorch by half ulps);
# the support library's micro-kernels keep their fused multiply-adds
KERNEL_CFLAGS = ("-ffp-contract=off",)
SEQUENCE_CFLAGS = ("-O1", "-shared", "-fPIC")  # runners only call kernels: compile them fast
RUNNER_MAX_ARGS = 32  # the most kernel parameters the table-driven runner can pass


def _runner_source() -> str:
    """C of the table-driven runner, built once per machine: it runs any captured list of kernels
    from a plan of (parameter count, then slot and byte offset per parameter) per launch, each
    kernel called through a pointer typed for its parameter count (all parameters are pointers)."""
    cases = []
    for n in range(RUNNER_MAX_ARGS + 1):
        params = ", ".join(["void *"] * n) or "void"
        cases.append(f"    case {n}: ((void (*)({params}))f[i])({', '.join(f'a[{j}]' for j in range(n))}); break;")
    return "\n".join([
        "void fg_run_plan(long n, void *const *f, const long *plan, void *const *s) {",
        f"  void *a[{RUNNER_MAX_ARGS}];",
        "  for (long i = 0; i < n; i++) {",
        "    long m = *plan++;",
        "    for (long j = 0; j < m; j++, plan += 2) a[j] = (char *)s[plan[0]] + plan[1];",
        "    switch (m) {", *cases, "    }", "  }", "}", ""])


def _sequence_source(launches: Sequence[Sequence[tuple[int, int]]]) -> str:
    """C that runs one captured list of kernels in one call (for kernels with more parameters
    than the table-driven runner passes): kernel i gets, for each parameter, the pointer in slot
    `slot` plus `offset` bytes."""
    lines = ["void fg_run_sequence(void *const *f, void *const *s) {"]
    for i, args in enumerate(launches):
        params = ", ".join(["void *"] * len(args))
        values = ", ".join(f"(char *)s[{slot}] + {offset}" if offset else f"s[{slot}]" for slot, offset in args)
        lines.append(f"  ((void (*)({params}))f[{i}])({values});")
    lines.append("}")
    return "\n".join(lines) + "\n"


class CPUSequence:
    """A captured list of kernel launches, run by one native call that releases the GIL.

    The caller fills a pointer table (`new_slots()`), one entry per distinct buffer, and may
    change entries between runs (inputs, buffers that swap roles). `run` calls a runner given
    the kernels' addresses, and the plan of their arguments where the runner is table-driven.
    """

    def __init__(self, runner: ctypes._CFuncPtr, programs: Sequence["CPUProgram"], nslots: int,
                 plan: Sequence[int] | None, library: "_Library | None" = None):
        fns = (ctypes.c_void_p * max(len(programs), 1))(*[prog.address for prog in programs])
        if plan is None:
            self._args: tuple = (fns,)
        else:
            self._args = (len(programs), fns, (ctypes.c_long * max(len(plan), 1))(*plan))
        self._runner = runner
        self._library = library  # a runner generated for this sequence: unloaded with it
        self._programs = programs  # the runner calls them by address: they must stay loaded
        self._nslots = max(nslots, 1)

    def new_slots(self) -> ctypes.Array:
        return (ctypes.c_void_p * self._nslots)()

    def run(self, slots: ctypes.Array) -> None:
        self._runner(*self._args, slots)


class _Library:
    """A loaded translation unit of kernels, unloaded (dlclose) when the last program compiled in it
    dies: plans, the program cache and jit replays hold programs, so none runs after this. libgomp,
    whose threads outlive every parallel region, stays loaded through the support library."""

    __slots__ = ("_handle",)

    def __init__(self, lib: ctypes.CDLL):
        self._handle = lib._handle

    def __del__(self, _exiting: Any = sys.is_finalizing) -> None:
        if not _exiting():  # at exit the process unmaps everything anyway
            _ctypes.dlclose(self._handle)


class CPUProgram:
    """A compiled kernel: call with device buffers in parameter order."""

    __slots__ = ("name", "_fn", "_library")

    def __init__(self, name: str, fn: ctypes._CFuncPtr, library: _Library | None = None):
        self.name = name
        self._fn = fn
        self._library = library  # keeps the code loaded while the program lives

    def call_pointers(self, pointers: Sequence[int]) -> float:
        """Run on raw device pointers; returns the seconds it took."""
        start = time.perf_counter()
        self._fn(*pointers)
        return time.perf_counter() - start

    @property
    def address(self) -> int:
        """The kernel's entry point, for running it from native code."""
        return ctypes.cast(self._fn, ctypes.c_void_p).value

    def __call__(self, buffers: Sequence[Buffer]) -> float:
        args = [CPUDevice.pointer(b) for b in buffers]
        start = time.perf_counter()
        self._fn(*args)
        return time.perf_counter() - start


class CPUDevice:
    kind = "cpu"
    host_memory = True  # whether buffers live in host memory (reading one back then needs no synchronization)
    sequence_keeps_pointers = False  # a replay reads its pointer table afresh every run

    def __init__(self, name: str = "cpu"):
        self.name = name
        self.pool = HostPool()
        self.allocator = CountingAllocator(name, self.pool.take, self.pool.give)
        self._lock = threading.Lock()
        self._compiler: tuple[str, str, tuple[str, ...]] | None = None
        self._simd: Simd | None = None
        self._support: dict[str, ctypes.CDLL] = {}
        self._runner: ctypes._CFuncPtr | None = None
        self._blas: dict[str, int] | None = None

    # memory
    def alloc(self, nbytes: int) -> Buffer:
        return self.allocator.alloc(nbytes)

    def empty_cache(self) -> None:
        """Let the released buffers the allocator keeps for reuse go."""
        self.pool.clear()

    def sub_buffer(self, base: Buffer, offset: int, nbytes: int) -> Buffer:
        """Bytes [offset, offset + nbytes) of `base`, sharing its memory."""
        return Buffer(self.name, nbytes, base.handle[offset:offset + nbytes], base, offset)

    def copy_in(self, buf: Buffer, data: np.ndarray) -> None:
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        buf.handle[: raw.size] = raw

    def copy_within(self, dst: Buffer, src: Buffer, nbytes: int) -> None:
        dst.handle[:nbytes] = src.handle[:nbytes]

    def copy_out(self, buf: Buffer, np_dtype: np.dtype, count: int) -> np.ndarray:
        return buf.handle[: count * np_dtype.itemsize].view(np_dtype).copy()

    # compilation
    def compiler(self) -> tuple[str, str, tuple[str, ...]]:
        """(compiler, its version line and target digest, the full flag list); probed once per process."""
        if self._compiler is None:
            cc = find_compiler()
            extra = ("-DFG_LIBMVEC", "-lmvec") if _links_libmvec(cc) else ()
            self._simd, target = _probe_target(cc)
            self._compiler = (cc, _compiler_identity(cc, target), CFLAGS + extra + ("-lm",))
        return self._compiler

    def simd(self) -> Simd:
        """The vector registers of the compiled kernels (sizes the GEMM micro-kernel's tiles)."""
        if self._simd is None:
            self.compiler()
        return self._simd

    def kernel_cflags(self) -> tuple[str, ...]:
        """The flags translation units of kernels compile with. On AVX-512 targets loops are
        vectorized 256 bits wide: GCC 12's 512-bit loop vectorizer miscompiles a count accumulated
        in memory over a short inner loop (tests/test_ops_reduce.py); explicit 512-bit vector types
        (the GEMM micro-kernels, the lanes of sums) keep their width."""
        wide = ("-mprefer-vector-width=256",) if self.simd().width == 64 else ()
        return self.compiler()[2] + KERNEL_CFLAGS + wide

    def cache_key(self, source: str, cflags: tuple[str, ...] | None = None) -> str:
        """The disk cache's key of one translation unit: source, compiler identity and flags."""
        _, identity, default_flags = self.compiler()
        return cache.cache_key(source, identity, " ".join(default_flags if cflags is None else cflags))

    def _load(self, source: str, mode: int = ctypes.DEFAULT_MODE, cflags: tuple[str, ...] | None = None,
              symbols: Sequence[str] = ()) -> ctypes.CDLL:
        """Build (or find in the disk cache) and load one translation unit, which must define `symbols`.
        A cached library that does not load or lacks one (corrupt, foreign) is a miss: it is rebuilt."""
        cc, _, default_flags = self.compiler()
        cflags = default_flags if cflags is None else cflags
        return cache.fetch(self.cache_key(source, cflags), "so", lambda out: self._build(cc, cflags, source, out),
                           lambda path: _open_library(path, mode, symbols))

    def compile(self, source: str, names: Sequence[str], nargs: Sequence[int], support: str = "") -> list[CPUProgram]:
        """Compile one translation unit holding every named kernel; cached on disk by source+compiler+flags.

        `support` is a library the kernels call into; it is built once and loaded with global
        symbol visibility so the kernels' undefined references resolve to it.
        """
        with self._lock:  # units compile concurrently; the support library loads once, before them
            if support and support not in self._support:
                self._plan_runner()  # once per machine, like the support library: a first jit call compiles none
                self._support[support] = lib = self._load(support, ctypes.RTLD_GLOBAL)
                for name, address in (self.vendor_blas() or {}).items():
                    if hasattr(lib, f"fg_blas_{name}"):  # the support library calls the vendor BLAS through these
                        ctypes.c_void_p.in_dll(lib, f"fg_blas_{name}").value = address
        lib = self._load(source, symbols=names, cflags=self.kernel_cflags())
        library = _Library(lib)
        programs = []
        for name, n in zip(names, nargs):
            fn = lib[name]  # not getattr: the CDLL would keep the function in a cycle with itself
            fn.argtypes = [ctypes.c_void_p] * n
            fn.restype = None
            programs.append(CPUProgram(name, fn, library))
        return programs

    def sequence(self, launches: Sequence[tuple[CPUProgram, Sequence[tuple[int, int]]]], nslots: int) -> CPUSequence:
        """Kernels to run in order by one native call; each argument is a (slot, byte offset).
        The table-driven runner runs them (nothing to compile for a new step), unless a kernel
        has more parameters than it passes: then a runner is generated for these launches."""
        programs = [prog for prog, _ in launches]
        with self._lock:
            if all(len(args) <= RUNNER_MAX_ARGS for _, args in launches):
                plan = [x for _, args in launches for x in (len(args), *(v for arg in args for v in arg))]
                return CPUSequence(self._plan_runner(), programs, nslots, plan)
            lib = self._load(_sequence_source([args for _, args in launches]), cflags=SEQUENCE_CFLAGS,
                             symbols=("fg_run_sequence",))
        fn = lib["fg_run_sequence"]
        fn.argtypes = [ctypes.c_void_p] * 2
        fn.restype = None
        return CPUSequence(fn, programs, nslots, None, _Library(lib))

    def _plan_runner(self) -> ctypes._CFuncPtr:
        """The table-driven runner (built on first use, or with the first support library; call
        with the lock held)."""
        if self._runner is None:
            fn = self._load(_runner_source(), cflags=SEQUENCE_CFLAGS, symbols=("fg_run_plan",)).fg_run_plan
            fn.argtypes = [ctypes.c_long] + [ctypes.c_void_p] * 3
            fn.restype = None
            self._runner = fn
        return self._runner

    def vendor_blas(self) -> dict[str, int] | None:
        """Addresses of sgemm/dgemm (ILP64 CBLAS) of the OpenBLAS numpy has already loaded into this
        process (found in /proc/self/maps, so never a second copy), or None when there is none."""
        if self._blas is None:
            self._blas = _find_loaded_blas()
        return self._blas or None

    @staticmethod
    def pointer(buf: Buffer) -> int:
        address = buf.address
        if address is None:
            try:  # 0.7 us against ndarray.ctypes.data's 1.8, paid once per eager kernel output
                address = ctypes.addressof(ctypes.c_char.from_buffer(buf.handle))
            except (TypeError, ValueError):  # a read-only or empty array
                address = buf.handle.ctypes.data
            buf.address = address
        return address

    @staticmethod
    def _build(cc: str, cflags: tuple[str, ...], source: str, out: Path) -> None:
        src = out.with_name(out.name + ".c")  # a temporary of the cache's (`*.tmp*`), never taken for an entry
        src.write_text(source)
        try:
            libs = [f for f in cflags if f.startswith("-l")]  # libraries go after the source
            flags = [f for f in cflags if not f.startswith("-l")]
            proc = subprocess.run([cc, *flags, "-o", str(out), str(src), *libs],
                                  capture_output=True, text=True, check=False)
        finally:
            src.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise CompileError(f"{cc} failed to compile generated kernels (exit {proc.returncode})",
                               source, proc.stderr)

    def synchronize(self) -> None:
        """CPU kernels run synchronously."""

    def get_num_threads(self) -> int:
        """Threads a parallel region of the generated kernels starts with (OpenMP's max threads)."""
        try:
            return int(ctypes.CDLL("libgomp.so.1").omp_get_max_threads())
        except OSError:
            return 1

    def set_num_threads(self, n: int) -> None:
        """Threads of the generated kernels (OpenMP) and of the vendor BLAS they may call."""
        os.environ["OMP_NUM_THREADS"] = str(n)
        try:
            ctypes.CDLL("libgomp.so.1").omp_set_num_threads(ctypes.c_int(n))
        except OSError:
            pass
        blas = self.vendor_blas()
        if blas:
            ctypes.CFUNCTYPE(None, ctypes.c_int)(blas["set_num_threads"])(n)

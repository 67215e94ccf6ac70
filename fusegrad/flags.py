"""One typed registry of the environment settings fusegrad reads. Documented in docs/debugging.md."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Flag:
    name: str
    default: str
    help: str

    def raw(self) -> str:
        return os.environ.get(self.name, self.default)


DEBUG = Flag("FUSEGRAD_DEBUG", "0", "1 kernel launches with times, 2 + schedule, 3 + loop IR, 4 + source")
CACHE_DIR = Flag("FUSEGRAD_CACHE_DIR", "", "kernel cache folder (default ~/.cache/fusegrad)")
CACHE_MAX_MB = Flag("FUSEGRAD_CACHE_MAX_MB", "1024", "size bound of the kernel cache folder in MB (0: unbounded)")
DEVICE = Flag("FUSEGRAD_DEVICE", "", "default device for new tensors (over the config file's default_device; else cpu)")
CC = Flag("FUSEGRAD_CC", "", "C compiler for the CPU device (default: cc, gcc or clang, first found)")
SEARCH = Flag("FUSEGRAD_SEARCH", "0", "N > 0: time GEMM tile candidates N times on first use of a shape, keep the best")
CONFIG = Flag("FUSEGRAD_CONFIG", "", "device configuration file (default ~/.config/fusegrad/config.json)")
ALL_FLAGS = (DEBUG, CACHE_DIR, CACHE_MAX_MB, DEVICE, CC, SEARCH, CONFIG)


def search_repeats() -> int:
    try:
        return max(int(SEARCH.raw() or 0), 0)
    except ValueError:
        return 0


def debug_level() -> int:
    """Read on every use so `os.environ["FUSEGRAD_DEBUG"] = "2"` takes effect at once."""
    try:
        return int(DEBUG.raw() or 0)
    except ValueError:
        return 0


def cache_dir() -> Path:
    raw = CACHE_DIR.raw()
    return Path(raw).expanduser() if raw else Path.home() / ".cache" / "fusegrad"


def cache_max_bytes() -> int | None:
    """The kernel cache's size bound in bytes, or None when unbounded (0 or less); bad values keep the default."""
    try:
        megabytes = float(CACHE_MAX_MB.raw() or CACHE_MAX_MB.default)
    except ValueError:
        megabytes = float(CACHE_MAX_MB.default)
    if not math.isfinite(megabytes):
        megabytes = float(CACHE_MAX_MB.default)
    return int(megabytes * 2**20) if megabytes > 0 else None

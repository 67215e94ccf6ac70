"""Kernel launch records: `with fg.profile() as p:` collects every launch in `p.kernels`.

`p.table()` sums them per kernel (calls, time, estimated GFLOP/s and GB/s) and
`p.export_chrome_trace(path)` writes a timeline that chrome://tracing and Perfetto open.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .. import flags


@dataclass(frozen=True)
class KernelLaunch:
    name: str
    device: str
    seconds: float
    bytes_moved: int  # estimate: every input read once, the output written once
    work: int  # estimate of elementwise operations
    shape: tuple[int, ...]
    op: str = ""  # the primitive ops fused into the kernel, inputs first (e.g. "MUL SUM MAX")
    flops: int = 0  # estimate: one operation per element each fused op computes


@dataclass
class KernelStats:
    """All launches of one kernel (by name and device) in a profile."""

    name: str
    device: str
    op: str
    calls: int = 0
    seconds: float = 0.0
    flops: int = 0
    bytes_moved: int = 0

    @property
    def mean_seconds(self) -> float:
        return self.seconds / self.calls if self.calls else 0.0

    @property
    def gflops(self) -> float:
        """Estimated billions of operations per second."""
        return self.flops / self.seconds / 1e9 if self.seconds > 0 else 0.0

    @property
    def gbps(self) -> float:
        """Estimated gigabytes read and written per second."""
        return self.bytes_moved / self.seconds / 1e9 if self.seconds > 0 else 0.0


# sort keys of Profile.table: (how to read a KernelStats, largest first?)
_SORT_KEYS: dict[str, tuple[str, bool]] = {
    "time": ("seconds", True), "calls": ("calls", True), "mean": ("mean_seconds", True),
    "gflops": ("gflops", True), "gbps": ("gbps", True), "name": ("name", False),
}


@dataclass
class Profile:
    """Launch records gathered while the `with` block ran."""

    kernels: list[KernelLaunch] = field(default_factory=list)
    # perf_counter() when each launch was recorded (its end), and when the block began: the trace timeline
    _ends: list[float] = field(default_factory=list, repr=False, compare=False)
    _began: float = field(default=0.0, repr=False, compare=False)

    @property
    def total_seconds(self) -> float:
        return sum(k.seconds for k in self.kernels)

    def __enter__(self) -> "Profile":
        self._began = time.perf_counter()
        _active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _active.remove(self)

    def by_kernel(self) -> list[KernelStats]:
        """One summary per kernel (name and device), in order of first launch."""
        stats: dict[tuple[str, str], KernelStats] = {}
        for k in self.kernels:
            s = stats.get((k.name, k.device))
            if s is None:
                s = stats[(k.name, k.device)] = KernelStats(k.name, k.device, k.op)
            s.calls += 1
            s.seconds += k.seconds
            s.flops += k.flops
            s.bytes_moved += k.bytes_moved
        return list(stats.values())

    def table(self, sort_by: str = "time", top: int | None = 20) -> str:
        """A text table of the launches per kernel, most expensive first (`print(p.table())`)."""
        if sort_by not in _SORT_KEYS:
            raise ValueError(f"sort_by must be one of {sorted(_SORT_KEYS)}, got {sort_by!r}")
        if top is not None and top < 0:
            raise ValueError(f"top must be None or >= 0, got {top}")
        attr, descending = _SORT_KEYS[sort_by]
        rows = sorted(self.by_kernel(), key=lambda s: getattr(s, attr), reverse=descending)
        shown = rows if top is None else rows[:top]
        total = self.total_seconds
        head = (f"{'kernel':<28} {'op':<30} {'device':<8} {'calls':>6} {'total ms':>10} {'mean us':>10} "
                f"{'GFLOP/s':>9} {'GB/s':>8} {'time':>6}")
        lines = [head, "-" * len(head)]
        for s in shown:
            share = s.seconds / total if total > 0 else 0.0
            lines.append(f"{_clip(s.name, 28):<28} {_clip(s.op, 30):<30} {_clip(s.device, 8):<8} {s.calls:>6} "
                         f"{s.seconds * 1e3:>10.3f} {s.mean_seconds * 1e6:>10.1f} {_rate(s.gflops):>9} "
                         f"{_rate(s.gbps):>8} "
                         f"{share:>6.1%}")
        lines.append("-" * len(head))
        more = f" ({len(rows) - len(shown)} more not shown)" if len(shown) < len(rows) else ""
        lines.append(f"{len(self.kernels)} launches of {len(rows)} kernels{more}, {total * 1e3:.3f} ms in kernels")
        return "\n".join(lines)

    def export_chrome_trace(self, path: str | os.PathLike) -> None:
        """Write the launches as Chrome trace JSON (open in chrome://tracing or ui.perfetto.dev)."""
        pid = os.getpid()
        devices: dict[str, int] = {}
        events: list[dict[str, Any]] = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                                         "args": {"name": "fusegrad"}}]
        timed = len(self._ends) == len(self.kernels)
        cursor = 0.0
        for i, k in enumerate(self.kernels):
            if k.device not in devices:
                devices[k.device] = len(devices) + 1
                events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": devices[k.device],
                               "args": {"name": f"kernels on {k.device}"}})
            # launches appended to `kernels` by hand have no timestamp: lay those end to end
            start = self._ends[i] - k.seconds - self._began if timed else cursor
            cursor = start + k.seconds
            events.append({"name": k.name, "cat": "kernel", "ph": "X", "ts": max(start, 0.0) * 1e6,
                           "dur": k.seconds * 1e6, "pid": pid, "tid": devices[k.device],
                           "args": {"op": k.op, "shape": list(k.shape), "bytes_moved": k.bytes_moved,
                                    "flops": k.flops}})
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)


def _rate(value: float) -> str:
    """Two decimals, or three significant digits for small rates (tiny kernels would all read 0.00)."""
    return f"{value:.2f}" if value >= 1 or value == 0 else f"{value:.3g}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


_active: list[Profile] = []
_lock = threading.Lock()  # launches from several threads: keep each profile's two lists aligned


def profiling() -> bool:
    """Whether a launch record would be kept or printed (callers skip building one otherwise)."""
    return bool(_active) or flags.debug_level() >= 1


def record(launch: KernelLaunch) -> None:
    if _active:
        now = time.perf_counter()
        with _lock:
            for p in _active:
                p.kernels.append(launch)
                p._ends.append(now)
    if flags.debug_level() >= 1:
        print(f"fusegrad: {launch.device} {launch.name:<32} {str(launch.shape):<20} "
              f"{launch.seconds * 1e6:9.1f} us  {launch.bytes_moved / 1e6:8.3f} MB", file=sys.stderr)

"""Kernel launch records: `with fg.profile() as p:` collects every launch in `p.kernels`."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

from .. import flags


@dataclass(frozen=True)
class KernelLaunch:
    name: str
    device: str
    seconds: float
    bytes_moved: int  # estimate: every input read once, the output written once
    work: int  # estimate of elementwise operations
    shape: tuple[int, ...]


@dataclass
class Profile:
    """Launch records gathered while the `with` block ran."""

    kernels: list[KernelLaunch] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(k.seconds for k in self.kernels)

    def __enter__(self) -> "Profile":
        _active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _active.remove(self)


_active: list[Profile] = []


def record(launch: KernelLaunch) -> None:
    for p in _active:
        p.kernels.append(launch)
    if flags.debug_level() >= 1:
        print(f"fusegrad: {launch.device} {launch.name:<32} {str(launch.shape):<20} "
              f"{launch.seconds * 1e6:9.1f} us  {launch.bytes_moved / 1e6:8.3f} MB", file=sys.stderr)

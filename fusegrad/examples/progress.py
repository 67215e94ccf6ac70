"""A progress bar: tqdm when installed, else a small built-in one on stderr."""
from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator


class _Bar:
    """The subset of tqdm the examples use: iteration, set_postfix, close."""

    def __init__(self, iterable: Iterable[Any], total: int, desc: str):
        self.iterable, self.total, self.desc = iterable, total, desc
        self.count, self.postfix, self.start, self.last = 0, "", time.perf_counter(), 0.0
        self.width = 0  # of the last drawn bar, which write() blanks

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable:
            yield item
            self.count += 1
            now = time.perf_counter()
            if now - self.last > 0.2 or self.count == self.total:
                self.last = now
                self._draw(now)
        sys.stderr.write("\n")

    def write(self, line: str) -> None:
        """Print a line to stdout above the bar (the bar is redrawn at the next step)."""
        sys.stderr.write("\r" + " " * self.width + "\r")
        sys.stderr.flush()
        print(line, flush=True)

    def _draw(self, now: float) -> None:
        frac = self.count / max(self.total, 1)
        filled = int(frac * 30)
        rate = self.count / max(now - self.start, 1e-9)
        text = (f"{self.desc}: {frac:4.0%}|{'#' * filled}{'.' * (30 - filled)}| "
                f"{self.count}/{self.total} [{now - self.start:4.1f}s, {rate:6.1f}it/s{self.postfix}]")
        self.width = len(text)
        sys.stderr.write("\r" + text)
        sys.stderr.flush()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", " + ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        """Nothing to release; present for tqdm compatibility."""


def progress(iterable: Iterable[Any], total: int, desc: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return _Bar(iterable, total, desc)
    return tqdm(iterable, total=total, desc=desc, leave=True, dynamic_ncols=True)

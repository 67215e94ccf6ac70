"""On-disk artifact cache (compiled kernels). Writes are atomic; corrupt entries are rebuilt.

Each entry `<key>.<ext>` has a sidecar `<key>.<ext>.sha256` written after it; an entry whose
digest does not match (truncated, overwritten, half-copied) is treated as missing. Processes that
build the same entry at once replace it and its sidecar as one step under a lock on the folder:
two builds of one source need not be byte-identical (the compiler records file names), so
otherwise one process's digest could end up beside the other's file.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from .. import flags


def cache_key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def lookup(key: str, ext: str) -> Path | None:
    """The cached file for `key`, or None when absent or failing its checksum."""
    path = flags.cache_dir() / f"{key}.{ext}"
    sidecar = path.with_name(path.name + ".sha256")
    try:
        if sidecar.read_text().strip() == _digest(path):
            return path
    except OSError:
        pass
    return None


def store(key: str, ext: str, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp_path)` and move its output into the cache atomically; returns the entry."""
    folder = flags.cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.{ext}"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{key}.", suffix=f".{ext}.tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        build(tmp_path)
        digest = _digest(tmp_path)
        with _folder_lock(folder):
            os.replace(tmp_path, path)
            _atomic_write(path.with_name(path.name + ".sha256"), digest.encode())
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Exclusive lock on the cache folder, held only while an entry and its digest are swapped in."""
    with open(folder / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def invalidate(key: str, ext: str) -> None:
    path = flags.cache_dir() / f"{key}.{ext}"
    path.with_name(path.name + ".sha256").unlink(missing_ok=True)

"""On-disk artifact cache (compiled kernels, tuning choices): private, checked, bounded. docs/cache.md.

Entries: each `<key>.<ext>` has a sidecar `<key>.<ext>.sha256` written after it; an entry whose digest
does not match (truncated, overwritten, half-copied) is missing. Processes that build the same entry
at once replace it and its sidecar as one step under a lock on the folder: two builds of one source
need not be byte-identical (the compiler records file names), so otherwise one process's digest could
end up beside the other's file.

Trust: what is loaded from here runs as code. The folder is made 0700 and its files 0600 (0700 for
libraries); an existing folder, and every entry read from it, must belong to this user and be
writable by nobody else. A folder refused, or one that cannot be created or written (read-only,
full), is replaced for the rest of the process by a private temporary folder, with one CacheWarning.

Misses: a loader raises `Unusable` for an entry it cannot use (does not load, lacks a symbol, bad
JSON); `find` and `fetch` then treat it as missing, and the rebuild replaces it atomically.

Size (`evict`): past FUSEGRAD_CACHE_MAX_MB the least recently used entries (access time, set on each
use) are deleted until the folder is under EVICT_TO of the bound.
"""
from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from .. import flags
from ..errors import CacheWarning, CompileError

T = TypeVar("T")
LOCK_WAIT_S = 10.0  # the lock covers two renames: one held longer belongs to a stuck process
STALE_TEMP_S = 3600.0  # a build's temporary file this old was left by a process that died
EVICT_TO = 0.9  # eviction stops under this fraction of the bound, so the next writes do not evict again
SIDECAR_BYTES = 64  # a digest sidecar's size, counted with each new entry
# errors of writing into the folder (not of a build): the folder is then given up for a private one
_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


class Unusable(Exception):
    """Raised by a loader for an entry it cannot use (corrupt, foreign, gone): a cache miss."""


@dataclass
class _Folder:
    """What this process may do with one configured cache folder, and where it writes instead."""

    path: Path
    readable: bool
    writable: bool
    private: Path | None = None


_folders: dict[Path, _Folder] = {}
_sizes: dict[Path, int] = {}  # bytes in a folder: its last scan plus this process's writes since
_warned: set[object] = set()
_state = threading.RLock()  # reentrant: opening a folder under it may warn


def cache_key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _uid() -> int:
    """The user every trusted file and folder must belong to."""
    return os.geteuid()


def _distrust(st: os.stat_result) -> str | None:
    """Why a file or folder with this status must not be trusted, or None."""
    if st.st_uid != _uid():
        return f"it belongs to uid {st.st_uid}, not to this user (uid {_uid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"other users can write to it (mode {stat.S_IMODE(st.st_mode):03o})"
    return None


def _warn_once(key: object, message: str) -> None:
    with _state:
        if key in _warned:
            return
        _warned.add(key)
    package = str(Path(__file__).resolve().parents[1])
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):  # name the user's line
        frame, level = frame.f_back, level + 1
    warnings.warn(message, CacheWarning, stacklevel=level)


def _give_up(folder: Path, problem: str, fix: str) -> None:
    _warn_once(folder, f"fusegrad kernel cache {folder}: {problem}; this process uses a private temporary "
                       f"folder instead. Fix: {fix}")


def _open(path: Path) -> _Folder:
    """Create the folder private (0700), or check the one that is there."""
    try:
        path.mkdir(mode=0o700, parents=True)
        os.chmod(path, 0o700)  # mkdir's mode passes through the umask
    except FileExistsError:
        pass
    except OSError as e:
        _give_up(path, f"it cannot be created ({e.strerror})", "set FUSEGRAD_CACHE_DIR to a folder you can write")
        return _Folder(path, False, False)
    try:
        st = os.stat(path)
    except OSError as e:
        _give_up(path, f"it cannot be read ({e.strerror})", "set FUSEGRAD_CACHE_DIR to a folder you can write")
        return _Folder(path, False, False)
    reason = _distrust(st) if stat.S_ISDIR(st.st_mode) else "it is not a folder"
    if reason is not None:
        elsewhere = "set FUSEGRAD_CACHE_DIR to a folder only you can write"
        if st.st_uid == _uid() and stat.S_ISDIR(st.st_mode):
            fix = f"`chmod 700 {path}`, or {elsewhere}"
        else:
            fix = f"{elsewhere} (or remove {path}: fusegrad then creates it private)"
        _give_up(path, f"refused, {reason}", fix)
        return _Folder(path, False, False)
    return _Folder(path, True, True)


def _folder() -> _Folder:
    path = flags.cache_dir()  # read on every use: tests and users may point it elsewhere at any time
    with _state:
        if path not in _folders:
            _folders[path] = _open(path)
        return _folders[path]


def _private(f: _Folder) -> Path:
    """This process's own folder standing in for `f` (0700, made on first need, removed at exit)."""
    with _state:
        if f.private is None:
            f.private = Path(tempfile.mkdtemp(prefix="fusegrad-cache-"))
            atexit.register(shutil.rmtree, f.private, ignore_errors=True)
        return f.private


def folder() -> Path:
    """The folder new entries are written to now: the configured one, or this process's stand-in."""
    f = _folder()
    return f.path if f.writable else _private(f)


def lookup(key: str, ext: str) -> Path | None:
    """The cached file for `key`, or None when absent, failing its checksum, or not to be trusted."""
    f = _folder()
    for place in (f.private, f.path if f.readable else None):
        if place is not None and _intact(place / f"{key}.{ext}"):
            _touch(place / f"{key}.{ext}")
            return place / f"{key}.{ext}"
    return None


def _intact(path: Path) -> bool:
    """Whether the entry and its sidecar are plain files of this user that nobody else can write, and
    the file has the digest its sidecar records."""
    sidecar = _sidecar(path)
    try:
        for p in (path, sidecar):
            st = os.lstat(p)
            reason = _distrust(st) if stat.S_ISREG(st.st_mode) else "it is not a plain file"
            if reason is not None:
                _warn_once(path.parent / ".entries", f"fusegrad kernel cache entry {p} is not used, {reason}; "
                           f"it is rebuilt (other entries of {path.parent} like it are skipped without a warning)")
                return False
        return sidecar.read_text().strip() == _digest(path)
    except (OSError, UnicodeDecodeError):
        return False


def _touch(path: Path) -> None:
    """Mark the entry used now, for eviction's order: its access time (the modification time stays the build's)."""
    with contextlib.suppress(OSError):
        os.utime(path, ns=(time.time_ns(), os.stat(path).st_mtime_ns))


def find(key: str, ext: str, load: Callable[[Path], T]) -> T | None:
    """The cached entry as `load` returns it, or None when absent or unusable (then forgotten: a miss)."""
    path = lookup(key, ext)
    if path is None:
        return None
    try:
        return load(path)
    except Unusable:
        invalidate(key, ext)
        return None


def fetch(key: str, ext: str, build: Callable[[Path], None], load: Callable[[Path], T]) -> T:
    """The entry as `load` returns it: from the cache when it is there and loads, else built, loaded
    (before it is published, so a bad build never enters the cache) and stored."""
    found = find(key, ext, load)
    if found is not None:
        return found
    loaded: list[T] = []

    def build_and_load(out: Path) -> None:
        build(out)
        try:
            loaded.append(load(out))
        except Unusable as e:
            raise CompileError(f"a freshly built {ext} file does not load: {e}") from None

    store(key, ext, build_and_load)
    return loaded[-1]


def read(path: Path) -> bytes:
    """A loader for `find`/`fetch`: the entry's bytes (a file deleted since its lookup is a miss)."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise Unusable(f"{path.name}: {e.strerror}") from None


def store(key: str, ext: str, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp_path)` and move its output into the cache atomically; returns the entry."""
    f = _folder()
    if f.writable:
        try:
            return _store_in(f.path, key, ext, build)
        except OSError as e:
            if e.errno not in _WRITE_ERRNOS:
                raise
            f.writable = False
            _give_up(f.path, f"it cannot be written ({e.strerror or e})",
                     "free space, or set FUSEGRAD_CACHE_DIR to a folder you can write")
    return _store_in(_private(f), key, ext, build)


def _temp_file(folder: Path, prefix: str, suffix: str) -> Path:
    """A new empty file (0600) in `folder`: every write into the cache starts here."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    os.close(fd)
    return Path(name)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = _temp_file(path.parent, path.name + ".", ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _store_in(folder: Path, key: str, ext: str, build: Callable[[Path], None]) -> Path:
    path = folder / f"{key}.{ext}"
    tmp = _temp_file(folder, f"{key}.", f".{ext}.tmp")
    try:
        build(tmp)
        os.chmod(tmp, 0o700 if os.stat(tmp).st_mode & stat.S_IXUSR else 0o600)  # a linker makes its output 0755
        digest = _digest(tmp)
        with _lock(folder, LOCK_WAIT_S):
            os.replace(tmp, path)
            _atomic_write(_sidecar(path), digest.encode())
    finally:
        tmp.unlink(missing_ok=True)
    _account(folder, path)
    return path


def _lock_file(folder: Path) -> int | None:
    """An open descriptor of the folder's lock file. One that cannot be opened or is not this user's
    plain file (a link, another user's) is replaced once; None when that fails too."""
    path = folder / ".lock"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError:
            fd = None
        if fd is not None:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and _distrust(st) is None:
                return fd
            os.close(fd)
        with contextlib.suppress(OSError):
            _atomic_write(path, b"")
    return None


@contextlib.contextmanager
def _lock(folder: Path, wait_s: float) -> Iterator[bool]:
    """Exclusive lock on the folder while entries are swapped in or evicted; yields whether it is held.
    A lock that cannot be had within `wait_s` (a stuck process holds it, the file system keeps no
    locks) is gone without: the worst that follows is a digest beside another build's file, a miss."""
    fd = _lock_file(folder)
    if fd is None:
        yield False
        return
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                held = False
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.005)
            except OSError:
                held = False
                break
        yield held
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def invalidate(key: str, ext: str) -> None:
    """Forget the entry wherever this process may write: its digest goes, so it reads as missing."""
    f = _folder()
    for place in (f.private, f.path if f.writable else None):
        if place is not None:
            with contextlib.suppress(OSError):
                _sidecar(place / f"{key}.{ext}").unlink(missing_ok=True)


def _account(folder: Path, path: Path) -> None:
    """Count a new entry into the folder's size; past the bound, scan the folder again and evict."""
    limit = flags.cache_max_bytes()
    if limit is None:
        return
    try:
        added = path.stat().st_size + SIDECAR_BYTES
    except OSError:
        added = SIDECAR_BYTES
    with _state:
        size = _sizes.get(folder)
        if size is not None and size + added <= limit:
            _sizes[folder] = size + added
            return
    left = evict(folder, limit, keep=path.name)
    with _state:
        _sizes[folder] = left


def _scan(folder: Path) -> dict[str, tuple[int, float]]:
    """Each entry's bytes (with its digest) and last use; temporary files of dead builds go on the way."""
    sizes: dict[str, int] = {}
    used: dict[str, float] = {}
    now = time.time()
    with os.scandir(folder) as found:
        for e in found:
            try:
                if e.name == ".lock" or not e.is_file(follow_symlinks=False):
                    continue  # subfolders (datasets) are no entries
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if ".tmp" in e.name:  # a build in progress (its output, a compiler's source beside it) or a dead one
                if now - st.st_mtime > STALE_TEMP_S:
                    with contextlib.suppress(OSError):
                        os.unlink(e.path)
                continue
            name = e.name.removesuffix(".sha256")
            sizes[name] = sizes.get(name, 0) + st.st_size
            if name == e.name:
                used[name] = st.st_atime
            else:
                used.setdefault(name, st.st_atime)
    return {name: (size, used[name]) for name, size in sizes.items()}


def evict(folder: Path, limit: int, keep: str = "") -> int:
    """Delete the least recently used entries (never `keep`) until the folder holds under EVICT_TO of
    `limit` bytes, when it holds more than `limit`; returns the bytes left. A process that loaded an
    entry before keeps it (an unlinked library stays mapped); one that looks for it later misses."""
    entries = _scan(folder)
    total = sum(size for size, _ in entries.values())
    if total <= limit:
        return total
    with _lock(folder, 0.0) as held:
        if not held:  # another process is evicting or swapping an entry in: a later write evicts
            return total
        for name in sorted(entries, key=lambda n: entries[n][1]):
            if total <= EVICT_TO * limit:
                break
            if name == keep:
                continue
            for p in (folder / (name + ".sha256"), folder / name):  # the digest first: a reader then misses
                with contextlib.suppress(OSError):
                    p.unlink()
            total -= entries[name][0]
    return total

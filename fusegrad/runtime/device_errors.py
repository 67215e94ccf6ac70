"""Errors that kernels find in data (an index out of range), reported through an error word.

Each device that ever ran a check has one small buffer, the error word: four int64s, zero while
nothing went wrong. A kernel that finds a bad element claims the word with an atomic
compare-and-swap on its low 32 bits, writing its message code there, then the bad value and its
position; later violations leave the first one standing. The host reads the word at the next
synchronization (a value read back, `synchronize`, the end of an `fg.jit` replay that checks), clears
it and raises the error the code names. The message codes are interned texts, so the same check
compiles to the same kernel on every call.
"""
from __future__ import annotations

import threading

import numpy as np

from ..errors import IndexOutOfRangeError
from . import registry
from .buffer import Buffer

WORDS = 4  # code (low 32 bits of the first), value, position, unused

_lock = threading.Lock()
_words: dict[str, Buffer] = {}
_codes: dict[tuple[str, type], int] = {}
_messages: list[tuple[str, type]] = [("", Exception)]  # code 0 is "no error"


def message_code(text: str, error: type[Exception] = IndexOutOfRangeError) -> int:
    """The code of a message template (fields `{value}` and `{position}`) and the exception it raises,
    the same for the same message."""
    with _lock:
        code = _codes.get((text, error))
        if code is None:
            code = _codes[(text, error)] = len(_messages)
            _messages.append((text, error))
        return code


def error_word(device: str) -> Buffer:
    """The device's error word, made (zeroed) on first use."""
    with _lock:
        word = _words.get(device)
        if word is None:
            dev = registry.get(device)
            word = dev.alloc(WORDS * 8)
            dev.copy_in(word, np.zeros(WORDS, np.int64))
            _words[device] = word
        return word


def uses_word(buffers: list[Buffer]) -> bool:
    """Does a kernel reading `buffers` report through an error word?"""
    return any(b is w for b in buffers for w in _words.values())


def raise_pending(device: str | None = None) -> None:
    """Raise the error a kernel recorded on `device` (every device with a word when None), clearing it."""
    for name, word in list(_words.items()):
        if device is not None and name != device:
            continue
        dev = registry.get(name)
        values = dev.copy_out(word, np.dtype(np.int64), WORDS)
        code = int(values[0]) & 0xFFFFFFFF
        if code:
            dev.copy_in(word, np.zeros(WORDS, np.int64))
            text, error = _messages[code] if code < len(_messages) else ("a kernel reported error {code}", RuntimeError)
            raise error(text.format(value=int(values[1]), position=int(values[2]), code=code))

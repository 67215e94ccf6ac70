"""A shape check of ELF shared objects before they are loaded from the kernel cache.

dlopen maps a library's segments as its headers describe them: a file cut short (a half-copied cache
entry whose digest was copied whole) is mapped past its end and the process dies of SIGBUS inside
dlopen. Checking that every header and segment lies within the file turns that into a cache miss.
"""
from __future__ import annotations

import struct

# per class (1: 32-bit, 2: 64-bit): where e_phoff/e_shoff and e_phentsize.. e_shnum sit in the file
# header, their formats, and where p_offset and p_filesz sit in a program header
_LAYOUT = {1: (28, "II", 42, 4, "I", 16), 2: (32, "QQ", 54, 8, "Q", 32)}


def defect(data: bytes) -> str | None:
    """Why `data` cannot be a whole ELF file (not ELF, cut short), or None when its parts all fit."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] not in _LAYOUT or data[5] not in (1, 2):
        return "not an ELF file"
    order = "<" if data[5] == 1 else ">"
    at_offsets, offsets, at_sizes, at_p_offset, word, at_p_filesz = _LAYOUT[data[4]]
    phoff, shoff = struct.unpack_from(order + offsets, data, at_offsets)
    phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHH", data, at_sizes)
    if phoff + phnum * phentsize > len(data) or shoff + shnum * shentsize > len(data):
        return f"its headers end past its {len(data)} bytes"
    for i in range(phnum):
        header = phoff + i * phentsize
        (offset,) = struct.unpack_from(order + word, data, header + at_p_offset)
        (size,) = struct.unpack_from(order + word, data, header + at_p_filesz)
        if offset + size > len(data):
            return f"a segment ends at byte {offset + size}, past its {len(data)} bytes"
    return None

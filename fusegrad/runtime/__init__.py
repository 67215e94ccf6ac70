"""Devices: buffers, allocators that count, compilers and kernel launch. One module per device."""

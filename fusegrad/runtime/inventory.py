"""What hardware each backend sees: a description and the total memory of every physical device,
in the order the backend numbers them. Cheap queries only: no contexts, queues or streams.

Each function is called only after its backend's `unavailable_reason()` returned None (so the
driver is imported and initialized) and may raise when the driver fails while listing.
"""
from __future__ import annotations

import os
import platform
from typing import NamedTuple

from .cuda_driver import bindings, check


class PhysicalDevice(NamedTuple):
    """One device as its driver reports it."""

    description: str
    memory: int  # total bytes


def cpu() -> tuple[PhysicalDevice, ...]:
    """The host: its CPU model and hardware threads, and physical RAM."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.partition(":")[2].strip() for line in f if line.startswith("model name")), "")
    except OSError:  # not Linux
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # the names are missing on some systems (Windows)
        memory = 0
    return (PhysicalDevice(f"{model}, {os.cpu_count() or 1} threads", memory),)


def opencl() -> tuple[PhysicalDevice, ...]:
    """Every OpenCL device over all platforms, in the order "opencl:N" counts them."""
    import pyopencl as cl
    found = []
    for p in cl.get_platforms():
        try:
            found.extend(PhysicalDevice(f"{d.name} ({p.name})", d.global_mem_size) for d in p.get_devices())
        except cl.Error:  # a platform with no devices reports DEVICE_NOT_FOUND (the runtime skips it too)
            continue
    return tuple(found)


def cuda() -> tuple[PhysicalDevice, ...]:
    """Every GPU the CUDA driver reports, in its order ("cuda:N" counts them so)."""
    driver = bindings()[0]
    found = []
    for i in range(check(driver.cuDeviceGetCount(), "cuDeviceGetCount")):
        dev = check(driver.cuDeviceGet(i), "cuDeviceGet")
        name = check(driver.cuDeviceGetName(256, dev), "cuDeviceGetName").split(b"\0")[0].decode()
        found.append(PhysicalDevice(name, check(driver.cuDeviceTotalMem(dev), "cuDeviceTotalMem")))
    return tuple(found)

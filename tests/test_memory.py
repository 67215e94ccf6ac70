"""fg.memory_stats(): every device allocation is counted, freed bytes are given back, peak >= current."""
import gc

import numpy as np
import pytest

import fusegrad as fg

N = 4096  # elements per test buffer; float32 buffers of 16 KiB


def stats() -> dict[str, int]:
    gc.collect()  # buffers are released when their last reference dies; make that happen now
    return fg.memory_stats()


def test_keys_and_device_argument() -> None:
    s = fg.memory_stats()
    assert set(s) >= {"current_bytes", "peak_bytes", "allocations"}
    assert all(isinstance(v, int) and v >= 0 for v in s.values())
    assert fg.memory_stats("cpu").keys() == s.keys()
    with pytest.raises(fg.DeviceError):
        fg.memory_stats("no-such-device")


@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "bool"])
def test_upload_counts_one_allocation_of_its_size(dtype: str) -> None:
    before = stats()
    x = fg.tensor(np.zeros(N, dtype=dtype))
    after = stats()
    assert after["allocations"] - before["allocations"] == 1
    assert after["current_bytes"] - before["current_bytes"] == N * np.dtype(dtype).itemsize
    del x


def test_realize_allocates_each_kernel_output() -> None:
    a = fg.tensor(np.ones(N, dtype=np.float32))
    before = stats()
    with fg.profile() as p:
        y = ((a * 2).contiguous() + 1).realize()
    after = stats()
    assert len(p.kernels) == 2
    assert after["allocations"] - before["allocations"] == len(p.kernels)
    assert after["current_bytes"] - before["current_bytes"] == N * 4, "the intermediate buffer was kept"
    assert after["peak_bytes"] >= before["current_bytes"] + 2 * N * 4, "peak missed the intermediate"
    np.testing.assert_array_equal(y.numpy(), np.full(N, 3, dtype=np.float32))


def test_lazy_tensors_hold_no_memory() -> None:
    a = fg.tensor(np.ones(N, dtype=np.float32))
    before = stats()
    y = (a * 2 + 1).exp().sum()
    assert stats()["allocations"] == before["allocations"]
    y.realize()
    assert stats()["current_bytes"] - before["current_bytes"] == 4


def test_freed_tensors_give_bytes_back() -> None:
    before = stats()
    xs = [fg.tensor(np.ones(N, dtype=np.float32)) for _ in range(3)]
    held = stats()
    assert held["current_bytes"] - before["current_bytes"] == 3 * N * 4
    del xs
    after = stats()
    assert after["current_bytes"] == before["current_bytes"]
    assert after["frees"] - before["frees"] == 3


def test_freed_results_and_their_graphs_give_bytes_back() -> None:
    a = fg.tensor(np.ones(N, dtype=np.float32), requires_grad=True)
    before = stats()
    loss = ((a * 3).exp() * a).sum()
    loss.backward()
    grew = stats()
    assert grew["current_bytes"] > before["current_bytes"]
    del loss
    a.grad = None
    assert stats()["current_bytes"] == before["current_bytes"]


def test_peak_tracks_the_high_water_mark() -> None:
    start = stats()
    assert start["peak_bytes"] >= start["current_bytes"]
    big = fg.tensor(np.zeros(16 * N, dtype=np.float32))
    high = stats()
    assert high["peak_bytes"] >= high["current_bytes"] >= start["current_bytes"] + 16 * N * 4
    del big
    low = stats()
    assert low["current_bytes"] == start["current_bytes"]
    assert low["peak_bytes"] == high["peak_bytes"], "peak must not drop when memory is freed"


def test_released_host_buffers_are_reused_by_size_and_never_shared() -> None:
    """The CPU allocator keeps released buffers of 64 KiB and more for the next allocation of their
    size (no fresh pages to fault in on every eager step); a live buffer is never handed out again,
    and the counted bytes are the live ones."""
    from fusegrad.runtime import registry
    from fusegrad.runtime.host_pool import POOL_MIN
    dev = registry.get("cpu")
    n = POOL_MIN // 4  # float32 elements of one pooled size
    a = fg.tensor(np.arange(n, dtype=np.float32))
    address = dev.pointer(a._node.buffer)
    before = stats()
    del a
    gc.collect()
    assert stats()["current_bytes"] == before["current_bytes"] - POOL_MIN
    assert dev.pool.cached_bytes >= POOL_MIN
    b = fg.tensor(np.full(n, 7, dtype=np.float32))  # the released buffer, overwritten
    c = fg.tensor(np.full(n, 9, dtype=np.float32))  # not the same memory: b holds it
    assert dev.pointer(b._node.buffer) == address != dev.pointer(c._node.buffer)
    np.testing.assert_array_equal(b.numpy(), 7)
    np.testing.assert_array_equal(c.numpy(), 9)
    small = fg.tensor(np.ones(16, dtype=np.float32))
    del small
    gc.collect()
    dev.empty_cache()
    assert dev.pool.cached_bytes == 0

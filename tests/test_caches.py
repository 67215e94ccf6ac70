"""Every in-memory cache is an LRU with a limit: a training loop whose batch size changes every step
keeps plans, programs, backward plans, jit variants and loaded kernel libraries bounded, and its
resident memory stops growing once the caches are full."""
from __future__ import annotations

import gc
import os
from typing import Iterator

import numpy as np
import pytest

import fusegrad as fg
from fusegrad import flags, nn
from fusegrad.runtime.lru import LRU
from tests.helpers import training_step

SIZES = 80  # distinct batch sizes on the CPU; the small limits below fill within the first half
LIMITS = {"plans": 24, "programs": 96, "backward_plans": 8, "jit_variants": 4}


@pytest.fixture
def small_caches() -> Iterator[None]:
    old = {name: fg.set_cache_limit(name, limit) for name, limit in LIMITS.items()}
    yield
    for name, limit in old.items():
        fg.set_cache_limit(name, limit)


def resident_mb() -> float:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def loaded_kernel_libraries() -> int:
    """Shared libraries of the kernel cache folder mapped into this process."""
    folder = str(flags.cache_dir())
    with open("/proc/self/maps") as f:
        return len({line.split()[-1] for line in f if folder in line and line.rstrip().endswith(".so")})


def assert_caches_within_limits() -> None:
    for label, info in fg.cache_info().items():
        assert info["size"] <= info["limit"], label


def test_changing_batch_sizes_keep_caches_and_memory_bounded(small_caches: None) -> None:
    fg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    step = training_step(model, fg.optim.SGD(model.parameters(), lr=0.05))
    jitted = fg.jit(step)
    rng = np.random.default_rng(5)
    cpu = fg.get_default_device().type == "cpu"
    sizes = SIZES if cpu else 12  # PoCL compiles slowly; the caches fill all the same
    marks = []
    for n in range(1, sizes + 1):
        for fn in (step, jitted):
            x, y = rng.standard_normal((n, 3)).astype(np.float32), rng.integers(0, 2, n)
            assert np.isfinite(fn(fg.tensor(x), fg.tensor(y)).item())
        assert_caches_within_limits()
        if n in (sizes // 2, sizes):
            marks.append((resident_mb(), loaded_kernel_libraries()))
    (rss_half, libs_half), (rss_end, libs_end) = marks
    if cpu:  # PoCL's compiler keeps memory of its own (18 MB over 40 sizes with these limits)
        # measured: unbounded caches grew 6.0 MB and 88 -> 168 libraries here; these limits 0.4 MB, 28 -> 28
        assert libs_end <= libs_half + 4, (libs_half, libs_end)
        assert rss_end - rss_half < 3.0, (rss_half, rss_end)


def test_programs_evicted_from_every_cache_still_run_in_a_live_replay() -> None:
    f = fg.jit(lambda x: (x * 3).exp().sum(0))
    x = np.arange(6, dtype=np.float32).reshape(2, 3) / 10
    f(fg.tensor(x))
    old = {name: fg.set_cache_limit(name, 1) for name in ("plans", "programs", "backward_plans")}
    try:
        for shift in range(1, 4):  # fill the one-entry caches with other graphs
            (fg.tensor(x + shift) * shift).sum().item()
        np.testing.assert_allclose(f(fg.tensor(x)).numpy(), np.exp(x * 3).sum(0), rtol=1e-6)
    finally:
        for name, limit in old.items():
            fg.set_cache_limit(name, limit)
    assert f.replays == 1


def test_lru_drops_the_least_recently_used_entry() -> None:
    cache = LRU("test_lru", 2)
    cache["a"], cache["b"] = 1, 2
    assert cache.get("a") == 1  # "a" is now the most recent
    cache["c"] = 3
    assert "b" not in cache and cache.get("a") == 1 and cache["c"] == 3 and len(cache) == 2
    assert fg.set_cache_limit("test_lru", 1) == 2 and len(cache) == 1 and cache.get("a") == 1


@pytest.mark.parametrize("name, limit, error", [("no_such_cache", 4, KeyError), ("plans", 0, ValueError),
                                                ("plans", 2.5, TypeError), ("plans", True, TypeError)],
                         ids=["unknown-name", "zero", "float", "bool"])
def test_set_cache_limit_rejects_bad_input(name: str, limit: object, error: type) -> None:
    with pytest.raises(error):
        fg.set_cache_limit(name, limit)

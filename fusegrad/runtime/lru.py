"""Bounded in-memory caches. Every table fusegrad keeps in memory across calls (plans, compiled
programs, jit variants, ...) is an `LRU` with a named limit, so that a program whose shapes change
every step (a varying batch size) holds a bounded amount of memory. `cache_info()` lists every
live cache with its size and limit; `set_cache_limit(name, n)` changes a limit (and evicts at once).
docs/debugging.md has the table of caches."""
from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any, Hashable

# the caches and their default limits (entries); docs/debugging.md's table says what each holds
DEFAULT_LIMITS = {
    "plans": 512,  # engine/realize.py: schedules with their programs, by graph structure
    "programs": 2048,  # engine/realize.py: compiled kernels by kernel structure, every device together
    "backward_plans": 64,  # autograd/engine.py: recorded gradient graphs, by tape structure
    "jit_variants": 16,  # jit.py: captures per jitted function, by argument signature
}
_limits: dict[str, int] = dict(DEFAULT_LIMITS)
_instances: dict[str, weakref.WeakSet] = {}


class LRU:
    """A table that keeps its `limit` most recently used entries (the limit is shared by every
    cache of the same name: a per-device or per-function table)."""

    def __init__(self, name: str, limit: int | None = None, label: str = ""):
        """`limit` only for a name without a default limit."""
        self.name = name
        self.label = label or name  # one of several tables of a name: "jit_variants[step at 0x7f...]"
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        if name not in _limits:
            if limit is None:
                raise KeyError(f"the cache {name!r} has no default limit; pass one")
            _limits[name] = limit
        _instances.setdefault(name, weakref.WeakSet()).add(self)

    @property
    def limit(self) -> int:
        return _limits[self.name]

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def __getitem__(self, key: Hashable) -> Any:
        return self._data[key]

    def __setitem__(self, key: Hashable, value: Any) -> None:
        self.put(key, value)

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value under `key` (marked most recently used), or `default`."""
        try:
            value = self._data[key]
            self._data.move_to_end(key)
        except KeyError:  # absent, or evicted by another thread in between
            return default
        return value

    def put(self, key: Hashable, value: Any) -> None:
        """Store `value` as the most recently used entry, dropping the least recently used ones over the limit."""
        self._data[key] = value
        self._data.move_to_end(key)
        self.trim()

    def values(self) -> list[Any]:
        return list(self._data.values())

    def clear(self) -> None:
        self._data.clear()

    def trim(self) -> None:
        while len(self._data) > _limits[self.name]:
            self._data.popitem(last=False)


def set_cache_limit(name: str, limit: int) -> int:
    """Set the most entries each cache called `name` keeps (evicting the excess now); returns the old limit."""
    if name not in _limits:
        raise KeyError(f"no in-memory cache named {name!r}; the caches are {sorted(_limits)}")
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise TypeError(f"a cache limit is an int, got {type(limit).__name__}")
    if limit < 1:
        raise ValueError(f"a cache limit is at least 1, got {limit}")
    old, _limits[name] = _limits[name], limit
    for cache in list(_instances.get(name, ())):
        cache.trim()
    return old


def cache_info() -> dict[str, dict[str, int]]:
    """Every live in-memory cache by label: its entries now and its limit."""
    return {cache.label: {"size": len(cache), "limit": cache.limit}
            for name in sorted(_instances) for cache in sorted(_instances[name], key=lambda c: c.label)}

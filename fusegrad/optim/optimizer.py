"""Optimizer base: param groups, state, and fused updates over flat views.

A step concatenates the parameters, gradients and state of up to CHUNK parameters into flat
lazy tensors, computes the new values with one formula, realizes everything in one schedule
(so a step is one kernel per updated flat tensor, not several per parameter), then rebinds each
parameter and state tensor to a zero-copy view of its slice. Hyperparameters that change
between steps (learning rate) and step counters are device tensors read by the kernels, so a
changed learning rate never changes the compiled kernels.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from .. import dtypes
from ..autograd import no_grad
from ..capturing import before_each_replay
from ..errors import DTypeError
from ..flat import bind, flat_of, is_bound, store
from ..tensor import Tensor, realize, tensor
from .state_check import SCALAR_KEYS, as_number, check_groups, check_state, check_tensor_entry

CHUNK = 16  # parameters fused into one flat update; bounds the per-element cost of the concatenation


class Optimizer:
    """Base class: subclasses define `defaults`, `state_names` and `update`."""

    state_names: tuple[str, ...] = ()
    # float32 device scalars a group keeps besides its step count (NAdam's mu_product), in the state of the
    # group's first parameter: state dicts and fg.jit carry them like any state; `advance_group` replaces them
    group_scalars: tuple[str, ...] = ()
    _skip_if: Tensor | None = None  # set by step_unless for one step

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}  # keyed by id(param), like torch's per-parameter state
        self._device_scalars: dict[tuple[int, str, str, str], tuple[float, Tensor]] = {}
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict[str, Any]) -> None:
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if not p.dtype.is_floating_point:
                raise DTypeError(f"optimizer can only optimize floating point tensors, got {p.dtype.name}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        full = {**self.defaults, **group, "params": params}
        self.param_groups.append(full)
        with no_grad():
            for chunk in _chunks(params):
                if not is_bound(chunk):
                    bind(chunk, flat_of(chunk).realize())

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None if set_to_none or p.grad is None else p.grad.zeros_like()

    def _scalar(self, group_index: int, name: str, value: float, like: Tensor,
                dtype: dtypes.DType | None = None) -> Tensor:
        """A device tensor holding a hyperparameter; re-uploaded only when its value changes.

        By default float64 parameters get a float64 scalar (full precision) and others float32.
        """
        if dtype is None:
            dtype = dtypes.float64 if like.dtype == dtypes.float64 else dtypes.float32
        key = (group_index, name, dtype.name, like.device)
        cached = self._device_scalars.get(key)
        if cached is None:
            cached = (value, tensor(float(value), dtype=dtype, device=like.device))
            self._device_scalars[key] = cached
        elif cached[0] != value:
            self._device_scalars[key] = cached = (value, store(cached[1], value))
        return cached[1]

    def _refresh_scalars(self) -> None:
        """Write changed hyperparameters into their device scalars (kernels captured by fg.jit read them)."""
        for key, (value, scalar) in self._device_scalars.items():
            current = _HYPERPARAMETERS[key[1]](self.param_groups[key[0]])
            if current != value:
                self._device_scalars[key] = (current, store(scalar, current))

    def _frozen_hyperparameters(self) -> list[dict[str, Any]]:
        """The hyperparameters compiled into the update kernels as constants."""
        return [{k: (v[1:] if k == "betas" else v) for k, v in g.items()
                 if k not in ("params", "_step", "lr", "momentum")} for g in self.param_groups]

    def _replay_check(self) -> Callable[[], bool]:
        """For fg.jit: before a replay, refresh the device scalars; a changed constant means capture again."""
        frozen = self._frozen_hyperparameters()
        params = [list(g["params"]) for g in self.param_groups]

        def check() -> bool:
            if self._frozen_hyperparameters() != frozen or \
                    any(len(a) != len(g["params"]) or any(x is not y for x, y in zip(a, g["params"]))
                        for a, g in zip(params, self.param_groups)) or len(params) != len(self.param_groups):
                return False
            self._refresh_scalars()
            return True
        return check

    def counts_steps(self, group: dict[str, Any]) -> bool:
        """Whether the update reads the group's step count (kept on the device, one more kernel per step)."""
        return True

    def _step_counter(self, group: dict[str, Any], like: Tensor) -> Tensor:
        """The group's step count as a device tensor, incremented inside the step's kernels (not when the
        step is skipped: see step_unless)."""
        count = group.get("_step")
        if count is None or count.device != like.device:
            count = tensor(0.0, dtype=dtypes.float32, device=like.device)
        counted = count + 1
        group["_step"] = counted if self._skip_if is None else _unless(self._skip_if, count, counted)
        return counted

    def step_unless(self, found_inf: Tensor) -> Any:
        """`step()`, except that where the device scalar `found_inf` is nonzero every value it writes
        (parameters, state, step counts) keeps its old value: a skip decided on the device, so nothing is
        read back and fg.jit can capture it (GradScaler.step's inf/NaN skipping)."""
        self._skip_if = found_inf
        try:
            return self.step()
        finally:
            self._skip_if = None

    def group_state(self, group: dict[str, Any]) -> dict[str, Tensor]:
        """The state dict that holds the group's `group_scalars` (its first parameter's)."""
        return self.state.setdefault(id(group["params"][0]), {})

    def advance_group(self, group: dict[str, Any], index: int, like: Tensor, step: Tensor | None) -> None:
        """Set the group's `group_scalars` for this step (lazily, before its chunks update)."""

    def update(self, group: dict[str, Any], index: int, p: Tensor, g: Tensor, state: dict[str, Tensor],
               step: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        """New flat parameter and state values from flat current ones (all lazy); `step` is the step
        count, None when `counts_steps(group)` is false."""
        raise NotImplementedError

    @staticmethod
    def _direction(group: dict[str, Any], p: Tensor, g: Tensor) -> Tensor:
        """The gradient after `maximize` and L2 `weight_decay` (shared by SGD, RMSprop, Adagrad, Adam)."""
        if group["maximize"]:
            g = -g
        if group["weight_decay"]:
            g = g + p * group["weight_decay"]
        return g

    def init_state(self, group: dict[str, Any], p: Tensor) -> dict[str, Tensor]:
        return {name: p.zeros_like() for name in self.state_names}

    @no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient."""
        loss = None
        if closure is not None:
            from ..autograd import enable_grad
            with enable_grad():
                loss = closure()
        before_each_replay(self._replay_check())
        outputs: list[Tensor] = []
        rebinds: list[tuple[list[Tensor], list[dict[str, Tensor]], Tensor, dict[str, Tensor]]] = []
        names = self.state_names
        for gi, group in enumerate(self.param_groups):
            # each gradient read once: a thread sharing these parameters may reset them meanwhile (Hogwild)
            grads = {id(p): p.grad for p in group["params"]}
            active = [p for p in group["params"] if grads[id(p)] is not None]
            if not active:
                continue
            step = self._step_counter(group, active[0]) if self.counts_steps(group) else None
            if step is not None:
                outputs.append(group["_step"])
            if self.group_scalars:
                held = self.group_state(group)
                before = {name: held.get(name) for name in self.group_scalars} if self._skip_if is not None else {}
                self.advance_group(group, gi, active[0], step)
                for name, old in before.items():
                    if old is not None:
                        held[name] = _unless(self._skip_if, old, held[name])
                outputs.extend(held[name] for name in self.group_scalars)
            for chunk in _chunks(active):
                states = [self.state.setdefault(id(p), {}) for p in chunk]
                for p, st in zip(chunk, states):
                    if any(name not in st for name in names):  # first step: zeros (or the optimizer's start)
                        for name, value in self.init_state(group, p).items():
                            st.setdefault(name, value)
                flat_p = flat_of(chunk)
                chunk_grads = [grads[id(p)] for p in chunk]
                flat_g = flat_of([g if g.dtype == p.dtype else g.to(p.dtype) for p, g in zip(chunk, chunk_grads)])
                flat_s = {name: flat_of([st[name] for st in states]) for name in names}
                new_p, new_s = self.update(group, gi, flat_p, flat_g, flat_s, step)
                if self._skip_if is not None:
                    new_p = _unless(self._skip_if, flat_p, new_p)
                    new_s = {name: _unless(self._skip_if, flat_s[name], v) for name, v in new_s.items()}
                outputs.append(new_p)
                outputs.extend(new_s.values())
                rebinds.append((chunk, states, new_p, new_s))
        realize(*outputs)
        for chunk, states, new_p, new_s in rebinds:
            bind(chunk, new_p)
            for name, flat in new_s.items():
                bind([st[name] for st in states], flat)
        for group in self.param_groups:
            if "_step" in group:
                group["_step"] = group["_step"].detach()
            scalars = self.group_state(group) if self.group_scalars else {}
            for name in self.group_scalars:
                if name in scalars:
                    scalars[name] = scalars[name].detach()
        return loss

    # ---- state dict ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{'state': {index: {...}}, 'param_groups': [...]} with parameters replaced by indices, like torch."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            entry = {k: v for k, v in g.items() if k not in ("params", "_step")}
            entry["params"] = ids
            entry["step"] = float(g["_step"].item()) if "_step" in g else 0.0
            groups.append(entry)
        state = {index[pid]: {k: v.detach() for k, v in st.items()} for pid, st in self.state.items() if pid in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict(); everything is checked first, so a bad one raises StateDictError (naming the
        group, parameter and key) and leaves the optimizer as it was."""
        params = check_groups(state_dict, self.param_groups)
        check_state(state_dict["state"], params,
                    lambda where, key, value, p: check_tensor_entry(where, key, value, p, self.group_scalars))
        saved_state = {int(i): st for i, st in state_dict["state"].items()}
        first = 0
        for saved, group in zip(state_dict["param_groups"], self.param_groups):
            for k, v in saved.items():
                if k not in ("params", "step"):
                    group[k] = as_number(v) if isinstance(v, Tensor) else v  # a 0-d tensor lr becomes a number
            indices = range(first, first + len(group["params"]))
            first += len(group["params"])
            # torch counts steps per parameter (its state's "step"; none for SGD, whose momentum buffer
            # alone says a step was taken), fusegrad per group: take the largest
            torch_steps = [as_number(saved_state[i].get("step", 1.0)) for i in indices if saved_state.get(i)]
            step = as_number(saved["step"]) if "step" in saved else max(torch_steps, default=0.0)
            if step:
                group["_step"] = tensor(step, dtype=dtypes.float32, device=group["params"][0].device)
            else:
                group.pop("_step", None)  # a state dict saved before any step: the count starts again
        self.state = {}
        for idx, st in saved_state.items():
            p = params[idx]
            self.state[id(p)] = {k: (v if isinstance(v, Tensor) else tensor(v)).to(
                dtypes.float32 if k in self.group_scalars else p.dtype).contiguous().realize()
                for k, v in st.items() if k not in SCALAR_KEYS}
        # lay loaded state out as the steps do (flat per chunk), so the next step runs the same kernels
        with no_grad():
            for group in self.param_groups:
                for chunk in _chunks([p for p in group["params"] if id(p) in self.state]):
                    states = [self.state[id(p)] for p in chunk]
                    for name in set(states[0]).intersection(*states[1:]).difference(self.group_scalars):
                        views = [st[name] for st in states]
                        if not is_bound(views):
                            bind(views, flat_of(views).realize())

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k not in ("params", "_step")]
        return "\n".join(lines) + "\n)"


# how each device-scalar hyperparameter is read from its param group
_HYPERPARAMETERS: dict[str, Callable[[dict[str, Any]], float]] = {
    "lr": lambda g: g["lr"], "momentum": lambda g: g["momentum"], "beta1": lambda g: g["betas"][0]}


def _unless(skip: Tensor, old: Tensor, new: Tensor) -> Tensor:
    """`old` where the scalar `skip` is nonzero, else `new` (in new's dtype)."""
    return old.to(new.dtype).where(skip != 0, new)


def _chunks(params: list[Tensor]) -> list[list[Tensor]]:
    """Parameters updated together: same device and dtype, at most CHUNK, in order."""
    by_kind: dict[tuple[str, str], list[Tensor]] = {}
    for p in params:
        by_kind.setdefault((p.device, p.dtype.name), []).append(p)
    return [same[i:i + CHUNK] for same in by_kind.values() for i in range(0, len(same), CHUNK)]

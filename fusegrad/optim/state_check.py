"""Validation of an optimizer state dict before loading it: every mismatch is found before anything
changes, so a bad checkpoint leaves the optimizer exactly as it was."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import StateDictError
from ..tensor import Tensor

# per-parameter entries that are counters, not tensors shaped like the parameter (torch keeps 'step' there)
SCALAR_KEYS = ("step",)


def check_groups(state_dict: Any, groups: list[dict[str, Any]]) -> list[Tensor]:
    """Check the layout and every group's hyperparameters; returns the parameters in saved-index order."""
    if not isinstance(state_dict, dict):
        raise StateDictError(f"a state dict is a dict, got {type(state_dict).__name__}")
    for key in ("state", "param_groups"):
        if key not in state_dict:
            raise StateDictError(f"the state dict has no {key!r} entry")
    saved_groups, state = state_dict["param_groups"], state_dict["state"]
    if not isinstance(saved_groups, (list, tuple)) or not isinstance(state, dict):
        raise StateDictError("'param_groups' must be a list and 'state' a dict, got "
                             f"{type(saved_groups).__name__} and {type(state).__name__}")
    if len(saved_groups) != len(groups):
        raise StateDictError(f"loaded state dict has a different number of parameter groups: {len(saved_groups)} "
                             f"saved, {len(groups)} in the optimizer")
    params: list[Tensor] = []
    for gi, (saved, group) in enumerate(zip(saved_groups, groups)):
        if not isinstance(saved, dict) or "params" not in saved:
            raise StateDictError(f"parameter group {gi}: expected a dict with a 'params' entry")
        if len(saved["params"]) != len(group["params"]):
            raise StateDictError(f"parameter group {gi} has {len(saved['params'])} parameters in the state dict, "
                                 f"{len(group['params'])} in the optimizer")
        for key, current in group.items():
            if key == "params" or key.startswith("_"):
                continue
            if key not in saved:
                raise StateDictError(f"parameter group {gi} lacks the hyperparameter {key!r}")
            _check_hyperparameter(gi, key, saved[key], current)
        if "step" in saved and not _is_number(saved["step"]):
            raise StateDictError(f"parameter group {gi}: 'step' must be a number, got {saved['step']!r}")
        params.extend(group["params"])
    return params


def check_state(state: dict[Any, Any], params: list[Tensor], check_entry: Callable[[str, str, Any, Tensor], None]
                ) -> None:
    """Check every per-parameter entry: its index, and each value through `check_entry(where, key, value, p)`."""
    for index, entry in state.items():
        try:
            i = int(index)
        except (TypeError, ValueError):
            raise StateDictError(f"state keys are parameter indices, got {index!r}") from None
        if not 0 <= i < len(params):
            raise StateDictError(f"state for parameter index {i}, but the optimizer has {len(params)} parameters")
        if not isinstance(entry, dict):
            raise StateDictError(f"state of parameter {i} must be a dict, got {type(entry).__name__}")
        for key, value in entry.items():
            check_entry(f"state of parameter {i}, key {key!r}", key, value, params[i])


def check_tensor_entry(where: str, key: str, value: Any, p: Tensor, scalars: tuple[str, ...] = ()) -> None:
    """A state tensor shaped like its parameter, of a floating dtype (cast to the parameter's on load);
    'step' and the optimizer's group scalars hold one number."""
    shape, kind = _shape_kind(where, value)
    if key in SCALAR_KEYS or key in scalars:
        if int(np.prod(shape)) != 1 or kind not in "iuf":
            raise StateDictError(f"{where}: expected one number, got shape {shape}")
        return
    if shape != tuple(p.shape):
        raise StateDictError(f"{where}: expected shape {tuple(p.shape)} (the parameter's), got {shape}")
    if kind != "f":
        raise StateDictError(f"{where}: expected a floating point dtype like the parameter's "
                             f"({p.dtype.name}), got {_dtype_name(value)}")


def _shape_kind(where: str, value: Any) -> tuple[tuple[int, ...], str]:
    """The shape and dtype kind ('f', 'i', ...) of a tensor, array, list or number."""
    if isinstance(value, Tensor):
        return tuple(value.shape), value.dtype.kind
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.dtype.kind not in "biuf":
        raise StateDictError(f"{where}: expected a tensor or numbers, got {type(value).__name__}")
    return tuple(arr.shape), arr.dtype.kind


def as_number(value: Any) -> float:
    """A checked one-element value (number, array or tensor) as a Python float."""
    if isinstance(value, Tensor):
        return float(value.item())
    return float(np.asarray(value).reshape(-1)[0])


def _dtype_name(value: Any) -> str:
    return value.dtype.name if isinstance(value, Tensor) else str(np.asarray(value).dtype)


def _is_number(value: Any) -> bool:
    """A real number: int or float (not bool), or a one-element floating or integer tensor."""
    if isinstance(value, Tensor):
        return value.numel() == 1 and value.dtype.kind in "iuf"
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_hyperparameter(gi: int, key: str, value: Any, current: Any) -> None:
    """`value` must be of the kind the optimizer holds for `key`: a flag, a number, a tuple of numbers."""
    where = f"parameter group {gi}, hyperparameter {key!r}"
    if current is None:
        ok = True  # unset (torch's foreach=None ...): any value
    elif isinstance(current, str):
        ok = isinstance(value, str)
    elif isinstance(current, bool):
        ok = isinstance(value, bool)
    elif _is_number(current):
        ok = _is_number(value)
    elif isinstance(current, (tuple, list)):
        ok = isinstance(value, (tuple, list)) and len(value) == len(current) and all(map(_is_number, value))
    else:
        ok = True  # a kind this check does not know (a callable ...): taken as saved
    if not ok:
        raise StateDictError(f"{where}: expected {_kind(current)}, got {value!r}")


def _kind(current: Any) -> str:
    if isinstance(current, bool):
        return "a bool"
    if isinstance(current, (tuple, list)):
        return "a pair of numbers" if len(current) == 2 else f"{len(current)} numbers"
    if _is_number(current):
        return "a number or a one-element tensor"
    return type(current).__name__

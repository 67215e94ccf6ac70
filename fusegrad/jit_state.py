"""The state a jitted function reaches: the tensor slots (dict entries and attributes holding tensors)
and modules found through its arguments, the globals and closures its code names, and the attributes
of those, plus the parameters, buffers, gradients and optimizer state inside them (jit.py's module
docstring says what a replay carries)."""
from __future__ import annotations

import functools
import inspect
import types
from dataclasses import dataclass
from typing import Any, Callable

from .nn.module import Module
from .optim.optimizer import Optimizer
from .tensor import Tensor


@dataclass(eq=False)
class Slot:
    """A place that holds a tensor: a dict entry or an attribute."""

    holder: Any
    key: Any
    attribute: bool

    def get(self) -> Any:
        if self.attribute:
            return getattr(self.holder, self.key, None)
        return self.holder.get(self.key)

    def getter(self) -> Callable[[], Any]:
        """`get` as a C-level callable (a partial of getattr or dict.get): a replay checks hundreds of
        slots before it runs, and a Python method call per slot was most of that check's time."""
        if self.attribute:
            return functools.partial(getattr, self.holder, self.key, None)
        return functools.partial(self.holder.get, self.key)

    def set(self, value: Any) -> None:
        if self.attribute:
            setattr(self.holder, self.key, value)
        else:
            self.holder[self.key] = value


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def reachable(fn: Callable, args: tuple, kwargs: dict) -> tuple[list[Slot], list[Module]]:
    """The tensor slots and modules that `fn` reaches (see the module docstring)."""
    roots: list[Any] = [*args, *kwargs.values()]
    slots: dict[tuple[int, Any], Slot] = {}

    def add(holder: Any, key: Any, attribute: bool) -> None:
        slots.setdefault((id(holder), key), Slot(holder, key, attribute))

    if inspect.ismethod(fn):
        roots.append(fn.__self__)
        fn = fn.__func__
    fn = inspect.unwrap(fn)
    code = getattr(fn, "__code__", None)
    if code is not None:
        scope = fn.__globals__
        for name in _code_names(code):
            if name in scope:
                roots.append(scope[name])
                if isinstance(scope[name], Tensor):
                    add(scope, name, False)
        for cell in fn.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            roots.append(value)
            if isinstance(value, Tensor):
                add(cell, "cell_contents", True)
        # `def step(x, y, model=model, opt=opt)`: state reached through default arguments
        roots += [*(fn.__defaults__ or ()), *(getattr(fn, "__kwdefaults__", None) or {}).values()]
    modules: dict[int, Module] = {}
    optimizers: dict[int, Optimizer] = {}
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        if id(obj) in seen or depth > 2:
            return
        seen.add(id(obj))
        if isinstance(obj, Module):
            for m in obj.modules():
                modules[id(m)] = m
        elif isinstance(obj, Optimizer):
            optimizers[id(obj)] = obj
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                visit(v, depth + 1)
        elif isinstance(obj, dict):
            for v in obj.values():
                visit(v, depth + 1)
        elif hasattr(obj, "__dict__") and not isinstance(obj, (type, types.ModuleType, types.FunctionType,
                                                                 types.MethodType, Tensor)):
            for k, v in vars(obj).items():
                if isinstance(v, Tensor):
                    add(vars(obj), k, False)
                else:
                    visit(v, depth + 1)

    for r in roots:
        visit(r, 0)
    visit = None  # type: ignore[assignment]  # a recursive closure is a reference cycle: broken here
    for m in modules.values():
        for name, p in m._parameters.items():
            add(m._parameters, name, False)
            if p is not None:
                add(p, "grad", True)
        for name in m._buffers:
            add(m._buffers, name, False)
    for opt in optimizers.values():
        for group in opt.param_groups:
            add(group, "_step", False)
            for p in group["params"]:
                add(p, "grad", True)
                state = opt.state.get(id(p))
                if state is not None:
                    for name in state:
                        add(state, name, False)
    return list(slots.values()), list(modules.values())


def describe(slot: Slot) -> str:
    holder = type(slot.holder).__name__
    return f"{holder}[{slot.key!r}]" if not slot.attribute else f"{holder}.{slot.key}"

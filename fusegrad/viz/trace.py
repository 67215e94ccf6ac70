"""Record which layers a module calls, in order, and how data flows between them.

`trace_module(model, example_input)` runs one forward pass with every submodule's `forward`
wrapped, under a gradient tape so that the functional ops between layers (an `F.relu`, a
`view`) are recorded too. The model is left as it was: parameters, buffers (BatchNorm's running
statistics) and the random stream are restored afterwards. Nothing is computed unless the model
itself asks for a value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import random as fg_random
from ..autograd import GradientTape, enable_grad
from ..errors import Error
from ..nn.module import Module
from ..tensor import Tensor, tensor

Ref = tuple[str, int]  # ("input", i), ("call", i) or ("output", i)


@dataclass
class ModuleCall:
    """One call of one module during the traced forward pass."""

    index: int
    path: str  # dotted name inside the model ("" for the model itself)
    module: Module
    parent: int | None  # the call this one happened inside
    children: list[int] = field(default_factory=list)
    output_shapes: list[tuple[tuple[int, ...], str]] = field(default_factory=list)
    sources: list[Ref] = field(default_factory=list)  # the layer outputs and model inputs it was computed from

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def describe(self) -> str:
        """The module as its repr's first line shows it, e.g. Linear(in_features=784, out_features=128, bias=True)."""
        return f"{type(self.module).__name__}({self.module.extra_repr()})"


@dataclass
class ModuleTrace:
    model: Module
    calls: list[ModuleCall]
    input_shapes: list[tuple[tuple[int, ...], str]]
    output_shapes: list[tuple[tuple[int, ...], str]]
    edges: list[tuple[Ref, Ref]]  # data flow between inputs, leaf layer calls and outputs

    def leaves(self) -> list[ModuleCall]:
        return [c for c in self.calls if c.is_leaf]


def _tensors(value: Any) -> list[Tensor]:
    """Tensors inside nested tuples, lists and dicts, in order."""
    found: list[Tensor] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, Tensor):
            found.append(v)
        elif isinstance(v, (tuple, list)):
            stack.extend(reversed(v))
        elif isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
    return found


def _sources(t: Tensor, producer: dict[int, Ref]) -> list[Ref]:
    """The layer outputs or model inputs `t` was computed from (through any functional ops)."""
    refs: list[Ref] = []
    seen: set[int] = set()
    stack = [t]
    while stack:
        cur = stack.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if id(cur) in producer:
            if producer[id(cur)] not in refs:
                refs.append(producer[id(cur)])
        elif cur._ctx is not None:
            stack.extend(reversed(cur._ctx.inputs))
    return refs


def _shape(t: Tensor) -> tuple[tuple[int, ...], str]:
    return t.shape, t.dtype.name


class _Tracer:
    def __init__(self, model: Module, inputs: list[Tensor]):
        self.calls: list[ModuleCall] = []
        self.open: list[int] = []
        self.producer: dict[int, Ref] = {id(t): ("input", i) for i, t in enumerate(inputs)}
        self.alive: list[Tensor] = list(inputs)  # keeps every id() we map unique while tracing
        self.paths = {id(m): path for path, m in model.named_modules()}

    def wrap(self, module: Module, forward: Callable[..., Any]) -> Callable[..., Any]:
        def traced(*args: Any, **kwargs: Any) -> Any:
            call = ModuleCall(len(self.calls), self.paths.get(id(module), "?"), module,
                              self.open[-1] if self.open else None)
            self.calls.append(call)
            if call.parent is not None:
                self.calls[call.parent].children.append(call.index)
            for t in _tensors((args, kwargs)):
                call.sources.extend(s for s in _sources(t, self.producer) if s not in call.sources)
            self.open.append(call.index)
            try:
                out = forward(*args, **kwargs)
            finally:
                self.open.pop()
            outs = _tensors(out)
            self.alive.extend(outs)
            call.output_shapes = [_shape(t) for t in outs]
            if call.is_leaf:
                for t in outs:
                    self.producer[id(t)] = ("call", call.index)
            return out
        return traced


def trace_module(model: Module, example_input: Any) -> ModuleTrace:
    """Run `model(example_input)` once (a tuple gives several arguments; numpy arrays become tensors)
    and record its layer calls."""
    if not isinstance(model, Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    args = list(example_input) if isinstance(example_input, (tuple, list)) else [example_input]
    args = [tensor(a) if isinstance(a, np.ndarray) else a for a in args]
    inputs = [a for a in args if isinstance(a, Tensor)]
    tracer = _Tracer(model, inputs)
    modules = [m for _, m in model.named_modules()]
    saved_state = [(t, t._node, t._ctx, t.requires_grad, t.grad) for m in modules
                   for table in (m._parameters, m._buffers) for t in table.values() if t is not None]
    saved_tables = [(m, dict(m._buffers), dict(m._parameters)) for m in modules]
    saved_rng = (fg_random._gen.seed, fg_random._gen.offset)
    own_forward = [(m, m.__dict__.get("forward")) for m in modules]
    try:
        for m in modules:
            m.__dict__["forward"] = tracer.wrap(m, m.forward)
        with enable_grad(), GradientTape():
            out = model(*args)
    finally:
        for m, previous in own_forward:
            if previous is None:
                m.__dict__.pop("forward", None)
            else:
                m.__dict__["forward"] = previous
        for t, node, ctx, requires_grad, grad in saved_state:
            t._node, t._ctx, t.requires_grad, t.grad = node, ctx, requires_grad, grad
        for m, buffers, params in saved_tables:
            m._buffers.clear()
            m._buffers.update(buffers)
            m._parameters.clear()
            m._parameters.update(params)
        fg_random._gen.seed, fg_random._gen.offset = saved_rng
    outs = _tensors(out)
    if not outs:
        raise Error(f"{type(model).__name__} returned no tensor ({type(out).__name__}); nothing to draw")
    edges: list[tuple[Ref, Ref]] = []
    for call in tracer.calls:
        if call.is_leaf:
            edges.extend((src, ("call", call.index)) for src in call.sources)
    for j, t in enumerate(outs):
        edges.extend((src, ("output", j)) for src in _sources(t, tracer.producer))
    return ModuleTrace(model, tracer.calls, [_shape(t) for t in inputs], [_shape(t) for t in outs], edges)

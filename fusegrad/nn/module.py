"""nn.Module: the tree of parameters, buffers and submodules, with PyTorch's API."""
from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Any, Callable, Iterator, NamedTuple

from .. import dtypes
from ..autograd import no_grad
from ..errors import Error, ShapeError
from ..tensor import Tensor
from .init import filled_together
from .parameter import Parameter


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer. Assigning a Parameter, Module or registered buffer registers it."""

    training: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_fills_together", False):
            @functools.wraps(init)
            def build(self: Module, *args: Any, **kw: Any) -> None:
                with filled_together():  # the module's initializers (and its children's) run as one batch
                    init(self, *args, **kw)
            build._fills_together = True  # type: ignore[attr-defined]
            cls.__init__ = build  # type: ignore[method-assign]

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration -------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise Error(f"{type(self).__name__}.__init__ must call super().__init__() before assigning attributes")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        # like torch, re-assigning a registered name keeps its place, so parameter order stays stable
        if isinstance(value, Parameter):
            buffers.pop(name, None)
            modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
        elif name in params or name in modules:
            if value is not None:
                kind = "parameter" if name in params else "child module"
                raise TypeError(f"cannot assign '{type(value).__name__}' as {kind} '{name}' "
                                f"({'Parameter' if name in params else 'Module'} or None expected)")
            (params if name in params else modules)[name] = None
        elif name in self.__dict__.get("_buffer_names", ()) and (value is None or isinstance(value, Tensor)):
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor saved in state_dict (unless persistent=False) but not trained."""
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        self._modules[name] = module

    # ---- calling ------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ---- traversal ----------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        return self._walk(prefix, set() if memo is None else memo)

    def _walk(self, prefix: str, memo: set | None) -> Iterator[tuple[str, "Module"]]:
        """Pre-order (dotted path, module). Without a memo, a module shared under several names comes once
        per name, as torch's state_dict lists it (named_modules lists it once)."""
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if memo is not None:
                if id(mod) in memo:
                    continue
                memo.add(id(mod))
            yield name, mod
            children = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def _named(self, table: str, recurse: bool) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        mods = self.named_modules() if recurse else iter([("", self)])
        for prefix, mod in mods:
            for name, t in getattr(mod, table).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                key = f"{prefix}.{name}" if prefix else name
                if t.name is None:
                    t.name = key  # graphs, logs and profiles then say "fc1.weight", like state_dict
                yield key, t

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        for name, p in self._named("_parameters", recurse):
            yield (f"{prefix}.{name}" if prefix else name), p  # type: ignore[misc]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        for name, b in self._named("_buffers", recurse):
            yield (f"{prefix}.{name}" if prefix else name), b

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ---- modes and bulk changes ---------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            p.grad = None if set_to_none or p.grad is None else p.grad.zeros_like()

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call fn on every submodule (children first, depth-first post-order) and on self, like torch."""
        stack: list[tuple[Module, bool]] = [(self, False)]
        while stack:
            mod, expanded = stack.pop()
            if expanded:
                fn(mod)
                continue
            stack.append((mod, True))
            stack.extend((m, False) for m in reversed(list(mod.children())))
        return self

    def to(self, *args: Any, **kwargs: Any) -> "Module":
        """Move/cast parameters and buffers in place (floating dtypes only change floating tensors)."""
        with no_grad():
            for mod in self.modules():
                for table in (mod._parameters, mod._buffers):
                    for name, t in table.items():
                        if t is None:
                            continue
                        moved = _move(t, *args, **kwargs)
                        if moved is not t:
                            t.data = moved
        return self

    def float(self) -> "Module":
        return self.to(dtypes.float32)

    def double(self) -> "Module":
        return self.to(dtypes.float64)

    def half(self) -> "Module":
        return self.to(dtypes.float16)

    def cpu(self) -> "Module":
        return self.to("cpu")

    def cuda(self, device: int | None = None) -> "Module":
        """Parameters and buffers moved to GPU `device` (default 0), in place."""
        return self.to(f"cuda:{device or 0}")

    # ---- state --------------------------------------------------------------------------
    def state_dict(self, prefix: str = "") -> "OrderedDict[str, Tensor]":
        """Parameters and persistent buffers by dotted name (detached, sharing values)."""
        out: OrderedDict[str, Tensor] = OrderedDict()
        for mod_prefix, mod in self._walk(prefix.rstrip("."), None):
            for name, p in mod._parameters.items():
                if p is not None:
                    out[f"{mod_prefix}.{name}" if mod_prefix else name] = p.detach()
            for name, b in mod._buffers.items():
                if b is not None and name not in mod._non_persistent:
                    out[f"{mod_prefix}.{name}" if mod_prefix else name] = b.detach()
        return out

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values in; returns (missing_keys, unexpected_keys). strict raises on any mismatch of keys."""
        own: dict[str, Tensor] = {}
        for mod_prefix, mod in self._walk("", None):
            for table, skip in ((mod._parameters, set()), (mod._buffers, mod._non_persistent)):
                for name, t in table.items():
                    if t is not None and name not in skip:
                        own[f"{mod_prefix}.{name}" if mod_prefix else name] = t
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise Error(f"Error(s) in loading state_dict for {type(self).__name__}: "
                        f"missing keys {missing}, unexpected keys {unexpected}")
        for key, t in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = value if isinstance(value, Tensor) else Tensor(value, dtype=t.dtype)
            if value.shape != t.shape:
                raise ShapeError(f"size mismatch for {key}: copying a param with shape {value.shape} from "
                                 f"checkpoint, the shape in current model is {t.shape}")
        with no_grad():  # an in-place write of every tensor, as torch's (versions count it)
            for key, t in own.items():
                if key in state_dict:
                    value = state_dict[key]
                    value = value if isinstance(value, Tensor) else Tensor(value, dtype=t.dtype)
                    t.copy_(value.detach().to(t.dtype).contiguous().realize())
        return IncompatibleKeys(missing, unexpected)

    # ---- printing -----------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        head = f"{type(self).__name__}(" + (extra + "\n" if extra else "\n")
        return head + "".join("  " + line + "\n" for line in lines) + ")"


def _move(t: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    dtype = kwargs.get("dtype")
    device = kwargs.get("device")
    for a in args:
        if isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda", "opencl"):
            device = a
        elif a is not None:
            dtype = a
    if dtype is not None and not t.dtype.is_floating_point:
        dtype = None  # like torch: integer buffers keep their dtype when a module is cast
    if dtype is None and device is None:
        return t
    return t.to(device=device, dtype=dtype) if device is not None else t.to(dtype)

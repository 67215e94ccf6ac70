"""docs/parity.md lists, per namespace, the names PyTorch has and fusegrad lacks; this test keeps the
lists true: a name fusegrad gains must leave its list, a name it lacks must be on it.

`python3 -m tests.test_parity` prints the lists as docs/parity.md holds them.
"""
from __future__ import annotations

import inspect
import re
import types
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

import fusegrad as fg

DOC = Path(__file__).resolve().parents[1] / "docs" / "parity.md"


def _is_function(value: Any) -> bool:
    return isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType,
                              types.WrapperDescriptorType)) or type(value).__name__ in ("builtin_function_or_method",)


def _public(owner: Any, keep: Callable[[str, Any], bool]) -> set[str]:
    names = set()
    for name in dir(owner):
        if name.startswith("_"):
            continue
        try:
            value = getattr(owner, name)
        except Exception:  # noqa: BLE001  (torch's lazy attributes may fail to load here)
            continue
        if keep(name, value):
            names.add(name)
    return names


def _classes(owner: Any) -> set[str]:
    return _public(owner, lambda n, v: inspect.isclass(v))


def _functions(owner: Any) -> set[str]:
    return _public(owner, lambda n, v: _is_function(v))


def _module_of(owner: Any, prefix: str) -> Callable[[str, Any], bool]:
    """Classes and functions defined under `prefix` (not typing helpers a module happens to import)."""
    def keep(name: str, value: Any) -> bool:
        return (inspect.isclass(value) or _is_function(value)) and \
            (getattr(value, "__module__", "") or "").startswith(prefix)
    return keep


# torch's top-level functions for its other back ends, quantization, sparse layouts, TorchScript and
# internal kernels: not API a fusegrad user would look for, so not listed
_INTERNAL = re.compile(r"^(fbgemm|miopen|mkldnn|cudnn|quantize|quantized|q_|fake_quantize|sparse_|sym_|native_|"
                       r"is_autocast|get_autocast|set_autocast|autocast_|clear_autocast|import_ir|parse_|"
                       r"merge_type|unify_type|profiler_|choose_qparams|fused_moving|int_repr|dequantize|"
                       r"batch_norm_|\w+_copy$|segment_reduce|classproperty|compiled_with|prepare_multiprocessing|"
                       r"empty_quantized|thread_safe_generator|from_file|hash_tensor|wait$|fork$|typename$)")


def _torch_top_level() -> set[str]:
    return {n for n in _functions(torch) if not _INTERNAL.match(n)}


def _tensor_api(owner: Any) -> set[str]:
    return _public(owner, lambda n, v: True)


def _torch_tensor_api() -> set[str]:
    """torch.Tensor's methods and properties, less sparse, quantized and complex layouts' own."""
    skip = re.compile(r"^(q_|int_repr|dequantize|indices|values|crow_|ccol_|col_indices|row_indices|coalesce|"
                      r"is_coalesced|sparse|to_sparse|to_mkldnn|is_mkldnn|dense_dim|_nnz|conj|resolve_conj|"
                      r"resolve_neg|is_conj|is_neg|imag|real|angle|polar|cfloat|cdouble|chalf|is_quantized|"
                      r"qscheme|storage|untyped_storage|share_memory_|is_shared|is_meta|is_mps|is_xla|is_ipu|"
                      r"is_xpu|is_maia|is_mtia|is_vulkan|is_ort|is_nested|is_sparse|is_sparse_csr|"
                      r"pin_memory|is_pinned|record_stream|map_|map2_|apply_|smm|sspaddmm|"
                      r"as_subclass|new_tensor$)")
    return {n for n in _tensor_api(torch.Tensor) if not skip.match(n)}


# torch.nn.functional's dispatch helpers, and torch.utils.data's deprecated datapipes
_FUNCTIONAL_PLUMBING = re.compile(r"^(has_torch_function|handle_torch_function|boolean_dispatch|assert_int_or_pair)")
_DATAPIPES = re.compile(r"(DataPipe|DataChunk|datapipe|validation|non_deterministic)")


# namespace -> (torch's names, fusegrad's names)
NAMESPACES: dict[str, Callable[[], tuple[set[str], set[str]]]] = {
    "torch": lambda: (_torch_top_level(), set(dir(fg))),
    "torch.Tensor": lambda: (_torch_tensor_api(), set(dir(fg.Tensor))),
    "torch.nn": lambda: (_classes(torch.nn) - {"Container"}, set(dir(fg.nn))),
    "torch.nn.functional": lambda: ({n for n in _public(torch.nn.functional, _module_of(torch.nn.functional, "torch"))
                                     if n.islower() and not _FUNCTIONAL_PLUMBING.match(n)}, set(dir(fg.nn.functional))),
    "torch.linalg": lambda: (_functions(torch.linalg), set(dir(fg.linalg))),
    "torch.optim": lambda: (_classes(torch.optim), set(dir(fg.optim))),
    "torch.optim.lr_scheduler": lambda: (_public(torch.optim.lr_scheduler,
                                                 _module_of(torch.optim.lr_scheduler, "torch.optim")),
                                         set(dir(fg.optim.lr_scheduler))),
    "torch.utils.data": lambda: ({n for n in _public(torch.utils.data, _module_of(torch.utils.data, "torch.utils.data"))
                                  if not _DATAPIPES.search(n)}, set(dir(fg.utils.data))),
}


def missing(namespace: str) -> list[str]:
    theirs, ours = NAMESPACES[namespace]()
    return sorted(theirs - ours)


def documented(namespace: str) -> list[str]:
    """The names in the fenced block under the heading "### `namespace`" of docs/parity.md."""
    text = DOC.read_text()
    match = re.search(rf"^### `{re.escape(namespace)}`.*?\n```\n(.*?)```", text, re.S | re.M)
    assert match, f"docs/parity.md has no list for {namespace}"
    return sorted(match.group(1).split())


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_the_parity_list_is_true(namespace: str) -> None:
    want, have = missing(namespace), documented(namespace)
    gained = sorted(set(have) - set(want))
    lacking = sorted(set(want) - set(have))
    assert not gained and not lacking, (f"{namespace}: remove {gained} from docs/parity.md (fusegrad has them), "
                                        f"add {lacking} (fusegrad lacks them); `python3 -m tests.test_parity` "
                                        "prints the lists")


def _block(names: list[str], width: int = 100) -> str:
    lines, line = [], ""
    for name in names:
        if line and len(line) + 1 + len(name) > width:
            lines.append(line)
            line = name
        else:
            line = f"{line} {name}" if line else name
    return "\n".join(lines + [line] if line else lines)


if __name__ == "__main__":
    for ns in NAMESPACES:
        names = missing(ns)
        print(f"### `{ns}` ({len(names)} of {len(NAMESPACES[ns]()[0])})\n\n```\n{_block(names)}\n```\n")

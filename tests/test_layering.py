"""Lower layers never import higher ones (design.md: data flows top to bottom).

Layers, lowest first, by rank:
  0 foundation  errors, flags, dtypes, float8, typeinfo, autocast_state, precision
  1 graph       the lazy graph: ops, nodes, symbolic index math
  1 runtime     devices, buffers, compilers, kernel cache (knows nothing of graphs or kernels' meaning)
  2 codegen     kernel -> loop IR -> source text
  3 engine      schedule, realize, profile; hostdata.py (host lists/arrays into device buffers) too
  4 autograd    derivative rules
  5 ops         composite-op mixins of Tensor, and views.py (in-place writes, views, versions)
  5 printing    repr of tensors
  6 tensor      the user-facing Tensor, creation.py (zeros, arange, eye, ...)
  7 random      random tensor creation
  8 (anything else under fusegrad/: nn, optim, data, viz, io, ...)
  9 package     fusegrad/__init__.py (the public API)
 10 programs    fusegrad/__main__.py and fusegrad/examples/: runnable programs using the public API
A module may import its own layer and layers of lower rank; two different layers of the same
rank may not import each other. The one exception is the frontend (autograd, ops, printing,
tensor): its modules call back into each other through imports inside functions or under
TYPE_CHECKING (tensor.py imports the mixins at load time, so they cannot import it then).
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fusegrad"

RANKS = {"foundation": 0, "graph": 1, "runtime": 1, "codegen": 2, "engine": 3, "autograd": 4, "ops": 5,
         "printing": 5, "tensor": 6, "random": 7, "app": 8, "package": 9, "programs": 10}
FRONTEND = {"autograd", "ops", "printing", "tensor"}
# layers of the modules and folders directly under fusegrad/, other than the PACKAGES below
TOP_LEVEL = {"errors": "foundation", "flags": "foundation", "dtypes": "foundation", "float8": "foundation",
             "typeinfo": "foundation",
             "autocast_state": "foundation",
             "precision": "foundation",
             "autograd": "autograd",
             "printing": "printing", "tensor": "tensor", "creation": "tensor", "views": "ops",
             "function": "tensor", "flat": "tensor", "capturing": "tensor",
             "linalg": "tensor", "hostdata": "engine",
             "random": "random", "__init__": "package",
             "__main__": "programs", "examples": "programs"}
PACKAGES = {"graph", "runtime", "codegen", "engine", "ops"}


def layer_of(module: str) -> str:
    """Layer of a dotted module name inside fusegrad ('fusegrad.graph.node' -> 'graph')."""
    parts = module.split(".")[1:]
    if not parts:
        return "package"
    if parts[0] in PACKAGES:
        return parts[0]
    return TOP_LEVEL.get(parts[0], "app")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def resolve(importer: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """Absolute names of the fusegrad modules an import statement loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "fusegrad"]
    if node.level == 0:
        base = node.module or ""
    else:
        anchor = importer.split(".")
        if not is_package:
            anchor = anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    if base.split(".")[0] != "fusegrad":
        return []
    names = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        as_path = PACKAGE.parent.joinpath(*candidate.split("."))
        names.append(candidate if as_path.with_suffix(".py").exists() or as_path.is_dir() else base)
    return names


def imports(source: str, importer: str, is_package: bool) -> list[tuple[str, bool, int]]:
    """(imported module, deferred?, line) for every fusegrad import; deferred = inside a function
    or an `if TYPE_CHECKING:` block, i.e. not executed when the module loads."""
    found = []
    stack: list[tuple[ast.AST, bool]] = [(ast.parse(source), False)]
    while stack:
        node, deferred = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.extend((name, deferred, node.lineno) for name in resolve(importer, is_package, node))
            continue
        inner = deferred or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend((child, True) for child in node.body)
            stack.extend((child, inner) for child in node.orelse)
            continue
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))
    return found


def violations(source: str, importer: str, is_package: bool = False) -> list[str]:
    low = layer_of(importer)
    out = []
    for target, deferred, line in imports(source, importer, is_package):
        high = layer_of(target)
        if high == low or RANKS[high] < RANKS[low]:
            continue
        if deferred and low in FRONTEND and high in FRONTEND:
            continue
        how = "deferred import" if deferred else "import"
        out.append(f"{importer}:{line}: {low} layer has an {how} of {target} ({high} layer)")
    return out


def package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_respect_layers(path: Path) -> None:
    found = violations(path.read_text(), module_name(path), path.name == "__init__.py")
    assert not found, "\n".join(found)


def test_every_layer_is_present() -> None:
    layers = {layer_of(module_name(p)) for p in package_modules()}
    assert layers >= set(RANKS) - {"app"}


@pytest.mark.parametrize("importer,source", [
    ("fusegrad.runtime.cpu", "from ..graph.node import Node"),
    ("fusegrad.runtime.cpu", "from ..tensor import Tensor"),
    ("fusegrad.graph.node", "from ..runtime import registry"),
    ("fusegrad.codegen.lower", "def f():\n    from ..engine.schedule import toposort"),
    ("fusegrad.engine.realize", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..tensor import Tensor"),
    ("fusegrad.autograd", "from .tensor import Tensor"),
    ("fusegrad.dtypes", "import fusegrad.graph.ops"),
    ("fusegrad.tensor", "import fusegrad"),
])
def test_checker_catches_upward_imports(importer: str, source: str) -> None:
    assert violations(source, importer), f"{importer}: `{source}` should be a violation"


@pytest.mark.parametrize("importer,source", [
    ("fusegrad.ops.movement", "def f():\n    from ..tensor import Tensor"),
    ("fusegrad.autograd", "def f():\n    from .tensor import realize"),
    ("fusegrad.engine.realize", "from ..codegen.lower import lower\nfrom ..runtime import registry"),
    ("fusegrad.runtime.cpu", "from . import cache\nfrom .. import flags"),
])
def test_checker_allows_downward_and_frontend_callbacks(importer: str, source: str) -> None:
    assert not violations(source, importer)


# the training stack is written on the Tensor API alone: no graph nodes, kernels, devices or captures
TENSOR_API_USERS = ("nn", "optim", "data", "utils")
BELOW_THE_TENSOR_API = {"graph", "runtime", "codegen", "engine"}


def below_tensor_api(source: str, importer: str, is_package: bool = False) -> list[str]:
    return [f"{importer}:{line}: imports {target} ({layer_of(target)} layer), below the Tensor API"
            for target, _, line in imports(source, importer, is_package) if layer_of(target) in BELOW_THE_TENSOR_API]


@pytest.mark.parametrize("path", [p for p in package_modules() if p.relative_to(PACKAGE).parts[0] in TENSOR_API_USERS],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_training_stack_uses_only_the_tensor_api(path: Path) -> None:
    found = below_tensor_api(path.read_text(), module_name(path), path.name == "__init__.py")
    assert not found, "\n".join(found)


def test_tensor_api_checker_catches_low_imports() -> None:
    assert below_tensor_api("from ..graph.node import Node", "fusegrad.optim.sgd")
    assert below_tensor_api("def f():\n    from ..engine import capture", "fusegrad.nn.functional")
    assert not below_tensor_api("from ..tensor import Tensor\nfrom ..flat import bind", "fusegrad.optim.sgd")

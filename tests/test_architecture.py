"""The import graph of the project's own packages, read from the source (AST, nothing is imported).

Every ``import`` counts, at module level or inside a function (a lazy import is still a dependency). Relative
imports are resolved, and ``from pkg import name`` points at ``pkg.name`` when that is a module. Rules:

* no import circles between modules;
* package direction: ``edge`` (the bedside runtime) imports none of export/training/benchmarks, ``training``
  imports no export/benchmarks, ``export`` imports no benchmarks;
* inside ``edge``, the layers of docs/design.md ("packages in the order data flows"): a module imports only
  from its own package or a lower layer, and the two domains (``edge.us``, ``edge.ct``) not from each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "export", "training", "benchmarks")
FORBIDDEN = {  # package -> packages it must not import
    "edge": {"export", "training", "benchmarks"},
    "training": {"export", "benchmarks"},
    "export": {"benchmarks"},
    "benchmarks": set(),
}

#: edge's layers, lowest first (docs/design.md); a name is edge's sub-package or top-level module
EDGE_LAYERS = (
    {"errors", "notice", "atomic", "stats", "spec", "assets", "argtypes", "gpu", "metrics", "dicom_codecs", "dicom_sr"},
    {"sources", "capture"},  # frames in, and the hand-over to the loop
    {"backends"},  # inference
    {"us", "ct"},  # the two domains
    {"sinks"},  # outputs
    {"jobs", "faults"},  # composition (faults: the fault corpus, built from both domains' test inputs)
    {"commands", "ui"},
    {"cli"},
)


def module_name(path: Path) -> str:
    """edge/backends/select.py -> edge.backends.select; edge/backends/__init__.py -> edge.backends."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    """Every module of the checked packages: dotted name -> file."""
    return {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Dotted names imported anywhere in ``tree``: ``import a.b`` -> a.b; ``from a import b`` -> a.b (which
    :func:`nearest_module` maps back to ``a`` when ``b`` is not a module)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve_relative(node, module, is_package)
            names.update(base if alias.name == "*" else f"{base}.{alias.name}" for alias in node.names)
    return names


def resolve_relative(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module of ``from ...x import y`` inside ``module``."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (a name that is not a module counts as its package)."""
    modules = all_modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = {nearest_module(n, modules) for n in imported_names(tree, name, path.name == "__init__.py")}
        graph[name] = {t for t in targets if t and t != name}
    return graph


def nearest_module(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` if it is a project module, else its closest enclosing one (a.b.func -> a.b); None if outside."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` reaches through one or more imports."""
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles: the strongly connected components of more than one module (modules that reach each other)."""
    reach = {m: reachable(graph, m) for m in graph}
    found: list[list[str]] = []
    for m in sorted(graph):
        component = sorted(n for n in reach[m] if m in reach.get(n, ()))
        if len(component) > 1 and component not in found:
            found.append(component)
    return found


def package_of(module: str) -> str:
    return module.split(".")[0]


def test_the_graph_sees_lazy_relative_and_from_imports():
    graph = import_graph()
    assert "edge.backends.tensorrt.runner" in graph["edge.backends.select"]  # inside a function
    assert "edge.backends.base" in graph["edge.backends"]  # package __init__
    tree = ast.parse("from . import base\nfrom .tensorrt import flavour\nfrom .. import errors\n")
    names = imported_names(tree, "edge.backends.select", is_package=False)
    assert {"edge.backends.base", "edge.backends.tensorrt.flavour", "edge.errors"} <= names


def test_cycles_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    found = cycles(import_graph())
    assert not found, "import circles (strongly connected components):\n" + "\n".join(
        "  " + " <-> ".join(c) for c in found)


def test_packages_import_in_one_direction():
    bad = sorted(f"{m} -> {t}" for m, targets in import_graph().items() for t in targets
                 if package_of(t) in FORBIDDEN[package_of(m)])
    assert not bad, "imports against the package direction:\n  " + "\n  ".join(bad)


def edge_layer(module: str) -> tuple[int, str] | None:
    """(layer index, part) of an ``edge.*`` module; None for ``edge`` itself."""
    parts = module.split(".")
    if parts[0] != "edge" or len(parts) < 2:
        return None
    for i, layer in enumerate(EDGE_LAYERS):
        if parts[1] in layer:
            return i, parts[1]
    raise AssertionError(f"{module}: not in any layer of EDGE_LAYERS; add it there and to docs/design.md")


def test_edge_imports_only_downward():
    bad = []
    for m, targets in import_graph().items():
        src = edge_layer(m)
        for t in targets:
            dst = edge_layer(t)
            if src is None or dst is None or src[1] == dst[1]:
                continue
            if dst[0] > src[0] or (dst[0] == src[0] and dst[0] == 3):
                bad.append(f"{m} -> {t}")
    assert not bad, "imports up (or across the two domains) inside edge/:\n  " + "\n  ".join(sorted(bad))


def test_the_layer_rule_catches_an_upward_import():
    assert edge_layer("edge.sinks.base")[0] > edge_layer("edge.us.types")[0]  # sinks may read results
    assert edge_layer("edge.sources.video")[0] < edge_layer("edge.us.calibration_like")[0]  # not the reverse

"""The package's import graph: no import cycle at module level, no private names across subpackages.

The graph is built with ``ast`` over ``convexnn/**/*.py`` (no import is executed). A module-level
import (also inside a module-level ``if``/``try``, not under ``if TYPE_CHECKING``) of
``convexnn.a.b`` is an edge to the module ``convexnn.a.b``; ``from convexnn.a import b`` is an
edge to ``convexnn.a.b`` when that is a module and to ``convexnn.a`` otherwise.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "convexnn"

#: Imports of private names (or private modules) across subpackages, as ``(importing module,
#: imported module)``: none.
KNOWN_PRIVATE: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(encoding="utf-8"), filename=str(p))
            for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(body: list[ast.stmt]):
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                yield from _module_level_imports(block)


def _resolve(node: ast.ImportFrom, current: str, is_pkg: bool) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".") if is_pkg else current.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _edges(name: str, tree: ast.Module, modules: dict[str, ast.Module], nodes) -> set[str]:
    out: set[str] = set()
    is_pkg = (ROOT.parent / Path(*name.split(".")) / "__init__.py").exists()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "convexnn"}
        else:
            mod = _resolve(node, name, is_pkg)
            if mod.split(".")[0] != "convexnn":
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.add(sub if sub in modules else mod)
    return {m for m in out if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _edges(name, tree, modules, _module_level_imports(tree.body)) for name, tree in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_graph_sees_the_package():
    g = _graph()
    assert "convexnn.solvers.dispatch" in g and "convexnn.formulations.losses" in g
    assert "convexnn.formulations.formulation" in g["convexnn.solvers.dispatch"]
    assert "convexnn.formulations.losses" in g["convexnn.formulations.huber"]


def test_cycle_detector_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_level_import_cycle():
    cycles = _cycles(_graph())
    assert cycles == [], f"module-level import cycles: {cycles}"


#: The layers of docs/DESIGN.md in import order (modules not listed form the last, user layer).
LAYERS = [
    ("convexnn.errors", "convexnn.rounding", "convexnn.backend", "convexnn.data", "convexnn.gap",
     "convexnn.certificate", "convexnn._cvxpy_warnings"),
    ("convexnn.arrangements",),
    ("convexnn.formulations",),
    ("convexnn.solvers", "convexnn.duality.cones", "convexnn.duality.bounds"),
    ("convexnn.networks", "convexnn.mapping", "convexnn.torch_interop"),
    ("convexnn.duality",),
]


def _layer(module: str) -> int:
    """Index of the most specific layer prefix of ``module`` (``len(LAYERS)`` for the user layer)."""
    best = (len(LAYERS), -1)
    for i, group in enumerate(LAYERS):
        for p in group:
            if (module == p or module.startswith(p + ".")) and len(p) > best[1]:
                best = (i, len(p))
    return best[0]


def test_layers_import_only_their_own_or_earlier_layers():
    up = sorted((m, e) for m, es in _graph().items() for e in es if _layer(e) > _layer(m))
    assert up == [], f"module-level imports of a later layer: {up}"
    assert _layer("convexnn.duality.cones") < _layer("convexnn.duality.certify") < _layer("convexnn.estimators")


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def _private_imports(modules: dict[str, ast.Module] | None = None) -> set[tuple[str, str, str]]:
    """Every import (also inside functions) of a private name or module from another subpackage.

    Private modules directly under ``convexnn`` (``convexnn._cvxpy_warnings``) belong to the
    whole package and may be imported anywhere; dunder names (``__version__``) are public.
    """
    modules = _modules() if modules is None else modules
    found: set[tuple[str, str, str]] = set()
    for name, tree in modules.items():
        is_pkg = (ROOT.parent / Path(*name.split(".")) / "__init__.py").exists()
        home = name.split(".")[:2]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                mod = _resolve(node, name, is_pkg)
                if mod.split(".")[0] != "convexnn" or mod.split(".")[:2] == home:
                    continue
                private_mod = any(_private(p) for p in mod.split(".")[2:])
                for a in node.names:
                    if _private(a.name) or private_mod:
                        found.add((name, mod, a.name))
            elif isinstance(node, ast.Import):
                for a in node.names:
                    parts = a.name.split(".")
                    if parts[0] == "convexnn" and parts[:2] != home and any(_private(p) for p in parts[2:]):
                        found.add((name, a.name, ""))
    return found


def test_no_private_name_across_subpackages():
    found = {(m, mod, n) for m, mod, n in _private_imports() if (m, mod) not in KNOWN_PRIVATE}
    assert sorted(found) == [], f"private names imported from another subpackage: {sorted(found)}"


def test_private_detector_sees_a_private_import():
    src = ("from convexnn.duality._common import cone_support\n"
           "def f():\n    from convexnn.formulations.two_layer import _fit, c_relu\n"
           "from convexnn._cvxpy_warnings import translated\nfrom convexnn import __version__\n"
           "from convexnn.solvers.gap import _rel\n")
    found = _private_imports({"convexnn.solvers.x": ast.parse(src)})
    assert found == {("convexnn.solvers.x", "convexnn.duality._common", "cone_support"),
                     ("convexnn.solvers.x", "convexnn.formulations.two_layer", "_fit")}

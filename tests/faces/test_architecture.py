"""The layout docs/architecture.md describes, checked: one-way layers, no import cycles, the size budget.

The layers and the forbidden imports (scapy only at the packet edge, Hypothesis only in the testing
kit) are import-linter contracts in pyproject.toml; this runs them, so a change that makes an arrow
point up fails the suite with the import that does it. Cycles between modules are found on the same
import graph (grimp, which import-linter builds on): every strongly connected component must be a
single module.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pktverify"

# The budget docs/architecture.md states: a module a newcomer reads in one sitting, a function that
# fits a screen (docstring included).
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def test_the_layers_and_forbidden_imports_hold(capsys):
    """Every import-linter contract in pyproject.toml is kept (the output names each broken import)."""
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root) & modules)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child) & modules))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_itself_round_a_cycle():
    """No two modules import each other, directly or round a longer loop (lazy imports inside
    functions included: they are dependencies too)."""
    graph = grimp.build_graph("pktverify", cache_dir=None)
    modules = {m for m in graph.modules if m.startswith("pktverify")}
    assert _cycles(graph, modules) == []


def test_no_module_imports_the_package_face():
    """The face (``pktverify/__init__.py``) re-exports from the packages; a module importing it
    instead of the module that defines a name would depend on every layer at once."""
    graph = grimp.build_graph("pktverify", cache_dir=None)
    assert graph.find_modules_that_directly_import("pktverify") == set()


def test_the_cycle_check_sees_a_cycle():
    """The cycle check can fail: two modules importing each other, and a loop of three, are found."""
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.a"), ("p.c", "p.d"), ("p.d", "p.e"), ("p.e", "p.c"),
                               ("p.f", "p.a")]:
        graph.add_import(importer=importer, imported=imported)
    assert _cycles(graph, set(graph.modules)) == [["p.a", "p.b"], ["p.c", "p.d", "p.e"]]


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_fits_the_budget():
    long = {str(p.relative_to(ROOT)): n for p in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: split them at their seams"


def test_every_function_fits_the_budget():
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = length
    assert long == {}, f"functions over {MAX_FUNCTION_LINES} lines: split them into named steps"


def test_the_budget_check_sees_a_long_function(tmp_path, monkeypatch):
    """The budget checks can fail: a module with one 61-line function and 451 lines is caught."""
    package = tmp_path / "pktverify"
    package.mkdir()
    body = "\n".join(["def f():"] + ["    x = 1"] * 60) + "\n"
    (package / "big.py").write_text(body + "\n" * (MAX_MODULE_LINES - body.count("\n") + 1))
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    with pytest.raises(AssertionError, match="functions over"):
        test_every_function_fits_the_budget()
    with pytest.raises(AssertionError, match="modules over"):
        test_every_module_fits_the_budget()


def _documented_public_names() -> set[str]:
    """The names in docs/library.md's "Public names" table: each row's first cell, backticked."""
    import re

    text = (ROOT / "docs" / "library.md").read_text()
    section = text.split("## Public names", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", row.split("|")[1])}


def test_the_public_face_is_what_the_docs_list():
    """``pktverify.__all__`` is exactly the documented names, and each resolves (lazily) to an object."""
    import pktverify

    assert set(pktverify.__all__) == _documented_public_names()
    for name in pktverify.__all__:
        assert getattr(pktverify, name) is not None, name


def test_every_module_says_its_job():
    """Every module opens with a docstring (the architecture page points readers to them)."""
    bare = [str(p.relative_to(ROOT)) for p in _sources() if not ast.get_docstring(ast.parse(p.read_text()))]
    assert bare == []

"""The package's modules import one way: no cycle, no import hidden inside a function.

The graph is read from the source with `ast` (nothing is imported), so a cycle that Python
happens to tolerate at import time, or one dodged by importing inside a function, still fails.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PACKAGE = "cnn_explainer_widget"
#: The widget layer: only it may import anywidget/traitlets, and no core module may import it.
WIDGET_LAYER = {
    f"{PACKAGE}.{name}"
    for name in (
        "_protocol",
        "_export",
        "_whyif",
        "_uploads",
        "_widget_state",
        "_widget_messages",
        "_widget",
    )
}


def _modules(root: Path = ROOT / PACKAGE) -> dict[str, Path]:
    return {
        ".".join((PACKAGE, *path.relative_to(root).with_suffix("").parts)).removesuffix(
            ".__init__"
        ): path
        for path in sorted(root.rglob("*.py"))
    }


def _imported(node: ast.Import | ast.ImportFrom, modules: set[str], here: str) -> set[str]:
    """The package modules an import statement imports."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    if node.level:  # a relative import: resolve it against the importing module
        base = here.rsplit(".", node.level)[0]
        target = f"{base}.{node.module}" if node.module else base
    else:
        target = node.module or ""
    if target not in modules:
        return set()
    # `from pkg import name` imports the sub-module pkg.name when there is one.
    subs = {f"{target}.{a.name}" for a in node.names} & modules
    return subs or {target}


def _lazy_target(node: ast.Call) -> str | None:
    """The literal module name of a ``lazy_import("...")`` call; "" for a non-literal one."""
    func = node.func
    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    if called != "lazy_import":
        return None
    if len(node.args) == 1 and isinstance(node.args[0], ast.Constant):
        return str(node.args[0].value)
    return ""


def import_graph(
    files: dict[str, Path],
) -> tuple[dict[str, set[str]], list[str]]:
    """Module → package modules it imports at run time, and every function-level import.

    Imports at module level (also inside a module-level ``try``/``if``) are edges; those under
    ``if TYPE_CHECKING:`` are for the type checker only and are not. A module-level
    ``lazy_import("cnn_explainer_widget.x")`` (`cnn_explainer_widget._lazy`: the module's code
    runs on first use, so the first widget does not import Flax) is an edge like an import:
    it must respect the same order and make no cycle. One inside a function, or with a name
    that is not a literal, is reported with the hidden imports.
    """
    modules = set(files)
    graph: dict[str, set[str]] = {}
    hidden: list[str] = []

    def visit(node: ast.AST, name: str, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            lazy = _lazy_target(child) if isinstance(child, ast.Call) else None
            if isinstance(child, ast.Import | ast.ImportFrom):
                targets = _imported(child, modules, name) - {name}
                if where == "module":
                    graph[name] |= targets
                elif where == "function" and targets:
                    hidden.append(f"{files[name].name}:{child.lineno} imports {sorted(targets)}")
            elif lazy is not None and (where == "function" or lazy not in modules):
                hidden.append(f"{files[name].name}:{child.lineno} lazy_import({lazy or '?'})")
            elif lazy is not None:
                graph[name].add(lazy)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for part in child.body:
                    visit(ast.Module(body=[part], type_ignores=[]), name, "types")
                for part in child.orelse:
                    visit(ast.Module(body=[part], type_ignores=[]), name, where)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, name, "function")
            else:
                visit(child, name, where)

    for name, path in files.items():
        graph[name] = set()
        visit(ast.parse(path.read_text(), str(path)), name, "module")
    return graph, hidden


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first = last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph, _ = import_graph(_modules())
    # The package's __init__ re-exports everything; modules must not import it (that would
    # make every module depend on every other).
    graph.pop(PACKAGE)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])
    importers = sorted(m for m, deps in graph.items() if PACKAGE in deps)
    assert not importers, f"{importers} import the package's __init__"


def test_no_package_import_inside_a_function():
    _, hidden = import_graph(_modules())
    assert not hidden, "imports inside functions (dodging a cycle?): " + "; ".join(hidden)


def test_the_core_does_not_import_the_widget_layer():
    graph, _ = import_graph(_modules())
    for module, deps in graph.items():
        if module in WIDGET_LAYER or module == PACKAGE:
            continue
        assert not deps & WIDGET_LAYER, f"{module} imports {sorted(deps & WIDGET_LAYER)}"
        source = _modules()[module].read_text()
        tree = ast.parse(source)
        external = {
            a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for a in n.names
        } | {
            (n.module or "").split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and not n.level
        }
        assert not external & {"anywidget", "traitlets", "ipywidgets"}, module


def test_no_private_name_is_imported_from_another_module():
    """A name one module uses from another is public there (private modules may be imported)."""
    files = _modules()
    found = []
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and _imported(node, set(files), name) - {name}:
                private = [
                    a.name
                    for a in node.names
                    if a.name.startswith("_") and f"{node.module}.{a.name}" not in files
                ]
                found += [f"{path.name}:{node.lineno} imports {p}" for p in private]
    assert not found, "; ".join(found)


def _readme_layout() -> tuple[list[str], list[str], list[str]]:
    """The README's layout block: package modules in order, package folders, top folders."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Layout\n.*?```\n(.*?)```", text, re.S)
    assert block, "README.md has no code block under '## Layout'"
    modules, folders, top = [], [], []
    for line in block.group(1).splitlines():
        entry = line.split()[0] if line.strip() else ""
        if line.startswith("  ") and entry.endswith(".py"):
            modules.append(f"{PACKAGE}.{entry[:-3]}")
        elif line.startswith("  ") and entry.endswith("/"):
            folders.append(entry.rstrip("/"))
        elif entry.endswith("/") and entry != f"{PACKAGE}/":
            top.append(entry.rstrip("/"))
    return modules, folders, top


def test_the_readme_layout_matches_the_tree_in_import_order():
    modules, folders, top = _readme_layout()
    files = _modules()
    assert sorted(modules) == sorted(set(files) - {PACKAGE}), "README layout vs package modules"
    package = ROOT / PACKAGE
    on_disk = sorted(p.name for p in package.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert sorted(folders) == on_disk
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    top_dirs = sorted({p.split("/")[0] for p in tracked if "/" in p and not p.startswith(".")})
    assert sorted([*top, PACKAGE]) == top_dirs
    graph, _ = import_graph(files)
    for i, module in enumerate(modules):
        later = graph[module] & set(modules[i + 1 :])
        assert not later, f"README lists {module} before {sorted(later)}, which it imports"


def test_the_checks_see_a_cycle_and_a_hidden_import(tmp_path):
    """The walker itself: a planted cycle, a function-level import and lazy imports are found."""
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(f"from {PACKAGE}.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    (pkg / "c.py").write_text(f"from {PACKAGE} import a\n")
    (pkg / "d.py").write_text(
        f"from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import {PACKAGE}.c\n"
        f"else:\n    c = lazy_import('{PACKAGE}.c')\n"
    )
    (pkg / "e.py").write_text(
        f"def f():\n    return lazy_import('{PACKAGE}.a')\nm = lazy_import(NAME)\n"
    )
    graph, hidden = import_graph(_modules(pkg))
    assert graph[f"{PACKAGE}.a"] == {f"{PACKAGE}.b"}
    assert graph[f"{PACKAGE}.c"] == {f"{PACKAGE}.a"}
    assert graph[f"{PACKAGE}.d"] == {f"{PACKAGE}.c"}  # the lazy import is an edge
    assert hidden == [
        f"b.py:2 imports ['{PACKAGE}.a']",
        f"e.py:2 lazy_import({PACKAGE}.a)",
        "e.py:3 lazy_import(?)",
    ]
    graph[f"{PACKAGE}.b"].add(f"{PACKAGE}.a")  # as the hidden import would make it
    assert find_cycle(graph) == [f"{PACKAGE}.a", f"{PACKAGE}.b", f"{PACKAGE}.a"]


FIRST_WIDGET = """
import sys
from cnn_explainer_widget import CNNExplainer
w = CNNExplainer()
w.image = w.image[::-1]
w.selected = {"layer": "conv_1_2", "index": 3}
before = sorted({m.split(".")[0] for m in sys.modules} & {"flax", "optax"})
from cnn_explainer_widget import TinyVGG, train
import cnn_explainer_widget.tiny_vgg as t
assert t.TinyVGG is TinyVGG and callable(train)
after = sorted({m.split(".")[0] for m in sys.modules} & {"flax", "optax"})
print(before, after)
"""


def test_the_first_widget_does_not_import_flax():
    """Tiny VGG's widget needs JAX but not Flax (0.25 s of a cold start); Flax names still work.

    In a fresh interpreter: make the widget, change its image and selection, then read
    `TinyVGG` and `train` from the package, which imports Flax only then.
    """
    out = subprocess.run(
        [sys.executable, "-c", FIRST_WIDGET],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")[-2]
    assert out == "[] ['flax', 'optax']", out

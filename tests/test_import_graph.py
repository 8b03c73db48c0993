"""The import graph of router/, providers/ and benchmarks/ has no circles, runtime code
(router/, providers/) never imports `benchmarks`, and every import left inside a
function says why it is there (`# lazy: import time`, an optional extra, ...).

The graph is read from the source with `ast`, so it sees every import statement:
module-level ones and those inside functions alike (a lazy import is still an edge).
Importing `a.b.c` first runs the `__init__` of `a` and of `a.b`, so those packages are
edges too (except a module's own packages, already running). Imports under
`if TYPE_CHECKING:` are left out: they never run, they only name types for annotations.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("router", "providers", "benchmarks")
RUNTIME = ("router", "providers")


def _modules(root: Path, packages: tuple[str, ...]) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package `__init__`)."""
    mods: dict[str, tuple[Path, bool]] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts.pop()
            mods[".".join(parts)] = (path, is_pkg)
    return mods


def _is_type_checking(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                stack.extend(child.orelse)  # type: ignore[attr-defined]
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            stack.append(child)
    return found


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """Dotted names a statement may load: `from a.b import c` -> a.b and a.b.c."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    return [mod] + [f"{mod}.{a.name}" for a in node.names]


def import_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the modules of `packages` it imports (by the longest known prefix)."""
    mods = _modules(root, packages)

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        package = name if is_pkg else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for target in _targets(node, package):
                hit = resolve(target)
                if hit is None or hit == name:
                    continue
                edges.add(hit)
                parts = hit.split(".")
                for i in range(1, len(parts)):  # the packages whose __init__ runs first
                    parent = ".".join(parts[:i])
                    if parent in mods and not (name + ".").startswith(parent + "."):
                        edges.add(parent)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_circles() -> None:
    found = circles(import_graph())
    assert not found, "import circles (each line is one strongly connected group):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_runtime_code_never_imports_benchmarks() -> None:
    graph = import_graph()
    upward = sorted(f"{m} -> {t}" for m, ts in graph.items() if m.split(".")[0] in RUNTIME
                    for t in ts if t.split(".")[0] == "benchmarks")
    assert not upward, "runtime code imports the benchmarks package:\n" + "\n".join(upward)


def _unexplained_function_imports(path: Path) -> list[str]:
    """Runs of import statements inside a function with no `# lazy...` reason on their
    lines or on the line above the run (a `# ... probe` is a reason too)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[str] = []

    def visit(body: list[ast.stmt], in_function: bool) -> None:
        run: list[ast.stmt] = []
        for stmt in [*body, None]:  # type: ignore[list-item]
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                run.append(stmt)
                continue
            if run and in_function:
                text = "\n".join(lines[max(0, run[0].lineno - 2):run[-1].end_lineno])
                if not re.search(r"#.*\b(lazy|probe)\b", text):
                    out.extend(f"{path}:{s.lineno}: {ast.unparse(s)}" for s in run)
            run = []
            if stmt is None or _is_type_checking(stmt):
                continue
            inner = in_function or isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
            for field in ("body", "orelse", "finalbody", "handlers"):
                for block in [getattr(stmt, field, None)]:
                    if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                        visit(block, inner)
                    elif isinstance(block, list):
                        for h in block:
                            if isinstance(h, ast.ExceptHandler):
                                visit(h.body, inner)
            if isinstance(stmt, ast.Match):
                for case in stmt.cases:
                    visit(case.body, inner)

    visit(ast.parse("\n".join(lines)).body, False)
    return out


def test_imports_inside_functions_say_why() -> None:
    found = [hit for pkg in PACKAGES for path in sorted((ROOT / pkg).rglob("*.py"))
             for hit in _unexplained_function_imports(path)]
    assert not found, ("imports inside functions hide the graph: move them to the top, or say why they "
                       "stay (e.g. `# lazy: import time`):\n" + "\n".join(found))


def test_the_checker_sees_function_level_circles(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import x\n")
    (pkg / "b.py").write_text("def f():\n    from . import c\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n"
                              "def g():\n    import pkg.a\n")
    (pkg / "d.py").write_text("import pkg.c\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.c"] == {"pkg.a"}  # the TYPE_CHECKING import is not an edge
    assert circles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_the_checker_sees_circles_through_a_package_init(tmp_path: Path) -> None:
    # sub/__init__ imports sub.high, which imports low, which imports sub.base: running
    # `import sub.base` from low runs sub/__init__ first, so low -> sub is a real edge
    (tmp_path / "p" / "sub").mkdir(parents=True)
    (tmp_path / "p" / "__init__.py").write_text("")
    (tmp_path / "p" / "sub" / "__init__.py").write_text("from p.sub.high import x\n")
    (tmp_path / "p" / "sub" / "base.py").write_text("")
    (tmp_path / "p" / "sub" / "high.py").write_text("from p.sub.base import y\nfrom p.low import z\n")
    (tmp_path / "p" / "low.py").write_text("from p.sub.base import y\n")
    graph = import_graph(tmp_path, ("p",))
    assert "p" not in graph["p.sub.high"]  # its own packages are already running
    assert circles(graph) == [["p.low", "p.sub", "p.sub.high"]]


def test_the_checker_asks_why_an_import_sits_in_a_function(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("import os\n\n\ndef a():\n    import json\n    return json\n\n\n"
                 "def b():\n    import numpy as np  # lazy: import time\n    import numpy.linalg\n    return np\n\n\n"
                 "def c():\n    try:\n        import yaml\n    except ImportError:\n        return None\n")
    found = _unexplained_function_imports(f)
    assert [h.rsplit(":", 2)[-2] for h in found] == ["5", "17"]

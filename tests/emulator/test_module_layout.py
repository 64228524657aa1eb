"""The emulator's module layout (issue 11): no import cycles, function-local imports only with a reason, and the
Entra ID side split into small modules that each say what they serve and which docs/microsoft.md section they follow."""

from __future__ import annotations

import ast
import re
from pathlib import Path

EMULATOR = Path(__file__).resolve().parents[2] / "emulator"
MAX_IDENTITY_MODULE_LINES = 250


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(target: str, modules: set[str]) -> str | None:
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def import_targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the emulator modules it imports (also inside functions). A package importing its own submodules
    (the blueprint-registration idiom) is no dependency."""
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in paths}
    for mod, path in paths.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in import_targets(node):
                found = resolve(target, set(paths))
                if found and found != mod and not (path.name == "__init__.py" and found.startswith(mod + ".")):
                    graph[mod].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                item = stack.pop()
                component.add(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return found


def unexplained_local_imports(root: Path) -> list[str]:
    """Function-local imports of emulator modules without a comment (same line or just above) saying why."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text().splitlines()
        for func in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                if not any(t.split(".")[0] == "emulator" for t in import_targets(node)):
                    continue
                same_line = "#" in lines[node.lineno - 1]
                above = lines[node.lineno - 2].strip().startswith("#")
                if not (same_line or above):
                    problems.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return problems


def test_the_emulator_has_no_import_cycle() -> None:
    graph = import_graph(EMULATOR)
    assert "emulator.server" not in graph["emulator.control"], "control must not import the server that loads it"
    assert cycles(graph) == []


def test_function_local_imports_say_why() -> None:
    assert unexplained_local_imports(EMULATOR) == []


def test_identity_modules_are_small_and_say_what_they_follow() -> None:
    modules = sorted((EMULATOR / "identity").glob("*.py"))
    assert len(modules) > 5, "emulator/identity/ is a package split by endpoint family"
    for path in modules:
        source = path.read_text()
        docstring = ast.get_docstring(ast.parse(source)) or ""
        assert re.search(r"docs/microsoft\.md §\d", docstring.splitlines()[0] if docstring else ""), path.name
        if path.name != "__init__.py":
            assert "\n" not in docstring, f"{path.name}: one-line docstring"
        assert len(source.splitlines()) <= MAX_IDENTITY_MODULE_LINES, path.name

"""Issue 11 point 5: a function-local import of a project module stays only with a comment saying why."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("core", "oidc", "office365", "jobs", "datasources", "imports", "sso", "bulk", "admin", "api",
           "observability", "policies")


def _unexplained_local_imports(path: Path, root: Path = ROOT) -> list[str]:
    lines = path.read_text().splitlines()
    found = []
    for function in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                module = node.module
            elif isinstance(node, ast.Import):
                module = node.names[0].name
            else:
                continue
            if module.split(".")[0] not in PRODUCT:
                continue
            here, above = lines[node.lineno - 1], lines[node.lineno - 2] if node.lineno > 1 else ""
            if "#" not in here and not above.strip().startswith("#"):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {here.strip()}")
    return found


def test_every_local_import_of_a_project_module_says_why() -> None:
    files = [ROOT / "app.py", *(p for package in PRODUCT for p in (ROOT / package).rglob("*.py"))]
    assert len(files) > 100
    unexplained = [line for path in files for line in _unexplained_local_imports(path)]
    assert unexplained == []


def test_the_check_sees_an_unexplained_local_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from core import audit\n    return audit\n\n\ndef g():\n"
                      "    # audit imports this module: import on use\n    from core import audit\n")
    assert _unexplained_local_imports(sample, tmp_path) == ["sample.py:2: from core import audit"]

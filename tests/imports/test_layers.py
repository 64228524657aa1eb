"""Issue 11 point 1: the import is one package below the web layers and beside sso/, and jobs/ stays a generic
runner beneath it. Read from the source, imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_packages(package: str) -> dict[str, set[str]]:
    """Each module of `package` and the top-level packages it imports."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def offending(package: str, forbidden: set[str]) -> dict[str, list[str]]:
    return {module: sorted(names & forbidden) for module, names in imported_packages(package).items()
            if names & forbidden}


def test_imports_sits_below_the_web_layers_and_beside_sso() -> None:
    assert offending("imports", {"admin", "api", "sso", "app", "emulator"}) == {}


def test_the_job_runner_imports_no_job_kind() -> None:
    assert offending("jobs", {"imports", "datasources", "sso", "admin", "api", "app", "emulator"}) == {}


def test_the_microsoft_client_knows_nothing_of_the_import_or_jobs() -> None:
    assert offending("office365", {"imports", "jobs"}) == {}

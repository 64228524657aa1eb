"""The layers of issue 11 around a datasource at work: who may import whom, read from the source (imports inside
functions included), so an arrow running back up fails here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("app.py", "admin", "api", "core", "datasources", "imports", "jobs", "office365", "oidc", "sso")
FEATURES = ("admin", "api", "datasources", "emulator", "imports", "jobs", "office365", "oidc", "sso")


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, and `module.name` for each `from module import name`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def modules_of(package: str) -> list[Path]:
    path = ROOT / package
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def offending(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """The modules of `package` that import a top-level package in `forbidden`, with what they import."""
    found = {}
    for path in modules_of(package):
        bad = sorted(name for name in imports_of(path) if name.split(".")[0] in forbidden)
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_office365_is_a_microsoft_client_without_flask_app_config_or_database() -> None:
    assert offending("office365", ("flask", "flask_sqlalchemy", "core", "jobs", "datasources", "imports", "sso",
                                   "admin", "api", "app")) == {}


def test_oidc_is_neutral() -> None:
    assert offending("oidc", ("flask", "core", "office365", "sso", "datasources", "admin", "api", "app")) == {}


def test_datasources_sits_below_the_web_layers_and_the_features() -> None:
    assert offending("datasources", ("admin", "api", "imports", "sso", "app")) == {}


def test_admin_never_imports_the_json_api() -> None:
    assert offending("admin", ("api",)) == {}


def test_core_imports_no_feature_package() -> None:
    assert offending("core", FEATURES) == {}


def test_nothing_imports_the_old_homes() -> None:
    gone = {"api.service", "api.models", "office365.connection", "office365.id_tokens", "jobs.refresh"}
    users = {str(path.relative_to(ROOT)): sorted(imports_of(path) & gone)
             for package in PRODUCT if (ROOT / package).exists() for path in modules_of(package)
             if imports_of(path) & gone}
    assert users == {}

"""Fixtures of the access policy tests: a small policy document and a helper to build an identity."""

from __future__ import annotations

import time
from typing import Any

import pytest

FINANCE = {"id": "0b4f5a3e-0000-4000-8000-00000000f1a0", "name": "Finance Approvers"}
STAFF = {"id": "0b4f5a3e-0000-4000-8000-00000000057a", "name": "Staff"}


def identity(email: str = "ann@example.com", groups: tuple[str, ...] = (), roles: tuple[str, ...] = (),
             **extra: Any) -> dict[str, Any]:
    return {"user": email, "email": email, "name": email.split("@")[0], "groups": list(groups),
            "roles": list(roles), "tid": extra.pop("tid", "tenant-1"), "provider": extra.pop("provider", "entra"),
            "auth_time": extra.pop("auth_time", int(time.time()) - 60), "acrs": extra.pop("acrs", []), **extra}


@pytest.fixture
def finance_document() -> dict[str, Any]:
    return {
        "hosts": [{"host": "locked.example.com", "default": "deny"}],
        "rules": [
            {"id": "r-health", "name": "Health", "host": "*", "paths": ["/healthz"], "action": "public"},
            {"id": "r-fin", "name": "Finance reports", "host": "finance.example.com",
             "paths": ["/reports/", "/api/*.json"], "methods": ["GET", "POST"],
             "criteria": {"groups_any": [FINANCE]}},
        ],
    }

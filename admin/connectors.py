"""The connectors "+ Add new" offers. Adding one = a registry entry plus its form view."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Connector:
    kind: str
    label: str
    description: str
    endpoint: str


CONNECTORS: tuple[Connector, ...] = (
    Connector("office365", "Office 365",
              "Read users' profiles, manage users, groups and licences, import users, and enable single sign-on.",
              "admin.datasource_new_office365"),
)

KIND_LABELS = {connector.kind: connector.label for connector in CONNECTORS}

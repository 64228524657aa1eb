"""What a run (or dry run) did: counts, and the names behind them (capped) for the run history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NAMES_KEPT = 200


@dataclass
class Outcome:
    """Counts of a run, plus the names behind them (capped) for the dry run and the history."""

    created: int = 0
    updated: int = 0
    disabled: int = 0
    removed: int = 0
    unchanged: int = 0
    errors: int = 0
    pages: int = 0
    processed: int = 0
    resyncs: int = 0
    names: dict[str, list[str]] = field(default_factory=dict)
    error_messages: list[str] = field(default_factory=list)
    # Object ids of the users this run read changed (a users delta item, a membership change); None: not known
    # (the run resumed a round an earlier run began, or started over after a resync): live access then checks
    # every signed-in user.
    changed: set[str] | None = field(default_factory=set)

    def saw_changed(self, object_ids: Any) -> None:
        if self.changed is not None:
            self.changed.update(object_ids)

    def note(self, kind: str, name: str, amount: int = 1) -> None:
        setattr(self, kind, getattr(self, kind) + amount)
        kept = self.names.setdefault(kind, [])
        if len(kept) < NAMES_KEPT:
            kept.append(name)

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_messages) < NAMES_KEPT:
            self.error_messages.append(message)

    def summary(self) -> dict[str, Any]:
        return {"names": self.names, "error_messages": self.error_messages}

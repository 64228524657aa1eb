"""Administration > Access decisions (Administrator): the /auth/verify decisions that were not "allowed" (denied,
not signed in, step-up), newest first, filtered by user, host, rule and outcome and paged; each with the rule and
the reason in words. Nothing secret is kept to show (policies.decisions stores no token or cookie)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import render_template, request

from admin import bp
from core.access import roles_required
from core.converters import int_arg
from core.models import Role
from policies import decisions as recorded

OUTCOMES = {"denied": "Denied", "not_signed_in": "Not signed in", "step_up": "Step-up asked"}
FILTERS = ("user", "host", "rule", "outcome")


@dataclass(frozen=True)
class Pages:
    """What the pager macro (admin/_pager.html) reads, over a `decisions.DecisionPage`."""

    page: int
    pages: int
    total: int

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int:
        return self.page - 1

    @property
    def next_num(self) -> int:
        return self.page + 1

    def iter_pages(self) -> list[int | None]:
        near = {1, self.pages, *range(max(1, self.page - 2), min(self.pages, self.page + 2) + 1)}
        out: list[int | None] = []
        for number in sorted(near):
            if out and number - (out[-1] or 0) > 1:
                out.append(None)
            out.append(number)
        return out


@bp.get("/decisions")
@roles_required(Role.ADMINISTRATOR)
def decisions() -> str:
    filters = {name: (request.args.get(name) or "").strip()[:320] for name in FILTERS}
    if filters["outcome"] not in OUTCOMES:
        filters["outcome"] = ""
    found = recorded.query(filters, page=int_arg("page", 1, 1, 10**6), per_page=recorded.PER_PAGE)
    return render_template("admin/decisions.html", found=found, pages=Pages(found.page, found.pages, found.total),
                           filters=filters, outcomes=OUTCOMES,
                           retention=recorded.retention_days(),
                           shown={k: v for k, v in filters.items() if v})

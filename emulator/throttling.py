"""Microsoft's identity throttling, for the `rate` fault (docs/microsoft.md §7): resource-unit costs, the token
bucket, and the 429 answer with its headers.

From "Microsoft Graph service-specific throttling limits", Identity and access service limits
(https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits): requests cost resource
units (GET users 2, GET groups/{id}/members 3, GET subscribedSkus 3, me|users/{id}/memberOf 2, ...; 1 otherwise);
`$select` takes 1 off, `$expand` adds 1, `$top` under 20 takes 1 off, never below 1. Every answer says its cost in
`x-ms-resource-unit`; a throttled one carries `Retry-After`, `x-ms-throttle-scope` and `x-ms-throttle-information`.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from flask import Response, current_app, request

from emulator.graph.errors import graph_error

_COSTS: tuple[tuple[str, re.Pattern[str], int], ...] = tuple(
    (method, re.compile(pattern), cost) for method, pattern, cost in (
        ("GET", r"/users", 2),
        ("GET", r"/groups/[^/]+/members(/microsoft\.graph\.user)?", 3),
        ("GET", r"/groups/[^/]+/transitiveMembers", 5),
        ("GET", r"/subscribedSkus", 3),
        ("GET", r"/(me|users/[^/]+)/(memberOf|transitiveMemberOf|licenseDetails|ownedObjects)(/[^/]+)?", 2),
        ("POST", r"/(me|users/[^/]+)/(getMemberGroups|getMemberObjects)", 2),
        ("POST", r"/(me|users/[^/]+)/(checkMemberGroups|checkMemberObjects)", 4),
        ("POST", r"/directoryObjects/getByIds", 3),
    ))


def resource_units(method: str, path: str, args: Mapping[str, str]) -> int:
    """What one Graph request costs (0 for the $batch envelope: its requests are charged one by one)."""
    inner = path[len("/v1.0"):] if path.startswith("/v1.0") else path
    if inner.rstrip("/") == "/$batch":
        return 0
    cost = next((c for m, pattern, c in _COSTS if m == method and pattern.fullmatch(inner)), 1)
    if "$select" in args:
        cost -= 1
    if "$expand" in args:
        cost += 1
    top = args.get("$top", "")
    if top.isdigit() and int(top) < 20:
        cost -= 1
    return max(1, cost)


def charge(fault: Any, path: str, method: str, args: Mapping[str, str]) -> int | None:
    """Spend the request's units from the fault's bucket; None if they fit, else the seconds until they would."""
    cost = resource_units(method, path, args)
    if cost == 0:
        return None
    now = time.monotonic()
    spent = fault.spent
    while spent and spent[0][0] <= now - fault.window:
        spent.popleft()
    used = sum(units for _, units in spent)
    if used + cost <= fault.limit:
        spent.append((now, cost))
        return None
    freed, wait = used, fault.window  # wait until enough of the oldest spending has left the window
    for at, units in spent:
        freed -= units
        if freed + cost <= fault.limit:
            wait = at + fault.window - now
            break
    return max(1, math.ceil(wait))


def _claims() -> dict[str, Any]:
    """The bearer token's claims, unverified (only to name the throttled scope)."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


def throttled(retry_after: int) -> Response:
    claims = _claims()
    app_id = claims.get("appid") or claims.get("azp") or current_app.config.get("EMULATOR_CLIENT_ID", "")
    scope = f"Tenant_Application/ReadWrite/{app_id}/{claims.get('tid', '')}"
    return graph_error(429, "TooManyRequests", "Too many requests. Please retry after the time given in the "
                       "Retry-After header.", headers={
                           "Retry-After": str(retry_after), "x-ms-throttle-scope": scope,
                           "x-ms-throttle-information": "ResourceUnitLimitExceeded"})


def resource_unit_header(response: Response) -> Response:
    """`x-ms-resource-unit` on every Graph answer: what the request cost."""
    if request.path.startswith("/v1.0"):
        cost = resource_units(request.method, request.path, request.args)
        if cost:
            response.headers["x-ms-resource-unit"] = str(cost)
    return response

"""Users who can no longer sign in (disabled or removed by Core statements, which no ORM hook sees).

core owns this registry so that the code that ends such users (the import) and the code that keeps state per user
(sso's session store) need not import each other: the factory registers the session store's `end_user_sessions`,
and the import calls `users_ended` after the commit that disabled or removed them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

UsersEnded = Callable[[Iterable[int]], object]

_listeners: list[UsersEnded] = []


def on_users_ended(listener: UsersEnded) -> None:
    """Call `listener(user_ids)` whenever users are ended (registering the same listener again is harmless)."""
    if listener not in _listeners:
        _listeners.append(listener)


def users_ended(user_ids: Iterable[int]) -> None:
    """Tell every listener these users were disabled or removed (call it after the commit that did it)."""
    ids = sorted({int(user_id) for user_id in user_ids})
    if ids:
        for listener in _listeners:
            listener(ids)

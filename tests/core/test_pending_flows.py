"""The single-use pending-flow store (core.pending_flows), checked once for each of its users: the SSO sign-in and
a datasource's authorization (the `flow_kind` fixture). Each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import select, text, update

from core.crypto import SecretBox, secret_box
from core.extensions import db
from core.models import PendingFlowEntry, utcnow
from core.pending_flows import key_hash
from tests.core.conftest import FlowKind

SECRET = "pkce-verifier-3f9a7c21d0b84e6f"
STATE = "state-5be1c0d9a2f7"


def _put(kind: FlowKind, state: str = STATE) -> None:
    kind.store.put(kind.key(state), kind.payload(SECRET))
    db.session.commit()


def _set_row(kind: FlowKind, **values: object) -> None:
    table = PendingFlowEntry.__table__
    db.session.execute(update(table).where(table.c.kind == kind.store.kind, table.c.key_hash == key_hash(
        kind.key(STATE))).values(**values))
    db.session.commit()


def _rows() -> int:
    return db.session.scalar(select(db.func.count()).select_from(PendingFlowEntry)) or 0


def test_round_trip(flow_kind: FlowKind) -> None:
    _put(flow_kind)
    assert flow_kind.store.take(flow_kind.key(STATE)) == flow_kind.payload(SECRET)


def test_taken_once(flow_kind: FlowKind) -> None:
    _put(flow_kind)
    assert flow_kind.store.take(flow_kind.key(STATE)) is not None
    assert flow_kind.store.take(flow_kind.key(STATE)) is None
    assert _rows() == 0


def test_unknown_key_and_other_kind_find_nothing(flow_kind: FlowKind) -> None:
    _put(flow_kind)
    assert flow_kind.store.take(flow_kind.key("another-state")) is None
    other = type(flow_kind.store)("another_kind", flow_kind.store.lifetime)
    assert other.take(flow_kind.key(STATE)) is None
    assert _rows() == 1  # neither used it up


def test_two_concurrent_takers_exactly_one_wins(app: Flask, flow_kind: FlowKind) -> None:
    """Each round, two threads on their own connections take the same entry at the same moment."""
    rounds = 12
    for number in range(rounds):
        _put(flow_kind, f"{STATE}-{number}")
    winners: list[int] = []
    start = threading.Barrier(2)

    def taker(number: int, results: list) -> None:
        with app.app_context():
            start.wait(timeout=30)
            results.append(flow_kind.store.take(flow_kind.key(f"{STATE}-{number}")))
            db.session.remove()

    for number in range(rounds):
        results: list = []
        threads = [threading.Thread(target=taker, args=(number, results)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(results) == 2, "both takers answered"
        winners.append(sum(result is not None for result in results))
    assert winners == [1] * rounds
    assert _rows() == 0


def test_expired_is_never_returned_and_is_pruned(flow_kind: FlowKind) -> None:
    _put(flow_kind)
    _set_row(flow_kind, expires_at=utcnow() - timedelta(seconds=1))
    assert flow_kind.store.take(flow_kind.key(STATE)) is None
    _put(flow_kind)
    _set_row(flow_kind, expires_at=utcnow() - timedelta(seconds=1))
    _put(flow_kind, "a-later-state")  # putting drops the expired entries
    assert _rows() == 1
    assert flow_kind.store.take(flow_kind.key("a-later-state")) is not None


def test_lives_for_the_kinds_lifetime(flow_kind: FlowKind) -> None:
    before = utcnow()
    _put(flow_kind)
    entry = db.session.scalars(select(PendingFlowEntry)).one()
    assert entry.expires_at - before >= timedelta(minutes=10) >= entry.expires_at - entry.created_at


def test_payload_and_key_are_not_readable_in_the_row(flow_kind: FlowKind) -> None:
    _put(flow_kind)
    raw = " ".join(str(value) for row in db.session.execute(text("SELECT * FROM pending_flows")) for value in row)
    assert SECRET not in raw and STATE not in raw and "nonce-" not in raw
    stored = db.session.scalars(select(PendingFlowEntry.payload)).one()
    assert json.loads(secret_box().decrypt(stored)) == flow_kind.payload(SECRET)  # the token keys open it


def test_tampered_or_garbage_rows_are_nothing(flow_kind: FlowKind) -> None:
    other_key = SecretBox([Fernet.generate_key().decode()])
    for payload in ("garbage", "", secret_box().encrypt(json.dumps(["not", "a", "dict"])),
                    secret_box().encrypt("not json"), other_key.encrypt(json.dumps(flow_kind.payload(SECRET)))):
        _put(flow_kind)
        _set_row(flow_kind, payload=payload)
        assert flow_kind.store.take(flow_kind.key(STATE)) is None
        assert _rows() == 0  # used up all the same


def test_the_callback_answers_a_garbage_row_with_its_message_not_a_500(flow_kind: FlowKind) -> None:
    _put(flow_kind)
    _set_row(flow_kind, payload="garbage")
    status, message = flow_kind.nothing_found
    response = flow_kind.callback(flow_kind.client, STATE)
    assert response.status_code == status and message in response.get_data(as_text=True)
    again = flow_kind.callback(flow_kind.client, STATE)  # and the same once it is gone
    assert again.status_code == status and message in again.get_data(as_text=True)

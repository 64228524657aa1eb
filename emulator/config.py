"""The emulator's facts (DIR/emulator.json): what `serve` writes and prints and `GET /_emulator/config` returns."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from emulator.clients import client_json
from emulator.store import Store

CONFIG_FILE = "emulator.json"


def config_dict(app: Flask, base_url: str) -> dict:
    store: Store = app.extensions["emulator.store"]
    conn = store.conn()
    tenants = [{"id": r["id"], "domain": r["domain"], "display_name": r["display_name"]}
               for r in conn.execute("SELECT id, domain, display_name FROM tenants ORDER BY rowid")]
    client = client_json(conn, store.get_setting("gateway_client_id") or "")
    data = Path(app.config["EMULATOR_DATA_DIR"])
    return {"base_url": base_url, "authority_host": base_url, "graph_url": base_url + "/v1.0",
            "tenants": tenants, "ca_bundle": str((data / "ca.pem").resolve()),
            "client_id": client.get("client_id"), "client_secret": client.get("client_secret"),
            "redirect_uris": client.get("redirect_uris", []),
            "control_key": store.get_setting("control_key")}

"""docs/microsoft.md §1.1-§1.3: discovery documents and the JWKS (Flask test client: exact status, headers, JSON)."""

from __future__ import annotations

from flask import Flask

from emulator.tokens import GRAPH_RESOURCE

BASE = "http://localhost"


def test_tenant_discovery_carries_the_guid_everywhere(app: Flask, tenant_id: str) -> None:
    resp = app.test_client().get(f"/{tenant_id}/v2.0/.well-known/openid-configuration")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Cache-Control"] == "max-age=86400, private"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    doc = resp.get_json()
    assert doc["issuer"] == f"{BASE}/{tenant_id}/v2.0"
    assert doc["token_endpoint"] == f"{BASE}/{tenant_id}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{BASE}/{tenant_id}/oauth2/v2.0/authorize"
    assert doc["jwks_uri"] == f"{BASE}/{tenant_id}/discovery/v2.0/keys"
    assert doc["end_session_endpoint"] == f"{BASE}/{tenant_id}/oauth2/v2.0/logout"
    assert doc["tenant_region_scope"] == "WW"
    assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_post", "private_key_jwt",
                                                            "client_secret_basic"]
    assert doc["response_modes_supported"] == ["query", "fragment", "form_post"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["subject_types_supported"] == ["pairwise"]
    assert doc["scopes_supported"] == ["openid", "profile", "email", "offline_access"]
    assert doc["request_uri_parameter_supported"] is False
    assert doc["frontchannel_logout_supported"] is True and doc["http_logout_supported"] is True
    assert set(doc) >= {"userinfo_endpoint", "device_authorization_endpoint", "claims_supported",
                        "kerberos_endpoint", "cloud_instance_name", "cloud_graph_host_name", "msgraph_host",
                        "rbac_url"}


def test_discovery_by_domain_gives_the_guid_issuer(app: Flask, tenant_id: str) -> None:
    doc = app.test_client().get("/contoso.example/v2.0/.well-known/openid-configuration").get_json()
    assert doc["issuer"] == f"{BASE}/{tenant_id}/v2.0"
    assert doc["token_endpoint"] == f"{BASE}/{tenant_id}/oauth2/v2.0/token"


def test_common_and_organizations_have_the_templated_issuer(app: Flask) -> None:
    for segment in ("common", "organizations"):
        doc = app.test_client().get(f"/{segment}/v2.0/.well-known/openid-configuration").get_json()
        assert doc["issuer"] == f"{BASE}/{{tenantid}}/v2.0"
        assert doc["token_endpoint"] == f"{BASE}/{segment}/oauth2/v2.0/token"
        assert doc["tenant_region_scope"] is None


def test_unknown_tenant_is_a_4xx_with_aadsts90002(app: Flask) -> None:
    resp = app.test_client().get("/nowhere.example/v2.0/.well-known/openid-configuration")
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["error"] == "invalid_tenant"
    assert body["error_codes"] == [90002]
    assert body["error_description"].startswith("AADSTS90002: Tenant 'nowhere.example' not found.")


def test_jwks_has_two_rsa_keys_with_templated_issuer(app: Flask, tenant_id: str) -> None:
    for path in (f"/{tenant_id}/discovery/v2.0/keys", "/common/discovery/v2.0/keys"):
        resp = app.test_client().get(path)
        assert resp.status_code == 200
        keys = resp.get_json()["keys"]
        assert len(keys) >= 2
        for key in keys:
            assert key["kty"] == "RSA" and key["use"] == "sig" and key["e"] == "AQAB"
            assert key["kid"] == key["x5t"] and len(key["n"]) > 300
            assert key["x5c"] and key["issuer"] == f"{BASE}/{{tenantid}}/v2.0"
        assert len({k["kid"] for k in keys}) == len(keys)


def test_active_key_signs_and_is_published(app: Flask) -> None:
    keyring = app.extensions["emulator.keys"]
    with app.test_request_context("/"):
        token = keyring.sign({"aud": GRAPH_RESOURCE, "exp": 1})
    kids = {k["kid"] for k in app.test_client().get("/common/discovery/v2.0/keys").get_json()["keys"]}
    assert keyring.decode(token) == {"aud": GRAPH_RESOURCE, "exp": 1}
    assert keyring.active_kid in kids
    assert keyring.decode(token[:-4] + "AAAA") is None


def test_error_lookup_page_and_static_assets(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/error?code=50173")
    assert page.status_code == 200 and "AADSTS50173" in page.text
    css = client.get("/emulator-static/emulator.css")
    assert css.status_code == 200 and css.mimetype == "text/css"

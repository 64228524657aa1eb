"""Administration > Single Sign-On and `flask sso ...`: settings, providers (https only except loopback, secrets
encrypted), the lock-out guard, diagnostics without tokens."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import AuditEvent, Datasource
from sso.models import SignInAttempt, SsoProvider, SsoSettings
from tests.conftest import csrf_token
from tests.sso_helpers import FakeProvider, add_fake_provider, enable_sso, fake_sign_in


@pytest.fixture
def app_env() -> dict[str, str]:
    """The fake providers listen on 127.0.0.1 over http: a development setting, made explicit."""
    return {"SSO_ALLOW_PRIVATE_PROVIDERS": "1"}


def _settings_form(**changes: str) -> dict[str, str]:
    form = {"enabled": "y", "bypass_role": "Administrator", "idle_timeout_minutes": "30",
            "absolute_timeout_hours": "8", "clock_leeway_seconds": "120", "group_cache_minutes": "10",
            "policies": '{"staff": {"domains": ["example.com"]}}'}
    form.update(changes)
    return form


def test_only_administrators_see_the_page(client: FlaskClient, plain_user) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import USER_EMAIL, USER_PASSWORD, sign_in

    sign_in(client, USER_EMAIL, USER_PASSWORD)
    assert client.get("/admin/sso").status_code == 403
    assert client.get("/admin/sso/diagnostics").status_code == 403
    token = csrf_token(client, "/")
    assert client.post("/admin/sso/keys/rotate", data={"csrf_token": token}).status_code == 403
    assert client.post("/admin/sso/keys/prune", data={"csrf_token": token}).status_code == 403


def test_settings_are_saved_validated_and_audited(admin_client: FlaskClient) -> None:
    page = admin_client.get("/admin/sso").get_data(as_text=True)
    assert "Enable SSO" in page and "Automatically redirect to SSO" in page and "Create users on first sign-in" in page
    token = csrf_token(admin_client, "/admin/sso")
    response = admin_client.post("/admin/sso", data={**_settings_form(auto_redirect="y"), "csrf_token": token})
    assert response.status_code == 302
    row = db.session.get(SsoSettings, 1)
    assert (row.enabled, row.auto_redirect, row.idle_timeout_minutes, row.clock_leeway_seconds) == (True, True, 30, 120)
    assert row.policies == {"staff": {"domains": ["example.com"]}}
    assert db.session.scalars(db.select(AuditEvent).filter_by(action="sso.settings")).one()
    for bad in ({"idle_timeout_minutes": "0"}, {"absolute_timeout_hours": "x"}, {"policies": "[1]"},
                {"bypass_role": "Nobody"}):
        assert admin_client.post("/admin/sso", data={**_settings_form(**bad), "csrf_token": token}).status_code == 400


def test_refused_settings_keep_what_was_typed_and_tie_each_problem_to_its_field(admin_client: FlaskClient) -> None:
    from html.parser import HTMLParser

    token = csrf_token(admin_client, "/admin/sso")
    typed = _settings_form(idle_timeout_minutes="0", clock_leeway_seconds="ten", absolute_timeout_hours="9",
                           policies='{"staff": [')
    answer = admin_client.post("/admin/sso", data={**typed, "csrf_token": token})
    assert answer.status_code == 400

    class Controls(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.attrs: dict[str, dict[str, str | None]] = {}
            self.texts: dict[str, str] = {}
            self._in: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            named = dict(attrs)
            if named.get("id"):
                self.attrs[str(named["id"])] = named
                self._in = str(named["id"])

        def handle_data(self, data: str) -> None:
            if self._in:
                self.texts[self._in] = self.texts.get(self._in, "") + data

        def handle_endtag(self, tag: str) -> None:
            self._in = None

    page = Controls()
    page.feed(answer.get_data(as_text=True))
    for field in ("idle_timeout_minutes", "clock_leeway_seconds", "policies"):
        assert page.attrs[field].get("aria-invalid") == "true", field
        assert f"{field}-error" in str(page.attrs[field].get("aria-describedby")), field
        assert f"{field}-error" in page.attrs, field
    assert "from 1 to" in page.texts["idle_timeout_minutes-error"]
    assert "open" in page.attrs["advanced-settings"]  # the leeway error is inside "Advanced"
    assert page.attrs["absolute_timeout_hours"].get("aria-invalid") is None
    assert page.attrs["absolute_timeout_hours"]["value"] == "9"  # typed values are kept, not the stored ones
    assert page.attrs["clock_leeway_seconds"]["value"] == "ten"
    assert page.texts["policies"] == '{"staff": ['
    assert db.session.get(SsoSettings, 1) is None or db.session.get(SsoSettings, 1).absolute_timeout_hours != 9


def test_auto_redirect_is_refused_when_nobody_could_get_back_in(admin_client: FlaskClient) -> None:
    token = csrf_token(admin_client, "/admin/sso")
    response = admin_client.post("/admin/sso", data={**_settings_form(auto_redirect="y", bypass_role="Manage "
                                                                      "datasources"), "csrf_token": token})
    assert response.status_code == 400 and "lock everyone out" in response.get_data(as_text=True)


def test_generic_provider_https_only_except_loopback_and_secret_encrypted(admin_client: FlaskClient) -> None:
    token = csrf_token(admin_client, "/admin/sso")
    base = {"kind": "oidc", "client_id": "gw", "client_secret": "s3cret-value", "scopes": "openid email",
            "user_claim": "email", "response_mode": "query", "csrf_token": token}
    for issuer in ("http://id.example.com", "ftp://id.example.com", "https://", "https://id.example.com?x=1"):
        response = admin_client.post("/admin/sso/providers", data={**base, "name": "bad", "issuer": issuer})
        assert response.status_code == 400, issuer
    for name, issuer in (("corp", "https://id.example.com/realms/corp"), ("local", "http://127.0.0.1:9000")):
        assert admin_client.post("/admin/sso/providers", data={**base, "name": name, "issuer": issuer}
                                 ).status_code == 302
    assert admin_client.post("/admin/sso/providers", data={**base, "name": "corp", "issuer": "https://x.example"}
                             ).status_code == 400  # duplicate name
    provider = db.session.scalars(db.select(SsoProvider).filter_by(name="corp")).one()
    assert provider.client_secret and "s3cret-value" not in provider.client_secret
    page = admin_client.get("/admin/sso").get_data(as_text=True)
    assert "https://id.example.com/realms/corp" in page and "s3cret-value" not in page
    admin_client.post(f"/admin/sso/providers/{provider.id}/delete", data={"csrf_token": token})
    assert db.session.scalar(db.select(SsoProvider).filter_by(name="corp")) is None


def test_office365_provider_needs_a_ready_datasource_with_sso(admin_client: FlaskClient) -> None:
    incomplete = Datasource(name="Not yet", sso_enabled=True)
    ready = Datasource(name="Contoso", sso_enabled=True, status=Datasource.READY, tenant_id="t")
    db.session.add_all([incomplete, ready])
    db.session.commit()
    page = admin_client.get("/admin/sso").get_data(as_text=True)
    assert ">Contoso<" in page and "Not yet" not in page
    token = csrf_token(admin_client, "/admin/sso")
    base = {"kind": "office365", "response_mode": "query", "user_claim": "preferred_username", "csrf_token": token}
    assert admin_client.post("/admin/sso/providers", data={**base, "name": "x", "datasource_id": str(incomplete.id)}
                             ).status_code == 400
    assert admin_client.post("/admin/sso/providers", data={**base, "name": "contoso", "datasource_id": str(ready.id)}
                             ).status_code == 302


def test_cli_providers_and_settings(app: Flask) -> None:
    runner = app.test_cli_runner()
    added = runner.invoke(args=["sso", "providers", "add", "--name", "corp", "--issuer", "https://id.example.com",
                                "--client-id", "gw", "--client-secret-stdin"], input="cli-secret-value\n")
    assert added.exit_code == 0, added.output
    refused = runner.invoke(args=["sso", "providers", "add", "--name", "plain", "--issuer", "http://id.example.com",
                                  "--client-id", "gw"])
    assert refused.exit_code != 0 and "https" in refused.output
    listed = runner.invoke(args=["sso", "providers", "list"])
    assert "corp" in listed.output and "secret set" in listed.output and "cli-secret-value" not in listed.output
    shown = runner.invoke(args=["sso", "settings", "--enable", "--create-users", "--idle-minutes", "15"])
    assert shown.exit_code == 0 and "enabled = True" in shown.output and "idle_timeout_minutes = 15" in shown.output
    policy = runner.invoke(args=["sso", "settings", "--policies", '{"staff": {"domains": ["example.com"]}}'])
    assert policy.exit_code == 0 and "policies = ['staff']" in policy.output
    assert runner.invoke(args=["sso", "settings", "--policies", "[1]"]).exit_code != 0
    assert runner.invoke(args=["sso", "settings", "--bypass-role", "Nobody"]).exit_code != 0
    assert runner.invoke(args=["sso", "providers", "remove", "corp"]).exit_code == 0
    assert runner.invoke(args=["sso", "providers", "remove", "corp"]).exit_code != 0


def test_diagnostics_show_checks_and_never_tokens(admin_client: FlaskClient, fake_provider: FakeProvider,
                                                  app: Flask) -> None:
    enable_sso(create_users=True)
    add_fake_provider(fake_provider)
    tokens: list[str] = []

    def wrong_audience(nonce: str) -> str:
        tokens.append(fake_provider.sign(fake_provider.claims(nonce, aud="other-app")))
        return tokens[-1]

    fake_provider.make_id_token = wrong_audience
    user_client = app.test_client()
    fake_sign_in(user_client, fake_provider)
    attempt = db.session.scalars(db.select(SignInAttempt)).one()
    page = admin_client.get("/admin/sso/diagnostics?q=pat@example.org").get_data(as_text=True)
    assert attempt.reference in page and "audience" in page and "clock_skew_seconds" in page
    assert "/sso/callback" in page and tokens[0] not in page and tokens[0].split(".")[2] not in page
    by_reference = admin_client.get(f"/admin/sso/diagnostics?q={attempt.reference}").get_data(as_text=True)
    assert "pat@example.org" in by_reference


def test_signing_keys_are_listed_rotated_and_pruned_from_the_page(admin_client: FlaskClient) -> None:
    from datetime import timedelta

    from core.models import utcnow
    from sso.models import SigningKey

    page = admin_client.get("/admin/sso").get_data(as_text=True)
    assert "Forward-auth signing keys" in page and page.count(">signing</span>") == 1
    first = db.session.scalars(db.select(SigningKey)).one().kid
    token = csrf_token(admin_client, "/admin/sso")
    rotated = admin_client.post("/admin/sso/keys/rotate", data={"csrf_token": token}, follow_redirects=True)
    page = rotated.get_data(as_text=True)
    assert "New signing key" in page and ">next</span>" in page and f"<code>{first}</code>" in page
    kids = {k["kid"] for k in admin_client.get("/.well-known/jwks.json").get_json()["keys"]}
    assert len(kids) == 2 and first in kids  # published at once
    pruned = admin_client.post("/admin/sso/keys/prune", data={"csrf_token": token}, follow_redirects=True)
    assert "No key can be removed yet" in pruned.get_data(as_text=True)

    new = db.session.scalars(db.select(SigningKey).where(SigningKey.kid != first)).one()
    db.session.get(SigningKey, first).activates_at = utcnow() - timedelta(hours=1)  # time passes
    new.activates_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    pruned = admin_client.post("/admin/sso/keys/prune", data={"csrf_token": token}, follow_redirects=True)
    page = pruned.get_data(as_text=True)
    assert "Removed 1 old signing key(s)." in page and f"<code>{first}</code>" not in page
    assert page.count(">signing</span>") == 1
    actions = db.session.scalars(db.select(AuditEvent.action).where(AuditEvent.action.like("sso.key.%"))).all()
    assert sorted(actions) == ["sso.key.prune", "sso.key.rotate"]


def test_provider_form_and_cli_set_and_show_the_unverified_email_switch(app: Flask,
                                                                       admin_client: FlaskClient) -> None:
    page = admin_client.get("/admin/sso").get_data(as_text=True)
    assert "Provider omits email_verified; trust its e-mails" in page
    token = csrf_token(admin_client, "/admin/sso")
    base = {"kind": "oidc", "client_id": "gw", "client_secret": "s", "scopes": "openid email",
            "user_claim": "email", "response_mode": "query", "csrf_token": token}
    assert admin_client.post("/admin/sso/providers", data={**base, "name": "strict",
                                                           "issuer": "https://id.example.com"}).status_code == 302
    assert admin_client.post("/admin/sso/providers", data={**base, "name": "lenient", "trust_unverified_email": "y",
                                                           "issuer": "https://id2.example.com"}).status_code == 302
    flags = {p.name: p.trust_unverified_email for p in db.session.scalars(db.select(SsoProvider))}
    assert flags == {"strict": False, "lenient": True}
    page = admin_client.get("/admin/sso").get_data(as_text=True)
    assert "Verified e-mails only" in page and "E-mails trusted without email_verified" in page
    event = db.session.scalars(db.select(AuditEvent).filter_by(action="sso.provider.add", target="lenient")).one()
    assert event.detail["trust_unverified_email"] is True

    runner = app.test_cli_runner()
    added = runner.invoke(args=["sso", "providers", "add", "--name", "cli-lenient", "--issuer",
                                "https://id3.example.com", "--client-id", "gw", "--trust-unverified-email"])
    assert added.exit_code == 0, added.output
    assert db.session.scalars(db.select(SsoProvider).filter_by(name="cli-lenient")).one().trust_unverified_email
    listed = runner.invoke(args=["sso", "providers", "list"]).output.splitlines()
    assert any(line.startswith("cli-lenient\t") and line.endswith("e-mails trusted without email_verified")
               for line in listed), listed
    assert any(line.startswith("strict\t") and line.endswith("verified e-mails only") for line in listed), listed


def test_office365_provider_is_named_from_its_datasource_and_the_button_says_office_365(
        admin_client: FlaskClient, client: FlaskClient) -> None:
    contoso = Datasource(name="Contoso 365", sso_enabled=True, status=Datasource.READY, tenant_id="t1")
    db.session.add(contoso)
    db.session.commit()
    enable_sso()
    page = admin_client.get("/admin/sso").get_data(as_text=True)
    office365_form = page[page.index('id="add-office365"'):page.index("</form>", page.index('id="add-office365"'))]
    assert 'name="name"' not in office365_form  # nothing to invent: the seed never mentions a Name
    token = csrf_token(admin_client, "/admin/sso")
    added = admin_client.post("/admin/sso/providers", data={"kind": "office365", "datasource_id": str(contoso.id),
                                                            "response_mode": "query", "csrf_token": token},
                              follow_redirects=True)
    assert added.status_code == 200 and "Provider contoso-365 added." in added.get_data(as_text=True)
    assert db.session.scalars(db.select(SsoProvider.name)).all() == ["contoso-365"]
    admin_client.post("/logout", data={"csrf_token": csrf_token(admin_client, "/")})
    sign_in_page = client.get("/login").get_data(as_text=True)
    assert ">Sign in with Office 365</a>" in sign_in_page and 'href="/sso/login/contoso-365' in sign_in_page

    # Several Office 365 data sources: each button names its data source.
    fabrikam = Datasource(name="Fabrikam", sso_enabled=True, status=Datasource.READY, tenant_id="t2")
    db.session.add(fabrikam)
    db.session.commit()
    from sso.providers import add_office365_provider

    assert add_office365_provider(None, fabrikam).name == "fabrikam"
    db.session.commit()
    sign_in_page = client.get("/login").get_data(as_text=True)
    assert ">Sign in with Office 365 (Contoso 365)</a>" in sign_in_page
    assert ">Sign in with Office 365 (Fabrikam)</a>" in sign_in_page


def test_derived_provider_names_stay_unique_and_url_safe(app: Flask) -> None:
    from sso.providers import add_office365_provider

    first = Datasource(name="Zürich Office 365!", sso_enabled=True, status=Datasource.READY, tenant_id="t1")
    second = Datasource(name="zurich office 365", sso_enabled=True, status=Datasource.READY, tenant_id="t2")
    third = Datasource(name="東京", sso_enabled=True, status=Datasource.READY, tenant_id="t3")
    db.session.add_all([first, second, third])
    db.session.commit()
    names = [add_office365_provider(None, ds).name for ds in (first, second, third)]
    assert names == ["zurich-office-365", "zurich-office-365-2", "office365"]
    runner = app.test_cli_runner()
    fourth = Datasource(name="Northwind", sso_enabled=True, status=Datasource.READY, tenant_id="t4")
    db.session.add(fourth)
    db.session.commit()
    added = runner.invoke(args=["sso", "providers", "add", "--datasource", "Northwind"])
    assert added.exit_code == 0 and "Added provider northwind (office365)" in added.output, added.output

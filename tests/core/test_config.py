"""Configuration: defaults, generated secrets, and one clear line for each malformed value."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from core.config import DEFAULT_AUTHORITY_HOST, DEFAULT_GRAPH_API_URL, ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent.parent


def test_embedded_default_generates_secrets_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_config({}, tmp_path)
    second = load_config({}, tmp_path)
    assert first["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'gateway.db'}"
    assert first["SECRET_KEY"] == second["SECRET_KEY"] and len(first["SECRET_KEY"]) >= 24
    assert first["TOKEN_ENCRYPTION_KEYS"] == second["TOKEN_ENCRYPTION_KEYS"]
    Fernet(first["TOKEN_ENCRYPTION_KEYS"][0])
    for name in ("secret_key", "token_encryption_keys"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert first["O365_AUTHORITY_HOST"] == DEFAULT_AUTHORITY_HOST
    assert first["GRAPH_API_URL"] == DEFAULT_GRAPH_API_URL
    assert first["TRUSTED_PROXY_HOPS"] == 0 and first["REDIS_URL"] is None


def test_rotation_keys_are_kept_newest_first(tmp_path: Path) -> None:
    keys = [Fernet.generate_key().decode() for _ in range(2)]
    config = load_config({"TOKEN_ENCRYPTION_KEYS": " , ".join(keys)}, tmp_path)
    assert config["TOKEN_ENCRYPTION_KEYS"] == keys


def test_postgres_urls_use_psycopg(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgres://u@db/gw", "SECRET_KEY": "s" * 32,
           "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
    assert load_config(env, tmp_path)["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db/gw"


def test_https_public_url_makes_cookies_secure(tmp_path: Path) -> None:
    assert load_config({"PUBLIC_BASE_URL": "https://sso.example.com/"}, tmp_path)["SESSION_COOKIE_SECURE"] is True
    assert load_config({"PUBLIC_BASE_URL": "http://127.0.0.1:5000"}, tmp_path)["SESSION_COOKIE_SECURE"] is False


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"TOKEN_ENCRYPTION_KEYS": "not-a-key"}, "TOKEN_ENCRYPTION_KEYS"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"DATABASE_URL": "mysql://x/y", "SECRET_KEY": "s" * 32}, "DATABASE_URL"),
        ({"DATABASE_URL": "::::"}, "DATABASE_URL"),
        ({"DATABASE_URL": "sqlite:////tmp/x.db"}, "SECRET_KEY"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"O365_AUTHORITY_HOST": "http://login.example.com"}, "O365_AUTHORITY_HOST"),
        ({"GRAPH_API_URL": "ftp://graph"}, "GRAPH_API_URL"),
        ({"O365_CA_BUNDLE": "/nonexistent/ca.pem"}, "O365_CA_BUNDLE"),
        ({"TRUSTED_PROXY_HOPS": "two"}, "TRUSTED_PROXY_HOPS"),
        ({"PUBLIC_BASE_URL": "sso.example.com"}, "PUBLIC_BASE_URL"),
        ({"TIME_ZONE": "Mars/Olympus_Mons"}, "TIME_ZONE"),
        ({"TIME_ZONE": "../../etc/passwd"}, "TIME_ZONE"),
        ({"TIME_ZONE": "CET+1"}, "TIME_ZONE"),
        ({"ACCESS_DECISIONS_RETENTION_DAYS": "0"}, "ACCESS_DECISIONS_RETENTION_DAYS"),
        ({"POLICY_REFRESH_SECONDS": "nan"}, "POLICY_REFRESH_SECONDS"),
        ({"POLICY_REFRESH_SECONDS": "61"}, "POLICY_REFRESH_SECONDS"),
        ({"POLICY_REFRESH_SECONDS": "１"}, "POLICY_REFRESH_SECONDS"),
        ({"FORWARD_AUTH_CACHE_SECONDS": "31"}, "FORWARD_AUTH_CACHE_SECONDS"),
        ({"FORWARD_AUTH_CACHE_SECONDS": "-1"}, "FORWARD_AUTH_CACHE_SECONDS"),
        ({"FORWARD_AUTH_CACHE_SECONDS": "2.5"}, "FORWARD_AUTH_CACHE_SECONDS"),
        ({"LIVE_REFUSED_RATE_LIMIT": "lots"}, "LIVE_REFUSED_RATE_LIMIT"),
        ({"LIVE_NOTIFICATION_MAX_BYTES": "10"}, "LIVE_NOTIFICATION_MAX_BYTES"),
        ({"LIVE_NOTIFICATION_MAX_BYTES": "1e6"}, "LIVE_NOTIFICATION_MAX_BYTES"),
        ({"LIVE_REPLAY_WINDOW_SECONDS": "0"}, "LIVE_REPLAY_WINDOW_SECONDS"),
    ],
)
def test_malformed_values_name_the_variable(env: dict, name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env, tmp_path)
    assert info.value.name == name
    assert str(info.value).startswith(f"{name}: ")


def test_access_policy_settings_default_and_parse(tmp_path: Path) -> None:
    defaults = load_config({}, tmp_path)
    assert (defaults["ACCESS_DECISIONS_RETENTION_DAYS"], defaults["POLICY_REFRESH_SECONDS"]) == (30, 1.0)
    chosen = load_config({"ACCESS_DECISIONS_RETENTION_DAYS": "90", "POLICY_REFRESH_SECONDS": "0.5"}, tmp_path)
    assert (chosen["ACCESS_DECISIONS_RETENTION_DAYS"], chosen["POLICY_REFRESH_SECONDS"]) == (90, 0.5)


def test_forward_auth_cache_seconds_default_to_5_and_stay_within_30(tmp_path: Path) -> None:
    assert load_config({}, tmp_path)["FORWARD_AUTH_CACHE_SECONDS"] == 5
    assert load_config({"FORWARD_AUTH_CACHE_SECONDS": "0"}, tmp_path)["FORWARD_AUTH_CACHE_SECONDS"] == 0
    assert load_config({"FORWARD_AUTH_CACHE_SECONDS": "30"}, tmp_path)["FORWARD_AUTH_CACHE_SECONDS"] == 30


def test_live_notification_settings_default_and_parse(tmp_path: Path) -> None:
    defaults = load_config({}, tmp_path)
    assert (defaults["LIVE_REFUSED_RATE_LIMIT"], defaults["LIVE_NOTIFICATION_MAX_BYTES"],
            defaults["LIVE_REPLAY_WINDOW_SECONDS"]) == ("60 per minute", 262144, 600.0)
    chosen = load_config({"LIVE_REFUSED_RATE_LIMIT": "10/second;100/hour", "LIVE_NOTIFICATION_MAX_BYTES": "65536",
                          "LIVE_REPLAY_WINDOW_SECONDS": "120"}, tmp_path)
    assert (chosen["LIVE_REFUSED_RATE_LIMIT"], chosen["LIVE_NOTIFICATION_MAX_BYTES"],
            chosen["LIVE_REPLAY_WINDOW_SECONDS"]) == ("10/second;100/hour", 65536, 120.0)


def test_time_zone_is_an_iana_name_defaulting_to_utc(tmp_path: Path) -> None:
    assert load_config({}, tmp_path)["TIME_ZONE"] == "UTC"
    assert load_config({"TIME_ZONE": " Europe/London "}, tmp_path)["TIME_ZONE"] == "Europe/London"
    assert load_config({"TIME_ZONE": "America/Argentina/Buenos_Aires"}, tmp_path)["TIME_ZONE"] == \
        "America/Argentina/Buenos_Aires"
    with pytest.raises(ConfigError, match="TIME_ZONE: must be an IANA time zone such as Europe/London"):
        load_config({"TIME_ZONE": "europe/london"}, tmp_path)


def test_start_up_stops_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "TOKEN_ENCRYPTION_KEYS": "nope", "FLASK_APP": "app"}
    result = subprocess.run([sys.executable, "-m", "flask", "routes"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["Configuration error: TOKEN_ENCRYPTION_KEYS: key 1 is not a Fernet key "
                     "(32 url-safe base64-encoded bytes)"]


@pytest.mark.parametrize("value", ["²", "１", "99999999999999999999", "-1", "1_0"])
def test_numbers_in_settings_are_ascii_and_bounded(value: str, tmp_path: Path) -> None:
    """`"²".isdigit()` is true and `int("²")` raises: a setting like that must stop start-up with one line."""
    for name in ("TRUSTED_PROXY_HOPS", "IMPORT_PAGE_SIZE", "ACCESS_DECISIONS_RETENTION_DAYS"):
        with pytest.raises(ConfigError) as info:
            load_config({name: value}, tmp_path)
        assert info.value.name == name


@pytest.mark.parametrize("value", ["com", ".com", ".co.uk", "co.uk", "github.io", "-", ".-", "a..b", "-x.example.com",
                                   "x-.example.com", "ex_ample.com", "exämple.com", "example.com/path", "a." * 130])
def test_redirect_domains_refuse_public_suffixes_and_invalid_labels(value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"ALLOWED_REDIRECT_DOMAINS": f"app.example.org,{value}"}, tmp_path)
    assert info.value.name == "ALLOWED_REDIRECT_DOMAINS"
    assert "\n" not in str(info.value) and repr(value.strip().lower()) in str(info.value)


def test_redirect_domains_keep_real_hosts_and_domains(tmp_path: Path) -> None:
    value = ".example.com, app.example.co.uk, tools.internal, localhost, xn--bcher-kva.example, 127.0.0.1"
    assert load_config({"ALLOWED_REDIRECT_DOMAINS": value}, tmp_path)["ALLOWED_REDIRECT_DOMAINS"] == [
        ".example.com", "app.example.co.uk", "tools.internal", "localhost", "xn--bcher-kva.example", "127.0.0.1"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_instance_folder_is_0700_and_databases_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the usual umask SQLite creates 0644 files; ours are private like the keys beside them, -wal and
    -shm included, and a folder or database an older release left open is tightened at start-up."""
    from app import create_app
    from core.extensions import db
    from jobs.queue import get_huey

    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)
    (instance / "gateway.db").touch(mode=0o644)
    instance.chmod(0o755)
    (instance / "gateway.db").chmod(0o644)
    monkeypatch.setenv("INSTANCE_PATH", str(instance))
    for name in ("DATABASE_URL", "SECRET_KEY", "TOKEN_ENCRYPTION_KEYS", "REDIS_URL", "JOBS_SQLITE_PATH"):
        monkeypatch.delenv(name, raising=False)
    old_umask = os.umask(0o022)
    try:
        app = create_app({"TESTING": True})
        with app.app_context():
            db.create_all()
            db.session.execute(db.text("CREATE TABLE probe (x INTEGER)"))
            db.session.commit()
            huey = get_huey(app)
            huey.storage.enqueue(b"probe")  # opens jobs.db in WAL mode: -wal and -shm appear
            assert (instance / "jobs.db-wal").exists() and (instance / "jobs.db-shm").exists()
            assert _mode(instance) == 0o700
            for name in ("gateway.db", "jobs.db", "jobs.db-wal", "jobs.db-shm", "secret_key",
                         "token_encryption_keys"):
                assert _mode(instance / name) == 0o600, name
            db.engine.dispose()
    finally:
        os.umask(old_umask)


def test_sqlite_database_url_file_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "gw.db"
    old_umask = os.umask(0o022)
    try:
        load_config({"DATABASE_URL": f"sqlite:///{path}", "SECRET_KEY": "s" * 32,
                     "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode()}, tmp_path)
    finally:
        os.umask(old_umask)
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700

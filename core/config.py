"""Configuration from environment variables (and `.env`), validated once at start-up.

Every setting is read here and nowhere else. A malformed value raises `ConfigError` naming the variable, which
`create_app` turns into a one-line exit message.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cryptography.fernet import Fernet
from limits import parse_many
from publicsuffixlist import PublicSuffixList
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.converters import parse_int
from core.files import private_dir, private_sqlite_file
from core.timefmt import is_zone

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_API_URL = "https://graph.microsoft.com/v1.0"
# How long nginx may reuse an allowed /auth/verify decision (X-Accel-Expires): the time a sign-out or a revocation
# can take to reach a cached decision, so capped well inside the 60 s revocation target.
DEFAULT_FORWARD_AUTH_CACHE_SECONDS = 5
MAX_FORWARD_AUTH_CACHE_SECONDS = 30
HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


def _https_url(name: str, value: str, *, allow_http_loopback: bool = False) -> str:
    parsed = urlparse(value)
    loopback = parsed.hostname in {"127.0.0.1", "localhost", "::1"}
    secure = parsed.scheme == "https" or (allow_http_loopback and parsed.scheme == "http" and loopback)
    if secure and parsed.hostname:
        return value.rstrip("/")
    raise ConfigError(name, f"must be an https URL with a host, got {value!r}")


def _database_url(value: str) -> str:
    if value.startswith("postgres://"):
        value = "postgresql+psycopg://" + value[len("postgres://") :]
    elif value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value[len("postgresql://") :]
    try:
        url = make_url(value)
    except ArgumentError as exc:
        raise ConfigError("DATABASE_URL", f"not a database URL ({exc})") from None
    if url.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError("DATABASE_URL", "only sqlite and postgresql databases are supported")
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" \
            and not url.database.startswith("file:"):
        private_sqlite_file(Path(url.database))
    return value


def _fernet_keys(value: str) -> list[str]:
    keys = [part.strip() for part in value.split(",") if part.strip()]
    if not keys:
        raise ConfigError("TOKEN_ENCRYPTION_KEYS", "is empty; give one or more Fernet keys, newest first")
    for index, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(
                "TOKEN_ENCRYPTION_KEYS", f"key {index} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return keys


def _instance_secret(instance_path: Path, filename: str, make: Any) -> str:
    """Read a generated secret from the instance folder, creating it (mode 0600) on first start."""
    path = instance_path / filename
    if not path.exists():
        private_dir(instance_path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
    return path.read_text().strip()


def load_config(environ: dict[str, str], instance_path: Path) -> dict[str, Any]:
    """Build the Flask config mapping from environment variables."""
    env = {key: value.strip() for key, value in environ.items() if value and value.strip()}
    embedded = "DATABASE_URL" not in env
    config: dict[str, Any] = {}

    if embedded:
        private_dir(instance_path)
        private_sqlite_file(instance_path / "gateway.db")
        config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance_path / 'gateway.db'}"
    else:
        config["SQLALCHEMY_DATABASE_URI"] = _database_url(env["DATABASE_URL"])

    secret_key = env.get("SECRET_KEY")
    if secret_key is None:
        if not embedded:
            raise ConfigError("SECRET_KEY", "must be set when DATABASE_URL is set (all processes need the same one)")
        secret_key = _instance_secret(instance_path, "secret_key", lambda: secrets.token_urlsafe(48))
    if len(secret_key) < 24:
        raise ConfigError("SECRET_KEY", "is too short; use at least 24 random characters")
    config["SECRET_KEY"] = secret_key

    keys = env.get("TOKEN_ENCRYPTION_KEYS")
    if keys is None:
        if not embedded:
            raise ConfigError("TOKEN_ENCRYPTION_KEYS", "must be set when DATABASE_URL is set")
        keys = _instance_secret(instance_path, "token_encryption_keys", lambda: Fernet.generate_key().decode())
    config["TOKEN_ENCRYPTION_KEYS"] = _fernet_keys(keys)

    redis_url = env.get("REDIS_URL")
    if redis_url is not None and urlparse(redis_url).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError("REDIS_URL", "must start with redis://, rediss:// or unix://")
    config["REDIS_URL"] = redis_url

    config["O365_CLIENT_ID"] = env.get("O365_CLIENT_ID")
    config["O365_CLIENT_SECRET"] = env.get("O365_CLIENT_SECRET")
    config["O365_AUTHORITY_HOST"] = _https_url(
        "O365_AUTHORITY_HOST", env.get("O365_AUTHORITY_HOST", DEFAULT_AUTHORITY_HOST)
    )
    config["GRAPH_API_URL"] = _https_url("GRAPH_API_URL", env.get("GRAPH_API_URL", DEFAULT_GRAPH_API_URL))
    ca_bundle = env.get("O365_CA_BUNDLE")
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise ConfigError("O365_CA_BUNDLE", f"file {ca_bundle!r} does not exist")
    config["O365_CA_BUNDLE"] = ca_bundle

    hops = env.get("TRUSTED_PROXY_HOPS", "0")
    hop_count = parse_int(hops, 0, 32)
    if hop_count is None:
        raise ConfigError("TRUSTED_PROXY_HOPS", f"must be a whole number of proxies (0 = off), got {hops!r}")
    config["TRUSTED_PROXY_HOPS"] = hop_count

    public = env.get("PUBLIC_BASE_URL")
    if public is not None:
        parsed = urlparse(public)
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ConfigError("PUBLIC_BASE_URL", f"must be an http(s) URL like https://sso.example.com, got {public!r}")
        public = public.rstrip("/")
    config["PUBLIC_BASE_URL"] = public
    config["SESSION_COOKIE_SECURE"] = bool(public and public.startswith("https://"))
    config["TIME_ZONE"] = _time_zone(env.get("TIME_ZONE", "UTC"))
    config.update(_jobs_settings(env))
    config.update(_sso_settings(env))
    config.update(_provider_io_settings(env))
    config.update(_observability_settings(env))
    config.update(_policies_settings(env))
    config.update(_live_settings(env))
    config.update(_live_notification_settings(env))
    return config


def _policies_settings(env: dict[str, str]) -> dict[str, Any]:
    """Access policies: how long decisions are kept, how often a process asks which policy version is current."""
    days = env.get("ACCESS_DECISIONS_RETENTION_DAYS", "30")
    retention = parse_int(days, 1, 3650)
    if retention is None:
        raise ConfigError("ACCESS_DECISIONS_RETENTION_DAYS", f"must be a whole number of days from 1 to 3650, "
                                                             f"got {days!r}")
    refresh = env.get("POLICY_REFRESH_SECONDS", "1")
    try:
        refresh_s = float(refresh) if refresh.isascii() and "_" not in refresh else -1.0
    except ValueError:
        refresh_s = -1.0
    if not 0 <= refresh_s <= 60:
        raise ConfigError("POLICY_REFRESH_SECONDS", f"must be a number of seconds from 0 to 60, got {refresh!r}")
    return {"ACCESS_DECISIONS_RETENTION_DAYS": retention, "POLICY_REFRESH_SECONDS": refresh_s}


def _seconds(env: dict[str, str], name: str, default: str, low: float, high: float) -> float:
    raw = env.get(name, default)
    try:
        value = float(raw) if raw.isascii() and "_" not in raw else low - 1
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigError(name, f"must be a number of seconds from {low:g} to {high:g}, got {raw!r}")
    return value


def _live_settings(env: dict[str, str]) -> dict[str, Any]:
    """Live access: how long a burst of change notifications is gathered into one delta round, and how often a
    datasource whose notifications are healthy still runs a delta round (notifications can be lost)."""
    return {"LIVE_DEBOUNCE_SECONDS": _seconds(env, "LIVE_DEBOUNCE_SECONDS", "2", 0, 60),
            "LIVE_RECONCILE_SECONDS": _seconds(env, "LIVE_RECONCILE_SECONDS", "900", 10, 86400)}


def _live_notification_settings(env: dict[str, str]) -> dict[str, Any]:
    """The change-notification endpoint: refused posts allowed per client address (a Flask-Limiter limit), the
    largest body read, how long a notification acted on is remembered to refuse its replay."""
    limit = env.get("LIVE_REFUSED_RATE_LIMIT", "60 per minute")
    try:
        parse_many(limit)
    except ValueError:
        raise ConfigError("LIVE_REFUSED_RATE_LIMIT", f"must be a limit like '60 per minute', got {limit!r}") from None
    raw = env.get("LIVE_NOTIFICATION_MAX_BYTES", str(256 * 1024))
    size = parse_int(raw, 4096, 2 * 1024 * 1024)
    if size is None:
        raise ConfigError("LIVE_NOTIFICATION_MAX_BYTES", f"must be a number of bytes from 4096 to 2097152, got {raw!r}")
    return {"LIVE_REFUSED_RATE_LIMIT": limit, "LIVE_NOTIFICATION_MAX_BYTES": size,
            "LIVE_REPLAY_WINDOW_SECONDS": _seconds(env, "LIVE_REPLAY_WINDOW_SECONDS", "600", 10, 86400)}


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SWITCH_VALUES = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False,
                 "off": False}


def _observability_settings(env: dict[str, str]) -> dict[str, Any]:
    """Logs (LOG_FORMAT, LOG_LEVEL), metrics (METRICS, METRICS_TOKEN) and tracing (the standard OTEL_* variables:
    on when an OTLP endpoint or a traces exporter other than none is named, unless OTEL_SDK_DISABLED)."""
    log_format = env.get("LOG_FORMAT", "text").lower()
    if log_format not in {"text", "json"}:
        raise ConfigError("LOG_FORMAT", f"must be text or json, got {log_format!r}")
    level = env.get("LOG_LEVEL", "INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError("LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    metrics = SWITCH_VALUES.get(env.get("METRICS", "1").lower())
    if metrics is None:
        raise ConfigError("METRICS", f"must be 1 or 0, got {env['METRICS']!r}")
    token = env.get("METRICS_TOKEN")
    if token is not None and (len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token):
        raise ConfigError("METRICS_TOKEN", "must be at least 16 printable ASCII characters without spaces")
    exporter = env.get("OTEL_TRACES_EXPORTER", "").lower()
    if exporter not in {"", "otlp", "none"}:
        raise ConfigError("OTEL_TRACES_EXPORTER", f"only otlp (http/protobuf) or none are supported, got {exporter!r}")
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))
    named = exporter == "otlp" or bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or
                                       env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    tracing = named and exporter != "none" and env.get("OTEL_SDK_DISABLED", "false").lower() != "true"
    if tracing and protocol != "http/protobuf":
        raise ConfigError("OTEL_EXPORTER_OTLP_PROTOCOL", f"only http/protobuf is supported, got {protocol!r}")
    return {"LOG_FORMAT": log_format, "LOG_LEVEL": level, "METRICS_ENABLED": metrics, "METRICS_TOKEN": token,
            "TRACING_ENABLED": tracing}


def _time_zone(value: str) -> str:
    """An IANA zone name (Europe/London): the default for pages and new scheduled tasks."""

    if not is_zone(value):
        raise ConfigError("TIME_ZONE", f"must be an IANA time zone such as Europe/London or America/New_York, "
                                       f"got {value!r}")
    return value


def _sso_settings(env: dict[str, str]) -> dict[str, Any]:
    """Forward auth and SSO: redirect allow-list, shared cookie domain, provider HTTP timeout, how long the proxy
    may reuse an allowed /auth/verify decision."""
    domains = [part.strip().lower() for part in env.get("ALLOWED_REDIRECT_DOMAINS", "").split(",") if part.strip()]
    for domain in domains:
        _redirect_domain(domain)
    cookie_domain = env.get("SSO_COOKIE_DOMAIN")
    if cookie_domain is not None and ("/" in cookie_domain or ":" in cookie_domain or " " in cookie_domain):
        raise ConfigError("SSO_COOKIE_DOMAIN", f"must be a domain such as .example.com, got {cookie_domain!r}")
    timeout = env.get("SSO_HTTP_TIMEOUT", "10")
    try:
        seconds = float(timeout)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 120:
        raise ConfigError("SSO_HTTP_TIMEOUT", f"must be seconds between 0 and 120, got {timeout!r}")
    reuse = env.get("FORWARD_AUTH_CACHE_SECONDS", str(DEFAULT_FORWARD_AUTH_CACHE_SECONDS))
    reuse_s = parse_int(reuse, 0, MAX_FORWARD_AUTH_CACHE_SECONDS)
    if reuse_s is None:
        raise ConfigError("FORWARD_AUTH_CACHE_SECONDS", f"must be a whole number of seconds from 0 to "
                                                        f"{MAX_FORWARD_AUTH_CACHE_SECONDS}, got {reuse!r}")
    return {"ALLOWED_REDIRECT_DOMAINS": domains, "SESSION_COOKIE_DOMAIN": cookie_domain or None,
            "SSO_HTTP_TIMEOUT": seconds, "FORWARD_AUTH_CACHE_SECONDS": reuse_s}


_PUBLIC_SUFFIXES = PublicSuffixList(accept_unknown=False)  # the list shipped with the package: no download


def _redirect_domain(domain: str) -> None:
    """A host name (`app.example.com`) or a domain and its subdomains (`.example.com`), never a public suffix:
    `.co.uk` or `com` would send people back to any site registered under it."""
    name = domain[1:] if domain.startswith(".") else domain
    if len(name) > 253 or not all(HOST_LABEL.fullmatch(label) for label in name.split(".")):
        raise ConfigError("ALLOWED_REDIRECT_DOMAINS", f"{domain!r} is not a host name: letters, digits and inner "
                                                      "hyphens between dots (use .example.com for subdomains, "
                                                      "xn-- for international names)")
    if _PUBLIC_SUFFIXES.is_public(name):
        raise ConfigError("ALLOWED_REDIRECT_DOMAINS", f"{domain!r} is a public suffix (anyone can register under "
                                                      "it); name your own domain, e.g. .example.com")


def _provider_io_settings(env: dict[str, str]) -> dict[str, Any]:
    """Where generic identity providers may be: private networks (development only), extra endpoint hosts."""
    allow_private = env.get("SSO_ALLOW_PRIVATE_PROVIDERS", "0").lower()
    if allow_private not in {"0", "1", "true", "false", "yes", "no"}:
        raise ConfigError("SSO_ALLOW_PRIVATE_PROVIDERS", f"must be 1 or 0, got {allow_private!r}")
    hosts = [part.strip().lower() for part in env.get("SSO_PROVIDER_ENDPOINT_HOSTS", "").split(",") if part.strip()]
    for host in hosts:
        if len(host) > 253 or not all(HOST_LABEL.fullmatch(label) for label in host.split(".")):
            raise ConfigError("SSO_PROVIDER_ENDPOINT_HOSTS", f"{host!r} is not a host name (e.g. "
                                                             "oauth2.googleapis.com)")
    return {"SSO_ALLOW_PRIVATE_PROVIDERS": allow_private in {"1", "true", "yes"},
            "SSO_PROVIDER_ENDPOINT_HOSTS": hosts}


def _jobs_settings(env: dict[str, str]) -> dict[str, Any]:
    """Background jobs: queue name (Redis key prefix), SQLite queue file, embedded consumer, import page size."""
    switch = env.get("JOBS_EMBEDDED_WORKER")
    if switch is not None and switch.lower() not in {"0", "1", "true", "false", "yes", "no"}:
        raise ConfigError("JOBS_EMBEDDED_WORKER", f"must be 1 or 0, got {switch!r}")
    page_size = env.get("IMPORT_PAGE_SIZE", "999")
    page_count = parse_int(page_size, 1, 999)
    if page_count is None:
        raise ConfigError("IMPORT_PAGE_SIZE", f"must be a whole number from 1 to 999, got {page_size!r}")
    deadline = env.get("O365_PAGE_DEADLINE", "12")
    deadline_s = parse_int(deadline, 1, 600)
    if deadline_s is None:
        raise ConfigError("O365_PAGE_DEADLINE", f"must be a whole number of seconds from 1 to 600, got {deadline!r}")
    return {"JOBS_QUEUE_NAME": env.get("JOBS_QUEUE_NAME"), "JOBS_SQLITE_PATH": env.get("JOBS_SQLITE_PATH"),
            "JOBS_CONSUMER": None if switch is None else switch.lower() in {"1", "true", "yes"},
            "IMPORT_PAGE_SIZE": page_count, "O365_PAGE_DEADLINE": float(deadline_s)}

"""The application factory: `flask --app app run` and `gunicorn 'app:create_app()'` both serve it."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from dotenv import load_dotenv
from flask import Flask

import admin
import api
import bulk
import datasources
import imports
import jobs
import live
import sso
from core import timefmt
from core.cli import init_cli
from core.config import ConfigError, load_config
from core.converters import DB_INT_MAX, parse_int, register_converters
from core.errors import register_error_handlers
from core.extensions import bootstrap, csrf, db, limiter, login_manager, migrate
from core.models import User, render_migration_item
from core.user_lifecycle import on_users_ended
from core.web import init_web
from datasources.readings import datasource_states
from datasources.tenant_change import on_tenant_changed
from imports.readings import import_lag
from jobs.readings import job_states
from live.web import install as install_live_endpoint
from observability import logs, metrics, tracing
from office365 import observe
from policies.cli import policies_cli
from sso.cli import sso_cli
from sso.fast_verify import install as install_fast_verify
from sso.readings import active_sessions
from sso.sessions import end_user_sessions
from sso.sessions import install as install_sessions
from sso.tenant_change import hold_sign_in


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the gateway. `config` overrides values read from the environment (tests use it)."""
    load_dotenv()
    app = Flask(__name__, instance_relative_config=True, instance_path=os.environ.get("INSTANCE_PATH") or None)
    overrides = dict(config or {})
    try:
        environ = {**os.environ, **{k: str(v) for k, v in overrides.pop("ENV", {}).items()}}
        app.config.update(load_config(environ, Path(app.instance_path)))
    except ConfigError as exc:
        raise SystemExit(f"Configuration error: {exc}") from None
    app.config.update(
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        SESSION_COOKIE_NAME="gw_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_NAME="gw_remember",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=app.config["SESSION_COOKIE_SECURE"],
        BOOTSTRAP_SERVE_LOCAL=True,
        BOOTSTRAP_BTN_STYLE="primary",
        WTF_CSRF_TIME_LIMIT=None,
        RATELIMIT_STORAGE_URI=app.config.get("REDIS_URL") or "memory://",
        RATELIMIT_HEADERS_ENABLED=True,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
    )
    app.config.update(overrides)
    register_converters(app)  # before any route: `<id:...>` (and `<int:...>`) are bounded database ids
    if app.config.get("RATELIMIT_STORAGE_URI", "").startswith("redis"):
        app.config.setdefault("RATELIMIT_KEY_PREFIX", app.config.get("REDIS_PREFIX", "gw"))
    logs.install(app)  # the log format, and a request id first of all before_request hooks
    _init_extensions(app)
    _register_blueprints(app)
    _install_observability(app)
    return app


def _install_observability(app: Flask) -> None:
    """Metrics (events from the features, state read at scrape time) and tracing (last: it wraps the WSGI app)."""
    metrics.install(app)
    observe.on_graph_request(metrics.graph_request)
    observe.on_token_refresh(metrics.token_refresh)
    for reading in (active_sessions, datasource_states, job_states, import_lag):
        metrics.add_reading(reading)
    tracing.install(app)


# Every module that defines models, so the metadata (and Alembic autogenerate) sees all tables.
MODEL_MODULES = ("core.models", "core.api_keys", "jobs.models", "imports.models", "sso.models", "bulk.models",
                 "policies.models", "live.models")


def _init_extensions(app: Flask) -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)
    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "migrations"),
                     compare_type=True, render_item=render_migration_item)
    csrf.init_app(app)
    bootstrap.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "sso.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    install_sessions(app)  # server-side sessions (database, or Redis with REDIS_URL)
    install_fast_verify(app)  # WSGI fast path for GET /auth/verify, in front of the session interface
    on_users_ended(end_user_sessions)  # users the import disables or removes are signed out everywhere
    on_tenant_changed(hold_sign_in)  # a datasource's new tenant: its sign-in waits, its old tenant's sessions end

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        number = parse_int(user_id, 1, DB_INT_MAX)
        user = db.session.get(User, number) if number else None
        return user if user is not None and user.active else None


def _register_blueprints(app: Flask) -> None:
    init_web(app)
    timefmt.init_app(app)  # the `localtime` filter: times in the viewer's zone
    register_error_handlers(app)
    app.register_blueprint(sso.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(api.bp)
    install_live_endpoint(app)  # POST /graph/notifications and /graph/lifecycle: Graph's change notifications
    init_cli(app)
    jobs.init_app(app)  # scheduled tasks: huey queue, webhook, `flask jobs`
    imports.init_app(app)  # the user-import job kind and `flask import`
    bulk.init_app(app)  # the bulk-job kind (bulk add/remove/licence changes from a previewed selection)
    app.cli.add_command(sso_cli)
    app.cli.add_command(policies_cli)  # `flask policies export|import|versions`
    datasources.init_app(app)  # `flask datasources` and the datasource keep-alive job kind
    live.init_app(app)  # live access: debounced delta rounds that keep sessions in step with Entra

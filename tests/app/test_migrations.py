"""The schema comes from migrations, and the migrations match the models exactly."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import inspect

from core.extensions import db


def test_migrations_create_every_table_and_the_built_in_roles(app: Flask) -> None:
    tables = set(inspect(db.engine).get_table_names())
    assert {"users", "roles", "user_roles", "audit_events", "alembic_version"} <= tables
    names = set(db.session.scalars(db.text("SELECT name FROM roles")))
    assert names == {"User", "Administrator", "Manage datasources"}


def test_models_and_migrations_do_not_differ(app: Flask) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []

"""Migrations build the schema from nothing, on SQLite and on PostgreSQL, exactly as the code declares it."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from ovfstore.engine.db.database import Database, alembic_config
from ovfstore.engine.db.schema import metadata


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_migrations_create_the_declared_schema_from_nothing(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    try:
        assert inspect(db.engine).get_table_names() == []
        assert db.current_revision() is None

        db.migrate()

        assert db.current_revision() == _head()
        assert set(inspect(db.engine).get_table_names()) == {*metadata.tables, "alembic_version"}
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
        assert differences == [], f"the migrations and schema.py disagree: {differences}"
    finally:
        db.dispose()


def test_downgrade_to_nothing_and_upgrade_again(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    try:
        db.migrate()
        db.downgrade("base")
        assert set(inspect(db.engine).get_table_names()) == {"alembic_version"}
        assert db.current_revision() is None
        db.migrate()
        assert db.current_revision() == _head()
    finally:
        db.dispose()


def test_migrate_twice_is_harmless(empty_db_url: str) -> None:
    db = Database(empty_db_url)
    try:
        db.migrate()
        db.migrate()
        assert db.current_revision() == _head()
    finally:
        db.dispose()

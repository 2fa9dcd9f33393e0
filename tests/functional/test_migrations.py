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


def test_upgrade_from_0001_with_a_filled_cache(empty_db_url: str) -> None:
    """0002 changes the OVF cache's columns; the cache is derived data, so it is emptied, never left
    half-converted."""
    from datetime import UTC, datetime
    from uuid import uuid4

    from sqlalchemy import text

    db = Database(empty_db_url)
    try:
        db.migrate("0001")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO ovf_cache (entity_id, entity_type, ovf_generation, ovf_data, domain_ids, "
                    "deleted, updated_at) VALUES (:id, 'vm', 1, :data, '', false, :now)"
                ),
                {"id": uuid4().hex if db.is_sqlite else uuid4(), "data": b"<x/>", "now": datetime.now(UTC)},
            )
        db.migrate()
        assert db.current_revision() == _head()
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM ovf_cache")).scalar() == 0
    finally:
        db.dispose()

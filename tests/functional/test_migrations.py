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


def test_domain_settings_migration_keeps_domains_with_ovirts_defaults(empty_db_url: str) -> None:
    """0010 adds the domain settings to existing domains with oVirt's defaults; down again, the domain
    stays as it was."""
    from uuid import uuid4

    from sqlalchemy import text

    db = Database(empty_db_url)
    try:
        db.migrate("0009")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO storage_domains (id, name, storage_type, domain_class, address, path, vg_uuid, "
                    "description, comment, status, master, ovf_store_count, format_version) VALUES "
                    "(:id, 'old', 'nfs', 'data', '10.0.0.1', '/e', '', '', '', 'unattached', false, 2, 5)"
                ),
                {"id": uuid4().hex if db.is_sqlite else uuid4()},
            )
        db.migrate("0010")
        query = (
            "SELECT backup, wipe_after_delete, discard_after_delete, warning_low_space_indicator, "
            "critical_space_action_blocker, vfs_type, mount_options, nfs_version, nfs_timeo, nfs_retrans "
            "FROM storage_domains"
        )
        with db.engine.connect() as conn:
            assert tuple(conn.execute(text(query)).one()) == (False, False, False, 10, 5, "", "", "", 0, 0)
        db.downgrade("0009")
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM storage_domains")).scalar() == "old"
            assert "backup" not in {c["name"] for c in inspect(conn).get_columns("storage_domains")}
        db.migrate()
        assert db.current_revision() == _head()
    finally:
        db.dispose()

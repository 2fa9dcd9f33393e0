"""`ovfstore db`: create or upgrade the engine database."""

from __future__ import annotations

import click


@click.group()
def db() -> None:
    """Create or upgrade the engine database."""


@db.command("upgrade")
@click.option(
    "--url",
    envvar="OVFSTORE_DB_URL",
    default=None,
    help="SQLAlchemy URL (postgresql+psycopg://user@host/db); default: SQLite in --data-dir.",
)
@click.option(
    "--data-dir",
    envvar="OVFSTORE_DATA_DIR",
    default="./data",
    show_default=True,
    type=click.Path(file_okay=False),
)
def upgrade(url: str | None, data_dir: str) -> None:
    """Bring the database schema to the newest migration (creating it from nothing if needed)."""
    from ovfstore.engine.db.database import Database, default_url

    database = Database(url or default_url(data_dir))
    database.migrate()
    click.echo(f"database at {database.safe_url} is at revision {database.current_revision()}")

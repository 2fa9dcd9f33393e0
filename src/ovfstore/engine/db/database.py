"""The database handle: connection, transactions and migrations, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

#: SQLite waits this long for a lock held by another connection before failing. The updater's longest
#: transaction (the pool step over 10,000 VMs) is far shorter (docs/PERFORMANCE.md); 30 s only fails a hang.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: The key of the PostgreSQL advisory lock engines take while they start (`Database.exclusive`).
STARTUP_LOCK = 0x0F5_7012E


def default_url(data_dir: str | os.PathLike[str]) -> str:
    """SQLite in a file of the data directory: the embedded default, nothing to install."""
    path = Path(data_dir).absolute()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / 'engine.db'}"


class Database:
    """One engine's database. Use `read()` and `write()`; each is one transaction."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 5) -> None:
        self.url = make_url(url)
        if self.url.drivername == "postgresql":
            # psycopg 3 is the driver we ship; plain "postgresql://" would pick psycopg2.
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False}
            if self.url.database in (None, "", ":memory:"):
                raise ValueError("an in-memory SQLite database is not shared between connections: use a file")
        else:
            kwargs["pool_size"] = pool_size
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads (on SQLite it takes no write lock)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that writes. On SQLite it takes the write lock up front (BEGIN IMMEDIATE), so
        two writers queue on the busy timeout instead of one failing when it upgrades its lock."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.info["begin_immediate"] = True
            with conn.begin():
                yield conn

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One holder at a time among every engine on this PostgreSQL database (a session advisory lock):
        engines starting together migrate and create the defaults one after the other. Nothing on SQLite,
        which has one engine."""
        if self.is_sqlite:
            yield
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({STARTUP_LOCK})")
            conn.commit()
            try:
                yield
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({STARTUP_LOCK})")
                conn.commit()

    def migrate(self, revision: str = "head") -> None:
        """Create or upgrade the schema to `revision` (the newest by default)."""
        with self.engine.begin() as conn:
            config = alembic_config(conn)
            command.upgrade(config, revision)

    def downgrade(self, revision: str) -> None:
        with self.engine.begin() as conn:
            command.downgrade(alembic_config(conn), revision)

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, pointing at the migrations shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("ovfstore.engine.db") / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself, so it can choose IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL lets readers (the API, the status page) go on while the updater writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.info.pop("begin_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

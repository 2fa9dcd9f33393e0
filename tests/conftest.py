"""Shared fixtures. Database tests run twice, on SQLite and on the PostgreSQL server.

PostgreSQL: the server at OVFSTORE_TEST_PG_URL (default: the local one, user postgres, database test).
Each test session creates a database of its own there and drops it at the end, so parallel runs do not
meet. When the server cannot be reached, the PostgreSQL tests skip with the reason, except under
CI=true, where they fail: CI must prove the production database works.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ovfstore.engine.db.database import Database
from ovfstore.engine.db.schema import metadata

PG_URL = os.environ.get("OVFSTORE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _pg_unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required under CI=true but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not reachable ({reason}); set OVFSTORE_TEST_PG_URL or start the server")


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"ovfstore_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any connection failure means: no server to test against
        admin.dispose()
        _pg_unavailable(f"{make_url(PG_URL).render_as_string(hide_password=True)}: {exc.__class__.__name__}")
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    database.migrate()
    database.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies: migrating once per session keeps tests fast."""
    path = tmp_path_factory.mktemp("sqlite-template") / "engine.db"
    database = Database(f"sqlite:///{path}")
    database.migrate()
    database.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database of `backend`, private to this test."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "engine.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_session_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    yield db
    db.dispose()


@pytest.fixture
def empty_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with nothing in it at all (not even migrations), private to this test."""
    yield from private_empty_database(backend, request, tmp_path, "empty")


def private_empty_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path, label: str) -> Iterator[str]:
    """A database with nothing in it, named by `label`, private to the test: a SQLite file in its
    directory, or a PostgreSQL database created for it and dropped after it."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'{label}.db'}"
        return
    request.getfixturevalue("pg_session_url")  # skips or fails the same way when there is no server
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"ovfstore_{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()

"""`ovfstore engine`: run the engine with its REST API for a real deployment (PostgreSQL, agents on
other hosts), and manage the API's users."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ovfstore.engine.settings import describe

if TYPE_CHECKING:
    from ovfstore.engine.settings import Settings

DEFAULT_PORT = 8080  # plain HTTP; put a TLS proxy in front for anything beyond one host

SETTINGS_EPILOG = (
    "Engine settings, with their defaults: set them in the --config file (TOML, one [section] each), "
    "override them with the environment variable named after each, or with a flag above where there is one.\n\n"
    "\b\n" + describe()
)

config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file of engine settings (listed below).",
)


def load_settings(config_file: Path | None, agent_secret: str | None = None, name: str | None = None) -> Settings:
    """The settings of the file, the environment and the flags, or a usage error saying what is wrong."""
    import os

    from ovfstore.engine.settings import SettingsError, load

    flags: dict[str, dict[str, object]] = {"agent": {"secret": agent_secret}} if agent_secret is not None else {}
    if name is not None:
        flags["engine"] = {"name": name}
    try:
        return load(config_file, os.environ, flags)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc


def _db_url(url: str | None, data_dir: str) -> str:
    from ovfstore.engine.db.database import default_url

    return url or default_url(data_dir)


db_url_option = click.option(
    "--db-url",
    envvar="OVFSTORE_DB_URL",
    default=None,
    help="SQLAlchemy URL (postgresql+psycopg://user@host/db); default: SQLite in --data-dir.",
)
data_dir_option = click.option(
    "--data-dir",
    envvar="OVFSTORE_DATA_DIR",
    default="./data",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the SQLite database lives when no --db-url is given.",
)


@click.group()
def engine() -> None:
    """Run the engine (inventory, OVF updater, REST API) and manage its users."""


@engine.command(epilog=SETTINGS_EPILOG)
@config_option
@db_url_option
@data_dir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API listens on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="Port of the API; 0 picks a free one.")
@click.option(
    "--agent-secret-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the secret shared with the host agents (overrides [agent] secret).",
)
@click.option(
    "--name", default=None, help="This engine's name among several on one database ([engine] name); default HOST:PORT."
)
@click.option("--log-level", default="info", show_default=True)
def serve(
    config_file: Path | None,
    db_url: str | None,
    data_dir: str,
    host: str,
    port: int,
    agent_secret_file: Path | None,
    name: str | None,
    log_level: str,
) -> None:
    """Serve the REST API under /ovirt-engine/api until SIGINT or SIGTERM.

    Hosts are added through the API (POST /hosts with the agent's address). The administrator
    admin@internal gets OVFSTORE_ADMIN_PASSWORD on first start, or a generated password printed once.
    """
    import logging
    import socket
    from dataclasses import replace

    from ovfstore.api.server import prepare
    from ovfstore.api.server import serve as serve_api
    from ovfstore.engine.leadership import LeadershipError
    from ovfstore.engine.runtime import Engine, EngineConfig

    settings = load_settings(config_file, agent_secret_file.read_text().strip() if agent_secret_file else None, name)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    identity = replace(settings.engine, name=settings.engine.name or f"{socket.gethostname()}:{port}")
    runtime = Engine(EngineConfig(_db_url(db_url, data_dir), settings.agent, settings.updater, settings.api, identity))
    try:
        prepare(runtime, click.echo)
    except LeadershipError as exc:
        raise click.ClickException(str(exc)) from exc
    serve_api(
        runtime,
        host,
        port,
        on_listening=lambda bound: click.echo(
            f"API at http://{host}:{bound}/ovirt-engine/api (status page at http://{host}:{bound}/)", err=True
        ),
    )


@engine.group()
def user() -> None:
    """Users of the REST API, straight in the database (the engine need not run)."""


def _users(db_url: str | None, data_dir: str) -> object:
    from ovfstore.engine.db.database import Database
    from ovfstore.engine.users import UserService

    database = Database(_db_url(db_url, data_dir))
    database.migrate()
    return UserService(database)


def _password(password_file: Path | None) -> str:
    if password_file is not None:
        return password_file.read_text().strip()
    return str(click.prompt("password", hide_input=True, confirmation_prompt=True))


@user.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May change things; without it the user may only read.")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_url_option
@data_dir_option
def user_add(name: str, admin: bool, password_file: Path | None, db_url: str | None, data_dir: str) -> None:
    """Add a user (read-only unless --admin); NAME without a profile gets @internal."""
    from ovfstore.engine.errors import InventoryError
    from ovfstore.engine.users import UserRole, UserService

    store = _users(db_url, data_dir)
    assert isinstance(store, UserService)
    try:
        made = store.add(name, _password(password_file), UserRole.ADMIN if admin else UserRole.READONLY)
    except InventoryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"added {made.name} ({made.role.value})")


@user.command("password")
@click.argument("name")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_url_option
@data_dir_option
def user_password(name: str, password_file: Path | None, db_url: str | None, data_dir: str) -> None:
    """Set a user's password (admin@internal's too)."""
    from ovfstore.engine.errors import InventoryError
    from ovfstore.engine.users import UserService

    store = _users(db_url, data_dir)
    assert isinstance(store, UserService)
    try:
        store.set_password(name, _password(password_file))
    except InventoryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("password changed")


@user.command("list")
@db_url_option
@data_dir_option
def user_list(db_url: str | None, data_dir: str) -> None:
    """List the users and their roles."""
    from ovfstore.engine.users import UserService

    store = _users(db_url, data_dir)
    assert isinstance(store, UserService)
    for u in store.list():
        click.echo(f"{u.name}\t{u.role.value}")


@user.command("remove")
@click.argument("name")
@db_url_option
@data_dir_option
def user_remove(name: str, db_url: str | None, data_dir: str) -> None:
    """Remove a user."""
    from ovfstore.engine.errors import InventoryError
    from ovfstore.engine.users import UserService

    store = _users(db_url, data_dir)
    assert isinstance(store, UserService)
    try:
        store.remove(name)
    except InventoryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"removed {name}")

"""`ovfstore up`: the engine and one local host agent with embedded defaults, for one machine.

SQLite and the agent's files live under the data directory; the agent may create and find domains
under the storage root. The agent is a child process (the only one that touches storage, as on a
real site), registered as the up host `local` in the `Default` cluster. When it dies it is started
again on the same port (with a growing delay while it keeps dying), and the host is down meanwhile.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import click

from ovfstore.agent.process import SupervisedAgent
from ovfstore.cli.engine import DEFAULT_PORT, SETTINGS_EPILOG, config_option, load_settings
from ovfstore.engine.inventory import HostChanges

if TYPE_CHECKING:
    from ovfstore.engine.runtime import Engine

log = logging.getLogger(__name__)

LOCAL_HOST = "local"


class LocalHost:
    """The engine's record of the local agent: the up host `local`, marked down while its agent is dead.

    Only a host this supervision marked down is marked up again: one an operator put into maintenance
    stays there."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.host_id: UUID | None = None
        self._marked_down = False

    def register(self, engine: Engine, address: str) -> None:
        """The local agent listens on a new port each start: keep one host `local`, pointed at it."""
        from ovfstore.model import Host, HostStatus

        inv = engine.inventory
        existing = next((h for h in inv.hosts.list() if h.name == LOCAL_HOST), None)
        if existing is not None:
            inv.hosts.update(existing.id, HostChanges(address=address, status=HostStatus.UP))
        else:
            cluster = next((c for c in inv.clusters.list() if c.name == "Default"), None)
            if cluster is None:
                raise click.ClickException(
                    "there is no Default cluster to put the local host in; add one through the API"
                )
            existing = inv.hosts.add(
                Host(name=LOCAL_HOST, cluster_id=cluster.id, address=address, status=HostStatus.UP)
            )
        self.engine, self.host_id = engine, existing.id

    def down(self, why: str) -> None:
        from ovfstore.model import HostStatus

        if self.engine is None or self.host_id is None:
            return  # not registered yet: registering finds the agent answering again
        if self.engine.inventory.hosts.get(self.host_id).status is HostStatus.UP:
            self.engine.inventory.hosts.update(self.host_id, HostChanges(status=HostStatus.DOWN))
            self._marked_down = True
            log.warning("host %s marked down: %s", LOCAL_HOST, why)

    def up(self) -> None:
        from ovfstore.model import HostStatus

        if self.engine is None or self.host_id is None or not self._marked_down:
            return
        self.engine.inventory.hosts.update(self.host_id, HostChanges(status=HostStatus.UP))
        self._marked_down = False
        log.warning("host %s marked up: its agent answers again", LOCAL_HOST)


@click.command(epilog=SETTINGS_EPILOG)
@config_option
@click.option(
    "--data-dir",
    envvar="OVFSTORE_DATA_DIR",
    default="./data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Database and working files.",
)
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="Port of the REST API; 0 picks a free one.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the REST API listens on.")
@click.option(
    "--storage-root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the local agent may create and find storage domains (default: DATA_DIR/storage).",
)
@click.option(
    "--device",
    "devices",
    multiple=True,
    help="A block device (or glob pattern) the local agent may use for block domains; repeat for several.",
)
@click.option(
    "--lvm-system-dir",
    type=click.Path(exists=True, file_okay=False),
    help="LVM_SYSTEM_DIR for the local agent's LVM tools; default: the host's.",
)
def up(
    config_file: Path | None,
    data_dir: Path,
    port: int,
    host: str,
    storage_root: Path | None,
    devices: tuple[str, ...],
    lvm_system_dir: str | None,
) -> None:
    """Run the engine and one local agent; print the API address and the credentials.

    The local agent gets a new secret on every start, so [agent] secret is not used.
    """
    from ovfstore.api.server import prepare, serve
    from ovfstore.engine.db.database import default_url
    from ovfstore.engine.leadership import LeadershipError
    from ovfstore.engine.runtime import Engine, EngineConfig

    secret = secrets.token_urlsafe(32)
    settings = load_settings(config_file, secret)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_dir = data_dir.absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    storage_root = (storage_root or data_dir / "storage").absolute()
    storage_root.mkdir(parents=True, exist_ok=True)
    local = LocalHost()
    try:
        agent = SupervisedAgent(
            [storage_root], data_dir, secret, on_down=local.down, on_up=local.up, devices=devices,
            lvm_system_dir=lvm_system_dir,
        )  # fmt: skip
    except RuntimeError as exc:
        raise click.ClickException(f"the local agent did not start: {exc}; see its messages above") from None
    agent_port = agent.port
    try:
        runtime = Engine(EngineConfig(default_url(data_dir), settings.agent, settings.updater))
        try:
            prepare(runtime, click.echo)
        except LeadershipError as exc:
            raise click.ClickException(str(exc)) from None
        local.register(runtime, agent.url)

        def listening(bound: int) -> None:
            click.echo(f"API:      http://{host}:{bound}/ovirt-engine/api")
            click.echo(f"status:   http://{host}:{bound}/ (metrics at /metrics)")
            click.echo("user:     admin@internal")
            click.echo(f"storage:  {storage_root} (local agent on port {agent_port})")
            click.echo(f"data:     {data_dir}")

        serve(runtime, host, port, on_listening=listening)
    finally:
        agent.stop()

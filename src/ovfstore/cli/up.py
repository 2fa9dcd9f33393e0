"""`ovfstore up`: the engine and one local host agent with embedded defaults, for one machine.

SQLite and the agent's files live under the data directory; the agent may create and find domains
under the storage root. The agent is a child process (the only one that touches storage, as on a
real site), registered as the up host `local` in the `Default` cluster.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ovfstore.cli.agent import SECRET_ENV
from ovfstore.cli.engine import DEFAULT_PORT, SETTINGS_EPILOG, config_option, load_settings
from ovfstore.engine.inventory import HostChanges

if TYPE_CHECKING:
    from ovfstore.engine.runtime import Engine

LOCAL_HOST = "local"


def start_agent(data_dir: Path, storage_root: Path, secret: str) -> tuple[subprocess.Popen[bytes], int]:
    port_file = data_dir / "agent.port"
    port_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "ovfstore.cli.main", "agent", "serve", "--root", str(storage_root)]
    cmd += ["--port", "0", "--port-file", str(port_file)]
    # The secret goes by environment, not by file: nothing secret is left on disk.
    proc = subprocess.Popen(cmd, env={**os.environ, SECRET_ENV: secret})
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None:
            raise click.ClickException(f"the local agent exited with status {proc.returncode}; see its messages above")
        if time.monotonic() > deadline:
            proc.kill()
            raise click.ClickException("the local agent did not start within 30 s")
        time.sleep(0.05)
    return proc, int(port_file.read_text())


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
def up(config_file: Path | None, data_dir: Path, port: int, host: str, storage_root: Path | None) -> None:
    """Run the engine and one local agent; print the API address and the credentials.

    The local agent gets a new secret on every start, so [agent] secret is not used.
    """
    import logging

    from ovfstore.api.server import prepare, serve
    from ovfstore.engine.db.database import default_url
    from ovfstore.engine.runtime import Engine, EngineConfig

    secret = secrets.token_urlsafe(32)
    settings = load_settings(config_file, secret)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_dir = data_dir.absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    storage_root = (storage_root or data_dir / "storage").absolute()
    storage_root.mkdir(parents=True, exist_ok=True)
    agent, agent_port = start_agent(data_dir, storage_root, secret)
    try:
        runtime = Engine(EngineConfig(default_url(data_dir), settings.agent, settings.updater))
        prepare(runtime, click.echo)
        _register_local_host(runtime, f"http://127.0.0.1:{agent_port}")

        def listening(bound: int) -> None:
            click.echo(f"API:      http://{host}:{bound}/ovirt-engine/api")
            click.echo("user:     admin@internal")
            click.echo(f"storage:  {storage_root} (local agent on port {agent_port})")
            click.echo(f"data:     {data_dir}")

        serve(runtime, host, port, on_listening=listening)
    finally:
        agent.terminate()
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()


def _register_local_host(runtime: Engine, address: str) -> None:
    """The local agent listens on a new port each start: keep one host `local`, pointed at it."""
    from ovfstore.model import Host, HostStatus

    inv = runtime.inventory
    existing = next((h for h in inv.hosts.list() if h.name == LOCAL_HOST), None)
    if existing is not None:
        inv.hosts.update(existing.id, HostChanges(address=address, status=HostStatus.UP))
        return
    cluster = next((c for c in inv.clusters.list() if c.name == "Default"), None)
    if cluster is None:
        raise click.ClickException("there is no Default cluster to put the local host in; add one through the API")
    inv.hosts.add(Host(name=LOCAL_HOST, cluster_id=cluster.id, address=address, status=HostStatus.UP))

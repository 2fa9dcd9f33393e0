"""`ovfstore agent serve`: run a host agent, the only process that touches storage."""

from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path

import click

from ovfstore.agent.config import SECRET_ENV, AgentConfig


@click.group()
def agent() -> None:
    """Run a host agent: the only process that touches storage."""


def _read_secret(secret_file: Path | None) -> str:
    secret = secret_file.read_text().strip() if secret_file else os.environ.get(SECRET_ENV, "")
    if not secret:
        raise click.UsageError(f"no credential: pass --secret-file FILE or set {SECRET_ENV}")
    return secret


@agent.command()
@click.option(
    "--root",
    "roots",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A directory holding storage domains; repeat for several. Nothing outside them is reachable.",
)
@click.option(
    "--device",
    "devices",
    multiple=True,
    help="A block device (or glob pattern, e.g. '/dev/mapper/*') the agent may use for block domains; repeat "
    "for several. No other device is read or written.",
)
@click.option(
    "--lvm-system-dir",
    type=click.Path(exists=True, file_okay=False),
    help="LVM_SYSTEM_DIR for the LVM tools (an lvm.conf of the agent's own); default: the host's.",
)
@click.option("--host", default=AgentConfig.host, show_default=True, help="Address to listen on.")
@click.option("--port", default=AgentConfig.port, show_default=True, help="Port to listen on; 0 picks a free one.")
@click.option(
    "--port-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the bound port here once listening (for --port 0).",
)
@click.option(
    "--secret-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"File holding the engine's shared secret (default: the {SECRET_ENV} environment variable).",
)
@click.option("--buffer-size", default=AgentConfig.buffer_size, show_default=True, help="Bytes per I/O buffer.")
@click.option(
    "--max-connections", default=AgentConfig.max_connections, show_default=True, help="Connections served at once."
)
@click.option(
    "--head-timeout", default=AgentConfig.head_timeout, show_default=True, help="Seconds for a request head to arrive."
)
@click.option("--log-level", default="warning", show_default=True, help="Log level of the agent.")
def serve(
    roots: tuple[Path, ...],
    devices: tuple[str, ...],
    lvm_system_dir: str | None,
    host: str,
    port: int,
    port_file: Path | None,
    secret_file: Path | None,
    buffer_size: int,
    max_connections: int,
    head_timeout: float,
    log_level: str,
) -> None:
    """Serve the agent's HTTP API until SIGINT or SIGTERM."""
    from ovfstore.agent.app import create_app
    from ovfstore.agent.server import serve as serve_http

    if not roots and not devices:
        raise click.UsageError("give the agent storage: --root DIR for file domains, --device PATTERN for block ones")
    config = AgentConfig(
        roots=tuple(str(r.resolve()) for r in roots),
        devices=devices,
        lvm_system_dir=lvm_system_dir,
        secret=_read_secret(secret_file),
        host=host,
        port=port,
        buffer_size=buffer_size,
        max_connections=max_connections,
        head_timeout=head_timeout,
    )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Bind before serving so the real port is known (and written) before any client is told to connect.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    bound = sock.getsockname()[1]
    if port_file:
        tmp = port_file.with_name(port_file.name + ".tmp")
        tmp.write_text(f"{bound}\n")
        tmp.rename(port_file)
    click.echo(f"agent listening on {host}:{bound}", err=True)
    serve_http(sock, create_app(config), config, stop=(signal.SIGTERM, signal.SIGINT))

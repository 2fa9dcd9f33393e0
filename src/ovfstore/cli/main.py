"""Entry point of the `ovfstore` command.

Subcommands live in their own modules and are imported only when used, so `ovfstore --help` stays fast
and a command never pays for the imports of another. Register a subcommand by adding one line to
`_SUBCOMMANDS`: its name, then `module:attribute` of its click command or group.
"""

from __future__ import annotations

import importlib

import click

from ovfstore import __version__

_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    # name: ("module:attribute", one-line help)
    "agent": ("ovfstore.cli.agent:agent", "Run a host agent: the only process that touches storage."),
    "cluster": ("ovfstore.cli.resources:cluster", "Clusters, through the REST API."),
    "datacenter": ("ovfstore.cli.resources:datacenter", "Data centers, through the REST API."),
    "db": ("ovfstore.cli.db:db", "Create or upgrade the engine database."),
    "demo": ("ovfstore.cli.demo:demo", "Protect, lose the engine, recover from the domains alone, and check."),
    "disk": ("ovfstore.cli.resources:disk", "Disks, through the REST API."),
    "domain": ("ovfstore.cli.domain:domain", "Storage domains: add, import, attach, maintenance, detach, update-ovf."),
    "engine": ("ovfstore.cli.engine:engine", "Run the engine and its REST API; manage API users."),
    "host": ("ovfstore.cli.resources:host", "Hosts (host agents), through the REST API."),
    "inspect": ("ovfstore.cli.inspect:inspect", "Read a domain offline (directory or LUNs): stores, VMs, templates."),
    "job": ("ovfstore.cli.resources:job", "Jobs: what long actions did."),
    "network": ("ovfstore.cli.resources:network", "Networks, through the REST API."),
    "ovf": ("ovfstore.cli.ovf:ovf", "Read and show OVF documents."),
    "register": ("ovfstore.cli.register:register", "Register unregistered VMs and templates of a domain."),
    "status": ("ovfstore.cli.status:status", "Every domain's OVF store freshness and recovery point."),
    "template": ("ovfstore.cli.resources:template", "Templates, through the REST API."),
    "unprotected": ("ovfstore.cli.status:unprotected", "The VMs and templates no OVF store protects, and why."),
    "unregistered": ("ovfstore.cli.register:unregistered", "What an imported domain holds that the engine does not."),
    "up": ("ovfstore.cli.up:up", "Run the engine and one local agent with embedded defaults."),
    "vm": ("ovfstore.cli.resources:vm", "VMs: list, start, stop, through the REST API."),
    "vnicprofile": ("ovfstore.cli.resources:vnicprofile", "vNIC profiles, through the REST API."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_SUBCOMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _SUBCOMMANDS:
            target, _help = _SUBCOMMANDS[cmd_name]
            module_name, attr = target.split(":")
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _SUBCOMMANDS[name][1]) for name in sorted(_SUBCOMMANDS)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ovfstore")
def cli() -> None:
    """ovfstore: OVF stores on every storage domain, and recovery from them."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()

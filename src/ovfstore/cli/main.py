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
    "db": ("ovfstore.cli.db:db", "Create or upgrade the engine database."),
    "inspect": ("ovfstore.cli.inspect:inspect", "Read a domain directory offline: its stores, VMs and templates."),
    "ovf": ("ovfstore.cli.ovf:ovf", "Read and show OVF documents."),
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

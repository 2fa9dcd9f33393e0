"""`ovfstore datacenter|cluster|host|network|vm|template|disk|job ...`: the inventory through the REST API.

Each group lists its collection (with oVirt's `--search` expressions) as a table; some have actions:
`host add`, `vm start|stop`. Storage domains are in `ovfstore domain`.
"""

from __future__ import annotations

from typing import Any

import click
from lxml import etree
from rich.console import Console
from rich.table import Table

from ovfstore.agent.config import DEFAULT_PORT as AGENT_PORT
from ovfstore.cli.client import ApiClient, with_api, x

Column = tuple[str, str]  # header, path in the element ("@id" for the id)

_COLUMNS: dict[str, tuple[str, str, list[Column]]] = {
    # group: (collection, element, columns)
    "datacenter": ("datacenters", "data_center", [("name", "name"), ("status", "status"), ("id", "@id")]),
    "cluster": ("clusters", "cluster", [("name", "name"), ("data center", "data_center/@id"), ("id", "@id")]),
    "host": ("hosts", "host", [("name", "name"), ("status", "status"), ("address", "address"), ("id", "@id")]),
    "network": ("networks", "network", [("name", "name"), ("data center", "data_center/@id"), ("id", "@id")]),
    "vnicprofile": ("vnicprofiles", "vnic_profile", [("name", "name"), ("network", "network/@id"), ("id", "@id")]),
    "vm": ("vms", "vm", [("name", "name"), ("status", "status"), ("HA", "high_availability/enabled"), ("id", "@id")]),
    "template": ("templates", "template", [("name", "name"), ("status", "status"), ("id", "@id")]),
    "disk": ("disks", "disk", [("alias", "alias"), ("size", "provisioned_size"), ("status", "status"), ("id", "@id")]),
    "job": ("jobs", "job", [("description", "description"), ("status", "status"), ("end", "end_time")]),
}


def value(element: etree._Element, path: str) -> str:
    if path == "@id":
        return str(element.get("id", ""))
    if path.endswith("/@id"):
        found = element.find(path[:-4])
        return "" if found is None else str(found.get("id", ""))
    return element.findtext(path) or ""


def table(elements: list[etree._Element], columns: list[Column]) -> None:
    out = Table(*[c[0] for c in columns])
    for element in elements:
        out.add_row(*[value(element, c[1]) for c in columns])
    Console().print(out)


def _list_command(collection: str, tag: str, columns: list[Column]) -> click.Command:
    @click.command("list")
    @click.option("--search", "search", default=None, help="An oVirt search expression, e.g. 'name=web*'.")
    @with_api
    def list_command(search: str | None, api: ApiClient) -> None:
        """List as a table."""
        table(api.get(f"/{collection}", search=search).findall(tag), columns)

    return list_command


def _group(name: str) -> click.Group:
    collection, tag, columns = _COLUMNS[name]
    group = click.Group(name, help=f"{collection}: list them" + ("" if name != "vm" else ", start and stop them"))
    group.add_command(_list_command(collection, tag, columns))
    return group


datacenter = _group("datacenter")
cluster = _group("cluster")
host = _group("host")
network = _group("network")
vnicprofile = _group("vnicprofile")
vm = _group("vm")
template = _group("template")
disk = _group("disk")
job = _group("job")


@host.command("add", help=f"Add a host: ADDRESS is its agent's URL (http://host:{AGENT_PORT}).")
@click.argument("name")
@click.argument("address")
@click.option("--cluster", "cluster_name", default="Default", show_default=True)
@with_api
def host_add(name: str, address: str, cluster_name: str, api: ApiClient) -> None:
    body = (
        f"<host><name>{x(name)}</name><address>{x(address)}</address>"
        f"<cluster><name>{x(cluster_name)}</name></cluster></host>"
    )
    made = api.post("/hosts", body)
    click.echo(f"added host {name} ({made.get('id') if made is not None else '?'})")


def _run(verb: str, done: str) -> Any:
    @vm.command(verb)
    @click.argument("names", nargs=-1, required=True)
    @with_api
    def command(names: tuple[str, ...], api: ApiClient) -> None:
        for name in names:
            vm_id = api.find_id("vms", name, "vm")
            api.post(f"/vms/{vm_id}/{verb}")
            click.echo(f"{name}: {done}")

    command.help = f"Record VMs as {done} (there is no hypervisor: the run status is inventory state)."
    return command


_run("start", "up")
_run("stop", "down")

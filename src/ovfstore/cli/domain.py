"""`ovfstore domain ...`: storage domains through the REST API: add or import, attach, activate,
deactivate, detach, remove, update-ovf, and their disks."""

from __future__ import annotations

import click

from ovfstore.cli.client import ApiClient, with_api, x
from ovfstore.cli.resources import table

COLUMNS = [
    ("name", "name"),
    ("status", "status"),
    ("master", "master"),
    ("type", "storage/type"),
    ("path", "storage/path"),
    ("data center", "data_center/@id"),
    ("id", "@id"),
]


@click.group()
def domain() -> None:
    """Storage domains: add or import, attach, maintenance, detach, remove, update their OVF stores."""


def _domain(api: ApiClient, name: str) -> tuple[str, str | None]:
    """The domain's id and its data center's id (None when unattached)."""
    found = api.find("storagedomains", name, "storage_domain")
    dc = found.find("data_center")
    return str(found.get("id")), None if dc is None else dc.get("id")


def _attached(api: ApiClient, name: str) -> str:
    sd, dc = _domain(api, name)
    if dc is None:
        raise click.ClickException(f"storage domain {name} is not attached to a data center")
    return f"/datacenters/{dc}/storagedomains/{sd}"


@domain.command("list")
@click.option("--search", default=None, help="An oVirt search expression, e.g. 'datacenter=Default'.")
@with_api
def list_domains(search: str | None, api: ApiClient) -> None:
    """List the storage domains."""
    table(api.get("/storagedomains", search=search).findall("storage_domain"), COLUMNS)


def _add(api: ApiClient, name: str | None, path: str, host: str | None, storage_type: str, import_: bool) -> None:
    host_xml = f"<host><name>{x(host)}</name></host>" if host else ""
    name_xml = f"<name>{x(name)}</name>" if name else ""
    body = (
        f"<storage_domain>{name_xml}<type>data</type>{host_xml}<import>{str(import_).lower()}</import>"
        f"<storage><type>{x(storage_type)}</type><path>{x(path)}</path></storage></storage_domain>"
    )
    made = api.post("/storagedomains", body)
    assert made is not None
    click.echo(f"{made.findtext('name')}: {made.findtext('status')} ({made.get('id')})")


@domain.command("add")
@click.argument("name")
@click.argument("path")
@click.option("--host", default=None, help="The host whose agent creates it (default: any up host).")
@click.option("--type", "storage_type", default="localfs", show_default=True, type=click.Choice(["localfs", "posixfs"]))
@with_api
def add(name: str, path: str, host: str | None, storage_type: str, api: ApiClient) -> None:
    """Create a new domain under PATH (or import the one PATH already holds, as oVirt does)."""
    _add(api, name, path, host, storage_type, False)


@domain.command("import")
@click.argument("path")
@click.option("--name", default=None, help="Name in this engine (default: the domain's own description).")
@click.option("--host", default=None, help="The host whose agent reads it (default: any up host).")
@click.option("--type", "storage_type", default="localfs", show_default=True)
@with_api
def import_(path: str, name: str | None, host: str | None, storage_type: str, api: ApiClient) -> None:
    """Import the existing domain at PATH (unattached; attach it to read its OVF stores)."""
    _add(api, name, path, host, storage_type, True)


@domain.command()
@click.argument("name")
@click.option("--datacenter", default="Default", show_default=True)
@with_api
def attach(name: str, datacenter: str, api: ApiClient) -> None:
    """Attach a domain to a data center (an imported one's OVF stores are read then)."""
    dc = api.find_id("datacenters", datacenter, "data_center")
    sd, _ = _domain(api, name)
    api.post(f"/datacenters/{dc}/storagedomains", f'<storage_domain id="{sd}"/>')
    click.echo(f"{name}: attached to {datacenter}")


@domain.command()
@click.argument("name")
@with_api
def activate(name: str, api: ApiClient) -> None:
    """Activate a domain in maintenance."""
    api.post(_attached(api, name) + "/activate")
    click.echo(f"{name}: active")


@domain.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Go on even if the OVF stores cannot be written first.")
@with_api
def deactivate(name: str, force: bool, api: ApiClient) -> None:
    """Put a domain into maintenance (its OVF stores are written first)."""
    api.post(_attached(api, name) + "/deactivate", f"<action><force>{str(force).lower()}</force></action>")
    click.echo(f"{name}: maintenance")


@domain.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Go on even if the OVF stores cannot be written first.")
@with_api
def detach(name: str, force: bool, api: ApiClient) -> None:
    """Detach a domain in maintenance; its VMs and templates leave with it."""
    api.delete(_attached(api, name), force=force)
    click.echo(f"{name}: detached")


@domain.command()
@click.argument("name")
@with_api
def remove(name: str, api: ApiClient) -> None:
    """Forget a detached domain (its data stays on storage)."""
    sd, _ = _domain(api, name)
    api.delete(f"/storagedomains/{sd}")
    click.echo(f"{name}: removed")


@domain.command("update-ovf")
@click.argument("names", nargs=-1, required=True)
@with_api
def update_ovf(names: tuple[str, ...], api: ApiClient) -> None:
    """Write the domains' OVF stores now."""
    for name in names:
        sd, _ = _domain(api, name)
        api.post(f"/storagedomains/{sd}/updateovfstore")
        click.echo(f"{name}: OVF stores written")


@domain.command()
@click.argument("name")
@with_api
def disks(name: str, api: ApiClient) -> None:
    """The domain's disks, OVF stores included."""
    sd, _ = _domain(api, name)
    columns = [("alias", "alias"), ("content", "content_type"), ("size", "provisioned_size"), ("id", "@id")]
    table(api.get(f"/storagedomains/{sd}/disks").findall("disk"), columns)

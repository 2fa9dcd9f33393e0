"""`ovfstore ovf`: read and show OVF documents, as recovery would understand them."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click

from ovfstore.model import GIB, Disk, DiskStorageType, OvfData, Vm


@click.group()
def ovf() -> None:
    """Read and show OVF documents."""


@ovf.command("show")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a summary.")
def show(file: str, as_json: bool) -> None:
    """Show what the reader understood of the OVF document FILE (- for standard input)."""
    from ovfstore.ovf import MAX_DOCUMENT_BYTES, OvfError, read_ovf

    try:
        with click.open_file(file, "rb") as stream:
            # One byte over the limit is enough for the reader to refuse it, without reading a huge file.
            document = stream.read(MAX_DOCUMENT_BYTES + 1)
        result = read_ovf(document)
    except (OSError, OvfError) as e:
        click.echo(f"error: {file}: {_one_line(e)}", err=True)
        sys.exit(1)
    summary = summarise(result.data, result.warnings)
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        _print(summary)


def _one_line(error: Exception) -> str:
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return " ".join(text.split())


def summarise(data: OvfData, warnings: list[str]) -> dict[str, Any]:
    """The JSON shape of `ovf show --json`."""
    e = data.entity
    return {
        "id": str(e.id),
        "name": e.name,
        "type": data.entity_type.value,
        "template_id": str(e.template_id) if isinstance(e, Vm) else str(e.base_id),
        "template_name": data.template_name,
        "generation": e.db_generation,
        "cluster_name": data.cluster_name,
        "os": e.os_type,
        "memory_mb": e.memory_mb,
        "cpu": {"sockets": e.cpu_sockets, "cores": e.cpu_cores, "threads": e.cpu_threads},
        "disks": [
            {
                "disk_id": str(d.disk.id),
                "volume_id": str(d.disk.leaf.id) if d.disk.leaf else None,
                "domain_id": str(d.disk.domain_ids[0]) if d.disk.domain_ids else None,
                "alias": d.disk.alias,
                "interface": d.attachment.interface.value,
                "boot": d.attachment.bootable,
                "format": d.disk.leaf.format.value if d.disk.leaf else d.disk.storage_type.value,
                "size_gib": round(d.disk.provisioned_size / GIB, 3),
                "volumes": len(d.disk.volumes),
                "volume_ids": [str(v.id) for v in d.disk.chain() or d.disk.volumes],
                "lun": _lun(d.disk) if d.disk.storage_type is DiskStorageType.LUN else None,
            }
            for d in data.disks
        ],
        "nics": [
            {"name": n.nic.name, "mac": n.nic.mac, "network": n.network_name, "profile": n.profile_name}
            for n in data.nics
        ],
        "warnings": warnings,
    }


def _lun(disk: Disk) -> dict[str, Any]:
    return {
        "lun_id": disk.lun_id, "vendor": disk.lun_vendor, "product": disk.lun_product, "serial": disk.lun_serial,
        "size": disk.provisioned_size,
        "connections": [dataclasses.asdict(c) for c in disk.lun_connections],
    }  # fmt: skip


def _print(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    cpu = summary["cpu"]
    console.print(f"[bold]{summary['type']} {summary['name']}[/bold]  {summary['id']}")
    console.print(
        f"  cluster {summary['cluster_name'] or '-'}, os {summary['os']}, {summary['memory_mb']} MB, "
        f"{cpu['sockets']}x{cpu['cores']}x{cpu['threads']} CPU, template {summary['template_id']}"
    )
    if summary["disks"]:
        disks = Table("disk", "volume (leaf)", "domain", "alias", "interface", "boot", "format", "GiB")
        for d in summary["disks"]:
            disks.add_row(
                d["disk_id"],
                d["volume_id"] or "-",
                d["domain_id"] or "-",
                d["alias"],
                d["interface"],
                "yes" if d["boot"] else "",
                d["format"],
                f"{d['size_gib']:g}",
            )
        console.print(disks)
    for d in summary["disks"]:
        lun = d["lun"]
        if lun is not None:
            console.print(
                f"  direct LUN {d['disk_id']}: LUN {lun['lun_id'] or '-'}, vendor {lun['vendor'] or '-'}, "
                f"product {lun['product'] or '-'}, serial {lun['serial'] or '-'}, {lun['size']} bytes"
            )
            for c in lun["connections"]:
                console.print(
                    f"    path {c['storage_type']} {c['address']}:{c['port']} {c['target']} portal {c['portal']}"
                )
    if summary["nics"]:
        nics = Table("nic", "mac", "network", "profile")
        for n in summary["nics"]:
            nics.add_row(n["name"], n["mac"] or "-", n["network"] or "-", n["profile"] or "-")
        console.print(nics)
    for warning in summary["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")

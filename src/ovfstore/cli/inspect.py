"""`ovfstore inspect`: read a storage domain offline, with no engine, no database and no LVM tools: a file
domain's directory, or a block domain's devices (or image files copied from them)."""

from __future__ import annotations

import json
import logging
import os
import sys

import click

from ovfstore.offline import DomainReport, InspectError, inspect_devices, inspect_domain


@click.command()
@click.argument("domain", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a report.")
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False),
    help="Write each OVF of the chosen store (or the legacy ones) into this directory as <id>.ovf.",
)
def inspect(domain: tuple[str, ...], as_json: bool, export_dir: str | None) -> None:
    """Read a storage domain offline: DOMAIN is the <sdUUID> directory of a file domain, or the block
    devices of a block domain's volume group (or image files copied from them with dd), all of them,
    read with no LVM tools and nothing activated. Shows its metadata, every OVF store (valid or not, and
    why), and the VMs and templates of the newest good store, with which of their disks are on the
    domain. Exits 1 when DOMAIN is not a domain or nothing in it can be read."""
    # Every problem is in the report; the storage layer's log lines would only repeat them.
    logging.getLogger("ovfstore").addHandler(logging.NullHandler())
    try:
        report = _inspect(domain, export_dir)
    except (InspectError, OSError) as e:
        click.echo(f"error: {_one_line(e)}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        _print(report)
    for warning in report.warnings:
        click.echo(f"warning: {_one_line(warning)}", err=True)
    for error in report.errors:
        click.echo(f"error: {_one_line(error)}", err=True)
    if report.source == "none":
        sys.exit(1)


def _inspect(paths: tuple[str, ...], export_dir: str | None) -> DomainReport:
    """A directory: a file domain; devices or image files: the PVs of a block domain."""
    for path in paths:
        if not os.path.lexists(path):
            raise InspectError(
                f"{path}: no such file, directory or device; give the <sdUUID> directory of a file storage "
                "domain, or the devices (or images) of a block storage domain"
            )
    directories = [path for path in paths if os.path.isdir(path)]
    if directories and len(paths) > 1:
        raise InspectError(
            f"{directories[0]} is a directory: give one <sdUUID> directory of a file storage domain, or only "
            "the devices (or images) of a block storage domain"
        )
    if directories:
        return inspect_domain(paths[0], export_dir)
    return inspect_devices(paths, export_dir)


def _one_line(problem: Exception | str) -> str:
    text = problem.strerror if isinstance(problem, OSError) and problem.strerror else str(problem)
    if isinstance(problem, OSError) and problem.filename:
        text = f"{problem.filename}: {text}"
    return " ".join(text.split())


def _print(report: DomainReport) -> None:
    meta = report.metadata
    attached = f"attached to data center {meta.pool_id}" if meta.pool_id else "detached"
    click.echo(f"domain {meta.sd_id}: {meta.domain_class}, {meta.role}, {attached}, format {meta.version}")
    click.echo(f"  {report.path}")
    click.echo(f"stores ({len(report.stores)}):")
    for store in report.stores:
        mark = "chosen" if store.chosen else "good" if store.valid else "unusable"
        when = store.description.last_updated_text or "never"
        detail = f"written {when}, {store.description.size} bytes"
        if store.valid:
            detail += ", verified by its manifest" if store.verified else ", unverified (no manifest: oVirt's)"
            if store.generation is not None:
                detail += f", generation {store.generation}"
            if store.segments and store.segments > 1:
                detail += f", in {store.segments} segments"
        else:
            detail = str(store.error)
        click.echo(f"  [{mark}] {store.volume.disk_id}/{store.volume.volume_id}: {detail}")
    chosen = report.chosen
    if chosen is not None:
        click.echo(f"entities of store {chosen.volume.disk_id} ({len(report.entities)}):")
    elif report.source == "legacy":
        click.echo(f"entities of the legacy master/vms OVFs ({len(report.entities)}):")
    for entity in report.entities:
        kind = entity.type.value if entity.type else "?"
        name = entity.name if entity.name is not None else "(unreadable)"
        extra = ", unregistered" if entity.unregistered else ""
        click.echo(f"  {kind} {name} {entity.id} ({entity.status or 'status unknown'}{extra})")
        for disk in entity.disks:
            where = "present" if disk.present else "NOT on this domain"
            click.echo(f"      disk {disk.disk_id}: {len(disk.volume_ids)} volume(s), {where}")
        for lun in entity.luns:
            paths = "; ".join(f"{c.storage_type} {c.address}:{c.port} {c.target}" for c in lun.connections)
            click.echo(
                f"      direct LUN disk {lun.disk_id}: LUN {lun.lun_id or '(no id)'}, {lun.size} bytes, "
                f"{lun.vendor or '-'} {lun.product or '-'} serial {lun.serial or '-'}, "
                f"paths: {paths or 'none recorded'}"
            )
        for error in entity.errors:
            click.echo(f"      error: {_one_line(error)}")

"""Commands on the attachments of disks to VMs and templates. Attaching, detaching and an attachment's
own settings are in the entity's OVF and bump that entity only."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import delete, insert, select, update

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import from_row, values
from ovfstore.engine.errors import Conflict, NotFound
from ovfstore.engine.inventory import disks, lookups
from ovfstore.engine.inventory.base import Service, Tx, exists
from ovfstore.engine.inventory.changes import UNSET, ChangeSet, Unset, apply
from ovfstore.model import Disk, DiskAttachment, DiskContentType, DiskInterface

da = s.disk_attachments


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentChanges(ChangeSet):
    interface: DiskInterface | Unset = UNSET
    bootable: bool | Unset = UNSET
    read_only: bool | Unset = UNSET
    active: bool | Unset = UNSET
    pass_discard: bool | Unset = UNSET


class AttachmentService(Service):
    def attach(self, attachment: DiskAttachment) -> DiskAttachment:
        with self._tx() as tx:
            lookups.entity_type(tx.conn, attachment.entity_id)
            disk = disks.load(tx, attachment.disk_id)
            if disk.content_type is DiskContentType.OVF_STORE:
                raise Conflict(f"disk {disk.alias!r} is an OVF store; it cannot be attached to a VM")
            owners = lookups.entities_with_disk(tx.conn, disk.id)
            if attachment.entity_id in owners:
                raise Conflict(f"disk {disk.alias!r} is already attached to {attachment.entity_id}")
            if owners and not disk.shareable:
                raise Conflict(f"disk {disk.alias!r} is attached elsewhere and is not shareable")
            _check_same_data_center(tx, attachment.entity_id, disk)
            if attachment.bootable:
                _check_single_boot_disk(tx, attachment.entity_id, disk.id)
            tx.conn.execute(insert(da).values(values(attachment, da)))
            tx.bump([attachment.entity_id])
        return attachment

    def update(self, entity_id: UUID, disk_id: UUID, changes: AttachmentChanges) -> DiskAttachment:
        with self._tx() as tx:
            old = _load(tx, entity_id, disk_id)
            new, effective = apply(old, changes, "disk attachment")
            if effective.get("bootable"):
                _check_single_boot_disk(tx, entity_id, disk_id)
            if effective:
                tx.conn.execute(
                    update(da).where(da.c.entity_id == entity_id, da.c.disk_id == disk_id).values(**effective)
                )
                tx.bump([entity_id])
        return new

    def detach(self, entity_id: UUID, disk_id: UUID) -> None:
        with self._tx() as tx:
            _load(tx, entity_id, disk_id)
            tx.conn.execute(delete(da).where(da.c.entity_id == entity_id, da.c.disk_id == disk_id))
            tx.bump([entity_id])

    def disks_by_entity(self) -> dict[UUID, list[UUID]]:
        """Every VM's and template's attached disk ids (searches by a VM's domains, a disk's VM count)."""
        found: dict[UUID, list[UUID]] = {}
        with self.db.read() as conn:
            for entity_id, disk_id in conn.execute(select(da.c.entity_id, da.c.disk_id)):
                found.setdefault(entity_id, []).append(disk_id)
        return found

    def list(self, entity_id: UUID) -> list[DiskAttachment]:
        with self.db.read() as conn:
            rows = conn.execute(select(da).where(da.c.entity_id == entity_id).order_by(da.c.disk_id))
            return [from_row(DiskAttachment, r) for r in rows.mappings()]


def _load(tx: Tx, entity_id: UUID, disk_id: UUID) -> DiskAttachment:
    row = tx.conn.execute(select(da).where(da.c.entity_id == entity_id, da.c.disk_id == disk_id)).mappings().first()
    if row is None:
        raise NotFound("disk attachment", f"{entity_id}/{disk_id}")
    return from_row(DiskAttachment, row)


def _check_same_data_center(tx: Tx, entity_id: UUID, disk: Disk) -> None:
    if not disk.domain_ids:
        return
    entity_dc = lookups.entity_data_center(tx.conn, entity_id)
    disk_dc = disks.domains_data_center(tx, disk.domain_ids, disk.alias)
    if entity_dc is not None and disk_dc != entity_dc:
        raise Conflict(
            f"disk {disk.alias!r} is on a storage domain of data center {disk_dc}, but the VM "
            f"is in data center {entity_dc}; copy or move the disk to a domain of the VM's "
            "data center first"
        )


def _check_single_boot_disk(tx: Tx, entity_id: UUID, disk_id: UUID) -> None:
    where = (da.c.entity_id == entity_id, da.c.bootable.is_(True), da.c.disk_id != disk_id)
    if exists(tx.conn, da, *where):
        raise Conflict(f"{entity_id} already has a bootable disk; a VM boots from one disk only")

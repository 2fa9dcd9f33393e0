"""Commands on disks and their volume chains.

Every change to a disk that its owners' OVFs describe (alias, description, size, sharing, status,
volumes, the domains holding it) bumps every VM and template the disk is attached to. A floating disk
bumps nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, delete, insert, select, update

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import from_row, values
from ovfstore.engine.errors import Conflict, InvalidInput, NotFound
from ovfstore.engine.inventory import lookups
from ovfstore.engine.inventory.base import Service, Tx, check_name, one, update_row
from ovfstore.engine.inventory.changes import UNSET, ChangeSet, Unset, apply
from ovfstore.engine.inventory.fields import check_text
from ovfstore.model import (
    Disk,
    DiskContentType,
    DiskStatus,
    DiskStorageType,
    DomainClass,
    StorageDomain,
    Volume,
    VolumeFormat,
    VolumeLegality,
    VolumeType,
)
from ovfstore.store.description import OVF_STORE


@dataclass(frozen=True, slots=True, kw_only=True)
class DiskChanges(ChangeSet):
    alias: str | Unset = UNSET
    description: str | Unset = UNSET
    provisioned_size: int | Unset = UNSET
    shareable: bool | Unset = UNSET
    wipe_after_delete: bool | Unset = UNSET
    status: DiskStatus | Unset = UNSET


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeChanges(ChangeSet):
    actual_size: int | Unset = UNSET
    legality: VolumeLegality | Unset = UNSET
    format: VolumeFormat | Unset = UNSET
    volume_type: VolumeType | Unset = UNSET


class DiskService(Service):
    def add(self, disk: Disk) -> Disk:
        """Add a floating disk. An image disk without volumes gets one raw sparse volume of its size."""
        check_new(disk)
        with self._tx() as tx:
            if disk.domain_ids:
                domains_data_center(tx, disk.domain_ids, disk.alias)
            _insert(tx, disk)
        return disk

    def update(self, disk_id: UUID, changes: DiskChanges) -> Disk:
        """Change a disk. Its size can only grow (the leaf volume grows with it); locking or unlocking
        it (`status`) is a change too, since the updater skips entities with a locked disk."""
        with self._tx() as tx:
            old = load(tx, disk_id)
            new, effective = apply(old, changes, "disk")
            if "alias" in effective:
                check_name(new.alias, "disk")
            if "provisioned_size" in effective:
                _grow(tx, old, new.provisioned_size)
            if effective.get("shareable") is False and len(lookups.entities_with_disk(tx.conn, disk_id)) > 1:
                raise Conflict(f"disk {old.alias!r} is attached to several VMs; it must stay shareable")
            update_row(tx.conn, s.disks, disk_id, effective)
            if effective:
                tx.bump(lookups.entities_with_disk(tx.conn, disk_id))
        return new

    def move(self, disk_id: UUID, source_domain_id: UUID, target_domain_id: UUID) -> Disk:
        """The disk's volumes now live on `target` instead of `source` (a completed move)."""
        with self._tx() as tx:
            disk = load(tx, disk_id)
            if source_domain_id not in disk.domain_ids:
                raise Conflict(f"disk {disk.alias!r} is not on storage domain {source_domain_id}")
            if target_domain_id in disk.domain_ids:
                raise Conflict(f"disk {disk.alias!r} is already on storage domain {target_domain_id}")
            domains = [d for d in disk.domain_ids if d != source_domain_id] + [target_domain_id]
            domains_data_center(tx, [*domains, source_domain_id], disk.alias)
            dd = s.disk_domains
            tx.conn.execute(delete(dd).where(dd.c.disk_id == disk_id, dd.c.domain_id == source_domain_id))
            tx.conn.execute(insert(dd).values(disk_id=disk_id, domain_id=target_domain_id))
            tx.bump(lookups.entities_with_disk(tx.conn, disk_id))
            disk.domain_ids = domains
        return disk

    def copy(self, disk_id: UUID, target_domain_id: UUID) -> Disk:
        """The disk now has a copy on `target` too (template disks are copied to several domains)."""
        with self._tx() as tx:
            disk = load(tx, disk_id)
            if target_domain_id in disk.domain_ids:
                raise Conflict(f"disk {disk.alias!r} is already on storage domain {target_domain_id}")
            domains_data_center(tx, [*disk.domain_ids, target_domain_id], disk.alias)
            tx.conn.execute(insert(s.disk_domains).values(disk_id=disk_id, domain_id=target_domain_id))
            tx.bump(lookups.entities_with_disk(tx.conn, disk_id))
            disk.domain_ids.append(target_domain_id)
        return disk

    def remove(self, disk_id: UUID) -> None:
        with self._tx() as tx:
            load(tx, disk_id)
            tx.bump(lookups.entities_with_disk(tx.conn, disk_id))
            tx.conn.execute(delete(s.disks).where(s.disks.c.id == disk_id))

    def forget_domain(self, domain_id: UUID) -> None:
        """Drop the disks a detached domain holds: disks only there go; copies elsewhere (template disks)
        lose this domain. Its OVF store disks stay: they belong to the domain and come back with it."""
        dd, st = s.disk_domains, s.ovf_stores
        with self._tx() as tx:
            here = lookups.ids(
                tx.conn,
                select(dd.c.disk_id).where(dd.c.domain_id == domain_id, dd.c.disk_id.not_in(select(st.c.disk_id))),
            )
            elsewhere = lookups.ids(
                tx.conn, select(dd.c.disk_id).where(dd.c.disk_id.in_(here), dd.c.domain_id != domain_id)
            )
            for disk_id in sorted(here):
                tx.bump(lookups.entities_with_disk(tx.conn, disk_id))
            if elsewhere:
                tx.conn.execute(delete(dd).where(dd.c.domain_id == domain_id, dd.c.disk_id.in_(elsewhere)))
            if here - elsewhere:
                tx.conn.execute(delete(s.disks).where(s.disks.c.id.in_(here - elsewhere)))

    def get(self, disk_id: UUID) -> Disk:
        with self.db.read() as conn:
            return load_disks(conn, [disk_id])[0]

    def list(self, domain_id: UUID | None = None, *, include_ovf_stores: bool = False) -> list[Disk]:
        query = select(s.disks.c.id)
        if domain_id is not None:
            dd = s.disk_domains
            query = query.join(dd, dd.c.disk_id == s.disks.c.id).where(dd.c.domain_id == domain_id)
        if not include_ovf_stores:
            query = query.where(s.disks.c.content_type != DiskContentType.OVF_STORE.value)
        with self.db.read() as conn:
            return load_disks(conn, [r[0] for r in conn.execute(query.order_by(s.disks.c.alias))])

    # --- volumes -----------------------------------------------------------------------------------

    def add_volume(self, volume: Volume) -> Volume:
        """Add a layer on top of the disk's chain (what a snapshot does): its parent must be the leaf."""
        with self._tx() as tx:
            disk = load(tx, volume.disk_id)
            if disk.storage_type is DiskStorageType.LUN:
                raise Conflict(f"direct LUN disk {disk.alias!r} has no volumes")
            leaf = disk.leaf
            if volume.parent_id is None and leaf is not None:
                volume.parent_id = leaf.id
            if leaf is None or volume.parent_id != leaf.id:
                raise Conflict(f"a new volume of disk {disk.alias!r} must sit on its leaf volume")
            if volume.capacity < leaf.capacity:
                raise InvalidInput(f"a volume cannot be smaller ({volume.capacity}) than its parent")
            tx.conn.execute(insert(s.volumes).values(values(volume, s.volumes)))
            tx.bump(lookups.entities_with_disk(tx.conn, disk.id))
        return volume

    def update_volume(self, volume_id: UUID, changes: VolumeChanges) -> Volume:
        with self._tx() as tx:
            old = one(tx.conn, s.volumes, Volume, volume_id, "volume")
            new, effective = apply(old, changes, "volume")
            update_row(tx.conn, s.volumes, volume_id, effective)
            if effective:
                tx.bump(lookups.entities_with_disk(tx.conn, old.disk_id))
        return new

    def remove_volume(self, volume_id: UUID) -> None:
        """Merge a volume away: its child, if any, takes its parent. The base of a one-volume chain
        cannot go; remove the disk instead."""
        with self._tx() as tx:
            volume = one(tx.conn, s.volumes, Volume, volume_id, "volume")
            v = s.volumes
            count = len(lookups.ids(tx.conn, select(v.c.id).where(v.c.disk_id == volume.disk_id)))
            if count == 1:
                raise Conflict(f"volume {volume_id} is the only volume of its disk; remove the disk instead")
            tx.conn.execute(update(v).where(v.c.parent_id == volume_id).values(parent_id=volume.parent_id))
            tx.conn.execute(delete(v).where(v.c.id == volume_id))
            tx.bump(lookups.entities_with_disk(tx.conn, volume.disk_id))

    def add_store_disk(
        self,
        domain_id: UUID,
        disk_id: UUID,
        volume_id: UUID,
        capacity: int,
        created: datetime,
        volume_type: VolumeType = VolumeType.SPARSE,
    ) -> Disk:
        """Record an OVF store volume of a domain as a disk: one raw volume (sparse on file domains,
        preallocated on block ones), on that domain only.
        No VM or template holds it and it may be on a domain being attached, so nothing is checked or
        bumped. The store's own state (`ovf_stores`) is the updater's to record, in the same transaction
        when the caller opened one (`transaction()`)."""
        volume = Volume(
            id=volume_id, disk_id=disk_id, capacity=capacity, volume_type=volume_type, creation_date=created
        )
        disk = Disk(
            id=disk_id, alias=OVF_STORE, description=OVF_STORE, provisioned_size=capacity,
            content_type=DiskContentType.OVF_STORE, domain_ids=[domain_id], volumes=[volume], creation_date=created,
        )  # fmt: skip
        with self._tx() as tx:
            _insert(tx, disk)
        return disk

    def resize_store_disk(self, disk_id: UUID, capacity: int) -> None:
        """An OVF store volume was resized on storage (the updater grows and shrinks stores with their
        domain): its disk's size and its volume's capacity follow. No VM or template holds it, so
        nothing is bumped, and a store may shrink where a disk only grows."""
        with self._tx() as tx:
            tx.conn.execute(update(s.disks).where(s.disks.c.id == disk_id).values(provisioned_size=capacity))
            tx.conn.execute(update(s.volumes).where(s.volumes.c.disk_id == disk_id).values(capacity=capacity))


def load(tx: Tx, disk_id: UUID) -> Disk:
    return load_disks(tx.conn, [disk_id])[0]


def load_disks(conn: Connection, disk_ids: list[UUID]) -> list[Disk]:
    """The disks with their domains and their volumes in chain order, in the order asked."""
    if not disk_ids:
        return []
    found = {
        row["id"]: from_row(Disk, row)
        for row in conn.execute(select(s.disks).where(s.disks.c.id.in_(disk_ids))).mappings()
    }
    for disk_id in disk_ids:
        if disk_id not in found:
            raise NotFound("disk", disk_id)
    dd, v = s.disk_domains, s.volumes
    for row in conn.execute(select(dd).where(dd.c.disk_id.in_(disk_ids)).order_by(dd.c.domain_id)):
        found[row.disk_id].domain_ids.append(row.domain_id)
    for volume in conn.execute(select(v).where(v.c.disk_id.in_(disk_ids))).mappings():
        found[volume["disk_id"]].volumes.append(from_row(Volume, volume))
    for disk in found.values():
        disk.volumes = disk.chain() or disk.volumes
    return [found[d] for d in disk_ids]


def domains_data_center(tx: Tx, domain_ids: list[UUID], alias: str) -> UUID:
    """The one data center all `domain_ids` belong to; they must be data domains attached to it."""
    dcs = lookups.domain_data_centers(tx.conn, domain_ids)
    for domain_id in domain_ids:
        domain = one(tx.conn, s.storage_domains, StorageDomain, domain_id, "storage domain")
        if domain.domain_class is not DomainClass.DATA:
            raise Conflict(f"storage domain {domain.name!r} is not a data domain; disks live on data domains")
        if dcs[domain_id] is None:
            raise Conflict(f"storage domain {domain.name!r} is not attached to a data center; attach it first")
    distinct = set(dcs.values())
    if len(distinct) != 1:
        raise Conflict(f"disk {alias!r} would span storage domains of different data centers")
    (dc,) = distinct
    assert dc is not None
    return dc


def _insert(tx: Tx, disk: Disk) -> None:
    """Write a disk with its domains and volumes."""
    tx.conn.execute(insert(s.disks).values(values(disk, s.disks)))
    if disk.domain_ids:
        rows = [{"disk_id": disk.id, "domain_id": d} for d in disk.domain_ids]
        tx.conn.execute(insert(s.disk_domains), rows)
    if disk.volumes:
        tx.conn.execute(insert(s.volumes), [values(v, s.volumes) for v in disk.volumes])


def _grow(tx: Tx, old: Disk, size: int) -> None:
    if size < old.provisioned_size:
        raise InvalidInput(
            f"disk {old.alias!r} cannot shrink from {old.provisioned_size} to {size} bytes; only extending is supported"
        )
    leaf = old.leaf
    if leaf is not None:
        tx.conn.execute(update(s.volumes).where(s.volumes.c.id == leaf.id).values(capacity=size))
        leaf.capacity = size


def check_new(disk: Disk) -> None:
    """What a new disk must be, read from nothing (an image disk without volumes is given one)."""
    check_name(disk.alias, "disk")
    check_text(disk, "disk")
    if disk.provisioned_size <= 0:
        raise InvalidInput(f"disk {disk.alias!r}: provisioned_size must be a positive number of bytes")
    if disk.storage_type is DiskStorageType.LUN:
        if not disk.lun_id:
            raise InvalidInput(f"direct LUN disk {disk.alias!r} needs its lun_id")
        if disk.domain_ids or disk.volumes:
            raise InvalidInput(f"direct LUN disk {disk.alias!r} lives on no storage domain and has no volumes")
        return
    if not disk.domain_ids:
        raise InvalidInput(f"disk {disk.alias!r} needs the storage domain to create it on")
    if not disk.volumes:
        disk.volumes = [Volume(disk_id=disk.id, capacity=disk.provisioned_size)]
    _check_chain(disk)


def _check_chain(disk: Disk) -> None:
    for volume in disk.volumes:
        if volume.disk_id != disk.id:
            raise InvalidInput(f"volume {volume.id} belongs to disk {volume.disk_id}, not to {disk.id}")
        if volume.capacity <= 0:
            raise InvalidInput(f"volume {volume.id}: capacity must be a positive number of bytes")
    if len(disk.chain()) != len(disk.volumes):
        raise InvalidInput(
            f"the volumes of disk {disk.alias!r} do not form one chain: exactly one base volume "
            "(parent_id None) and each other volume on top of the one before"
        )

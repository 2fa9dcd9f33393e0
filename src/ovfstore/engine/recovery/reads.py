"""The reads a registration plan makes for each entity (is its id, its name, a disk of it already here;
where are its disks on storage; which of its MACs are in use), answered by the database (`DbReads`), or,
for a batch of `register_all` planned against the database as it was before the batch (nothing is
written while it is planned: engine/recovery/bulk.py), by a few reads for the whole batch
(`BatchReads`). A question about something the batch did not read is asked of the database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from ovfstore.engine import macs
from ovfstore.engine.db import schema as s
from ovfstore.engine.errors import InvalidInput
from ovfstore.engine.inventory import lookups
from ovfstore.engine.inventory.base import chunks, exists
from ovfstore.model import DomainStatus, EntityType, OvfData, Template, Vm

vm, c, ud, d = s.vm_static, s.clusters, s.unregistered_disks, s.storage_domains


@dataclass(frozen=True, slots=True)
class OnStorage:
    """An unregistered disk as the scan of one domain found it."""

    domain_id: UUID
    volume_ids: Sequence[UUID]
    volumes: Sequence[Any]


class DbReads:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def registered(self, entity_id: UUID) -> bool:
        return exists(self.conn, vm, vm.c.id == entity_id)

    def name_taken(self, entity: Vm | Template, data_center_id: UUID) -> bool:
        """Whether another VM (for a VM) or base template (for a base template) of the data center has
        the entity's name. A template version shares its base's name: never taken."""
        if isinstance(entity, Template) and entity.base_template_id not in (None, entity.id):
            return False
        query = (
            select(vm.c.id)
            .select_from(vm.join(c, vm.c.cluster_id == c.c.id))
            .where(vm.c.name == entity.name, c.c.data_center_id == data_center_id, vm.c.id != entity.id)
        )
        if isinstance(entity, Template):
            query = query.where(vm.c.entity_type == EntityType.TEMPLATE.value, vm.c.base_template_id.is_(None))
        else:
            query = query.where(vm.c.entity_type == EntityType.VM.value)
        return self.conn.execute(query.limit(1)).first() is not None

    def disk_exists(self, disk_id: UUID) -> bool:
        return exists(self.conn, s.disks, s.disks.c.id == disk_id)

    def on_storage(self, disk_id: UUID, data_center_id: UUID, domain_id: UUID) -> list[OnStorage]:
        """Where the scans found the disk on active domains of the data center, `domain_id` first."""
        rows = self.conn.execute(
            select(ud.c.domain_id, ud.c.volume_ids, ud.c.volumes)
            .select_from(ud.join(d, ud.c.domain_id == d.c.id))
            .where(
                ud.c.disk_id == disk_id, d.c.data_center_id == data_center_id, d.c.status == DomainStatus.ACTIVE.value
            )
            .order_by(ud.c.domain_id != domain_id, ud.c.domain_id)
        )
        return [OnStorage(r.domain_id, list(r.volume_ids), list(r.volumes or [])) for r in rows]

    def macs_in_use(self, data_center_id: UUID, among: Iterable[str]) -> set[str]:
        return lookups.macs_in_data_center(self.conn, data_center_id, among)


class BatchReads(DbReads):
    """The answers for a batch of entities, read for all of them at once (`read`)."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self.ids: set[UUID] = set()  # the batch's entity ids already registered
        self.asked_ids: set[UUID] = set()
        self.names: dict[str, list[tuple[UUID, EntityType, UUID | None, UUID]]] = {}  # id, type, base, DC
        self.asked_names: set[str] = set()
        self.disks: set[UUID] = set()
        self.asked_disks: set[UUID] = set()
        self.found: dict[UUID, list[tuple[OnStorage, UUID, DomainStatus]]] = {}  # with its domain's DC, status
        self.macs: dict[str, set[UUID]] = {}  # the data centers using each MAC
        self.asked_macs: set[str] = set()

    @classmethod
    def read(cls, conn: Connection, batch: Iterable[OvfData]) -> BatchReads:
        reads = cls(conn)
        datas = list(batch)
        reads.asked_ids = {data.entity.id for data in datas}
        reads.asked_disks = {ovf_disk.disk.id for data in datas for ovf_disk in data.disks}
        reads.asked_macs = {mac for data in datas for mac in _macs(data)}
        for ids in chunks(sorted(reads.asked_ids), 500):
            reads.ids.update(r[0] for r in conn.execute(select(vm.c.id).where(vm.c.id.in_(ids))))
        reads.asked_names = {data.entity.name for data in datas}
        for names in chunks(sorted(reads.asked_names), 500):
            query = (
                select(vm.c.id, vm.c.name, vm.c.entity_type, vm.c.base_template_id, c.c.data_center_id)
                .select_from(vm.join(c, vm.c.cluster_id == c.c.id))
                .where(vm.c.name.in_(names))
            )
            for r in conn.execute(query):
                reads.names.setdefault(r.name, []).append((r.id, r.entity_type, r.base_template_id, r.data_center_id))
        for ids in chunks(sorted(reads.asked_disks), 500):
            reads.disks.update(r[0] for r in conn.execute(select(s.disks.c.id).where(s.disks.c.id.in_(ids))))
            query = (
                select(ud.c.disk_id, ud.c.domain_id, ud.c.volume_ids, ud.c.volumes, d.c.data_center_id, d.c.status)
                .select_from(ud.join(d, ud.c.domain_id == d.c.id))
                .where(ud.c.disk_id.in_(ids))
            )
            for row in conn.execute(query):
                found = OnStorage(row.domain_id, list(row.volume_ids), list(row.volumes or []))
                reads.found.setdefault(row.disk_id, []).append((found, row.data_center_id, DomainStatus(row.status)))
        reads._read_macs()
        return reads

    def _read_macs(self) -> None:
        n = s.nics
        for among in chunks(sorted(self.asked_macs), 500):
            query = (
                select(n.c.mac, c.c.data_center_id)
                .select_from(n.join(vm, n.c.entity_id == vm.c.id).join(c, vm.c.cluster_id == c.c.id))
                .where(n.c.mac.in_(among))
            )
            for r in self.conn.execute(query):
                self.macs.setdefault(r.mac, set()).add(r.data_center_id)

    def registered(self, entity_id: UUID) -> bool:
        return entity_id in self.ids if entity_id in self.asked_ids else super().registered(entity_id)

    def name_taken(self, entity: Vm | Template, data_center_id: UUID) -> bool:
        if entity.name not in self.asked_names:
            return super().name_taken(entity, data_center_id)
        if isinstance(entity, Template) and entity.base_template_id not in (None, entity.id):
            return False
        wanted = EntityType.TEMPLATE if isinstance(entity, Template) else EntityType.VM
        return any(
            ident != entity.id
            and dc == data_center_id
            and EntityType(kind) is wanted
            and (wanted is EntityType.VM or base is None)
            for ident, kind, base, dc in self.names.get(entity.name, [])
        )

    def disk_exists(self, disk_id: UUID) -> bool:
        return disk_id in self.disks if disk_id in self.asked_disks else super().disk_exists(disk_id)

    def on_storage(self, disk_id: UUID, data_center_id: UUID, domain_id: UUID) -> list[OnStorage]:
        if disk_id not in self.asked_disks:
            return super().on_storage(disk_id, data_center_id, domain_id)
        rows = [
            found
            for found, dc, status in self.found.get(disk_id, [])
            if dc == data_center_id and status is DomainStatus.ACTIVE
        ]
        return sorted(rows, key=lambda r: (r.domain_id != domain_id, r.domain_id))

    def macs_in_use(self, data_center_id: UUID, among: Iterable[str]) -> set[str]:
        wanted = set(among)
        if not wanted <= self.asked_macs:
            return super().macs_in_use(data_center_id, wanted)
        return {mac for mac in wanted if data_center_id in self.macs.get(mac, ())}


def _macs(data: OvfData) -> list[str]:
    """The entity's NICs' MACs as recorded, normalized; those that are no valid MAC left out."""
    found = []
    for ovf_nic in data.nics:
        if ovf_nic.nic.mac is not None:
            try:
                found.append(macs.normalize(ovf_nic.nic.mac))
            except InvalidInput:
                continue
    return found

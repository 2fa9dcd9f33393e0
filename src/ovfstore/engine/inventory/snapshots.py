"""Commands on VM snapshots. A VM's OVF lists its snapshots, so every change bumps the VM. A snapshot
being taken is `locked`: the updater waits for it."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import delete, insert

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import values
from ovfstore.engine.errors import Conflict, InvalidInput
from ovfstore.engine.inventory import entities
from ovfstore.engine.inventory.base import Service, exists, one, update_row
from ovfstore.engine.inventory.changes import UNSET, ChangeSet, Unset, apply
from ovfstore.engine.inventory.fields import check_text
from ovfstore.model import Snapshot, SnapshotStatus, SnapshotType, Vm

sn = s.snapshots


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotChanges(ChangeSet):
    description: str | Unset = UNSET
    status: SnapshotStatus | Unset = UNSET
    memory: str | Unset = UNSET


class SnapshotService(Service):
    def add(self, snapshot: Snapshot) -> Snapshot:
        check_text(snapshot, "snapshot")
        with self._tx() as tx:
            if not isinstance(entities.load(tx, snapshot.vm_id), Vm):
                raise InvalidInput(f"{snapshot.vm_id} is a template; only VMs have snapshots")
            if snapshot.type is SnapshotType.ACTIVE and exists(
                tx.conn, sn, sn.c.vm_id == snapshot.vm_id, sn.c.type == SnapshotType.ACTIVE.value
            ):
                raise Conflict(f"VM {snapshot.vm_id} already has its active snapshot")
            tx.conn.execute(insert(sn).values(values(snapshot, sn)))
            tx.bump([snapshot.vm_id])
        return snapshot

    def update(self, snapshot_id: UUID, changes: SnapshotChanges) -> Snapshot:
        with self._tx() as tx:
            old = one(tx.conn, sn, Snapshot, snapshot_id, "snapshot")
            new, effective = apply(old, changes, "snapshot")
            update_row(tx.conn, sn, snapshot_id, effective)
            if effective:
                tx.bump([old.vm_id])
        return new

    def remove(self, snapshot_id: UUID) -> None:
        with self._tx() as tx:
            old = one(tx.conn, sn, Snapshot, snapshot_id, "snapshot")
            if old.type is SnapshotType.ACTIVE:
                raise Conflict("the active snapshot is the VM's current state; it cannot be removed")
            tx.conn.execute(delete(sn).where(sn.c.id == snapshot_id))
            tx.bump([old.vm_id])

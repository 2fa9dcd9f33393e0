"""Commands on VMs. A VM's own fields and its run status are in its OVF (the run status in the store's VM
status map), so every change to them bumps the VM."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import insert, select

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import entity_values
from ovfstore.engine.errors import Conflict, InvalidInput, NotFound
from ovfstore.engine.inventory import entities, lookups
from ovfstore.engine.inventory.base import Service, Tx
from ovfstore.engine.inventory.changes import UNSET, Unset, apply
from ovfstore.engine.inventory.entities import EntityChanges
from ovfstore.model import EntityType, Template, Vm, VmStatus

vm = s.vm_static


@dataclass(frozen=True, slots=True, kw_only=True)
class VmChanges(EntityChanges):
    template_id: UUID | Unset = UNSET
    use_latest_template_version: bool | Unset = UNSET
    status: VmStatus | Unset = UNSET
    initialized: bool | Unset = UNSET


class VmService(Service):
    def add(self, new: Vm) -> Vm:
        with self._tx() as tx:
            if new.cluster_id is None:
                raise InvalidInput(f"VM {new.name!r} needs a cluster")
            entities.check(tx, new)
            _check_template(tx, new.template_id)
            _check_name(tx, new)
            tx.conn.execute(insert(vm).values(entity_values(new)))
            tx.created.add(new.id)
        return new

    def update(self, vm_id: UUID, changes: VmChanges) -> Vm:
        with self._tx() as tx:
            old = _load(tx, vm_id)
            new, effective = apply(old, changes, "VM")
            if not effective:
                return new
            entities.check(tx, new, previous=old)
            if "template_id" in effective:
                _check_template(tx, new.template_id)
            if {"name", "cluster_id"} & effective.keys():
                _check_name(tx, new)
            entities.write(tx, new, effective)
        return new

    def set_status(self, vm_id: UUID, status: VmStatus) -> Vm:
        """Record a VM's run status: stores keep it so a recovery restarts the VMs that were up."""
        return self.update(vm_id, VmChanges(status=status))

    def remove(self, vm_id: UUID, *, remove_disks: bool = True) -> None:
        """Remove a VM and, unless told otherwise, the disks only it uses; shared disks stay."""
        with self._tx() as tx:
            old = _load(tx, vm_id)
            if old.delete_protected:
                raise Conflict(f"VM {old.name!r} is delete-protected; clear delete_protected first")
            if old.status not in (VmStatus.DOWN, VmStatus.IMAGE_ILLEGAL):
                raise Conflict(f"VM {old.name!r} is {old.status.api_name}; stop it before removing it")
            if remove_disks:
                entities.remove_own_disks(tx, vm_id)
            entities.delete_entity(tx, vm_id)

    def get(self, vm_id: UUID) -> Vm:
        with self.db.read() as conn:
            found = entities.find(conn, vm_id)
        if not isinstance(found, Vm):
            raise NotFound("VM", vm_id)
        return found

    def list(self, cluster_id: UUID | None = None) -> list[Vm]:
        with self.db.read() as conn:
            found = entities.list_of(conn, EntityType.VM, cluster_id)
        return [e for e in found if isinstance(e, Vm)]


def _load(tx: Tx, vm_id: UUID) -> Vm:
    found = entities.load(tx, vm_id)
    if not isinstance(found, Vm):
        raise NotFound("VM", vm_id)
    return found


def _check_template(tx: Tx, template_id: UUID) -> None:
    if not isinstance(entities.load(tx, template_id), Template):
        raise InvalidInput(f"{template_id} is a VM, not a template")


def _check_name(tx: Tx, entity: Vm) -> None:
    """VM names are unique per data center."""
    assert entity.cluster_id is not None
    dc = lookups.cluster_data_center(tx.conn, entity.cluster_id)
    c = s.clusters
    clash = tx.conn.execute(
        select(vm.c.id)
        .select_from(vm.join(c, vm.c.cluster_id == c.c.id))
        .where(
            vm.c.entity_type == EntityType.VM.value,
            vm.c.name == entity.name,
            c.c.data_center_id == dc,
            vm.c.id != entity.id,
        )
        .limit(1)
    ).first()
    if clash is not None:
        raise Conflict(f"VM name {entity.name!r} is already used in this data center; choose another")

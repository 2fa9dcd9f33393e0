"""What VMs and templates share: their common fields' changes and checks, loading either by id, and
leaving the inventory. `EntityService` holds the commands that take either kind."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import Connection, delete, select, update

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import entity_column, entity_from_row
from ovfstore.engine.errors import Conflict, InvalidInput, NotFound
from ovfstore.engine.inventory import lookups
from ovfstore.engine.inventory.base import Service, Tx, check_name, one
from ovfstore.engine.inventory.changes import UNSET, ChangeSet, Unset
from ovfstore.engine.inventory.fields import check_text
from ovfstore.model import (
    BiosType,
    BootSequence,
    Cluster,
    DisplayType,
    EntityType,
    GraphicsType,
    OriginType,
    StorageDomain,
    Template,
    UsbPolicy,
    Vm,
    VmBase,
    VmType,
)

vm = s.vm_static


@dataclass(frozen=True, slots=True, kw_only=True)
class EntityChanges(ChangeSet):
    """The fields VMs and templates share that a caller may change."""

    name: str | Unset = UNSET
    description: str | Unset = UNSET
    comment: str | Unset = UNSET
    cluster_id: UUID | Unset | None = UNSET
    os_type: str | Unset = UNSET
    vm_type: VmType | Unset = UNSET
    memory_mb: int | Unset = UNSET
    max_memory_mb: int | Unset = UNSET
    min_memory_mb: int | Unset = UNSET
    cpu_sockets: int | Unset = UNSET
    cpu_cores: int | Unset = UNSET
    cpu_threads: int | Unset = UNSET
    high_availability: bool | Unset = UNSET
    priority: int | Unset = UNSET
    stateless: bool | Unset = UNSET
    delete_protected: bool | Unset = UNSET
    display_type: DisplayType | Unset = UNSET
    graphics: list[GraphicsType] | Unset = UNSET
    bios_type: BiosType | Unset = UNSET
    boot_sequence: BootSequence | Unset = UNSET
    boot_menu_enabled: bool | Unset = UNSET
    time_zone: str | Unset = UNSET
    usb_policy: UsbPolicy | Unset = UNSET
    smartcard_enabled: bool | Unset = UNSET
    soundcard_enabled: bool | Unset = UNSET
    custom_emulated_machine: str | Unset = UNSET
    custom_cpu_name: str | Unset = UNSET
    lease_domain_id: UUID | Unset | None = UNSET
    origin: OriginType | Unset = UNSET


class EntityService(Service):
    """Commands on a VM or a template alike."""

    def generation(self, entity_id: UUID) -> int:
        """The entity's `db_generation`: how many OVF-changing commits it has seen."""
        with self.db.read() as conn:
            found = conn.execute(select(vm.c.db_generation).where(vm.c.id == entity_id)).scalar()
        if found is None:
            raise NotFound("VM or template", entity_id)
        return int(found)

    def forget(self, entity_id: UUID) -> None:
        """Drop a VM or template from the inventory whatever its state, with the disks only it uses: it
        leaves with a detached domain, whose stores still describe it."""
        with self._tx() as tx:
            load(tx, entity_id)
            remove_own_disks(tx, entity_id)
            delete_entity(tx, entity_id)


def find(conn: Connection, entity_id: UUID) -> Vm | Template | None:
    row = conn.execute(select(vm).where(vm.c.id == entity_id)).mappings().first()
    return None if row is None else entity_from_row(row)


def load(tx: Tx, entity_id: UUID) -> Vm | Template:
    found = find(tx.conn, entity_id)
    if found is None:
        raise NotFound("VM or template", entity_id)
    return found


def list_of(conn: Connection, entity_type: EntityType, cluster_id: UUID | None) -> list[Vm | Template]:
    query = select(vm).where(vm.c.entity_type == entity_type.value)
    if cluster_id is not None:
        query = query.where(vm.c.cluster_id == cluster_id)
    return [entity_from_row(r) for r in conn.execute(query.order_by(vm.c.name, vm.c.id)).mappings()]


def write(tx: Tx, entity: Vm | Template, effective: dict[str, object]) -> None:
    kind = EntityType.TEMPLATE if isinstance(entity, Template) else EntityType.VM
    columns = {entity_column(kind, name): value for name, value in effective.items()}
    tx.conn.execute(update(vm).where(vm.c.id == entity.id).values(**columns))
    tx.bump([entity.id])


def check(tx: Tx, entity: VmBase, previous: VmBase | None = None) -> None:
    """The rules both kinds follow: a name, sane memory and CPUs, an existing cluster (and, on a move,
    one of the same data center), an existing lease domain."""
    check_fields(entity)
    what = f"{'template' if isinstance(entity, Template) else 'VM'} {entity.name!r}"
    if entity.cluster_id is not None:
        one(tx.conn, s.clusters, Cluster, entity.cluster_id, "cluster")
        if previous is not None and previous.cluster_id not in (None, entity.cluster_id):
            old_dc = lookups.cluster_data_center(tx.conn, previous.cluster_id)
            if old_dc != lookups.cluster_data_center(tx.conn, entity.cluster_id):
                raise Conflict(f"{what} can only move to a cluster of the same data center")
    if entity.lease_domain_id is not None:
        one(tx.conn, s.storage_domains, StorageDomain, entity.lease_domain_id, "storage domain")


def check_fields(entity: VmBase) -> None:
    """The part of `check` that reads nothing: a name, sane memory, CPUs and priority."""
    what = f"{'template' if isinstance(entity, Template) else 'VM'} {entity.name!r}"
    check_name(entity.name, what)
    check_text(entity, what)
    if entity.memory_mb <= 0:
        raise InvalidInput(f"{what}: memory_mb must be positive")
    if not entity.min_memory_mb <= entity.memory_mb <= entity.max_memory_mb:
        raise InvalidInput(
            f"{what}: guaranteed memory ({entity.min_memory_mb} MiB) <= memory ({entity.memory_mb} MiB) "
            f"<= maximum memory ({entity.max_memory_mb} MiB) must hold"
        )
    for name in ("cpu_sockets", "cpu_cores", "cpu_threads"):
        if getattr(entity, name) < 1:
            raise InvalidInput(f"{what}: {name} must be at least 1")
    if not 0 <= entity.priority <= 100:
        raise InvalidInput(f"{what}: priority {entity.priority} is out of range 0..100")


def remove_own_disks(tx: Tx, entity_id: UUID) -> None:
    """Remove the disks attached to this entity only; shared disks stay with their other owners."""
    da = s.disk_attachments
    disk_ids = lookups.ids(tx.conn, select(da.c.disk_id).where(da.c.entity_id == entity_id))
    shared = lookups.ids(tx.conn, select(da.c.disk_id).where(da.c.disk_id.in_(disk_ids), da.c.entity_id != entity_id))
    own = disk_ids - shared
    if own:
        tx.conn.execute(delete(s.disks).where(s.disks.c.id.in_(own)))


def delete_entity(tx: Tx, entity_id: UUID) -> None:
    tx.conn.execute(delete(vm).where(vm.c.id == entity_id))
    # The cached OVF stays, marked deleted, until the updater has rewritten the domains storing it.
    tx.conn.execute(update(s.ovf_cache).where(s.ovf_cache.c.entity_id == entity_id).values(deleted=True))
    tx.deleted.add(entity_id)

"""Commands on VMs and templates, their NICs and their snapshots.

A VM's or template's own fields, NICs, snapshots and run status are all in its OVF (the run status in the
store's VM status map), so every change to them bumps the entity. Renaming a template bumps the VMs made
from it and its versions too, whose OVFs carry its name.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import delete, insert, select, update

from ovfstore.engine import macs
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import entity_column, entity_from_row, entity_values, from_row, values
from ovfstore.engine.errors import Conflict, InvalidInput, NotFound
from ovfstore.engine.inventory import lookups
from ovfstore.engine.inventory.base import CommandsBase, Tx, apply_changes, check_name, exists
from ovfstore.model import (
    BLANK_TEMPLATE_ID,
    Cluster,
    DataCenter,
    EntityType,
    Network,
    Nic,
    Snapshot,
    SnapshotType,
    StorageDomain,
    Template,
    Vm,
    VmBase,
    VmStatus,
    VnicProfile,
)

_BASE_CHANGEABLE = (
    "name", "description", "comment", "cluster_id", "os_type", "vm_type", "memory_mb", "max_memory_mb",
    "min_memory_mb", "cpu_sockets", "cpu_cores", "cpu_threads", "high_availability", "priority", "stateless",
    "delete_protected", "display_type", "graphics", "bios_type", "boot_sequence", "boot_menu_enabled",
    "time_zone", "usb_policy", "smartcard_enabled", "soundcard_enabled", "custom_emulated_machine",
    "custom_cpu_name", "lease_domain_id", "origin",
)  # fmt: skip
VM_CHANGEABLE = (*_BASE_CHANGEABLE, "template_id", "use_latest_template_version", "status", "initialized")
TEMPLATE_CHANGEABLE = (*_BASE_CHANGEABLE, "status", "version_name", "disabled", "sealed")
NIC_CHANGEABLE = ("name", "mac", "vnic_profile_id", "interface", "linked", "plugged")
SNAPSHOT_CHANGEABLE = ("description", "status", "memory")
vm = s.vm_static


class VmCommands(CommandsBase):
    # --- VMs ---------------------------------------------------------------------------------------

    def add_vm(self, new: Vm) -> Vm:
        with self._tx() as tx:
            if new.cluster_id is None:
                raise InvalidInput(f"VM {new.name!r} needs a cluster")
            self._check_base(tx, new)
            template = self._entity(tx, new.template_id)
            if not isinstance(template, Template):
                raise InvalidInput(f"{new.template_id} is a VM, not a template")
            self._check_vm_name(tx, new)
            tx.conn.execute(insert(vm).values(entity_values(new)))
            tx.created.add(new.id)
        return new

    def update_vm(self, vm_id: UUID, **changes: Any) -> Vm:
        with self._tx() as tx:
            old = self._entity(tx, vm_id)
            if not isinstance(old, Vm):
                raise NotFound("VM", vm_id)
            new, effective = apply_changes(old, changes, VM_CHANGEABLE, "VM")
            if not effective:
                return new
            self._check_base(tx, new, previous=old)
            if "template_id" in effective and not isinstance(self._entity(tx, new.template_id), Template):
                raise InvalidInput(f"{new.template_id} is a VM, not a template")
            if {"name", "cluster_id"} & effective.keys():
                self._check_vm_name(tx, new)
            self._write(tx, new, effective)
        return new

    def set_vm_status(self, vm_id: UUID, status: VmStatus | int) -> Vm:
        """Record a VM's run status: stores keep it so a recovery restarts the VMs that were up."""
        return self.update_vm(vm_id, status=status)

    def remove_vm(self, vm_id: UUID, *, remove_disks: bool = True) -> None:
        """Remove a VM and, unless told otherwise, the disks only it uses; shared disks stay."""
        with self._tx() as tx:
            old = self._entity(tx, vm_id)
            if not isinstance(old, Vm):
                raise NotFound("VM", vm_id)
            if old.delete_protected:
                raise Conflict(f"VM {old.name!r} is delete-protected; clear delete_protected first")
            if old.status not in (VmStatus.DOWN, VmStatus.IMAGE_ILLEGAL):
                raise Conflict(f"VM {old.name!r} is {old.status.api_name}; stop it before removing it")
            if remove_disks:
                self._remove_own_disks(tx, vm_id)
            self._delete_entity(tx, vm_id)

    def forget_entity(self, entity_id: UUID) -> None:
        """Drop a VM or template from the inventory whatever its state, with the disks only it uses: it
        leaves with a detached domain, whose stores still describe it."""
        with self._tx() as tx:
            self._entity(tx, entity_id)
            self._remove_own_disks(tx, entity_id)
            self._delete_entity(tx, entity_id)

    def get_vm(self, vm_id: UUID) -> Vm:
        with self.db.read() as conn:
            found = _load_entity(conn, vm_id)
        if not isinstance(found, Vm):
            raise NotFound("VM", vm_id)
        return found

    def list_vms(self, cluster_id: UUID | None = None) -> list[Vm]:
        return [e for e in self._list(EntityType.VM, cluster_id) if isinstance(e, Vm)]

    # --- templates ---------------------------------------------------------------------------------

    def add_template(self, new: Template) -> Template:
        """Add a template, or a version of one when `base_template_id` names an existing base template
        (the version then takes the base's name and the next version number)."""
        with self._tx() as tx:
            if new.cluster_id is None and new.id != BLANK_TEMPLATE_ID:
                raise InvalidInput(f"template {new.name!r} needs a cluster")
            if new.base_template_id is not None and new.base_template_id != new.id:
                base = self._entity(tx, new.base_template_id)
                if not isinstance(base, Template) or base.base_template_id not in (None, base.id):
                    raise InvalidInput(f"{new.base_template_id} is not a base template")
                new.name = base.name
                versions = tx.conn.execute(
                    select(vm.c.version_number).where((vm.c.base_template_id == base.id) | (vm.c.id == base.id))
                ).scalars()
                new.version_number = max(versions, default=1) + 1
            else:
                new.base_template_id = None
                self._check_template_name(tx, new)
            self._check_base(tx, new)
            tx.conn.execute(insert(vm).values(entity_values(new)))
            tx.created.add(new.id)
        return new

    def update_template(self, template_id: UUID, **changes: Any) -> Template:
        with self._tx() as tx:
            old = self._entity(tx, template_id)
            if not isinstance(old, Template):
                raise NotFound("template", template_id)
            new, effective = apply_changes(old, changes, TEMPLATE_CHANGEABLE, "template")
            if not effective:
                return new
            if "name" in effective:
                if old.base_template_id not in (None, old.id):
                    raise InvalidInput("a template version takes its base template's name; rename the base")
                self._check_template_name(tx, new)
                tx.bump(lookups.entities_using_template(tx.conn, template_id))
                tx.conn.execute(update(vm).where(vm.c.base_template_id == template_id).values(name=new.name))
            self._check_base(tx, new, previous=old)
            self._write(tx, new, effective)
        return new

    def remove_template(self, template_id: UUID) -> None:
        with self._tx() as tx:
            old = self._entity(tx, template_id)
            if not isinstance(old, Template):
                raise NotFound("template", template_id)
            if template_id == BLANK_TEMPLATE_ID:
                raise Conflict("the Blank template is where every VM starts; it cannot be removed")
            if old.delete_protected:
                raise Conflict(f"template {old.name!r} is delete-protected; clear delete_protected first")
            users = tx.conn.execute(select(vm.c.name).where(vm.c.template_id == template_id)).scalars().all()
            if users:
                raise Conflict(f"template {old.name!r} is used by VMs {sorted(users)}; remove them first")
            versions = tx.conn.execute(
                select(vm.c.id).where(vm.c.base_template_id == template_id, vm.c.id != template_id)
            ).all()
            if versions:
                raise Conflict(f"template {old.name!r} has versions; remove them first")
            self._remove_own_disks(tx, template_id)
            self._delete_entity(tx, template_id)

    def get_template(self, template_id: UUID) -> Template:
        with self.db.read() as conn:
            found = _load_entity(conn, template_id)
        if not isinstance(found, Template):
            raise NotFound("template", template_id)
        return found

    def list_templates(self, cluster_id: UUID | None = None) -> list[Template]:
        return [e for e in self._list(EntityType.TEMPLATE, cluster_id) if isinstance(e, Template)]

    def generation(self, entity_id: UUID) -> int:
        """The entity's `db_generation`: how many OVF-changing commits it has seen."""
        with self.db.read() as conn:
            found = conn.execute(select(vm.c.db_generation).where(vm.c.id == entity_id)).scalar()
        if found is None:
            raise NotFound("VM or template", entity_id)
        return int(found)

    # --- NICs --------------------------------------------------------------------------------------

    def add_nic(self, nic: Nic) -> Nic:
        """Add a NIC. A VM's NIC without a MAC gets the next free one of its data center's pool."""
        check_name(nic.name, "NIC")
        with self._tx() as tx:
            entity = self._entity(tx, nic.entity_id)
            n = s.nics
            if exists(tx.conn, n, n.c.entity_id == nic.entity_id, n.c.name == nic.name):
                raise Conflict(f"{entity.name!r} already has a NIC named {nic.name!r}")
            self._check_nic(tx, entity, nic, allocate=isinstance(entity, Vm))
            tx.conn.execute(insert(n).values(values(nic, n)))
            tx.bump([nic.entity_id])
        return nic

    def update_nic(self, nic_id: UUID, **changes: Any) -> Nic:
        with self._tx() as tx:
            old = self._one(tx.conn, s.nics, Nic, nic_id, "NIC")
            new, effective = apply_changes(old, changes, NIC_CHANGEABLE, "NIC")
            if not effective:
                return new
            entity = self._entity(tx, old.entity_id)
            if "name" in effective:
                check_name(new.name, "NIC")
                n = s.nics
                if exists(tx.conn, n, n.c.entity_id == old.entity_id, n.c.name == new.name):
                    raise Conflict(f"{entity.name!r} already has a NIC named {new.name!r}")
            self._check_nic(tx, entity, new, allocate=False, skip_mac=old.mac)
            effective["mac"] = new.mac
            self._update(tx.conn, s.nics, nic_id, effective)
            tx.bump([old.entity_id])
        return new

    def remove_nic(self, nic_id: UUID) -> None:
        with self._tx() as tx:
            old = self._one(tx.conn, s.nics, Nic, nic_id, "NIC")
            tx.conn.execute(delete(s.nics).where(s.nics.c.id == nic_id))
            tx.bump([old.entity_id])

    def list_nics(self, entity_id: UUID) -> list[Nic]:
        with self.db.read() as conn:
            return self._all(conn, s.nics, Nic, s.nics.c.entity_id == entity_id)

    # --- snapshots ---------------------------------------------------------------------------------

    def add_snapshot(self, snapshot: Snapshot) -> Snapshot:
        """Record a snapshot of a VM. A snapshot being taken is `locked`: the updater waits for it."""
        with self._tx() as tx:
            if not isinstance(self._entity(tx, snapshot.vm_id), Vm):
                raise InvalidInput(f"{snapshot.vm_id} is a template; only VMs have snapshots")
            sn = s.snapshots
            if snapshot.type is SnapshotType.ACTIVE and exists(
                tx.conn, sn, sn.c.vm_id == snapshot.vm_id, sn.c.type == SnapshotType.ACTIVE.value
            ):
                raise Conflict(f"VM {snapshot.vm_id} already has its active snapshot")
            tx.conn.execute(insert(sn).values(values(snapshot, sn)))
            tx.bump([snapshot.vm_id])
        return snapshot

    def update_snapshot(self, snapshot_id: UUID, **changes: Any) -> Snapshot:
        with self._tx() as tx:
            old = self._one(tx.conn, s.snapshots, Snapshot, snapshot_id, "snapshot")
            new, effective = apply_changes(old, changes, SNAPSHOT_CHANGEABLE, "snapshot")
            self._update(tx.conn, s.snapshots, snapshot_id, effective)
            if effective:
                tx.bump([old.vm_id])
        return new

    def remove_snapshot(self, snapshot_id: UUID) -> None:
        with self._tx() as tx:
            old = self._one(tx.conn, s.snapshots, Snapshot, snapshot_id, "snapshot")
            if old.type is SnapshotType.ACTIVE:
                raise Conflict("the active snapshot is the VM's current state; it cannot be removed")
            tx.conn.execute(delete(s.snapshots).where(s.snapshots.c.id == snapshot_id))
            tx.bump([old.vm_id])

    def list_snapshots(self, vm_id: UUID) -> list[Snapshot]:
        sn = s.snapshots
        with self.db.read() as conn:
            rows = conn.execute(select(sn).where(sn.c.vm_id == vm_id).order_by(sn.c.creation_date, sn.c.id))
            return [from_row(Snapshot, r) for r in rows.mappings()]

    # --- helpers -----------------------------------------------------------------------------------

    def _entity(self, tx: Tx, entity_id: UUID) -> Vm | Template:
        found = _load_entity(tx.conn, entity_id)
        if found is None:
            raise NotFound("VM or template", entity_id)
        return found

    def _list(self, entity_type: EntityType, cluster_id: UUID | None) -> list[Vm | Template]:
        query = select(vm).where(vm.c.entity_type == entity_type.value)
        if cluster_id is not None:
            query = query.where(vm.c.cluster_id == cluster_id)
        with self.db.read() as conn:
            return [entity_from_row(r) for r in conn.execute(query.order_by(vm.c.name, vm.c.id)).mappings()]

    def _write(self, tx: Tx, entity: Vm | Template, effective: dict[str, Any]) -> None:
        kind = EntityType.TEMPLATE if isinstance(entity, Template) else EntityType.VM
        columns = {entity_column(kind, name): value for name, value in effective.items()}
        tx.conn.execute(update(vm).where(vm.c.id == entity.id).values(**columns))
        tx.bump([entity.id])

    def _check_base(self, tx: Tx, entity: VmBase, previous: VmBase | None = None) -> None:
        what = f"{'template' if isinstance(entity, Template) else 'VM'} {entity.name!r}"
        check_name(entity.name, what)
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
        if entity.cluster_id is not None:
            self._one(tx.conn, s.clusters, Cluster, entity.cluster_id, "cluster")
            if previous is not None and previous.cluster_id not in (None, entity.cluster_id):
                old_dc = lookups.cluster_data_center(tx.conn, previous.cluster_id)
                if old_dc != lookups.cluster_data_center(tx.conn, entity.cluster_id):
                    raise Conflict(f"{what} can only move to a cluster of the same data center")
        if entity.lease_domain_id is not None:
            self._one(tx.conn, s.storage_domains, StorageDomain, entity.lease_domain_id, "storage domain")

    def _check_vm_name(self, tx: Tx, entity: Vm) -> None:
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

    def _check_template_name(self, tx: Tx, entity: Template) -> None:
        """Base template names are unique per data center (versions share their base's name)."""
        where = [
            vm.c.entity_type == EntityType.TEMPLATE.value,
            vm.c.name == entity.name,
            vm.c.base_template_id.is_(None),
            vm.c.id != entity.id,
        ]
        c = s.clusters
        if entity.cluster_id is not None:
            dc = lookups.cluster_data_center(tx.conn, entity.cluster_id)
            query = select(vm.c.id).select_from(vm.outerjoin(c, vm.c.cluster_id == c.c.id))
            where.append((c.c.data_center_id == dc) | vm.c.cluster_id.is_(None))
        else:
            query = select(vm.c.id)
        if tx.conn.execute(query.where(*where).limit(1)).first() is not None:
            raise Conflict(f"template name {entity.name!r} is already used; choose another")

    def _check_nic(
        self, tx: Tx, entity: Vm | Template, nic: Nic, *, allocate: bool, skip_mac: str | None = None
    ) -> None:
        dc_id = lookups.entity_data_center(tx.conn, entity.id)
        if nic.vnic_profile_id is not None:
            profile = self._one(tx.conn, s.vnic_profiles, VnicProfile, nic.vnic_profile_id, "vNIC profile")
            network = self._one(tx.conn, s.networks, Network, profile.network_id, "network")
            if dc_id is not None and network.data_center_id != dc_id:
                raise Conflict(f"vNIC profile {profile.name!r} belongs to a network of another data center")
        if dc_id is None:
            if nic.mac is not None:
                nic.mac = macs.normalize(nic.mac)
            return
        dc = self._one(tx.conn, s.data_centers, DataCenter, dc_id, "data center")
        used = lookups.macs_in_data_center(tx.conn, dc_id)
        if nic.mac is None:
            if allocate:
                nic.mac = macs.next_free(dc.mac_pool_start, dc.mac_pool_end, used)
            return
        nic.mac = macs.normalize(nic.mac)
        if nic.mac == skip_mac:
            return
        if not macs.in_range(nic.mac, dc.mac_pool_start, dc.mac_pool_end):
            raise Conflict(
                f"MAC {nic.mac} is outside the MAC pool {dc.mac_pool_start}-{dc.mac_pool_end} of data center "
                f"{dc.name!r}; leave the MAC empty to get a free one, or widen the pool"
            )
        if nic.mac in used:
            raise Conflict(f"MAC {nic.mac} is already used in data center {dc.name!r}; leave it empty for a free one")

    def _remove_own_disks(self, tx: Tx, entity_id: UUID) -> None:
        da = s.disk_attachments
        disk_ids = lookups.ids(tx.conn, select(da.c.disk_id).where(da.c.entity_id == entity_id))
        shared = lookups.ids(
            tx.conn, select(da.c.disk_id).where(da.c.disk_id.in_(disk_ids), da.c.entity_id != entity_id)
        )
        own = disk_ids - shared
        if own:
            tx.conn.execute(delete(s.disks).where(s.disks.c.id.in_(own)))

    def _delete_entity(self, tx: Tx, entity_id: UUID) -> None:
        tx.conn.execute(delete(vm).where(vm.c.id == entity_id))
        # The cached OVF stays, marked deleted, until the updater has rewritten the domains storing it.
        tx.conn.execute(update(s.ovf_cache).where(s.ovf_cache.c.entity_id == entity_id).values(deleted=True))
        tx.deleted.add(entity_id)


def _load_entity(conn: Any, entity_id: UUID) -> Vm | Template | None:
    row = conn.execute(select(vm).where(vm.c.id == entity_id)).mappings().first()
    return None if row is None else entity_from_row(row)

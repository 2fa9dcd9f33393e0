"""Registering an unregistered VM or template found on an imported domain, keeping its id.

A registration is planned first (every check and mapping, no change: this is the dry run), then applied
as one inventory transaction: the entity, its disks (as found on the attached domains), attachments,
NICs, snapshots, permissions and affinity memberships all appear together or not at all. After that the
entity is ordinary inventory, and the updater writes it into the stores of its domains as usual.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Connection, delete, select

from ovfstore.engine import macs
from ovfstore.engine.db import schema as s
from ovfstore.engine.errors import InvalidInput
from ovfstore.engine.inventory import Inventory, lookups
from ovfstore.engine.inventory.base import exists
from ovfstore.engine.recovery.options import (
    LunMapping,
    RegistrationOptions,
    RegistrationRefused,
    RegistrationReport,
)
from ovfstore.engine.recovery.reads import DbReads
from ovfstore.model import (
    BLANK_TEMPLATE_ID,
    Cluster,
    Disk,
    DiskAttachment,
    DiskStorageType,
    EntityType,
    FoundVolume,
    LunConnection,
    Nic,
    OvfData,
    Snapshot,
    SnapshotType,
    Template,
    Vm,
    VmStatus,
    Volume,
    VolumeFormat,
    VolumeType,
)
from ovfstore.store.quoting import cut, quoted


@dataclass(slots=True)
class _Context:
    """What every check of one registration needs."""

    conn: Connection
    domain_id: UUID
    data: OvfData
    options: RegistrationOptions
    cluster: Cluster
    # MACs recorded in the OVFs of the data center's unregistered VMs, with the VMs recording each; MACs
    # handed out during a "register everything" join them, so a dry run never offers one MAC twice.
    reserved: dict[str, set[UUID]]
    # Answers of reads no registration changes (clusters, data centers, vNIC profiles), by question: a
    # "register everything" asks each once.
    memo: dict[tuple[Any, ...], Any]
    reads: DbReads


#: A NIC's MAC in any OVF dialect (`<rasd:MACAddress>`, whatever the prefix); read without parsing the
#: document, because every unregistered OVF of the data center is scanned for each registration.
_MAC_ELEMENT = re.compile(rb"MACAddress>\s*([0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5})\s*</")


def reserved_macs(conn: Connection, data_center_id: UUID) -> dict[str, set[UUID]]:
    """The MACs the unregistered VMs and templates of the data center's domains still record, each with
    the entities recording it: a MAC handed out to a NIC now would force that entity's NIC to be
    reassigned in turn when it is registered (docs/RECOVERY.md, "MAC addresses")."""
    u, d = s.unregistered_entities, s.storage_domains
    found: dict[str, set[UUID]] = {}
    rows = conn.execute(
        select(u.c.entity_id, u.c.ovf_data)
        .select_from(u.join(d, u.c.domain_id == d.c.id))
        .where(d.c.data_center_id == data_center_id)
    )
    for entity_id, document in rows:
        for match in _MAC_ELEMENT.finditer(document or b""):
            mac = match.group(1).decode().lower().replace("-", ":")
            found.setdefault(mac, set()).add(entity_id)
    return found


@dataclass(slots=True)
class Plan:
    report: RegistrationReport
    entity: Vm | Template
    disks: list[tuple[Disk, DiskAttachment, bool]] = field(default_factory=list)  # disk, attachment, exists
    nics: list[Nic] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    permissions: list[tuple[str, UUID]] = field(default_factory=list)  # user, role id
    groups: list[UUID] = field(default_factory=list)
    labels: list[UUID] = field(default_factory=list)
    # Snapshots of the OVF not registered, because volumes they need were lost on storage.
    dropped_snapshots: set[UUID] = field(default_factory=set)
    data_center_id: UUID | None = None  # of the target cluster


class Registrar:
    def __init__(self, inventory: Inventory) -> None:
        self.inv = inventory

    def plan(
        self,
        domain_id: UUID,
        data: OvfData,
        options: RegistrationOptions,
        planned: set[UUID] = frozenset(),  # type: ignore[assignment]
        reserved: dict[UUID, dict[str, set[UUID]]] | None = None,
        conn: Connection | None = None,
        memo: dict[tuple[Any, ...], Any] | None = None,
        reads: DbReads | None = None,
    ) -> Plan:
        """Check everything and work out what would be created; raise `RegistrationRefused` if it cannot
        be. `planned` holds templates a dry run of "register everything" would have registered already;
        `reserved` caches, per data center, the MACs of its unregistered entities (`reserved_macs`): "register
        everything" reads them once, not once per entity. `conn`: read there (the transaction of a batch
        of registrations, so each sees the ones before it), not in a read of its own. `memo` keeps the
        answers of reads no registration changes (`_Context.memo`) from one plan to the next; `reads`
        answers the per-entity questions (`engine/recovery/reads.py`), on `conn` unless given."""
        original = data.entity
        report = RegistrationReport(original.id, original.name, data.entity_type, "would_register")
        entity = dataclasses.replace(original)
        if isinstance(entity, Vm):
            entity.status = VmStatus.DOWN  # nothing runs at the new site yet; the stored status says what did
        if options.clone:
            if not options.name:
                raise RegistrationRefused(f"{_what(data)}: a clone needs a new name (vm name)")
            entity.id = uuid4()
        if options.name and options.name != original.name:
            entity.name = options.name
            report.renamed_from = original.name
        report.name = entity.name
        report.registered_id = entity.id
        with contextlib.nullcontext(conn) if conn is not None else self.inv.db.read() as conn:
            reads = DbReads(conn) if reads is None else reads
            if not options.clone and reads.registered(entity.id):
                raise RegistrationRefused(
                    f"{_what(data)}: id {entity.id} is already registered here; register it as a clone to get a copy"
                )
            memo = {} if memo is None else memo
            cluster = _remember(
                memo, ("cluster", options.cluster_id, data.cluster_name), lambda: self._cluster(conn, data, options)
            )
            entity.cluster_id = cluster.id
            self._check_template(conn, data, entity, planned)
            if reads.name_taken(entity, cluster.data_center_id):
                raise RegistrationRefused(
                    f"{_what(data)}: the name {entity.name!r} is already used in this data center; register it "
                    "under another name, or as a clone"
                )
            plan = Plan(report, entity, data_center_id=cluster.data_center_id)
            cache = {} if reserved is None else reserved
            if cluster.data_center_id not in cache:
                cache[cluster.data_center_id] = reserved_macs(conn, cluster.data_center_id)
            ctx = _Context(conn, domain_id, data, options, cluster, cache[cluster.data_center_id], memo, reads)
            self._plan_disks(ctx, plan)
            self._plan_nics(ctx, plan)
            self._plan_rest(ctx, plan)
        return plan

    def apply(self, plan: Plan) -> RegistrationReport:
        entity = plan.entity
        original_id = plan.report.entity_id
        with self.inv.transaction() as tx:
            if isinstance(entity, Template):
                self.inv.templates.add(entity)
            else:
                self.inv.vms.add(entity)
            for disk, attachment, exists in plan.disks:
                if not exists:
                    self.inv.disks.add(disk)
                self.inv.attachments.attach(attachment)
            for nic in plan.nics:
                self.inv.nics.add(nic)
            for snapshot in plan.snapshots:
                self.inv.snapshots.add(snapshot)
            for user, role_id in plan.permissions:
                self.inv.permissions.add(entity.id, user, role_id)
            for group_id in plan.groups:
                self.inv.affinity_groups.add_member(group_id, entity.id)
            for label_id in plan.labels:
                self.inv.affinity_labels.add_member(label_id, entity.id)
            u, ud = s.unregistered_entities, s.unregistered_disks
            tx.conn.execute(delete(u).where(u.c.entity_id == original_id))
            registered = [d.id for d, _, exists in plan.disks if not exists]
            if registered:
                tx.conn.execute(delete(ud).where(ud.c.disk_id.in_(registered)))
        plan.report.outcome = "registered"
        return plan.report

    # --- the checks --------------------------------------------------------------------------------------

    def _cluster(self, conn: Connection, data: OvfData, options: RegistrationOptions) -> Cluster:
        c = s.clusters
        if options.cluster_id is not None:
            row = conn.execute(select(c).where(c.c.id == options.cluster_id)).mappings().first()
            if row is None:
                raise RegistrationRefused(f"{_what(data)}: cluster {options.cluster_id} does not exist")
            return Cluster(**row)
        wanted = options.cluster_mappings.get(data.cluster_name, data.cluster_name)
        row = conn.execute(select(c).where(c.c.name == wanted)).mappings().first()
        if row is None:
            mapped = f" (mapped from {data.cluster_name!r})" if wanted != data.cluster_name else ""
            raise RegistrationRefused(
                f"{_what(data)}: cluster {wanted!r}{mapped} does not exist here; map it to a cluster of this engine "
                "(cluster mapping) or name the target cluster"
            )
        return Cluster(**row)

    def _check_template(self, conn: Connection, data: OvfData, entity: Vm | Template, planned: set[UUID]) -> None:
        if isinstance(entity, Vm):
            needed, name = entity.template_id, data.template_name
        elif entity.base_template_id not in (None, entity.id, data.entity.id):
            needed, name = entity.base_template_id, data.base_template_name
        else:
            if isinstance(entity, Template):
                entity.base_template_id = None
            return
        if needed == BLANK_TEMPLATE_ID or needed in planned:
            return
        vm = s.vm_static
        if not exists(conn, vm, vm.c.id == needed, vm.c.entity_type == EntityType.TEMPLATE.value):
            raise RegistrationRefused(
                f"{_what(data)}: its template {name!r} ({needed}) is not registered; register the template first"
            )

    def _plan_disks(self, ctx: _Context, plan: Plan) -> None:
        domain_id, data, options, cluster = ctx.domain_id, ctx.data, ctx.options, ctx.cluster
        for ovf_disk in data.disks:
            disk = dataclasses.replace(ovf_disk.disk, domain_ids=[], volumes=list(ovf_disk.disk.volumes))
            attachment = dataclasses.replace(ovf_disk.attachment, entity_id=plan.entity.id)
            if disk.storage_type is DiskStorageType.LUN:
                if self._plan_lun(ctx, plan, disk):
                    plan.disks.append((disk, attachment, ctx.reads.disk_exists(disk.id)))
                continue
            if ctx.reads.disk_exists(disk.id):
                if not disk.shareable:
                    raise RegistrationRefused(
                        f"{_what(data)}: its disk {disk.alias!r} ({disk.id}) already belongs to another VM here"
                    )
                plan.disks.append((disk, attachment, True))
                continue
            found = ctx.reads.on_storage(disk.id, cluster.data_center_id, domain_id)
            wanted = {v.id for v in disk.volumes}
            present = [row.domain_id for row in found if wanted <= set(row.volume_ids)]
            what = f"disk {disk.alias!r} ({disk.id})"
            if not present and found:
                # The OVF's chain and the volumes on storage differ (docs/RECOVERY.md, "When the chain differs").
                problem = self._reconcile_chain(ctx, plan, disk, list(found[0].volume_ids))
                if problem is None:
                    disk.domain_ids = [found[0].domain_id]
                    plan.disks.append((disk, attachment, False))
                    continue
                reason = f"{what}: {problem}"
            elif not present:
                reason = f"{what} is on no active domain of this data center"
            else:
                disk.domain_ids = present
                row = next(r for r in found if r.domain_id == present[0])
                problem = self._newer_layers(ctx, plan, disk, list(row.volume_ids), list(row.volumes or []))
                if problem is None:
                    plan.disks.append((disk, attachment, False))
                    continue
                reason = f"{what}: {problem}"
            if options.allow_partial_import:
                plan.report.dropped_disks.append(disk.id)
                plan.report.disk_reports.append((disk.id, f"dropped: {reason.removeprefix(what + ': ')}"))
                plan.report.warnings.append(f"{reason}: dropped")
                continue
            raise RegistrationRefused(
                f"{_what(data)}: its {reason}; attach the domain holding it, or allow a partial import "
                "(the disk is then dropped, or registered with the part of its chain storage still has)"
            )

    def _reconcile_chain(self, ctx: _Context, plan: Plan, disk: Disk, on_storage: list[UUID]) -> str | None:
        """Some volumes of the OVF's chain are not on storage. When what storage holds is the chain's base
        part (the newest volumes were lost), the disk can be registered with that part under partial
        import; the reason it cannot be registered otherwise."""
        chain = disk.chain() or disk.volumes
        held = set(on_storage)
        kept = 0
        while kept < len(chain) and chain[kept].id in held:
            kept += 1
        missing = [v.id for v in chain if v.id not in held]
        lost = ", ".join(str(v) for v in missing)
        if kept == 0 or any(v.id in held for v in chain[kept:]):
            return f"volume(s) {lost} of its chain are not on storage and no base part of the chain is whole"
        if not ctx.options.allow_partial_import:
            return (
                f"the newest volume(s) {lost} of its chain are not on storage (the disk could be registered from "
                f"volume {chain[kept - 1].id}, losing what was written after)"
            )
        dropped, problem = self._snapshots_after_cut(ctx, disk, chain[:kept], chain[kept:])
        if problem is not None:
            return problem
        disk.volumes = chain[:kept]
        if dropped is not None:
            disk.volumes[-1] = dataclasses.replace(disk.volumes[-1], snapshot_id=dropped[0])
            plan.dropped_snapshots.update(dropped[1])
        disk.provisioned_size = disk.volumes[-1].capacity
        note = (
            f"registered with {kept} of {len(chain)} volume(s), up to {chain[kept - 1].id}: volume(s) {lost} "
            "are not on storage, what was written into them is lost"
        )
        plan.report.disk_reports.append((disk.id, note))
        plan.report.warnings.append(f"disk {disk.alias!r} ({disk.id}) {note}")
        if dropped is not None and dropped[1]:
            gone = ", ".join(str(i) for i in sorted(dropped[1], key=str))
            note = (
                f"snapshot(s) {gone} not registered: their volumes were lost, or became the layer the VM writes "
                "to; the new leaf volume belongs to the active snapshot"
            )
            plan.report.disk_reports.append((disk.id, note))
            plan.report.warnings.append(f"disk {disk.alias!r} ({disk.id}): {note}")
        return None

    @staticmethod
    def _snapshots_after_cut(
        ctx: _Context, disk: Disk, kept: list[Volume], lost: list[Volume]
    ) -> tuple[tuple[UUID, set[UUID]] | None, str | None]:
        """After the lost newest volumes are cut off, the new leaf belongs to the active snapshot, and the
        snapshots the lost volumes (or the new leaf) belonged to are gone: (active id, snapshots to drop),
        None when the VM records no snapshots (nothing to keep consistent); or why the disk cannot be
        registered."""
        if not isinstance(ctx.data.entity, Vm) or not ctx.data.snapshots:
            return None, None
        active = _active_snapshot(ctx.data)
        if active is None:
            return None, (
                "its newest volumes are lost and the VM's OVF records no active snapshot for the volume that "
                "would become its leaf"
            )
        known = {sn.id for sn in ctx.data.snapshots}
        gone = {v.snapshot_id for v in [*lost, kept[-1]] if v.snapshot_id is not None} & known
        return (active.id, gone - {active.id}), None

    def _newer_layers(
        self, ctx: _Context, plan: Plan, disk: Disk, volume_ids: list[UUID], found: list[FoundVolume]
    ) -> str | None:
        """Storage holds the OVF's chain and maybe more. Volumes whose parent links on storage continue the
        chain from its leaf, one child each (the store was written before the last snapshot), are the ones
        the VM was writing to and join the chain; any other volume (a fork such as a snapshot preview, an
        orphan, an illegal volume) is left alone and reported. Returns why the disk cannot be registered."""
        chain = disk.chain() or disk.volumes
        ids = {v.id for v in chain}
        extra = [v for v in volume_ids if v not in ids]
        if not extra:
            return None
        layers, stop = _layers_after(chain, ids, found)
        taken = {_uuid(v.id) for v in layers}
        left = [v for v in extra if v not in taken]
        if layers:
            snapshots, problem = self._snapshots_for_layers(ctx, chain, len(layers))
            if problem is not None:
                return problem
            _stack_layers(disk, chain, layers, snapshots)
            plan.report.disk_reports.append(
                (
                    disk.id,
                    f"volume(s) {', '.join(v.id for v in layers)} on storage are newer than the OVF (the store was "
                    "written before the last snapshot): registered on top of its chain, as the layers the VM was "
                    "writing to",
                )
            )
        if left:
            why = f" ({stop})" if stop else ""
            plan.report.disk_reports.append(
                (
                    disk.id,
                    f"partial import: volume(s) {', '.join(map(str, left))} on storage do not continue the chain "
                    f"from its leaf{why}: not registered, left on storage",
                )
            )
        return None

    @staticmethod
    def _snapshots_for_layers(ctx: _Context, chain: list[Volume], count: int) -> tuple[list[UUID] | None, str | None]:
        """`count` layers go on top of the chain: the old leaf and every new layer but the top one become
        read-only, each the volume of one snapshot taken after the OVF's chain was written; the top one
        belongs to the active snapshot. The OVF must record those snapshots (taken after the old leaf was
        created and after every snapshot the chain's volumes belong to), exactly as many as needed, or
        which volume belongs to which snapshot is not known. Returns the snapshot ids of the old leaf and
        each layer, in chain order (None when the VM records no snapshots: nothing to keep consistent), or
        why the disk cannot be registered."""
        if not isinstance(ctx.data.entity, Vm) or not ctx.data.snapshots:
            return None, None
        active = _active_snapshot(ctx.data)
        by_id = {sn.id: sn for sn in ctx.data.snapshots}
        used = {v.snapshot_id for v in chain if v.snapshot_id is not None}
        dates = [by_id[i].creation_date for i in used if i in by_id and by_id[i].type is not SnapshotType.ACTIVE]
        newest = max(dates, default=None)
        candidates = sorted(
            (
                sn
                for sn in ctx.data.snapshots
                if sn.type is not SnapshotType.ACTIVE
                and sn.id not in used
                and (newest is None or sn.creation_date > newest)
                and sn.creation_date >= chain[-1].creation_date  # taken while the old leaf was the top layer
            ),
            key=lambda sn: sn.creation_date,
        )
        if active is None or len(candidates) != count:
            records = "no active snapshot" if active is None else f"{len(candidates)} newer snapshot(s)"
            return None, (
                f"{count} volume(s) on storage are newer than the OVF, but the VM's OVF records {records} where "
                f"{count} newer snapshot(s) and its active snapshot are needed: which snapshot each volume "
                "belongs to is not known, so none is invented"
            )
        return [*(sn.id for sn in candidates), active.id], None

    def _plan_lun(self, ctx: _Context, plan: Plan, disk: Disk) -> bool:
        """Map a direct LUN disk onto this site's LUN; False when it is dropped (partial import)."""
        source = disk.lun_id
        mapping = ctx.options.lun_mappings.get(source or "")
        if isinstance(mapping, str):
            mapping = LunMapping(mapping)
        problem = None
        if mapping is not None:
            disk.lun_id = mapping.target_lun_id or None
            if disk.lun_id != source:
                # Another LUN: the source's vendor, product and serial describe a different device.
                disk.lun_vendor = disk.lun_product = disk.lun_serial = ""
            if mapping.target_connections:
                disk.lun_connections = list(mapping.target_connections)
            if disk.lun_id is None:
                problem = f"the LUN mapping for {source!r} names no target LUN"
        elif not source:
            problem = "its OVF names no LUN id, so nothing says which LUN it is"
        if problem is None:
            dm = s.disks
            same = ctx.conn.execute(select(dm.c.shareable).where(dm.c.id == disk.id)).first()
            other = ctx.conn.execute(
                select(dm.c.id, dm.c.shareable).where(dm.c.lun_id == disk.lun_id, dm.c.id != disk.id)
            ).first()
            if same is not None and not (same.shareable and disk.shareable):
                problem = "the disk already belongs to another VM here"
            elif other is not None and not (other.shareable and disk.shareable):
                problem = f"LUN {disk.lun_id} is already used by disk {other.id} here"
        if problem is None:
            if mapping is not None:
                paths = ", ".join(_path(c) for c in disk.lun_connections) or "no recorded path"
                note = f"LUN {source} mapped to {disk.lun_id} ({paths})"
                if disk.lun_id != source:
                    note += (
                        "; the source LUN's vendor, product and serial are not kept, and its size "
                        f"({disk.provisioned_size} bytes) stands until the target LUN's is known"
                    )
                plan.report.disk_reports.append((disk.id, note))
            return True
        what = f"direct LUN disk {disk.alias!r} ({disk.id})"
        if not ctx.options.allow_partial_import:
            raise RegistrationRefused(
                f"{_what(ctx.data)}: {what}: {problem}; map it to a LUN of this site (LUN mapping), "
                "or allow a partial import to register the VM without it"
            )
        plan.report.dropped_disks.append(disk.id)
        plan.report.disk_reports.append((disk.id, f"dropped: {problem}"))
        plan.report.warnings.append(f"{what}: {problem}: dropped")
        return False

    def _plan_nics(self, ctx: _Context, plan: Plan) -> None:
        conn, data, options, cluster = ctx.conn, ctx.data, ctx.options, ctx.cluster
        dc = _remember(
            ctx.memo,
            ("data_center", cluster.data_center_id),
            lambda: (
                conn.execute(select(s.data_centers).where(s.data_centers.c.id == cluster.data_center_id))
                .mappings()
                .one()
            ),
        )
        # Whether the entity's own MACs are in use: looked up for those MACs only, not the whole pool.
        used = ctx.reads.macs_in_use(cluster.data_center_id, _own_macs(data))
        taken: set[str] = set()
        for ovf_nic in data.nics:
            nic = dataclasses.replace(ovf_nic.nic, entity_id=plan.entity.id)
            if options.clone:
                nic.id = uuid4()
            nic.vnic_profile_id = self._profile(ctx, ovf_nic.network_name, ovf_nic.profile_name, plan)
            old = nic.mac
            problem = None
            if old is not None:
                try:
                    normalized = macs.normalize(old)
                except InvalidInput as exc:
                    problem = str(exc)
                else:
                    if options.clone:
                        problem = "a clone gets new MACs"
                    elif normalized in used or normalized in taken:
                        problem = f"MAC {normalized} is already in use here"
                    elif not macs.in_range(normalized, dc["mac_pool_start"], dc["mac_pool_end"]):
                        problem = f"MAC {normalized} is outside this data center's pool"
                    nic.mac = normalized
            if problem is not None:
                if not (options.reassign_bad_macs or options.clone) and isinstance(plan.entity, Vm):
                    raise RegistrationRefused(
                        f"{_what(data)}: NIC {nic.name!r}: {problem}; allow MAC reassignment to give it a free one"
                    )
                nic.mac = None
            if nic.mac is None and isinstance(plan.entity, Vm):
                # The lowest address free here and recorded by no other unregistered entity.
                nic.mac = macs.next_free(dc["mac_pool_start"], dc["mac_pool_end"], self._unavailable(ctx, taken))
            if problem is not None:
                plan.report.reassigned_macs.append((nic.name, old, nic.mac))
            if nic.mac is not None:
                taken.add(nic.mac)
                if problem is not None or old is None:
                    # Handed out now: the next entity of a "register everything" must not get it too.
                    ctx.reserved.setdefault(nic.mac, set()).add(plan.entity.id)
            plan.nics.append(nic)

    @staticmethod
    def _unavailable(ctx: _Context, taken: set[str]) -> set[str]:
        """What a NIC given a new MAC must not get: every MAC in use in the data center, those handed out
        to this entity already, and those another unregistered entity records (its own registration
        would then have to reassign it, and so on down a chain; the entity's own MACs are its to keep).
        Read only when a MAC is handed out: the whole pool is not read for every registration."""
        original_id = ctx.data.entity.id
        reserved = {mac for mac, owners in ctx.reserved.items() if owners - {original_id}}
        return lookups.macs_in_data_center(ctx.conn, ctx.cluster.data_center_id) | taken | reserved

    def _profile(self, ctx: _Context, network: str | None, profile: str | None, plan: Plan) -> UUID | None:
        conn, options, cluster = ctx.conn, ctx.options, ctx.cluster
        if network is None and profile is None:
            return None
        for mapping in options.vnic_profile_mappings:
            if (mapping.source_network, mapping.source_profile) == (network, profile):
                return mapping.target_profile_id
        n, p = s.networks, s.vnic_profiles

        def read() -> UUID | None:
            return conn.execute(
                select(p.c.id)
                .select_from(p.join(n, p.c.network_id == n.c.id))
                .where(
                    n.c.data_center_id == cluster.data_center_id, n.c.name == network, p.c.name == (profile or network)
                )
            ).scalar()

        found: UUID | None = _remember(ctx.memo, ("profile", cluster.data_center_id, network, profile), read)
        if found is None:
            plan.report.warnings.append(
                f"no vNIC profile {profile!r} on network {network!r} here: the NIC is left on no network "
                "(map the profile to connect it)"
            )
        return found

    def _plan_rest(self, ctx: _Context, plan: Plan) -> None:
        conn, data, options, cluster = ctx.conn, ctx.data, ctx.options, ctx.cluster
        if isinstance(plan.entity, Vm):
            for snapshot in data.snapshots:
                if snapshot.id in plan.dropped_snapshots:
                    continue
                copy = dataclasses.replace(snapshot, vm_id=plan.entity.id)
                if options.clone:
                    copy.id = uuid4()
                plan.snapshots.append(copy)
        r = s.roles
        for permission in data.permissions:
            role_name = options.role_mappings.get(permission.role_name, permission.role_name)
            role_id = conn.execute(select(r.c.id).where(r.c.name == role_name)).scalar()
            if role_id is None:
                plan.report.warnings.append(
                    f"role {role_name!r} of {permission.user_name} does not exist here: permission not restored"
                )
            else:
                plan.permissions.append((permission.user_name, role_id))
        g, lb = s.affinity_groups, s.affinity_labels
        for name in data.affinity_groups:
            target = options.affinity_group_mappings.get(name, name)
            group_id = conn.execute(select(g.c.id).where(g.c.cluster_id == cluster.id, g.c.name == target)).scalar()
            if group_id is None:
                plan.report.warnings.append(f"affinity group {target!r} does not exist in the cluster: not joined")
            else:
                plan.groups.append(group_id)
        for name in data.affinity_labels:
            target = options.affinity_label_mappings.get(name, name)
            label_id = conn.execute(select(lb.c.id).where(lb.c.name == target)).scalar()
            if label_id is None:
                plan.report.warnings.append(f"affinity label {target!r} does not exist here: not applied")
            else:
                plan.labels.append(label_id)


def _remember(memo: dict[tuple[Any, ...], Any], key: tuple[Any, ...], read: Callable[[], Any]) -> Any:
    """The answer `memo` holds for `key`, or `read()`'s, kept there."""
    if key not in memo:
        memo[key] = read()
    return memo[key]


def _own_macs(data: OvfData) -> list[str]:
    """The entity's NICs' MACs as recorded, normalized; those that are no valid MAC left out."""
    found = []
    for ovf_nic in data.nics:
        if ovf_nic.nic.mac is not None:
            with contextlib.suppress(InvalidInput):
                found.append(macs.normalize(ovf_nic.nic.mac))
    return found


def _active_snapshot(data: OvfData) -> Snapshot | None:
    return next((sn for sn in data.snapshots if sn.type is SnapshotType.ACTIVE), None)


def _uuid(text: str) -> UUID:
    return UUID(text)


def _path(c: LunConnection) -> str:
    where = f"{c.address}:{c.port}" if c.port else c.address
    return f"{c.storage_type} {where} {c.target}".strip()


def _what(data: OvfData) -> str:
    kind = "template" if data.entity_type is EntityType.TEMPLATE else "VM"
    return f"{kind} {data.entity.name!r} ({data.entity.id})"


def _layers_after(chain: list[Volume], ids: set[UUID], found: list[FoundVolume]) -> tuple[list[FoundVolume], str]:
    """The volumes on storage that continue `chain` from its leaf, one child each, and why the walk stopped
    short of every other volume ("" when nothing stopped it)."""
    if not chain:
        return [], "the OVF records no chain for the disk"
    if not found:
        return [], "the domain was scanned without the volumes' parent links (import it again to record them)"
    children: dict[str, list[FoundVolume]] = {}
    for v in found:
        if _uuid(v.id) not in ids:
            children.setdefault(v.parent, []).append(v)
    layers: list[FoundVolume] = []
    leaf_id = str(chain[-1].id)
    while kids := children.get(leaf_id):
        kid = kids[0]
        if len(kids) > 1:
            return layers, (
                f"volume {leaf_id} has {len(kids)} children on storage (a fork, such as a snapshot "
                "preview): which one the VM used is not known"
            )
        if kid.legality.upper() != "LEGAL":
            return layers, f"volume {cut(kid.id)} on storage is {cut(kid.legality.lower())}"
        if kid.format.lower() not in VolumeFormat._value2member_map_:
            return layers, f"volume {cut(kid.id)} on storage has an unknown format {quoted(kid.format)}"
        layers.append(kid)
        leaf_id = kid.id
    return layers, ""


def _stack_layers(disk: Disk, chain: list[Volume], layers: list[FoundVolume], snapshots: list[UUID] | None) -> None:
    """Put `layers` on top of the disk's chain as its newest volumes (with `snapshots`: the snapshot of the
    old leaf, then one per layer)."""
    index = next(i for i, v in enumerate(disk.volumes) if v.id == chain[-1].id)
    leaf = disk.volumes[index] = dataclasses.replace(disk.volumes[index])
    if snapshots is not None:
        leaf.snapshot_id = snapshots[0]
    for number, kid in enumerate(layers, start=1):
        vtype = VolumeType.PREALLOCATED if kid.type.upper() == "PREALLOCATED" else VolumeType.SPARSE
        layer = Volume(
            id=_uuid(kid.id), disk_id=disk.id, parent_id=leaf.id, format=VolumeFormat(kid.format.lower()),
            volume_type=vtype, capacity=kid.capacity or leaf.capacity, creation_date=leaf.creation_date,
            snapshot_id=leaf.snapshot_id if snapshots is None else snapshots[number],
        )  # fmt: skip
        disk.volumes.append(layer)
        leaf = layer
    disk.provisioned_size = max(disk.provisioned_size, disk.volumes[-1].capacity)

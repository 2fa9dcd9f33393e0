"""Writing a batch of planned registrations with a few multi-row inserts per table.

`Registrar.apply` runs a plan through the inventory's per-entity commands, each of which checks again what
the plan checked, at ~50 statements per VM. Here the checks those commands would make are made once per
batch in memory, against what the batch reads once (`Facts`), and every table of the batch is written
with one multi-row insert. A plan is written here only when every check the commands would make is
certain to pass (`eligible`), and only when it shares nothing with an earlier plan of the batch
(`claims`: a name, a disk, a LUN, a MAC): any other plan goes the per-entity way, after the bulk write,
where the commands give their own answer (docs/RECOVERY.md, "Registration").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, insert, select

from ovfstore.engine import macs
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import entity_values, values
from ovfstore.engine.errors import Conflict, InvalidInput, NotFound
from ovfstore.engine.inventory import entities, lookups
from ovfstore.engine.inventory.base import Tx, check_name, chunks
from ovfstore.engine.inventory.disks import check_new
from ovfstore.engine.inventory.fields import check_text
from ovfstore.engine.recovery.register import Plan
from ovfstore.model import (
    DiskContentType,
    DomainClass,
    EntityType,
    Permission,
    SnapshotType,
    Template,
    Vm,
)

Claim = tuple[Any, ...]


@dataclass(slots=True)
class Facts:
    """What the inventory commands would read to check a batch's rows, read once for the batch."""

    domains: dict[UUID, tuple[DomainClass, UUID | None]]  # every storage domain: class, data center
    profiles: dict[UUID, UUID]  # every vNIC profile: the data center of its network
    pools: dict[UUID, tuple[str, str]]  # data center: its MAC pool
    used_macs: set[tuple[UUID, str]]  # (data center, MAC) of the batch's MACs already in use there
    loose_templates: set[str]  # names of the templates in no cluster (Blank)


def claims(plan: Plan, dc: UUID) -> set[Claim]:
    """What the plan takes that another plan of the batch might want too: its id, its name in the data
    center, its disks, LUNs and MACs. Two plans sharing any are not written together."""
    entity = plan.entity
    found: set[Claim] = {("id", entity.id), ("name", dc, entity.name)}
    for disk, _, _ in plan.disks:
        found.add(("disk", disk.id))
        if disk.lun_id:
            found.add(("lun", disk.lun_id))
    found.update(("mac", dc, nic.mac) for nic in plan.nics if nic.mac is not None)
    return found


def read_facts(conn: Connection, plans: Iterable[tuple[Plan, UUID]]) -> Facts:
    """What `eligible` needs for these plans (each with its data center), in a few reads."""
    d, p, n, dc, vm = s.storage_domains, s.vnic_profiles, s.networks, s.data_centers, s.vm_static
    domains = {
        r.id: (DomainClass(r.domain_class), r.data_center_id)
        for r in conn.execute(select(d.c.id, d.c.domain_class, d.c.data_center_id))
    }
    profiles = {
        r.id: r.data_center_id
        for r in conn.execute(select(p.c.id, n.c.data_center_id).select_from(p.join(n, p.c.network_id == n.c.id)))
    }
    pools = {
        r.id: (r.mac_pool_start, r.mac_pool_end)
        for r in conn.execute(select(dc.c.id, dc.c.mac_pool_start, dc.c.mac_pool_end))
    }
    wanted: dict[UUID, set[str]] = {}
    for plan, dc_id in plans:
        wanted.setdefault(dc_id, set()).update(nic.mac for nic in plan.nics if nic.mac is not None)
    used = {(dc_id, mac) for dc_id, among in wanted.items() for mac in lookups.macs_in_data_center(conn, dc_id, among)}
    loose = conn.execute(
        select(vm.c.name).where(vm.c.entity_type == EntityType.TEMPLATE.value, vm.c.cluster_id.is_(None))
    ).scalars()
    return Facts(domains, profiles, pools, used, set(loose))


def eligible(plan: Plan, dc: UUID, facts: Facts, deferred: set[UUID]) -> bool:
    """Whether every check of the per-entity commands (`Registrar.apply`) is certain to pass for this plan,
    given `facts`; `deferred`: the entities of the batch left to the per-entity way."""
    try:
        _check_entity(plan, facts, deferred)
        _check_disks(plan, dc, facts)
        _check_nics(plan, dc, facts)
        _check_rest(plan)
    except (InvalidInput, Conflict, NotFound, ValueError):
        return False
    return True


def _check_entity(plan: Plan, facts: Facts, deferred: set[UUID]) -> None:
    """`vms.add` / `templates.add`: what `entities.check` reads is the plan's cluster (found) and the lease
    domain; the template a VM uses must be registered or written in this batch; the name was checked by the
    plan, but for a base template the per-entity check also counts templates in no cluster. A VM whose
    template the batch left to the per-entity way follows it there."""
    entity = plan.entity
    entities.check_fields(entity)
    if entity.cluster_id is None:
        raise InvalidInput("no cluster")
    if entity.lease_domain_id is not None and entity.lease_domain_id not in facts.domains:
        raise NotFound("storage domain", entity.lease_domain_id)
    if isinstance(entity, Template):
        if entity.base_template_id not in (None, entity.id):
            raise Conflict("a template version: its base decides its name and number")
        entity.base_template_id = None
        if entity.name in facts.loose_templates:
            raise Conflict("the name of a template in no cluster")
    elif entity.template_id in deferred:
        raise Conflict("its template is not written in this batch")


def _check_disks(plan: Plan, dc: UUID, facts: Facts) -> None:
    """`disks.add` and `attachments.attach` for disks new here: a valid disk on attached data domains of
    the entity's data center, not an OVF store, one bootable attachment at most."""
    boot = 0
    for disk, attachment, exists in plan.disks:
        if exists:
            raise Conflict("a disk registered already: the per-entity commands check its owners")
        check_new(disk)
        if disk.content_type is DiskContentType.OVF_STORE:
            raise Conflict("an OVF store")
        for domain_id in disk.domain_ids:
            domain_class, domain_dc = facts.domains.get(domain_id, (None, None))
            if domain_class is not DomainClass.DATA or domain_dc != dc:
                raise Conflict("not on a data domain of the entity's data center")
        boot += attachment.bootable
    if boot > 1:
        raise Conflict("several bootable disks")


def _check_nics(plan: Plan, dc: UUID, facts: Facts) -> None:
    """`nics.add`: a valid, unique name; a profile of the data center; a MAC free and in its pool."""
    names: set[str] = set()
    start, end = facts.pools[dc]
    for nic in plan.nics:
        check_name(nic.name, "NIC")
        check_text(nic, "NIC")
        if nic.name in names:
            raise Conflict("two NICs of one name")
        names.add(nic.name)
        if nic.vnic_profile_id is not None and facts.profiles.get(nic.vnic_profile_id) != dc:
            raise Conflict("a profile of another data center")
        if nic.mac is None:
            if isinstance(plan.entity, Vm):
                raise Conflict("a VM's NIC without a MAC")
            continue
        if macs.normalize(nic.mac) != nic.mac or not macs.in_range(nic.mac, start, end):
            raise Conflict("a MAC to normalize, or out of the pool")
        if (dc, nic.mac) in facts.used_macs:
            raise Conflict("a MAC in use")


def _check_rest(plan: Plan) -> None:
    """`snapshots.add` (one active snapshot), `permissions.add` (a user@profile name, no repeats)."""
    active = 0
    for snapshot in plan.snapshots:
        check_text(snapshot, "snapshot")
        active += snapshot.type is SnapshotType.ACTIVE
    if active > 1 or (plan.snapshots and not isinstance(plan.entity, Vm)):
        raise Conflict("snapshots the per-entity command refuses")
    if len(set(plan.permissions)) != len(plan.permissions):
        raise Conflict("a permission twice")
    for user, _ in plan.permissions:
        if "@" not in user:
            raise InvalidInput("a user name without its profile")
        check_text(Permission(entity_id=plan.entity.id, user_name=user, role_name=""), "permission")


def write(tx: Tx, plans: list[Plan]) -> None:
    """Write the plans (`eligible`, claiming nothing in common) with one multi-row insert per table, and
    forget what they registered from the unregistered entities and disks. The entities are created in
    `tx`, as `vms.add` records them: the OVF updater hears of them when the transaction commits."""
    conn = tx.conn
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in _TABLES}
    for plan in plans:
        _rows_of(plan, rows)
    for name, table in _TABLES.items():
        if rows[name]:
            conn.execute(insert(table), rows[name])
    originals = sorted({plan.report.entity_id for plan in plans})
    disks = sorted({disk.id for plan in plans for disk, _, exists in plan.disks if not exists})
    u, ud = s.unregistered_entities, s.unregistered_disks
    for chunk in chunks(originals, 500):
        conn.execute(delete(u).where(u.c.entity_id.in_(chunk)))
    for chunk in chunks(disks, 500):
        conn.execute(delete(ud).where(ud.c.disk_id.in_(chunk)))
    tx.created.update(plan.entity.id for plan in plans)
    for plan in plans:
        plan.report.outcome = "registered"


_TABLES = {
    "templates": s.vm_static,
    "vms": s.vm_static,
    "disks": s.disks,
    "disk_domains": s.disk_domains,
    "volumes": s.volumes,
    "attachments": s.disk_attachments,
    "nics": s.nics,
    "snapshots": s.snapshots,
    "permissions": s.permissions,
    "groups": s.affinity_group_members,
    "labels": s.affinity_label_members,
}


def _rows_of(plan: Plan, rows: dict[str, list[dict[str, Any]]]) -> None:
    """The rows the per-entity commands would insert for the plan, added to `rows`, table by table."""
    entity = plan.entity
    rows["templates" if isinstance(entity, Template) else "vms"].append(entity_values(entity))
    for disk, attachment, _ in plan.disks:
        rows["disks"].append(values(disk, s.disks))
        rows["disk_domains"] += ({"disk_id": disk.id, "domain_id": d} for d in disk.domain_ids)
        rows["volumes"] += (values(v, s.volumes) for v in disk.volumes)
        rows["attachments"].append(values(attachment, s.disk_attachments))
    rows["nics"] += (values(nic, s.nics) for nic in plan.nics)
    rows["snapshots"] += (values(snapshot, s.snapshots) for snapshot in plan.snapshots)
    rows["permissions"] += (
        {"id": Permission(entity_id=entity.id, user_name=user, role_name="").id, "entity_id": entity.id,
         "user_name": user, "role_id": role_id}
        for user, role_id in plan.permissions
    )  # fmt: skip
    rows["groups"] += ({"group_id": g, "entity_id": entity.id} for g in dict.fromkeys(plan.groups))
    rows["labels"] += ({"label_id": lb, "entity_id": entity.id} for lb in dict.fromkeys(plan.labels))

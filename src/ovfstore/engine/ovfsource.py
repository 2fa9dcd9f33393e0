"""Everything an OVF says about many entities at once, read in a handful of queries per batch.

The updater regenerates thousands of OVFs in one run; loading each entity with its own queries would
cost tens of thousands of round trips. Here each table is read once per batch of ids.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Table, select

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import entity_from_row, from_row
from ovfstore.engine.inventory import lookups
from ovfstore.engine.inventory.base import chunks
from ovfstore.model import (
    Disk,
    DiskAttachment,
    Nic,
    OvfData,
    OvfDisk,
    OvfNic,
    Permission,
    Snapshot,
    Template,
    Volume,
)

#: Ids per IN clause: well under SQLite's and PostgreSQL's parameter limits, large enough to amortise.
BATCH = 500


def load_ovf_data(conn: Connection, entity_ids: Sequence[UUID]) -> dict[UUID, OvfData]:
    """OvfData of each entity that exists; ids of entities that do not are left out."""
    result: dict[UUID, OvfData] = {}
    for batch in chunks(list(entity_ids), BATCH):
        result.update(_load_batch(conn, batch))
    return result


def _load_batch(conn: Connection, ids: list[UUID]) -> dict[UUID, OvfData]:
    vm = s.vm_static
    entities = [entity_from_row(r) for r in conn.execute(select(vm).where(vm.c.id.in_(ids))).mappings()]
    if not entities:
        return {}
    clusters = _by_id(conn, s.clusters, {e.cluster_id for e in entities if e.cluster_id is not None})
    referenced = {e.base_template_id for e in entities if isinstance(e, Template) and e.base_template_id}
    referenced |= {e.template_id for e in entities if not isinstance(e, Template)}
    names = {r[0]: r[1] for r in conn.execute(select(vm.c.id, vm.c.name).where(vm.c.id.in_(referenced)))}

    data: dict[UUID, OvfData] = {}
    for entity in entities:
        cluster = clusters.get(entity.cluster_id) if entity.cluster_id else None
        if isinstance(entity, Template):
            base = entity.base_template_id
            template_name, base_name = "", names.get(base, "") if base and base != entity.id else ""
        else:
            template_name, base_name = names.get(entity.template_id, ""), ""
        data[entity.id] = OvfData(
            entity=entity,
            cluster_name=cluster["name"] if cluster else "",
            cluster_compatibility_version=cluster["compatibility_version"] if cluster else "",
            data_center_id=cluster["data_center_id"] if cluster else None,
            template_name=template_name,
            base_template_name=base_name,
        )
    found = list(data)
    _add_disks(conn, found, data)
    _add_nics(conn, found, data)
    _add_snapshots(conn, found, data)
    _add_permissions(conn, found, data)
    _add_affinity(conn, found, data)
    return data


def _by_id(conn: Connection, table: Any, ids: set[UUID]) -> dict[UUID, Any]:
    if not ids:
        return {}
    return {r["id"]: r for r in conn.execute(select(table).where(table.c.id.in_(ids))).mappings()}


def _add_disks(conn: Connection, ids: list[UUID], data: dict[UUID, OvfData]) -> None:
    da = s.disk_attachments
    attachments = [
        from_row(DiskAttachment, r)
        for r in conn.execute(select(da).where(da.c.entity_id.in_(ids)).order_by(da.c.disk_id)).mappings()
    ]
    disk_ids = list({a.disk_id for a in attachments})
    disks: dict[UUID, Disk] = {}
    for batch in chunks(disk_ids, BATCH):
        for r in conn.execute(select(s.disks).where(s.disks.c.id.in_(batch))).mappings():
            disks[r["id"]] = from_row(Disk, r)
        dd = s.disk_domains
        for disk_id, domain_id in conn.execute(
            select(dd.c.disk_id, dd.c.domain_id).where(dd.c.disk_id.in_(batch)).order_by(dd.c.domain_id)
        ):
            disks[disk_id].domain_ids.append(domain_id)
        v = s.volumes
        for r in conn.execute(select(v).where(v.c.disk_id.in_(batch))).mappings():
            disks[r["disk_id"]].volumes.append(from_row(Volume, r))
    for disk in disks.values():
        disk.volumes = disk.chain() or sorted(disk.volumes, key=lambda x: str(x.id))
    for attachment in attachments:
        data[attachment.entity_id].disks.append(OvfDisk(disk=disks[attachment.disk_id], attachment=attachment))


def _add_nics(conn: Connection, ids: list[UUID], data: dict[UUID, OvfData]) -> None:
    n, p, net = s.nics, s.vnic_profiles, s.networks
    query = (
        select(n, p.c.name.label("profile_name"), net.c.name.label("network_name"))
        .select_from(n.outerjoin(p, n.c.vnic_profile_id == p.c.id).outerjoin(net, p.c.network_id == net.c.id))
        .where(n.c.entity_id.in_(ids))
        .order_by(n.c.entity_id, n.c.name)
    )
    for r in conn.execute(query).mappings():
        data[r["entity_id"]].nics.append(
            OvfNic(nic=from_row(Nic, r), network_name=r["network_name"], profile_name=r["profile_name"])
        )


def _add_snapshots(conn: Connection, ids: list[UUID], data: dict[UUID, OvfData]) -> None:
    sn = s.snapshots
    query = select(sn).where(sn.c.vm_id.in_(ids)).order_by(sn.c.vm_id, sn.c.creation_date, sn.c.id)
    for r in conn.execute(query).mappings():
        data[r["vm_id"]].snapshots.append(from_row(Snapshot, r))


def _add_permissions(conn: Connection, ids: list[UUID], data: dict[UUID, OvfData]) -> None:
    for row in conn.execute(lookups.permissions_query(s.permissions.c.entity_id.in_(ids))).mappings():
        data[row["entity_id"]].permissions.append(Permission(**row))


def _add_affinity(conn: Connection, ids: list[UUID], data: dict[UUID, OvfData]) -> None:
    groups = _names_by_entity(conn, ids, s.affinity_group_members, s.affinity_groups, "group_id")
    labels = _names_by_entity(conn, ids, s.affinity_label_members, s.affinity_labels, "label_id")
    for entity_id in ids:
        data[entity_id].affinity_groups = groups.get(entity_id, [])
        data[entity_id].affinity_labels = labels.get(entity_id, [])


def _names_by_entity(
    conn: Connection, ids: list[UUID], members: Table, named: Table, key: str
) -> dict[UUID, list[str]]:
    """Per entity, the names (sorted) of the groups or labels it is a member of."""
    query = (
        select(members.c.entity_id, named.c.name)
        .select_from(members.join(named, members.c[key] == named.c.id))
        .where(members.c.entity_id.in_(ids))
        .order_by(named.c.name)
    )
    found: dict[UUID, list[str]] = defaultdict(list)
    for entity_id, name in conn.execute(query):
        found[entity_id].append(name)
    return found

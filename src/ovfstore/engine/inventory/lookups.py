"""Queries the commands use to find whom a change concerns: the entities whose OVF mentions the thing
changed (a cluster's name, a template's name, a network's name...), and an entity's data center."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Select, or_, select

from ovfstore.engine.db import schema as s
from ovfstore.engine.errors import NotFound
from ovfstore.model import EntityType

vm = s.vm_static


def ids(conn: Connection, query: object) -> set[UUID]:
    return {row[0] for row in conn.execute(query)}  # type: ignore[call-overload]


def entity_type(conn: Connection, entity_id: UUID) -> EntityType:
    found = conn.execute(select(vm.c.entity_type).where(vm.c.id == entity_id)).scalar()
    if found is None:
        raise NotFound("VM or template", entity_id)
    assert isinstance(found, EntityType)
    return found


def entity_data_center(conn: Connection, entity_id: UUID) -> UUID | None:
    """The data center of a VM or template through its cluster; None for a cluster-less template
    (Blank), which belongs to every data center."""
    query = (
        select(s.clusters.c.data_center_id)
        .select_from(vm.join(s.clusters, vm.c.cluster_id == s.clusters.c.id))
        .where(vm.c.id == entity_id)
    )
    return conn.execute(query).scalar()


def cluster_data_center(conn: Connection, cluster_id: UUID) -> UUID:
    found = conn.execute(select(s.clusters.c.data_center_id).where(s.clusters.c.id == cluster_id)).scalar()
    if found is None:
        raise NotFound("cluster", cluster_id)
    assert isinstance(found, UUID)
    return found


def entities_in_cluster(conn: Connection, cluster_id: UUID) -> set[UUID]:
    return ids(conn, select(vm.c.id).where(vm.c.cluster_id == cluster_id))


def entities_using_template(conn: Connection, template_id: UUID) -> set[UUID]:
    """VMs made from the template (their OVF names it) and its versions (theirs name their base)."""
    return ids(
        conn,
        select(vm.c.id).where(or_(vm.c.template_id == template_id, vm.c.base_template_id == template_id)),
    ) - {template_id}


def entities_with_profiles(conn: Connection, profile_ids: Iterable[UUID]) -> set[UUID]:
    wanted = list(profile_ids)
    if not wanted:
        return set()
    return ids(conn, select(s.nics.c.entity_id).where(s.nics.c.vnic_profile_id.in_(wanted)).distinct())


def profiles_of_network(conn: Connection, network_id: UUID) -> set[UUID]:
    return ids(conn, select(s.vnic_profiles.c.id).where(s.vnic_profiles.c.network_id == network_id))


def entities_with_disk(conn: Connection, disk_id: UUID) -> set[UUID]:
    da = s.disk_attachments
    return ids(conn, select(da.c.entity_id).where(da.c.disk_id == disk_id))


def entities_with_role(conn: Connection, role_id: UUID) -> set[UUID]:
    p = s.permissions
    return ids(conn, select(p.c.entity_id).where(p.c.role_id == role_id).distinct())


def group_members(conn: Connection, group_id: UUID) -> set[UUID]:
    m = s.affinity_group_members
    return ids(conn, select(m.c.entity_id).where(m.c.group_id == group_id))


def label_members(conn: Connection, label_id: UUID) -> set[UUID]:
    m = s.affinity_label_members
    return ids(conn, select(m.c.entity_id).where(m.c.label_id == label_id))


def disk_domains(conn: Connection, disk_id: UUID) -> list[UUID]:
    dd = s.disk_domains
    return [r[0] for r in conn.execute(select(dd.c.domain_id).where(dd.c.disk_id == disk_id))]


def domain_data_centers(conn: Connection, domain_ids: Iterable[UUID]) -> dict[UUID, UUID | None]:
    wanted = list(domain_ids)
    d = s.storage_domains
    found = {r[0]: r[1] for r in conn.execute(select(d.c.id, d.c.data_center_id).where(d.c.id.in_(wanted)))}
    for domain_id in wanted:
        if domain_id not in found:
            raise NotFound("storage domain", domain_id)
    return found


def macs_in_data_center(conn: Connection, data_center_id: UUID, among: Iterable[str] | None = None) -> set[str]:
    """The MACs of the data center's NICs; with `among`, only those of these (one indexed lookup each,
    however many NICs the data center has: what a check of one NIC needs)."""
    query = (
        select(s.nics.c.mac)
        .select_from(
            s.nics.join(vm, s.nics.c.entity_id == vm.c.id).join(s.clusters, vm.c.cluster_id == s.clusters.c.id)
        )
        .where(s.clusters.c.data_center_id == data_center_id, s.nics.c.mac.is_not(None))
    )
    if among is not None:
        wanted = sorted(set(among))
        if not wanted:
            return set()
        query = query.where(s.nics.c.mac.in_(wanted))
    return {row[0] for row in conn.execute(query)}


def permissions_query(*where: Any) -> Select[Any]:
    """Permissions with their role's name (what an OVF and the API show), ordered by entity, user, role."""
    p, r = s.permissions, s.roles
    return (
        select(p.c.id, p.c.entity_id, p.c.user_name, r.c.name.label("role_name"))
        .select_from(p.join(r, p.c.role_id == r.c.id))
        .where(*where)
        .order_by(p.c.entity_id, p.c.user_name, r.c.name)
    )

"""Commands on affinity groups (of one cluster) and affinity labels, and their members. An OVF names
the groups and labels its entity belongs to: renaming one bumps its members, and joining or leaving
bumps the member."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Column, Table, delete, insert

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import values
from ovfstore.engine.errors import Conflict
from ovfstore.engine.inventory import lookups
from ovfstore.engine.inventory.base import Service, Tx, changed, check_name, exists, one, unique_name, update_row
from ovfstore.engine.inventory.changes import UNSET, ChangeSet, Unset
from ovfstore.engine.inventory.fields import check_text
from ovfstore.model import AffinityGroup, AffinityLabel, Cluster

g, gm = s.affinity_groups, s.affinity_group_members
lb, lm = s.affinity_labels, s.affinity_label_members


@dataclass(frozen=True, slots=True, kw_only=True)
class AffinityGroupChanges(ChangeSet):
    name: str | Unset = UNSET
    description: str | Unset = UNSET
    positive: bool | Unset = UNSET
    enforcing: bool | Unset = UNSET


@dataclass(frozen=True, slots=True, kw_only=True)
class AffinityLabelChanges(ChangeSet):
    name: str | Unset = UNSET


class AffinityGroupService(Service):
    def add(self, group: AffinityGroup) -> AffinityGroup:
        check_name(group.name, "affinity group")
        check_text(group, "affinity group")
        with self._tx() as tx:
            one(tx.conn, s.clusters, Cluster, group.cluster_id, "cluster")
            _unique_group_name(tx, group)
            tx.conn.execute(insert(g).values(values(group, g)))
        return group

    def update(self, group_id: UUID, changes: AffinityGroupChanges) -> AffinityGroup:
        with self._tx() as tx:
            _, new, effective = changed(tx, g, AffinityGroup, group_id, changes, "affinity group")
            if "name" in effective:
                _unique_group_name(tx, new)
                tx.bump(lookups.group_members(tx.conn, group_id))
            update_row(tx.conn, g, group_id, effective)
        return new

    def remove(self, group_id: UUID) -> None:
        with self._tx() as tx:
            one(tx.conn, g, AffinityGroup, group_id, "affinity group")
            tx.bump(lookups.group_members(tx.conn, group_id))
            tx.conn.execute(delete(g).where(g.c.id == group_id))

    def add_member(self, group_id: UUID, entity_id: UUID) -> None:
        """Put a VM or template of the group's cluster in the group; a member already in stays."""
        with self._tx() as tx:
            group = one(tx.conn, g, AffinityGroup, group_id, "affinity group")
            lookups.entity_type(tx.conn, entity_id)
            if entity_id not in lookups.entities_in_cluster(tx.conn, group.cluster_id):
                raise Conflict(f"{entity_id} is not in the cluster of affinity group {group.name!r}")
            _join(tx, gm, gm.c.group_id, group_id, entity_id)


class AffinityLabelService(Service):
    def add(self, label: AffinityLabel) -> AffinityLabel:
        check_name(label.name, "affinity label")
        check_text(label, "affinity label")
        with self._tx() as tx:
            unique_name(tx.conn, lb, label.name, "affinity label")
            tx.conn.execute(insert(lb).values(values(label, lb)))
        return label

    def update(self, label_id: UUID, changes: AffinityLabelChanges) -> AffinityLabel:
        with self._tx() as tx:
            _, new, effective = changed(tx, lb, AffinityLabel, label_id, changes, "affinity label")
            if "name" in effective:
                unique_name(tx.conn, lb, new.name, "affinity label")
                tx.bump(lookups.label_members(tx.conn, label_id))
            update_row(tx.conn, lb, label_id, effective)
        return new

    def add_member(self, label_id: UUID, entity_id: UUID) -> None:
        with self._tx() as tx:
            one(tx.conn, lb, AffinityLabel, label_id, "affinity label")
            lookups.entity_type(tx.conn, entity_id)
            _join(tx, lm, lm.c.label_id, label_id, entity_id)

    def remove_member(self, label_id: UUID, entity_id: UUID) -> None:
        with self._tx() as tx:
            _leave(tx, lm, lm.c.label_id, label_id, entity_id)


def _unique_group_name(tx: Tx, group: AffinityGroup) -> None:
    if exists(tx.conn, g, g.c.cluster_id == group.cluster_id, g.c.name == group.name):
        raise Conflict(f"affinity group name {group.name!r} is already used in this cluster")


def _join(tx: Tx, members: Table, owner: Column[Any], owner_id: UUID, entity_id: UUID) -> None:
    """Add `entity_id` to the members of `owner_id` unless it is one already; only a new member bumps."""
    if not exists(tx.conn, members, owner == owner_id, members.c.entity_id == entity_id):
        tx.conn.execute(insert(members).values({owner.name: owner_id, "entity_id": entity_id}))
        tx.bump([entity_id])


def _leave(tx: Tx, members: Table, owner: Column[Any], owner_id: UUID, entity_id: UUID) -> None:
    result = tx.conn.execute(delete(members).where(owner == owner_id, members.c.entity_id == entity_id))
    if result.rowcount:
        tx.bump([entity_id])

"""Commands on clusters. An OVF names its cluster and that cluster's compatibility version: changing
either bumps every VM and template of the cluster."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import delete, insert

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import values
from ovfstore.engine.errors import Conflict
from ovfstore.engine.inventory import lookups
from ovfstore.engine.inventory.base import Service, changed, check_name, exists, one, unique_name, update_row
from ovfstore.engine.inventory.changes import UNSET, ChangeSet, Unset
from ovfstore.engine.inventory.fields import check_text
from ovfstore.model import BiosType, Cluster, DataCenter

c = s.clusters


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterChanges(ChangeSet):
    name: str | Unset = UNSET
    description: str | Unset = UNSET
    comment: str | Unset = UNSET
    compatibility_version: str | Unset = UNSET
    cpu_type: str | Unset = UNSET
    bios_type: BiosType | Unset = UNSET


class ClusterService(Service):
    def add(self, cluster: Cluster) -> Cluster:
        check_name(cluster.name, "cluster")
        check_text(cluster, "cluster")
        with self._tx() as tx:
            one(tx.conn, s.data_centers, DataCenter, cluster.data_center_id, "data center")
            unique_name(tx.conn, c, cluster.name, "cluster")
            tx.conn.execute(insert(c).values(values(cluster, c)))
        return cluster

    def update(self, cluster_id: UUID, changes: ClusterChanges) -> Cluster:
        with self._tx() as tx:
            _, new, effective = changed(tx, c, Cluster, cluster_id, changes, "cluster")
            if "name" in effective:
                unique_name(tx.conn, c, new.name, "cluster")
            update_row(tx.conn, c, cluster_id, effective)
            if {"name", "compatibility_version"} & effective.keys():
                tx.bump(lookups.entities_in_cluster(tx.conn, cluster_id))
        return new

    def remove(self, cluster_id: UUID) -> None:
        with self._tx() as tx:
            one(tx.conn, c, Cluster, cluster_id, "cluster")
            if lookups.entities_in_cluster(tx.conn, cluster_id):
                raise Conflict(f"cluster {cluster_id} still has VMs or templates; remove or move them first")
            if exists(tx.conn, s.hosts, s.hosts.c.cluster_id == cluster_id):
                raise Conflict(f"cluster {cluster_id} still has hosts; remove them first")
            tx.conn.execute(delete(c).where(c.c.id == cluster_id))

    def get(self, cluster_id: UUID) -> Cluster:
        return self._get(c, Cluster, cluster_id, "cluster")

    def list(self, data_center_id: UUID | None = None) -> list[Cluster]:
        return self._list(c, Cluster, *([] if data_center_id is None else [c.c.data_center_id == data_center_id]))

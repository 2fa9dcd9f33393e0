"""Commands on hosts, each the address of its agent. No OVF names a host: these bump nothing."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import delete, insert

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import values
from ovfstore.engine.errors import InvalidInput
from ovfstore.engine.inventory.base import Service, changed, check_name, one, unique_name, update_row
from ovfstore.engine.inventory.changes import UNSET, ChangeSet, Unset
from ovfstore.engine.inventory.fields import check_text
from ovfstore.model import Cluster, Host, HostStatus

h = s.hosts


@dataclass(frozen=True, slots=True, kw_only=True)
class HostChanges(ChangeSet):
    name: str | Unset = UNSET
    address: str | Unset = UNSET
    description: str | Unset = UNSET
    status: HostStatus | Unset = UNSET


class HostService(Service):
    def add(self, host: Host) -> Host:
        check_name(host.name, "host")
        check_text(host, "host")
        if not host.address.strip():
            raise InvalidInput("a host needs the address of its agent (http://host:port)")
        with self._tx() as tx:
            one(tx.conn, s.clusters, Cluster, host.cluster_id, "cluster")
            unique_name(tx.conn, h, host.name, "host")
            tx.conn.execute(insert(h).values(values(host, h)))
        return host

    def update(self, host_id: UUID, changes: HostChanges) -> Host:
        with self._tx() as tx:
            _, new, effective = changed(tx, h, Host, host_id, changes, "host")
            if "name" in effective:
                unique_name(tx.conn, h, new.name, "host")
            update_row(tx.conn, h, host_id, effective)
        return new

    def remove(self, host_id: UUID) -> None:
        with self._tx() as tx:
            one(tx.conn, h, Host, host_id, "host")
            tx.conn.execute(delete(h).where(h.c.id == host_id))

    def get(self, host_id: UUID) -> Host:
        return self._get(h, Host, host_id, "host")

    def list(self, cluster_id: UUID | None = None) -> list[Host]:
        return self._list(h, Host, *([] if cluster_id is None else [h.c.cluster_id == cluster_id]))

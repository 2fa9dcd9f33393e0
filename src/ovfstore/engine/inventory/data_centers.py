"""Commands on data centers. No OVF names a data center: these bump nothing."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import delete, insert, select

from ovfstore.engine import macs
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import values
from ovfstore.engine.errors import Conflict
from ovfstore.engine.inventory import lookups
from ovfstore.engine.inventory.base import Service, changed, check_name, exists, one, unique_name, update_row
from ovfstore.engine.inventory.changes import UNSET, ChangeSet, Unset
from ovfstore.engine.inventory.fields import check_text
from ovfstore.model import DataCenter, DataCenterStatus

dcs = s.data_centers


@dataclass(frozen=True, slots=True, kw_only=True)
class DataCenterChanges(ChangeSet):
    name: str | Unset = UNSET
    description: str | Unset = UNSET
    comment: str | Unset = UNSET
    local: bool | Unset = UNSET
    compatibility_version: str | Unset = UNSET
    status: DataCenterStatus | Unset = UNSET
    mac_pool_start: str | Unset = UNSET
    mac_pool_end: str | Unset = UNSET


class DataCenterService(Service):
    def add(self, dc: DataCenter) -> DataCenter:
        check_name(dc.name, "data center")
        check_text(dc, "data center")
        dc.mac_pool_start, dc.mac_pool_end = macs.check_range(dc.mac_pool_start, dc.mac_pool_end)
        with self._tx() as tx:
            unique_name(tx.conn, dcs, dc.name, "data center")
            tx.conn.execute(insert(dcs).values(values(dc, dcs)))
        return dc

    def update(self, dc_id: UUID, changes: DataCenterChanges) -> DataCenter:
        with self._tx() as tx:
            _, new, effective = changed(tx, dcs, DataCenter, dc_id, changes, "data center")
            if "name" in effective:
                unique_name(tx.conn, dcs, new.name, "data center")
            if {"mac_pool_start", "mac_pool_end"} & effective.keys():
                new.mac_pool_start, new.mac_pool_end = macs.check_range(new.mac_pool_start, new.mac_pool_end)
                effective.update(mac_pool_start=new.mac_pool_start, mac_pool_end=new.mac_pool_end)
            update_row(tx.conn, dcs, dc_id, effective)
        return new

    def remove(self, dc_id: UUID) -> None:
        """Remove an empty data center, with its networks and their vNIC profiles."""
        with self._tx() as tx:
            one(tx.conn, dcs, DataCenter, dc_id, "data center")
            if exists(tx.conn, s.clusters, s.clusters.c.data_center_id == dc_id):
                raise Conflict(f"data center {dc_id} still has clusters; remove them first")
            if exists(tx.conn, s.storage_domains, s.storage_domains.c.data_center_id == dc_id):
                raise Conflict(f"data center {dc_id} still has storage domains attached; detach them first")
            network_ids = lookups.ids(tx.conn, select(s.networks.c.id).where(s.networks.c.data_center_id == dc_id))
            if network_ids:
                profiles = s.vnic_profiles
                tx.conn.execute(delete(profiles).where(profiles.c.network_id.in_(network_ids)))
                tx.conn.execute(delete(s.networks).where(s.networks.c.id.in_(network_ids)))
            tx.conn.execute(delete(dcs).where(dcs.c.id == dc_id))

    def get(self, dc_id: UUID) -> DataCenter:
        return self._get(dcs, DataCenter, dc_id, "data center")

    def list(self) -> list[DataCenter]:
        return self._list(dcs, DataCenter)

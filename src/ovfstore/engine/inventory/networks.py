"""Commands on logical networks. A NIC's item in the OVF names its network: renaming a network bumps
every entity with a NIC on one of its vNIC profiles."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import delete, insert

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import values
from ovfstore.engine.errors import Conflict, InvalidInput
from ovfstore.engine.inventory import lookups
from ovfstore.engine.inventory.base import Service, Tx, changed, check_name, exists, one, update_row
from ovfstore.engine.inventory.changes import UNSET, ChangeSet, Unset
from ovfstore.engine.inventory.fields import check_text
from ovfstore.model import DataCenter, Network

n = s.networks


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkChanges(ChangeSet):
    name: str | Unset = UNSET
    description: str | Unset = UNSET
    vlan_id: int | Unset | None = UNSET
    mtu: int | Unset = UNSET
    vm_network: bool | Unset = UNSET


class NetworkService(Service):
    def add(self, network: Network) -> Network:
        check_name(network.name, "network")
        check_text(network, "network")
        _check_vlan(network.vlan_id)
        with self._tx() as tx:
            one(tx.conn, s.data_centers, DataCenter, network.data_center_id, "data center")
            _unique_name(tx, network)
            tx.conn.execute(insert(n).values(values(network, n)))
        return network

    def update(self, network_id: UUID, changes: NetworkChanges) -> Network:
        with self._tx() as tx:
            _, new, effective = changed(tx, n, Network, network_id, changes, "network")
            _check_vlan(new.vlan_id)
            if "name" in effective:
                _unique_name(tx, new)
                profiles = lookups.profiles_of_network(tx.conn, network_id)
                tx.bump(lookups.entities_with_profiles(tx.conn, profiles))
            update_row(tx.conn, n, network_id, effective)
        return new

    def remove(self, network_id: UUID) -> None:
        """Remove a network no NIC uses, with its vNIC profiles."""
        with self._tx() as tx:
            one(tx.conn, n, Network, network_id, "network")
            profiles = lookups.profiles_of_network(tx.conn, network_id)
            if lookups.entities_with_profiles(tx.conn, profiles):
                raise Conflict(f"network {network_id} is used by NICs; unplug or move them first")
            tx.conn.execute(delete(s.vnic_profiles).where(s.vnic_profiles.c.network_id == network_id))
            tx.conn.execute(delete(n).where(n.c.id == network_id))

    def get(self, network_id: UUID) -> Network:
        return self._get(n, Network, network_id, "network")

    def list(self, data_center_id: UUID | None = None) -> list[Network]:
        return self._list(n, Network, *([] if data_center_id is None else [n.c.data_center_id == data_center_id]))


def _unique_name(tx: Tx, network: Network) -> None:
    if exists(tx.conn, n, n.c.data_center_id == network.data_center_id, n.c.name == network.name):
        raise Conflict(f"network name {network.name!r} is already used in this data center")


def _check_vlan(vlan_id: int | None) -> None:
    if vlan_id is not None and not 0 <= vlan_id <= 4094:
        raise InvalidInput(f"VLAN id {vlan_id} is out of range 0..4094")

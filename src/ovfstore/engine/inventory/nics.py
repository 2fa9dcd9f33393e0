"""Commands on the NICs of VMs and templates. A NIC is in its entity's OVF, so every change bumps it.
A VM's NIC without a MAC gets the next free one of its data center's pool."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import delete, insert

from ovfstore.engine import macs
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import values
from ovfstore.engine.errors import Conflict
from ovfstore.engine.inventory import entities, lookups
from ovfstore.engine.inventory.base import Service, Tx, check_name, exists, one, update_row
from ovfstore.engine.inventory.changes import UNSET, ChangeSet, Unset, apply
from ovfstore.engine.inventory.fields import check_text
from ovfstore.model import DataCenter, Network, Nic, NicInterface, Template, Vm, VnicProfile

n = s.nics


@dataclass(frozen=True, slots=True, kw_only=True)
class NicChanges(ChangeSet):
    name: str | Unset = UNSET
    mac: str | Unset | None = UNSET
    vnic_profile_id: UUID | Unset | None = UNSET
    interface: NicInterface | Unset = UNSET
    linked: bool | Unset = UNSET
    plugged: bool | Unset = UNSET


class NicService(Service):
    def add(self, nic: Nic) -> Nic:
        check_name(nic.name, "NIC")
        check_text(nic, "NIC")
        with self._tx() as tx:
            entity = entities.load(tx, nic.entity_id)
            _unique_name(tx, entity, nic.name)
            _check(tx, entity, nic, allocate=isinstance(entity, Vm))
            tx.conn.execute(insert(n).values(values(nic, n)))
            tx.bump([nic.entity_id])
        return nic

    def update(self, nic_id: UUID, changes: NicChanges) -> Nic:
        with self._tx() as tx:
            old = one(tx.conn, n, Nic, nic_id, "NIC")
            new, effective = apply(old, changes, "NIC")
            if not effective:
                return new
            entity = entities.load(tx, old.entity_id)
            if "name" in effective:
                check_name(new.name, "NIC")
                _unique_name(tx, entity, new.name)
            _check(tx, entity, new, allocate=False, skip_mac=old.mac)
            effective["mac"] = new.mac
            update_row(tx.conn, n, nic_id, effective)
            tx.bump([old.entity_id])
        return new

    def remove(self, nic_id: UUID) -> None:
        with self._tx() as tx:
            old = one(tx.conn, n, Nic, nic_id, "NIC")
            tx.conn.execute(delete(n).where(n.c.id == nic_id))
            tx.bump([old.entity_id])

    def list(self, entity_id: UUID) -> list[Nic]:
        return self._list(n, Nic, n.c.entity_id == entity_id)


def _unique_name(tx: Tx, entity: Vm | Template, name: str) -> None:
    if exists(tx.conn, n, n.c.entity_id == entity.id, n.c.name == name):
        raise Conflict(f"{entity.name!r} already has a NIC named {name!r}")


def _check(tx: Tx, entity: Vm | Template, nic: Nic, *, allocate: bool, skip_mac: str | None = None) -> None:
    """The profile must be of the entity's data center; the MAC is normalized, and in a data center it
    must be free and in its pool (or, with `allocate`, is the next free one)."""
    dc_id = lookups.entity_data_center(tx.conn, entity.id)
    if nic.vnic_profile_id is not None:
        profile = one(tx.conn, s.vnic_profiles, VnicProfile, nic.vnic_profile_id, "vNIC profile")
        network = one(tx.conn, s.networks, Network, profile.network_id, "network")
        if dc_id is not None and network.data_center_id != dc_id:
            raise Conflict(f"vNIC profile {profile.name!r} belongs to a network of another data center")
    if dc_id is None:
        if nic.mac is not None:
            nic.mac = macs.normalize(nic.mac)
        return
    dc = one(tx.conn, s.data_centers, DataCenter, dc_id, "data center")
    if nic.mac is None:
        if allocate:
            used = lookups.macs_in_data_center(tx.conn, dc_id)
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
    if lookups.macs_in_data_center(tx.conn, dc_id, [nic.mac]):
        raise Conflict(f"MAC {nic.mac} is already used in data center {dc.name!r}; leave it empty for a free one")

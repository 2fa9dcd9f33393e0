"""Commands on vNIC profiles, through which NICs use a network. A NIC's item in the OVF names its
profile: renaming a profile or moving it to another network bumps every entity with a NIC using it."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import delete, insert

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import values
from ovfstore.engine.errors import Conflict
from ovfstore.engine.inventory import lookups
from ovfstore.engine.inventory.base import Service, Tx, changed, check_name, exists, one, update_row
from ovfstore.engine.inventory.changes import UNSET, ChangeSet, Unset
from ovfstore.engine.inventory.fields import check_text
from ovfstore.model import Network, VnicProfile

p = s.vnic_profiles


@dataclass(frozen=True, slots=True, kw_only=True)
class VnicProfileChanges(ChangeSet):
    name: str | Unset = UNSET
    description: str | Unset = UNSET
    network_id: UUID | Unset = UNSET


class VnicProfileService(Service):
    def add(self, profile: VnicProfile) -> VnicProfile:
        check_name(profile.name, "vNIC profile")
        check_text(profile, "vNIC profile")
        with self._tx() as tx:
            one(tx.conn, s.networks, Network, profile.network_id, "network")
            _unique_name(tx, profile)
            tx.conn.execute(insert(p).values(values(profile, p)))
        return profile

    def update(self, profile_id: UUID, changes: VnicProfileChanges) -> VnicProfile:
        with self._tx() as tx:
            old, new, effective = changed(tx, p, VnicProfile, profile_id, changes, "vNIC profile")
            if "network_id" in effective:
                old_net = one(tx.conn, s.networks, Network, old.network_id, "network")
                new_net = one(tx.conn, s.networks, Network, new.network_id, "network")
                if old_net.data_center_id != new_net.data_center_id:
                    raise Conflict("a vNIC profile cannot move to a network of another data center")
            if {"name", "network_id"} & effective.keys():
                _unique_name(tx, new)
                tx.bump(lookups.entities_with_profiles(tx.conn, [profile_id]))
            update_row(tx.conn, p, profile_id, effective)
        return new

    def remove(self, profile_id: UUID) -> None:
        with self._tx() as tx:
            one(tx.conn, p, VnicProfile, profile_id, "vNIC profile")
            if lookups.entities_with_profiles(tx.conn, [profile_id]):
                raise Conflict(f"vNIC profile {profile_id} is used by NICs; change them first")
            tx.conn.execute(delete(p).where(p.c.id == profile_id))

    def get(self, profile_id: UUID) -> VnicProfile:
        return self._get(p, VnicProfile, profile_id, "vNIC profile")

    def list(self, network_id: UUID | None = None) -> list[VnicProfile]:
        return self._list(p, VnicProfile, *([] if network_id is None else [p.c.network_id == network_id]))


def _unique_name(tx: Tx, profile: VnicProfile) -> None:
    if exists(tx.conn, p, p.c.network_id == profile.network_id, p.c.name == profile.name):
        raise Conflict(f"vNIC profile name {profile.name!r} is already used on this network")

"""Commands on storage domains as the inventory knows them. No OVF names a domain, but adding one,
attaching or activating it (`data_center_id`, `status`) or changing its number of OVF stores tells the
updater to create or rewrite its stores. Storage work (attach, detach, create disks) is `engine/domains.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import delete, insert, select

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import values
from ovfstore.engine.errors import Conflict, InvalidInput
from ovfstore.engine.inventory import lookups
from ovfstore.engine.inventory.base import Service, Tx, changed, check_name, one, unique_name, update_row
from ovfstore.engine.inventory.changes import UNSET, ChangeSet, Unset, apply
from ovfstore.engine.inventory.fields import check_text
from ovfstore.model import DataCenter, DomainStatus, StorageDomain
from ovfstore.store.quoting import quoted

MAX_OVF_STORES = 16  # oVirt accepts 0..16 OVF stores per domain
d = s.storage_domains


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageDomainChanges(ChangeSet):
    name: str | Unset = UNSET
    description: str | Unset = UNSET
    comment: str | Unset = UNSET
    status: DomainStatus | Unset = UNSET
    master: bool | Unset = UNSET
    ovf_store_count: int | Unset = UNSET
    data_center_id: UUID | Unset | None = UNSET
    # Settings ovfstore keeps and returns (oVirt's), and the file connection's details.
    path: str | Unset = UNSET
    backup: bool | Unset = UNSET
    wipe_after_delete: bool | Unset = UNSET
    discard_after_delete: bool | Unset = UNSET
    warning_low_space_indicator: int | Unset = UNSET
    critical_space_action_blocker: int | Unset = UNSET
    vfs_type: str | Unset = UNSET
    mount_options: str | Unset = UNSET
    nfs_version: str | Unset = UNSET
    nfs_timeo: int | Unset = UNSET
    nfs_retrans: int | Unset = UNSET


class StorageDomainService(Service):
    def add(self, domain: StorageDomain) -> StorageDomain:
        check_name(domain.name, "storage domain")
        check_text(domain, "storage domain")
        _check_store_count(domain.ovf_store_count)
        _check_thresholds(domain)
        if domain.storage_type.is_file and not domain.path:
            raise InvalidInput(f"a {domain.storage_type.value} storage domain needs a path")
        if not domain.storage_type.is_file and not domain.logical_units:
            raise InvalidInput(f"a {domain.storage_type.value} storage domain needs its logical units (LUNs)")
        with self._tx() as tx:
            if domain.data_center_id is not None:
                one(tx.conn, s.data_centers, DataCenter, domain.data_center_id, "data center")
            unique_name(tx.conn, d, domain.name, "storage domain")
            tx.conn.execute(insert(d).values(values(domain, d)))
            tx.domains.add(domain.id)
        return domain

    def update(self, domain_id: UUID, changes: StorageDomainChanges) -> StorageDomain:
        with self._tx() as tx:
            _, new, effective = changed(tx, d, StorageDomain, domain_id, changes, "storage domain")
            if "name" in effective:
                unique_name(tx.conn, d, new.name, "storage domain")
            if "ovf_store_count" in effective:
                _check_store_count(new.ovf_store_count)
            _check_thresholds(new)
            if "data_center_id" in effective:
                if new.data_center_id is not None:
                    one(tx.conn, s.data_centers, DataCenter, new.data_center_id, "data center")
                if _holds_data_disks(tx, domain_id):
                    raise Conflict(
                        f"storage domain {domain_id} holds disks of its data center; it can move to another "
                        "data center only through detach and attach, which keep its OVF stores"
                    )
            update_row(tx.conn, d, domain_id, effective)
            if {"status", "data_center_id", "ovf_store_count"} & effective.keys():
                tx.domains.add(domain_id)
        return new

    def remove(self, domain_id: UUID) -> None:
        """Forget a domain. Its OVF store disks go with it; data disks must be removed or moved first."""
        with self._tx() as tx:
            one(tx.conn, d, StorageDomain, domain_id, "storage domain")
            if _holds_data_disks(tx, domain_id):
                raise Conflict(f"storage domain {domain_id} still holds disks; remove or move them first")
            store_disks = lookups.ids(
                tx.conn, select(s.ovf_stores.c.disk_id).where(s.ovf_stores.c.domain_id == domain_id)
            )
            if store_disks:
                tx.conn.execute(delete(s.disks).where(s.disks.c.id.in_(store_disks)))
            tx.conn.execute(delete(d).where(d.c.id == domain_id))

    def get(self, domain_id: UUID) -> StorageDomain:
        return self._get(d, StorageDomain, domain_id, "storage domain")

    def list(self, data_center_id: UUID | None = None) -> list[StorageDomain]:
        return self._list(d, StorageDomain, *([] if data_center_id is None else [d.c.data_center_id == data_center_id]))


def _holds_data_disks(tx: Tx, domain_id: UUID) -> bool:
    dd, stores = s.disk_domains, s.ovf_stores
    query = select(dd.c.disk_id).where(dd.c.domain_id == domain_id, dd.c.disk_id.not_in(select(stores.c.disk_id)))
    return tx.conn.execute(query.limit(1)).first() is not None


def _check_store_count(count: int) -> None:
    if not 0 <= count <= MAX_OVF_STORES:
        raise InvalidInput(
            f"ovf_store_count {count} is out of range: keep 0 (no OVF stores) to {MAX_OVF_STORES}; 2 is the default"
        )


#: oVirt's NFS versions (its API's `NfsVersion`); "" is stored for "auto".
NFS_VERSIONS = ("", "auto", "v3", "v4", "v4_0", "v4_1", "v4_2")
#: Upper bounds of the numeric settings: a percentage, a size in GiB (the column's int), and NFS's
#: timeout (deciseconds) and retransmissions, which mount(8) keeps in 16 bits.
_NUMBER_RANGES = {
    "warning_low_space_indicator": (100, "a percentage"),
    "critical_space_action_blocker": (2**31 - 1, "GiB"),
    "nfs_timeo": (65535, "deciseconds"),
    "nfs_retrans": (65535, "retransmissions"),
}


def check_settings(changes: StorageDomainChanges) -> None:
    """Refuse settings a POST gives before anything is done on storage (a domain created or imported
    and then refused would be left behind); the same checks `add` and `update` make."""
    _check_thresholds(apply(StorageDomain(name="settings", path="/"), changes, "storage domain")[0])


def _check_thresholds(domain: StorageDomain) -> None:
    for name, (top, unit) in _NUMBER_RANGES.items():
        value = getattr(domain, name)
        if not 0 <= value <= top:
            raise InvalidInput(f"{name} {quoted(value)} is out of range: give 0 to {top} ({unit})")
    if domain.nfs_version not in NFS_VERSIONS:
        raise InvalidInput(
            f"nfs_version {quoted(domain.nfs_version)} is not one of oVirt's: {', '.join(NFS_VERSIONS[1:])}"
        )

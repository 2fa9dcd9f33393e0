"""OVF store volumes: each active data domain attached to a data center keeps `ovf_store_count` of them
(oVirt's default 2; 0 is the operator's choice to keep none).

A store is first recorded as `disabled` (being created), then created through an agent, then marked
`outdated` so the domain step writes it. A creation that failed stays `disabled` with its error and is
tried again on every run: a domain is never left without stores because one attempt failed.
"""

from __future__ import annotations

from datetime import datetime
from uuid import uuid4

from ovfstore.agent.client import AgentClient
from ovfstore.agent.errors import Conflict
from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory import Inventory
from ovfstore.engine.updater import records
from ovfstore.engine.updater.failures import AgentRefused, agent_errors
from ovfstore.engine.updater.records import StoreRecord
from ovfstore.model import OvfStoreStatus, StorageDomain, VolumeType
from ovfstore.store import description
from ovfstore.store.selection import STORE_DISK_TYPE


def ensure_stores(
    db: Database, inventory: Inventory, client: AgentClient, domain: StorageDomain, capacity: int, now: datetime
) -> list[str]:
    """Create the store volumes the domain lacks and retry those whose creation failed. Returns errors;
    raises `HostLost` when the agent does not answer."""
    with inventory.transaction() as tx:
        existing = records.of_domain(tx.conn, domain.id)
        for _ in range(domain.ovf_store_count - len(existing)):
            disk_id = uuid4()
            inventory.disks.add_store_disk(domain.id, disk_id, uuid4(), capacity, now, volume_type=_store_type(domain))
            records.add(tx.conn, domain.id, disk_id, now, status=OvfStoreStatus.DISABLED, error="not created yet")
        pending = [sv for sv in records.of_domain(tx.conn, domain.id) if sv.status is OvfStoreStatus.DISABLED]
    errors = []
    for store in pending:
        try:
            with agent_errors(f"creating OVF store {store.disk_id} failed"):
                _create_volume(client, domain, store)
        except AgentRefused as exc:
            errors.append(str(exc))
            records.set_error(db, store.disk_id, str(exc))
            continue
        records.mark_created(db, store.disk_id, now)
    return errors


def _store_type(domain: StorageDomain) -> VolumeType:
    """Sparse on file domains; on block domains a raw volume is a preallocated LV, as VDSM makes it."""
    return VolumeType.SPARSE if domain.storage_type.is_file else VolumeType.PREALLOCATED


def _create_volume(client: AgentClient, domain: StorageDomain, store: StoreRecord) -> None:
    try:
        client.create_volume(
            domain.id, store.disk_id, store.volume_id, store.capacity, format="RAW",
            type=_store_type(domain).value.upper(),
            disk_type=STORE_DISK_TYPE, description=description.never_written(),
        )  # fmt: skip
    except Conflict:
        # An earlier attempt created it but its answer was lost: take it if it is really there.
        info = client.volume_info(domain.id, store.disk_id, store.volume_id)
        if not info.is_ovf_store:
            raise

"""OVF store volumes: each active data domain attached to a data center keeps `ovf_store_count` of them
(oVirt's default 2; 0 is the operator's choice to keep none).

A store is first recorded as `disabled` (being created), then created through an agent, then marked
`outdated` so the domain step writes it. A creation that failed stays `disabled` with its error and is
tried again on every run: a domain is never left without stores because one attempt failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import Connection, func, insert, select, update

from ovfstore.agent.client import AgentClient
from ovfstore.agent.errors import AgentError, AgentUnavailable, Conflict
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.model import (
    DiskContentType,
    DiskStatus,
    DiskStorageType,
    OvfStoreStatus,
    StorageDomain,
    VolumeFormat,
    VolumeLegality,
    VolumeType,
)
from ovfstore.store import description
from ovfstore.store.description import OVF_STORE

log = logging.getLogger(__name__)
DISK_TYPE = "OVFS"  # DISKTYPE of a store volume since oVirt 4.2 (before: "2")


@dataclass(frozen=True, slots=True)
class StoreVolume:
    disk_id: UUID
    volume_id: UUID
    capacity: int
    status: OvfStoreStatus
    store_generation: int
    last_updated: datetime | None
    last_error: str | None


def store_volumes(conn: Connection, domain_id: UUID) -> list[StoreVolume]:
    st, v = s.ovf_stores, s.volumes
    query = (
        select(
            st.c.disk_id,
            st.c.status,
            st.c.store_generation,
            st.c.last_updated,
            st.c.last_error,
            v.c.id.label("volume_id"),
            v.c.capacity,
        )
        .select_from(st.join(v, v.c.disk_id == st.c.disk_id))
        .where(st.c.domain_id == domain_id)
        .order_by(st.c.disk_id)
    )
    return [
        StoreVolume(
            disk_id=r.disk_id,
            volume_id=r.volume_id,
            capacity=r.capacity,
            status=r.status,
            store_generation=r.store_generation,
            last_updated=r.last_updated,
            last_error=r.last_error,
        )
        for r in conn.execute(query)
    ]


def ensure_stores(db: Database, client: AgentClient, domain: StorageDomain, capacity: int, now: datetime) -> list[str]:
    """Create the store volumes the domain lacks and retry those whose creation failed. Returns errors."""
    with db.write() as conn:
        existing = store_volumes(conn, domain.id)
        for _ in range(domain.ovf_store_count - len(existing)):
            record_store(
                conn,
                domain.id,
                uuid4(),
                uuid4(),
                capacity,
                now,
                status=OvfStoreStatus.DISABLED,
                error="not created yet",
            )
        pending = [sv for sv in store_volumes(conn, domain.id) if sv.status is OvfStoreStatus.DISABLED]
    errors = []
    for store in pending:
        try:
            _create_volume(client, domain.id, store)
        except AgentUnavailable:
            raise  # not this store's fault: the caller tries another host
        except AgentError as exc:
            errors.append(f"creating OVF store {store.disk_id} failed: {exc}")
            _set(db, store.disk_id, last_error=errors[-1])
            continue
        # Created afresh, it holds nothing: it is a never-written store again, first in the write order.
        _set(
            db, store.disk_id, status=OvfStoreStatus.OUTDATED, last_error=None, outdated_since=now,
            last_updated=None, size=None, sha256=None, entity_ids=[],
        )  # fmt: skip
    return errors


def record_store(
    conn: Connection,
    domain_id: UUID,
    disk_id: UUID,
    volume_id: UUID,
    capacity: int,
    now: datetime,
    *,
    status: OvfStoreStatus,
    generation: int = 0,
    size: int | None = None,
    last_updated: datetime | None = None,
    error: str | None = None,
) -> None:
    """Record a store volume of the domain in the engine: its disk, volume and store rows."""
    conn.execute(
        insert(s.disks).values(
            id=disk_id,
            alias=OVF_STORE,
            description=OVF_STORE,
            provisioned_size=capacity,
            shareable=False,
            wipe_after_delete=False,
            content_type=DiskContentType.OVF_STORE,
            status=DiskStatus.OK,
            storage_type=DiskStorageType.IMAGE,
            lun_id=None,
            creation_date=now,
        )
    )
    conn.execute(insert(s.disk_domains).values(disk_id=disk_id, domain_id=domain_id))
    conn.execute(
        insert(s.volumes).values(
            id=volume_id,
            disk_id=disk_id,
            parent_id=None,
            format=VolumeFormat.RAW,
            volume_type=VolumeType.SPARSE,
            capacity=capacity,
            actual_size=0,
            legality=VolumeLegality.LEGAL,
            snapshot_id=None,
            creation_date=now,
        )
    )
    conn.execute(
        insert(s.ovf_stores).values(
            disk_id=disk_id,
            domain_id=domain_id,
            status=status,
            store_generation=generation,
            size=size,
            entity_ids=[],
            last_updated=last_updated,
            outdated_since=now,
            last_error=error,
        )
    )


def _create_volume(client: AgentClient, domain_id: UUID, store: StoreVolume) -> None:
    try:
        client.create_volume(
            domain_id, store.disk_id, store.volume_id, store.capacity, format="RAW", type="SPARSE",
            disk_type=DISK_TYPE, description=description.never_written(),
        )  # fmt: skip
    except Conflict:
        # An earlier attempt created it but its answer was lost: take it if it is really there.
        info = client.volume_info(domain_id, store.disk_id, store.volume_id)
        if not info.is_ovf_store:
            raise


def _set(db: Database, disk_id: UUID, **values: object) -> None:
    with db.write() as conn:
        if values.get("outdated_since") is not None:
            values["outdated_since"] = func.coalesce(s.ovf_stores.c.outdated_since, values["outdated_since"])
        conn.execute(update(s.ovf_stores).where(s.ovf_stores.c.disk_id == disk_id).values(**values))

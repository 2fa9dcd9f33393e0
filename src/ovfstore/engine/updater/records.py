"""The `ovf_stores` rows: the engine's record of each OVF store volume, what state it is in and what it
last received. This module is the only one that reads or writes them (the inventory only looks up which
disks are stores, to keep them when a domain leaves).

A store is `disabled` while its volume is being created (or is missing), `outdated` when its contents
lag behind the cache, `updated` when it holds the current tar. `outdated_since` keeps the first time a
store fell behind, until it is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, RowMapping, Text, func, insert, select, type_coerce, update

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.db.rows import field_names, from_row
from ovfstore.engine.inventory.base import chunks
from ovfstore.engine.ovfsource import BATCH
from ovfstore.model import DomainClass, DomainStatus, OvfStoreStatus

st = s.ovf_stores


@dataclass(frozen=True, slots=True)
class StoreRecord:
    """What the engine records of one store, with its volume (a store has exactly one)."""

    disk_id: UUID
    volume_id: UUID
    capacity: int
    status: OvfStoreStatus
    store_generation: int
    last_updated: datetime | None
    last_error: str | None
    # What incremental writes need (`append.py`); None where unknown, which makes the next write whole.
    size: int | None = None
    sha256: str | None = None
    base_size: int | None = None
    appended: int = 0
    segments: int | None = None
    status_sha256: str | None = None
    unregistered: int | None = None


# --- reading ---------------------------------------------------------------------------------------


def of_domain(conn: Connection, domain_id: UUID) -> list[StoreRecord]:
    v = s.volumes
    # Only the record's columns: `entity_ids` (thousands of UUIDs) is not decoded for nothing.
    columns = [st.c[name] for name in field_names(StoreRecord) if name in st.c]
    query = (
        select(*columns, v.c.id.label("volume_id"), v.c.capacity)
        .select_from(st.join(v, v.c.disk_id == st.c.disk_id))
        .where(st.c.domain_id == domain_id)
        .order_by(st.c.disk_id)
    )
    return [from_row(StoreRecord, row) for row in conn.execute(query).mappings()]


def rows_of_domains(conn: Connection, domain_ids: list[UUID]) -> list[RowMapping]:
    """Every column of the stores of these domains, by domain and disk: for the status views."""
    if not domain_ids:
        return []
    query = select(st).where(st.c.domain_id.in_(domain_ids)).order_by(st.c.domain_id, st.c.disk_id)
    return list(conn.execute(query).mappings())


def known_disk_ids(conn: Connection) -> set[UUID]:
    return set(conn.execute(select(st.c.disk_id)).scalars())


def domains_with_work(conn: Connection) -> set[UUID]:
    """Domains with a store to write (not `updated`) or to create (fewer than `ovf_store_count`)."""
    d = s.storage_domains
    outdated = set(
        conn.execute(select(st.c.domain_id).where(st.c.status != OvfStoreStatus.UPDATED.value).distinct()).scalars()
    )
    counts = select(st.c.domain_id, func.count().label("n")).group_by(st.c.domain_id).subquery()
    lacking = conn.execute(
        select(d.c.id)
        .select_from(d.outerjoin(counts, counts.c.domain_id == d.c.id))
        .where(
            d.c.domain_class == DomainClass.DATA.value,
            d.c.data_center_id.is_not(None),
            d.c.status == DomainStatus.ACTIVE.value,
            d.c.ovf_store_count > func.coalesce(counts.c.n, 0),
        )
    ).scalars()
    return outdated | set(lacking)


# --- writing ---------------------------------------------------------------------------------------


def add(
    conn: Connection,
    domain_id: UUID,
    disk_id: UUID,
    now: datetime,
    *,
    status: OvfStoreStatus,
    generation: int = 0,
    size: int | None = None,
    last_updated: datetime | None = None,
    error: str | None = None,
) -> None:
    """Record a store of the domain (its disk is the inventory's: `add_store_disk`)."""
    row = {
        "disk_id": disk_id, "domain_id": domain_id, "status": status, "store_generation": generation, "size": size,
        "entity_ids": [], "last_updated": last_updated, "outdated_since": now, "last_error": error,
    }  # fmt: skip
    conn.execute(insert(st).values(row))


#: A store whose next write must be whole: nothing known of what an append would extend.
_NOT_APPENDABLE = {"base_size": None, "appended": 0, "segments": None, "status_sha256": None, "unregistered": None}


def mark_created(db: Database, disk_id: UUID, now: datetime) -> None:
    """The store's volume was created afresh: it holds nothing, a never-written store again."""
    _set(
        db, disk_id, status=OvfStoreStatus.OUTDATED, last_error=None, last_updated=None, size=None, sha256=None,
        entity_ids=[], outdated_since=func.coalesce(st.c.outdated_since, now), **_NOT_APPENDABLE,
    )  # fmt: skip


def mark_rejoined(conn: Connection, domain_id: UUID, now: datetime) -> None:
    """The domain (re)joins a data center: its stores missed every change of that data center's entities
    that go into each data domain (none is noted for a domain while it is away), and may hold some of
    another data center's. They are outdated, and their next write is whole."""
    conn.execute(
        update(st)
        .where(st.c.domain_id == domain_id, st.c.status != OvfStoreStatus.DISABLED.value)
        .values(status=OvfStoreStatus.OUTDATED, outdated_since=func.coalesce(st.c.outdated_since, now))
    )
    conn.execute(update(st).where(st.c.domain_id == domain_id).values(**_NOT_APPENDABLE))


def mark_missing(db: Database, disk_id: UUID) -> None:
    """The store's volume is not on storage: out of use until it is created again."""
    _set(db, disk_id, status=OvfStoreStatus.DISABLED, last_error="volume missing; recreating")


@dataclass(frozen=True, slots=True)
class Written:
    """What a store holds after a write: whole (`segments` 1, `appended` 0) or with a segment appended."""

    generation: int
    size: int
    sha256: str  # of the bytes this write sent: the whole tar, or the appended segment
    entity_ids: list[UUID] | list[str]  # UUIDs, or their canonical text
    base_size: int
    appended: int
    segments: int
    status_sha256: str
    unregistered: int


def mark_written(db: Database, disk_id: UUID, written: Written, when: datetime) -> None:
    """The store holds `written.generation`, unless its row has that generation or a later one already: a
    write numbers its generation one past every store's, so such a row was written by another engine
    meanwhile (this one lost the leadership while writing) and describes what storage holds now."""
    with db.write() as conn:
        conn.execute(
            update(st)
            .where(st.c.disk_id == disk_id, st.c.store_generation < written.generation)
            .values(
                status=OvfStoreStatus.UPDATED, store_generation=written.generation, size=written.size,
                sha256=written.sha256, entity_ids=written.entity_ids, last_updated=when, outdated_since=None,
                last_error=None, base_size=written.base_size, appended=written.appended,
                segments=written.segments, status_sha256=written.status_sha256, unregistered=written.unregistered,
            )
        )  # fmt: skip


def entity_ids_of(conn: Connection, disk_id: UUID) -> set[str]:
    """The entities the store's last write left in it, as the column keeps them (canonical text: an
    append's set arithmetic over a 25,000-VM domain makes no UUID objects)."""
    text = conn.execute(select(type_coerce(st.c.entity_ids, Text)).where(st.c.disk_id == disk_id)).scalar_one()
    return {line for line in (text or "").split("\n") if line}


def set_error(db: Database, disk_id: UUID, error: str) -> None:
    _set(db, disk_id, last_error=error)


def set_domain_error(db: Database, domain_id: UUID, error: str) -> None:
    """The domain's stores could not be written: every store not holding the current tar keeps why."""
    with db.write() as conn:
        conn.execute(
            update(st)
            .where(st.c.domain_id == domain_id, st.c.status != OvfStoreStatus.UPDATED.value)
            .values(last_error=error)
        )


def mark_outdated(conn: Connection, domain_ids: set[UUID], now: datetime) -> None:
    """The usable stores of these domains lag behind the cache."""
    for batch in chunks(sorted(domain_ids), BATCH):
        conn.execute(
            update(st)
            .where(st.c.domain_id.in_(batch), st.c.status != OvfStoreStatus.DISABLED.value)
            .values(status=OvfStoreStatus.OUTDATED, outdated_since=func.coalesce(st.c.outdated_since, now))
        )


def _set(db: Database, disk_id: UUID, **values: object) -> None:
    with db.write() as conn:
        conn.execute(update(st).where(st.c.disk_id == disk_id).values(**values))

"""How fresh each domain's OVF stores are: what the API, the command line and the status page show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import RowMapping, select

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.updater import records
from ovfstore.engine.updater.pool import count_outdated_entities
from ovfstore.model import DomainClass, OvfStoreStatus


@dataclass(frozen=True, slots=True)
class StoreStatus:
    disk_id: UUID
    status: OvfStoreStatus
    generation: int
    size: int | None
    sha256: str | None
    entity_count: int
    last_updated: datetime | None
    outdated_since: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class DomainOvfStatus:
    domain_id: UUID
    name: str
    ovf_store_count: int
    stores: tuple[StoreStatus, ...]

    @property
    def up_to_date(self) -> bool:
        """Every store written with the current contents (a domain keeping no stores is never up to date:
        it cannot describe itself)."""
        return bool(self.stores) and all(st.status is OvfStoreStatus.UPDATED for st in self.stores)

    @property
    def outdated_since(self) -> datetime | None:
        times = [st.outdated_since for st in self.stores if st.outdated_since is not None]
        return min(times) if times else None

    @property
    def last_updated(self) -> datetime | None:
        times = [st.last_updated for st in self.stores if st.last_updated is not None]
        return max(times) if times else None

    @property
    def last_error(self) -> str | None:
        errors = [st.last_error for st in self.stores if st.last_error]
        return errors[0] if errors else None

    @property
    def entity_count(self) -> int:
        """Entities in the newest store written."""
        written = [st for st in self.stores if st.last_updated is not None]
        return max(written, key=lambda st: st.last_updated or datetime.min).entity_count if written else 0


def domains_status(db: Database, domain_id: UUID | None = None) -> list[DomainOvfStatus]:
    d = s.storage_domains
    query = select(d.c.id, d.c.name, d.c.ovf_store_count).where(d.c.domain_class == DomainClass.DATA.value)
    if domain_id is not None:
        query = query.where(d.c.id == domain_id)
    with db.read() as conn:
        domains = conn.execute(query.order_by(d.c.name)).all()
        stores: dict[UUID, list[StoreStatus]] = {row.id: [] for row in domains}
        for store_row in records.rows_of_domains(conn, list(stores)):
            stores[store_row["domain_id"]].append(_store_status(store_row))
    return [DomainOvfStatus(row.id, row.name, row.ovf_store_count, tuple(stores[row.id])) for row in domains]


def _store_status(row: RowMapping) -> StoreStatus:
    return StoreStatus(
        disk_id=row["disk_id"], status=row["status"], generation=row["store_generation"], size=row["size"],
        sha256=row["sha256"], entity_count=len(row["entity_ids"]), last_updated=row["last_updated"],
        outdated_since=row["outdated_since"], last_error=row["last_error"],
    )  # fmt: skip


def entities_pending(db: Database) -> int:
    """VMs and templates whose current state is not in the OVF cache yet (changed since the last run, or
    locked): stores can be up to date with the cache and still lag behind these."""
    with db.read() as conn:
        return count_outdated_entities(conn)

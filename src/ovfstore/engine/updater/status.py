"""How fresh each domain's OVF stores are: what the API, the command line and the status page show.

A domain is up to date only when every store holds the current contents, no change is pending on it
(`pending`) and none of its entities is too large to store (`unstorable`): during the updater's debounce,
while an entity is locked, or with an entity left out, the stores may all say `updated` and still lack a
change.

Whether a domain protects, and its state (`DomainOvfStatus.state`), has one definition here, used by the
API, the command line, the page, the metrics and the unprotected list:

- `stores_disabled`: the domain keeps no stores (`ovf_store_count` 0). Not behind (nothing to wait
  for); the entities kept only there are unprotected (`no_store_domain`).
- `never_written`: it keeps stores but none has been written yet (nor has a write failed): behind.
- `stores_failing`: it keeps stores, none holds a usable copy (`StoreStatus.usable`), and writing failed
  or the stores are disabled: behind, and its entities unprotected (`stores_failing`).
- `pending` / `up_to_date`: at least one store holds a usable copy, so the domain protects; a failed
  write or a change not written yet shows as the recovery point growing (`behind`), never as unprotected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import RowMapping, select

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.updater import records
from ovfstore.engine.updater.pending import StoreState, pending_by_domain
from ovfstore.engine.updater.pool import count_outdated_entities
from ovfstore.engine.updater.unstorable import UnstorableEntity, unstorable_entities
from ovfstore.model import DomainClass, OvfStoreStatus, utcnow


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
    entity_ids: frozenset[UUID] = frozenset()  # the entities its last write held
    # Segments it holds (1 after a whole write, more as changes are appended; None where unknown) and the
    # bytes appended since its last whole write.
    segments: int | None = None
    appended: int = 0

    @property
    def usable(self) -> bool:
        """Holds a complete, verified copy (written, its digest recorded) and is not disabled: a later write
        that failed does not take it away (a failed write never damages the last good store)."""
        return self.status is not OvfStoreStatus.DISABLED and self.last_updated is not None and bool(self.sha256)


#: Every state a domain can be in (`DomainOvfStatus.state`), with the words the page and the CLI show.
STATES = {
    "up_to_date": "up to date",
    "pending": "changes pending",
    "stores_failing": "no usable store: failing",
    "never_written": "stores not written yet",
    "stores_disabled": "keeps no OVF stores",
}


@dataclass(frozen=True, slots=True)
class DomainOvfStatus:
    domain_id: UUID
    name: str
    ovf_store_count: int
    stores: tuple[StoreStatus, ...]
    pending_count: int = 0  # entities whose change is not on this domain's stores yet
    oldest_pending_change: datetime | None = None  # when the oldest of those changes was made, if known
    as_of: datetime | None = None  # when this status was taken
    # Entities that belong here but whose OVF is too large for any store: never protected until changed.
    unstorable: tuple[UnstorableEntity, ...] = ()
    data_center_id: UUID | None = None

    @property
    def up_to_date(self) -> bool:
        """Every store written with the current contents and no change pending (a domain keeping no
        stores is never up to date: it cannot describe itself)."""
        stores_current = bool(self.stores) and all(st.status is OvfStoreStatus.UPDATED for st in self.stores)
        return stores_current and self.pending_count == 0 and not self.unstorable

    @property
    def pending_age_s(self) -> float | None:
        """The recovery point: how old the newest copy of the domain's configuration on storage may be.
        Zero when up to date; None when behind since a time nobody recorded or when no store holds a usable
        copy."""
        if self.up_to_date:
            return 0.0
        if self.ovf_store_count > 0 and not self.protects:
            return None  # no usable copy on storage at all: nothing recovers (+Inf in the metrics)
        times = [self.oldest_pending_change] + [u.detected_at for u in self.unstorable]
        since = min((t for t in times if t is not None), default=None) or self.last_updated
        if since is None or self.as_of is None:
            return None
        return max(0.0, (self.as_of - since).total_seconds())

    def behind(self, threshold_s: float) -> bool:
        """Not up to date for `threshold_s` seconds or more (for 0: not up to date), or since a time nobody
        recorded: what `ovfstore status` exits 1 for and the metrics and the page call behind. A domain
        whose stores are disabled is never behind (it waits for nothing); one never written always is."""
        state = self.state
        if state == "stores_disabled":
            return False
        if state in ("never_written", "stores_failing"):
            return True
        if self.up_to_date:
            return False
        age = self.pending_age_s
        return age is None or age >= threshold_s

    @property
    def protects(self) -> bool:
        """The domain keeps stores and at least one holds a usable copy: the entities that belong here are
        on storage, at worst `pending_age_s` old (a failing write makes it behind, not unprotecting)."""
        return self.ovf_store_count > 0 and any(st.usable for st in self.stores)

    def holds(self, entity_id: UUID) -> bool:
        """A usable store of the domain holds a copy of the entity (an older one, if its change is pending)."""
        return self.ovf_store_count > 0 and any(st.usable and entity_id in st.entity_ids for st in self.stores)

    @property
    def state(self) -> str:
        """A key of STATES: see the module's docstring."""
        if self.ovf_store_count == 0:
            return "stores_disabled"
        if self.protects:
            return "up_to_date" if self.up_to_date else "pending"
        tried = any(st.last_updated is not None or st.last_error or st.status is OvfStoreStatus.DISABLED
                    for st in self.stores)  # fmt: skip
        return "stores_failing" if tried else "never_written"

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


def domains_status(
    db: Database, domain_id: UUID | None = None, *, now: datetime | None = None, heard: datetime | None = None
) -> list[DomainOvfStatus]:
    """The status of every data domain (or of one) at `now` (default: the current time). `heard`: when the
    updater heard the first change it has not run for yet (see `pending_by_domain`)."""
    d = s.storage_domains
    query = select(d.c.id, d.c.name, d.c.ovf_store_count, d.c.data_center_id).where(
        d.c.domain_class == DomainClass.DATA.value
    )
    if domain_id is not None:
        query = query.where(d.c.id == domain_id)
    with db.read() as conn:
        domains = conn.execute(query.order_by(d.c.name)).all()
        stores: dict[UUID, list[StoreStatus]] = {row.id: [] for row in domains}
        states: dict[UUID, list[StoreState]] = {row.id: [] for row in domains}
        for store_row in records.rows_of_domains(conn, list(stores)):
            stores[store_row["domain_id"]].append(_store_status(store_row))
            states[store_row["domain_id"]].append(_store_state(store_row))
        pending = pending_by_domain(conn, {row.id: row.data_center_id for row in domains}, states, heard)
        unstorable = {row.id: tuple(unstorable_entities(conn, row.id)) for row in domains}
    as_of = now or utcnow()
    return [
        DomainOvfStatus(
            row.id,
            row.name,
            row.ovf_store_count,
            tuple(stores[row.id]),
            pending_count=len(pending[row.id].entity_ids),
            oldest_pending_change=pending[row.id].oldest,
            as_of=as_of,
            unstorable=unstorable[row.id],
            data_center_id=row.data_center_id,
        )
        for row in domains
    ]


def _store_status(row: RowMapping) -> StoreStatus:
    return StoreStatus(
        disk_id=row["disk_id"], status=row["status"], generation=row["store_generation"], size=row["size"],
        sha256=row["sha256"], entity_count=len(row["entity_ids"]), last_updated=row["last_updated"],
        outdated_since=row["outdated_since"], last_error=row["last_error"],
        entity_ids=frozenset(row["entity_ids"]), segments=row["segments"], appended=row["appended"],
    )  # fmt: skip


def _store_state(row: RowMapping) -> StoreState:
    return StoreState(row["status"], row["last_updated"], row["outdated_since"], tuple(row["entity_ids"]))


def entities_pending(db: Database) -> int:
    """VMs and templates whose current state is not in the OVF cache yet (changed since the last run, or
    locked): stores can be up to date with the cache and still lag behind these."""
    with db.read() as conn:
        return count_outdated_entities(conn)

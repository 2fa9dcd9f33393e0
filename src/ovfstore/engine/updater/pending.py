"""Which changes are not on each domain's stores yet, and since when: the part of the status that stays
true between a change and the run that writes it (the debounce, a lock, a failing domain).

An entity is pending on a domain while:
- its change is not in the OVF cache yet (the pool step's own query, `outdated_entity_ids`): on the
  domains it is on now (`OvfData.domain_ids`, the rule the pool step uses; every data domain of its data
  center when it has none) and on those that stored it last time; a deleted entity on those it was on;
- its change is in the cache but a store of the domain was not rewritten since: cached after the store
  fell behind, or held by that store and gone from the domain.

The oldest pending change is the entity's `changed_at` (when its generation last moved) or, for a store
behind the cache, the store's `outdated_since`: the recovery point, how old the newest copy of the
domain's configuration on storage may be.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, and_, or_, select

from ovfstore.engine.db import schema as s
from ovfstore.engine.inventory.base import chunks
from ovfstore.engine.ovfsource import BATCH, load_ovf_data
from ovfstore.engine.updater.pool import outdated_entity_ids
from ovfstore.model import OvfStoreStatus


@dataclass(frozen=True, slots=True)
class StoreState:
    """What the pending count needs of one store row."""

    status: OvfStoreStatus
    last_updated: datetime | None
    outdated_since: datetime | None
    entity_ids: tuple[UUID, ...]


@dataclass(slots=True)
class Pending:
    entity_ids: set[UUID] = field(default_factory=set)
    oldest: datetime | None = None  # the oldest change among them, when known

    def add(self, entity_id: UUID | None, when: datetime | None) -> None:
        if entity_id is not None:
            self.entity_ids.add(entity_id)
        if when is not None and (self.oldest is None or when < self.oldest):
            self.oldest = when


@dataclass(frozen=True, slots=True)
class _Touch:
    """The domains and data centers (DC-wide) an entity's change not yet cached will mark, and when."""

    domains: frozenset[UUID]
    data_centers: frozenset[UUID]
    when: datetime | None


def pending_by_domain(
    conn: Connection,
    domains: dict[UUID, UUID | None],
    stores: dict[UUID, list[StoreState]],
    heard: datetime | None,
) -> dict[UUID, Pending]:
    """Per domain (given with its data center), its pending entities. `heard` is
    when the updater heard the first change it has not run for yet: the time of a change whose own time
    the database does not keep (a deletion, a row older than `changed_at`)."""
    found = {domain_id: Pending() for domain_id in domains}
    touches = _uncached(conn, heard)
    for domain_id, dc in domains.items():
        for entity_id, touch in touches.items():
            if domain_id in touch.domains or (dc is not None and dc in touch.data_centers):
                found[domain_id].add(entity_id, touch.when)
        behind = [st for st in stores.get(domain_id, []) if st.status is not OvfStoreStatus.UPDATED]
        if behind:
            _not_written(conn, domain_id, dc, behind, found[domain_id])
            for st in behind:
                found[domain_id].add(None, st.outdated_since)
    return found


def _uncached(conn: Connection, heard: datetime | None) -> dict[UUID, _Touch]:
    ids = outdated_entity_ids(conn)
    previous = _memberships(conn, ids)
    changed = _changed_at(conn, ids)
    touches: dict[UUID, _Touch] = {}
    for entity_id, data in load_ovf_data(conn, ids).items():
        now = data.domain_ids()
        old_domains, old_dcs = previous.get(entity_id, (set(), set()))
        dcs = old_dcs | ({data.data_center_id} if not now and data.data_center_id is not None else set())
        touches[entity_id] = _Touch(frozenset(now | old_domains), frozenset(dcs), changed.get(entity_id) or heard)
    c = s.ovf_cache
    query = select(c.c.entity_id, c.c.updated_at).where(c.c.deleted.is_(True))
    deleted = {row[0]: row[1] for row in conn.execute(query)}
    for entity_id, (old_domains, old_dcs) in _memberships(conn, list(deleted)).items():
        touches[entity_id] = _Touch(frozenset(old_domains), frozenset(old_dcs), heard or deleted[entity_id])
    return touches


def _changed_at(conn: Connection, ids: list[UUID]) -> dict[UUID, datetime | None]:
    vm = s.vm_static
    found: dict[UUID, datetime | None] = {}
    for batch in chunks(ids, BATCH):
        found.update(
            {row[0]: row[1] for row in conn.execute(select(vm.c.id, vm.c.changed_at).where(vm.c.id.in_(batch)))}
        )
    return found


def _memberships(conn: Connection, ids: list[UUID]) -> dict[UUID, tuple[set[UUID], set[UUID]]]:
    """Per cached entity: the domains it was stored on, and its data center if it went DC-wide."""
    c, cd = s.ovf_cache, s.ovf_cache_domains
    found: dict[UUID, tuple[set[UUID], set[UUID]]] = {}
    for batch in chunks(ids, BATCH):
        for entity_id, dc_wide, dc in conn.execute(
            select(c.c.entity_id, c.c.dc_wide, c.c.data_center_id).where(c.c.entity_id.in_(batch))
        ):
            found[entity_id] = (set(), {dc} if dc_wide and dc is not None else set())
        for entity_id, domain_id in conn.execute(
            select(cd.c.entity_id, cd.c.domain_id).where(cd.c.entity_id.in_(batch))
        ):
            found[entity_id][0].add(domain_id)
    return found


def _not_written(
    conn: Connection, domain_id: UUID, dc: UUID | None, behind: list[StoreState], pending: Pending
) -> None:
    """Entities cached for the domain since its stores fell behind (all of them when a store behind was
    never written), and those a store behind holds that the domain no longer does (moved away, deleted).
    Times are kept to the second: an entity cached in the second a store fell behind counts, so the count
    may be high by those, never low."""
    c, cd = s.ovf_cache, s.ovf_cache_domains
    times = [st.outdated_since for st in behind if st.outdated_since is not None]
    since = None if any(st.last_updated is None for st in behind) or not times else min(times)
    on_domain = or_(
        c.c.entity_id.in_(select(cd.c.entity_id).where(cd.c.domain_id == domain_id)),
        and_(c.c.dc_wide.is_(True), c.c.data_center_id == dc),
    )
    query = select(c.c.entity_id, c.c.updated_at).where(c.c.deleted.is_(False), on_domain)
    members = {row[0]: row[1] for row in conn.execute(query)}
    for entity_id, cached_at in members.items():
        if since is None or cached_at >= since:
            pending.add(entity_id, None)
    for st in behind:
        for entity_id in st.entity_ids:
            if entity_id not in members:
                pending.add(entity_id, None)

"""Which VMs and templates no OVF store protects, and why: what would be lost if the engine went now.

An entity is protected when a usable store of a domain it belongs on holds a copy of it
(`DomainOvfStatus.holds`; a domain with a usable store is `protects`, the one definition); a copy that
is behind, even one whose last write failed, is still a copy (how far behind is the recovery point,
`status`). Where an entity belongs is the pool step's rule: the domains of its disks, or
every data domain of its data center when it has none (`OvfData.domain_ids`), read as the cache recorded
it (`ovf_cache_domains`, `dc_wide`) and, for an entity whose change the cache lacks, from the entity now.

Reasons, the first that applies:

- `ovf_too_large`: its OVF is over the store member limit (`unstorable`); the stores hold an older OVF
  at best.
- `locked`: its change waits behind a lock (the pool step's `locked_entities`) held for longer than
  `locked_threshold_s`: a task that never finished.
- `no_store_domain`: none of its domains keeps stores (none at all, or `ovf_store_count` 0).
- `stores_failing`: its domains keep stores but none holds a usable copy: disabled, failing, or never
  written yet.
- `not_stored_yet`: its domains hold usable copies, but none of them holds this entity: it was added
  after their last write (for a moment after every new VM; for as long as the writes fail).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import Connection, select

from ovfstore.engine.db import schema as s
from ovfstore.engine.ovfsource import load_ovf_data
from ovfstore.engine.updater.pool import locked_entities, outdated_entity_ids
from ovfstore.engine.updater.status import DomainOvfStatus
from ovfstore.model import BLANK_TEMPLATE_ID, EntityType, OvfStoreStatus

REASONS = {
    "ovf_too_large": "its OVF is too large for a store",
    "locked": "locked for too long: its change cannot be written",
    "no_store_domain": "no disk on any domain that keeps OVF stores",
    "stores_failing": "no store of its domains holds a usable copy: disabled, failing or not written yet",
    "not_stored_yet": "no store holds it yet: it came after its domains' last write",
}


@dataclass(frozen=True, slots=True)
class Unprotected:
    entity_id: UUID
    name: str
    entity_type: EntityType
    reason: str  # a key of REASONS
    detail: str  # the reason for this entity, in words
    kept_on: str  # where its OVF belongs: the domains of its disks, or its data center's for a diskless one
    since: datetime | None  # when the reason began, when known


@dataclass(frozen=True, slots=True)
class _Membership:
    domains: frozenset[UUID]
    data_center_id: UUID | None  # set when it goes to every data domain of its data center (no disk of its own)


def unprotected_entities(
    conn: Connection, statuses: list[DomainOvfStatus], now: datetime, locked_threshold_s: float
) -> list[Unprotected]:
    """Every VM and template (Blank aside) that no domain protects, by name. `statuses`: every data
    domain's status (`domains_status`), taken in the same breath."""
    by_domain = {st.domain_id: st for st in statuses}
    dc_domains: dict[UUID, list[DomainOvfStatus]] = {}
    for st in statuses:
        if st.data_center_id is not None:
            dc_domains.setdefault(st.data_center_id, []).append(st)
    dc_names = {row.id: row.name for row in conn.execute(select(s.data_centers.c.id, s.data_centers.c.name))}
    too_large: dict[UUID, tuple[datetime, list[str]]] = {}
    for st in statuses:
        for u in st.unstorable:
            too_large.setdefault(u.entity_id, (u.detected_at, []))[1].append(st.name)
    outdated = outdated_entity_ids(conn)
    members = _memberships(conn, outdated)
    locked = locked_entities(conn, outdated) if outdated else set()
    stale_lock = now - timedelta(seconds=locked_threshold_s)

    vm = s.vm_static
    query = select(vm.c.id, vm.c.name, vm.c.entity_type, vm.c.changed_at).where(vm.c.id != BLANK_TEMPLATE_ID)
    found: list[Unprotected] = []
    for row in conn.execute(query.order_by(vm.c.name, vm.c.id)):
        kind = EntityType(row.entity_type)
        member = members.get(row.id, _Membership(frozenset(), None))
        if member.data_center_id is not None:
            domains = dc_domains.get(member.data_center_id, [])
            dc_name = dc_names.get(member.data_center_id, str(member.data_center_id))
            kept_on = f"diskless: every data domain of data center {dc_name}"
        else:
            domains = [by_domain[d] for d in sorted(member.domains) if d in by_domain]
            kept_on = ", ".join(sorted(st.name for st in domains)) or "no domain"
        why = _why(row.id, row.changed_at, member, domains, too_large, locked, stale_lock)
        if why is not None:
            reason, detail, since = why
            if member.data_center_id is not None and not domains:
                detail = f"{detail} (data center {dc_names.get(member.data_center_id, '?')} has no data domain)"
            found.append(Unprotected(row.id, row.name, kind, reason, detail, kept_on, since))
    return found


def _why(
    entity_id: UUID,
    changed_at: datetime | None,
    member: _Membership,
    domains: list[DomainOvfStatus],
    too_large: dict[UUID, tuple[datetime, list[str]]],
    locked: set[UUID],
    stale_lock: datetime,
) -> tuple[str, str, datetime | None] | None:
    """The reason, its words and since when; None for a protected entity."""
    if entity_id in too_large:
        detected, names = too_large[entity_id]
        return "ovf_too_large", f"its OVF is too large for a store (left out of {', '.join(names)})", detected
    if entity_id in locked and changed_at is not None and changed_at <= stale_lock:
        return "locked", f"locked since {changed_at:%Y-%m-%d %H:%M:%S} UTC; its change waits", changed_at
    keeping = [st for st in domains if st.state != "stores_disabled"]
    if not keeping:
        if domains:
            listed = ", ".join(st.name for st in domains)
            return "no_store_domain", f"{listed} keep no OVF stores (ovf_store_count 0)", None
        if member.data_center_id is not None:
            return "no_store_domain", "it has no disk of its own and no data domain to be kept on", None
        return "no_store_domain", "it is on no data domain and in no data center", None
    if not any(st.protects for st in keeping):
        return "stores_failing", "; ".join(_why_not(st) for st in keeping), None
    if not any(st.holds(entity_id) for st in keeping):
        waiting = "; ".join(_why_waiting(st) for st in keeping if st.protects)
        return "not_stored_yet", f"no store holds it yet ({waiting})", changed_at
    return None


def _why_waiting(st: DomainOvfStatus) -> str:
    if st.last_error:
        return f"{st.name}: its last write failed ({st.last_error[:200]})"
    return f"{st.name}: its next write will hold it"


def _why_not(st: DomainOvfStatus) -> str:
    if st.last_error:
        return f"{st.name}: failing, no usable copy ({st.last_error[:200]})"
    if st.stores and all(store.status is OvfStoreStatus.DISABLED for store in st.stores):
        return f"{st.name}: stores disabled"
    return f"{st.name}: stores not written yet"


def _memberships(conn: Connection, outdated: list[UUID]) -> dict[UUID, _Membership]:
    """Where each entity belongs: as cached, or as it is now for those whose change the cache lacks."""
    c, cd = s.ovf_cache, s.ovf_cache_domains
    domains: dict[UUID, set[UUID]] = {}
    for entity_id, domain_id in conn.execute(select(cd.c.entity_id, cd.c.domain_id)):
        domains.setdefault(entity_id, set()).add(domain_id)
    query = select(c.c.entity_id, c.c.dc_wide, c.c.data_center_id).where(c.c.deleted.is_(False))
    found: dict[UUID, _Membership] = {}
    for row in conn.execute(query):
        dc_wide = row.data_center_id if row.dc_wide else None
        found[row.entity_id] = _Membership(frozenset(domains.get(row.entity_id, ())), dc_wide)
    for entity_id, data in load_ovf_data(conn, outdated).items():
        now = data.domain_ids()
        found[entity_id] = _Membership(frozenset(now), None if now else data.data_center_id)
    return found

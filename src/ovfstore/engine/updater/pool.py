"""The pool step: bring the OVF cache up to date and mark the domains whose stores must be rewritten.

For every VM and template whose `db_generation` is ahead of its cached `ovf_generation`, unless it is
locked, the OVF is generated from the generation read; if the entity changed while it was being read,
it is left for the next run (the generation is read first, and checked again when the result is
written, in one transaction with the cache row). Outdated are the domains that hold the entity now and
those that stored it last time: a VM whose disk moved leaves its old domain. Deleted entities mark the
domains that stored them. An OVF too large for a store is not cached: the entity is recorded as
unstorable (`unstorable`), an event names it, and the other entities go on as usual.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Integer, Select, delete, func, insert, or_, select, type_coerce

from ovfstore.engine import events
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory.base import chunks
from ovfstore.engine.ovfsource import BATCH, load_ovf_data
from ovfstore.engine.updater import changes, records, unstorable
from ovfstore.model import (
    BLANK_TEMPLATE_ID,
    DiskStatus,
    EntityType,
    OvfData,
    SnapshotStatus,
    TemplateStatus,
    Vm,
    VmStatus,
)
from ovfstore.store.tarstream import MAX_MEMBER

log = logging.getLogger(__name__)
Render = Callable[[OvfData], bytes]


@dataclass(slots=True)
class PoolResult:
    regenerated: set[UUID] = field(default_factory=set)
    locked: set[UUID] = field(default_factory=set)  # skipped until consistent
    raced: set[UUID] = field(default_factory=set)  # changed while read: next run
    removed: set[UUID] = field(default_factory=set)
    outdated_domains: set[UUID] = field(default_factory=set)
    failed: dict[UUID, str] = field(default_factory=dict)  # entity -> why its OVF could not be written
    unstorable: dict[UUID, int] = field(default_factory=dict)  # entity -> the size of its too large OVF


def pool_step(db: Database, render: Render, now: datetime) -> PoolResult:
    result = PoolResult()
    token = changes.new_token()
    with db.read() as conn:
        candidates = _outdated_entities(conn)
        if candidates:
            result.locked = locked_entities(conn, list(candidates))
    ready = [i for i in candidates if i not in result.locked]
    too_large: dict[UUID, set[UUID]] = {}  # entity -> the domains it belongs on
    for batch in chunks(ready, BATCH):
        # Generations were read above, before any data: a change committed after that moves the
        # generation, so the check at write time catches it.
        with db.read() as conn:
            loaded = load_ovf_data(conn, batch)
        rendered, oversized = _render(loaded, render, result)
        with db.write() as conn:
            _store(conn, rendered, candidates, now, result, token)
            recorded = unstorable.record(conn, oversized, candidates, now)
            _drop_oversized_cache(conn, recorded, now, result, token)
        for entity_id in recorded:
            result.unstorable[entity_id] = oversized[entity_id][1]
            too_large[entity_id] = oversized[entity_id][0].domain_ids()
    with db.write() as conn:
        _forget_deleted(conn, now, result, token)
    for entity_id, size in result.unstorable.items():
        _report_unstorable(db, now, entity_id, too_large[entity_id], size)
    return result


def _report_unstorable(db: Database, now: datetime, entity_id: UUID, domain_ids: set[UUID], size: int) -> None:
    """One event per domain the entity belongs on (one without a domain when it goes DC-wide)."""
    message = (
        f"the OVF of VM or template {entity_id} is {size} bytes, over the {MAX_MEMBER} a store member "
        "may be: it is left out of the OVF stores (they keep its previous OVF, if any) until it is made "
        "smaller (shorten its descriptions and comments, or remove devices)"
    )
    targets: list[UUID | None] = [*sorted(domain_ids)] or [None]
    for domain_id in targets:
        events.record(db, now, events.Severity.ERROR, "ovf_too_large", message, domain_id)


def _drop_oversized_cache(conn: Connection, ids: set[UUID], now: datetime, result: PoolResult, token: int) -> None:
    """A cached OVF over the limit (cached before it was enforced) cannot stay as what the stores hold:
    drop it, and rewrite the stores that held it."""
    stale = unstorable.oversized_cached(conn, ids)
    if stale:
        _leave(conn, stale, now, result, token)
        conn.execute(delete(s.ovf_cache).where(s.ovf_cache.c.entity_id.in_(stale)))


def _leave(conn: Connection, ids: list[UUID], now: datetime, result: PoolResult, token: int) -> None:
    """These cached entities leave every domain that stored them: mark those outdated, note the change."""
    touched: set[UUID] = set()
    dc_wide: set[UUID] = set()
    noted: dict[UUID, tuple[set[UUID], set[UUID]]] = {}
    running = _running(conn, ids)
    for entity_id, (domains, dc) in _memberships(conn, ids).items():
        touched |= domains
        if dc is not None:
            dc_wide.add(dc)
        noted[entity_id] = (domains, {dc} if dc is not None else set())
        if entity_id in running:  # a running VM leaves: the status maps of its domains change
            changes.note_status(noted, *noted[entity_id])
    result.outdated_domains |= mark_outdated(conn, touched, dc_wide, now)
    changes.note_memberships(conn, noted, token)


def _running(conn: Connection, ids: list[UUID]) -> dict[UUID, int]:
    """The cached run status of those of these entities that were not down (their stores' status map)."""
    c = s.ovf_cache
    status = type_coerce(c.c.vm_status, Integer)
    found: dict[UUID, int] = {}
    for batch in chunks(ids, BATCH):
        query = select(c.c.entity_id, status).where(c.c.entity_id.in_(batch), status > 0)
        found.update((row[0], row[1]) for row in conn.execute(query))
    return found


def _render(
    loaded: dict[UUID, OvfData], render: Render, result: PoolResult
) -> tuple[dict[UUID, tuple[OvfData, bytes]], dict[UUID, tuple[OvfData, int]]]:
    """The OVF of each entity; those too large for a store apart, with their size only."""
    rendered: dict[UUID, tuple[OvfData, bytes]] = {}
    oversized: dict[UUID, tuple[OvfData, int]] = {}
    for entity_id, data in loaded.items():
        try:
            document = render(data)
        except Exception as exc:  # one entity's failure must not stop the others
            log.exception("cannot write the OVF of %s", entity_id)
            result.failed[entity_id] = f"{exc.__class__.__name__}: {exc}"
            continue
        if unstorable.too_large(document):
            oversized[entity_id] = (data, len(document))
        else:
            rendered[entity_id] = (data, document)
    return rendered, oversized


def _outdated_entities_query() -> Select[tuple[UUID, int]]:
    """VMs and templates whose OVF the cache lacks or holds at an older generation (or over the store
    limit), unless already found too large at their present generation: the one definition."""
    vm, c = s.vm_static, s.ovf_cache
    return (
        select(vm.c.id, vm.c.db_generation)
        .select_from(vm.outerjoin(c, c.c.entity_id == vm.c.id))
        .where(
            vm.c.id != BLANK_TEMPLATE_ID,  # oVirt never stores Blank: every engine has it
            or_(
                c.c.entity_id.is_(None),
                vm.c.db_generation > c.c.ovf_generation,
                c.c.ovf_size > MAX_MEMBER,  # cached before the limit was enforced
            ),
            ~unstorable.is_current(),  # found too large at this generation already: wait for a change
        )
    )


def _outdated_entities(conn: Connection) -> dict[UUID, int]:
    query = _outdated_entities_query().order_by(s.vm_static.c.id)
    return {row.id: row.db_generation for row in conn.execute(query)}


def count_outdated_entities(conn: Connection) -> int:
    """How many entities the next pool step would regenerate (locked ones included)."""
    return int(conn.execute(select(func.count()).select_from(_outdated_entities_query().subquery())).scalar() or 0)


def outdated_entity_ids(conn: Connection) -> list[UUID]:
    """The entities the next pool step would regenerate (locked ones included), for the status."""
    return list(_outdated_entities(conn))


def locked_entities(conn: Connection, ids: list[UUID]) -> set[UUID]:
    """Entities that are in the middle of something: image-locked VMs, locked templates, entities with
    a locked disk or a snapshot being taken. Their OVF would describe a state that is not final."""
    vm, da, d, sn = s.vm_static, s.disk_attachments, s.disks, s.snapshots
    locked: set[UUID] = set()
    for batch in chunks(ids, BATCH):
        locked.update(
            conn.execute(
                select(vm.c.id).where(
                    vm.c.id.in_(batch),
                    or_(
                        vm.c.status == VmStatus.IMAGE_LOCKED.value,
                        vm.c.template_status == TemplateStatus.LOCKED.value,
                    ),
                )
            ).scalars()
        )
        locked.update(
            conn.execute(
                select(da.c.entity_id)
                .select_from(da.join(d, da.c.disk_id == d.c.id))
                .where(da.c.entity_id.in_(batch), d.c.status == DiskStatus.LOCKED.value)
            ).scalars()
        )
        locked.update(
            conn.execute(
                select(sn.c.vm_id).where(sn.c.vm_id.in_(batch), sn.c.status == SnapshotStatus.LOCKED.value)
            ).scalars()
        )
    return locked


def _store(
    conn: Connection,
    rendered: dict[UUID, tuple[OvfData, bytes]],
    read_generations: dict[UUID, int],
    now: datetime,
    result: PoolResult,
    token: int,
) -> None:
    if not rendered:
        return
    vm, c, cd = s.vm_static, s.ovf_cache, s.ovf_cache_domains
    ids = list(rendered)
    # Locked (PostgreSQL) until this transaction ends: a VM deleted meanwhile waits, and then finds the cache
    # row written here to mark deleted, instead of leaving a live row for an entity that is gone.
    query = select(vm.c.id, vm.c.db_generation).where(vm.c.id.in_(ids)).with_for_update()
    current = {r[0]: r[1] for r in conn.execute(query)}
    keep = [i for i in ids if current.get(i) == read_generations[i]]
    result.raced.update(set(ids) - set(keep))
    if not keep:
        return
    previous = _memberships(conn, keep)
    running = _running(conn, keep)
    conn.execute(delete(c).where(c.c.entity_id.in_(keep)))
    unstorable.clear(conn, keep)
    rows, members = [], []
    touched: set[UUID] = set()
    dc_wide: set[UUID] = set()
    noted: dict[UUID, tuple[set[UUID], set[UUID]]] = {}
    for entity_id in keep:
        data, document = rendered[entity_id]
        domains = data.domain_ids()
        row = _cache_row(entity_id, data, document, read_generations[entity_id], now)
        rows.append(row)
        members += [{"entity_id": entity_id, "domain_id": d} for d in sorted(domains)]
        touched |= domains
        if not domains and data.data_center_id is not None:
            dc_wide.add(data.data_center_id)
        old_domains, old_dc = previous.get(entity_id, (set(), None))
        touched |= old_domains
        if old_dc is not None:
            dc_wide.add(old_dc)
        dcs = {dc for dc in (old_dc, None if domains else data.data_center_id) if dc is not None}
        noted[entity_id] = (domains | old_domains, dcs)
        if running.get(entity_id, 0) != int(row["vm_status"] or 0):  # its domains' status maps change
            changes.note_status(noted, *noted[entity_id])
    conn.execute(insert(c), rows)
    if members:
        conn.execute(insert(cd), members)
    result.regenerated.update(keep)
    result.outdated_domains |= mark_outdated(conn, touched, dc_wide, now)
    changes.note_memberships(conn, noted, token)


def _cache_row(entity_id: UUID, data: OvfData, document: bytes, generation: int, now: datetime) -> dict[str, Any]:
    """The `ovf_cache` row of an entity's OVF rendered from `generation`."""
    entity = data.entity
    return {
        "entity_id": entity_id,
        "entity_type": EntityType.VM if isinstance(entity, Vm) else EntityType.TEMPLATE,
        "data_center_id": data.data_center_id,
        "ovf_generation": generation,
        "ovf_data": document,
        "ovf_size": len(document),
        "ovf_sha256": hashlib.sha256(document).hexdigest(),
        "vm_status": entity.status if isinstance(entity, Vm) else None,
        "dc_wide": not data.domain_ids(),
        "deleted": False,
        "updated_at": now,
    }


def _memberships(conn: Connection, ids: list[UUID]) -> dict[UUID, tuple[set[UUID], UUID | None]]:
    """Per cached entity: the domains it was stored on, and its data center if it went DC-wide."""
    c, cd = s.ovf_cache, s.ovf_cache_domains
    found: dict[UUID, tuple[set[UUID], UUID | None]] = {}
    for entity_id, dc_wide, dc in conn.execute(
        select(c.c.entity_id, c.c.dc_wide, c.c.data_center_id).where(c.c.entity_id.in_(ids))
    ):
        found[entity_id] = (set(), dc if dc_wide else None)
    for entity_id, domain_id in conn.execute(select(cd.c.entity_id, cd.c.domain_id).where(cd.c.entity_id.in_(ids))):
        found[entity_id][0].add(domain_id)
    return found


def _forget_deleted(conn: Connection, now: datetime, result: PoolResult, token: int) -> None:
    c = s.ovf_cache
    deleted = list(conn.execute(select(c.c.entity_id).where(c.c.deleted.is_(True))).scalars())
    if not deleted:
        return
    _leave(conn, deleted, now, result, token)
    conn.execute(delete(c).where(c.c.entity_id.in_(deleted)))
    result.removed.update(deleted)


def mark_outdated(
    conn: Connection, domain_ids: Iterable[UUID], data_center_ids: Iterable[UUID], now: datetime
) -> set[UUID]:
    """Mark the stores of these domains, and of every data domain of these data centers, outdated.
    Returns the domains concerned."""
    domains = set(domain_ids).union(*changes.dc_domains(conn, data_center_ids).values())
    records.mark_outdated(conn, domains, now)
    return domains


__all__ = [
    "PoolResult",
    "Render",
    "count_outdated_entities",
    "locked_entities",
    "mark_outdated",
    "outdated_entity_ids",
    "pool_step",
]

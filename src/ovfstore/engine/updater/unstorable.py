"""Entities whose OVF is too large for any store (over `MAX_MEMBER`), and what the updater does about them.

No reader accepts a member over the limit, so the writer never produces one: the pool step leaves such an
entity out, records it here (with the domains it belongs on) and the rest of each store is written
normally. The cache keeps the entity's previous OVF, if it had one that fitted: the stores go on holding
that older version, which a recovery can still use. The entity is not rendered again until it changes.
Status must not call a domain up to date while one of its entities is here: `unstorable_entities`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import ColumnElement, Connection, and_, delete, exists, insert, literal, select

from ovfstore.engine.db import schema as s
from ovfstore.model import DomainClass, OvfData
from ovfstore.store.tarstream import MAX_MEMBER

u = s.ovf_unstorable


@dataclass(frozen=True, slots=True)
class UnstorableEntity:
    entity_id: UUID
    name: str
    generation: int  # the generation whose OVF is too large
    ovf_size: int
    stored_generation: int | None  # the older generation the stores hold instead; None: they hold none
    detected_at: datetime


def is_current() -> ColumnElement[bool]:
    """True for a VM or template already found too large at its present generation (`vm_static` row)."""
    vm = s.vm_static
    return exists(select(u.c.entity_id).where(u.c.entity_id == vm.c.id, u.c.generation == vm.c.db_generation))


def too_large(document: bytes) -> bool:
    return len(document) > MAX_MEMBER


def record(
    conn: Connection, found: dict[UUID, tuple[OvfData, int]], generations: dict[UUID, int], now: datetime
) -> set[UUID]:
    """Record the entities of `found` (data and OVF size) still at the generation read (one changed since
    is rendered again by the next run); returns those recorded."""
    vm = s.vm_static
    recorded: set[UUID] = set()
    for entity_id, (data, size) in found.items():
        conn.execute(delete(u).where(u.c.entity_id == entity_id))
        values = select(
            vm.c.id, vm.c.db_generation, literal(size), literal(data.data_center_id, s.ovf_cache.c.data_center_id.type),
            literal(sorted(data.domain_ids()), u.c.domain_ids.type), literal(now, u.c.detected_at.type),
        ).where(vm.c.id == entity_id, vm.c.db_generation == generations[entity_id])  # fmt: skip
        inserted = conn.execute(
            insert(u).from_select(
                ["entity_id", "generation", "ovf_size", "data_center_id", "domain_ids", "detected_at"], values
            )
        )
        if inserted.rowcount:
            recorded.add(entity_id)
    return recorded


def oversized_cached(conn: Connection, ids: Iterable[UUID]) -> list[UUID]:
    """Of `ids`, those whose cached OVF is over the limit (cached before it was enforced)."""
    c = s.ovf_cache
    return list(
        conn.execute(select(c.c.entity_id).where(c.c.entity_id.in_(list(ids)), c.c.ovf_size > MAX_MEMBER)).scalars()
    )


def clear(conn: Connection, ids: Iterable[UUID]) -> None:
    """These entities have a storable OVF again."""
    conn.execute(delete(u).where(u.c.entity_id.in_(list(ids))))


def unstorable_entities(conn: Connection, domain_id: UUID) -> list[UnstorableEntity]:
    """The VMs and templates that belong on this domain but that its stores cannot hold (or hold only in an
    older version) because their OVF is too large. A domain with any is not up to date."""
    d, vm, c = s.storage_domains, s.vm_static, s.ovf_cache
    domain = conn.execute(select(d.c.data_center_id, d.c.domain_class).where(d.c.id == domain_id)).first()
    if domain is None:
        return []
    query = (
        select(u, vm.c.name, c.c.ovf_generation)
        .select_from(
            u.join(vm, vm.c.id == u.c.entity_id).outerjoin(
                c, and_(c.c.entity_id == u.c.entity_id, c.c.deleted.is_(False))
            )
        )
        .order_by(vm.c.name, u.c.entity_id)
    )
    found = []
    for row in conn.execute(query).mappings():
        dc_wide = not row["domain_ids"] and DomainClass(domain.domain_class) is DomainClass.DATA
        if domain_id in row["domain_ids"] or (dc_wide and row["data_center_id"] == domain.data_center_id):
            found.append(
                UnstorableEntity(
                    entity_id=row["entity_id"], name=row["name"], generation=row["generation"],
                    ovf_size=row["ovf_size"], stored_generation=row["ovf_generation"], detected_at=row["detected_at"],
                )
            )  # fmt: skip
    return found

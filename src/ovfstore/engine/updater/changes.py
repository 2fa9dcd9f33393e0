"""Per domain, the entities changed since its stores were last written (`ovf_store_changes`).

The pool step notes, for each entity it regenerates or forgets, every domain whose store it may change:
those it belongs to now and those it belonged to before (all data domains of its data center for an
entity that goes into every domain). A domain step that appends to the stores (`append.py`) writes just
what these rows name, and deletes the rows it read once every store of the domain holds them; a row
touched again meanwhile carries a newer token and stays.

Rows are kept only for domains whose stores can take an appended segment (a store written whole by this
version, `base_size` known): for the others the next write is whole anyway, and the first update of a
large inventory does not pay for rows nobody reads.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from uuid import UUID

from sqlalchemy import Connection, delete, insert, select, tuple_

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory.base import chunks
from ovfstore.engine.ovfsource import BATCH
from ovfstore.model import DomainClass

ch = s.ovf_store_changes

#: Noted for a domain when its VM status map (the stores' `metadata.json`) may have changed: a VM's run
#: status changed, or a VM that was not down joined or left the domain. No entity has this id.
STATUS = UUID(int=0)

#: Pairs per statement of a tuple `IN`: two bound parameters each, so a statement stays within 999 of
#: them, the default limit of SQLite before 3.32.
PAIRS = BATCH // 2


def new_token() -> int:
    """A pool step's token: a row it touched is told from one touched again later."""
    return secrets.randbits(62)


def appendable_domains(conn: Connection) -> set[UUID]:
    """Domains with a store written whole by this version: the only ones whose changes are noted."""
    st = s.ovf_stores
    return set(conn.execute(select(st.c.domain_id).where(st.c.base_size.is_not(None)).distinct()).scalars())


def dc_domains(conn: Connection, data_center_ids: Iterable[UUID]) -> dict[UUID, set[UUID]]:
    """The data domains of each data center: where an entity with no disk of its own goes."""
    d = s.storage_domains
    found: dict[UUID, set[UUID]] = {}
    wanted = sorted(set(data_center_ids))
    if not wanted:
        return found
    for domain_id, dc in conn.execute(
        select(d.c.id, d.c.data_center_id).where(
            d.c.data_center_id.in_(wanted), d.c.domain_class == DomainClass.DATA.value
        )
    ):
        found.setdefault(dc, set()).add(domain_id)
    return found


def note(conn: Connection, touched: Mapping[UUID, set[UUID]], token: int, eligible: set[UUID]) -> None:
    """Record that each entity of `touched` changed for the domains it maps to (those of `eligible`)."""
    pairs = sorted((d, e) for e, domains in touched.items() for d in domains if d in eligible)
    for batch in chunks(pairs, PAIRS):
        conn.execute(delete(ch).where(tuple_(ch.c.domain_id, ch.c.entity_id).in_(batch)))
        conn.execute(insert(ch), [{"domain_id": d, "entity_id": e, "token": token} for d, e in batch])


def note_memberships(conn: Connection, memberships: Mapping[UUID, tuple[set[UUID], set[UUID]]], token: int) -> None:
    """`note`, for entities given as (the domains, the data centers whose every data domain) they touch."""
    eligible = appendable_domains(conn)
    if not eligible or not memberships:
        return
    by_dc = dc_domains(conn, {dc for _, dcs in memberships.values() for dc in dcs})
    touched = {
        entity_id: domains.union(*(by_dc.get(dc, set()) for dc in dcs))
        for entity_id, (domains, dcs) in memberships.items()
    }
    note(conn, touched, token, eligible)


def note_status(noted: dict[UUID, tuple[set[UUID], set[UUID]]], domains: set[UUID], dcs: set[UUID]) -> None:
    """Add to `noted` (as `note_memberships` takes it) that these domains' status maps changed."""
    had_domains, had_dcs = noted.get(STATUS, (set(), set()))
    noted[STATUS] = (had_domains | domains, had_dcs | dcs)


def pending(conn: Connection, domain_id: UUID) -> dict[UUID, int]:
    """The entities changed for the domain since its stores were written, with their tokens."""
    rows = conn.execute(select(ch.c.entity_id, ch.c.token).where(ch.c.domain_id == domain_id))
    return {row.entity_id: row.token for row in rows}


def consumed(db: Database, domain_id: UUID, read: Mapping[UUID, int]) -> None:
    """Every store of the domain holds the changes `read` (entity -> token): forget those rows, unless a
    later pool step touched them again (another token)."""
    items = sorted(read.items())
    with db.write() as conn:
        for batch in chunks(items, PAIRS):
            conn.execute(delete(ch).where(ch.c.domain_id == domain_id, tuple_(ch.c.entity_id, ch.c.token).in_(batch)))


def forget(conn: Connection, domain_id: UUID) -> None:
    """The domain's stores are to be written whole (or it keeps none): its noted changes are moot."""
    conn.execute(delete(ch).where(ch.c.domain_id == domain_id))

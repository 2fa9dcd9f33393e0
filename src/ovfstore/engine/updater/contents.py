"""What a domain's store tar holds, loaded from the database before the upload starts.

The member list (each entity's OVF size and SHA-256, as the cache recorded them), the unregistered
entities found on the domain, the VM status map, and the OVF documents themselves: all are read in one
read transaction that is finished before the first byte is sent, so the upload never waits on the
database nor holds a transaction open. The documents are read in batches into a spool that keeps
`SPOOL_IN_MEMORY` bytes in memory and the rest in a temporary file: memory stays flat however many VMs
the domain holds, and the tar stream reads them back in the order it writes them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from uuid import UUID

from sqlalchemy import Connection, Integer, Table, and_, func, or_, select, type_coerce

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory.base import chunks
from ovfstore.engine.ovfsource import BATCH
from ovfstore.model import StorageDomain
from ovfstore.store.tarstream import EntityRef

#: Documents beyond this many bytes go to a temporary file (a domain of ~500 VMs fits in memory).
SPOOL_IN_MEMORY = 8 << 20


class DocumentSpool:
    """OVF documents by entity id, written once and read back (in any order) while the tar streams."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 (closed by close())
        self._places: dict[UUID, tuple[int, int]] = {}
        self._end = 0

    def add(self, entity_id: UUID, document: bytes) -> None:
        self._file.seek(self._end)
        self._file.write(document)
        self._places[entity_id] = (self._end, len(document))
        self._end += len(document)

    def fetch(self, ids: Sequence[UUID]) -> list[tuple[UUID, bytes]]:
        """The documents of `ids`, in that order; an id never added reads as empty (the tar stream then
        refuses it: its size is not the one announced)."""
        found = []
        for entity_id in ids:
            offset, size = self._places.get(entity_id, (0, 0))
            self._file.seek(offset)
            found.append((entity_id, self._file.read(size)))
        return found

    def close(self) -> None:
        self._file.close()


@dataclass(slots=True)
class StoreContents:
    """Everything a domain's store tar is built from."""

    entities: list[EntityRef] = field(default_factory=list)
    unregistered: list[EntityRef] = field(default_factory=list)
    vm_status: dict[UUID, int] = field(default_factory=dict)
    documents: DocumentSpool = field(default_factory=DocumentSpool)

    def __enter__(self) -> StoreContents:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.documents.close()


def load_contents(db: Database, domain: StorageDomain) -> StoreContents:
    """What the domain's store holds now, documents included. Close it (`with`) when the tar is sent."""
    contents = StoreContents()
    try:
        with db.read() as conn:
            _load_members(conn, domain, contents)
            _spool(conn, s.ovf_cache, [e.id for e in contents.entities], contents.documents)
            _spool(conn, s.unregistered_entities, [e.id for e in contents.unregistered], contents.documents, domain)
    except BaseException:
        contents.documents.close()
        raise
    return contents


def _load_members(conn: Connection, domain: StorageDomain, contents: StoreContents) -> None:
    """The domain's entities with their cached OVF sizes, the unregistered entities found on it, and the
    run status of its VMs."""
    c, cd, u = s.ovf_cache, s.ovf_cache_domains, s.unregistered_entities
    on_domain = select(cd.c.entity_id).where(cd.c.domain_id == domain.id)
    query = (
        select(c.c.entity_id, c.c.ovf_size, c.c.ovf_sha256, type_coerce(c.c.vm_status, Integer).label("vm_status"))
        .where(
            c.c.deleted.is_(False),
            or_(c.c.entity_id.in_(on_domain), and_(c.c.dc_wide.is_(True), c.c.data_center_id == domain.data_center_id)),
        )
        .order_by(c.c.entity_id)
    )
    rows = conn.execute(query).all()
    contents.entities = [EntityRef(r.entity_id, r.ovf_size, r.ovf_sha256) for r in rows]
    contents.vm_status = {r.entity_id: r.vm_status for r in rows if r.vm_status is not None}
    known = {r.entity_id for r in rows}
    query = (
        select(u.c.entity_id, func.length(u.c.ovf_data), type_coerce(u.c.vm_status, Integer))
        .where(u.c.domain_id == domain.id)
        .order_by(u.c.entity_id)
    )
    for entity_id, size, status in conn.execute(query):
        if entity_id not in known:
            contents.unregistered.append(EntityRef(entity_id, size))
            if status:  # a recovery restarts the VMs that were running, registered or not yet
                contents.vm_status[entity_id] = status


def _spool(
    conn: Connection, table: Table, ids: list[UUID], spool: DocumentSpool, domain: StorageDomain | None = None
) -> None:
    """Copy the `ovf_data` of `ids` from `table` (of this domain's rows, for unregistered entities) into
    the spool, a batch at a time."""
    for batch in chunks(ids, BATCH):
        query = select(table.c.entity_id, table.c.ovf_data).where(table.c.entity_id.in_(batch))
        if domain is not None:
            query = query.where(table.c.domain_id == domain.id)
        for entity_id, document in conn.execute(query):
            spool.add(entity_id, document)

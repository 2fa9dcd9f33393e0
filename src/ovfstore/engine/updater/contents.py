"""What a domain's store tar holds, loaded from the database before the upload starts.

The member list (each entity's OVF size and SHA-256, as the cache recorded them), the unregistered
entities found on the domain, the VM status map, and the OVF documents themselves: all are read in one
read transaction that is finished before the first byte is sent, so the upload never waits on the
database nor holds a transaction open. The last read of that transaction checks the domain is still
attached and writable (`left`): contents read after a detach committed lack what left with the domain,
and must not be written over the stores that describe it. The rows are streamed a batch at a time (`FETCH_BATCH`), each
document appended to a temporary file through a large write buffer: memory stays flat however many VMs
the domain holds, and the tar stream reads the documents back from there, one `pread` each.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from uuid import UUID

from sqlalchemy import ColumnElement, Connection, Integer, and_, or_, select, type_coerce

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.model import DomainStatus, StorageDomain
from ovfstore.store.tarstream import FETCH_BATCH, MAX_MEMBER, EntityRef

#: The spool's write buffer: documents (5-15 KiB each) reach the file in writes of this size, not one
#: write per document.
SPOOL_BUFFER = 1 << 20

#: Domains in these states are written; others (maintenance, unattached...) keep their stores as they are.
WRITABLE = (DomainStatus.ACTIVE, DomainStatus.PREPARING_FOR_MAINTENANCE, DomainStatus.DETACHING)


class DocumentSpool:
    """OVF documents by entity id, written once in the order the database returns them and read back, in
    any order, while the tar streams: one `pread` per document, no seek, so adding never waits on the
    file position and reading never moves it."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(buffering=SPOOL_BUFFER)  # noqa: SIM115 (closed by close())
        self._places: dict[UUID, tuple[int, int]] = {}
        self._end = 0

    def add(self, entity_id: UUID, document: bytes) -> None:
        self._file.write(document)  # appends: nothing else moves the file's position
        self._places[entity_id] = (self._end, len(document))
        self._end += len(document)

    def fetch(self, ids: Sequence[UUID]) -> list[tuple[UUID, bytes]]:
        """The documents of `ids`, in that order; an id never added reads as empty (the tar stream then
        refuses it: its size is not the one announced)."""
        self._file.flush()  # what is still in the write buffer
        fd = self._file.fileno()
        found = []
        for entity_id in ids:
            offset, size = self._places.get(entity_id, (0, 0))
            found.append((entity_id, os.pread(fd, size, offset) if size else b""))
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
    # Why these contents must not be written: the domain left its data center, went into maintenance or
    # was removed while they were read. None when they may be.
    left: str | None = None

    def __enter__(self) -> StoreContents:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.documents.close()


def load_contents(db: Database, domain: StorageDomain) -> StoreContents:
    """What the domain's store holds now, documents included. Close it (`with`) when the tar is sent."""
    contents = StoreContents()
    try:
        with db.read() as conn:
            _load_entities(conn, domain, contents)
            _load_unregistered(conn, domain, contents)
            # Last: at PostgreSQL's READ COMMITTED each statement sees what was committed when it began,
            # so a domain still attached here was attached for every read above (a detach forgets the
            # entities and detaches the domain in one transaction). SQLite reads one snapshot throughout.
            contents.left = domain_left(conn, domain)
    except BaseException:
        contents.documents.close()
        raise
    return contents


def domain_left(conn: Connection, domain: StorageDomain) -> str | None:
    """Why the domain's stores must not be written now (None if they may): it is gone, attached elsewhere
    or nowhere, or in a state whose stores are kept as they are."""
    d = s.storage_domains
    row = conn.execute(select(d.c.status, d.c.data_center_id).where(d.c.id == domain.id)).first()
    if row is None:
        return "the domain no longer exists"
    if row.data_center_id is None or row.data_center_id != domain.data_center_id:
        return "the domain left its data center"
    status = DomainStatus(row.status)
    if status not in WRITABLE:
        return f"the domain is {status.value}; its stores are written when it is active"
    return None


def stored_on(domain: StorageDomain) -> ColumnElement[bool]:
    """The cache rows a domain's store holds: live, storable, and on the domain or going into every domain
    of its data center. The one definition, for whole writes and appended segments alike."""
    c, cd = s.ovf_cache, s.ovf_cache_domains
    on_domain = select(cd.c.entity_id).where(cd.c.domain_id == domain.id)
    return and_(
        c.c.deleted.is_(False),
        c.c.ovf_size <= MAX_MEMBER,  # cached before the limit was enforced: the pool step replaces it
        or_(c.c.entity_id.in_(on_domain), and_(c.c.dc_wide.is_(True), c.c.data_center_id == domain.data_center_id)),
    )


def _load_entities(conn: Connection, domain: StorageDomain, contents: StoreContents) -> None:
    """The domain's entities with their cached OVF (size, SHA-256 and document, from one row each: they
    agree) and the run status of its VMs, streamed a batch of rows at a time."""
    c = s.ovf_cache
    query = select(
        c.c.entity_id, c.c.ovf_size, c.c.ovf_sha256, type_coerce(c.c.vm_status, Integer), c.c.ovf_data
    ).where(stored_on(domain))  # no ORDER BY: the database would sort the documents along with their ids
    for entity_id, size, sha256, vm_status, document in conn.execute(query).yield_per(FETCH_BATCH):
        contents.entities.append(EntityRef(entity_id, size, sha256))
        contents.documents.add(entity_id, document)
        if vm_status is not None:
            contents.vm_status[entity_id] = vm_status
    contents.entities.sort(key=lambda e: e.id)  # the tar's member order: by id, as the database orders UUIDs


def _load_unregistered(conn: Connection, domain: StorageDomain, contents: StoreContents) -> None:
    """The entities found on the domain by a recovery and not registered (not in the cache) yet."""
    u = s.unregistered_entities
    known = {e.id for e in contents.entities}
    query = select(u.c.entity_id, type_coerce(u.c.vm_status, Integer), u.c.ovf_data).where(
        u.c.domain_id == domain.id
    )  # sorted here, not by the database (see `_load_entities`)
    for entity_id, vm_status, document in conn.execute(query).yield_per(FETCH_BATCH):
        if entity_id in known:
            continue
        contents.unregistered.append(EntityRef(entity_id, len(document)))
        contents.documents.add(entity_id, document)
        if vm_status:  # a recovery restarts the VMs that were running, registered or not yet
            contents.vm_status[entity_id] = vm_status
    contents.unregistered.sort(key=lambda e: e.id)

"""What a domain's store tar holds, loaded from the database before the upload starts.

The member list (each entity's OVF size and SHA-256, as the cache recorded them), the unregistered
entities found on the domain and the VM status map are read first, in one read transaction finished
before the first byte is sent: the tar's exact length is known from them. The OVF documents themselves
are then read by a reader thread of their own, in a read transaction of their own, a batch of rows at a
time (`FETCH_BATCH`), straight into a temporary file (`DocumentSpool`); the tar stream takes them back from
there as it reaches them, waiting only if it overtakes the reader. So the upload never touches the
database, memory stays flat however many VMs the domain holds, and reading the documents overlaps
sending them. Nothing else writes the cache while a domain step runs (the pool step runs before it on
the updater's thread), so the documents are the ones the member list describes; if one were not, the tar
stream refuses it (its size is not the one announced) and the update fails cleanly.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Integer, Select, and_, func, or_, select, type_coerce

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.model import StorageDomain
from ovfstore.store.tarstream import FETCH_BATCH, MAX_MEMBER, EntityRef


class DocumentSpool:
    """OVF documents by entity id, written once by a reader thread and read back (in any order, from the
    upload's thread) while the tar streams. `fetch` waits for a document the reader has not reached yet,
    and raises the reader's error if it failed."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._places: dict[UUID, tuple[int, int]] = {}
        self._end = 0
        self._cond = threading.Condition()
        self._finished = False
        self._error: BaseException | None = None
        self._closed = False

    def add(self, entity_id: UUID, document: bytes) -> None:
        """Keep one document (the reader thread); raises `_Closed` once the spool is closed, so the reader
        stops."""
        with self._cond:  # held while writing: close() must never close the file under a write
            if self._closed:
                raise _Closed("the spool is closed: the upload has ended")
            os.pwrite(self._file.fileno(), document, self._end)
            self._places[entity_id] = (self._end, len(document))
            self._end += len(document)
            self._cond.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        """The reader is done (with `error` if it failed); a fetch of a document never added then ends."""
        with self._cond:
            self._finished = True
            self._error = error
            self._cond.notify_all()

    def fetch(self, ids: Sequence[UUID]) -> list[tuple[UUID, bytes]]:
        """The documents of `ids`, in that order; an id never added reads as empty (the tar stream then
        refuses it: its size is not the one announced)."""
        found = []
        for entity_id in ids:
            offset, size = self._wait_for(entity_id)
            found.append((entity_id, os.pread(self._file.fileno(), size, offset) if size else b""))
        return found

    def _wait_for(self, entity_id: UUID) -> tuple[int, int]:
        with self._cond:
            while entity_id not in self._places and not self._finished:
                self._cond.wait()
            if self._error is not None:
                raise RuntimeError(
                    f"reading the OVF documents from the database failed: {self._error}"
                ) from self._error
            return self._places.get(entity_id, (0, 0))

    def close(self) -> None:
        """Stop the reader (its next `add` raises) and drop the file; called from the upload's thread."""
        with self._cond:
            self._closed = True
            self._file.close()
            self._cond.notify_all()


class _Closed(Exception):
    """The spool was closed (the upload ended): the reader thread stops."""


@dataclass(slots=True)
class StoreContents:
    """Everything a domain's store tar is built from."""

    entities: list[EntityRef] = field(default_factory=list)
    unregistered: list[EntityRef] = field(default_factory=list)
    vm_status: dict[UUID, int] = field(default_factory=dict)
    documents: DocumentSpool = field(default_factory=DocumentSpool)
    reader: threading.Thread | None = None

    def __enter__(self) -> StoreContents:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.documents.close()
        if self.reader is not None:
            self.reader.join()


def load_contents(db: Database, domain: StorageDomain) -> StoreContents:
    """What the domain's store holds now; its documents arrive in `documents` while the tar streams.
    Close it (`with`) when the tar is sent: that also stops the reader thread."""
    contents = StoreContents()
    with db.read() as conn:
        _load_entities(conn, domain, contents)
        _load_unregistered(conn, domain, contents)
    wanted = {e.id for e in contents.entities}
    unregistered = {e.id for e in contents.unregistered}
    reader = threading.Thread(
        target=_read_documents, args=(db, domain, contents.documents, wanted, unregistered),
        name=f"ovf-documents-{domain.id}", daemon=True,
    )  # fmt: skip
    reader.start()
    contents.reader = reader
    return contents


def _entities_query(domain: StorageDomain, *columns: Any) -> Select[Any]:
    """The domain's cached entities: those with a disk on it, and the data center's diskless ones."""
    c, cd = s.ovf_cache, s.ovf_cache_domains
    on_domain = select(cd.c.entity_id).where(cd.c.domain_id == domain.id)
    return (
        select(c.c.entity_id, *columns)
        .where(
            c.c.deleted.is_(False),
            c.c.ovf_size <= MAX_MEMBER,  # cached before the limit was enforced: the pool step replaces it
            or_(c.c.entity_id.in_(on_domain), and_(c.c.dc_wide.is_(True), c.c.data_center_id == domain.data_center_id)),
        )
        .order_by(c.c.entity_id)
    )


def _unregistered_query(domain: StorageDomain, *columns: Any) -> Select[Any]:
    u = s.unregistered_entities
    return select(u.c.entity_id, *columns).where(u.c.domain_id == domain.id).order_by(u.c.entity_id)


def _load_entities(conn: Connection, domain: StorageDomain, contents: StoreContents) -> None:
    """The domain's entities with their cached OVF size and SHA-256, and the run status of its VMs."""
    c = s.ovf_cache
    query = _entities_query(domain, c.c.ovf_size, c.c.ovf_sha256, type_coerce(c.c.vm_status, Integer))
    for entity_id, size, sha256, vm_status in conn.execute(query).yield_per(FETCH_BATCH):
        contents.entities.append(EntityRef(entity_id, size, sha256))
        if vm_status is not None:
            contents.vm_status[entity_id] = vm_status


def _load_unregistered(conn: Connection, domain: StorageDomain, contents: StoreContents) -> None:
    """The entities found on the domain by a recovery and not registered (not in the cache) yet."""
    u = s.unregistered_entities
    known = {e.id for e in contents.entities}
    query = _unregistered_query(domain, func.length(u.c.ovf_data), type_coerce(u.c.vm_status, Integer))
    for entity_id, size, vm_status in conn.execute(query).yield_per(FETCH_BATCH):
        if entity_id in known:
            continue
        contents.unregistered.append(EntityRef(entity_id, size))
        if vm_status:  # a recovery restarts the VMs that were running, registered or not yet
            contents.vm_status[entity_id] = vm_status


def _read_documents(
    db: Database, domain: StorageDomain, spool: DocumentSpool, wanted: set[UUID], unregistered: set[UUID]
) -> None:
    """The reader thread: the documents of the member list, in the order the tar takes them."""
    try:
        with db.read() as conn:
            _spool(
                conn.execute(_entities_query(domain, s.ovf_cache.c.ovf_data)).yield_per(FETCH_BATCH), wanted, spool.add
            )
            rows = conn.execute(_unregistered_query(domain, s.unregistered_entities.c.ovf_data)).yield_per(FETCH_BATCH)
            _spool(rows, unregistered, spool.add)
    except _Closed:
        return
    except Exception as exc:  # any failure reaches the upload through the spool, which ends it
        spool.finish(exc)
        return
    spool.finish()


def _spool(rows: Iterable[Any], wanted: set[UUID], add: Callable[[UUID, bytes], None]) -> None:
    for entity_id, document in rows:
        if entity_id in wanted:
            add(entity_id, document)

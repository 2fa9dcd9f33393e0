"""A domain's store tar, built from the database into a temporary file before the upload starts.

In one read transaction that sees a single snapshot of the database: the member list (each entity's OVF
size and SHA-256, as the cache recorded them), the unregistered entities found on the domain and the VM
status map are read first, without the documents, and the tar is planned from them (its exact length
is then known); then the tar is assembled in its own order, the documents fetched a batch at a time
(`FETCH_BATCH` ids per query), into a temporary file (the spool), hashed as it is written. The
transaction is over before the first byte is sent: the upload reads the spool front to back in large
chunks, never waits on the database nor holds a transaction open, and the agent checks what reached the
disk against the spool's SHA-256 (the client does not hash it again). Memory stays flat however many VMs
the domain holds (a batch of documents and a chunk of tar); the spool lives in the page cache, and is
deleted (never written back, in practice) when the stores are written.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from uuid import UUID

from sqlalchemy import Connection, Integer, and_, func, or_, select, type_coerce

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.model import StorageDomain
from ovfstore.store.tarstream import CHUNK, MAX_MEMBER, EntityRef, Fetch, StoreTar

#: The upload reads the spool this many bytes at a time (the agent's buffers are larger; fewer, larger
#: writes to the socket cost less per byte).
READ_CHUNK = 4 * CHUNK


@dataclass(slots=True)
class StoreContents:
    """The members a domain's store tar is planned from (sizes and digests, not the documents)."""

    entities: list[EntityRef] = field(default_factory=list)
    unregistered: list[EntityRef] = field(default_factory=list)
    vm_status: dict[UUID, int] = field(default_factory=dict)


class TarSpool:
    """A store tar's bytes in a temporary file, written once, with their length and SHA-256; read back
    front to back (`chunks`) for each upload."""

    def __init__(self, tar: StoreTar) -> None:
        self.tar = tar
        self.length = 0
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        digest = hashlib.sha256()
        try:
            for chunk in tar.chunks():
                self._file.write(chunk)
                digest.update(chunk)
                self.length += len(chunk)
            self._file.flush()
        except BaseException:
            self._file.close()
            raise
        self.sha256 = digest.hexdigest()

    def read_chunk(self, size: int = READ_CHUNK) -> bytes:
        return self._file.read(size)

    def chunks(self) -> Iterator[bytes]:
        """The tar, from its first byte."""
        self._file.seek(0)
        while chunk := self.read_chunk():
            yield chunk

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TarSpool:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


#: Plans the tar from the members and a way to fetch their documents; may refuse (raise) before any is read.
Plan = Callable[[StoreContents, Fetch], StoreTar]


def build_store(db: Database, domain: StorageDomain, plan: Plan) -> TarSpool:
    """The domain's store tar as `plan` lays it out, spooled. Close it (`with`) when the tar is sent."""
    with db.read(snapshot=True) as conn:
        contents = load_contents(conn, domain)
        tar = plan(contents, document_fetcher(conn, domain, contents))
        return TarSpool(tar)


def load_contents(conn: Connection, domain: StorageDomain) -> StoreContents:
    """What the domain's store holds now: its members, without their documents."""
    contents = StoreContents()
    _load_entities(conn, domain, contents)
    _load_unregistered(conn, domain, contents)
    return contents


def document_fetcher(conn: Connection, domain: StorageDomain, contents: StoreContents) -> Fetch:
    """The documents of the ids asked, in that order, one query per call (the caller asks a batch at a
    time): a registered entity's from the cache, an unregistered one's from what the domain held. An id
    not found reads as empty (the tar stream then refuses it: its size is not the one announced)."""
    registered = {e.id for e in contents.entities}
    c, u = s.ovf_cache, s.unregistered_entities

    def fetch(ids: Sequence[UUID]) -> list[tuple[UUID, bytes]]:
        cached = [i for i in ids if i in registered]
        others = [i for i in ids if i not in registered]
        found: dict[UUID, bytes] = {}
        if cached:
            query = select(c.c.entity_id, c.c.ovf_data).where(c.c.entity_id.in_(cached))
            found.update((entity_id, document) for entity_id, document in conn.execute(query))
        if others:
            query = select(u.c.entity_id, u.c.ovf_data).where(u.c.domain_id == domain.id, u.c.entity_id.in_(others))
            found.update((entity_id, document) for entity_id, document in conn.execute(query))
        return [(i, found.get(i, b"")) for i in ids]

    return fetch


def _load_entities(conn: Connection, domain: StorageDomain, contents: StoreContents) -> None:
    """The domain's entities with their cached OVF's size and SHA-256, and the run status of its VMs."""
    c, cd = s.ovf_cache, s.ovf_cache_domains
    on_domain = select(cd.c.entity_id).where(cd.c.domain_id == domain.id)
    query = select(c.c.entity_id, c.c.ovf_size, c.c.ovf_sha256, type_coerce(c.c.vm_status, Integer)).where(
        c.c.deleted.is_(False),
        c.c.ovf_size <= MAX_MEMBER,  # cached before the limit was enforced: the pool step replaces it
        or_(c.c.entity_id.in_(on_domain), and_(c.c.dc_wide.is_(True), c.c.data_center_id == domain.data_center_id)),
    )  # sorted here: the database's order of UUIDs is not the same on every database
    for entity_id, size, sha256, vm_status in conn.execute(query):
        contents.entities.append(EntityRef(entity_id, size, sha256))
        if vm_status is not None:
            contents.vm_status[entity_id] = vm_status
    contents.entities.sort(key=lambda e: e.id)  # the tar's member order: by id


def _load_unregistered(conn: Connection, domain: StorageDomain, contents: StoreContents) -> None:
    """The entities found on the domain by a recovery and not registered (not in the cache) yet."""
    u = s.unregistered_entities
    known = {e.id for e in contents.entities}
    size = type_coerce(func.length(u.c.ovf_data), Integer)  # bytes, of a BLOB and of a bytea
    query = select(u.c.entity_id, type_coerce(u.c.vm_status, Integer), size).where(u.c.domain_id == domain.id)
    for entity_id, vm_status, length in conn.execute(query):
        if entity_id in known:
            continue
        contents.unregistered.append(EntityRef(entity_id, length))
        if vm_status:  # a recovery restarts the VMs that were running, registered or not yet
            contents.vm_status[entity_id] = vm_status
    contents.unregistered.sort(key=lambda e: e.id)

"""Incremental store writes: append what changed to the stores instead of writing them whole.

When every store of a domain holds the same generation, written by this version and intact on storage,
the domain step appends one segment (`store.segment`, docs/FORMATS.md section 3) holding only the
entities changed since (`changes`): their new OVFs, the ids of those that left, the status map if it
changed. The bytes written follow the change, not the domain. Each store is written with the usual
protocol (`Updated:false`, ILLEGAL while written, durable, LEGAL, `Updated:true` with the new `Size`),
one after another, the first streamed from the engine and the others copied by the agent from it: at
every instant one store holds a complete copy, as with whole writes.

A store is written whole again (compaction) when what was appended since its last whole write passes
`[updater] compact_ratio` of it (and `compact_min`), when it has `max_segments` segments, when the next
segment would not fit the volume, or when anything is not as recorded: the stores differ, a store on
storage is not the one recorded, the domain holds unregistered entities (segments never carry them).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from uuid import UUID

from sqlalchemy import Connection, Integer, exists, select, type_coerce

from ovfstore.agent.client import AgentClient, VolumeInfo, WriteResult
from ovfstore.engine.config import UpdaterConfig
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory.base import chunks
from ovfstore.engine.ovfsource import BATCH
from ovfstore.engine.updater import changes, records
from ovfstore.engine.updater.contents import DocumentSpool, domain_left, stored_on
from ovfstore.engine.updater.records import StoreRecord, Written
from ovfstore.engine.updater.writing import Bytes, write_store
from ovfstore.model import StorageDomain
from ovfstore.store import description
from ovfstore.store.segment import SegmentTar
from ovfstore.store.tarstream import END_OF_ARCHIVE, EntityRef, metadata_json


@dataclass(slots=True)
class AppendPlan:
    """One segment for every store of a domain, with what recording it needs."""

    segment: SegmentTar
    documents: DocumentSpool
    tokens: dict[UUID, int]  # the changes it holds: forgotten once every store has them
    entity_ids: list[str]  # what the stores hold after it (canonical text, as the column keeps them)
    status_sha256: str
    first: StoreRecord

    def __enter__(self) -> AppendPlan:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.documents.close()


def plan(
    db: Database, domain: StorageDomain, stores: list[StoreRecord], on_storage: dict[UUID, VolumeInfo],
    config: UpdaterConfig, now: datetime, ranged_writes: bool,
) -> AppendPlan | str:  # fmt: skip
    """The segment to append to every store of the domain, or why the stores are to be written whole
    (`ranged_writes`: whether the agent writes at an offset)."""
    reason = _not_appendable(stores, on_storage, config)
    if reason is None and not ranged_writes:
        reason = "the host's agent cannot write at an offset (upgrade it)"
    if reason is not None:
        return reason
    first = stores[0]
    assert first.size is not None
    assert first.base_size is not None
    assert first.segments is not None
    spool = DocumentSpool()
    try:
        with db.read() as conn:
            if conn.execute(select(exists().where(s.unregistered_entities.c.domain_id == domain.id))).scalar():
                raise _Whole("the domain holds unregistered entities, which segments never carry")
            tokens = changes.pending(conn, domain.id)
            puts = _changed(conn, domain, sorted(set(tokens) - {changes.STATUS}), spool)
            # The status map is read (all the domain's running VMs) only when a change may have moved it.
            metadata = metadata_json(_running(conn, domain)) if changes.STATUS in tokens else None
            before = records.entity_ids_of(conn, first.disk_id)
            left = domain_left(conn, domain)  # last, as `load_contents` does: nothing read after a detach
            if left is not None:
                raise _Whole(left)  # the whole write's own read finds it too, and writes nothing
        kept = {str(e.id) for e in puts}
        removed = sorted(UUID(i) for i in ({str(i) for i in tokens} - kept) & before)
        status_sha256 = first.status_sha256 if metadata is None else hashlib.sha256(metadata).hexdigest()
        segment = SegmentTar(
            domain_id=domain.id, generation=max(sv.store_generation for sv in stores) + 1,
            previous_generation=first.store_generation, offset=first.size - len(END_OF_ARCHIVE), writer=config.writer,
            created=now, entities=puts, removed=removed,
            metadata=None if status_sha256 == first.status_sha256 else metadata, fetch=spool.fetch,
        )  # fmt: skip
        _check_budget(segment, stores, on_storage, config)
    except _Whole as why:
        spool.close()
        return str(why)
    except BaseException:
        spool.close()
        raise
    entity_ids = sorted((before - {str(i) for i in removed}) | kept)
    return AppendPlan(segment, spool, tokens, entity_ids, status_sha256 or "", first)


class _Whole(Exception):
    """The stores are to be written whole; the message says why."""


def _not_appendable(stores: list[StoreRecord], on_storage: dict[UUID, VolumeInfo], config: UpdaterConfig) -> str | None:
    if not config.incremental:
        return "incremental writes are off ([updater] incremental)"
    first = stores[0]
    if any(sv.base_size is None or sv.segments is None or sv.size is None or sv.unregistered is None for sv in stores):
        return "a store was not written whole by this version since it was created, adopted or attached"
    if any(sv.unregistered for sv in stores):
        return "the last whole write held unregistered entities"
    for sv in stores:
        if not _adds_up(sv):
            return f"the record of store {sv.disk_id} does not add up (an older version wrote the store whole?)"
    if any((sv.store_generation, sv.size, sv.segments) != (first.store_generation, first.size, first.segments)
           for sv in stores):  # fmt: skip
        return "the stores hold different generations"
    for sv in stores:
        volume = on_storage[sv.volume_id]
        desc = description.parse(volume.description)
        if (
            volume.legality.upper() != "LEGAL"
            or desc.updated is not True
            or desc.size != sv.size
            or not _same_second(desc.last_updated, sv.last_updated)
        ):  # another engine wrote it (the domain was away), or a write of ours did not finish
            return f"store {sv.disk_id} on storage is not the one last written"
    return None


def _adds_up(sv: StoreRecord) -> bool:
    """A store this version wrote has `Size` = its base + every segment appended since, each appended at the
    end-of-archive before it. An older version's whole write changes `size` and leaves the rest as it was."""
    assert sv.size is not None
    assert sv.base_size is not None
    assert sv.segments is not None
    return sv.segments >= 1 and sv.size == sv.base_size + sv.appended - len(END_OF_ARCHIVE) * (sv.segments - 1)


def _same_second(found: datetime | None, recorded: datetime | None) -> bool:
    """The description keeps its date to the second (Java's `Date.toString()`)."""
    if found is None or recorded is None:
        return False
    return found.replace(microsecond=0) == recorded.replace(microsecond=0)


def _check_budget(
    segment: SegmentTar, stores: list[StoreRecord], on_storage: dict[UUID, VolumeInfo], config: UpdaterConfig
) -> None:
    first = stores[0]
    assert first.base_size is not None
    assert first.segments is not None
    if first.segments + 1 > config.max_segments:
        raise _Whole(f"the stores hold {first.segments} segments (max_segments {config.max_segments}): compacting")
    budget = max(config.compact_min, int(first.base_size * config.compact_ratio))
    if first.appended + segment.length > budget:
        raise _Whole(
            f"{first.appended + segment.length} bytes would be appended since the last whole write, over "
            f"{budget}: compacting"
        )
    small = min(on_storage[sv.volume_id].capacity for sv in stores)
    if segment.store_size > small:
        raise _Whole(f"the segment would end the store at {segment.store_size} bytes, past a volume of {small}")


def _changed(conn: Connection, domain: StorageDomain, ids: list[UUID], spool: DocumentSpool) -> list[EntityRef]:
    """The changed entities the domain's store holds now, their documents added to `spool`; by id."""
    c = s.ovf_cache
    found: list[EntityRef] = []
    for batch in chunks(ids, BATCH):
        query = select(c.c.entity_id, c.c.ovf_size, c.c.ovf_sha256, c.c.ovf_data).where(
            c.c.entity_id.in_(batch), stored_on(domain)
        )
        for entity_id, size, sha256, document in conn.execute(query):
            found.append(EntityRef(entity_id, size, sha256))
            spool.add(entity_id, document)
    found.sort(key=lambda e: e.id)
    return found


def _running(conn: Connection, domain: StorageDomain) -> dict[UUID, int]:
    """The status of the domain's VMs that are not down: its `metadata.json`."""
    c = s.ovf_cache
    status = type_coerce(c.c.vm_status, Integer)
    query = select(c.c.entity_id, status).where(stored_on(domain), status > 0)
    return {row[0]: row[1] for row in conn.execute(query)}


# --- writing ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Appended:
    disk_id: UUID
    seconds: float
    copied: bool


def write(
    db: Database, client: AgentClient, domain_id: UUID, stores: list[StoreRecord], on_storage: dict[UUID, VolumeInfo],
    appended: AppendPlan, now: datetime, on_done: Callable[[Appended], None],
) -> None:  # fmt: skip
    """Append the segment to each store, in order, each only after the one before succeeded (`on_done`
    for each); the first is streamed from the engine, the others copied by the agent from it and checked
    against its SHA-256. Agent errors pass through (the caller turns them into the domain step's)."""
    segment = appended.segment
    data = Bytes(segment.chunks, segment.length, segment.offset, segment.store_size)
    source: tuple[StoreRecord, str] | None = None
    for store in stores:
        started = time.monotonic()
        previous = description.parse(on_storage[store.volume_id].description).last_updated_text
        written = write_store(client, domain_id, store, data, source, previous, now)
        records.mark_written(db, store.disk_id, _recorded(appended, written), now)
        on_done(Appended(store.disk_id, time.monotonic() - started, source is not None))
        source = source or (store, written.sha256)
    changes.consumed(db, domain_id, appended.tokens)


def _recorded(appended: AppendPlan, written: WriteResult) -> Written:
    first, segment = appended.first, appended.segment
    assert first.base_size is not None
    assert first.segments is not None
    return Written(
        generation=segment.generation, size=segment.store_size, sha256=written.sha256,
        entity_ids=appended.entity_ids, base_size=first.base_size, appended=first.appended + segment.length,
        segments=first.segments + 1, status_sha256=appended.status_sha256, unregistered=0,
    )  # fmt: skip

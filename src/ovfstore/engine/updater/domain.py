"""The domain step: rewrite the OVF stores of one domain from the cache, through a host agent.

The tar is built on the fly (`store.tarstream`), its length known before the first byte, and streamed
into the stores one after another following docs/FORMATS.md section 2: description `Updated:false`, data,
durable, description `Updated:true` with the size and date. Never-written and oldest stores first, the
most recently written last, and a later one only after an earlier one succeeded: at every instant at
least one store holds a complete, marked-good copy. A store counts as written only when the agent's
reported size and SHA-256 equal what was sent.

Fail closed: when the agent cannot read the domain or answers an error, nothing more is written and
the domain stays outdated with the error recorded, to be retried later; when the agent goes away, the
same holds for this host and the next up host of the data center is tried (`failures`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from sqlalchemy import select

from ovfstore.agent import protocol
from ovfstore.agent.client import AgentClient, VolumeInfo, WriteResult
from ovfstore.agent.errors import AgentError
from ovfstore.engine.config import UpdaterConfig
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.db.rows import from_row
from ovfstore.engine.hosts import AgentDirectory
from ovfstore.engine.inventory import Inventory
from ovfstore.engine.updater import append, changes, records, sizing
from ovfstore.engine.updater.contents import WRITABLE, StoreContents, load_contents
from ovfstore.engine.updater.failures import AgentRefused, HostLost, StepFailed, TooLarge, agent_errors
from ovfstore.engine.updater.records import StoreRecord
from ovfstore.engine.updater.stores import ensure_stores
from ovfstore.engine.updater.writing import Bytes, write_store
from ovfstore.model import DomainClass, OvfStoreStatus, StorageDomain
from ovfstore.store import description
from ovfstore.store.tarstream import StoreTar

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Transfer:
    """One store written: `upload` streamed from the engine, `copy` made by the agent from the first."""

    kind: str
    size: int
    seconds: float


#: What a failed domain update is counted as (`DomainResult.failure`): no host up, no host answering,
#: the storage refusing or missing (`StepFailed`), a tar larger than a store, a bug, or a write refused
#: because another engine leads now (`Fenced`).
FAILURE_KINDS = ("no_host", "host_unreachable", "storage", "capacity", "internal", "fenced")


@dataclass(slots=True)
class DomainResult:
    domain_id: UUID
    written: list[UUID] = field(default_factory=list)  # store disks written, in order
    entity_count: int = 0
    size: int = 0
    generation: int = 0
    skipped: str | None = None  # nothing to do, and why
    error: str | None = None  # the domain stays outdated; retried later
    failure: str | None = None  # with `error`: one of FAILURE_KINDS
    transfers: list[Transfer] = field(default_factory=list)
    seconds: float = 0.0  # the whole domain step, set by the updater
    appended: int | None = None  # the bytes of the segment appended, when the stores were not written whole
    whole_because: str | None = None  # why they were written whole, when an append was considered

    @property
    def ok(self) -> bool:
        return self.error is None


class UpdateError(Exception):
    """A domain's stores could not be updated; the message says why and what to do."""


class DomainStep:
    def __init__(
        self,
        db: Database,
        inventory: Inventory,
        agents: AgentDirectory,
        config: UpdaterConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.inventory = inventory
        self.agents = agents
        self.config = config
        self.clock = clock

    def update(self, domain_id: UUID, *, force: bool = False, term: int | None = None) -> DomainResult:
        """Bring the domain's stores up to date (or rewrite them anyway with `force`), through the first
        up host whose agent answers. `term`: the leadership term every agent request carries
        (`engine/leadership.py`); None for an engine that does not elect a leader (not fenced)."""
        result = DomainResult(domain_id)
        domain = self._writable_domain(result)
        if domain is None or domain.data_center_id is None:
            return result
        hosts = self.agents.up_hosts(domain.data_center_id)
        if not hosts:
            return self._failed(
                result, "no host of the data center is up; bring a host up to update the stores", "no_host"
            )
        failures = []
        for host in hosts:
            try:
                client = self.agents.client(host)
                fenced = client if term is None else client.with_term(term)
                return self._update_through(fenced, domain, result, force)
            except HostLost as exc:
                failures.append(f"{host.name}: {exc}")
                log.warning("host %s unavailable for domain %s: %s", host.name, domain.name, exc)
            except StepFailed as exc:
                return self._failed(result, str(exc), exc.kind)
        return self._failed(result, "no host could reach the domain: " + "; ".join(failures), "host_unreachable")

    def _writable_domain(self, result: DomainResult) -> StorageDomain | None:
        """The domain, if its stores are to be written; otherwise None, with `result.skipped` saying why."""
        with self.db.read() as conn:
            row = conn.execute(select(s.storage_domains).where(s.storage_domains.c.id == result.domain_id))
            found = row.mappings().first()
            domain = from_row(StorageDomain, found) if found is not None else None
            keeps_stores = domain is not None and (
                domain.ovf_store_count > 0 or bool(records.of_domain(conn, domain.id))
            )
        if domain is None:
            result.skipped = "the domain no longer exists"
        elif domain.domain_class is not DomainClass.DATA or domain.data_center_id is None:
            result.skipped = "only data domains attached to a data center keep OVF stores"
        elif domain.status not in WRITABLE:
            result.skipped = f"the domain is {domain.status.value}; its stores are written when it is active"
        elif not keeps_stores:
            result.skipped = "the domain keeps no OVF stores (ovf_store_count is 0)"
        else:
            return domain
        return None

    # --- one host: ensure stores -> probe the domain -> reconcile volumes -> plan the tar -> write -----

    def _update_through(
        self, client: AgentClient, domain: StorageDomain, result: DomainResult, force: bool
    ) -> DomainResult:
        """Raises `HostLost` when the agent stops answering, `StepFailed` when the domain cannot be written."""
        now = self.clock()
        stores = self._usable_stores(client, domain, now)
        if not force and all(sv.status is OvfStoreStatus.UPDATED for sv in stores):
            result.skipped = "up to date"
            return result
        on_storage = self._probe(client, domain, stores)
        stores = _write_order(self._reconcile(stores, on_storage))
        if not force:
            planned = append.plan(self.db, domain, stores, on_storage, self.config, now, _ranged_writes(client))
            if isinstance(planned, append.AppendPlan):
                with planned:
                    return self._append(client, domain, stores, on_storage, planned, result, now)
            result.whole_because = planned
            log.info("domain %s: its stores are written whole: %s", domain.name, planned)
        with self.db.read() as conn:
            noted = changes.pending(conn, domain.id)  # what the whole write holds, at the latest
        with load_contents(self.db, domain) as contents:
            if contents.left is not None:  # a detach (or deactivation) committed since the domain was read
                result.skipped = contents.left
                return result
            tar = self._plan_tar(domain, stores, contents, now)
            result.entity_count = len(contents.entities)
            result.generation = tar.generation
            self._write_stores(client, domain, stores, on_storage, tar, result, now)
        changes.consumed(self.db, domain.id, noted)
        return result

    def _append(
        self, client: AgentClient, domain: StorageDomain, stores: list[StoreRecord],
        on_storage: dict[UUID, VolumeInfo], planned: append.AppendPlan, result: DomainResult, now: datetime,
    ) -> DomainResult:  # fmt: skip
        """Append one segment to every store (`append.write`), recording each as it is written."""
        segment = planned.segment
        result.entity_count = len(planned.entity_ids)
        result.generation = segment.generation
        result.appended = segment.length

        def done(appended: append.Appended) -> None:
            kind = "append-copy" if appended.copied else "append"
            result.transfers.append(Transfer(kind, segment.length, appended.seconds))
            result.written.append(appended.disk_id)
            result.size = segment.store_size

        try:
            with agent_errors(f"appending to the stores of domain {domain.name} failed"):
                append.write(self.db, client, domain.id, stores, on_storage, planned, now, done)
        except AgentRefused as exc:
            failed = stores[len(result.written)] if len(result.written) < len(stores) else None
            if failed is not None:
                records.set_error(self.db, failed.disk_id, exc.detail)
            raise
        return result

    def _usable_stores(self, client: AgentClient, domain: StorageDomain, now: datetime) -> list[StoreRecord]:
        creation_errors = ensure_stores(self.db, self.inventory, client, domain, self.config.store_capacity, now)
        with self.db.read() as conn:
            stores = [sv for sv in records.of_domain(conn, domain.id) if sv.status is not OvfStoreStatus.DISABLED]
        if not stores:
            raise StepFailed("; ".join(creation_errors) or "the domain has no usable OVF store")
        return stores

    @staticmethod
    def _probe(client: AgentClient, domain: StorageDomain, stores: list[StoreRecord]) -> dict[UUID, VolumeInfo]:
        """The domain's store volumes as storage has them, each listed by its image (not the domain's
        every volume: the cost of an update does not grow with the domain). Fail closed: without a
        readable domain and its store volumes, nothing is written."""
        found: dict[UUID, VolumeInfo] = {}
        with agent_errors("the agent cannot read the domain"):
            client.domain_info(domain.id)
            for store in stores:
                try:
                    volumes = client.list_volumes(domain.id, store.disk_id)
                except AgentError as exc:
                    if exc.code != protocol.IMAGE_NOT_FOUND:
                        raise
                    continue  # gone: `_reconcile` marks it missing
                found.update((v.volume, v) for v in volumes if v.is_ovf_store)
        return found

    def _reconcile(self, stores: list[StoreRecord], on_storage: dict[UUID, VolumeInfo]) -> list[StoreRecord]:
        """The stores whose volume is on storage; the others are marked missing, to be created again."""
        for sv in stores:
            if sv.volume_id not in on_storage:
                records.mark_missing(self.db, sv.disk_id)
        present = [sv for sv in stores if sv.volume_id in on_storage]
        if not present:
            raise StepFailed("the store volumes are missing on storage; they will be recreated")
        return present

    def _plan_tar(
        self, domain: StorageDomain, stores: list[StoreRecord], contents: StoreContents, now: datetime
    ) -> StoreTar:
        return StoreTar(
            domain_id=domain.id, generation=max(sv.store_generation for sv in stores) + 1, writer=self.config.writer,
            created=now, entities=contents.entities, unregistered=contents.unregistered,
            vm_status=contents.vm_status, fetch=contents.documents.fetch,
        )  # fmt: skip

    # --- writing ----------------------------------------------------------------------------------------

    def _write_stores(
        self, client: AgentClient, domain: StorageDomain, stores: list[StoreRecord],
        on_storage: dict[UUID, VolumeInfo], tar: StoreTar, result: DomainResult, now: datetime,
    ) -> None:  # fmt: skip
        """In order, each only after the one before succeeded. The first store is streamed from the engine;
        each later one the agent copies from the first, verified against the SHA-256 the first write
        returned: the tar is built and sent once per domain."""
        source: tuple[StoreRecord, str] | None = None
        data = Bytes(tar.chunks, tar.length, 0, tar.length)
        for store in stores:
            volume = on_storage[store.volume_id]
            previous = description.parse(volume.description).last_updated_text
            store = self._size_store(client, domain, store, volume.capacity, tar.length, previous, now)
            started = time.monotonic()
            try:
                with agent_errors(f"writing store {store.disk_id} failed"):
                    written = write_store(client, domain.id, store, data, source, previous, now)
            except AgentRefused as exc:
                records.set_error(self.db, store.disk_id, exc.detail)
                raise
            records.mark_written(self.db, store.disk_id, _whole(tar, written), now)
            result.transfers.append(Transfer("copy" if source else "upload", tar.length, time.monotonic() - started))
            source = source or (store, written.sha256)
            result.written.append(store.disk_id)
            result.size = tar.length

    def _size_store(
        self, client: AgentClient, domain: StorageDomain, store: StoreRecord, stored: int, length: int,
        previous: str | None, now: datetime,
    ) -> StoreRecord:  # fmt: skip
        """Size the store (`stored`: its capacity on storage): grown or made smaller for the tar about to be
        written into it (`sizing`), or `TooLarge` beyond the ceiling. Called in write order, so never on the
        last good store first."""
        try:
            return sizing.size_store(
                self.db, self.inventory, client, domain, store, stored, length, previous, self.config, now
            )
        except TooLarge as exc:
            log.error("domain %s: %s", domain.name, exc)
            raise

    def _failed(self, result: DomainResult, error: str, kind: str) -> DomainResult:
        result.error = error
        result.failure = kind
        records.set_domain_error(self.db, result.domain_id, error)
        return result


def _ranged_writes(client: AgentClient) -> bool:
    """Whether the agent writes at an offset (an older one would write a segment over the store's start)."""
    with agent_errors("the agent cannot tell what it can do"):
        features = client.health().get("features")
    return isinstance(features, list) and protocol.RANGED_WRITES in features


def _whole(tar: StoreTar, written: WriteResult) -> records.Written:
    return records.Written(
        generation=tar.generation, size=tar.length, sha256=written.sha256, entity_ids=tar.entity_ids,
        base_size=tar.length, appended=0, segments=1, status_sha256=hashlib.sha256(tar.metadata).hexdigest(),
        unregistered=len(tar.unregistered),
    )  # fmt: skip


def _write_order(stores: list[StoreRecord]) -> list[StoreRecord]:
    """Never-written stores first, then the oldest; the most recently written one last."""
    return sorted(
        stores, key=lambda sv: (sv.last_updated is not None, sv.last_updated or datetime.min, str(sv.disk_id))
    )

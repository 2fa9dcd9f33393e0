"""The domain step: rewrite the OVF stores of one domain from the cache, through a host agent.

The tar is built on the fly (`store.tarstream`), its length known before the first byte, and streamed
into the stores one after another following docs/FORMATS.md section 2: description `Updated:false`, data,
durable, description `Updated:true` with the size and date. Never-written and oldest stores first, the
most recently written last, and a later one only after an earlier one succeeded: at every instant at
least one store holds a complete, marked-good copy. A store counts as written only when the agent's
reported size and SHA-256 equal what was sent.

Fail closed: when the agent cannot read the domain, answers an error, or goes away, nothing more is
written, the domain stays outdated with the error recorded, and the caller tries another host later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from sqlalchemy import Integer, and_, func, or_, select, type_coerce, update

from ovfstore.agent.client import AgentClient, WriteResult
from ovfstore.agent.errors import AgentError, AgentUnavailable
from ovfstore.engine.config import UpdaterConfig
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.db.rows import from_row
from ovfstore.engine.hosts import AgentDirectory
from ovfstore.engine.inventory.base import chunks
from ovfstore.engine.ovfsource import BATCH
from ovfstore.engine.updater.stores import StoreVolume, ensure_stores, store_volumes
from ovfstore.model import DomainClass, DomainStatus, OvfStoreStatus, StorageDomain
from ovfstore.store import description
from ovfstore.store.tarstream import EntityRef, StoreTar

log = logging.getLogger(__name__)

#: Domains in these states are written; others (maintenance, unattached...) keep their stores as they are.
WRITABLE = (DomainStatus.ACTIVE, DomainStatus.PREPARING_FOR_MAINTENANCE, DomainStatus.DETACHING)


@dataclass(slots=True)
class DomainResult:
    domain_id: UUID
    written: list[UUID] = field(default_factory=list)  # store disks written, in order
    entity_count: int = 0
    size: int = 0
    generation: int = 0
    skipped: str | None = None  # nothing to do, and why
    error: str | None = None  # the domain stays outdated; retried later

    @property
    def ok(self) -> bool:
        return self.error is None


class UpdateError(Exception):
    """A domain's stores could not be updated; the message says why and what to do."""


class DomainStep:
    def __init__(
        self, db: Database, agents: AgentDirectory, config: UpdaterConfig, clock: Callable[[], datetime]
    ) -> None:
        self.db = db
        self.agents = agents
        self.config = config
        self.clock = clock

    def update(self, domain_id: UUID, *, force: bool = False) -> DomainResult:
        """Bring the domain's stores up to date (or rewrite them anyway with `force`)."""
        result = DomainResult(domain_id)
        with self.db.read() as conn:
            row = conn.execute(select(s.storage_domains).where(s.storage_domains.c.id == domain_id)).mappings().first()
        if row is None:
            result.skipped = "the domain no longer exists"
            return result
        domain = from_row(StorageDomain, row)
        if domain.domain_class is not DomainClass.DATA or domain.data_center_id is None:
            result.skipped = "only data domains attached to a data center keep OVF stores"
            return result
        if domain.status not in WRITABLE:
            result.skipped = f"the domain is {domain.status.value}; its stores are written when it is active"
            return result
        if domain.ovf_store_count == 0:
            with self.db.read() as conn:
                if not store_volumes(conn, domain_id):
                    result.skipped = "the domain keeps no OVF stores (ovf_store_count is 0)"
                    return result
        hosts = self.agents.up_hosts(domain.data_center_id)
        if not hosts:
            return self._failed(result, "no host of the data center is up; bring a host up to update the stores")
        failures = []
        for host in hosts:
            try:
                return self._update_through(self.agents.client(host), domain, result, force)
            except AgentUnavailable as exc:
                failures.append(f"{host.name}: {exc}")
                log.warning("host %s unavailable for domain %s: %s", host.name, domain.name, exc)
        return self._failed(result, "no host could reach the domain: " + "; ".join(failures))

    # --- one host --------------------------------------------------------------------------------------

    def _update_through(
        self, client: AgentClient, domain: StorageDomain, result: DomainResult, force: bool
    ) -> DomainResult:
        now = self.clock()
        creation_errors = ensure_stores(self.db, client, domain, self.config.store_capacity, now)
        with self.db.read() as conn:
            stores = [sv for sv in store_volumes(conn, domain.id) if sv.status is not OvfStoreStatus.DISABLED]
        if not stores:
            return self._failed(result, "; ".join(creation_errors) or "the domain has no usable OVF store")
        if not force and all(sv.status is OvfStoreStatus.UPDATED for sv in stores):
            result.skipped = "up to date"
            return result
        try:
            # Fail closed: without a readable domain and its store volumes, write nothing.
            client.domain_info(domain.id)
            on_storage = {v.volume: v for v in client.list_volumes(domain.id) if v.is_ovf_store}
        except AgentUnavailable:
            raise
        except AgentError as exc:
            return self._failed(result, f"the agent cannot read the domain: {exc}")
        missing = [sv for sv in stores if sv.volume_id not in on_storage]
        if missing:
            for sv in missing:
                self._record(sv.disk_id, status=OvfStoreStatus.DISABLED, last_error="volume missing; recreating")
            stores = [sv for sv in stores if sv.volume_id in on_storage]
            if not stores:
                return self._failed(result, "the store volumes are missing on storage; they will be recreated")

        refs, unregistered, vm_status = self._contents(domain)
        result.entity_count = len(refs)
        result.generation = max(sv.store_generation for sv in stores) + 1
        tar = StoreTar(
            domain_id=domain.id, generation=result.generation, writer=self.config.writer, created=now,
            entities=refs, unregistered=unregistered, vm_status=vm_status, fetch=self._fetch,
        )  # fmt: skip
        # The first store is streamed from the engine; each later one the agent copies from the first,
        # verified against the SHA-256 the first write returned: the tar is built and sent once per domain.
        source: tuple[StoreVolume, WriteResult] | None = None
        for store in _write_order(stores):
            if tar.length > store.capacity:
                message = (
                    f"the store tar is {tar.length} bytes but store {store.disk_id} holds {store.capacity}; "
                    "the old stores are kept intact. Add capacity (larger OVF stores) or split the domain's VMs"
                )
                log.error("domain %s: %s", domain.name, message)
                return self._failed(result, message)
            previous = description.parse(on_storage[store.volume_id].description).last_updated_text
            try:
                written = self._write_store(client, domain.id, store, tar, source, previous, now)
            except AgentUnavailable:
                raise
            except AgentError as exc:
                self._record(store.disk_id, last_error=str(exc))
                return self._failed(result, f"writing store {store.disk_id} failed: {exc}")
            source = source or (store, written)
            result.written.append(store.disk_id)
            result.size = tar.length
        return result

    def _write_store(
        self, client: AgentClient, domain_id: UUID, store: StoreVolume, tar: StoreTar,
        source: tuple[StoreVolume, WriteResult] | None, previous: str | None, now: datetime,
    ) -> WriteResult:  # fmt: skip
        """One store, following docs/FORMATS.md section 2: `Updated:false`, the data, durable, `Updated:true`.
        The agent client has compared the agent's SHA-256 of what reached the disk with what was meant."""
        client.set_description(domain_id, store.disk_id, store.volume_id, description.before_write(domain_id, previous))
        if source is None:
            written = client.upload(domain_id, store.disk_id, store.volume_id, tar.chunks(), tar.length)
        else:
            first, first_written = source
            written = client.copy(
                domain_id, store.disk_id, store.volume_id, first.disk_id, first.volume_id, tar.length,
                first_written.sha256,
            )  # fmt: skip
        if written.size != tar.length:
            raise AgentError(
                f"the agent reports {written.size} bytes with SHA-256 {written.sha256}, the engine sent "
                f"{tar.length} bytes",
                "transfer_corrupted",
            )
        client.set_description(
            domain_id, store.disk_id, store.volume_id, description.after_write(domain_id, tar.length, now)
        )
        self._record(
            store.disk_id, status=OvfStoreStatus.UPDATED, store_generation=tar.generation, size=tar.length,
            sha256=written.sha256, entity_ids=tar.entity_ids, last_updated=now, outdated_since=None, last_error=None,
        )  # fmt: skip
        return written

    # --- the database side -------------------------------------------------------------------------------

    def _contents(self, domain: StorageDomain) -> tuple[list[EntityRef], list[EntityRef], dict[UUID, int]]:
        """What the domain's store holds: its entities' cached OVF sizes, the unregistered entities found
        on it, and the run status of its VMs."""
        c, cd, u = s.ovf_cache, s.ovf_cache_domains, s.unregistered_entities
        on_domain = select(cd.c.entity_id).where(cd.c.domain_id == domain.id)
        query = (
            select(c.c.entity_id, c.c.ovf_size, c.c.ovf_sha256, type_coerce(c.c.vm_status, Integer).label("vm_status"))
            .where(
                c.c.deleted.is_(False),
                or_(
                    c.c.entity_id.in_(on_domain),
                    and_(c.c.dc_wide.is_(True), c.c.data_center_id == domain.data_center_id),
                ),
            )
            .order_by(c.c.entity_id)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
            refs = [EntityRef(r.entity_id, r.ovf_size, r.ovf_sha256) for r in rows]
            vm_status = {r.entity_id: r.vm_status for r in rows if r.vm_status is not None}
            known = {r.entity_id for r in rows}
            unregistered = []
            query = (
                select(u.c.entity_id, func.length(u.c.ovf_data), type_coerce(u.c.vm_status, Integer))
                .where(u.c.domain_id == domain.id)
                .order_by(u.c.entity_id)
            )
            for entity_id, size, status in conn.execute(query):
                if entity_id not in known:
                    unregistered.append(EntityRef(entity_id, size))
                    if status:  # a recovery restarts the VMs that were running, registered or not yet
                        vm_status[entity_id] = status
        return refs, unregistered, vm_status

    def _fetch(self, ids: Sequence[UUID]) -> Iterable[tuple[UUID, bytes]]:
        c, u = s.ovf_cache, s.unregistered_entities
        found: dict[UUID, bytes] = {}
        with self.db.read() as conn:
            for batch in chunks(list(ids), BATCH):
                found.update(
                    (r[0], r[1])
                    for r in conn.execute(select(c.c.entity_id, c.c.ovf_data).where(c.c.entity_id.in_(batch)))
                )
                missing = [i for i in batch if i not in found]
                if missing:
                    found.update(
                        (r[0], r[1])
                        for r in conn.execute(select(u.c.entity_id, u.c.ovf_data).where(u.c.entity_id.in_(missing)))
                    )
        return [(i, found.get(i, b"")) for i in ids]

    def _record(self, disk_id: UUID, **values: object) -> None:
        with self.db.write() as conn:
            conn.execute(update(s.ovf_stores).where(s.ovf_stores.c.disk_id == disk_id).values(**values))

    def _failed(self, result: DomainResult, error: str) -> DomainResult:
        result.error = error
        with self.db.write() as conn:
            st = s.ovf_stores
            conn.execute(
                update(st)
                .where(st.c.domain_id == result.domain_id, st.c.status != OvfStoreStatus.UPDATED.value)
                .values(last_error=error)
            )
        return result


def _write_order(stores: list[StoreVolume]) -> list[StoreVolume]:
    """Never-written stores first, then the oldest; the most recently written one last."""
    return sorted(
        stores, key=lambda sv: (sv.last_updated is not None, sv.last_updated or datetime.min, str(sv.disk_id))
    )

"""Recovery: import a domain into an engine that has never seen it, and register what it holds."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from ovfstore.agent.client import AgentClient, DomainInfo
from ovfstore.agent.errors import AgentError, CorruptMetadata
from ovfstore.engine import events
from ovfstore.engine.db import schema as s
from ovfstore.engine.domains import DomainCommandFailed, DomainService
from ovfstore.engine.errors import Conflict, InvalidInput, NotFound
from ovfstore.engine.hosts import AgentDirectory
from ovfstore.engine.inventory import Inventory
from ovfstore.engine.inventory.base import Tx
from ovfstore.engine.recovery import bulk
from ovfstore.engine.recovery.options import RegistrationOptions, RegistrationRefused, RegistrationReport
from ovfstore.engine.recovery.reads import BatchReads
from ovfstore.engine.recovery.register import Plan, Registrar
from ovfstore.engine.recovery.scan import DomainScan, ScanReport
from ovfstore.model import (
    Disk,
    DomainStatus,
    EntityType,
    Host,
    OvfData,
    StorageDomain,
    StorageType,
    Template,
    VmStatus,
    Volume,
    VolumeFormat,
    VolumeType,
    utcnow,
)
from ovfstore.ovf import OvfError, read_ovf
from ovfstore.store.quoting import cut

log = logging.getLogger(__name__)
#: Registrations of a `register_all` committed together: one commit per entity is what made registering
#: a large domain slow (bench/recovery_bench.py); a batch keeps a failure's cost bounded.
REGISTER_BATCH = 200


@dataclass(slots=True)
class _Batch:
    """What the registrations of one `register_all` share."""

    domain_id: UUID
    options: RegistrationOptions
    dry_run: bool
    planned: set[UUID] = dataclasses.field(default_factory=set)  # templates a dry run registered
    reserved: dict[UUID, dict[str, set[UUID]]] = dataclasses.field(default_factory=dict)  # per DC (`reserved_macs`)
    memo: dict[tuple[Any, ...], Any] = dataclasses.field(default_factory=dict)  # reads kept (`Registrar.plan`)


@dataclass(frozen=True, slots=True)
class UnregisteredEntity:
    id: UUID
    domain_id: UUID
    name: str
    entity_type: EntityType
    vm_status: VmStatus
    high_availability: bool
    errors: str
    data: OvfData | None  # None when the OVF could not be read


@dataclass(frozen=True, slots=True)
class UnregisteredDisk:
    disk_id: UUID
    domain_id: UUID
    alias: str
    description: str
    provisioned_size: int
    actual_size: int
    volume_ids: list[UUID]
    entity_ids: list[UUID]


class RecoveryService:
    def __init__(
        self,
        inventory: Inventory,
        agents: AgentDirectory,
        domains: DomainService,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.inv = inventory
        self.agents = agents
        self.domains = domains
        self.clock = clock
        self.registrar = Registrar(inventory)
        # `register_all` writes a batch's registrations together (`_register_batch`); False: one by one,
        # through the inventory's commands, as `register` does (the reference the bulk path is tested against).
        self.bulk_registration = True
        # An imported domain is read into unregistered entities when it is attached, before the updater
        # may rewrite its stores.
        domains.on_attach = self.scan_through

    # --- import -------------------------------------------------------------------------------------------

    def import_domain(
        self,
        path: str,
        *,
        host: Host,
        name: str | None = None,
        storage_type: StorageType = StorageType.LOCALFS,
        address: str = "",
        force_detach: bool = False,
    ) -> StorageDomain:
        """Add the existing domain at `path` (the domain's own directory, or the directory holding it),
        keeping its id. Its metadata must verify. A domain still attached to another data center (a stale
        pool: its engine is gone) is refused unless `force_detach`, which detaches it on storage first."""
        client = self.agents.client(host)
        try:
            info = client.domain_at(path)
        except CorruptMetadata as exc:
            raise InvalidInput(f"the domain at {path} has damaged metadata and is not trusted: {exc}") from exc
        except AgentError as exc:
            raise InvalidInput(f"no storage domain found at {path}: {exc}") from exc
        domain = self._adopt(client, info, f"the domain at {path}", force_detach)
        domain.name = name or info.description or f"imported-{str(info.id)[:8]}"
        domain.storage_type = storage_type
        domain.address = address
        domain.path = os.path.dirname(info.path.rstrip("/"))
        added = self.inv.storage_domains.add(domain)
        self._event("domain_imported", f"storage domain {added.name} ({added.id}) imported from {path}", added.id)
        return added

    def import_block_domain(
        self,
        domain_id: UUID,
        *,
        host: Host,
        name: str | None = None,
        storage_type: StorageType = StorageType.ISCSI,
        force_detach: bool = False,
    ) -> StorageDomain:
        """Add the existing block domain `domain_id` (a volume group on LUNs the host sees), keeping its
        id; as `import_domain` for the rest. Its LUNs are recorded as the host reports them."""
        client = self.agents.client(host)
        try:
            info = client.domain_info(domain_id)
        except CorruptMetadata as exc:
            raise InvalidInput(f"block domain {domain_id} has damaged metadata and is not trusted: {exc}") from exc
        except AgentError as exc:
            raise InvalidInput(f"block domain {domain_id} cannot be read through host {host.name}: {exc}") from exc
        if not info.is_block:
            raise InvalidInput(f"domain {domain_id} is a file domain at {info.path}; import it by its path")
        domain = self._adopt(client, info, f"block domain {domain_id}", force_detach)
        domain.name = name or info.description or f"imported-{str(info.id)[:8]}"
        domain.storage_type = storage_type
        domain.vg_uuid = info.vg_uuid
        domain.logical_units = self.domains.logical_units(client, info)
        added = self.inv.storage_domains.add(domain)
        luns = ", ".join(lun.id for lun in added.logical_units) or "its LUNs"
        self._event("domain_imported", f"block storage domain {added.name} ({added.id}) imported from {luns}", added.id)
        return added

    def _adopt(self, client: AgentClient, info: DomainInfo, what: str, force_detach: bool) -> StorageDomain:
        """Checks shared by every import: a data domain this engine does not know, no longer attached to a
        data center (or, with `force_detach`, detached from that stale one on storage first)."""
        if info.domain_class != "Data":
            raise InvalidInput(f"{what} is a {info.domain_class} domain; only data domains are imported")
        known = {d.id: d for d in self.inv.storage_domains.list()}
        if info.id in known:
            raise Conflict(f"storage domain {info.id} is already known here as {known[info.id].name!r}")
        if info.pool_id is not None:
            if not force_detach:
                raise Conflict(
                    f"{what} is still attached to data center {info.pool_id}; if that data center's "
                    "engine is gone, import it with force_detach to take it over"
                )
            try:
                client.detach(info.id, info.pool_id, force=True)
            except AgentError as exc:
                raise DomainCommandFailed(f"detaching the domain from its stale data center failed: {exc}") from exc
        return StorageDomain(
            id=info.id,
            name="",
            description=info.description,
            ovf_store_count=self.domains.updater.config.store_count,
        )

    def scan_through(self, domain_id: UUID, client: AgentClient) -> ScanReport:
        report = DomainScan(self.inv, client, domain_id, self.clock()).run()
        log.info(
            "domain %s: %d entities (%d unreadable, %d already known) from %s, %d unregistered disks, "
            "%d stores adopted",
            domain_id, report.entities, report.unreadable, report.already_known, report.source or "nothing",
            report.disks, report.adopted_stores,
        )  # fmt: skip
        self._event(
            "domain_scanned",
            f"domain {domain_id} read: {report.entities} VMs and templates ({report.unreadable} unreadable, "
            f"{report.already_known} already known) from {report.source or 'no store'}, {report.disks} unregistered "
            f"disks, {report.adopted_stores} stores adopted",
            domain_id,
        )
        return report

    def _event(
        self, code: str, message: str, domain_id: UUID, severity: events.Severity = events.Severity.NORMAL
    ) -> None:
        events.record(self.inv.db, self.clock(), severity, code, message, domain_id)

    # --- what was found ------------------------------------------------------------------------------------

    def unregistered_entities(self, domain_id: UUID, entity_type: EntityType | None = None) -> list[UnregisteredEntity]:
        u = s.unregistered_entities
        query = select(u).where(u.c.domain_id == domain_id).order_by(u.c.name, u.c.entity_id)
        if entity_type is not None:
            query = query.where(u.c.entity_type == entity_type.value)
        with self.inv.db.read() as conn:
            rows = conn.execute(query).all()
        return [_entity(row) for row in rows]

    def unregistered_entity(self, domain_id: UUID, entity_id: UUID) -> UnregisteredEntity:
        u = s.unregistered_entities
        with self.inv.db.read() as conn:
            row = conn.execute(select(u).where(u.c.domain_id == domain_id, u.c.entity_id == entity_id)).first()
        if row is None:
            raise NotFound("unregistered VM or template", entity_id)
        return _entity(row)

    def unregistered_disks(self, domain_id: UUID) -> list[UnregisteredDisk]:
        ud = s.unregistered_disks
        with self.inv.db.read() as conn:
            rows = conn.execute(select(ud).where(ud.c.domain_id == domain_id).order_by(ud.c.disk_id)).all()
        return [
            UnregisteredDisk(
                r.disk_id,
                r.domain_id,
                r.alias,
                r.description,
                r.provisioned_size,
                r.actual_size,
                list(r.volume_ids),
                list(r.entity_ids),
            )
            for r in rows
        ]

    # --- registration ---------------------------------------------------------------------------------------

    def register(
        self, domain_id: UUID, entity_id: UUID, options: RegistrationOptions, *, dry_run: bool = False
    ) -> RegistrationReport:
        """Register one VM or template (or, with `dry_run`, say what would happen). Raises
        `RegistrationRefused` with the reason when it cannot be registered."""
        entity = self.unregistered_entity(domain_id, entity_id)
        if entity.data is None:
            raise RegistrationRefused(f"{entity_id}: its OVF cannot be read ({entity.errors}); it cannot be registered")
        plan = self.registrar.plan(domain_id, entity.data, options)
        if dry_run:
            return plan.report
        report = self.registrar.apply(plan)
        kind = report.entity_type.value
        self._event("registered", f"{kind} {report.name} ({report.registered_id or entity_id}) registered", domain_id)
        return report

    def register_all(
        self,
        domain_id: UUID,
        options: RegistrationOptions,
        *,
        dry_run: bool = False,
        progress: Callable[[RegistrationReport], None] | None = None,
    ) -> list[RegistrationReport]:
        """Register everything on the domain: templates (base templates before their versions) before the
        VMs that use them. Each entity is reported, refused ones with the reason; one refusal does not
        stop the others. `options` apply to all (names are kept: `name` and `clone` are per entity).

        Registrations commit `REGISTER_BATCH` at a time, each in a savepoint of its own (a refused one
        leaves nothing behind); `progress` hears of each after its batch committed."""
        shared = dataclasses.replace(options, name=None, clone=False)
        entities = sorted(self.unregistered_entities(domain_id), key=_registration_order)
        reports: list[RegistrationReport] = []
        batch = _Batch(domain_id, shared, dry_run)
        for start in range(0, len(entities), REGISTER_BATCH):
            chunk = entities[start : start + REGISTER_BATCH]
            if dry_run:
                done = [self._register_one(batch, entity, None) for entity in chunk]
            elif not self.bulk_registration:
                with self.inv.transaction() as tx:
                    done = [self._register_one(batch, entity, tx) for entity in chunk]
            else:
                with self.inv.transaction() as tx:
                    done = self._register_batch(batch, chunk, tx)
            reports += done
            if progress is not None:
                for report in done:
                    progress(report)
        if not dry_run and reports:
            registered = sum(r.outcome == "registered" for r in reports)
            refused = len(reports) - registered
            self._event(
                "registered_all",
                f"{registered} VMs and templates registered from domain {domain_id}, {refused} refused",
                domain_id,
                events.Severity.WARNING if refused else events.Severity.NORMAL,
            )
        return reports

    def _register_batch(self, batch: _Batch, chunk: list[UnregisteredEntity], tx: Tx) -> list[RegistrationReport]:
        """One batch of a `register_all`, in `tx`: every entity planned, the plans that share nothing and
        that the inventory commands are sure to accept written together (`bulk`), the others registered
        one by one after them, in their order, as `_register_one` does. If the bulk write fails, which
        the checks say it cannot, the whole batch goes the per-entity way: nothing is lost."""
        reports: list[RegistrationReport | None] = [None] * len(chunk)
        plans, shared = self._plan_batch(batch, chunk, tx, reports)
        left = {chunk[i].id for i in shared}
        later = sorted(shared | (plans.keys() - self._bulk_eligible(batch, plans, left, tx)))
        written = [plans[i] for i in sorted(plans) if i not in later]
        if written:
            try:
                with tx.savepoint():
                    bulk.write(tx, written)
            except SQLAlchemyError as exc:
                log.warning(
                    "writing %d registrations together failed (%s); registering them one by one",
                    len(written),
                    cut(str(exc)),
                )
                later = sorted(shared | plans.keys())
                batch.planned.difference_update(p.entity.id for p in written)
        log.debug(
            "registration batch: %d written together, %d one by one", len(plans) + len(shared) - len(later), len(later)
        )
        for i in later:
            reports[i] = self._register_one(batch, chunk[i], tx)
        for i, plan in plans.items():
            if i not in later:
                reports[i] = plan.report
        return [r for r in reports if r is not None]

    def _plan_batch(
        self, batch: _Batch, chunk: list[UnregisteredEntity], tx: Tx, reports: list[RegistrationReport | None]
    ) -> tuple[dict[int, Plan], set[int]]:
        """Plan every entity of the batch against what the database held before it, read for the whole
        batch at once (`BatchReads`); refusals go into `reports`. The plans by index, and the indexes of
        those claiming what an earlier one claimed (`bulk.claims`): these are left to the per-entity way,
        which sees the earlier ones registered."""
        plans: dict[int, Plan] = {}
        shared: set[int] = set()
        claimed: set[bulk.Claim] = set()
        reads = BatchReads.read(tx.conn, (entity.data for entity in chunk if entity.data is not None))
        for i, entity in enumerate(chunk):
            if entity.data is None:
                reports[i] = RegistrationReport(
                    entity.id, entity.name, entity.entity_type, "refused", reason=entity.errors
                )
                continue
            try:
                plan = self.registrar.plan(
                    batch.domain_id, entity.data, batch.options, batch.planned, batch.reserved, tx.conn, batch.memo,
                    reads,
                )  # fmt: skip
            except (RegistrationRefused, Conflict, InvalidInput, NotFound) as exc:
                reports[i] = RegistrationReport(entity.id, entity.name, entity.entity_type, "refused", reason=str(exc))
                continue
            assert plan.data_center_id is not None
            keys = bulk.claims(plan, plan.data_center_id)
            if keys & claimed:
                shared.add(i)
            else:
                plans[i] = plan
            claimed |= keys
            if entity.entity_type is EntityType.TEMPLATE:
                batch.planned.add(entity.id)  # for the VMs planned after it; dropped again if not written
        return plans, shared

    def _bulk_eligible(self, batch: _Batch, plans: dict[int, Plan], left: set[UUID], tx: Tx) -> set[int]:
        """The plans of the batch to write together: those `bulk.eligible` accepts, given what the batch
        reads once. A template left out (or in `left`, the entities already left to the per-entity way)
        leaves the VMs made from it out too; it is no longer counted as registered (`_Batch.planned`)."""
        facts = bulk.read_facts(tx.conn, ((p, p.data_center_id) for p in plans.values() if p.data_center_id))
        deferred = set(left)
        chosen: set[int] = set()
        for i in sorted(plans):
            plan = plans[i]
            assert plan.data_center_id is not None
            if bulk.eligible(plan, plan.data_center_id, facts, deferred):
                chosen.add(i)
            else:
                deferred.add(plan.entity.id)
        batch.planned.difference_update(deferred)
        return chosen

    def _register_one(self, batch: _Batch, entity: UnregisteredEntity, tx: Tx | None) -> RegistrationReport:
        """One entity of a `register_all`: planned (and, in `tx`, applied in a savepoint), or refused."""
        if entity.data is None:
            return RegistrationReport(entity.id, entity.name, entity.entity_type, "refused", reason=entity.errors)
        try:
            with contextlib.nullcontext() if tx is None else tx.savepoint():
                plan = self.registrar.plan(
                    batch.domain_id, entity.data, batch.options, batch.planned, batch.reserved,
                    None if tx is None else tx.conn, batch.memo,
                )  # fmt: skip
                report = plan.report if batch.dry_run else self.registrar.apply(plan)
        except (RegistrationRefused, Conflict, InvalidInput, NotFound) as exc:
            return RegistrationReport(entity.id, entity.name, entity.entity_type, "refused", reason=str(exc))
        except SQLAlchemyError as exc:  # a row the checks did not foresee (an id used here already)
            reason = f"the database refused its rows: {cut((str(exc) or repr(exc)).splitlines()[0])}"
            return RegistrationReport(entity.id, entity.name, entity.entity_type, "refused", reason=reason)
        if entity.entity_type is EntityType.TEMPLATE:
            batch.planned.add(entity.id)
        return report

    def register_disk(self, domain_id: UUID, disk_id: UUID) -> Disk:
        """Register a disk found on the domain as a floating disk of this engine."""
        domain = self.inv.storage_domains.get(domain_id)
        if domain.status is not DomainStatus.ACTIVE:
            raise Conflict(f"storage domain {domain.name!r} is {domain.status.value}; attach and activate it first")
        found = {d.disk_id: d for d in self.unregistered_disks(domain_id)}
        if disk_id not in found:
            raise NotFound("unregistered disk", disk_id)
        row = found[disk_id]
        hosts = self.agents.up_hosts(domain.data_center_id) if domain.data_center_id else []
        if not hosts:
            raise DomainCommandFailed("no host of the data center is up; bring a host up first")
        volumes = {v.volume: v for v in self.agents.client(hosts[0]).list_volumes(domain_id, disk_id)}
        disk = Disk(
            id=disk_id,
            alias=row.alias or f"disk-{str(disk_id)[:8]}",
            description="",
            provisioned_size=row.provisioned_size,
            domain_ids=[domain_id],
            volumes=[
                Volume(
                    id=vid,
                    disk_id=disk_id,
                    parent_id=volumes[vid].parent,
                    capacity=volumes[vid].capacity,
                    format=VolumeFormat(volumes[vid].format.lower()),
                    volume_type=VolumeType(volumes[vid].type.lower()),
                    actual_size=volumes[vid].actual_size,
                )
                for vid in row.volume_ids
                if vid in volumes
            ],
        )
        with self.inv.transaction() as tx:
            self.inv.disks.add(disk)
            ud = s.unregistered_disks
            tx.conn.execute(delete(ud).where(ud.c.disk_id == disk_id))
        return disk


def _entity(row: Any) -> UnregisteredEntity:
    data: OvfData | None = None
    errors = row.errors
    try:
        data = read_ovf(row.ovf_data).data
    except OvfError as exc:
        errors = errors or f"unreadable OVF: {exc}"
    return UnregisteredEntity(
        id=row.entity_id,
        domain_id=row.domain_id,
        name=row.name,
        entity_type=row.entity_type,
        vm_status=row.vm_status,
        high_availability=row.high_availability,
        errors=errors,
        data=data,
    )


def _registration_order(entity: UnregisteredEntity) -> tuple[int, int, str]:
    """Templates first, base templates before versions, then VMs; by name within each."""
    if entity.entity_type is EntityType.TEMPLATE:
        version = entity.data.entity.version_number if entity.data and isinstance(entity.data.entity, Template) else 1
        return (0, version, entity.name)
    return (1, 0, entity.name)

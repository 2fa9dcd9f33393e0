"""Reading what a domain says about itself into the engine: its OVF stores become unregistered VMs and
templates, its unknown volumes unregistered disks, and its store volumes are adopted as the domain's
stores (so the updater rewrites them, with the unregistered entities kept in, instead of adding more).

Every store is read and judged (`store.selection`); the newest good one is read once more, streaming,
into the database inside one transaction, which rolls back if that store turns out damaged after all.
Without a usable store, the legacy `master/vms` OVFs are read. One unreadable OVF is recorded with its
error; the others still come back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, delete, insert, select, update

from ovfstore.agent.client import AgentClient, VolumeInfo
from ovfstore.agent.errors import AgentError
from ovfstore.engine.db import schema as s
from ovfstore.engine.domains import DomainCommandFailed
from ovfstore.engine.inventory import Inventory
from ovfstore.engine.updater import records
from ovfstore.model import (
    EntityType,
    FoundVolume,
    OvfStoreStatus,
    VmStatus,
)
from ovfstore.ovf import OvfError, read_ovf
from ovfstore.store import selection
from ovfstore.store.selection import StoreVerdict, StoreVolume

log = logging.getLogger(__name__)
#: Rows are written in batches while a store streams in: memory stays flat however many VMs it holds.
BATCH = 200


class ScanError(DomainCommandFailed):
    """The domain's stores could not be read; nothing was recorded and nothing may be written."""


@dataclass(slots=True)
class ScanReport:
    domain_id: UUID
    stores: list[StoreVerdict] = field(default_factory=list)
    chosen: StoreVerdict | None = None
    source: str = ""  # the chosen store's disk id, "legacy", or "" when the domain describes nothing
    entities: int = 0
    unreadable: int = 0
    # Entities whose store member was skipped (over the member limit), with why: counted as unreadable,
    # not recorded as unregistered (there is no OVF to register them from).
    skipped: dict[UUID, str] = field(default_factory=dict)
    already_known: int = 0
    disks: int = 0
    adopted_stores: int = 0
    # Where the time went (seconds), for `bench/recovery_bench.py`: listing the domain's volumes, reading
    # and verifying every store, reading the chosen one again into the database, parsing its OVFs
    # (within that), and recording unregistered disks and adopted stores.
    timings: dict[str, float] = field(default_factory=dict)
    bytes_verified: int = 0  # the store bytes read while verifying them


class DomainScan:
    def __init__(self, inventory: Inventory, client: AgentClient, domain_id: UUID, now: datetime) -> None:
        self.inv = inventory
        self.client = client
        self.domain_id = domain_id
        self.now = now

    def run(self) -> ScanReport:
        report = ScanReport(self.domain_id)
        start = time.perf_counter()
        volumes = self.client.list_volumes(self.domain_id)
        report.timings["list_volumes_s"] = time.perf_counter() - start
        stores = [v for v in volumes if selection.is_store(v.disk_type, v.description)]
        candidates = [
            StoreVolume(v.image, v.volume, v.capacity, v.disk_type, v.description, v.legality) for v in stores
        ]
        start = time.perf_counter()
        report.stores = [selection.evaluate(c, self._reader(c)) for c in candidates]
        report.timings["read_verify_s"] = time.perf_counter() - start
        report.bytes_verified = sum(v.description.size or 0 for v in report.stores if v.summary is not None)
        unreadable = [v for v in report.stores if v.unreadable]
        if unreadable:
            # A store we could not read may be the only good copy: reading nothing and then letting the
            # updater rewrite the stores would erase the domain's VMs. Stop, change nothing, retry later.
            raise ScanError(
                f"OVF store {unreadable[0].volume.disk_id} of domain {self.domain_id} could not be read "
                f"({unreadable[0].error}); nothing was changed: fix the cause and attach the domain again"
            )
        for verdict in report.stores:
            if verdict.error:
                log.warning(
                    "domain %s: store %s passed over: %s", self.domain_id, verdict.volume.disk_id, verdict.error
                )
        report.chosen = selection.choose(report.stores)
        with self.inv.transaction() as tx:
            conn = tx.conn
            start = time.perf_counter()
            known = set(conn.execute(select(s.vm_static.c.id)).scalars())
            conn.execute(delete(s.unregistered_entities).where(s.unregistered_entities.c.domain_id == self.domain_id))
            references = self._load_entities(conn, report, known)
            report.timings["load_s"] = time.perf_counter() - start
            self._record_disks(conn, volumes, references, report)
            self._adopt_stores(conn, report)
        report.timings["record_s"] = time.perf_counter() - start - report.timings["load_s"]
        return report

    # --- entities --------------------------------------------------------------------------------------

    def _load_entities(self, conn: Connection, report: ScanReport, known: set[UUID]) -> dict[UUID, set[UUID]]:
        """Unregistered entity rows from the chosen store (or the legacy OVFs); returns, per disk id, the
        entities whose OVFs reference it."""
        references: dict[UUID, set[UUID]] = {}
        pending: list[dict[str, object]] = []
        source = str(report.chosen.volume.disk_id) if report.chosen else "legacy"

        def take(entity_id: UUID, document: bytes, _unregistered: bool) -> None:
            if entity_id in known:
                report.already_known += 1
                return
            pending.append(self._row(entity_id, document, source, references, report))
            if len(pending) >= BATCH:
                conn.execute(insert(s.unregistered_entities), pending)
                pending.clear()

        if report.chosen is not None:
            # Only the final version of each entity (a store with appended segments may hold several).
            chosen = report.chosen
            verdict = selection.evaluate(chosen.volume, self._reader(chosen.volume), take, final=chosen.summary)
            if not verdict.valid:
                # The store changed between the two reads: trust nothing from it.
                raise ScanError(
                    f"OVF store {chosen.volume.disk_id} of domain {self.domain_id} became unusable while it was "
                    f"read ({verdict.error}); nothing was changed: attach the domain again"
                )
            statuses = verdict.summary.vm_status if verdict.summary else {}
            report.skipped = dict(verdict.summary.skipped_ids) if verdict.summary else {}
            report.unreadable += len(report.skipped)
            report.source = source
        else:
            for entity_id, document in sorted(self.client.legacy_ovfs(self.domain_id).items()):
                take(entity_id, document, False)
            statuses = {}
            report.source = "legacy" if (pending or report.entities or report.already_known) else ""
        if pending:
            conn.execute(insert(s.unregistered_entities), pending)
        u = s.unregistered_entities
        for entity_id, status in statuses.items():
            if status in VmStatus._value2member_map_:
                conn.execute(
                    update(u)
                    .where(u.c.domain_id == self.domain_id, u.c.entity_id == entity_id)
                    .values(vm_status=VmStatus(status))
                )
        return references

    def _row(
        self, entity_id: UUID, document: bytes, source: str, references: dict[UUID, set[UUID]], report: ScanReport
    ) -> dict[str, object]:
        row: dict[str, object] = {
            "entity_id": entity_id, "domain_id": self.domain_id, "entity_type": EntityType.VM, "name": "",
            "ovf_data": document, "vm_status": VmStatus.DOWN, "high_availability": False, "source": source,
            "errors": "", "found_at": self.now,
        }  # fmt: skip
        start = time.perf_counter()
        try:
            parsed = read_ovf(document)
        except OvfError as exc:
            report.unreadable += 1
            row["errors"] = f"unreadable OVF: {exc}"
            return row
        finally:
            report.timings["parse_s"] = report.timings.get("parse_s", 0.0) + time.perf_counter() - start
        data = parsed.data
        if data.id != entity_id:
            row["errors"] = f"the OVF describes {data.id}, but the store names it {entity_id}"
        row.update(name=data.entity.name, entity_type=data.entity_type, high_availability=data.entity.high_availability)
        for disk in data.disks:
            references.setdefault(disk.disk.id, set()).add(entity_id)
        report.entities += 1
        return row

    # --- disks and stores ----------------------------------------------------------------------------------

    def _record_disks(
        self, conn: Connection, volumes: list[VolumeInfo], references: dict[UUID, set[UUID]], report: ScanReport
    ) -> None:
        """Images on the domain the engine does not know (and that are no store) become unregistered disks."""
        known = set(conn.execute(select(s.disks.c.id)).scalars())
        images: dict[UUID, list[VolumeInfo]] = {}
        for volume in volumes:
            if not selection.is_store(volume.disk_type, volume.description) and volume.image not in known:
                images.setdefault(volume.image, []).append(volume)
        ud = s.unregistered_disks
        conn.execute(delete(ud).where(ud.c.domain_id == self.domain_id))
        rows = [self._disk_row(image, chain, references.get(image, set())) for image, chain in sorted(images.items())]
        if rows:
            conn.execute(insert(ud), rows)
        report.disks = len(rows)

    def _disk_row(self, image: UUID, volumes: list[VolumeInfo], entities: set[UUID]) -> dict[str, object]:
        by_parent = {v.parent: v for v in volumes}
        chain: list[VolumeInfo] = []
        current = by_parent.get(None)
        while current is not None and len(chain) < len(volumes):
            chain.append(current)
            current = by_parent.get(current.volume)
        ordered = chain if len(chain) == len(volumes) else sorted(volumes, key=lambda v: str(v.volume))
        leaf = ordered[-1]
        return {
            "disk_id": image, "domain_id": self.domain_id, "alias": _alias(leaf.description),
            "description": leaf.description, "provisioned_size": leaf.capacity,
            "actual_size": sum(v.actual_size for v in volumes), "volume_ids": [v.volume for v in ordered],
            "entity_ids": sorted(entities), "found_at": self.now,
            "volumes": [
                FoundVolume(
                    id=str(v.volume), parent=str(v.parent or ""), capacity=v.capacity, format=v.format,
                    legality=v.legality, type=v.type,
                )
                for v in ordered
            ],
        }  # fmt: skip

    def _adopt_stores(self, conn: Connection, report: ScanReport) -> None:
        """Store volumes found on the domain become its stores in the engine, marked outdated: the updater
        then rewrites them (keeping the unregistered entities) rather than creating new ones beside.

        Only when a store was read: if every store is damaged, none is adopted, so none is overwritten.
        The updater creates new stores beside them, and the damaged ones stay for an operator to inspect
        (`ovfstore inspect --export` may still save documents from them)."""
        if report.chosen is None:
            return
        known = records.known_disk_ids(conn)
        for verdict in report.stores:
            volume = verdict.volume
            if volume.disk_id in known:
                continue
            # Our next write continues the domain's store generations, above what it holds.
            self.inv.disks.add_store_disk(self.domain_id, volume.disk_id, volume.volume_id, volume.capacity, self.now)
            records.add(
                conn, self.domain_id, volume.disk_id, self.now, status=OvfStoreStatus.OUTDATED,
                generation=max((v.generation or 0) for v in report.stores), size=verdict.description.size,
                last_updated=verdict.last_updated, error=verdict.error,
            )  # fmt: skip
            report.adopted_stores += 1

    def _reader(self, volume: StoreVolume) -> _Reader:
        return _Reader(self.client, self.domain_id, volume)


class _Reader:
    """`read(size)` for `store.selection`: stream the volume's first `size` bytes through the agent."""

    def __init__(self, client: AgentClient, domain_id: UUID, volume: StoreVolume) -> None:
        self.client = client
        self.domain_id = domain_id
        self.volume = volume

    def __call__(self, size: int) -> Iterable[bytes]:
        return self._stream(size)

    def _stream(self, size: int) -> Iterator[bytes]:
        try:
            with self.client.download(self.domain_id, self.volume.disk_id, self.volume.volume_id, 0, size) as data:
                yield from data
        except AgentError as exc:  # a store that cannot be read is passed over like a damaged one
            raise OSError(f"reading store {self.volume.disk_id} through the agent failed: {exc}") from exc


def _alias(description: str) -> str:
    """oVirt keeps a disk's alias in its volume description, `{"DiskAlias":"...","DiskDescription":"..."}`."""
    import json

    try:
        value = json.loads(description)
    except ValueError:
        return ""
    return str(value.get("DiskAlias", "")) if isinstance(value, dict) else ""

"""Block storage domains through the engine: real LVM on loop devices, a real agent process allowed to use
them, both databases. Create a domain on LUNs, protect VMs on it, kill the agent in the middle of a store
write and find a complete store, detach, lose the engine, import the domain by its LUNs into a fresh
engine, register everything and compare it with the original field by field."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from uuid import UUID

import pytest

from ovfstore.agent.client import AgentClient
from ovfstore.engine import events
from ovfstore.engine.config import AgentAccess, UpdaterConfig
from ovfstore.engine.db.database import Database
from ovfstore.engine.domains import DomainService
from ovfstore.engine.errors import Conflict, InvalidInput
from ovfstore.engine.hosts import AgentDirectory
from ovfstore.engine.inventory import HostChanges, Inventory, VmChanges
from ovfstore.engine.ovfsource import load_ovf_data
from ovfstore.engine.recovery import RecoveryService, RegistrationOptions
from ovfstore.engine.recovery.compare import compare_inventories
from ovfstore.engine.updater.contents import DocumentSpool
from ovfstore.engine.updater.service import OvfUpdater
from ovfstore.model import (
    GIB,
    Disk,
    DiskAttachment,
    DomainStatus,
    Host,
    LogicalUnit,
    Nic,
    StorageDomain,
    StorageType,
    Template,
    Vm,
    VmStatus,
    Volume,
    VolumeType,
)
from ovfstore.store import description
from ovfstore.store.tarread import StoreContents, read_store
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.block_fixtures import BlockLab, block_lab


@dataclass
class Engine:
    db: Database
    inv: Inventory
    agents: AgentDirectory
    updater: OvfUpdater
    domains: DomainService
    recovery: RecoveryService
    host: Host

    def close(self) -> None:
        self.updater.stop()
        self.agents.close()


def _engine(db: Database, agent: AgentProcess, host_name: str) -> Engine:
    inv = Inventory(db)
    inv.bootstrap()
    cluster = inv.clusters.list()[0]
    host = inv.hosts.add(Host(name=host_name, cluster_id=cluster.id, address=agent.url))
    agents = AgentDirectory(db, AgentAccess(secret=agent.secret, timeout_s=60))
    updater = OvfUpdater(db, inv, agents, UpdaterConfig(debounce_s=0.2, backoff_initial_s=0.1))
    domains = DomainService(inv, agents, updater)
    return Engine(db, inv, agents, updater, domains, RecoveryService(inv, agents, domains), host)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[BlockLab]:
    with block_lab(tmp_path / "lvm") as lab:
        yield lab


def complete_stores(client: AgentClient, sd: UUID) -> list[StoreContents]:
    """Every OVF store of the domain that is complete and verifies, read through an agent."""
    good = []
    for volume in client.list_volumes(sd):
        if not volume.is_ovf_store or volume.legality != "LEGAL":
            continue
        desc = description.parse(volume.description)
        if not desc.complete or not desc.size:
            continue
        with client.download(sd, volume.image, volume.volume, length=desc.size) as data:
            contents = read_store(data, desc.size)
        if contents.verified:
            good.append(contents)
    return good


def _protect(old: Engine, lab: BlockLab) -> tuple[StorageDomain, list[UUID]]:
    inv, dc = old.inv, old.inv.data_centers.list()[0]
    cluster = inv.clusters.list()[0]
    profile = inv.vnic_profiles.list()[0]
    domain = old.domains.create(
        StorageDomain(
            name="gold", storage_type=StorageType.ISCSI, data_center_id=dc.id,
            logical_units=[LogicalUnit(id=lab.luns[0]), LogicalUnit(id=lab.luns[1])],
        ),
        old.host,
    )  # fmt: skip
    assert domain.status is DomainStatus.ACTIVE
    assert domain.master
    assert domain.vg_uuid
    assert domain.path == ""
    assert sorted(lu.pv_uuid != "" for lu in domain.logical_units) == [True, True]

    # A raw disk on a block domain is a whole LV: sparse is refused, with what to do.
    with pytest.raises(InvalidInput, match="preallocated"):
        old.domains.create_disk(Disk(alias="sparse", provisioned_size=GIB, domain_ids=[domain.id]))

    def disk(alias: str, size: int = GIB) -> Disk:
        d = Disk(alias=alias, provisioned_size=size, domain_ids=[domain.id], description=f"{alias} disk")
        d.volumes = [Volume(disk_id=d.id, capacity=size, volume_type=VolumeType.PREALLOCATED)]
        return old.domains.create_disk(d)

    template = inv.templates.add(Template(name="rhel9", cluster_id=cluster.id, os_type="rhel_9x64", memory_mb=2048))
    inv.attachments.attach(DiskAttachment(entity_id=template.id, disk_id=disk("rhel9_root").id, bootable=True))
    inv.nics.add(Nic(entity_id=template.id, name="nic1", vnic_profile_id=profile.id))
    ids = [template.id]
    for i in range(3):
        vm = inv.vms.add(
            Vm(name=f"vm{i}", cluster_id=cluster.id, template_id=template.id, memory_mb=1024 * (i + 1),
               high_availability=i == 0, priority=100 if i == 0 else 1, description=f"block VM {i}")
        )  # fmt: skip
        inv.attachments.attach(DiskAttachment(entity_id=vm.id, disk_id=disk(f"vm{i}_root").id, bootable=True))
        if i == 1:
            inv.attachments.attach(DiskAttachment(entity_id=vm.id, disk_id=disk(f"vm{i}_data", 2 * GIB).id))
        inv.nics.add(Nic(entity_id=vm.id, name="nic1", vnic_profile_id=profile.id))
        if i != 2:
            inv.vms.set_status(vm.id, VmStatus.UP)
        ids.append(vm.id)
    report = old.updater.run_once()
    assert all(r.ok for r in report.domains.values()), report.domains
    return domain, ids


def _kill_mid_write(
    old: Engine, domain: StorageDomain, agent: AgentProcess, start: Callable[[], AgentProcess]
) -> AgentProcess:
    """Many more VMs (in the inventory only), a store update, and the agent killed while it streams: one
    complete store stays; a new agent on the same LUNs completes the update. The extra VMs then go."""
    inv, cluster = old.inv, old.inv.clusters.list()[0]
    # Whole writes: the change below is to stream a whole tar (appends are tested in test_updater_incremental).
    old.updater.domain_step.config = replace(old.updater.domain_step.config, incremental=False)
    extra = []
    for i in range(300):
        vm = inv.vms.add(Vm(name=f"bulk{i:03d}", cluster_id=cluster.id))
        d = inv.disks.add(Disk(alias=f"bulk{i:03d}_root", provisioned_size=GIB, domain_ids=[domain.id]))
        inv.attachments.attach(DiskAttachment(entity_id=vm.id, disk_id=d.id, bootable=True))
        extra.append(vm.id)
    assert old.updater.run_once().domains[domain.id].ok
    inv.vms.update(extra[0], VmChanges(description="changed"))

    real_fetch = DocumentSpool.fetch
    calls = 0

    def fetch_then_kill(spool: DocumentSpool, ids: Sequence[UUID]) -> list[tuple[UUID, bytes]]:
        nonlocal calls
        calls += 1
        if calls == 2:
            agent.kill(signal.SIGKILL)
        return real_fetch(spool, ids)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DocumentSpool, "fetch", fetch_then_kill)
        report = old.updater.run_once()
    assert calls >= 2, "the agent was not killed while the store streamed"
    assert report.domains[domain.id].error is not None

    replacement = start()
    with replacement.client() as client:
        good = complete_stores(client, domain.id)
    assert len(good) == 1, "one store must stay complete and verified while the other is rewritten"
    assert set(extra) <= set(good[0].ovfs)

    old.inv.hosts.update(old.host.id, HostChanges(address=replacement.url))
    assert old.updater.run_once().domains[domain.id].ok
    with replacement.client() as client:
        assert len(complete_stores(client, domain.id)) == 2
    for vm_id in extra:
        inv.vms.remove(vm_id)
    return replacement


def test_block_domain_protect_kill_detach_lose_import_by_luns_register_compare(
    database: Database, empty_db_url: str, agent_factory: Callable[..., AgentProcess], lab: BlockLab, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    agent = lab.start_agent(agent_factory, root)
    old = _engine(database, agent, "host1")

    offered = {d.id: d for d in old.domains.host_devices(old.host)}
    assert set(offered) == {Path(lun).name for lun in lab.luns} or {d.path for d in offered.values()} == set(lab.luns)
    assert all(d.pv_uuid is None and d.domain_id is None for d in offered.values())

    domain, ids = _protect(old, lab)
    by_path = {d.path: d for d in old.domains.host_devices(old.host)}
    assert by_path[lab.luns[0]].domain_id == domain.id == by_path[lab.luns[1]].domain_id
    assert by_path[lab.luns[0]].vg_uuid == domain.vg_uuid
    assert by_path[lab.luns[2]].domain_id is None
    # LUNs in use are refused for a new domain; a domain is never made over another.
    with pytest.raises(Conflict, match="in use"):
        old.domains.create(
            StorageDomain(name="again", storage_type=StorageType.ISCSI, logical_units=[LogicalUnit(id=lab.luns[1])]),
            old.host,
        )

    agent = _kill_mid_write(old, domain, agent, lambda: lab.start_agent(agent_factory, root))
    with database.read() as conn:
        original = load_ovf_data(conn, ids)
    running = {i for i, d in original.items() if isinstance(d.entity, Vm) and d.entity.status is VmStatus.UP}
    assert len(original) == 4
    assert len(running) == 2

    old.domains.deactivate(domain.id)
    old.domains.detach(domain.id)
    assert old.inv.vms.list() == []
    old.close()
    database.dispose()  # the engine and its database are gone; only the LUNs remain

    fresh_db = Database(empty_db_url)
    fresh_db.migrate()
    fresh = _engine(fresh_db, agent, "dr-host")
    try:
        dc = fresh.inv.data_centers.list()[0]
        # The LUN that holds no domain has nothing to import; the domain's LUN does.
        with pytest.raises(Conflict, match="nothing to import"):
            fresh.domains.unknown_on_luns(fresh.host, [lab.luns[2]])
        assert fresh.domains.unknown_on_luns(fresh.host, [lab.luns[1]]) == [domain.id]
        imported = fresh.recovery.import_block_domain(domain.id, host=fresh.host, name="gold")
        assert (imported.id, imported.vg_uuid, imported.storage_type) == (domain.id, domain.vg_uuid, StorageType.ISCSI)
        assert sorted(lu.id for lu in imported.logical_units) == sorted(lu.id for lu in domain.logical_units)
        fresh.domains.attach(imported.id, dc.id)

        found = {e.name: e for e in fresh.recovery.unregistered_entities(domain.id)}
        assert set(found) == {"rhel9", "vm0", "vm1", "vm2"}
        assert {e.id for e in found.values() if e.vm_status is VmStatus.UP} == running
        reports = fresh.recovery.register_all(domain.id, RegistrationOptions())
        assert [(r.name, r.outcome) for r in reports] == [
            ("rhel9", "registered"), ("vm0", "registered"), ("vm1", "registered"), ("vm2", "registered"),
        ], [r.reason for r in reports]  # fmt: skip

        with fresh_db.read() as conn:
            recovered = load_ovf_data(conn, ids)
        problems = compare_inventories(original, recovered)
        assert problems == {entity_id: [] for entity_id in original}, problems
        # The fresh engine writes the stores again, on the same LVs.
        assert fresh.updater.run_once().domains[domain.id].ok
        with agent.client() as client:
            assert len(complete_stores(client, domain.id)) == 2
    finally:
        fresh.close()
        fresh_db.dispose()


def _store_sizes(lab: BlockLab, client: AgentClient, domain: StorageDomain) -> dict[UUID, tuple[int, int]]:
    """Each store's capacity (its slot's `CAP`, through the agent) and its LV's size (LVM's report)."""
    rows = lab.lab.report("lvs", "lv", "-o", "lv_name,lv_size", str(domain.id))
    lv_sizes = {UUID(row["lv_name"]): int(row["lv_size"]) for row in rows if len(row["lv_name"]) == 36}
    return {v.volume: (v.capacity, lv_sizes[v.volume]) for v in client.list_volumes(domain.id) if v.is_ovf_store}


def test_block_stores_shrink_with_lvreduce_and_grow_with_their_domain(
    database: Database, agent_factory: Callable[..., AgentProcess], lab: BlockLab, tmp_path: Path
) -> None:
    extent = 128 << 20
    agent = lab.start_agent(agent_factory, tmp_path / "root")
    engine = _engine(database, agent, "host1")
    step = engine.updater.domain_step
    try:
        # Stores created at two extents; then the configured size drops to 64 KiB, far below their tar.
        # Whole writes: stores are resized when written whole.
        step.config = replace(step.config, store_capacity=2 * extent, incremental=False)
        dc, cluster = engine.inv.data_centers.list()[0], engine.inv.clusters.list()[0]
        domain = engine.domains.create(
            StorageDomain(name="grow", storage_type=StorageType.ISCSI, data_center_id=dc.id,
                          logical_units=[LogicalUnit(id=lab.luns[0])]),
            engine.host,
        )  # fmt: skip
        assert engine.updater.run_once().domains[domain.id].ok
        with agent.client() as client:
            assert set(_store_sizes(lab, client, domain).values()) == {(2 * extent, 2 * extent)}
        step.config = replace(step.config, store_capacity=64 << 10)

        def add_vms(count: int, prefix: str) -> None:
            for i in range(count):  # in the inventory only: their disks need no LV for their OVFs to be stored
                vm = engine.inv.vms.add(Vm(name=f"{prefix}{i}", cluster_id=cluster.id))
                d = engine.inv.disks.add(Disk(alias=f"{prefix}{i}", provisioned_size=GIB, domain_ids=[domain.id]))
                engine.inv.attachments.attach(DiskAttachment(entity_id=vm.id, disk_id=d.id, bootable=True))

        add_vms(2, "few")
        assert engine.updater.run_once().domains[domain.id].ok
        with agent.client() as client:
            sizes = _store_sizes(lab, client, domain)
            assert set(sizes.values()) == {(64 << 10, extent)}, sizes  # lvreduce to one extent
            assert len(complete_stores(client, domain.id)) == 2

        add_vms(60, "many")
        result = engine.updater.run_once().domains[domain.id]
        assert result.ok, result.error
        with agent.client() as client:
            sizes = _store_sizes(lab, client, domain)
            (capacity,) = {c for c, _ in sizes.values()}
            assert result.size < capacity < extent  # grown in its slot; the LV's extent holds it
            assert {lv for _, lv in sizes.values()} == {extent}
            good = complete_stores(client, domain.id)
            assert len(good) == 2
            assert all(len(g.ovfs) == 62 for g in good)
        codes = [e.code for e in events.recent(database, domain_id=domain.id)]
        assert (codes.count("ovf_store_shrunk"), codes.count("ovf_store_grown")) == (2, 2)
    finally:
        engine.close()

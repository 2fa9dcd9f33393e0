"""The disaster-recovery workflow on a block (iSCSI) domain, driven by the oVirt SDK: the host's LUNs
listed, a domain created on two of them, VMs and a template with disks, the stores written, the agent killed
in the middle of a store write (one complete store stays), detach, the engine lost, the domain imported by
its LUNs into a fresh engine as the Ansible `ovirt_storage_domain` module sends it, everything registered
and compared with the original field by field. Real LVM on loop devices, real agent processes."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from uuid import UUID

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest

from ovfstore.engine.inventory import VmChanges
from ovfstore.engine.ovfsource import load_ovf_data
from ovfstore.engine.recovery.compare import compare_inventories
from ovfstore.engine.updater.contents import DocumentSpool
from ovfstore.model import GIB, Disk, DiskAttachment, OvfData, Vm
from tests.e2e.conftest import RunningEngine
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.block_fixtures import BlockLab, block_lab
from tests.functional.test_block_domains import complete_stores


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[BlockLab]:
    with block_lab(tmp_path / "lvm") as lab:
        yield lab


@pytest.fixture
def block_engines(
    agent_factory: Callable[..., AgentProcess], lab: BlockLab, tmp_path: Path, engines: Callable[..., RunningEngine]
) -> Callable[..., RunningEngine]:
    """Engines whose host agent may use the lab's loop devices (two sites seeing the same LUNs)."""

    def start(db_url: str, host_name: str) -> RunningEngine:
        return engines(db_url, host_name, agent=lab.start_agent(agent_factory, tmp_path / "root"))

    return start


def _attach(system: sdk.services.SystemService, sd_id: str) -> None:
    dc = system.data_centers_service().list(search="name=Default")[0]
    attached = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
    attached.add(types.StorageDomain(id=sd_id))
    deadline = time.monotonic() + 60
    while (status := attached.storage_domain_service(sd_id).get().status) != types.StorageDomainStatus.ACTIVE:
        if status == types.StorageDomainStatus.MAINTENANCE:
            attached.storage_domain_service(sd_id).activate()
        assert time.monotonic() < deadline, f"domain {sd_id} stuck in {status}"
        time.sleep(0.2)


def _vm(system: sdk.services.SystemService, name: str, template: str, sd_id: str, disks: int, *, ha: bool) -> str:
    vms = system.vms_service()
    vm = vms.add(
        types.Vm(
            name=name, cluster=types.Cluster(name="Default"), template=types.Template(name=template),
            memory=GIB, high_availability=types.HighAvailability(enabled=ha, priority=100 if ha else 1),
        )
    )  # fmt: skip
    service = vms.vm_service(vm.id)
    for i in range(disks):
        # No <sparse>: on a block domain a raw disk is preallocated, as oVirt makes it.
        service.disk_attachments_service().add(
            types.DiskAttachment(
                disk=types.Disk(
                    name=f"{name}_disk{i}", provisioned_size=GIB, format=types.DiskFormat.RAW,
                    storage_domains=[types.StorageDomain(id=sd_id)],
                ),
                interface=types.DiskInterface.VIRTIO_SCSI, bootable=i == 0, active=True,
            )
        )  # fmt: skip
    profile = next(p for p in system.vnic_profiles_service().list() if p.name == "ovirtmgmt")
    service.nics_service().add(types.Nic(name="nic1", vnic_profile=types.VnicProfile(id=profile.id)))
    return str(vm.id)


def _kill_mid_write(
    site: RunningEngine, system: sdk.services.SystemService, sd_id: str, replace: Callable[[], AgentProcess]
) -> None:
    """300 more VMs (inventory only) and a store update during which the agent is killed: the SDK gets the
    409, one complete store stays; a new agent completes the next update; the extra VMs go again."""
    inv = site.engine.inventory
    cluster = next(c for c in inv.clusters.list() if c.name == "Default")
    extra = []
    for i in range(300):
        vm = inv.vms.add(Vm(name=f"bulk{i:03d}", cluster_id=cluster.id))
        disk = inv.disks.add(Disk(alias=f"bulk{i:03d}_root", provisioned_size=GIB, domain_ids=[UUID(sd_id)]))
        inv.attachments.attach(DiskAttachment(entity_id=vm.id, disk_id=disk.id, bootable=True))
        extra.append(vm.id)
    sd = system.storage_domains_service().storage_domain_service(sd_id)
    sd.update_ovf_store()
    inv.vms.update(extra[0], VmChanges(description="changed"))

    real_fetch = DocumentSpool.fetch
    calls = 0
    lock = threading.Lock()

    def fetch_then_kill(spool: DocumentSpool, ids: Sequence[UUID]) -> list[tuple[UUID, bytes]]:
        nonlocal calls
        with lock:
            calls += 1
            if calls == 2:
                site.agent.kill(signal.SIGKILL)
        return real_fetch(spool, ids)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DocumentSpool, "fetch", fetch_then_kill)
        with pytest.raises(sdk.Error) as failed:
            sd.update_ovf_store()
    assert failed.value.code == 409
    assert calls >= 2

    replacement = replace()
    with replacement.client() as client:
        good = complete_stores(client, UUID(sd_id))
    assert len(good) == 1
    assert set(extra) <= set(good[0].ovfs)
    system.hosts_service().host_service(str(site.host.id)).update(types.Host(address=replacement.url))
    sd.update_ovf_store()
    with replacement.client() as client:
        assert len(complete_stores(client, UUID(sd_id))) == 2
    for vm_id in extra:
        inv.vms.remove(vm_id)
    site.agent = replacement


def _build_primary(site: RunningEngine, lab: BlockLab, replace: Callable[[], AgentProcess]) -> dict[str, str]:
    conn = site.connect()
    try:
        system = conn.system_service()
        host = system.hosts_service().list(search="status=up")[0]
        offered = system.hosts_service().host_service(host.id).storage_service().list()
        luns = {s.id: s.logical_units[0] for s in offered}
        assert len(luns) == 3
        assert all(s.type == types.StorageType.ISCSI for s in offered)
        assert {lu.status for lu in luns.values()} == {types.LunStatus.FREE}
        # A loop device has no WWID: its LUN id is its name.
        by_path = [Path(p).name for p in lab.luns]
        assert set(luns) == set(by_path)
        domain = system.storage_domains_service().add(
            types.StorageDomain(
                name="block_data", type=types.StorageDomainType.DATA, host=types.Host(name=host.name),
                storage=types.HostStorage(
                    type=types.StorageType.ISCSI,
                    logical_units=[types.LogicalUnit(id=by_path[0]), types.LogicalUnit(id=by_path[1])],
                ),
            )
        )  # fmt: skip
        assert domain.storage.type == types.StorageType.ISCSI
        vg = domain.storage.volume_group
        assert vg.id
        assert sorted(lu.id for lu in vg.logical_units) == sorted(by_path[:2])
        assert all(lu.volume_group_id == vg.id and lu.size for lu in vg.logical_units)
        storage = system.hosts_service().host_service(host.id).storage_service()
        after = {s.id: s.logical_units[0] for s in storage.list()}
        assert after[by_path[0]].status == types.LunStatus.USED
        assert after[by_path[0]].storage_domain_id == domain.id
        assert after[by_path[2]].status == types.LunStatus.FREE
        _attach(system, domain.id)

        template = system.templates_service().add(types.Template(name="rhel9", cluster=types.Cluster(name="Default")))
        disk = system.disks_service().add(
            types.Disk(name="rhel9_disk", provisioned_size=GIB, format=types.DiskFormat.RAW, sparse=False,
                       storage_domains=[types.StorageDomain(id=domain.id)])
        )  # fmt: skip
        site.engine.inventory.attachments.attach(
            DiskAttachment(entity_id=UUID(template.id), disk_id=UUID(disk.id), bootable=True)
        )
        # A raw sparse disk cannot be an LV: refused with the reason.
        with pytest.raises(sdk.Error) as refused:
            system.disks_service().add(
                types.Disk(name="sparse", provisioned_size=GIB, format=types.DiskFormat.RAW, sparse=True,
                           storage_domains=[types.StorageDomain(id=domain.id)])
            )  # fmt: skip
        assert refused.value.code == 400
        ids = {
            "db": _vm(system, "db", "rhel9", domain.id, 2, ha=True),
            "web": _vm(system, "web", "rhel9", domain.id, 1, ha=False),
            "batch": _vm(system, "batch", "Blank", domain.id, 1, ha=False),
            "template": str(template.id),
            "sd": str(domain.id),
            "vg": str(vg.id),
            "lun0": by_path[0],
            "lun1": by_path[1],
            "free": by_path[2],
        }
        for name in ("db", "web"):
            system.vms_service().vm_service(ids[name]).start()
        system.storage_domains_service().storage_domain_service(domain.id).update_ovf_store()
        _kill_mid_write(site, system, domain.id, replace)
        return ids
    finally:
        conn.close()


def _original(site: RunningEngine, ids: dict[str, str]) -> dict[UUID, OvfData]:
    with site.engine.db.read() as conn:
        return load_ovf_data(conn, [UUID(ids[k]) for k in ("template", "db", "web", "batch")])


@pytest.mark.slow
def test_block_domain_recovery_with_the_sdk(
    block_engines: Callable[..., RunningEngine],
    agent_factory: Callable[..., AgentProcess],
    lab: BlockLab,
    db_url: str,
    tmp_path: Path,
) -> None:
    primary = block_engines(f"sqlite:///{tmp_path / 'primary.db'}", "primary_host")
    ids = _build_primary(primary, lab, lambda: lab.start_agent(agent_factory, tmp_path / "root"))
    original = _original(primary, ids)
    assert len(original) == 4

    # Leave cleanly: maintenance (the stores are written first), then detach. Then the site is lost.
    conn = primary.connect()
    try:
        system = conn.system_service()
        dc = system.data_centers_service().list(search="name=Default")[0]
        attached = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
        attached.storage_domain_service(ids["sd"]).deactivate()
        attached.storage_domain_service(ids["sd"]).remove()
    finally:
        conn.close()
    primary.shutdown()

    secondary = block_engines(db_url, "dr_host")
    conn = secondary.connect()
    try:
        system = conn.system_service()
        host = system.hosts_service().list(search="status=up")[0]
        add = system.storage_domains_service().add

        def block_import(*luns: str) -> types.StorageDomain:
            # What `ovirt_storage_domain state=imported` sends for an iSCSI domain (no login here).
            return add(
                types.StorageDomain(
                    name="block_data", import_=True, type=types.StorageDomainType.DATA,
                    host=types.Host(name=host.name),
                    storage=types.HostStorage(
                        type=types.StorageType.ISCSI,
                        logical_units=[types.LogicalUnit(id=lun, address="10.0.0.1", port=3260, target="iqn.x")
                                       for lun in luns],
                    ),
                )
            )  # fmt: skip

        with pytest.raises(sdk.Error) as nothing:
            block_import(ids["free"])
        assert nothing.value.code == 409
        imported = block_import(ids["lun1"])
        assert imported.id == ids["sd"]
        assert imported.status == types.StorageDomainStatus.UNATTACHED
        assert imported.storage.volume_group.id == ids["vg"]
        assert sorted(lu.id for lu in imported.storage.volume_group.logical_units) == sorted([ids["lun0"], ids["lun1"]])
        _attach(system, imported.id)
        sd = system.storage_domains_service().storage_domain_service(imported.id)

        for t in sd.templates_service().list(unregistered=True):
            sd.templates_service().template_service(t.id).register(cluster=types.Cluster(name="Default"))
        unregistered = sd.vms_service().list(unregistered=True)
        assert {v.name for v in unregistered} == {"db", "web", "batch"}
        for v in unregistered:
            sd.vms_service().vm_service(v.id).register(cluster=types.Cluster(name="Default"))
        assert sd.vms_service().list(unregistered=True) == []
        was_up = sorted(
            (v for v in unregistered if v.status == types.VmStatus.UP), key=lambda v: not v.high_availability.enabled
        )
        assert [v.name for v in was_up] == ["db", "web"]
        for v in was_up:
            system.vms_service().vm_service(v.id).start()

        with secondary.engine.db.read() as read:
            recovered = load_ovf_data(read, list(original))
        problems = compare_inventories(original, recovered)
        assert problems == {entity_id: [] for entity_id in original}, problems
        assert len(system.vms_service().vm_service(ids["db"]).disk_attachments_service().list()) == 2

        sd.update_ovf_store()
        stores = [d for d in sd.disks_service().list() if d.content_type == types.DiskContentType.OVF_STORE]
        assert len(stores) == 2
        assert all('"Updated":true' in d.description for d in stores)
    finally:
        conn.close()

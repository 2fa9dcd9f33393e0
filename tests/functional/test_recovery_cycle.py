"""The whole cycle: protect an inventory on two domains, lose the engine and its database, start a fresh
engine, import both domains, register everything, and compare what came back with the original, field by
field. Real agent, real domain directories, both databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from ovfstore.engine import events
from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory import VmChanges
from ovfstore.engine.ovfsource import load_ovf_data
from ovfstore.engine.recovery import RegistrationOptions
from ovfstore.engine.recovery.compare import compare_inventories
from ovfstore.model import (
    GIB,
    AffinityGroup,
    AffinityLabel,
    BiosType,
    Disk,
    DiskAttachment,
    DiskInterface,
    DisplayType,
    GraphicsType,
    Nic,
    NicInterface,
    OvfData,
    Role,
    Snapshot,
    SnapshotType,
    Template,
    Vm,
    VmStatus,
    Volume,
    VolumeFormat,
)
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.site import Site, build_site, fresh_engine


def _protect(site: Site) -> dict[str, Any]:
    inv = site.inv
    site.add_domain("sd1")
    site.add_domain("sd2")
    sd1, sd2 = site.domains["sd1"].id, site.domains["sd2"].id
    profile = inv.vnic_profiles.list()[0]
    role = inv.roles.add(Role(name="VmOperator"))
    group = inv.affinity_groups.add(AffinityGroup(name="spread", cluster_id=site.cluster.id, positive=False))
    label = inv.affinity_labels.add(AffinityLabel(name="gpu"))

    template = inv.templates.add(
        Template(name="rhel9", cluster_id=site.cluster.id, os_type="rhel_9x64", memory_mb=2048, max_memory_mb=8192,
                 description="golden image", bios_type=BiosType.Q35_OVMF)
    )  # fmt: skip
    tdisk = inv.disks.add(Disk(alias="rhel9_root", provisioned_size=10 * GIB, domain_ids=[sd1], description="root"))
    inv.attachments.attach(DiskAttachment(entity_id=template.id, disk_id=tdisk.id, bootable=True))
    inv.nics.add(Nic(entity_id=template.id, name="nic1", vnic_profile_id=profile.id))

    web = inv.vms.add(
        Vm(name="web", cluster_id=site.cluster.id, template_id=template.id, os_type="rhel_9x64", memory_mb=4096,
           max_memory_mb=16384, min_memory_mb=2048, cpu_sockets=2, cpu_cores=2, cpu_threads=2, high_availability=True,
           priority=100, description="front end", comment="pets, not cattle", display_type=DisplayType.QXL,
           graphics=[GraphicsType.SPICE, GraphicsType.VNC], stateless=False, time_zone="Etc/GMT")
    )  # fmt: skip
    root = Disk(alias="web_root", provisioned_size=20 * GIB, domain_ids=[sd1], description="system")
    base = Volume(disk_id=root.id, capacity=root.provisioned_size)
    root.volumes = [base]
    inv.disks.add(root)
    data = inv.disks.add(Disk(alias="web_data", provisioned_size=50 * GIB, domain_ids=[sd2], wipe_after_delete=True))
    inv.attachments.attach(
        DiskAttachment(entity_id=web.id, disk_id=root.id, bootable=True, interface=DiskInterface.VIRTIO)
    )
    inv.attachments.attach(DiskAttachment(entity_id=web.id, disk_id=data.id, read_only=True))
    snap = inv.snapshots.add(Snapshot(vm_id=web.id, type=SnapshotType.REGULAR, description="before upgrade"))
    inv.snapshots.add(Snapshot(vm_id=web.id, type=SnapshotType.ACTIVE, description="Active VM"))
    inv.disks.add_volume(Volume(disk_id=root.id, parent_id=base.id, capacity=root.provisioned_size,
                                format=VolumeFormat.COW, snapshot_id=snap.id))  # fmt: skip
    inv.nics.add(Nic(entity_id=web.id, name="nic1", vnic_profile_id=profile.id, interface=NicInterface.VIRTIO))
    inv.nics.add(
        Nic(entity_id=web.id, name="nic2", vnic_profile_id=profile.id, interface=NicInterface.E1000, linked=False)
    )
    inv.permissions.add(web.id, "alice@internal", role.id)
    inv.affinity_groups.add_member(group.id, web.id)
    inv.affinity_labels.add_member(label.id, web.id)
    inv.vms.set_status(web.id, VmStatus.UP)

    # A VM from Blank on the other domain, and one whose template lives on the other domain.
    db = site.add_vm("db", "sd2")
    inv.vms.update(db.id, VmChanges(memory_mb=8192, max_memory_mb=16384, cpu_sockets=4))
    worker = inv.vms.add(Vm(name="worker", cluster_id=site.cluster.id, template_id=template.id))
    wdisk = inv.disks.add(Disk(alias="worker_root", provisioned_size=5 * GIB, domain_ids=[sd2]))
    inv.attachments.attach(DiskAttachment(entity_id=worker.id, disk_id=wdisk.id, bootable=True))
    inv.nics.add(Nic(entity_id=worker.id, name="eth0", vnic_profile_id=profile.id))

    for disk in inv.disks.list():
        site.materialize(disk.id)
    report = site.updater.run_once()
    assert all(r.ok for r in report.domains.values()), report.domains
    # The domains leave as a disaster leaves them: still attached to the old data center.
    return {"ids": [template.id, web.id, db.id, worker.id], "web": web.id}


def _snapshot_of(db: Database, ids: list[UUID]) -> dict[UUID, OvfData]:
    with db.read() as conn:
        return load_ovf_data(conn, ids)


def test_protect_lose_the_engine_import_register_compare(
    database: Database, empty_db_url: str, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    old = build_site(database, agent_factory, tmp_path)
    protected = _protect(old)
    original = _snapshot_of(database, protected["ids"])
    assert len(original) == 4
    old.updater.domain_step.agents.close()
    domain_dirs = {name: old.domain_dir(name) for name in ("sd1", "sd2")}
    database.dispose()  # the engine and its database are gone; only the domains remain

    fresh = fresh_engine(empty_db_url, old.agent)
    inv, recovery, domains, updater = fresh.inv, fresh.recovery, fresh.domains, fresh.updater
    dc, cluster, host = fresh.dc, fresh.cluster, fresh.host
    inv.roles.add(Role(name="VmOperator"))
    inv.affinity_groups.add(AffinityGroup(name="spread", cluster_id=cluster.id, positive=False))
    inv.affinity_labels.add(AffinityLabel(name="gpu"))

    imported = {}
    for name, directory in domain_dirs.items():
        domain = recovery.import_domain(str(directory), host=host, name=name, force_detach=True)
        imported[name] = domains.attach(domain.id, dc.id)

    unregistered = {e.name: e for d in imported.values() for e in recovery.unregistered_entities(d.id)}
    assert set(unregistered) == {"rhel9", "web", "db", "worker"}
    assert unregistered["web"].vm_status is VmStatus.UP
    assert unregistered["web"].high_availability is True
    assert {d.alias for d in recovery.unregistered_disks(imported["sd2"].id)} >= {"web_data", "db_disk0", "worker_root"}

    dry = recovery.register_all(imported["sd1"].id, RegistrationOptions(), dry_run=True)
    assert {r.name: r.outcome for r in dry} == {"rhel9": "would_register", "web": "would_register"}
    assert inv.vms.list() == [], "a dry run changes nothing"

    reports = recovery.register_all(imported["sd1"].id, RegistrationOptions())
    reports += recovery.register_all(imported["sd2"].id, RegistrationOptions())
    assert [(r.name, r.outcome) for r in reports] == [
        ("rhel9", "registered"),
        ("web", "registered"),
        ("db", "registered"),
        ("worker", "registered"),
    ], [r.reason for r in reports]
    # What the status page's events show an operator: the imports, what each domain held, the registrations.
    told = [(e.code, e.domain_id) for e in events.recent(fresh.db)]
    for name in ("sd1", "sd2"):
        for code in ("domain_imported", "domain_scanned", "registered_all"):
            assert (code, imported[name].id) in told, (code, name, told)
    registered = [e.message for e in events.recent(fresh.db) if e.code == "registered_all"]
    assert sorted(registered) == sorted(
        f"2 VMs and templates registered from domain {imported[name].id}, 0 refused" for name in ("sd1", "sd2")
    )

    recovered = _snapshot_of(fresh.db, protected["ids"])
    problems = compare_inventories(original, recovered)
    assert problems == {entity_id: [] for entity_id in original}, problems
    # Names that are compared by name because ids are site-local:
    web_before, web_after = original[protected["web"]], recovered[protected["web"]]
    assert web_after.cluster_name == web_before.cluster_name
    assert [(n.network_name, n.profile_name) for n in web_after.nics] == [
        (n.network_name, n.profile_name) for n in web_before.nics
    ]
    assert [(p.user_name, p.role_name) for p in web_after.permissions] == [("alice@internal", "VmOperator")]

    # After registration the stores are rewritten by the fresh engine and still hold everything.
    report = updater.run_once()
    assert all(r.ok for r in report.domains.values()), report.domains
    assert recovery.unregistered_entities(imported["sd1"].id) == []
    fresh.close()

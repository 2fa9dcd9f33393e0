"""Registration refusals, partial import, MAC reassignment, clone and each mapping, against a real agent
and real domain directories written by a protected site, on both databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import select, update

from ovfstore.engine.db import schema
from ovfstore.engine.db.database import Database
from ovfstore.engine.errors import NotFound
from ovfstore.engine.inventory import ClusterChanges, DataCenterChanges
from ovfstore.engine.recovery import LunMapping, RegistrationOptions, RegistrationRefused, VnicProfileMapping
from ovfstore.model import (
    GIB,
    AffinityGroup,
    AffinityLabel,
    Cluster,
    DataCenter,
    Disk,
    DiskAttachment,
    DiskStorageType,
    LunConnection,
    Network,
    Nic,
    Role,
    Snapshot,
    SnapshotType,
    StorageDomain,
    Template,
    Vm,
    VnicProfile,
    Volume,
    VolumeFormat,
)
from ovfstore.ovf import read_ovf
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.site import FreshEngine, build_site, fresh_engine

NEWER = UUID("9e9e9e9e-0000-4000-8000-000000000001")
# Above any uuid4 the site gives its volumes: sorted by id, they come after the OVF's leaf.
FORK_A = UUID("ffffffff-0000-4000-8000-00000000000a")
FORK_B = UUID("ffffffff-0000-4000-8000-00000000000b")


@dataclass
class Recovered:
    engine: FreshEngine
    sd1: StorageDomain
    sd2: StorageDomain | None
    ids: dict[str, UUID]
    old_macs: dict[str, str]


def _protect_and_recover(
    database: Database,
    empty_db_url: str,
    agent_factory: Callable[..., AgentProcess],
    tmp_path: Path,
    *,
    attach_sd2: bool,
    second_vm: bool = False,
    chain: str | None = None,
    snapshots: str | None = None,
) -> Recovered:
    site = build_site(database, agent_factory, tmp_path)
    site.add_domain("sd1")
    site.add_domain("sd2")
    inv = site.inv
    profile = inv.vnic_profiles.list()[0]
    role = inv.roles.add(Role(name="VmOperator"))
    group = inv.affinity_groups.add(AffinityGroup(name="spread", cluster_id=site.cluster.id))
    label = inv.affinity_labels.add(AffinityLabel(name="gpu"))
    template = inv.templates.add(Template(name="tmpl", cluster_id=site.cluster.id))
    tdisk = inv.disks.add(Disk(alias="tmpl_root", provisioned_size=GIB, domain_ids=[site.domains["sd1"].id]))
    inv.attachments.attach(DiskAttachment(entity_id=template.id, disk_id=tdisk.id, bootable=True))
    app = inv.vms.add(Vm(name="app", cluster_id=site.cluster.id, template_id=template.id))
    for i, sd in enumerate(("sd1", "sd2")):
        disk = inv.disks.add(Disk(alias=f"app_disk{i}", provisioned_size=GIB, domain_ids=[site.domains[sd].id]))
        inv.attachments.attach(DiskAttachment(entity_id=app.id, disk_id=disk.id, bootable=i == 0))
    lun = inv.disks.add(
        Disk(
            alias="app_lun", provisioned_size=GIB, storage_type=DiskStorageType.LUN, lun_id="36001405aabbcc",
            lun_vendor="LIO-ORG", lun_product="app", lun_serial="SLIO-ORG_app_aabbcc",
            lun_connections=[
                LunConnection(address="10.1.1.1", port="3260", target="iqn.2024-01.site-a:app", portal="1")
            ],
        )
    )  # fmt: skip
    inv.attachments.attach(DiskAttachment(entity_id=app.id, disk_id=lun.id))
    nic = inv.nics.add(Nic(entity_id=app.id, name="nic1", vnic_profile_id=profile.id))
    inv.permissions.add(app.id, "bob@internal", role.id)
    inv.affinity_groups.add_member(group.id, app.id)
    inv.affinity_labels.add_member(label.id, app.id)
    if second_vm:  # diskless: in every domain's stores, with the next MAC of the pool
        db = inv.vms.add(Vm(name="db", cluster_id=site.cluster.id))
        db_nic = inv.nics.add(Nic(entity_id=db.id, name="eth0", vnic_profile_id=profile.id))
    disk0 = next(d for d in inv.disks.list() if d.alias == "app_disk0")
    snaps: dict[str, UUID] = {}
    if snapshots is not None:  # the VM's snapshots: its active one, one regular below, maybe one newer
        now = datetime.now(UTC)
        active = inv.snapshots.add(Snapshot(vm_id=app.id, type=SnapshotType.ACTIVE, description="Active VM"))
        first = inv.snapshots.add(Snapshot(vm_id=app.id, description="first", creation_date=now - timedelta(hours=2)))
        snaps = {"active": active.id, "first": first.id}
        if snapshots == "recorded":  # taken after the store's chain was written: recorded, with no volume yet
            later = inv.snapshots.add(Snapshot(vm_id=app.id, description="later"))
            snaps["later"] = later.id
    if chain == "lost":  # a snapshot the store records, whose volume is lost on storage afterwards
        if snapshots is not None:
            _set_snapshot(database, disk0.chain()[-1].id, snaps["first"])
        inv.disks.add_volume(
            Volume(disk_id=disk0.id, format=VolumeFormat.COW, capacity=GIB, snapshot_id=snaps.get("active"))
        )
    elif snapshots is not None:
        _set_snapshot(database, disk0.chain()[-1].id, snaps["active"])
    for disk in inv.disks.list():
        if disk.storage_type is DiskStorageType.IMAGE:
            site.materialize(disk.id)
    assert all(r.ok for r in site.updater.run_once().domains.values())
    disk0 = inv.disks.get(disk0.id)
    leaf = disk0.chain()[-1]
    sd1_id = site.domains["sd1"].id
    if chain == "newer":  # a snapshot taken after the store was written: storage has one more volume
        with site.agent.client() as client:
            client.create_volume(sd1_id, disk0.id, NEWER, GIB, format="COW", type="SPARSE", parent=leaf.id)
    if chain in ("fork", "orphan"):  # volumes that do not continue the chain from its leaf
        with site.agent.client() as client:
            if chain == "fork":  # two children of the leaf, as a snapshot preview leaves them
                for volume_id in (FORK_A, FORK_B):
                    client.create_volume(sd1_id, disk0.id, volume_id, GIB, format="COW", type="SPARSE", parent=leaf.id)
            else:  # a base volume of its own in the same image
                client.create_volume(sd1_id, disk0.id, FORK_A, GIB, format="RAW", type="SPARSE")
    if chain == "lost":
        for path in (site.domain_dir("sd1") / "images" / str(disk0.id)).glob(f"{leaf.id}*"):
            path.unlink()
    site.updater.domain_step.agents.close()
    dirs = {name: site.domain_dir(name) for name in ("sd1", "sd2")}
    database.dispose()

    engine = fresh_engine(empty_db_url, site.agent)
    sd1 = engine.import_and_attach(dirs["sd1"], "sd1")
    sd2 = engine.import_and_attach(dirs["sd2"], "sd2") if attach_sd2 else None
    assert nic.mac is not None
    recovered = Recovered(engine, sd1, sd2, {"template": template.id, "app": app.id}, {"nic1": nic.mac})
    recovered.ids["disk0"], recovered.ids["disk0_leaf"] = disk0.id, leaf.id
    recovered.ids.update({f"snapshot_{k}": v for k, v in snaps.items()})
    if second_vm:
        assert db_nic.mac is not None
        recovered.ids["db"], recovered.old_macs["db/eth0"] = db.id, db_nic.mac
    return recovered


def _set_snapshot(database: Database, volume_id: UUID, snapshot_id: UUID) -> None:
    """Which snapshot a volume belongs to (the inventory has no change for it: snapshots set it)."""
    with database.engine.begin() as conn:
        conn.execute(update(schema.volumes).where(schema.volumes.c.id == volume_id).values(snapshot_id=snapshot_id))


@pytest.fixture
def recovered(
    database: Database, empty_db_url: str, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> Iterator[Recovered]:
    result = _protect_and_recover(database, empty_db_url, agent_factory, tmp_path, attach_sd2=True)
    yield result
    result.engine.close()


@pytest.fixture
def two_vms(
    database: Database, empty_db_url: str, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> Iterator[Recovered]:
    """Everything comes back, with a second, diskless VM `db` holding the next MAC of the pool."""
    result = _protect_and_recover(database, empty_db_url, agent_factory, tmp_path, attach_sd2=True, second_vm=True)
    yield result
    result.engine.close()


@pytest.fixture
def half_recovered(
    database: Database, empty_db_url: str, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> Iterator[Recovered]:
    """Only sd1 comes back: the app's second disk is missing."""
    result = _protect_and_recover(database, empty_db_url, agent_factory, tmp_path, attach_sd2=False)
    yield result
    result.engine.close()


def _register_template(r: Recovered) -> None:
    r.engine.recovery.register(r.sd1.id, r.ids["template"], RegistrationOptions())


def test_a_vm_before_its_template_is_refused(recovered: Recovered) -> None:
    with pytest.raises(RegistrationRefused, match=r"template 'tmpl' .* is not registered; register the template first"):
        recovered.engine.recovery.register(recovered.sd1.id, recovered.ids["app"], RegistrationOptions())


def test_an_id_that_already_exists_is_refused(recovered: Recovered) -> None:
    e = recovered.engine
    # The same template was recreated by hand after the domain was read: same id, another name.
    e.inv.templates.add(Template(id=recovered.ids["template"], name="tmpl-by-hand", cluster_id=e.cluster.id))
    with pytest.raises(RegistrationRefused, match="is already registered here; register it as a clone"):
        _register_template(recovered)


def test_a_name_already_used_is_refused_unless_renamed(recovered: Recovered) -> None:
    e = recovered.engine
    _register_template(recovered)
    e.inv.vms.add(Vm(name="app", cluster_id=e.cluster.id))
    with pytest.raises(RegistrationRefused, match="the name 'app' is already used"):
        e.recovery.register(recovered.sd1.id, recovered.ids["app"], RegistrationOptions())
    report = e.recovery.register(recovered.sd1.id, recovered.ids["app"], RegistrationOptions(name="app-restored"))
    assert (report.outcome, report.renamed_from) == ("registered", "app")
    assert e.inv.vms.get(recovered.ids["app"]).name == "app-restored"


def test_a_missing_cluster_is_refused_and_a_cluster_mapping_resolves_it(recovered: Recovered) -> None:
    e = recovered.engine
    e.inv.clusters.update(e.cluster.id, ClusterChanges(name="recovery"))
    with pytest.raises(RegistrationRefused, match="cluster 'Default' does not exist here"):
        _register_template(recovered)
    options = RegistrationOptions(cluster_mappings={"Default": "recovery"})
    e.recovery.register(recovered.sd1.id, recovered.ids["template"], options)
    assert e.inv.templates.get(recovered.ids["template"]).cluster_id == e.cluster.id


def test_missing_disks_are_refused_unless_partial_import(half_recovered: Recovered) -> None:
    e = half_recovered.engine
    _register_template(half_recovered)
    with pytest.raises(RegistrationRefused, match=r"its disk 'app_disk1' .* is on no active domain"):
        e.recovery.register(half_recovered.sd1.id, half_recovered.ids["app"], RegistrationOptions())
    report = e.recovery.register(
        half_recovered.sd1.id, half_recovered.ids["app"], RegistrationOptions(allow_partial_import=True)
    )
    assert report.outcome == "registered"
    assert len(report.dropped_disks) == 1
    aliases = {e.inv.disks.get(a.disk_id).alias for a in e.inv.attachments.list(half_recovered.ids["app"])}
    assert aliases == {"app_disk0", "app_lun"}


def test_macs_in_use_or_out_of_range_are_refused_unless_reassigned(recovered: Recovered) -> None:
    e = recovered.engine
    _register_template(recovered)
    squatter = e.inv.vms.add(Vm(name="squatter", cluster_id=e.cluster.id))
    e.inv.nics.add(Nic(entity_id=squatter.id, name="eth0", mac=recovered.old_macs["nic1"]))
    with pytest.raises(RegistrationRefused, match="is already in use here; allow MAC reassignment"):
        e.recovery.register(recovered.sd1.id, recovered.ids["app"], RegistrationOptions())
    report = e.recovery.register(recovered.sd1.id, recovered.ids["app"], RegistrationOptions(reassign_bad_macs=True))
    (nic,) = e.inv.nics.list(recovered.ids["app"])
    assert nic.mac is not None
    assert nic.mac != recovered.old_macs["nic1"]
    assert report.reassigned_macs == [("nic1", recovered.old_macs["nic1"], nic.mac)]


def _squat(r: Recovered, mac: str) -> None:
    e = r.engine
    squatter = e.inv.vms.add(Vm(name="squatter", cluster_id=e.cluster.id))
    e.inv.nics.add(Nic(entity_id=squatter.id, name="eth0", mac=mac))


def test_a_reassigned_mac_is_never_one_another_unregistered_vm_records(two_vms: Recovered) -> None:
    e, r = two_vms.engine, two_vms
    app_mac, db_mac = r.old_macs["nic1"], r.old_macs["db/eth0"]
    _register_template(r)
    _squat(r, app_mac)
    report = e.recovery.register(r.sd1.id, r.ids["app"], RegistrationOptions(reassign_bad_macs=True))
    (nic,) = e.inv.nics.list(r.ids["app"])
    assert nic.mac not in (app_mac, db_mac), "db's MAC is still recorded for db: never handed out"
    assert report.reassigned_macs == [("nic1", app_mac, nic.mac)]
    # db comes back with its own MAC, without asking for reassignment: no chain.
    report = e.recovery.register(r.sd1.id, r.ids["db"], RegistrationOptions())
    assert report.reassigned_macs == []
    (db_nic,) = e.inv.nics.list(r.ids["db"])
    assert db_nic.mac == db_mac


def test_register_all_reassigns_without_chains(two_vms: Recovered) -> None:
    e, r = two_vms.engine, two_vms
    _squat(r, r.old_macs["nic1"])
    reports = e.recovery.register_all(r.sd1.id, RegistrationOptions(reassign_bad_macs=True))
    assert [(x.name, x.outcome) for x in reports] == [(n, "registered") for n in ("tmpl", "app", "db")]
    assert [len(x.reassigned_macs) for x in reports] == [0, 1, 0]
    (db_nic,) = e.inv.nics.list(r.ids["db"])
    assert db_nic.mac == r.old_macs["db/eth0"]


def test_a_mac_outside_the_pool_is_refused(recovered: Recovered) -> None:
    e = recovered.engine
    _register_template(recovered)
    e.inv.data_centers.update(
        e.dc.id, DataCenterChanges(mac_pool_start="02:00:00:00:00:00", mac_pool_end="02:00:00:00:ff:ff")
    )
    with pytest.raises(RegistrationRefused, match="outside this data center's pool"):
        e.recovery.register(recovered.sd1.id, recovered.ids["app"], RegistrationOptions())


def test_clone_registers_a_copy_with_new_ids_and_macs(recovered: Recovered) -> None:
    e = recovered.engine
    _register_template(recovered)
    with pytest.raises(RegistrationRefused, match="a clone needs a new name"):
        e.recovery.register(recovered.sd1.id, recovered.ids["app"], RegistrationOptions(clone=True))
    report = e.recovery.register(recovered.sd1.id, recovered.ids["app"], RegistrationOptions(clone=True, name="app2"))
    assert report.registered_id is not None
    assert report.registered_id != recovered.ids["app"]
    clone = e.inv.vms.get(report.registered_id)
    assert clone.name == "app2"
    (nic,) = e.inv.nics.list(clone.id)
    assert nic.mac is not None
    assert report.reassigned_macs == [("nic1", recovered.old_macs["nic1"], nic.mac)], "a clone never reuses a MAC"
    with pytest.raises(NotFound, match="does not exist"):
        e.inv.vms.get(recovered.ids["app"])


def test_vnic_profile_role_affinity_and_lun_mappings(recovered: Recovered) -> None:
    e = recovered.engine
    _register_template(recovered)
    net = e.inv.networks.add(Network(name="prod", data_center_id=e.dc.id))
    target = e.inv.vnic_profiles.add(VnicProfile(name="prod-fast", network_id=net.id))
    e.inv.roles.add(Role(name="Operator2"))
    group = e.inv.affinity_groups.add(AffinityGroup(name="apart", cluster_id=e.cluster.id))
    label = e.inv.affinity_labels.add(AffinityLabel(name="nvidia"))
    options = RegistrationOptions(
        vnic_profile_mappings=[VnicProfileMapping("ovirtmgmt", "ovirtmgmt", target.id)],
        role_mappings={"VmOperator": "Operator2"},
        affinity_group_mappings={"spread": "apart"},
        affinity_label_mappings={"gpu": "nvidia"},
        lun_mappings={"36001405aabbcc": "36001405ddeeff"},
    )
    report = e.recovery.register(recovered.sd1.id, recovered.ids["app"], options)
    assert report.warnings == []
    app = recovered.ids["app"]
    (nic,) = e.inv.nics.list(app)
    assert nic.vnic_profile_id == target.id
    assert [(p.user_name, p.role_name) for p in e.inv.permissions.list(app)] == [("bob@internal", "Operator2")]
    assert {d.lun_id for d in (e.inv.disks.get(a.disk_id) for a in e.inv.attachments.list(app))} >= {"36001405ddeeff"}
    from sqlalchemy import select

    from ovfstore.engine.db import schema

    with e.db.read() as conn:
        groups = set(conn.execute(select(schema.affinity_group_members.c.group_id).where(
            schema.affinity_group_members.c.entity_id == app)).scalars())  # fmt: skip
        labels = set(conn.execute(select(schema.affinity_label_members.c.label_id).where(
            schema.affinity_label_members.c.entity_id == app)).scalars())  # fmt: skip
    assert (groups, labels) == ({group.id}, {label.id})


def test_without_mappings_names_fall_back_and_missing_ones_are_warned(recovered: Recovered) -> None:
    e = recovered.engine
    _register_template(recovered)
    report = e.recovery.register(recovered.sd1.id, recovered.ids["app"], RegistrationOptions())
    assert report.outcome == "registered"
    assert any("role 'VmOperator'" in w for w in report.warnings)
    assert any("affinity group 'spread'" in w for w in report.warnings)
    (nic,) = e.inv.nics.list(recovered.ids["app"])
    profile = e.inv.vnic_profiles.get(nic.vnic_profile_id) if nic.vnic_profile_id else None
    assert profile is not None
    assert profile.name == "ovirtmgmt", "found by its original network and profile names"


def test_register_all_dry_run_reports_without_changing(recovered: Recovered) -> None:
    e = recovered.engine
    e.inv.vms.add(Vm(name="app", cluster_id=e.cluster.id))
    dry = e.recovery.register_all(recovered.sd1.id, RegistrationOptions(), dry_run=True)
    assert [(r.name, r.outcome) for r in dry] == [("tmpl", "would_register"), ("app", "refused")]
    assert "already used" in (dry[1].reason or "")
    assert [t.name for t in e.inv.templates.list()] == ["Blank"]


def test_a_domain_of_another_data_center_is_not_used_for_disks(recovered: Recovered) -> None:
    e = recovered.engine
    other = e.inv.data_centers.add(DataCenter(name="other"))
    e.inv.clusters.add(Cluster(name="other-cluster", data_center_id=other.id))
    _register_template(recovered)
    with pytest.raises(RegistrationRefused, match="on no active domain of this data center"):
        e.recovery.register(
            recovered.sd1.id, recovered.ids["app"], RegistrationOptions(cluster_mappings={"Default": "other-cluster"})
        )


def _lun_of(r: Recovered) -> Disk:
    e = r.engine
    (lun,) = [
        d for d in (e.inv.disks.get(a.disk_id) for a in e.inv.attachments.list(r.ids["app"]))
        if d.storage_type is DiskStorageType.LUN
    ]  # fmt: skip
    return lun


def test_a_direct_lun_comes_back_with_its_paths_vendor_product_serial_and_size(recovered: Recovered) -> None:
    _register_template(recovered)
    recovered.engine.recovery.register(recovered.sd1.id, recovered.ids["app"], RegistrationOptions())
    lun = _lun_of(recovered)
    assert (lun.lun_id, lun.lun_vendor, lun.lun_product, lun.lun_serial, lun.provisioned_size) == (
        "36001405aabbcc", "LIO-ORG", "app", "SLIO-ORG_app_aabbcc", GIB,
    )  # fmt: skip
    assert lun.lun_connections == [
        LunConnection(address="10.1.1.1", port="3260", target="iqn.2024-01.site-a:app", portal="1")
    ]


def test_a_lun_mapping_gives_the_target_lun_and_its_paths(recovered: Recovered) -> None:
    _register_template(recovered)
    path = LunConnection(address="10.2.2.2", port="3260", target="iqn.2024-01.site-b:app", portal="1")
    mapping = LunMapping("36001405bbbbbb", (path,))
    options = RegistrationOptions(lun_mappings={"36001405aabbcc": mapping})
    report = recovered.engine.recovery.register(recovered.sd1.id, recovered.ids["app"], options)
    lun = _lun_of(recovered)
    assert (lun.lun_id, lun.lun_connections) == ("36001405bbbbbb", [path])
    assert (lun.lun_vendor, lun.lun_product, lun.lun_serial) == ("", "", ""), "the source LUN's identity is not kept"
    ((disk_id, detail),) = report.disk_reports
    assert disk_id == lun.id
    assert detail.startswith("LUN 36001405aabbcc mapped to 36001405bbbbbb (ISCSI 10.2.2.2:3260 iqn.2024-01.site-b:app)")
    assert "vendor, product and serial are not kept" in detail


def test_a_lun_mapping_to_the_same_lun_keeps_its_identity(recovered: Recovered) -> None:
    _register_template(recovered)
    path = LunConnection(address="10.2.2.2", port="3260", target="iqn.2024-01.site-b:app", portal="1")
    options = RegistrationOptions(lun_mappings={"36001405aabbcc": LunMapping("36001405aabbcc", (path,))})
    recovered.engine.recovery.register(recovered.sd1.id, recovered.ids["app"], options)
    lun = _lun_of(recovered)
    assert (lun.lun_vendor, lun.lun_product, lun.lun_serial) == ("LIO-ORG", "app", "SLIO-ORG_app_aabbcc")


def test_a_lun_that_cannot_be_mapped_is_refused_or_dropped_under_partial_import(recovered: Recovered) -> None:
    e = recovered.engine
    _register_template(recovered)
    # The LUN is taken here already, by a disk of another VM.
    e.inv.disks.add(
        Disk(alias="other", provisioned_size=GIB, storage_type=DiskStorageType.LUN, lun_id="36001405aabbcc")
    )
    with pytest.raises(
        RegistrationRefused, match=r"LUN 36001405aabbcc is already used by disk .*allow a partial import"
    ):
        e.recovery.register(recovered.sd1.id, recovered.ids["app"], RegistrationOptions())
    report = e.recovery.register(recovered.sd1.id, recovered.ids["app"], RegistrationOptions(allow_partial_import=True))
    assert report.outcome == "registered"
    (dropped,) = report.dropped_disks
    ((disk_id, detail),) = report.disk_reports
    assert disk_id == dropped
    assert detail.startswith("dropped: LUN 36001405aabbcc is already used by disk ")
    assert any("direct LUN disk 'app_lun'" in w and "dropped" in w for w in report.warnings)
    aliases = {e.inv.disks.get(a.disk_id).alias for a in e.inv.attachments.list(recovered.ids["app"])}
    assert aliases == {"app_disk0", "app_disk1"}


@pytest.fixture(params=["newer", "lost"])
def chain_differs(
    request: pytest.FixtureRequest,
    database: Database,
    empty_db_url: str,
    agent_factory: Callable[..., AgentProcess],
    tmp_path: Path,
) -> Iterator[tuple[str, Recovered]]:
    result = _protect_and_recover(database, empty_db_url, agent_factory, tmp_path, attach_sd2=True, chain=request.param)
    yield request.param, result
    result.engine.close()


def test_a_chain_that_differs_from_storage_registers_what_is_consistent(chain_differs: tuple[str, Recovered]) -> None:
    case, r = chain_differs
    e = r.engine
    _register_template(r)
    disk0, leaf = r.ids["disk0"], r.ids["disk0_leaf"]
    if case == "lost":
        with pytest.raises(RegistrationRefused, match=f"newest volume.*{leaf}.*allow a partial import"):
            e.recovery.register(r.sd1.id, r.ids["app"], RegistrationOptions())
        options = RegistrationOptions(allow_partial_import=True)
    else:
        options = RegistrationOptions()
    report = e.recovery.register(r.sd1.id, r.ids["app"], options)
    assert report.outcome == "registered"
    assert report.dropped_disks == []
    ((disk_id, detail),) = report.disk_reports
    assert disk_id == disk0
    chain = [v.id for v in e.inv.disks.get(disk0).chain()]
    if case == "newer":
        assert chain[-2:] == [leaf, NEWER], "the layer the VM was writing to joins the chain"
        assert "newer than the OVF" in detail
    else:
        assert leaf not in chain
        assert len(chain) == 1
        assert f"registered with 1 of 2 volume(s), up to {chain[0]}" in detail
        assert str(leaf) in detail


@pytest.fixture(params=["fork", "orphan"])
def chain_forks(
    request: pytest.FixtureRequest,
    database: Database,
    empty_db_url: str,
    agent_factory: Callable[..., AgentProcess],
    tmp_path: Path,
) -> Iterator[Recovered]:
    result = _protect_and_recover(database, empty_db_url, agent_factory, tmp_path, attach_sd2=True, chain=request.param)
    yield result
    result.engine.close()


def test_volumes_that_do_not_continue_the_chain_are_left_alone(chain_forks: Recovered) -> None:
    """Two children of the leaf (a fork) or a second base volume: no parent link continues the OVF's chain
    from its leaf as one line, so nothing joins it; never a guess from the order of the volume ids."""
    r = chain_forks
    e = r.engine
    _register_template(r)
    report = e.recovery.register(r.sd1.id, r.ids["app"], RegistrationOptions())
    assert report.outcome == "registered"
    assert [v.id for v in e.inv.disks.get(r.ids["disk0"]).chain()] == [r.ids["disk0_leaf"]]
    ((disk_id, detail),) = report.disk_reports
    assert disk_id == r.ids["disk0"]
    assert str(FORK_A) in detail
    assert "do not continue the chain from its leaf" in detail
    assert "not registered, left on storage" in detail


@pytest.fixture(params=[("newer", "recorded"), ("newer", "plain"), ("lost", "plain")])
def with_snapshots(
    request: pytest.FixtureRequest,
    database: Database,
    empty_db_url: str,
    agent_factory: Callable[..., AgentProcess],
    tmp_path: Path,
) -> Iterator[tuple[str, str, Recovered]]:
    chain, snapshots = request.param
    result = _protect_and_recover(
        database, empty_db_url, agent_factory, tmp_path, attach_sd2=True, chain=chain, snapshots=snapshots
    )
    yield chain, snapshots, result
    result.engine.close()


def _snapshot_ids(r: Recovered) -> set[UUID]:
    sn = schema.snapshots
    with r.engine.db.engine.connect() as conn:
        return set(conn.execute(select(sn.c.id).where(sn.c.vm_id == r.ids["app"])).scalars())


def _written_snapshot_ids(r: Recovered) -> tuple[list[UUID | None], set[UUID]]:
    """The app's disk0 chain's `ovf:vm_snapshot_id`s in the OVF the updater writes, base first, and the
    snapshots that OVF records."""
    e = r.engine
    assert all(x.ok for x in e.updater.run_once().domains.values())
    with e.db.engine.connect() as conn:
        document = conn.execute(
            select(schema.ovf_cache.c.ovf_data).where(schema.ovf_cache.c.entity_id == r.ids["app"])
        ).scalar_one()
    data = read_ovf(document).data
    (disk,) = [d.disk for d in data.disks if d.disk.id == r.ids["disk0"]]
    return [v.snapshot_id for v in disk.chain()], {sn.id for sn in data.snapshots}


def test_the_reconciled_chain_belongs_to_the_vms_snapshots(with_snapshots: tuple[str, str, Recovered]) -> None:
    chain, snapshots, r = with_snapshots
    e = r.engine
    _register_template(r)
    active, first = r.ids["snapshot_active"], r.ids["snapshot_first"]
    if (chain, snapshots) == ("newer", "plain"):
        # A volume newer than the OVF, but no snapshot recorded for the old leaf to belong to: never invented.
        with pytest.raises(RegistrationRefused, match="none is invented"):
            e.recovery.register(r.sd1.id, r.ids["app"], RegistrationOptions())
        report = e.recovery.register(r.sd1.id, r.ids["app"], RegistrationOptions(allow_partial_import=True))
        assert report.dropped_disks == [r.ids["disk0"]]
        assert "none is invented" in dict(report.disk_reports)[r.ids["disk0"]]
        assert _snapshot_ids(r) == {active, first}
        return
    report = e.recovery.register(r.sd1.id, r.ids["app"], RegistrationOptions(allow_partial_import=True))
    assert report.dropped_disks == []
    registered = _snapshot_ids(r)
    written, recorded = _written_snapshot_ids(r)
    assert recorded == registered
    assert written[-1] == active, "the leaf is the active snapshot's layer"
    assert {i for i in written if i is not None} <= registered
    if chain == "newer":
        later = r.ids["snapshot_later"]
        assert [v.id for v in e.inv.disks.get(r.ids["disk0"]).chain()] == [r.ids["disk0_leaf"], NEWER]
        assert written == [later, active], "the old leaf belongs to the snapshot taken after the OVF was written"
        assert registered == {active, first, later}
    else:
        assert written == [active], "the cut-back leaf is the active layer now"
        assert registered == {active}, "the snapshot whose volume became the active layer is dropped"
        details = [d for i, d in report.disk_reports if i == r.ids["disk0"]]
        assert any(f"snapshot(s) {first} not registered" in d for d in details)


def test_a_dry_run_never_offers_one_mac_twice(two_vms: Recovered) -> None:
    e, r = two_vms.engine, two_vms
    squatter = e.inv.vms.add(Vm(name="squatter", cluster_id=e.cluster.id))
    for i, mac in enumerate((r.old_macs["nic1"], r.old_macs["db/eth0"])):  # both VMs' MACs are taken here
        e.inv.nics.add(Nic(entity_id=squatter.id, name=f"eth{i}", mac=mac))
    reports = e.recovery.register_all(r.sd1.id, RegistrationOptions(reassign_bad_macs=True), dry_run=True)
    handed = [new for x in reports for _, _, new in x.reassigned_macs]
    assert len(handed) == 2
    assert len(set(handed)) == 2, f"two VMs offered one MAC: {handed}"


def test_register_all_undoes_only_the_entity_that_failed_while_being_written(two_vms: Recovered) -> None:
    """Registrations share a transaction, one savepoint each: a failure after an entity's VM and disks were
    written (its NIC's profile is of another data center, which only the NIC command checks) undoes that
    entity alone; the template registered before it in the same batch stays."""
    e, r = two_vms.engine, two_vms
    elsewhere = e.inv.data_centers.add(DataCenter(name="elsewhere"))
    network = e.inv.networks.add(Network(name="far", data_center_id=elsewhere.id))
    far = e.inv.vnic_profiles.add(VnicProfile(name="far", network_id=network.id))
    options = RegistrationOptions(vnic_profile_mappings=[VnicProfileMapping("ovirtmgmt", "ovirtmgmt", far.id)])
    reports = e.recovery.register_all(r.sd1.id, options)
    assert [(x.name, x.outcome) for x in reports] == [("tmpl", "registered"), ("app", "refused"), ("db", "refused")]
    assert "another data center" in (reports[1].reason or "")
    assert e.inv.vms.list() == []
    assert [t.id for t in e.inv.templates.list() if t.name == "tmpl"] == [r.ids["template"]]
    assert {x.name for x in e.recovery.unregistered_entities(r.sd1.id)} == {"app", "db"}
    assert "app_disk0" in {d.alias for d in e.recovery.unregistered_disks(r.sd1.id)}
    assert "app_disk0" not in {d.alias for d in e.inv.disks.list()}

    reports = e.recovery.register_all(r.sd1.id, RegistrationOptions())
    assert [(x.name, x.outcome) for x in reports] == [("app", "registered"), ("db", "registered")]
    assert "app_disk0" in {d.alias for d in e.inv.disks.list()}

"""The bulk registration of `register_all` (engine/recovery/bulk.py) against the per-entity one: one
protected site with a bit of everything, recovered into two fresh databases, registered both ways; the
reports and every row of the inventory must be the same. And a batch whose bulk write fails still
registers everything the per-entity way, but the one entity the database refuses."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select, update

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory import Changes
from ovfstore.engine.recovery import RegistrationOptions, RegistrationReport
from ovfstore.model import (
    BLANK_TEMPLATE_ID,
    GIB,
    AffinityGroup,
    AffinityLabel,
    Disk,
    DiskAttachment,
    DiskStorageType,
    Nic,
    Role,
    Snapshot,
    SnapshotType,
    Template,
    Vm,
    Volume,
    VolumeFormat,
)
from tests.conftest import private_empty_database
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.site import FreshEngine, build_site, fresh_engine

NEWER = UUID("9e9e9e9e-0000-4000-8000-000000000002")
# Rows the recovering engines create before registering, with the same ids in both databases.
ROLE, GROUP, LABEL = (UUID(f"0b0b0b0b-0000-4000-8000-00000000000{i}") for i in (1, 2, 3))
SQUATTER, SQUATTER_NIC, TWIN = (UUID(f"0c0c0c0c-0000-4000-8000-00000000000{i}") for i in (1, 2, 3))


@dataclass
class Protected:
    agent: AgentProcess
    dirs: dict[str, Path]
    macs: dict[str, str]  # VM name: its NIC's MAC
    snapshot: UUID  # db's active snapshot


@pytest.fixture
def second_empty_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Another database with nothing in it, as `empty_db_url`."""
    yield from private_empty_database(backend, request, tmp_path, "second")


@pytest.fixture
def protected(database: Database, agent_factory: Callable[..., AgentProcess], tmp_path: Path) -> Protected:
    """A template with a disk and a MAC-less NIC; `app` made from it (two disks on two domains, a direct
    LUN, a NIC, a permission, an affinity group and label; a volume newer than its OVF on storage);
    `db` (with its active snapshot), `web1`..`web4` with a disk and a NIC each, web1 and web2 sharing a
    shareable disk; web3's newest volume lost on storage."""
    site = build_site(database, agent_factory, tmp_path)
    sd1, _ = site.add_domain("sd1"), site.add_domain("sd2")
    inv = site.inv
    profile = inv.vnic_profiles.list()[0]
    role = inv.roles.add(Role(name="VmOperator"))
    group = inv.affinity_groups.add(AffinityGroup(name="spread", cluster_id=site.cluster.id))
    label = inv.affinity_labels.add(AffinityLabel(name="gpu"))
    template = inv.templates.add(Template(name="tmpl", cluster_id=site.cluster.id))
    tdisk = inv.disks.add(Disk(alias="tmpl_root", provisioned_size=GIB, domain_ids=[sd1.id]))
    inv.attachments.attach(DiskAttachment(entity_id=template.id, disk_id=tdisk.id, bootable=True))
    inv.nics.add(Nic(entity_id=template.id, name="nic1", vnic_profile_id=profile.id))
    app = inv.vms.add(Vm(name="app", cluster_id=site.cluster.id, template_id=template.id))
    for i, sd in enumerate(("sd1", "sd2")):
        disk = inv.disks.add(Disk(alias=f"app_disk{i}", provisioned_size=GIB, domain_ids=[site.domains[sd].id]))
        inv.attachments.attach(DiskAttachment(entity_id=app.id, disk_id=disk.id, bootable=i == 0))
    lun = inv.disks.add(
        Disk(alias="app_lun", provisioned_size=GIB, storage_type=DiskStorageType.LUN, lun_id="36001405aabbcc")
    )
    inv.attachments.attach(DiskAttachment(entity_id=app.id, disk_id=lun.id))
    inv.permissions.add(app.id, "bob@internal", role.id)
    inv.affinity_groups.add_member(group.id, app.id)
    inv.affinity_labels.add_member(label.id, app.id)
    vms = {"app": app, **{name: site.add_vm(name, "sd1") for name in ("db", "web1", "web2", "web3", "web4")}}
    active = inv.snapshots.add(Snapshot(vm_id=vms["db"].id, type=SnapshotType.ACTIVE, description="Active VM"))
    macs = {
        name: inv.nics.add(Nic(entity_id=vm.id, name="nic1", vnic_profile_id=profile.id)).mac
        for name, vm in vms.items()
    }
    shared = inv.disks.add(Disk(alias="shared", provisioned_size=GIB, domain_ids=[sd1.id], shareable=True))
    for name in ("web1", "web2"):
        inv.attachments.attach(DiskAttachment(entity_id=vms[name].id, disk_id=shared.id))
    disk_of = {d.alias: d for d in inv.disks.list()}
    lost = inv.disks.add_volume(Volume(disk_id=disk_of["web3_disk0"].id, format=VolumeFormat.COW, capacity=GIB))
    for disk in inv.disks.list():
        if disk.storage_type is DiskStorageType.IMAGE:
            site.materialize(disk.id)
    assert all(r.ok for r in site.updater.run_once().domains.values())
    app_disk0 = inv.disks.get(disk_of["app_disk0"].id)
    with site.agent.client() as client:  # a snapshot taken after the stores were written
        leaf = app_disk0.chain()[-1].id
        client.create_volume(sd1.id, app_disk0.id, NEWER, GIB, format="COW", type="SPARSE", parent=leaf)
    for path in (site.domain_dir("sd1") / "images" / str(lost.disk_id)).glob(f"{lost.id}*"):
        path.unlink()
    site.updater.domain_step.agents.close()
    dirs = {name: site.domain_dir(name) for name in ("sd1", "sd2")}
    database.dispose()
    return Protected(site.agent, dirs, {k: v for k, v in macs.items() if v is not None}, active.id)


def _recover(url: str, p: Protected) -> FreshEngine:
    """A fresh engine with the site's role, group and label, a VM squatting app's MAC and one already
    named web4; the domains imported; db's OVF recording web1's MAC (two unregistered VMs, one MAC)."""
    engine = fresh_engine(url, p.agent)
    inv = engine.inv
    inv.roles.add(Role(id=ROLE, name="VmOperator"))
    inv.affinity_groups.add(AffinityGroup(id=GROUP, name="spread", cluster_id=engine.cluster.id))
    inv.affinity_labels.add(AffinityLabel(id=LABEL, name="gpu"))
    inv.vms.add(Vm(id=SQUATTER, name="squatter", cluster_id=engine.cluster.id))
    inv.nics.add(Nic(id=SQUATTER_NIC, entity_id=SQUATTER, name="eth0", mac=p.macs["app"]))
    inv.vms.add(Vm(id=TWIN, name="web4", cluster_id=engine.cluster.id))
    engine.import_and_attach(p.dirs["sd1"], "sd1")
    engine.import_and_attach(p.dirs["sd2"], "sd2")
    u = s.unregistered_entities
    with engine.db.engine.begin() as conn:
        for entity_id, document in conn.execute(select(u.c.entity_id, u.c.ovf_data).where(u.c.name == "db")).all():
            assert p.macs["db"].encode() in document
            edited = document.replace(p.macs["db"].encode(), p.macs["web1"].encode())
            conn.execute(update(u).where(u.c.entity_id == entity_id).values(ovf_data=edited))
    return engine


#: Columns that differ between two registrations of the same thing: a permission's id is new each time,
#: and when a VM or template changed is the clock's (its creation date is too for the engine's own).
_VOLATILE = {"permissions": {"id"}, "vm_static": {"changed_at"}}
_OWN_ENTITIES = {BLANK_TEMPLATE_ID, SQUATTER, TWIN}
_TABLES = (
    s.vm_static, s.disks, s.disk_domains, s.volumes, s.disk_attachments, s.nics, s.snapshots, s.permissions,
    s.affinity_group_members, s.affinity_label_members,
)  # fmt: skip


def _inventory(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the registration's tables, the ids of what each engine created for itself (its data
    center, cluster, network, profile and roles) replaced by names, and what is left unregistered."""
    own: dict[Any, str] = {}
    with db.read() as conn:
        for table in (s.data_centers, s.clusters, s.networks, s.vnic_profiles, s.roles, s.hosts):
            own.update({row.id: f"{table.name}:{row.name}" for row in conn.execute(select(table.c.id, table.c.name))})
        d = s.disks
        stores = set(conn.execute(select(d.c.id).where(d.c.content_type == "ovf_store")).scalars())  # the scan's
        found = {}
        for table in _TABLES:
            skip = _VOLATILE.get(table.name, set())
            rows = [
                {**row, "creation_date": None} if table is s.vm_static and row["id"] in _OWN_ENTITIES else row
                for row in conn.execute(select(table)).mappings()
                if _disk_of(table.name, row) not in stores
            ]
            found[table.name] = sorted(
                (
                    tuple((k, own.get(v, v) if isinstance(v, UUID) else v) for k, v in row.items() if k not in skip)
                    for row in rows
                ),
                key=repr,
            )
        u, ud = s.unregistered_entities, s.unregistered_disks
        found["unregistered"] = sorted(conn.execute(select(u.c.entity_id, u.c.domain_id)).all(), key=repr)
        found["unregistered_disks"] = sorted(conn.execute(select(ud.c.disk_id, ud.c.domain_id)).all(), key=repr)
    return found


def _disk_of(table: str, row: Any) -> UUID | None:
    """The disk a row of the disk tables belongs to (None for the others)."""
    if table == "disks":
        return row["id"]  # type: ignore[no-any-return]
    return row.get("disk_id") if table in ("disk_domains", "volumes", "disk_attachments") else None


def _recorder(heard: list[set[UUID]]) -> Callable[[Changes], None]:
    return lambda changes: heard.append(set(changes.entity_ids))


def _outcomes(reports: list[RegistrationReport]) -> list[tuple[Any, ...]]:
    return [
        (r.name, r.outcome, r.reason, r.reassigned_macs, r.warnings, r.disk_reports, r.dropped_disks) for r in reports
    ]


def test_bulk_registration_gives_the_inventory_the_per_entity_one_gives(
    protected: Protected, empty_db_url: str, second_empty_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ovfstore.engine.recovery.service")
    results = []
    for url, bulk in ((empty_db_url, False), (second_empty_db_url, True)):
        engine = _recover(url, protected)
        engine.recovery.bulk_registration = bulk
        sd1 = next(d for d in engine.inv.storage_domains.list() if d.name == "sd1")
        heard: list[set[UUID]] = []
        engine.inv.subscribe(_recorder(heard))
        reports = engine.recovery.register_all(sd1.id, RegistrationOptions(reassign_bad_macs=True))
        results.append((_outcomes(reports), _inventory(engine.db), heard, reports))
        engine.close()
    (one_by_one, rows_a, heard_a, reports), (bulk_outcomes, rows_b, heard_b, _) = results
    outcome = {r.name: r.outcome for r in reports}
    assert outcome == {
        "tmpl": "registered", "app": "registered", "db": "registered", "web1": "registered",
        "web2": "registered", "web3": "refused", "web4": "refused",
    }  # fmt: skip
    by_name = {r.name: r for r in reports}
    assert "lost" in (by_name["web3"].reason or "") or "not on storage" in (by_name["web3"].reason or "")
    assert "already used" in (by_name["web4"].reason or "")
    assert len(by_name["app"].reassigned_macs) == 1, "app's MAC is squatted here"
    assert by_name["db"].reassigned_macs == [], "db keeps the MAC its OVF records (web1's)"
    assert by_name["app"].disk_reports, "app's disk is registered with the volume newer than its OVF"
    assert len(by_name["web1"].reassigned_macs) == 1, "web1's MAC went to db, registered before it"
    assert bulk_outcomes == one_by_one
    # tmpl, app and db together; web1 (db's MAC) and web2 (web1's shared disk) after them, one by one.
    assert "registration batch: 3 written together, 2 one by one" in caplog.messages
    for table in rows_a:
        assert rows_b[table] == rows_a[table], f"{table} differs"
    assert len(rows_a["vm_static"]) == 1 + 2 + 5  # Blank, squatter, twin; tmpl, app, db, web1, web2
    registered = {r.registered_id for r in reports if r.outcome == "registered"}
    assert set().union(*heard_b) == set().union(*heard_a) == registered, "the OVF updater hears of each"


def test_a_batch_whose_bulk_write_fails_is_registered_one_by_one(
    protected: Protected, empty_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """db's active snapshot id is used here already, which no check of the plan looks at: the batch's
    multi-row insert fails, the batch is registered the per-entity way, and only db is refused."""
    engine = _recover(empty_db_url, protected)
    engine.inv.snapshots.add(Snapshot(id=protected.snapshot, vm_id=TWIN, type=SnapshotType.ACTIVE))
    sd1 = next(d for d in engine.inv.storage_domains.list() if d.name == "sd1")
    reports = engine.recovery.register_all(sd1.id, RegistrationOptions(reassign_bad_macs=True))
    outcome = {r.name: r.outcome for r in reports}
    assert any("registering them one by one" in m for m in caplog.messages)
    assert outcome["db"] == "refused"
    assert "the database refused its rows" in (reports[2].reason or "")
    assert [n for n, o in outcome.items() if o == "registered"] == ["tmpl", "app", "web1", "web2"]
    names = {vm.name for vm in engine.inv.vms.list()}
    assert names == {"squatter", "web4", "app", "web1", "web2"}
    assert "db" in {x.name for x in engine.recovery.unregistered_entities(sd1.id)}
    engine.close()

"""Incremental store writes against a real agent process, real domain directories and both databases: a
change appends a segment holding just what changed; the bytes before it are never rewritten; every store
reads as the whole inventory (ovfstore's reader, recovery into a fresh engine); compaction writes the
stores whole again; anything unexpected falls back to a whole write."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import event, select, update

from ovfstore.engine.config import UpdaterConfig
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.domains import DomainService
from ovfstore.engine.inventory import VmChanges
from ovfstore.engine.updater import records
from ovfstore.engine.updater.domain import DomainResult, _write_order
from ovfstore.model import VmStatus
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.site import Site, StoreOnDisk, build_site, fresh_engine

CONFIG = UpdaterConfig(debounce_s=0.2, backoff_initial_s=0.1, compact_min=1 << 20)


@pytest.fixture
def site(database: Database, agent_factory: Callable[..., AgentProcess], tmp_path: Path) -> Iterator[Site]:
    site = build_site(database, agent_factory, tmp_path, CONFIG)
    site.add_domain("sd")
    yield site
    site.updater.stop()
    site.updater.domain_step.agents.close()


def _run(site: Site) -> DomainResult:
    result = site.updater.run_once().domains[site.domains["sd"].id]
    assert result.ok, result.error
    return result


def _volume_bytes(site: Site, store: StoreOnDisk) -> bytes:
    return (site.domain_dir("sd") / "images" / str(store.disk_id) / str(store.volume_id)).read_bytes()


def _good(site: Site) -> list[StoreOnDisk]:
    stores = site.stores_on_disk("sd")
    assert all(st.error is None for st in stores), [st.error for st in stores]
    assert all(st.contents is not None and st.contents.verified for st in stores)
    return stores


def _cached(site: Site, entity_id: UUID) -> bytes:
    with site.db.read() as conn:
        return bytes(
            conn.execute(select(s.ovf_cache.c.ovf_data).where(s.ovf_cache.c.entity_id == entity_id)).scalar_one()
        )


def test_one_change_appends_a_segment_and_leaves_the_rest_untouched(site: Site) -> None:
    vms = [site.add_vm(f"vm{i}", "sd") for i in range(40)]
    first = _run(site)
    assert first.appended is None  # the first write is whole
    before = {st.disk_id: (st.description.size, _volume_bytes(site, st)) for st in _good(site)}

    site.inv.vms.update(vms[7].id, VmChanges(description="changed once"))
    result = _run(site)

    assert result.appended is not None, result.whole_because
    document = _cached(site, vms[7].id)
    # The segment: the changed OVF, info.json and the manifest, with their headers and the end-of-archive.
    assert result.appended < len(document) + 6 * 1024
    assert [t.kind for t in result.transfers] == ["append", "append-copy"]
    stores = _good(site)
    assert {st.contents.manifest.generation for st in stores if st.contents and st.contents.manifest} == {
        result.generation
    }
    for st in stores:
        old_size, old_bytes = before[st.disk_id]
        assert old_size is not None
        assert st.description.size == old_size + result.appended - 1024
        now = _volume_bytes(site, st)
        # Nothing before the old end-of-archive was written again.
        assert now[: old_size - 1024] == old_bytes[: old_size - 1024]
        assert st.contents is not None
        assert st.contents.segments == 2
        assert st.contents.ovfs[vms[7].id] == document
        assert set(st.contents.ovfs) == {vm.id for vm in vms}


def test_removed_and_status_changes_reach_every_store(site: Site) -> None:
    vms = [site.add_vm(f"vm{i}", "sd") for i in range(10)]
    _run(site)
    site.inv.vms.remove(vms[3].id)
    removed = _run(site)
    assert removed.appended is not None, removed.whole_because
    site.inv.vms.update(vms[5].id, VmChanges(status=VmStatus.UP))
    started = _run(site)
    assert started.appended is not None, started.whole_because
    site.add_vm("late", "sd")
    _run(site)

    for st in _good(site):
        assert st.contents is not None
        assert st.contents.segments == 4
        assert vms[3].id not in st.contents.ovfs
        assert len(st.contents.ovfs) == 10
        assert st.contents.vm_status == {vms[5].id: VmStatus.UP.value}
    # One VM started, another stopped: the map follows; a running VM of another domain stays out of it.
    site.add_domain("other")
    site.inv.vms.update(vms[6].id, VmChanges(status=VmStatus.UP))
    _run(site)
    moved = site.add_vm("moved", "other")
    site.inv.vms.update(moved.id, VmChanges(status=VmStatus.UP))
    site.inv.vms.update(vms[5].id, VmChanges(status=VmStatus.DOWN))
    assert _run(site).appended is not None
    for st in _good(site):
        assert st.contents is not None
        assert st.contents.vm_status == {vms[6].id: VmStatus.UP.value}


def test_stores_are_compacted_past_their_budget(site: Site) -> None:
    step = site.updater.domain_step
    step.config = replace(step.config, compact_min=0, compact_ratio=0.2, max_segments=50)
    vms = [site.add_vm(f"vm{i}", "sd") for i in range(10)]
    _run(site)
    kinds = []
    for i in range(6):
        site.inv.vms.update(vms[i].id, VmChanges(description=f"change {i}"))
        result = _run(site)
        kinds.append("whole" if result.appended is None else "append")
        if result.appended is None:
            assert result.whole_because is not None
            assert "compacting" in result.whole_because
    # 20% of ten VMs' store is about two VMs' documents: every second or third change compacts.
    assert "whole" in kinds
    assert "append" in kinds
    for st in _good(site):
        assert st.contents is not None
        assert {vm.id: _cached(site, vm.id) for vm in vms} == st.contents.ovfs


def test_a_failed_append_leaves_the_other_store_good_and_the_next_write_whole(site: Site, chattr: str) -> None:
    vms = [site.add_vm(f"vm{i}", "sd") for i in range(10)]
    _run(site)
    site.inv.vms.update(vms[0].id, VmChanges(description="one"))
    # The first store to be appended to is made immutable: its append fails, the other keeps its copy.
    with site.db.read() as conn:
        (target, other) = _write_order(records.of_domain(conn, site.domains["sd"].id))
    path = site.domain_dir("sd") / "images" / str(target.disk_id) / str(target.volume_id)
    before = {st.disk_id: _volume_bytes(site, st) for st in _good(site)}
    subprocess.run([chattr, "+i", str(path)], check=True)
    try:
        result = site.updater.run_once().domains[site.domains["sd"].id]
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)
    assert result.error is not None
    stores = {st.disk_id: st for st in site.stores_on_disk("sd")}
    assert stores[other.disk_id].error is None
    assert _volume_bytes(site, stores[other.disk_id]) == before[other.disk_id]
    again = _run(site)
    assert again.appended is None
    assert again.whole_because is not None
    for st in _good(site):
        assert st.contents is not None
        assert st.contents.segments == 1
        assert st.contents.ovfs[vms[0].id] == _cached(site, vms[0].id)


def test_incremental_off_writes_whole(site: Site) -> None:
    site.updater.domain_step.config = replace(site.updater.domain_step.config, incremental=False)
    vm = site.add_vm("vm", "sd")
    _run(site)
    site.inv.vms.update(vm.id, VmChanges(description="changed"))
    result = _run(site)
    assert result.appended is None
    assert result.whole_because == "incremental writes are off ([updater] incremental)"


def test_a_fresh_engine_recovers_the_final_state_of_a_segmented_store(site: Site, empty_db_url: str) -> None:
    vms = [site.add_vm(f"vm{i}", "sd") for i in range(8)]
    _run(site)
    site.inv.vms.update(vms[1].id, VmChanges(description="the final one"))
    _run(site)
    site.inv.vms.remove(vms[2].id)
    assert _run(site).appended is not None
    expected = {vm.id: hashlib.sha256(_cached(site, vm.id)).hexdigest() for vm in vms if vm.id != vms[2].id}
    site.updater.stop()

    engine = fresh_engine(empty_db_url, site.agent)
    try:
        domain = engine.import_and_attach(site.domain_dir("sd"), "sd")
        u = s.unregistered_entities
        with engine.db.read() as conn:
            rows = conn.execute(select(u.c.entity_id, u.c.ovf_data).where(u.c.domain_id == domain.id)).all()
        assert {row.entity_id: hashlib.sha256(bytes(row.ovf_data)).hexdigest() for row in rows} == expected
    finally:
        engine.close()


def test_a_domain_attached_again_is_written_whole_with_what_changed_while_it_was_away(site: Site) -> None:
    """A domain detached and attached again missed the changes of its data center's VMs and templates that
    go into every data domain (none was noted for it while it was away): its next write is whole, so its
    stores hold their final versions and none removed meanwhile (an append of only what was noted since
    would have kept the stale ones for good)."""
    service = DomainService(site.inv, site.updater.domain_step.agents, site.updater)
    site.add_domain("sd2")
    dc_wide = site.add_vm("dc-wide")  # no disk: in every data domain of the data center
    dropped = site.add_vm("dropped")
    site.updater.run_once()
    sd2 = site.domains["sd2"].id
    service.deactivate(sd2)
    service.detach(sd2)
    site.inv.vms.update(dc_wide.id, VmChanges(description="changed while sd2 was away"))
    site.inv.vms.remove(dropped.id)
    _run(site)

    service.attach(sd2, site.dc.id)
    back = site.add_vm("back", "sd2")
    result = site.updater.run_once().domains[sd2]

    assert result.ok, result.error
    assert result.appended is None
    for st in site.stores_on_disk("sd2"):
        assert st.contents is not None, st.error
        assert st.contents.verified
        assert set(st.contents.ovfs) == {dc_wide.id, back.id}
        assert st.contents.ovfs[dc_wide.id] == _cached(site, dc_wide.id)


def test_many_changes_at_once_stay_within_sqlites_bound_parameters(site: Site) -> None:
    """A pool step noting hundreds of changes for an appendable domain, and the append consuming them, keep
    each statement within 999 bound parameters: the default limit of SQLite before 3.32 (still the system
    SQLite of some supported distributions). Here the limit is set on every connection of the test."""
    if site.db.engine.dialect.name == "sqlite":

        @event.listens_for(site.db.engine, "connect")
        def _limit(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

        site.db.engine.dispose()
    site.updater.domain_step.config = dataclasses.replace(CONFIG, compact_min=1 << 30)  # 600 VMs appended
    site.add_vm("first", "sd")
    _run(site)
    many = {site.add_vm(f"dc-wide{i}").id for i in range(600)}  # no disk: each in every data domain

    result = _run(site)

    assert result.appended is not None, result.whole_because
    with site.db.read() as conn:
        assert conn.execute(select(s.ovf_store_changes)).all() == []
    for st in _good(site):
        assert st.contents is not None
        assert many <= set(st.contents.ovfs)


def test_a_whole_write_by_an_older_engine_makes_the_next_write_whole(site: Site) -> None:
    """An older engine on the same database (during a rolling upgrade) writes stores whole without knowing
    the columns appends need: they keep what this version's last append left (simulated here by putting
    them back after a whole write). Such a record does not add up (`Size` is no longer the base plus what
    was appended), and the next write is whole: an append would trust a stale status map digest and
    leave the VM's status as the older engine wrote it."""
    vm = site.add_vm("vm", "sd")
    _run(site)
    site.inv.vms.update(vm.id, VmChanges(status=VmStatus.UP))
    assert _run(site).appended is not None
    st = s.ovf_stores
    appendable = [st.c.base_size, st.c.appended, st.c.segments, st.c.status_sha256, st.c.unregistered]
    with site.db.read() as conn:
        kept = {row.disk_id: row._mapping for row in conn.execute(select(st.c.disk_id, *appendable))}
    site.inv.vms.update(vm.id, VmChanges(status=VmStatus.DOWN))
    sd = site.domains["sd"].id
    assert site.updater.run_once(force={sd}).domains[sd].appended is None  # the older engine's whole write
    with site.db.write() as conn:
        for disk_id, row in kept.items():
            conn.execute(
                update(st).where(st.c.disk_id == disk_id).values({k: v for k, v in row.items() if k != "disk_id"})
            )

    site.inv.vms.update(vm.id, VmChanges(status=VmStatus.UP))
    result = _run(site)

    assert result.appended is None
    assert result.whole_because is not None
    assert "does not add up" in result.whole_because
    for stored in _good(site):
        assert stored.contents is not None
        assert stored.contents.vm_status == {vm.id: VmStatus.UP.value}

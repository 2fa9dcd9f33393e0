"""The OVF store updater against a real agent process, real domain directories and both databases. Every
check reads the stores straight from disk."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from uuid import UUID

import pytest

from ovfstore.engine import events
from ovfstore.engine.config import UpdaterConfig
from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory import DiskChanges, HostChanges, StorageDomainChanges, TemplateChanges, VmChanges
from ovfstore.engine.updater.contents import DocumentSpool
from ovfstore.engine.updater.status import domains_status
from ovfstore.model import DiskStatus, OvfStoreStatus, TemplateStatus, VmStatus
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.site import Site, build_site


@pytest.fixture
def site(database: Database, agent_factory: Callable[..., AgentProcess], tmp_path: Path) -> Iterator[Site]:
    site = build_site(database, agent_factory, tmp_path)
    site.add_domain("sd1")
    site.add_domain("sd2")
    yield site
    site.updater.stop()
    site.updater.domain_step.agents.close()


def test_each_domain_holds_exactly_its_entities(site: Site) -> None:
    only1 = site.add_vm("only1", "sd1")
    both = site.add_vm("both", "sd1", "sd2")
    only2 = site.add_vm("only2", "sd2")
    diskless = site.add_vm("diskless")
    shared_only = site.add_vm("shared", "sd2", shareable=True)

    report = site.updater.run_once()

    assert report.pool.regenerated == {only1.id, both.id, only2.id, diskless.id, shared_only.id}
    assert all(r.ok for r in report.domains.values()), report.domains
    # Diskless and shareable-only entities go to every domain of the data center.
    assert site.entities_in("sd1") == {only1.id, both.id, diskless.id, shared_only.id}
    assert site.entities_in("sd2") == {both.id, only2.id, diskless.id, shared_only.id}
    for name in ("sd1", "sd2"):
        stores = site.stores_on_disk(name)
        assert len(stores) == 2
        assert all(s.contents is not None and s.contents.verified for s in stores), [s.error for s in stores]
    status = {s.name: s for s in domains_status(site.db)}
    assert status["sd1"].up_to_date
    assert status["sd1"].entity_count == 4


def test_a_changed_vm_rewrites_its_domains_only(site: Site) -> None:
    on1 = site.add_vm("on1", "sd1")
    site.add_vm("on2", "sd2")
    site.updater.run_once()
    before1 = {s.disk_id: s for s in site.stores_on_disk("sd1")}
    before2 = {s.disk_id: s for s in site.stores_on_disk("sd2")}
    old_ovf = site.stores_on_disk("sd1")[0].contents
    assert old_ovf is not None

    site.inv.vms.update(on1.id, VmChanges(memory_mb=2048, max_memory_mb=8192, description="bigger"))
    report = site.updater.run_once()

    assert report.pool.regenerated == {on1.id}, "one new OVF, for the changed VM only"
    assert set(report.domains) == {site.domains["sd1"].id}
    after1 = site.stores_on_disk("sd1")
    assert all(s.mtime_ns != before1[s.disk_id].mtime_ns for s in after1), "both stores of sd1 rewritten"
    assert {s.disk_id: s.mtime_ns for s in site.stores_on_disk("sd2")} == {k: v.mtime_ns for k, v in before2.items()}
    newest = max(after1, key=lambda s: s.contents.manifest.generation if s.contents and s.contents.manifest else 0)
    assert newest.contents is not None
    assert b"bigger" in newest.contents.ovfs[on1.id]
    assert newest.contents.ovfs[on1.id] != old_ovf.ovfs[on1.id]


def test_a_deleted_vm_disappears(site: Site) -> None:
    keep = site.add_vm("keep", "sd1")
    gone = site.add_vm("gone", "sd1", "sd2")
    site.updater.run_once()
    assert gone.id in site.entities_in("sd2")

    site.inv.vms.remove(gone.id)
    report = site.updater.run_once()

    assert report.pool.removed == {gone.id}
    assert site.entities_in("sd1") == {keep.id}
    assert site.entities_in("sd2") == set()


def test_a_locked_vm_is_skipped_until_consistent(site: Site) -> None:
    vm = site.add_vm("busy", "sd1")
    disk_id = site.inv.attachments.list(vm.id)[0].disk_id
    site.inv.disks.update(disk_id, DiskChanges(status=DiskStatus.LOCKED))

    report = site.updater.run_once()
    assert vm.id in report.pool.locked
    assert vm.id not in site.entities_in("sd1")

    site.inv.disks.update(disk_id, DiskChanges(status=DiskStatus.OK))
    report = site.updater.run_once()
    assert report.pool.regenerated == {vm.id}
    assert vm.id in site.entities_in("sd1")


def test_image_locked_vms_and_locked_templates_are_skipped(site: Site) -> None:
    from ovfstore.model import Template

    vm = site.add_vm("vm", "sd1")
    site.inv.vms.set_status(vm.id, VmStatus.IMAGE_LOCKED)
    template = site.inv.templates.add(Template(name="t", cluster_id=site.cluster.id, status=TemplateStatus.LOCKED))
    report = site.updater.run_once()
    assert {vm.id, template.id} <= report.pool.locked
    site.inv.vms.set_status(vm.id, VmStatus.UP)
    site.inv.templates.update(template.id, TemplateChanges(status=TemplateStatus.OK))
    site.updater.run_once()
    stores = site.stores_on_disk("sd1")
    newest = max(stores, key=lambda s: s.contents.manifest.generation if s.contents and s.contents.manifest else 0)
    assert newest.contents is not None
    assert {vm.id, template.id} <= set(newest.contents.ovfs)
    assert newest.contents.vm_status == {vm.id: int(VmStatus.UP)}, "running VMs are in the status map"


def test_a_vm_whose_disk_moved_leaves_the_old_domain(site: Site) -> None:
    vm = site.add_vm("mover", "sd1")
    site.updater.run_once()
    assert vm.id in site.entities_in("sd1")
    disk_id = site.inv.attachments.list(vm.id)[0].disk_id

    site.inv.disks.move(disk_id, site.domains["sd1"].id, site.domains["sd2"].id)
    report = site.updater.run_once()

    assert set(report.domains) == {site.domains["sd1"].id, site.domains["sd2"].id}
    assert vm.id not in site.entities_in("sd1")
    assert vm.id in site.entities_in("sd2")


@pytest.mark.parametrize("write", ["whole", "append"])
def test_an_agent_killed_mid_write_leaves_a_complete_store(
    site: Site, agent_factory: Callable[..., AgentProcess], write: str
) -> None:
    vms = [site.add_vm(f"vm{i}", "sd1") for i in range(300)]
    site.updater.run_once()
    good_before = {s.disk_id for s in site.stores_on_disk("sd1") if s.contents is not None}
    assert len(good_before) == 2
    if write == "whole":
        site.updater.domain_step.config = replace(site.updater.domain_step.config, incremental=False)
        site.inv.vms.update(vms[0].id, VmChanges(description="changed"))
    else:  # every VM changed: a segment long enough (two batches of documents) to be cut while it streams
        for vm in vms:
            site.inv.vms.update(vm.id, VmChanges(description="changed"))

    # Kill the real agent while the engine is in the middle of streaming the first store.
    real_fetch = DocumentSpool.fetch
    calls = 0

    def fetch_then_kill(spool: DocumentSpool, ids: Sequence[UUID]) -> list[tuple[UUID, bytes]]:
        nonlocal calls
        calls += 1
        if calls == 2:
            site.agent.kill(signal.SIGKILL)
        return real_fetch(spool, ids)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DocumentSpool, "fetch", fetch_then_kill)
        report = site.updater.run_once()
    assert calls >= 2, "the agent was not killed while the store streamed"

    result = report.domains[site.domains["sd1"].id]
    assert result.error is not None
    assert [t.kind for t in result.transfers] == []  # the first store's write (or append) was cut
    assert (result.appended is not None) == (write == "append")
    stores = site.stores_on_disk("sd1")
    complete = [s for s in stores if s.contents is not None and s.contents.verified]
    assert len(complete) == 1, [s.error for s in stores]
    broken = [s for s in stores if s.contents is None]
    assert len(broken) == 1
    assert "incomplete" in (broken[0].error or "")
    status = domains_status(site.db, site.domains["sd1"].id)[0]
    assert not status.up_to_date
    assert status.last_error

    # A new agent on the same storage: the next run completes the update.
    replacement = agent_factory(roots=(site.root,), secret=site.agent.secret)
    site.inv.hosts.update(site.host.id, HostChanges(address=replacement.url))
    report = site.updater.run_once()
    assert report.domains[site.domains["sd1"].id].ok
    assert report.domains[site.domains["sd1"].id].appended is None  # the stores differ: written whole
    assert all(s.contents is not None for s in site.stores_on_disk("sd1"))
    assert domains_status(site.db, site.domains["sd1"].id)[0].up_to_date


def test_an_oversized_store_is_refused_and_the_old_stores_stay(
    database: Database, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    config = UpdaterConfig(store_capacity=64 * 1024, store_capacity_max=64 * 1024)
    site = build_site(database, agent_factory, tmp_path, config)
    site.add_domain("small")
    first = [site.add_vm(f"vm{i}", "small") for i in range(3)]
    assert site.updater.run_once().domains[site.domains["small"].id].ok
    before = {s.disk_id: (s.mtime_ns, s.meta["DESCRIPTION"]) for s in site.stores_on_disk("small")}

    for i in range(40):
        site.add_vm(f"more{i}", "small")
    report = site.updater.run_once()

    error = report.domains[site.domains["small"].id].error
    assert error is not None
    assert "ceiling of 65536" in error
    assert {s.disk_id: (s.mtime_ns, s.meta["DESCRIPTION"]) for s in site.stores_on_disk("small")} == before
    assert site.entities_in("small") == {vm.id for vm in first}
    assert any(e.code == "ovf_update_failed" for e in events.recent(database))
    site.updater.domain_step.agents.close()


def test_another_up_host_is_used_when_one_is_down(site: Site, agent_factory: Callable[..., AgentProcess]) -> None:
    from ovfstore.model import Host

    vm = site.add_vm("vm", "sd1")
    second = agent_factory(roots=(site.root,), secret=site.agent.secret)
    site.inv.hosts.add(Host(name="host2", cluster_id=site.cluster.id, address=second.url))
    site.agent.kill(signal.SIGKILL)  # host1 (first by name) is gone
    report = site.updater.run_once()
    assert all(r.ok for r in report.domains.values()), report.domains
    assert vm.id in site.entities_in("sd1")


def test_with_no_reachable_host_nothing_is_written_and_the_error_is_kept(site: Site) -> None:
    site.add_vm("vm", "sd1")
    site.agent.kill(signal.SIGKILL)
    report = site.updater.run_once()
    assert all(r.error for r in report.domains.values())
    status = {s.name: s for s in domains_status(site.db)}
    assert not status["sd1"].up_to_date
    assert "no host could reach the domain" in (status["sd1"].last_error or "")
    assert status["sd1"].outdated_since is not None


def test_a_domain_keeping_no_stores(site: Site) -> None:
    site.add_domain("bare", stores=0)
    site.add_vm("vm", "bare")
    report = site.updater.run_once()
    assert site.domains["bare"].id not in report.domains or report.domains[site.domains["bare"].id].skipped
    assert not (site.domain_dir("bare") / "images").exists() or not any((site.domain_dir("bare") / "images").iterdir())


def test_two_update_now_calls_during_a_run_both_succeed(site: Site) -> None:
    for i in range(50):
        site.add_vm(f"vm{i}", "sd1", "sd2")
    site.updater.run_once()
    site.inv.vms.update(site.inv.vms.list()[0].id, VmChanges(description="x"))

    step = site.updater.domain_step
    real_update = step.update
    in_run = threading.Event()
    release = threading.Event()

    def slow_update(domain_id, *, force=False, term=None):  # type: ignore[no-untyped-def]
        in_run.set()
        release.wait(10)
        return real_update(domain_id, force=force, term=term)

    step.update = slow_update  # type: ignore[method-assign]
    site.updater.start()
    assert in_run.wait(10), "the first run did not start"
    sd1 = site.domains["sd1"].id
    results: list[object] = []
    callers = [
        threading.Thread(target=lambda: results.append(site.updater.update_now(sd1, timeout=60))) for _ in range(2)
    ]
    for caller in callers:
        caller.start()
    release.set()
    for caller in callers:
        caller.join(60)
    step.update = real_update  # type: ignore[method-assign]
    assert len(results) == 2
    assert all(getattr(r, "ok", False) for r in results), results
    assert results[0] is results[1], "both callers were served by the same run"
    assert len(getattr(results[0], "written", [])) == 2


def test_a_change_reaches_the_disk_within_seconds(site: Site) -> None:
    vm = site.add_vm("vm", "sd1")
    site.updater.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = domains_status(site.db, site.domains["sd1"].id)[0]
        if status.up_to_date and status.entity_count == 1:
            break
        time.sleep(0.1)
    assert vm.id in site.entities_in("sd1")
    assert all(s.status is OvfStoreStatus.UPDATED for s in domains_status(site.db, site.domains["sd1"].id)[0].stores)


def test_a_failed_domain_that_goes_away_does_not_keep_the_updater_busy(site: Site) -> None:
    spare = site.add_domain("spare")
    site.agent.kill(signal.SIGKILL)
    site.updater.run_once()
    assert spare.id in site.updater._backoff
    site.inv.storage_domains.update(spare.id, StorageDomainChanges(status="maintenance"))
    site.inv.storage_domains.update(spare.id, StorageDomainChanges(data_center_id=None))
    site.inv.storage_domains.remove(spare.id)
    site.updater.run_once()
    assert spare.id not in site.updater._backoff
    assert not site.updater._due(time.monotonic() + 1) or site.updater._backoff


def test_a_recreated_store_is_written_first(site: Site) -> None:
    vm = site.add_vm("vm", "sd1")
    site.updater.run_once()
    first, second = sorted(site.stores_on_disk("sd1"), key=lambda st: str(st.disk_id))
    for suffix in ("", ".meta", ".lease"):  # the second store's volume vanishes from storage
        (site.domain_dir("sd1") / "images" / str(second.disk_id) / f"{second.volume_id}{suffix}").unlink()
    site.inv.vms.update(vm.id, VmChanges(description="while one store was missing"))
    report = site.updater.run_once()
    assert report.domains[site.domains["sd1"].id].written == [first.disk_id]

    report = site.updater.run_once()  # the store is created again, empty: it must go first
    assert report.domains[site.domains["sd1"].id].written == [second.disk_id, first.disk_id]
    assert all(st.contents is not None for st in site.stores_on_disk("sd1"))

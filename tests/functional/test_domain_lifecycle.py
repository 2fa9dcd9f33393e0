"""Creating, attaching, deactivating and detaching domains through real agents: stores are written
before a domain leaves, and the domain's metadata on disk follows the inventory."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ovfstore.engine.db.database import Database
from ovfstore.engine.domains import DomainService
from ovfstore.engine.errors import Conflict
from ovfstore.engine.inventory import VmChanges
from ovfstore.engine.updater.contents import load_contents
from ovfstore.engine.updater.domain import UpdateError
from ovfstore.engine.updater.service import RunReport
from ovfstore.engine.updater.status import domains_status
from ovfstore.model import GIB, Disk, DiskAttachment, DomainStatus, StorageDomain, Template
from ovfstore.storage.metadata import parse_domain_metadata
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.site import Site, build_site


@pytest.fixture
def site(database: Database, agent_factory: Callable[..., AgentProcess], tmp_path: Path) -> Iterator[Site]:
    site = build_site(database, agent_factory, tmp_path)
    yield site
    site.updater.domain_step.agents.close()


def _service(site: Site) -> DomainService:
    return DomainService(site.inv, site.updater.domain_step.agents, site.updater)


def _metadata(site: Site, domain: StorageDomain) -> dict[str, str]:
    return parse_domain_metadata((site.root / str(domain.id) / "dom_md" / "metadata").read_bytes()).values


def test_create_attach_and_the_stores_follow(site: Site) -> None:
    service = _service(site)
    first = service.create(StorageDomain(name="data1", path=str(site.root), data_center_id=site.dc.id), site.host)
    second = service.create(StorageDomain(name="data2", path=str(site.root)), site.host)
    assert (first.status, first.master) == (DomainStatus.ACTIVE, True)
    assert second.status is DomainStatus.UNATTACHED
    assert _metadata(site, first)["POOL_UUID"] == str(site.dc.id)
    assert _metadata(site, first)["ROLE"] == "Master"
    assert _metadata(site, second)["POOL_UUID"] == ""

    second = service.attach(second.id, site.dc.id)
    assert (second.status, second.master) == (DomainStatus.ACTIVE, False)
    assert _metadata(site, second)["ROLE"] == "Regular"
    site.domains.update(data1=first, data2=second)

    vm = site.add_vm("vm", "data2")
    site.updater.run_once()
    assert site.entities_in("data2") == {vm.id}
    assert all(s.up_to_date for s in domains_status(site.db))


def test_deactivate_writes_the_stores_first(site: Site) -> None:
    site.add_domain("sd1")
    vm = site.add_vm("vm", "sd1")
    site.updater.run_once()
    site.inv.vms.update(vm.id, VmChanges(description="last words"))

    domain = _service(site).deactivate(site.domains["sd1"].id)

    assert domain.status is DomainStatus.MAINTENANCE
    stores = site.stores_on_disk("sd1")
    assert all(s.contents is not None and b"last words" in s.contents.ovfs[vm.id] for s in stores)


def test_deactivate_refuses_when_the_stores_cannot_be_written(site: Site) -> None:
    site.add_domain("sd1")
    site.add_vm("vm", "sd1")
    site.agent.kill(signal.SIGKILL)
    with pytest.raises(UpdateError, match="could not be updated"):
        _service(site).deactivate(site.domains["sd1"].id)
    assert site.inv.storage_domains.get(site.domains["sd1"].id).status is DomainStatus.ACTIVE
    forced = _service(site).deactivate(site.domains["sd1"].id, force=True)
    assert forced.status is DomainStatus.MAINTENANCE


def test_detach_leaves_a_self_describing_domain(site: Site) -> None:
    site.add_domain("sd1")
    site.add_domain("sd2")
    leaving = site.add_vm("leaving", "sd2")
    staying = site.add_vm("staying", "sd1")
    split = site.add_vm("split", "sd1", "sd2")
    service = _service(site)
    sd2 = site.domains["sd2"].id
    service.deactivate(sd2)

    with pytest.raises(Conflict, match="disks on other domains"):
        service.detach(sd2)
    site.inv.entities.forget(split.id)
    site.inv.vms.update(leaving.id, VmChanges(description="detached with its domain"))

    detached = service.detach(sd2)

    assert (detached.status, detached.data_center_id) == (DomainStatus.UNATTACHED, None)
    assert _metadata(site, detached)["POOL_UUID"] == ""
    assert {v.id for v in site.inv.vms.list()} == {staying.id}
    contents = [s.contents for s in site.stores_on_disk("sd2")]
    assert all(c is not None and b"detached with its domain" in c.ovfs[leaving.id] for c in contents)

    service.remove(sd2)
    assert sd2 not in {d.id for d in site.inv.storage_domains.list()}
    assert (site.root / str(sd2) / "dom_md" / "metadata").exists(), "removing forgets; the data stays"


def test_an_updater_run_during_the_detach_keeps_what_leaves_on_the_stores(site: Site) -> None:
    """The updater may run at any moment of a detach: here one runs after every change the detach
    commits (its debounced run, on a loaded database, lands between the detach's steps). The stores
    must still describe every VM and template that leaves with the domain: none is written from an
    inventory they already left (which wrote them empty for the next site's import)."""
    site.add_domain("sd1")
    template = site.inv.templates.add(Template(name="tpl", cluster_id=site.cluster.id))
    leaving = {site.add_vm(f"vm{i}", "sd1").id for i in range(3)}
    disk = site.inv.disks.add(Disk(alias="tpl_disk", provisioned_size=GIB, domain_ids=[site.domains["sd1"].id]))
    site.inv.attachments.attach(DiskAttachment(entity_id=template.id, disk_id=disk.id, bootable=True))
    leaving.add(template.id)
    site.updater.run_once()
    service = _service(site)
    sd1 = site.domains["sd1"].id
    service.deactivate(sd1)
    runs: list[RunReport] = []
    site.inv.subscribe(lambda changes: runs.append(site.updater.run_once()))

    service.detach(sd1)

    assert runs, "the updater ran during the detach"
    assert site.inv.vms.list() == []
    assert template.id not in {t.id for t in site.inv.templates.list()}
    stores = site.stores_on_disk("sd1")
    assert [set(s.contents.ovfs) if s.contents else s.error for s in stores] == [leaving, leaving]
    assert [r.domains[sd1] for r in runs if sd1 in r.domains and r.domains[sd1].written] == []


def test_stores_are_not_written_from_contents_read_after_the_domain_left(site: Site) -> None:
    """A run that found the domain attached, then read its contents after a detach committed, writes
    nothing: what it read no longer holds what left with the domain."""
    domain = site.add_domain("sd1")
    site.add_vm("vm", "sd1")
    site.updater.run_once()
    with load_contents(site.db, domain) as contents:
        assert len(contents.entities) == 1
        assert contents.left is None
    service = _service(site)
    service.deactivate(domain.id)
    with load_contents(site.db, domain) as contents:
        assert contents.left == "the domain is maintenance; its stores are written when it is active"
    service.detach(domain.id)
    with load_contents(site.db, domain) as contents:
        assert contents.left == "the domain left its data center"
    service.remove(domain.id)
    with load_contents(site.db, domain) as contents:
        assert contents.left == "the domain no longer exists"


def test_create_disk_makes_its_volumes_on_storage(site: Site) -> None:
    from ovfstore.engine.domains import DomainCommandFailed

    site.add_domain("sd1")
    service = _service(site)
    disk = service.create_disk(Disk(alias="data", provisioned_size=GIB, domain_ids=[site.domains["sd1"].id]))
    leaf = disk.leaf
    assert leaf is not None
    volume = site.domain_dir("sd1") / "images" / str(disk.id) / str(leaf.id)
    assert volume.stat().st_size == GIB
    assert '"DiskAlias":"data"' in (volume.parent / f"{leaf.id}.meta").read_text().replace(" ", "")

    site.agent.kill(signal.SIGKILL)
    with pytest.raises(DomainCommandFailed, match="not reachable"):
        service.create_disk(Disk(alias="lost", provisioned_size=GIB, domain_ids=[site.domains["sd1"].id]))
    assert [d.alias for d in site.inv.disks.list()] == ["data"], "refused by storage: not kept in the inventory"

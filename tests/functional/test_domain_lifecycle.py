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
from ovfstore.engine.updater.domain import UpdateError
from ovfstore.engine.updater.status import domains_status
from ovfstore.model import DomainStatus, StorageDomain
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


def test_create_disk_makes_its_volumes_on_storage(site: Site) -> None:
    from ovfstore.engine.domains import DomainCommandFailed
    from ovfstore.model import GIB, Disk

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

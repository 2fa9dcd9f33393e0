"""Stores that grow and shrink with their domain, against a real agent process, real domain directories
and both databases. Stores are small here (64 KiB, a few dozen VMs) so that growing is cheap; every
check reads the stores and their `.meta` straight from disk."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import select

from ovfstore.agent.client import AgentClient, WriteResult
from ovfstore.engine import events
from ovfstore.engine.config import UpdaterConfig
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory import HostChanges, VmChanges
from ovfstore.engine.updater import records
from ovfstore.engine.updater.domain import _write_order
from ovfstore.engine.updater.records import StoreRecord
from ovfstore.model import Vm
from ovfstore.store import description
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.site import Site, StoreOnDisk, build_site

KIB = 1024
SMALL = 64 * KIB
# Whole writes only: a store is resized when it is written whole (an append that would not fit is made
# whole; test_updater_incremental.py covers appends).
CONFIG = UpdaterConfig(store_capacity=SMALL, debounce_s=0.2, backoff_initial_s=0.1, incremental=False)


@pytest.fixture
def site(database: Database, agent_factory: Callable[..., AgentProcess], tmp_path: Path) -> Iterator[Site]:
    site = build_site(database, agent_factory, tmp_path, CONFIG)
    site.add_domain("sd")
    yield site
    site.updater.stop()
    site.updater.domain_step.agents.close()


def _capacities(site: Site) -> dict[UUID, int]:
    """Each store's capacity as its `.meta` says, checked against its file and the engine's inventory."""
    stores = site.stores_on_disk("sd")
    with site.db.read() as conn:
        query = select(s.volumes.c.disk_id, s.volumes.c.capacity, s.disks.c.provisioned_size).join(
            s.disks, s.disks.c.id == s.volumes.c.disk_id
        )
        recorded = {row.disk_id: (row.capacity, row.provisioned_size) for row in conn.execute(query)}
    found = {}
    for store in stores:
        capacity = int(store.meta["CAP"])
        assert os.stat(site.domain_dir("sd") / "images" / str(store.disk_id) / str(store.volume_id)).st_size == capacity
        assert recorded[store.disk_id] == (capacity, capacity)
        found[store.disk_id] = capacity
    return found


def _codes(site: Site) -> list[str]:
    return [e.code for e in events.recent(site.db, domain_id=site.domains["sd"].id)]


def _add_vms(site: Site, count: int, prefix: str = "vm") -> list[Vm]:
    return [site.add_vm(f"{prefix}{i}", "sd") for i in range(count)]


def _good(stores: list[StoreOnDisk]) -> list[StoreOnDisk]:
    return [st for st in stores if st.contents is not None and st.contents.verified]


def test_a_domain_outgrowing_its_stores_gets_them_grown_and_written(site: Site) -> None:
    first = _add_vms(site, 2)
    assert site.updater.run_once().domains[site.domains["sd"].id].ok
    assert set(_capacities(site).values()) == {SMALL}

    more = _add_vms(site, 60, "more")
    result = site.updater.run_once().domains[site.domains["sd"].id]

    assert result.ok, result.error
    assert result.size > SMALL
    capacities = _capacities(site)
    assert len(capacities) == 2
    for capacity in capacities.values():
        assert capacity >= result.size + result.size // 4
        assert capacity in (2 * SMALL, 4 * SMALL, 8 * SMALL)
    stores = site.stores_on_disk("sd")
    assert len(_good(stores)) == 2
    assert site.entities_in("sd") == {vm.id for vm in first + more}
    assert _codes(site).count("ovf_store_grown") == 2
    # Written again at the same size: nothing is resized.
    site.inv.vms.update(more[0].id, VmChanges(description="changed"))
    assert site.updater.run_once().domains[site.domains["sd"].id].ok
    assert _capacities(site) == capacities
    assert _codes(site).count("ovf_store_grown") == 2


@contextmanager
def _kill_during_upload(site: Site) -> Iterator[None]:
    """The agent is SIGKILLed once the first 4 KiB of the first upload were sent to it."""
    real_upload = AgentClient.upload

    def upload(client: AgentClient, sd: UUID, img: UUID, vol: UUID, chunks: Iterable[bytes], length: int,
               sha256: str | None = None) -> WriteResult:  # fmt: skip
        def killing() -> Iterator[bytes]:
            sent = 0
            for chunk in chunks:
                for start in range(0, len(chunk), 4 * KIB):
                    if sent and site.agent.proc.poll() is None:
                        site.agent.kill(signal.SIGKILL)
                    sent += 1
                    yield chunk[start : start + 4 * KIB]

        return real_upload(client, sd, img, vol, killing(), length, sha256)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AgentClient, "upload", upload)
        yield


@pytest.mark.parametrize("change", ["grow", "shrink"])
def test_the_last_good_store_is_intact_when_the_resized_one_fails(
    site: Site, agent_factory: Callable[..., AgentProcess], change: str
) -> None:
    vms = _add_vms(site, 60 if change == "shrink" else 2)
    assert site.updater.run_once().domains[site.domains["sd"].id].ok
    before = {st.disk_id: (st.mtime_ns, st.meta, st.contents.ovfs if st.contents else None)
              for st in site.stores_on_disk("sd")}  # fmt: skip
    capacities = _capacities(site)
    if change == "grow":
        _add_vms(site, 60, "more")
    else:
        for vm in vms[2:]:
            site.inv.vms.remove(vm.id)

    with _kill_during_upload(site):
        result = site.updater.run_once().domains[site.domains["sd"].id]

    assert result.error is not None
    stores = {st.disk_id: st for st in site.stores_on_disk("sd")}
    good = _good(list(stores.values()))
    assert len(good) == 1, [st.error for st in stores.values()]
    kept = good[0]
    # The last good store was not touched at all: same bytes, same .meta, same capacity.
    assert (kept.mtime_ns, kept.meta, kept.contents.ovfs if kept.contents else None) == before[kept.disk_id]
    (resized,) = [st for st in stores.values() if st.disk_id != kept.disk_id]
    assert int(resized.meta["CAP"]) != capacities[resized.disk_id]
    assert resized.contents is None
    assert site.entities_in("sd") == set(before[kept.disk_id][2] or {})

    # A new agent on the same storage: the next run writes both, the last good one resized last.
    replacement = agent_factory(roots=(site.root,), secret=site.agent.secret)
    site.inv.hosts.update(site.host.id, HostChanges(address=replacement.url))
    assert site.updater.run_once().domains[site.domains["sd"].id].ok
    after = _capacities(site)
    assert len(set(after.values())) == 1
    assert (after[kept.disk_id] > capacities[kept.disk_id]) == (change == "grow")
    assert len(_good(site.stores_on_disk("sd"))) == 2


def test_a_tar_beyond_the_ceiling_is_refused_and_the_stores_stay(
    database: Database, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    config = UpdaterConfig(store_capacity=SMALL, store_capacity_max=2 * SMALL)
    site = build_site(database, agent_factory, tmp_path, config)
    try:
        site.add_domain("sd")
        first = _add_vms(site, 3)
        assert site.updater.run_once().domains[site.domains["sd"].id].ok
        before = {st.disk_id: (st.mtime_ns, st.meta) for st in site.stores_on_disk("sd")}

        _add_vms(site, 120, "more")
        result = site.updater.run_once().domains[site.domains["sd"].id]

        assert result.error is not None
        assert result.failure == "capacity"
        assert f"ceiling of {2 * SMALL} bytes" in result.error
        assert "store_capacity_max" in result.error
        assert {st.disk_id: (st.mtime_ns, st.meta) for st in site.stores_on_disk("sd")} == before
        assert site.entities_in("sd") == {vm.id for vm in first}
        assert "ovf_store_grown" not in _codes(site)
    finally:
        site.updater.domain_step.agents.close()


def test_stores_shrink_back_when_the_domain_shrinks(site: Site) -> None:
    vms = _add_vms(site, 60)
    assert site.updater.run_once().domains[site.domains["sd"].id].ok
    grown = _capacities(site)
    assert min(grown.values()) > SMALL

    for vm in vms[3:]:
        site.inv.vms.remove(vm.id)
    result = site.updater.run_once().domains[site.domains["sd"].id]

    assert result.ok, result.error
    assert set(_capacities(site).values()) == {SMALL}
    assert len(_good(site.stores_on_disk("sd"))) == 2
    assert site.entities_in("sd") == {vm.id for vm in vms[:3]}
    assert _codes(site).count("ovf_store_shrunk") == 2


def _first_to_write(site: Site) -> StoreRecord:
    with site.db.read() as conn:
        return _write_order(records.of_domain(conn, site.domains["sd"].id))[0]


def test_a_resize_the_engine_did_not_record_is_taken_from_storage(site: Site) -> None:
    vms = _add_vms(site, 60)
    assert site.updater.run_once().domains[site.domains["sd"].id].ok
    grown = _capacities(site)
    assert min(grown.values()) > SMALL
    # The agent made the first store to write smaller (as the engine asked when its domain had shrunk),
    # and the engine stopped before it recorded the answer: storage and the inventory now disagree.
    sd, first = site.domains["sd"].id, _first_to_write(site)
    with site.agent.client() as client:
        client.set_description(sd, first.disk_id, first.volume_id, description.before_write(sd, None))
        assert client.resize_volume(sd, first.disk_id, first.volume_id, SMALL).capacity == SMALL

    # Its tar did not shrink: the store is grown back (by what storage says), not written as it is.
    site.inv.vms.update(vms[0].id, VmChanges(description="changed"))
    result = site.updater.run_once().domains[sd]

    assert result.ok, result.error
    assert _capacities(site) == grown  # storage, the .meta and the inventory agree again
    assert len(_good(site.stores_on_disk("sd"))) == 2
    assert site.entities_in("sd") == {vm.id for vm in vms}


def test_a_grow_that_storage_refuses_leaves_every_store_good(site: Site, chattr: str) -> None:
    first_vms = _add_vms(site, 2)
    assert site.updater.run_once().domains[site.domains["sd"].id].ok
    before = {st.disk_id: (st.mtime_ns, st.meta) for st in site.stores_on_disk("sd")}
    # The first store to write cannot be made larger (its file is immutable): the grow fails on storage.
    first = _first_to_write(site)
    volume = site.domain_dir("sd") / "images" / str(first.disk_id) / str(first.volume_id)
    subprocess.run([chattr, "+i", str(volume)], check=True)
    try:
        _add_vms(site, 60, "more")
        result = site.updater.run_once().domains[site.domains["sd"].id]
    finally:
        subprocess.run([chattr, "-i", str(volume)], check=True)

    assert result.error is not None
    assert f"resizing store {first.disk_id}" in result.error
    # Nothing was touched, not even the description of the store that was to grow: both copies stay good
    # (with a single store, that copy is the domain's only one).
    assert {st.disk_id: (st.mtime_ns, st.meta) for st in site.stores_on_disk("sd")} == before
    assert len(_good(site.stores_on_disk("sd"))) == 2
    assert site.entities_in("sd") == {vm.id for vm in first_vms}
    assert "ovf_store_grown" not in _codes(site)

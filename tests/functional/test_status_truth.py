"""The status tells the truth: a change waiting for the updater's run (the debounce), cached but not yet
written, or a deletion not yet processed, leaves its domains "not up to date", with the number of
pending entities and the age of the oldest change; after the run, up to date with nothing pending."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from ovfstore.engine.config import UpdaterConfig
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory import VmChanges
from ovfstore.engine.updater.pool import pool_step
from ovfstore.engine.updater.status import DomainOvfStatus
from ovfstore.model import utcnow
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.site import Site, build_site

LONG = UpdaterConfig(debounce_s=3600, sweep_interval_s=3600, backoff_initial_s=0.1)


@pytest.fixture
def site(database: Database, agent_factory: Callable[..., AgentProcess], tmp_path: Path) -> Iterator[Site]:
    site = build_site(database, agent_factory, tmp_path, LONG)
    site.add_domain("sd1")
    site.add_domain("sd2")
    yield site
    site.updater.stop()
    site.updater.domain_step.agents.close()


def _status(site: Site) -> dict[str, DomainOvfStatus]:
    return {st.name: st for st in site.updater.status()}


def _all_current(site: Site) -> None:
    for st in _status(site).values():
        assert st.up_to_date, st
        assert (st.pending_count, st.pending_age_s, st.oldest_pending_change) == (0, 0.0, None)


def _started(site: Site) -> None:
    """The updater thread running, its first run (at start) done: from now on only the debounce waits."""
    site.updater.start()
    deadline = time.monotonic() + 60
    while site.updater.last_report is None and time.monotonic() < deadline:
        time.sleep(1.1)  # times are kept to the second
    assert site.updater.last_report is not None
    _all_current(site)


def test_a_change_in_the_debounce_is_pending_on_its_domains_until_the_run(site: Site) -> None:
    on1 = site.add_vm("on1", "sd1")
    site.add_vm("on2", "sd2")
    _started(site)

    site.inv.vms.update(on1.id, VmChanges(description="edited"))
    time.sleep(1.1)  # times are kept to the second
    status = _status(site)
    assert not status["sd1"].up_to_date
    assert status["sd1"].pending_count == 1
    age = status["sd1"].pending_age_s
    assert age is not None
    assert age > 0
    assert status["sd2"].up_to_date
    assert status["sd2"].pending_count == 0

    site.updater.update_now(site.domains["sd1"].id, timeout=60)
    _all_current(site)


def test_a_diskless_vm_is_pending_on_every_domain_of_its_data_center(site: Site) -> None:
    diskless = site.add_vm("diskless")
    _started(site)

    site.inv.vms.update(diskless.id, VmChanges(description="edited"))
    status = _status(site)
    assert [(st.up_to_date, st.pending_count) for st in status.values()] == [(False, 1), (False, 1)]
    created = site.add_vm("created")
    assert [st.pending_count for st in _status(site).values()] == [2, 2]
    with site.db.read() as conn:  # a new entity is dated too
        vm = s.vm_static
        assert conn.execute(select(vm.c.changed_at).where(vm.c.id == created.id)).scalar() is not None

    site.updater.update_now(site.domains["sd1"].id, timeout=60)
    _all_current(site)


def test_cached_but_not_written_is_pending_since_the_store_fell_behind(site: Site) -> None:
    vm = site.add_vm("vm", "sd1")
    site.add_vm("other", "sd1")
    site.updater.run_once()
    _all_current(site)
    time.sleep(1.1)  # a second later: times are kept to the second

    site.inv.vms.update(vm.id, VmChanges(description="edited"))
    pool_step(site.db, site.updater.render, utcnow())  # in the cache, the stores not rewritten yet
    time.sleep(1.1)  # times are kept to the second
    sd1 = _status(site)["sd1"]
    assert not sd1.up_to_date
    assert sd1.pending_count == 1  # only the changed VM, not the other one the store already holds
    assert sd1.oldest_pending_change is not None
    assert sd1.oldest_pending_change <= min(st.outdated_since or utcnow() for st in sd1.stores)
    assert sd1.pending_age_s is not None
    assert sd1.pending_age_s > 0

    site.updater.run_once()
    _all_current(site)


def test_a_deletion_is_pending_where_the_entity_was_stored(site: Site) -> None:
    gone = site.add_vm("gone", "sd2")
    site.updater.run_once()

    site.inv.vms.remove(gone.id)
    time.sleep(1.1)  # times are kept to the second
    status = _status(site)
    assert (status["sd1"].up_to_date, status["sd1"].pending_count) == (True, 0)
    assert (status["sd2"].up_to_date, status["sd2"].pending_count) == (False, 1)
    age = status["sd2"].pending_age_s
    assert age is not None
    assert age > 0

    site.updater.run_once()
    _all_current(site)

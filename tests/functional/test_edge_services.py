"""What the API asks the engine's services instead of agents and tables: the domains a path holds that
the engine does not know, and how fresh each domain's OVF stores are."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ovfstore.engine.db.database import Database
from ovfstore.engine.domains import DomainCommandFailed, DomainService
from ovfstore.engine.updater.status import domains_status
from ovfstore.model import StorageDomain
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.site import Site, build_site


@pytest.fixture
def site(database: Database, agent_factory: Callable[..., AgentProcess], tmp_path: Path) -> Iterator[Site]:
    site = build_site(database, agent_factory, tmp_path)
    yield site
    site.updater.domain_step.agents.close()


def _service(site: Site) -> DomainService:
    return DomainService(site.inv, site.updater.domain_step.agents, site.updater)


def test_unknown_at_finds_only_domains_the_engine_does_not_know(site: Site) -> None:
    service = _service(site)
    known = service.create(StorageDomain(name="known", path=str(site.root)), site.host)
    assert service.unknown_at(site.host, str(site.root)) == []
    service.remove(known.id)  # forgotten by the engine, still on storage
    by_parent = service.unknown_at(site.host, str(site.root))
    assert [d.id for d in by_parent] == [known.id]
    assert [d.id for d in service.unknown_at(site.host, str(site.root / str(known.id)) + "/")] == [known.id]
    assert service.unknown_at(site.host, str(site.root / "elsewhere")) == []


def test_unknown_at_says_which_host_could_not_list(site: Site) -> None:
    site.agent.kill(signal.SIGKILL)
    with pytest.raises(DomainCommandFailed, match="cannot list the domains through host host1"):
        _service(site).unknown_at(site.host, str(site.root))


def test_updater_status_is_the_stores_freshness(site: Site) -> None:
    first = site.add_domain("sd1")
    site.add_domain("sd2")
    site.add_vm("vm", "sd1")
    # Each reads the clock (to the second) once: a second may tick between the two readings.
    assert [replace(s, as_of=None) for s in site.updater.status(first.id)] == [
        replace(s, as_of=None) for s in domains_status(site.db, first.id)
    ]
    assert [s.up_to_date for s in site.updater.status(first.id)] == [False]
    site.updater.run_once()
    assert [(s.name, s.up_to_date) for s in site.updater.status()] == [("sd1", True), ("sd2", True)]

"""Issue 13: one VM whose OVF is too large for a store no longer costs the whole domain. Real agent, real
domain directory: the other VMs' stores are written, an event names the VM, and a fresh engine importing
the domain recovers every other VM."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, text, update

from ovfstore.engine import events
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory import VmChanges
from ovfstore.engine.updater.unstorable import unstorable_entities
from ovfstore.model import Vm
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.site import Site, build_site, fresh_engine

HUGE = ">" * 3_000_000  # 12 MB of OVF once escaped


def _force_description(db: Database, vm: Vm) -> None:
    """Into the database directly, as data from before the inventory's limits (PostgreSQL's column is
    widened for it, as a database of another origin might have it; `_narrow` restores it)."""
    vs = s.vm_static
    with db.write() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE vm_static ALTER COLUMN description TYPE text"))
        conn.execute(update(vs).where(vs.c.id == vm.id).values(description=HUGE, db_generation=vs.c.db_generation + 1))


def _narrow(db: Database) -> None:
    with db.write() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                update(s.vm_static).where(func.length(s.vm_static.c.description) > 4000).values(description="")
            )
            conn.execute(text("ALTER TABLE vm_static ALTER COLUMN description TYPE varchar(4000)"))


def _protect(site: Site) -> dict[str, Vm]:
    site.add_domain("sd1")
    vms = {name: site.add_vm(name, "sd1") for name in ("a", "b", "c")}
    for disk in site.inv.disks.list():
        site.materialize(disk.id)
    report = site.updater.run_once()
    assert all(r.ok for r in report.domains.values()), report.domains
    return vms


def test_one_unstorable_vm_leaves_the_others_recoverable(
    database: Database, empty_db_url: str, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    site = build_site(database, agent_factory, tmp_path)
    try:
        vms = _protect(site)
        [before] = site.updater.status(site.domains["sd1"].id)
        assert before.up_to_date, before
        vms["new"] = site.add_vm("new", "sd1")  # never stored: its first OVF is already too large
        _force_description(database, vms["b"])
        _force_description(database, vms["new"])
        site.inv.vms.update(vms["c"].id, VmChanges(comment="still written"))
        report = site.updater.run_once()
        sd1 = site.domains["sd1"].id
        assert report.domains[sd1].ok, report.domains[sd1]
        assert set(report.pool.unstorable) == {vms["b"].id, vms["new"].id}
        with database.read() as conn:
            left_out = {e.name: e for e in unstorable_entities(conn, sd1)}
        assert set(left_out) == {"b", "new"}
        assert left_out["new"].stored_generation is None
        assert left_out["b"].stored_generation is not None  # the stores keep its previous OVF
        [status] = site.updater.status(sd1)
        assert not status.up_to_date, "a domain with an entity left out is not protected"
        assert {u.name for u in status.unstorable} == {"b", "new"}
        assert status.pending_age_s is not None
        assert status.pending_age_s >= 0
        logged = [e for e in events.recent(database) if e.code == "ovf_too_large"]
        assert {e.domain_id for e in logged} == {sd1}
        assert {str(vms["b"].id) in e.message or str(vms["new"].id) in e.message for e in logged} == {True}
        stored = site.entities_in("sd1")
        assert stored == {vms["a"].id, vms["b"].id, vms["c"].id}
        directory = site.domain_dir("sd1")
        site.updater.domain_step.agents.close()
    finally:
        _narrow(database)
    database.dispose()  # the engine and its database are gone; only the domain remains

    fresh = fresh_engine(empty_db_url, site.agent)
    try:
        domain = fresh.import_and_attach(directory, "sd1")
        found = {e.name: e for e in fresh.recovery.unregistered_entities(domain.id)}
        assert set(found) == {"a", "b", "c"}
        assert all(not e.errors for e in found.values())
    finally:
        fresh.close()

"""The leadership lease (engine/leadership.py) on a real database: one leader at a time, a term that grows
with each, a leader that stops leading before its lease can be taken, a clean stop that hands over at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ovfstore.engine.db.database import Database
from ovfstore.engine.leadership import Leadership, current
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.site import build_site

LEASE = 2.0


def test_one_leader_a_growing_term_and_a_step_down_before_the_lease_is_taken(database: Database) -> None:
    if database.is_sqlite:  # one engine: it takes the lease at once, whatever the row says
        first, second = Leadership(database, "a", LEASE, single=True), Leadership(database, "b", LEASE, single=True)
        first._attempt()
        second._attempt()
        assert (first.term(), second.term()) == (1, 2)
        return
    first, second = Leadership(database, "a", LEASE), Leadership(database, "b", LEASE)
    started = time.monotonic()  # before "a" sends its request: its lease counts from then at the latest
    first._attempt()  # takes the lease
    second._attempt()  # finds it fresh
    assert (first.term(), second.term()) == (1, None)
    leader = current(database)
    assert leader is not None
    assert (leader.engine, leader.term, leader.alive) == ("a", 1, True)
    # "a" is paused: no renewal. It stops leading on its own clock before the database lets "b" in. (Each
    # check is read after "b"'s attempt: a loaded machine may make that attempt late, never unsafe.)
    while second.term() is None:
        second._attempt()
        if second.term() is not None:
            assert first.term() is None, "b took the lease while a still believed it led"
        time.sleep(0.02)
    assert first.term() is None
    assert time.monotonic() - started >= LEASE  # the database's lease ran out first
    assert time.monotonic() - started <= LEASE + 5  # and "b", looking again, took it soon after
    assert second.term() == 2
    first._attempt()  # "a" resumes: the lease is b's
    assert first.term() is None
    assert current(database).engine == "b"  # type: ignore[union-attr]


def test_a_clean_stop_hands_the_lease_over_at_once(database: Database) -> None:
    if database.is_sqlite:
        return  # one engine: nothing to hand over to
    first, second = Leadership(database, "a", 30.0), Leadership(database, "b", 30.0)
    first.start()
    second.start()
    try:
        assert (first.term(), second.term()) == (1, None)
        renewed = current(database)
        first.stop()
        deadline = time.monotonic() + 10  # the follower looks every second
        while second.term() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.term() == 2
        leader = current(database)
        assert leader is not None
        assert renewed is not None
        assert (leader.engine, leader.alive) == ("b", True)
        assert leader.since is not None
        assert leader.since >= renewed.expires_at - __import__("datetime").timedelta(seconds=30)
    finally:
        second.stop()


def test_a_step_down_hands_the_lease_over_at_once(database: Database) -> None:
    """A leader that steps down (a fenced write whose refusal names no term) does not keep the others
    waiting for its lease to run out."""
    if database.is_sqlite:
        return  # one engine: nothing to hand over to
    first, second = Leadership(database, "a", 30.0), Leadership(database, "b", 30.0)
    first._attempt()
    assert first.term() == 1
    first.step_down("an agent refused a write of this term")
    assert first.term() is None
    second._attempt()
    assert second.term() == 2


def test_a_database_behind_the_storage_catches_up_with_its_term(database: Database) -> None:
    """A database restored from an old backup hands out terms the domains have seen already: the first
    refusal names the domain's term, the database's is raised to it, and the next leader's passes."""
    engine = Leadership(database, "a", 30.0, single=database.is_sqlite)
    engine._attempt()
    assert engine.term() == 1
    engine.step_down("storage domain X has been written under leadership term 7", storage_term=7)
    assert engine.term() is None
    engine._attempt()
    assert engine.term() == 8


def test_each_domain_is_written_under_the_term_the_engine_leads_under_then(
    database: Database, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    """The updater reads the term for each domain it writes, also when it runs on the caller's thread (no
    updater thread: `update_now`), and a term taken again during a run is the one its writes carry."""
    site = build_site(database, agent_factory, tmp_path)
    try:
        leadership = Leadership(database, "a", 30.0, single=database.is_sqlite)
        site.updater.lead_with(leadership)
        leadership._attempt()
        first = site.add_domain("sd1")
        site.add_vm("vm", "sd1")
        term_file = site.root / str(first.id) / "dom_md" / "ovfstore_term"
        assert site.updater.update_now(first.id).written
        assert term_file.read_text() == "1\n"
        leadership.step_down("test: the lease was lost")  # and handed over: taken again at once
        leadership._attempt()
        assert leadership.term() == 2
        assert site.updater.update_now(first.id).written
        assert term_file.read_text() == "2\n"
    finally:
        site.updater.domain_step.agents.close()

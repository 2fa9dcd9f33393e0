"""The leadership lease (engine/leadership.py) on a real database: one leader at a time, a term that grows
with each, a leader that stops leading before its lease can be taken, a clean stop that hands over at once."""

from __future__ import annotations

import time

from ovfstore.engine.db.database import Database
from ovfstore.engine.leadership import Leadership, current

LEASE = 2.0


def test_one_leader_a_growing_term_and_a_step_down_before_the_lease_is_taken(database: Database) -> None:
    if database.is_sqlite:  # one engine: it takes the lease at once, whatever the row says
        first, second = Leadership(database, "a", LEASE, single=True), Leadership(database, "b", LEASE, single=True)
        first._attempt()
        second._attempt()
        assert (first.term(), second.term()) == (1, 2)
        return
    first, second = Leadership(database, "a", LEASE), Leadership(database, "b", LEASE)
    first._attempt()  # takes the lease
    second._attempt()  # finds it fresh
    assert (first.term(), second.term()) == (1, None)
    leader = current(database)
    assert leader is not None
    assert (leader.engine, leader.term, leader.alive) == ("a", 1, True)
    # "a" is paused: no renewal. It stops leading on its own clock before the database lets "b" in.
    started = time.monotonic()
    while first.term() is not None:
        second._attempt()
        assert second.term() is None, "b took the lease while a still believed it led"
        time.sleep(0.02)
    stepped_down = time.monotonic() - started
    assert LEASE * 0.8 <= stepped_down <= LEASE
    while second.term() is None:
        second._attempt()
        time.sleep(0.02)
    assert time.monotonic() - started <= LEASE + 0.5
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
        deadline = time.monotonic() + 3  # the follower looks every second
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

"""Several engine processes on one real PostgreSQL database with one real agent (docs/OPERATIONS.md,
"Several engines"): the leader writes what any engine's API changed, a killed leader is replaced within
its lease and the domain never lacks a complete store, a paused leader that resumes is fenced by the
agent, and SQLite refuses a second engine. The helpers are the failover campaign's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ovfstore.engine.db import schema as s
from tests.campaigns import engine_failover
from tests.campaigns.crash_stores import PASSWORD, EngineProcess, database, free_port
from tests.campaigns.engine_failover import (
    Cluster,
    Watch,
    build,
    checker,
    cluster,
    converged,
    edit,
    stores_of,
    wait_for,
)
from tests.conftest import PG_URL

LEASE_S = 3.0
#: Bytes a second the proxy lets through to the agent while a test wants an upload caught midway.
SLOW = 30_000


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    request.getfixturevalue("pg_session_url")  # skips, or fails under CI=true, without a server
    with database("postgresql", PG_URL, tmp_path) as url:
        yield url


def _status(engine: EngineProcess) -> dict[str, object]:
    env = dict(os.environ, OVFSTORE_URL=engine.url, OVFSTORE_PASSWORD=PASSWORD)
    done = subprocess.run(
        [sys.executable, "-m", "ovfstore.cli.main", "status", "--json"], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def _metric(engine: EngineProcess, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{engine.port}/metrics", timeout=10).text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name)]
    return sum(values)


def _writing(site: Cluster) -> bool:
    """A store's volume is marked ILLEGAL: its upload is under way."""
    return any(st.legality == "ILLEGAL" for st in stores_of(site.domain_dir))


def _watch(site: Cluster) -> tuple[Watch, threading.Event, threading.Thread]:
    watch, stop = Watch(), threading.Event()
    thread = threading.Thread(target=checker, args=(site, watch, stop), daemon=True)
    thread.start()
    return watch, stop, thread


def test_changes_through_any_engine_are_written_by_the_leader(tmp_path: Path, pg_url: str) -> None:
    with cluster(tmp_path, pg_url, 2, LEASE_S, debounce_s=1.0) as site:
        a, b = site.engines
        wait_for(lambda: site.leader() is not None and site.leader().alive, 10, "a leader")  # type: ignore[union-attr]
        leader = site.leader()
        assert leader is not None
        assert leader.engine == a.name  # started first
        build(site, 3, via=b)
        wait_for(lambda: converged(site), 30, "the first write of the stores")
        edit(b, site.vm_ids[1], "changed-through-b")
        # Well before the sweep (20 s): B's NOTIFY woke the leader (its debounce is 1 s; the rest is
        # slack for a loaded machine).
        took = wait_for(lambda: converged(site), 12.0, "the change made through B on storage")
        assert took < 12.0
        status = _status(b)
        assert status["leader"] == {
            "engine": a.name, "term": leader.term, "since": leader.since.isoformat() if leader.since else None,
            "served_by": b.name,
        }  # fmt: skip
        assert (_metric(a, "ovfstore_leader "), _metric(b, "ovfstore_leader ")) == (1.0, 0.0)
        assert _metric(a, "ovfstore_leader_term ") == leader.term
        assert _metric(a, "ovfstore_domain_updates_total") > 0
        assert _metric(b, "ovfstore_domain_updates_total") == 0  # B never wrote a store


def test_a_killed_leader_is_replaced_within_its_lease_and_a_complete_store_remains(tmp_path: Path, pg_url: str) -> None:
    with cluster(tmp_path, pg_url, 3, LEASE_S, debounce_s=0.5) as site:
        build(site, 40, via=site.engines[0])
        wait_for(lambda: converged(site), 60, "the first write of the stores")
        watch, stop, thread = _watch(site)
        site.proxy.rate = SLOW
        edit(site.engines[1], site.vm_ids[0], "written-by-the-next-leader")
        wait_for(lambda: _writing(site), 20, "the leader's upload under way")
        old = site.leader()
        assert old is not None
        site.engine(old.engine).kill()
        took = wait_for(
            lambda: (new := site.leader()) is not None and new.alive and new.term > old.term, LEASE_S + 5,
            "another engine leading",
        )  # fmt: skip
        assert took <= LEASE_S + 5  # the lease, a follower's next look (1 s), slack for a loaded machine
        site.proxy.rate = None
        wait_for(lambda: converged(site), 30, "the new leader finishing the update")
        stop.set()
        thread.join(5)
        assert watch.stores_lost == []
        new = site.leader()
        assert new is not None
        assert new.engine != old.engine


def test_a_paused_leader_that_resumes_is_fenced_and_no_store_goes_back(tmp_path: Path, pg_url: str) -> None:
    # Whole writes: the leader is paused in the middle of a long upload (an appended change is a few KiB).
    with cluster(tmp_path, pg_url, 2, LEASE_S, debounce_s=0.5, incremental=False) as site:
        build(site, 40, via=site.engines[0])
        wait_for(lambda: converged(site), 60, "the first write of the stores")
        watch, stop, thread = _watch(site)
        site.proxy.rate = SLOW
        edit(site.engines[1], site.vm_ids[0], "after-the-pause")
        wait_for(lambda: _writing(site), 20, "the leader's upload under way")
        old = site.leader()
        assert old is not None
        paused = site.engine(old.engine)
        assert paused.process is not None
        paused.process.send_signal(signal.SIGSTOP)
        try:
            wait_for(
                lambda: (new := site.leader()) is not None and new.alive and new.term > old.term, LEASE_S + 3,
                "another engine leading",
            )  # fmt: skip
            new = site.leader()
            assert new is not None
            term_file = site.domain_dir / "dom_md" / "ovfstore_term"
            # The new leader's first write raises the domain's term (the volume the paused one holds is busy).
            wait_for(lambda: term_file.exists() and term_file.read_text() == f"{new.term}\n", 20, "the new term")
            site.proxy.rate = None
        finally:
            paused.process.send_signal(signal.SIGCONT)
        wait_for(lambda: _events(site, "ovf_update_fenced"), 30, "the resumed engine's write refused")
        wait_for(lambda: converged(site), 30, "the new leader writing the stores")
        stop.set()
        thread.join(5)
        assert watch.stores_lost == []
        [fenced] = _events(site, "ovf_update_fenced")
        assert "stale_term" in fenced or "no longer the leader" in fenced
        leader = site.leader()
        assert leader is not None
        assert leader.engine == new.engine


def _events(site: Cluster, code: str) -> list[str]:
    with site.db.read() as conn:
        return [r.message for r in conn.execute(select(s.events.c.message).where(s.events.c.code == code))]


def test_a_second_engine_on_one_sqlite_database_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x" * 32)
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    first = EngineProcess(url, tmp_path, secret, free_port(), "first")
    first.start()
    try:
        command = [
            sys.executable, "-m", "ovfstore.cli.main", "engine", "serve", "--db-url", url, "--port", str(free_port()),
            "--agent-secret-file", str(secret), "--name", "second",
        ]  # fmt: skip
        env = dict(os.environ, OVFSTORE_ADMIN_PASSWORD=PASSWORD)
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
        assert done.returncode == 1
        assert "engine first" in done.stderr
        assert "one engine per SQLite database" in done.stderr
        assert first.process is not None
        assert first.process.poll() is None  # the first one runs on
    finally:
        first.stop()
        first.log.close()
    # Once the first has stopped, an engine starts on the file again.
    again = EngineProcess(url, tmp_path, secret, free_port(), "again")
    again.start()
    again.stop()
    again.log.close()


def test_a_short_failover_campaign_loses_nothing(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code = engine_failover.main(["--rounds", "3", "--interval", "3", "--vms", "5", "--seed", "17", "--pg-url", PG_URL])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "stores lost 0, changes lost 0" in out
    assert time.monotonic() - started < 180

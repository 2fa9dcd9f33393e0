"""Fencing of store writes by leadership term (storage/fencing.py): the agent refuses a write whose term
is lower than the highest the domain has accepted. Real agent processes, real file and block domains."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ovfstore.agent import errors
from ovfstore.agent.client import AgentClient
from ovfstore.agent.process import LocalAgent
from ovfstore.storage.domain import FileDomain
from ovfstore.storage.errors import StaleTerm
from tests.fixtures.lvm import LvmLab
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.test_block_agent import _create, _vg_tags, client_of, lab, start  # noqa: F401

MiB = 1 << 20


def _store(client: AgentClient, sd: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    img, vol = uuid.uuid4(), uuid.uuid4()
    client.create_volume(sd, img, vol, 4 * MiB, disk_type="OVFS", description="OVF_STORE")
    return img, vol


def test_a_file_domain_refuses_a_lower_term_across_agent_restarts(
    agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    agent = agent_factory(roots=(root,))
    sd = uuid.uuid4()
    with agent.client() as plain:
        plain.create_domain(sd, "fenced", parent=str(root))
        img, vol = _store(plain, sd)
        other = _store(plain, sd)
        plain.upload(sd, img, vol, [b"unfenced"], 8)  # no term: accepted, nothing recorded
        assert not (root / str(sd) / "dom_md" / "ovfstore_term").exists()
        leader5 = plain.with_term(5)
        leader5.upload(sd, img, vol, [b"term 5"], 6)
        assert (root / str(sd) / "dom_md" / "ovfstore_term").read_text() == "5\n"
        stale = plain.with_term(4)
        with pytest.raises(errors.StaleTerm) as refused:
            stale.upload(sd, img, vol, [b"term 4"], 6)
        assert (refused.value.status, refused.value.code) == (409, "stale_term")
        assert "term 5" in refused.value.message
        assert "no longer the leader" in refused.value.message
        for call in (
            lambda: stale.set_description(sd, img, vol, "OVF_STORE"),
            lambda: stale.create_volume(sd, uuid.uuid4(), uuid.uuid4(), MiB, disk_type="OVFS"),
            lambda: stale.copy(sd, *other, img, vol, 6, "0" * 64),
        ):
            with pytest.raises(errors.StaleTerm):
                call()
        # The refused write never touched the volume: still the LEGAL bytes of term 5.
        assert plain.volume_info(sd, img, vol).legality == "LEGAL"
        with plain.download(sd, img, vol, length=6) as data:
            assert b"".join(data) == b"term 5"
    agent.local.stop()
    again = agent_factory(roots=(root,))
    with again.client() as plain:
        with pytest.raises(errors.StaleTerm):
            plain.with_term(3).upload(sd, img, vol, [b"term 3"], 6)
        plain.with_term(7).upload(sd, img, vol, [b"term 7"], 6)
        plain.upload(sd, img, vol, [b"no term"], 7)  # still unfenced, and the term stays 7
    assert (root / str(sd) / "dom_md" / "ovfstore_term").read_text() == "7\n"


def test_a_write_in_flight_when_a_newer_term_arrives_is_refused_and_left_illegal(
    agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    agent = agent_factory()
    sd = uuid.uuid4()
    with agent.client() as plain:
        plain.create_domain(sd, "in flight")
        first, other = _store(plain, sd), _store(plain, sd)
        plain.with_term(1).upload(sd, *first, [b"a" * MiB], MiB)
        started, go_on = threading.Event(), threading.Event()
        outcome: list[BaseException | None] = []

        def slow() -> Iterator[bytes]:
            yield b"b" * (MiB // 2)
            started.set()
            go_on.wait(30)
            yield b"b" * (MiB // 2)

        def old_leader() -> None:
            try:
                plain.with_term(1).upload(sd, *first, slow(), MiB)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        writer = threading.Thread(target=old_leader)
        writer.start()
        assert started.wait(30)
        deadline = time.monotonic() + 30  # the agent took the write under term 1: the volume is ILLEGAL
        while plain.volume_info(sd, *first).legality != "ILLEGAL":
            assert time.monotonic() < deadline, "the agent did not start the old leader's write"
            time.sleep(0.02)
        plain.with_term(2).set_description(sd, *other, "OVF_STORE")  # a new leader raises the term
        go_on.set()
        writer.join(30)
        assert len(outcome) == 1
        assert isinstance(outcome[0], errors.StaleTerm), outcome
        assert plain.volume_info(sd, *first).legality == "ILLEGAL"
        plain.with_term(2).upload(sd, *first, [b"c" * MiB], MiB)
        assert plain.volume_info(sd, *first).legality == "LEGAL"


def test_the_check_and_raise_is_atomic_between_writers(tmp_path: Path) -> None:
    """Many writers (threads, each its own open file and flock, as processes would) fence at random terms:
    the terms accepted, in the order they were accepted, never go down, and the highest is recorded."""
    root = tmp_path / "root"
    root.mkdir()
    domain = FileDomain.create((str(root),), str(root), str(uuid.uuid4()), "atomic")
    accepted: list[int] = []
    lock = threading.Lock()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(30):
            term = rng.randint(1, 200)
            try:
                with domain.term_fenced(term), lock:
                    accepted.append(term)
            except StaleTerm:
                pass

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert accepted
    assert accepted == sorted(accepted)
    assert (Path(domain.path) / "dom_md" / "ovfstore_term").read_text() == f"{accepted[-1]}\n"


def test_a_block_domain_keeps_its_term_in_a_vg_tag(lab: LvmLab, start: Callable[[], LocalAgent]) -> None:  # noqa: F811
    agent = start()
    with client_of(agent) as plain:
        _create(plain, lab)
        img, vol = _store(plain, uuid.UUID(lab.vg))
        sd = uuid.UUID(lab.vg)
        plain.with_term(4).upload(sd, img, vol, [b"term 4"], 6)
        assert {t for t in _vg_tags(lab) if t.startswith("OVFSTORE_TERM_")} == {"OVFSTORE_TERM_4"}
        plain.with_term(9).set_description(sd, img, vol, "OVF_STORE")
        assert {t for t in _vg_tags(lab) if t.startswith("OVFSTORE_TERM_")} == {"OVFSTORE_TERM_9"}
        with pytest.raises(errors.StaleTerm):
            plain.with_term(4).upload(sd, img, vol, [b"stale!"], 6)
    agent.stop()
    with client_of(start()) as plain:
        with pytest.raises(errors.StaleTerm):
            plain.with_term(8).set_description(sd, img, vol, "OVF_STORE")
        plain.upload(sd, img, vol, [b"plain"], 5)
        with plain.download(sd, img, vol, length=5) as data:
            assert b"".join(data) == b"plain"

"""The domain step's pure parts: the tar spool, how agent errors become failover or failure, and the
one rule telling an OVF store volume."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from ovfstore.agent.client import VolumeInfo
from ovfstore.agent.errors import AgentUnavailable, Conflict
from ovfstore.engine.updater.contents import TarSpool
from ovfstore.engine.updater.failures import AgentRefused, HostLost, StepFailed, agent_errors
from ovfstore.store import selection
from ovfstore.store.tarstream import EntityRef, StoreBuildError, StoreTar


def _tar(documents: dict[UUID, bytes]) -> StoreTar:
    refs = [EntityRef(i, len(d)) for i, d in sorted(documents.items())]
    return StoreTar(
        domain_id=UUID(int=1), generation=1, writer="test", created=datetime(2026, 1, 1, tzinfo=UTC), entities=refs,
        unregistered=[], vm_status={}, fetch=lambda ids: [(i, documents[i]) for i in ids],
    )  # fmt: skip


def test_the_spool_holds_the_tar_with_its_length_and_digest() -> None:
    documents = {uuid4(): bytes([i]) * (100_000 + i) for i in range(60)}  # several read chunks
    streamed = b"".join(_tar(documents).chunks())
    with TarSpool(_tar(documents)) as spool:
        assert spool.length == len(streamed) == spool.tar.length
        assert spool.sha256 == hashlib.sha256(streamed).hexdigest()
        assert b"".join(spool.chunks()) == streamed
        assert b"".join(spool.chunks()) == streamed  # read again from the start for the next store


def test_a_tar_that_cannot_be_built_leaves_no_spool() -> None:
    documents = {uuid4(): b"x" * 10}
    tar = _tar(documents)
    documents[next(iter(documents))] = b"y" * 11  # the document changed after the tar was planned
    with pytest.raises(StoreBuildError, match="changed size"):
        TarSpool(tar)


def test_an_agent_that_does_not_answer_loses_the_host() -> None:
    with pytest.raises(HostLost, match="reset") as caught, agent_errors("writing store 1 failed"):
        raise AgentUnavailable("connection reset")
    assert not isinstance(caught.value, StepFailed)


def test_an_agent_error_fails_the_domain_with_the_context() -> None:
    with pytest.raises(AgentRefused) as caught, agent_errors("writing store 1 failed"):
        raise Conflict("volume locked", "volume_busy", 409)
    assert str(caught.value) == "writing store 1 failed: volume locked"
    assert caught.value.detail == "volume locked"
    assert isinstance(caught.value, StepFailed)


def test_other_errors_pass_through() -> None:
    with pytest.raises(KeyError), agent_errors("anything"):
        raise KeyError("bug")


def _volume(disk_type: str, description: str) -> VolumeInfo:
    volume_id: UUID = uuid4()
    return VolumeInfo(
        image=uuid4(), volume=volume_id, capacity=1, format="RAW", type="SPARSE", disk_type=disk_type,
        description=description, parent=None, legality="LEGAL", generation=0, voltype="LEAF", apparent_size=1,
        actual_size=1, meta={},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("disk_type", "description", "expected"),
    [
        ("OVFS", "", True),
        ("2", "", True),  # engines before 4.2
        ("DATA", '{"DiskAlias":"OVF_STORE","DiskDescription":"OVF_STORE"}', True),
        ("DATA", '{"DiskAlias":"boot","DiskDescription":""}', False),
    ],
)
def test_the_agent_client_and_the_store_layer_tell_stores_alike(
    disk_type: str, description: str, expected: bool
) -> None:
    assert selection.is_store(disk_type, description) is expected
    assert _volume(disk_type, description).is_ovf_store is expected

"""The domain step's pure parts: the document spool, how agent errors become failover or failure, and the
one rule telling an OVF store volume."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from ovfstore.agent.client import VolumeInfo
from ovfstore.agent.errors import AgentUnavailable, Conflict
from ovfstore.engine.updater.contents import DocumentSpool
from ovfstore.engine.updater.failures import AgentRefused, HostLost, StepFailed, agent_errors
from ovfstore.store import selection


def test_the_spool_gives_documents_back_in_the_order_asked() -> None:
    spool = DocumentSpool()
    docs = {uuid4(): bytes([i]) * (100 + i) for i in range(5)}
    for entity_id, doc in docs.items():
        spool.add(entity_id, doc)
    asked = list(reversed(docs))
    assert spool.fetch(asked) == [(i, docs[i]) for i in asked]
    spool.close()


def test_documents_added_after_a_fetch_do_not_overwrite_the_others() -> None:
    spool = DocumentSpool()
    a, b, c = uuid4(), uuid4(), uuid4()
    spool.add(a, b"a" * 700)
    spool.add(b, b"b" * 300)
    assert spool.fetch([a]) == [(a, b"a" * 700)]  # leaves the file positioned inside b
    spool.add(c, b"c" * 200)
    assert spool.fetch([b, c, a]) == [(b, b"b" * 300), (c, b"c" * 200), (a, b"a" * 700)]
    spool.close()


def test_an_id_never_spooled_reads_empty() -> None:
    spool = DocumentSpool()
    spool.add(uuid4(), b"x" * 10)
    missing = uuid4()
    assert spool.fetch([missing]) == [(missing, b"")]
    spool.close()


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

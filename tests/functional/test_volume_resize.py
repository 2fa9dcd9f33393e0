"""`POST .../volumes/{vol}/resize` on file domains, through a real agent process; every check reads the
volume file and its `.meta` from disk."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovfstore.agent import errors
from ovfstore.agent.client import AgentClient
from ovfstore.storage.metadata import parse_volume_meta
from ovfstore.store import description
from tests.functional.agent_fixtures import AgentProcess

MIB = 1 << 20


@pytest.fixture
def client(agent: AgentProcess) -> Iterator[AgentClient]:
    with agent.client() as client:
        yield client


class Volume:
    def __init__(self, agent: AgentProcess, sd: uuid.UUID, img: uuid.UUID, vol: uuid.UUID) -> None:
        self.ids = (sd, img, vol)
        self.path = agent.roots[0] / str(sd) / "images" / str(img) / str(vol)

    @property
    def meta(self) -> dict[str, str]:
        return parse_volume_meta(Path(f"{self.path}.meta").read_bytes()).to_dict()

    @property
    def raw_meta(self) -> str:
        return Path(f"{self.path}.meta").read_text()


def _volume(
    client: AgentClient, agent: AgentProcess, capacity: int, *, store: bool = True, type: str = "SPARSE"
) -> Volume:
    sd, img, vol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    client.create_domain(sd, "d")
    client.create_volume(
        sd, img, vol, capacity, type=type, disk_type="OVFS" if store else "DATA",
        description=description.never_written() if store else "",
    )  # fmt: skip
    return Volume(agent, sd, img, vol)


def test_a_store_grows_sparse_and_keeps_its_bytes(client: AgentClient, agent: AgentProcess) -> None:
    volume = _volume(client, agent, MIB)
    data = os.urandom(MIB // 2)
    client.upload(*volume.ids, [data], len(data))
    with pytest.raises(errors.CapacityExceeded):
        client.upload(*volume.ids, [b"\0" * 2 * MIB], 2 * MIB)

    info = client.resize_volume(*volume.ids, 64 * MIB)

    assert info.capacity == 64 * MIB
    assert (volume.meta["CAP"], volume.meta["LEGALITY"]) == (str(64 * MIB), "LEGAL")
    st = os.stat(volume.path)
    assert st.st_size == 64 * MIB
    assert st.st_blocks * 512 < 8 * MIB, "a sparse volume grows by its length only"
    assert volume.path.read_bytes()[: len(data)] == data
    bigger = os.urandom(3 * MIB)
    assert client.upload(*volume.ids, [bigger], len(bigger)).size == len(bigger)
    # Asking for the capacity it has changes nothing.
    assert client.resize_volume(*volume.ids, 64 * MIB).capacity == 64 * MIB


def test_a_preallocated_volume_grows_allocated(client: AgentClient, agent: AgentProcess) -> None:
    volume = _volume(client, agent, MIB, store=False, type="PREALLOCATED")
    client.resize_volume(*volume.ids, 8 * MIB)
    st = os.stat(volume.path)
    assert st.st_size == 8 * MIB
    assert st.st_blocks * 512 >= 8 * MIB
    assert volume.meta["CAP"] == str(8 * MIB)


def test_a_store_shrinks_and_is_illegal_until_written(client: AgentClient, agent: AgentProcess) -> None:
    volume = _volume(client, agent, 8 * MIB)
    client.upload(*volume.ids, [b"x" * MIB], MIB)
    assert volume.meta["LEGALITY"] == "LEGAL"

    info = client.resize_volume(*volume.ids, 2 * MIB)

    assert (info.capacity, info.legality) == (2 * MIB, "ILLEGAL")
    assert (volume.meta["CAP"], volume.meta["LEGALITY"]) == (str(2 * MIB), "ILLEGAL")
    assert os.stat(volume.path).st_size == 2 * MIB
    client.upload(*volume.ids, [b"y" * MIB], MIB)
    assert volume.meta["LEGALITY"] == "LEGAL"


def test_old_format_size_follows_the_capacity(client: AgentClient, agent: AgentProcess) -> None:
    volume = _volume(client, agent, MIB)
    meta_path = Path(f"{volume.path}.meta")
    meta_path.write_text(volume.raw_meta.replace("EOF\n", f"SIZE={MIB // 512}\nEOF\n"))
    client.resize_volume(*volume.ids, 4 * MIB)
    assert (volume.meta["CAP"], volume.meta["SIZE"]) == (str(4 * MIB), str(4 * MIB // 512))


def test_refusals_leave_the_volume_as_it_was(client: AgentClient, agent: AgentProcess) -> None:
    data_disk = _volume(client, agent, 4 * MIB, store=False)
    before = (data_disk.raw_meta, os.stat(data_disk.path).st_size)
    with pytest.raises(errors.InvalidRequest, match="only grows") as refused:
        client.resize_volume(*data_disk.ids, MIB)
    assert refused.value.code == "invalid_argument"
    for capacity in (0, 1000, -512):
        with pytest.raises(errors.InvalidRequest, match="multiple of 512"):
            client.resize_volume(*data_disk.ids, capacity)
    assert (data_disk.raw_meta, os.stat(data_disk.path).st_size) == before

    sd, img = data_disk.ids[0], uuid.uuid4()
    cow = uuid.uuid4()
    client.create_volume(sd, img, cow, 4 * MIB, format="COW")
    with pytest.raises(errors.InvalidRequest, match="COW"):
        client.resize_volume(sd, img, cow, 8 * MIB)
    with pytest.raises(errors.ResourceNotFound):
        client.resize_volume(sd, img, uuid.uuid4(), 8 * MIB)


def test_a_grow_never_cuts_a_file_longer_than_asked(client: AgentClient, agent: AgentProcess) -> None:
    # A disk's file longer than its CAP (a grow that stopped before its .meta said so): a later, smaller
    # grow sets CAP and leaves the file's length and its bytes as they are.
    volume = _volume(client, agent, MIB, store=False)
    tail = os.urandom(4096)
    with open(volume.path, "r+b") as f:
        f.truncate(8 * MIB)
        f.seek(8 * MIB - len(tail))
        f.write(tail)

    assert client.resize_volume(*volume.ids, 4 * MIB).capacity == 4 * MIB

    assert volume.meta["CAP"] == str(4 * MIB)
    assert os.stat(volume.path).st_size == 8 * MIB
    assert volume.path.read_bytes()[-len(tail) :] == tail

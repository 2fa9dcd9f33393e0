"""Block domains through a real agent process on real LVM on loop devices (no device-mapper here, so
every byte goes through the segment map). What the agent did is checked with the LVM tools' own reports
and with the bytes on the PV images, never only with the agent's view of them."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ovfstore.agent import errors
from ovfstore.agent.client import AgentClient
from ovfstore.agent.process import LocalAgent
from ovfstore.storage.block import domain as domain_module
from ovfstore.storage.block import slots, tags
from ovfstore.storage.block.domain import BlockDomain
from ovfstore.storage.block.lvmcmd import Lvm
from ovfstore.storage.block.view import BlockView
from ovfstore.storage.errors import AlreadyExists, StorageError
from tests.fixtures.lvm import MIB, LvmLab, lvm_lab_at

EXTENT = 128 * MIB
PV_MIB = 8192  # sparse: only what is written takes space


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LvmLab]:
    (tmp_path / "lvm").mkdir()
    with lvm_lab_at(tmp_path / "lvm") as lab:
        lab.vg = str(uuid.uuid4())  # the domain the tests create: removed with the lab
        lab.attach(2, PV_MIB)
        yield lab


@pytest.fixture
def start(lab: LvmLab, tmp_path: Path) -> Iterator[Callable[[], LocalAgent]]:
    started: list[LocalAgent] = []

    def factory() -> LocalAgent:
        agent = LocalAgent(
            [tmp_path / "root"], tmp_path / "agents", "block-secret", extra_args=["--buffer-size", str(1 << 20)],
            devices=["/dev/loop*"], lvm_system_dir=str(lab.root / "etc"),
        )  # fmt: skip
        started.append(agent)
        return agent

    yield factory
    for agent in started:
        agent.stop()


def client_of(agent: LocalAgent) -> AgentClient:
    return AgentClient(agent.url, agent.secret, timeout=60)


def _pv_bytes(lab: LvmLab, lv: str, length: int) -> bytes:
    """The first `length` bytes of LV `lv`, read from the PV images where `lvs --segments` says it lies."""
    rows = lab.report("lvs", "seg", "--segments", "-o", "seg_start_pe,seg_size_pe,seg_pe_ranges", f"{lab.vg}/{lv}")
    out = b""
    for row in sorted(rows, key=lambda r: int(r["seg_start_pe"])):
        device, _, ranges = row["seg_pe_ranges"].partition(":")
        (pv,) = lab.report("pvs", "pv", "-o", "pv_name,pe_start", device)
        with lab.images[lab.loops.index(device)].open("rb") as image:
            image.seek(int(pv["pe_start"]) + int(ranges.split("-")[0]) * EXTENT)
            out += image.read(int(row["seg_size_pe"]) * EXTENT)
    return out[:length]


def _vg_tags(lab: LvmLab) -> set[str]:
    (row,) = lab.report("vgs", "vg", "-o", "vg_tags", lab.vg)
    return set(row["vg_tags"].split(",")) - {""}


def _lv_tags(lab: LvmLab, vol: uuid.UUID) -> set[str]:
    (row,) = lab.report("lvs", "lv", "-o", "lv_tags", f"{lab.vg}/{vol}")
    return set(row["lv_tags"].split(",")) - {""}


def _create(client: AgentClient, lab: LvmLab) -> None:
    devices = {d.path: d for d in client.list_devices()}
    assert set(lab.loops) <= set(devices)
    first, second = devices[lab.loops[0]], devices[lab.loops[1]]
    assert (first.id, first.pv_uuid, first.domain_id) == (os.path.basename(lab.loops[0]), None, None)
    assert first.size == PV_MIB * MIB
    # One device by LUN id, the other by path: both are how the engine may name them.
    info = client.create_domain(lab.vg, "block, one", storage_type="ISCSI", devices=[first.id, second.path])
    assert (str(info.id), info.storage, info.path, info.storage_type) == (lab.vg, "block", f"/dev/{lab.vg}", "ISCSI")
    assert [d.path for d in info.devices] == lab.loops


def test_a_block_domain_lives_through_the_agent(lab: LvmLab, start: Callable[[], LocalAgent]) -> None:
    agent = start()
    with client_of(agent) as client:
        _create(client, lab)
        sd = uuid.UUID(lab.vg)
        # What LVM says was made: the VG named by the domain, 128 MiB extents, the tags, the special LVs.
        (vg,) = lab.report("vgs", "vg", "-o", "vg_uuid,vg_extent_size,vg_tags", lab.vg)
        assert int(vg["vg_extent_size"]) == EXTENT
        assert tags.DOMAIN_READY in _vg_tags(lab)
        assert tags.DOMAIN_UNREADY not in _vg_tags(lab)
        lvs = {row["lv_name"]: row for row in lab.report("lvs", "lv", "-o", "lv_name,lv_size,lv_tags", lab.vg)}
        assert {name: int(row["lv_size"]) // MIB for name, row in lvs.items()} == {
            "metadata": 128, "ids": 128, "inbox": 128, "outbox": 128, "leases": 2048, "xleases": 1024, "master": 1024,
        }  # fmt: skip
        pvs = lab.report("pvs", "pv", "-o", "pv_name,pv_uuid,pv_pe_count", *lab.loops)
        meta = tags.domain_metadata(_vg_tags(lab)).values  # decoded from the tools' report
        assert meta["VGUUID"] == vg["vg_uuid"]
        assert meta["PV0"] == f"pv:{os.path.basename(lab.loops[0])},uuid:{pvs[0]['pv_uuid']},pestart:0," + (
            f"pecount:{pvs[0]['pv_pe_count']},mapoffset:0"
        )
        assert meta["PV1"].endswith(f"mapoffset:{pvs[0]['pv_pe_count']}")
        assert meta["DESCRIPTION"] == "block, one"
        info = client.domain_info(sd)
        assert info.vg_uuid == vg["vg_uuid"]
        assert [d.pv_uuid for d in info.devices] == [pv["pv_uuid"] for pv in pvs]
        assert sd in [d.id for d in client.list_domains()]
        devices = {d.path: d for d in client.list_devices()}
        assert [(devices[p].domain_id, devices[p].vg_uuid) for p in lab.loops] == [(sd, vg["vg_uuid"])] * 2
        assert client.domain_at(f"/dev/{lab.vg}").id == sd
        assert client.legacy_ovfs(sd) == {}

        # An OVF store: a 128 MiB RAW preallocated volume, written, read, copied.
        img, vol, img2, vol2 = (uuid.uuid4() for _ in range(4))
        store = client.create_volume(sd, img, vol, 128 * MIB, type="PREALLOCATED", disk_type="OVFS",
                                     description="OVF_STORE")  # fmt: skip
        assert (store.type, store.format, store.legality) == ("PREALLOCATED", "RAW", "LEGAL")
        assert store.apparent_size == EXTENT
        assert _lv_tags(lab, vol) == {f"IU_{img}", "PU_00000000-0000-0000-0000-000000000000", "MD_1"}
        data = os.urandom(10 * MIB + 777)
        written = client.upload(sd, img, vol, [data[i : i + MIB] for i in range(0, len(data), MIB)], len(data))
        assert written.sha256 == hashlib.sha256(data).hexdigest()
        assert _pv_bytes(lab, str(vol), len(data)) == data
        with client.download(sd, img, vol, 0, len(data)) as stream:
            assert b"".join(stream) == data
        with client.download(sd, img, vol, 5 * MIB + 3, 1000) as stream:
            assert b"".join(stream) == data[5 * MIB + 3 : 5 * MIB + 1003]
        client.create_volume(sd, img2, vol2, 100 * MIB, disk_type="OVFS", description="OVF_STORE")
        client.copy(sd, img2, vol2, img, vol, len(data), written.sha256)
        assert _pv_bytes(lab, str(vol2), len(data)) == data
        assert client.volume_info(sd, img2, vol2).legality == "LEGAL"
        described = client.set_description(sd, img, vol, '{"Updated":true,"Size":10486537}')
        assert described.description == '{"Updated":true,"Size":10486537}'
        assert {v.volume for v in client.list_volumes(sd)} == {vol, vol2}
        assert set(client.list_images(sd)) == {img, img2}

        # Attach and detach rewrite the MDT_ tags, which the tools see.
        pool = uuid.uuid4()
        assert client.attach(sd, pool, master=True).pool_id == pool
        after = tags.domain_metadata(_vg_tags(lab))
        assert (after.pool_id, after.role) == (str(pool), "Master")
        with pytest.raises(errors.Conflict):
            client.attach(sd, uuid.uuid4(), master=False)
        assert client.detach(sd, pool).pool_id is None
        assert tags.domain_metadata(_vg_tags(lab)).pool_id == ""

        # Deleting an image removes its LV and clears its slot.
        client.delete_image(sd, img2)
        assert str(vol2) not in {row["lv_name"] for row in lab.report("lvs", "lv", "-o", "lv_name", lab.vg)}
        assert set(client.list_images(sd)) == {img}
        view = BlockView(lab.loops)
        with view._metadata_lv() as backend:
            assert slots.is_cleared(view._read_at(backend, slots.slot_offset(2, 5), 512))
        with pytest.raises(errors.ResourceNotFound):
            client.volume_info(sd, img2, vol2)
        # A new volume takes the freed slot.
        img3, vol3 = uuid.uuid4(), uuid.uuid4()
        client.create_volume(sd, img3, vol3, MIB)
        assert "MD_2" in _lv_tags(lab, vol3)


def test_refusals(lab: LvmLab, start: Callable[[], LocalAgent]) -> None:
    with client_of(start()) as client:
        with pytest.raises(errors.InvalidRequest, match="not among the agent's devices"):
            client.create_domain(lab.vg, "x", storage_type="ISCSI", devices=["/dev/sda-nothing"])
        with pytest.raises(errors.InvalidRequest, match="block type"):
            client.create_domain(lab.vg, "x", storage_type="NFS", devices=[lab.loops[0]])
        _create(client, lab)
        sd = uuid.UUID(lab.vg)
        with pytest.raises(errors.Conflict, match="already an LVM physical volume"):
            client.create_domain(uuid.uuid4(), "x", storage_type="ISCSI", devices=[lab.loops[1]])
        with pytest.raises(errors.InvalidRequest, match="RAW volumes only"):
            client.create_volume(sd, uuid.uuid4(), uuid.uuid4(), MIB, format="COW")
        img, vol = uuid.uuid4(), uuid.uuid4()
        client.create_volume(sd, img, vol, MIB)
        with pytest.raises(errors.Conflict, match="already exists"):
            client.create_volume(sd, img, vol, MIB)
        with pytest.raises(errors.CapacityExceeded):
            client.upload(sd, img, vol, [b"x" * (EXTENT + 1)], EXTENT + 1)


def test_sigkill_mid_upload_leaves_the_volume_illegal_and_its_metadata_whole(
    lab: LvmLab, start: Callable[[], LocalAgent]
) -> None:
    agent = start()
    with client_of(agent) as client:
        _create(client, lab)
        sd = uuid.UUID(lab.vg)
        img, vol, other_img, other_vol = (uuid.uuid4() for _ in range(4))
        client.create_volume(sd, other_img, other_vol, 8 * MIB, disk_type="OVFS", description="OVF_STORE")
        client.create_volume(sd, img, vol, 8 * MIB, disk_type="OVFS", description="OVF_STORE")
        other = os.urandom(3 * MIB)
        client.upload(sd, other_img, other_vol, [other], len(other))
        first = os.urandom(2 * MIB)
        client.upload(sd, img, vol, [first], len(first))
        client.set_description(sd, img, vol, '{"Updated":true,"Size":2097152}')
        before = client.volume_info(sd, img, vol)
        other_before = client.volume_info(sd, other_img, other_vol)
        domain_before = client.domain_info(sd)

        release = threading.Event()
        failures: list[BaseException] = []

        def source() -> Iterator[bytes]:
            yield b"n" * (2 * MIB)
            release.wait(60)
            yield b"\0" * (2 * MIB)

        def run() -> None:
            with client_of(agent) as uploader:
                try:
                    uploader.upload(sd, img, vol, source(), 4 * MIB)
                except BaseException as e:
                    failures.append(e)

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 30
        while client.volume_info(sd, img, vol).legality != "ILLEGAL":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        agent.process.send_signal(signal.SIGKILL)
        agent.process.wait(30)
        release.set()
        thread.join(60)
    assert len(failures) == 1
    assert isinstance(failures[0], errors.AgentUnavailable)

    # Without any agent: the slot on the PV says ILLEGAL, everything else of it as it was.
    view = BlockView(lab.loops)
    after = view.volume_info(str(img), str(vol))
    assert after.meta.legality == "ILLEGAL"
    assert after.meta.to_dict() == dict(before.meta, LEGALITY="ILLEGAL")
    with start() as restarted, client_of(restarted) as client:
        assert client.volume_info(sd, img, vol).legality == "ILLEGAL"
        assert client.volume_info(sd, other_img, other_vol) == other_before
        assert client.domain_info(sd) == domain_before
        with client.download(sd, other_img, other_vol, 0, len(other)) as stream:
            assert b"".join(stream) == other
        # The dead agent's lock died with it: the volume is written again at once.
        data = os.urandom(MIB)
        client.upload(sd, img, vol, [data], len(data))
        assert client.volume_info(sd, img, vol).legality == "LEGAL"


def test_concurrent_creations_take_distinct_slots(lab: LvmLab, start: Callable[[], LocalAgent]) -> None:
    """Two agents on one host (as after a restart with a request still running) and several requests each:
    the VG lock gives every volume a slot of its own."""
    first, second = start(), start()
    with client_of(first) as client:
        _create(client, lab)
    sd = uuid.UUID(lab.vg)
    made: list[uuid.UUID] = []
    failures: list[BaseException] = []

    def create(agent: LocalAgent) -> None:
        with client_of(agent) as client:
            for _ in range(3):
                img, vol = uuid.uuid4(), uuid.uuid4()
                try:
                    client.create_volume(sd, img, vol, MIB, description="parallel")
                    made.append(vol)
                except BaseException as e:
                    failures.append(e)

    threads = [threading.Thread(target=create, args=(agent,)) for agent in (first, second, first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    assert len(made) == 12
    slots_taken = sorted(int(t[3:]) for vol in made for t in _lv_tags(lab, vol) if t.startswith("MD_"))
    assert slots_taken == list(range(1, 13))
    view = BlockView(lab.loops)
    volumes, problems = view.scan_volumes()
    assert problems == []
    assert {uuid.UUID(v.volume) for v in volumes} == set(made)


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def test_a_device_holding_a_filesystem_is_in_use_and_never_wiped(lab: LvmLab, start: Callable[[], LocalAgent]) -> None:
    lab.attach(1, 64)
    fs = lab.loops[2]
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "precious", fs], check=True, capture_output=True)
    before = _sha256(lab.images[2])
    with client_of(start()) as client:
        devices = {d.path: d for d in client.list_devices()}
        assert devices[fs].pv_uuid is None
        assert devices[fs].signature is not None
        assert "ext2/ext3/ext4" in devices[fs].signature
        assert devices[lab.loops[0]].signature is None  # an empty device holds nothing
        with pytest.raises(errors.Conflict, match=r"holds data.*ext4.*wipefs"):
            client.create_domain(lab.vg, "x", storage_type="ISCSI", devices=[fs])
        with pytest.raises(errors.Conflict, match="holds data"):  # nor along with free devices
            client.create_domain(lab.vg, "x", storage_type="ISCSI", devices=[lab.loops[0], fs])
    assert _sha256(lab.images[2]) == before
    found = subprocess.run(["blkid", "-p", "-o", "value", "-s", "LABEL", fs], capture_output=True, text=True)
    assert found.stdout.strip() == "precious"
    assert lab.report("pvs", "pv", "-o", "pv_name") == []  # nothing left behind either


def test_pvcreate_refuses_a_signature_that_appeared_after_the_probe(lab: LvmLab) -> None:
    """The last line of defence: pvcreate runs without --yes, so it refuses to wipe what it finds."""
    subprocess.run(["mkfs.ext4", "-q", "-F", lab.loops[0]], check=True, capture_output=True)
    lvm = Lvm(lab.loops, str(lab.root / "etc"))
    with pytest.raises(AlreadyExists, match="holds data"):
        domain_module._pvcreate(lvm, ["pvcreate", "--metadatasize", "128m", lab.loops[0]], lab.loops[0])
    kind = subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", lab.loops[0]], capture_output=True, text=True)
    assert kind.stdout.strip() == "ext4"


def test_a_failed_creation_leaves_no_pv_and_a_retry_succeeds(lab: LvmLab) -> None:
    system_dir = str(lab.root / "etc")
    held = os.open(lab.loops[1], os.O_RDONLY | os.O_EXCL)  # in use: its pvcreate fails after the first one's
    try:
        with pytest.raises(StorageError, match="pvcreate"):
            BlockDomain.create(lab.loops, lab.vg, "x", lvm_system_dir=system_dir)
    finally:
        os.close(held)
    assert lab.report("pvs", "pv", "-o", "pv_name") == []
    domain = BlockDomain.create(lab.loops[:2], lab.vg, "again", lvm_system_dir=system_dir)
    assert domain.metadata().description == "again"


def test_a_creation_that_died_before_its_commit_point_is_redone(lab: LvmLab) -> None:
    system_dir = str(lab.root / "etc")
    # What a creation killed right after its vgcreate leaves: PVs and a VG tagged UNREADY.
    lab.lvm("pvcreate", "--metadatasize", "128m", lab.loops[0])
    lab.lvm("pvcreate", "--metadatasize", "128m", "--metadataignore", "y", lab.loops[1])
    lab.lvm("vgcreate", "-s", "128m", "--addtag", tags.DOMAIN_UNREADY, lab.vg, *lab.loops)
    with pytest.raises(AlreadyExists, match="already an LVM physical volume"):  # another id: not its leftover
        BlockDomain.create(lab.loops, str(uuid.uuid4()), "x", lvm_system_dir=system_dir)
    with pytest.raises(AlreadyExists, match="already an LVM physical volume"):  # part of its devices: neither
        BlockDomain.create(lab.loops[:1], lab.vg, "x", lvm_system_dir=system_dir)
    domain = BlockDomain.create(lab.loops, lab.vg, "redone", lvm_system_dir=system_dir)
    assert domain.metadata().description == "redone"
    assert tags.DOMAIN_READY in _vg_tags(lab)
    assert tags.DOMAIN_UNREADY not in _vg_tags(lab)
    assert len(lab.report("pvs", "pv", "-o", "pv_name", *lab.loops)) == 2


def test_deleting_an_image_leaves_a_slot_another_lv_claims(lab: LvmLab, caplog: pytest.LogCaptureFixture) -> None:
    domain = BlockDomain.create(lab.loops, lab.vg, "shared", lvm_system_dir=str(lab.root / "etc"))
    kept_img, kept_vol, gone_img, gone_vol = (str(uuid.uuid4()) for _ in range(4))
    kept = domain.create_volume(kept_img, kept_vol, MIB, description="kept")
    domain.create_volume(gone_img, gone_vol, MIB, description="gone")
    # Damage: the second LV's MD_ tag names the first one's slot.
    lab.lvm("lvchange", "--deltag", "MD_2", "--addtag", "MD_1", f"{lab.vg}/{gone_vol}")
    domain.refresh()
    domain.delete_image(gone_img)
    assert gone_vol not in {row["lv_name"] for row in lab.report("lvs", "lv", "-o", "lv_name", lab.vg)}
    view = BlockView(lab.loops)
    assert view.volume_info(kept_img, kept_vol).meta == kept.meta  # its slot was not cleared
    assert "slot 1" in caplog.text
    assert "claimed by another LV" in caplog.text


def _slot_meta(lab: LvmLab, slot: int) -> dict[str, str]:
    """The volume metadata in slot `slot`, read from the PV images where LVM says the metadata LV lies."""
    offset = slots.slot_offset(slot, 5)
    return slots.parse_slot(_pv_bytes(lab, "metadata", offset + slots.SLOT_DATA)[offset:]).to_dict()


def _lv_size(lab: LvmLab, vol: uuid.UUID) -> int:
    (row,) = lab.report("lvs", "lv", "-o", "lv_size", f"{lab.vg}/{vol}")
    return int(row["lv_size"])


def test_a_store_lv_is_extended_and_reduced(lab: LvmLab, start: Callable[[], LocalAgent]) -> None:
    with client_of(start()) as client:
        _create(client, lab)
        sd, img, vol = uuid.UUID(lab.vg), uuid.uuid4(), uuid.uuid4()
        client.create_volume(sd, img, vol, MIB, type="PREALLOCATED", disk_type="OVFS", description="OVF_STORE")
        data = os.urandom(MIB)
        client.upload(sd, img, vol, [data], len(data))
        assert _lv_size(lab, vol) == EXTENT

        # Within the LV's extent only the slot changes; past it, lvextend adds an extent.
        assert client.resize_volume(sd, img, vol, 64 * MIB).capacity == 64 * MIB
        assert (_lv_size(lab, vol), _slot_meta(lab, 1)["CAP"]) == (EXTENT, str(64 * MIB))
        info = client.resize_volume(sd, img, vol, EXTENT + MIB)
        assert (info.capacity, info.legality, info.apparent_size) == (EXTENT + MIB, "LEGAL", 2 * EXTENT)
        assert _lv_size(lab, vol) == 2 * EXTENT
        assert (_slot_meta(lab, 1)["CAP"], _slot_meta(lab, 1)["LEGALITY"]) == (str(EXTENT + MIB), "LEGAL")
        assert _pv_bytes(lab, str(vol), len(data)) == data

        # The new extent takes bytes: a write across the old end lands where LVM says the LV lies.
        tail = os.urandom(MIB)
        length = EXTENT + MIB
        chunks = [b"\0" * (8 * MIB)] * (EXTENT // (8 * MIB)) + [tail]
        client.upload(sd, img, vol, chunks, length)
        assert _pv_bytes(lab, str(vol), length)[EXTENT:] == tail

        # Made smaller again: the slot first (ILLEGAL until written), then lvreduce.
        info = client.resize_volume(sd, img, vol, 2 * MIB)
        assert (info.capacity, info.legality) == (2 * MIB, "ILLEGAL")
        assert _lv_size(lab, vol) == EXTENT
        assert (_slot_meta(lab, 1)["CAP"], _slot_meta(lab, 1)["LEGALITY"]) == (str(2 * MIB), "ILLEGAL")

        # More than the VG has free: refused by LVM, nothing changed.
        with pytest.raises(errors.CapacityExceeded, match="no room"):
            client.resize_volume(sd, img, vol, 2 * PV_MIB * MIB)
        assert (_lv_size(lab, vol), _slot_meta(lab, 1)["CAP"]) == (EXTENT, str(2 * MIB))
        # A disk's volume only grows.
        disk_img, disk_vol = uuid.uuid4(), uuid.uuid4()
        client.create_volume(sd, disk_img, disk_vol, 2 * MIB)
        with pytest.raises(errors.InvalidRequest, match="only grows"):
            client.resize_volume(sd, disk_img, disk_vol, MIB)
        # Nor is its LV ever reduced: one longer than the capacity asked (a grow that stopped before its slot
        # said so) keeps its extents when it is grown to less.
        lab.lvm("lvextend", "--yes", "--size", f"{3 * EXTENT}b", f"{lab.vg}/{disk_vol}")
        assert client.resize_volume(sd, disk_img, disk_vol, EXTENT + MIB).capacity == EXTENT + MIB
        assert _lv_size(lab, disk_vol) == 3 * EXTENT

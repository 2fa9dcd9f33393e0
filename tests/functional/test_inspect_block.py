"""`ovfstore inspect DEV...` on block domains made by the real lvm2 tools and written by a real agent process.

The stores are written as the engine's updater writes them (docs/FORMATS.md 2: `Updated:false`, the tar
uploaded or copied by the agent, `Updated:true`), through the agent's HTTP API; inspect then reads the loop
devices, and copies of the image files behind them once the loops are gone, with no LVM tools, and must
agree field by field with what was written: the domain, every store's generation, size, date and
validity, which store is chosen, every entity and its exported OVF. Where the volumes lie is checked with
the tools' own reports, not with the reader's idea of them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner, Result

from ovfstore.agent.client import AgentClient
from ovfstore.agent.process import LocalAgent
from ovfstore.cli.main import cli
from ovfstore.model import VmStatus
from ovfstore.ovf import read_ovf, write_ovf
from ovfstore.storage import metadata as md
from ovfstore.storage.block import tags
from ovfstore.storage.block.view import BlockView
from ovfstore.storage.lvm.ondisk import read_label, read_mda_header
from ovfstore.store import description
from ovfstore.store.tarstream import EntityRef, StoreTar
from tests.fixtures.lvm import MIB, LvmLab, lvm_lab_at
from tests.unit.test_ovf_samples import fixed_sample

SAMPLE_DISK = UUID("00000000-0000-0000-0000-00000000000a")  # the sample VM's image disk, two volumes
SAMPLE_VOLUMES = (UUID("00000000-0000-0000-0000-000000000014"), UUID("00000000-0000-0000-0000-000000000015"))
POOL = UUID("5c80c932-20ef-4c55-9e06-383c6152a0dc")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LvmLab]:
    (tmp_path / "lvm").mkdir()
    with lvm_lab_at(tmp_path / "lvm") as lab:
        lab.vg = str(uuid.uuid4())  # a domain's VG is named by its id
        yield lab


@pytest.fixture
def start(lab: LvmLab, tmp_path: Path) -> Iterator[Callable[[], LocalAgent]]:
    started: list[LocalAgent] = []

    def factory() -> LocalAgent:
        agent = LocalAgent(
            [tmp_path / "root"], tmp_path / "agents", "inspect-secret", extra_args=["--buffer-size", str(1 << 20)],
            devices=list(lab.loops), lvm_system_dir=str(lab.root / "etc"),
        )  # fmt: skip
        started.append(agent)
        return agent

    yield factory
    for agent in started:
        agent.stop()


def client_of(agent: LocalAgent) -> AgentClient:
    return AgentClient(agent.url, agent.secret, timeout=120)


# --- what the engine writes --------------------------------------------------------------------------


def vm_ovfs(count: int, prefix: str, absent_disk: bool = False) -> dict[UUID, bytes]:
    """`count` VMs from the full sample, each its own id and name; their disk is the sample's (created on
    the domain), or with `absent_disk` one that is on no domain."""
    ovfs = {}
    for n in range(count):
        data = fixed_sample("vm")
        entity_id = uuid.uuid4()
        data.entity = dataclasses.replace(data.entity, id=entity_id, name=f"{prefix}-{n}")
        if absent_disk:
            first = data.disks[0]
            data.disks[0] = dataclasses.replace(first, disk=dataclasses.replace(first.disk, id=uuid.uuid4()))
        ovfs[entity_id] = write_ovf(data)
    return ovfs


@dataclasses.dataclass
class Written:
    generation: int
    when: datetime
    size: int
    sha256: str
    ovfs: dict[UUID, bytes]
    vm_status: dict[UUID, int]
    data: bytes  # the tar


def write_store(
    client: AgentClient, sd: UUID, store: tuple[UUID, UUID], generation: int, when: datetime,
    ovfs: Mapping[UUID, bytes], vm_status: Mapping[UUID, int], source: tuple[UUID, UUID, Written] | None = None,
) -> Written:  # fmt: skip
    """One store written as `engine/updater/domain.py` writes it, through the agent's API."""
    img, vol = store
    tar = StoreTar(
        domain_id=sd, generation=generation, writer="engine-test", created=when,
        entities=[EntityRef(i, len(d)) for i, d in ovfs.items()], unregistered=[], vm_status=vm_status,
        fetch=lambda ids: [(i, ovfs[i]) for i in ids],
    )  # fmt: skip
    data = b"".join(tar.chunks())
    assert len(data) == tar.length
    previous = description.parse(client.volume_info(sd, img, vol).description).last_updated_text
    client.set_description(sd, img, vol, description.before_write(sd, previous))
    if source is None:
        written = client.upload(sd, img, vol, [data[i : i + MIB] for i in range(0, len(data), MIB)], len(data))
    else:
        written = client.copy(sd, img, vol, source[0], source[1], tar.length, source[2].sha256)
    assert written.size == tar.length
    client.set_description(sd, img, vol, description.after_write(sd, tar.length, when))
    return Written(generation, when, tar.length, written.sha256, dict(ovfs), dict(vm_status), data)


def new_store(client: AgentClient, sd: UUID, capacity: int) -> tuple[UUID, UUID]:
    img, vol = uuid.uuid4(), uuid.uuid4()
    client.create_volume(
        sd, img, vol, capacity, format="RAW", type="SPARSE", disk_type="OVFS", description=description.never_written()
    )  # fmt: skip
    return img, vol


def sample_disk(client: AgentClient, sd: UUID, size: int) -> None:
    """The sample VM's disk on the domain: its two volume ids, each a RAW volume (block domains hold RAW
    only; `present` asks only that every volume the OVF lists is there)."""
    for volume in SAMPLE_VOLUMES:
        client.create_volume(sd, SAMPLE_DISK, volume, size, format="RAW", type="PREALLOCATED")


# --- inspect ------------------------------------------------------------------------------------------


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["inspect", *args])


def inspect_json(*args: str) -> dict[str, Any]:
    result = run("--json", *args)
    assert result.exit_code == 0, result.output
    value: dict[str, Any] = json.loads(result.stdout)
    return value


def store_json(report: dict[str, Any], store: tuple[UUID, UUID]) -> dict[str, Any]:
    (found,) = [s for s in report["stores"] if s["disk_id"] == str(store[0])]
    assert found["volume_id"] == str(store[1])
    return found


def assert_store(report: dict[str, Any], store: tuple[UUID, UUID], written: Written, chosen: bool) -> None:
    assert store_json(report, store) == {
        "disk_id": str(store[0]),
        "volume_id": str(store[1]),
        "updated": True,
        "size": written.size,
        "last_updated": written.when.isoformat(),
        "generation": written.generation,
        "segments": 1,
        "verified": True,
        "valid": True,
        "chosen": chosen,
        "error": None,
    }


def assert_entities(report: dict[str, Any], written: Written, present: bool) -> None:
    """Every entity of the store, as written: its id, name, status, disks."""
    found = {UUID(e["id"]): e for e in report["entities"]}
    assert set(found) == set(written.ovfs)
    for entity_id, document in written.ovfs.items():
        entity = found[entity_id]
        assert entity["name"] == read_ovf(document).data.entity.name
        assert entity["type"] == "vm"
        assert entity["status"] == VmStatus(written.vm_status.get(entity_id, VmStatus.DOWN)).api_name
        assert entity["errors"] == []
        (disk,) = entity["disks"]
        if present:
            assert disk == {
                "disk_id": str(SAMPLE_DISK), "volume_ids": [str(v) for v in SAMPLE_VOLUMES], "present": True,
            }  # fmt: skip
        else:
            assert disk["present"] is False


def assert_export(directory: Path, written: Written) -> None:
    assert {UUID(name[:-4]): (directory / name).read_bytes() for name in os.listdir(directory)} == written.ovfs


def copy_images(lab: LvmLab, to: Path) -> list[Path]:
    """Copies of the PV images (sparse, as `dd conv=sparse` of a LUN would be), then the loops detached:
    from here on the domain exists only as image files."""
    to.mkdir()
    copies = []
    for image in lab.images:
        copy = to / image.name
        subprocess.run(["cp", "--sparse=always", str(image), str(copy)], check=True)
        copies.append(copy)
    for loop in lab.loops:
        subprocess.run(["losetup", "-d", loop], check=True)
    lab.loops = []  # detached: the lab's teardown must not touch these loop numbers again
    return copies


def pv_uuids(lab: LvmLab) -> dict[str, str]:
    return {row["pv_name"]: row["pv_uuid"] for row in lab.report("pvs", "pv", "-o", "pv_name,pv_uuid", *lab.loops)}


def segments(lab: LvmLab, lv: str) -> list[tuple[int, int, str, int]]:
    """(first LV extent, extents, PV device, first PV extent) of each segment, as the tools report it."""
    rows = lab.report("lvs", "seg", "--segments", "-o", "seg_start_pe,seg_size_pe,seg_pe_ranges", f"{lab.vg}/{lv}")
    found = []
    for row in rows:
        device, _, ranges = row["seg_pe_ranges"].partition(":")
        found.append((int(row["seg_start_pe"]), int(row["seg_size_pe"]), device, int(ranges.split("-")[0])))
    return sorted(found)


def pv_offset(lab: LvmLab, device: str, extent: int, extent_bytes: int) -> int:
    (row,) = lab.report("pvs", "pv", "-o", "pv_name,pe_start", device)
    return int(row["pe_start"]) + extent * extent_bytes


def lv_bytes(lab: LvmLab, lv: str, length: int, extent_bytes: int) -> bytes:
    """The first `length` bytes of LV `lv`, read from the PV images where the tools say it lies."""
    out = b""
    for _, count, device, first in segments(lab, lv):
        with lab.images[lab.loops.index(device)].open("rb") as image:
            image.seek(pv_offset(lab, device, first, extent_bytes))
            out += image.read(count * extent_bytes)
    return out[:length]


# --- a domain the agent created -----------------------------------------------------------------------

AGENT_EXTENT = 128 * MIB


def test_inspect_agrees_with_what_the_agent_wrote_on_loops_and_on_their_images(
    lab: LvmLab, start: Callable[[], LocalAgent], tmp_path: Path
) -> None:
    loops = lab.attach(2, 8192)  # sparse: only what is written takes space
    agent = start()
    sd = UUID(lab.vg)
    with client_of(agent) as client:
        client.create_domain(sd, "inspected", storage_type="ISCSI", devices=loops)
        client.attach(sd, POOL, master=True)
        older = new_store(client, sd, 128 * MIB)  # first: it lies before the others on the PV
        chosen = new_store(client, sd, 128 * MIB)
        sample_disk(client, sd, MIB)
        broken = new_store(client, sd, 128 * MIB)

        first = vm_ovfs(3, "first") | vm_ovfs(1, "elsewhere", absent_disk=True)
        gen1 = write_store(client, sd, chosen, 1, datetime(2024, 1, 1, tzinfo=UTC), first, {})
        gen1 = write_store(client, sd, older, 1, gen1.when, first, {}, source=(*chosen, gen1))
        second = vm_ovfs(5, "second")
        status = {next(iter(second)): VmStatus.UP.value, list(second)[1]: VmStatus.PAUSED.value}
        gen2 = write_store(client, sd, chosen, 2, datetime(2024, 2, 1, tzinfo=UTC), second, status)
        # A third generation whose write stopped after `Updated:false`: never chosen.
        write_store(client, sd, broken, 3, datetime(2024, 3, 1, tzinfo=UTC), vm_ovfs(1, "third"), {})
        client.set_description(sd, *broken, description.before_write(sd, "Fri Mar 01 00:00:00 UTC 2024"))
        info = client.domain_info(sd)
        stored = {s: client.volume_info(sd, *s).description for s in (older, chosen)}
    agent.stop()

    out = tmp_path / "export-loops"
    report = inspect_json(*loops, "--export", str(out))
    assert report["domain"] == {"id": str(sd), "pool_id": str(POOL), "role": "Master", "class": "Data"}
    assert_store(report, chosen, gen2, chosen=True)
    assert_store(report, older, gen1, chosen=False)
    assert "did not finish (Updated is false)" in store_json(report, broken)["error"]
    assert len(report["stores"]) == 3
    for store, text in stored.items():  # the description the agent keeps is the one inspect read
        assert description.parse(text).size == store_json(report, store)["size"]
    assert_entities(report, gen2, present=True)
    assert_export(out, gen2)
    text = run(*loops)
    assert text.exit_code == 0, text.output
    where = ", ".join(f"{loop} (pv{n})" for n, loop in enumerate(loops))
    assert f"VG {sd} ({info.vg_uuid}) on {where}" in text.stdout
    assert f"[chosen] {chosen[0]}/{chosen[1]}: written " in text.stdout
    assert "generation 2" in text.stdout

    # The same domain read from copies of the images, the loop devices gone; then what goes wrong.
    uuids = pv_uuids(lab)
    older_at = segments(lab, str(older[1]))[0]
    chosen_at = segments(lab, str(chosen[1]))[0]
    assert older_at[2] == chosen_at[2] == loops[0]
    assert older_at[3] < chosen_at[3]
    chosen_offset = pv_offset(lab, loops[0], chosen_at[3], AGENT_EXTENT)
    other = _other_vg(lab)
    images = copy_images(lab, tmp_path / "copies")
    copied = [str(p) for p in images[:2]]
    out = tmp_path / "export-images"
    assert inspect_json(*copied, "--export", str(out)) == report
    assert_export(out, gen2)

    # The second PV missing: named by its UUID and the device it was last seen as; its volumes (none
    # here: everything lies on the first PV) unreadable, the rest read.
    result = run("--json", copied[0])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == report
    assert f"error: PV pv1 of VG {sd} (UUID {uuids[loops[1]]}, last seen as {loops[1]}) is not among" in result.stderr
    # The second PV alone: its metadata copies are ignored (oVirt keeps the VG's on the first PV).
    result = run(copied[1])
    assert (result.exit_code, result.stdout) == (1, "")
    assert "no device given holds LVM metadata" in result.stderr
    assert len(result.stderr.splitlines()) == 1

    # A copy cut short inside the chosen store: that store is unreadable, the older one is chosen.
    truncated = tmp_path / "truncated.img"
    subprocess.run(["cp", "--sparse=always", copied[0], str(truncated)], check=True)
    os.truncate(truncated, chosen_offset + MIB)
    result = run("--json", str(truncated), copied[1])
    assert result.exit_code == 0, result.output
    cut = json.loads(result.stdout)
    assert "truncated" in store_json(cut, chosen)["error"]
    assert store_json(cut, chosen)["valid"] is False
    assert_store(cut, older, gen1, chosen=True)
    assert {UUID(e["id"]) for e in cut["entities"]} == set(gen1.ovfs)
    assert f"error: {truncated} (PV pv0) is {chosen_offset + MIB} bytes, but the PV's extents end at byte" in (
        result.stderr
    )
    # Cut inside the LVM metadata itself: nothing to read.
    os.truncate(truncated, 100 * 1024)
    result = run(str(truncated), copied[1])
    assert (result.exit_code, result.stdout) == (1, "")
    assert str(truncated) in result.stderr
    assert len(result.stderr.splitlines()) == 1

    # Devices of two VGs; a VG that is not a storage domain; a file that is no PV.
    result = run(*copied, str(other))
    assert result.exit_code == 1
    assert "the devices hold two volume groups" in result.stderr
    result = run(str(other))
    assert result.exit_code == 1
    assert "no RHAT_storage_domain tag: it is not a storage domain" in result.stderr
    result = run(str(tmp_path / "export-images" / os.listdir(out)[0]))
    assert result.exit_code == 1
    assert "give the devices (or their images) of one block storage domain" in result.stderr


def _other_vg(lab: LvmLab) -> Path:
    """A third loop holding a VG named like a domain but without a domain's tags."""
    loop = lab.attach(1, 16)[-1]
    lab.lvm("pvcreate", loop)
    lab.lvm("vgcreate", "-s", "4m", str(uuid.uuid4()), loop)
    return lab.images[-1]


# --- a domain laid out by the tools: three PVs, a store in three segments, a wrapped metadata ring ----

EXTENT = MIB


def _wrapped(image: Path) -> bool:
    """Whether the newest metadata text runs past the end of the ring and on at its start."""
    fd = os.open(image, os.O_RDONLY)
    try:
        header = read_mda_header(fd, str(image), read_label(fd, str(image)).metadata_areas[0])
    finally:
        os.close(fd)
    return header.text_offset + header.text_size > header.size


def _tools_domain(lab: LvmLab) -> list[str]:
    """A format 5 domain made with the tools alone: 1 MiB extents, small metadata areas (oVirt's layout of
    two copies on the first PV, the others' ignored), only the `metadata` LV of the special ones."""
    loops = lab.attach(3, 64)
    lab.lvm("pvcreate", "--metadatasize", "32k", "--dataalignment", "64k", "--pvmetadatacopies", "2", loops[0])
    lab.lvm("pvcreate", "--metadatasize", "32k", "--dataalignment", "64k", "--metadataignore", "y", *loops[1:])
    lab.lvm("vgcreate", "-s", "1m", lab.vg, *loops)
    lab.lvm("lvcreate", "-an", "-Zn", "-L", "2m", "-n", "metadata", lab.vg, loops[0])
    values = md.new_domain_values(lab.vg, "tools-made", "ISCSI", "Data", "")
    del values["REMOTE_PATH"]
    (vg,) = lab.report("vgs", "vg", "-o", "vg_uuid", lab.vg)
    values["VGUUID"] = vg["vg_uuid"]
    rows = {row["pv_name"]: row for row in lab.report("pvs", "pv", "-o", "pv_name,pv_uuid,pv_pe_count", *loops)}
    offset = 0
    for n, loop in enumerate(loops):
        count = int(rows[loop]["pv_pe_count"])
        values[f"PV{n}"] = f"pv:{os.path.basename(loop)},uuid:{rows[loop]['pv_uuid']},pestart:0,pecount:{count}," + (
            f"mapoffset:{offset}"
        )
        offset += count
    added = [a for t in [*tags.domain_tags(values), tags.DOMAIN_READY] for a in ("--addtag", t)]
    lab.lvm("vgchange", *added, lab.vg)
    return loops


def test_several_pvs_a_store_in_segments_and_a_wrapped_metadata_ring(
    lab: LvmLab, start: Callable[[], LocalAgent], tmp_path: Path
) -> None:
    loops = _tools_domain(lab)
    sd = UUID(lab.vg)
    with client_of(start()) as client:
        sample_disk(client, sd, MIB)
        older = new_store(client, sd, 2 * MIB)
        chosen = new_store(client, sd, 3 * MIB)
        gone = new_store(client, sd, MIB)
        # The chosen store made of three segments on three PVs: cut to one extent, then extended on the
        # other PVs after other LVs took the extents behind it (the agent itself never extends a volume).
        lv = f"{lab.vg}/{chosen[1]}"
        lab.lvm("lvreduce", "-f", "-l", "1", lv)
        lab.lvm("lvextend", "-l", "+1", lv, loops[1])
        lab.lvm("lvextend", "-l", "+1", lv, loops[2])
        where = segments(lab, str(chosen[1]))
        assert [(count, device) for _, count, device, _ in where] == [(1, loops[0]), (1, loops[1]), (1, loops[2])]

        # Stores larger than one extent, so that reading one crosses segments and PVs.
        gen1 = write_store(client, sd, older, 1, datetime(2024, 1, 1, tzinfo=UTC), vm_ovfs(120, "one"), {})
        gen2 = write_store(client, sd, chosen, 2, datetime(2024, 1, 2, tzinfo=UTC), vm_ovfs(250, "two"), {})
        assert gen2.size > 2 * EXTENT
        client.delete_image(sd, gone[0])

        # Many more commits of the VG metadata, until the newest copy runs past the end of its ring.
        rounds = 0
        while not _wrapped(lab.images[0]):
            rounds += 1
            assert rounds < 400, "the metadata text never wrapped around the ring buffer"
            lab.lvm("vgchange", "--addtag", f"round_{rounds}_{'x' * 100}", lab.vg)
            if rounds > 1:
                lab.lvm("vgchange", "--deltag", f"round_{rounds - 1}_{'x' * 100}", lab.vg)
        (vgs,) = lab.report("vgs", "vg", "-o", "vg_seqno", lab.vg)
        assert BlockView(loops).vg.seqno == int(vgs["vg_seqno"]) > 20
    # What the agent wrote is where the tools say the LV lies, across its three segments.
    assert lv_bytes(lab, str(chosen[1]), gen2.size, EXTENT) == gen2.data

    report = inspect_json(*loops)
    assert_store(report, chosen, gen2, chosen=True)
    assert_store(report, older, gen1, chosen=False)
    assert str(gone[0]) not in {s["disk_id"] for s in report["stores"]}  # removed in a later commit
    assert_entities(report, gen2, present=True)

    uuids = pv_uuids(lab)
    images = [str(p) for p in copy_images(lab, tmp_path / "copies")]
    out = tmp_path / "export"
    assert inspect_json(*reversed(images), "--export", str(out)) == report  # any order of the devices
    assert_export(out, gen2)
    # Without the PV holding the store's middle segment: that store cannot be read, and says why.
    result = run("--json", images[0], images[2])
    assert result.exit_code == 0, result.output
    partial = json.loads(result.stdout)
    error = store_json(partial, chosen)["error"]
    assert f"UUID {uuids[loops[1]]}" in error
    assert "not among the devices given" in error
    assert_store(partial, older, gen1, chosen=True)
    assert {UUID(e["id"]) for e in partial["entities"]} == set(gen1.ovfs)
    assert f"last seen as {loops[1]}" in result.stderr

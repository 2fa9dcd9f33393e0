"""`BlockView` and the segment map I/O (`lvio`) on a domain laid out by the real lvm2 tools on loop devices.

The domain is built here with the tools alone (tags, LVs, a volume in two segments on two PVs) and its
slot written straight into the PV image where the tools say the metadata LV lies, so what the view
reads is checked against LVM's own report, never against the view's idea of the format.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ovfstore.storage import metadata as md
from ovfstore.storage.backend import ALIGNMENT, aligned_buffer
from ovfstore.storage.block import slots, tags
from ovfstore.storage.block.lvio import SegmentBackend, segment_map
from ovfstore.storage.block.lvmcmd import Lvm
from ovfstore.storage.block.view import BlockView
from ovfstore.storage.domains import find_domain, scan_all
from ovfstore.storage.errors import (
    DomainNotFound,
    ImageNotFound,
    InvalidArgument,
    InvalidMetadata,
    ToolFailed,
    VolumeNotFound,
)
from ovfstore.storage.volumeio import WrittenData, write_from
from tests.fixtures.lvm import MIB, LvmLab, lvm_lab_at

IMG = "11111111-2222-4333-8444-555555555555"
VOL = "66666666-7777-4888-8999-aaaaaaaaaaaa"
EXTENT = 4 * MIB


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LvmLab]:
    with lvm_lab_at(tmp_path) as lab:
        lab.vg = str(uuid.uuid4())  # a domain's VG is named by its id
        yield lab


def _where(lab: LvmLab, lv: str) -> list[tuple[int, int, str, int]]:
    """(first LV extent, extents, PV path, first PV extent) of each segment, as the tools report it."""
    rows = lab.report("lvs", "seg", "--segments", "-o", "seg_start_pe,seg_size_pe,seg_pe_ranges", f"{lab.vg}/{lv}")
    found = []
    for row in rows:
        device, _, ranges = row["seg_pe_ranges"].partition(":")
        first = int(ranges.split("-")[0])
        found.append((int(row["seg_start_pe"]), int(row["seg_size_pe"]), device, first))
    return found


def _pv_bytes(lab: LvmLab, device: str, offset: int, length: int) -> bytes:
    (row,) = lab.report("pvs", "pv", "-o", "pv_name,pe_start", device)
    image = lab.images[lab.loops.index(device)]
    with image.open("rb") as file:
        file.seek(int(row["pe_start"]) + offset)
        return file.read(length)


def _write_lv_bytes(lab: LvmLab, lv: str, offset: int, data: bytes) -> None:
    """Write `data` at byte `offset` of LV `lv` (inside one segment) straight into the PV image."""
    for start, count, device, first in _where(lab, lv):
        if start * EXTENT <= offset < (start + count) * EXTENT:
            (row,) = lab.report("pvs", "pv", "-o", "pv_name,pe_start", device)
            image = lab.images[lab.loops.index(device)]
            with image.open("r+b") as file:
                file.seek(int(row["pe_start"]) + (first - start) * EXTENT + offset)
                file.write(data)
            return
    raise AssertionError(f"byte {offset} is not in LV {lv}")


def _meta(capacity: int, image: str = IMG, description: str = "") -> md.VolumeMetadata:
    return md.VolumeMetadata(
        capacity=capacity, ctime=1700000000, description=description, disk_type="DATA", domain="",
        format="RAW", generation=0, image=image, legality="LEGAL", parent=md.BLANK_UUID, sequence=0,
        type="PREALLOCATED", voltype="LEAF",
    )  # fmt: skip


def _added(lv_tags: Iterable[str]) -> list[str]:
    return [arg for tag in lv_tags for arg in ("--addtag", tag)]


def _domain(lab: LvmLab, version: str | None = "5") -> list[str]:
    loops = lab.attach(2, 64)
    lab.lvm("pvcreate", *loops)
    lab.lvm("vgcreate", "-s", "4m", lab.vg, *loops)
    values = {"SDUUID": lab.vg, "CLASS": "Data", "DESCRIPTION": "a block, domain", "ROLE": "Regular"}
    if version is not None:
        values["VERSION"] = version
    lab.lvm("vgchange", *_added([*tags.domain_tags(values), tags.DOMAIN_READY]), lab.vg)
    lab.lvm("lvcreate", "-an", "-Zn", "-L", "8m", "-n", "metadata", lab.vg, loops[0])
    lab.lvm("lvcreate", "-an", "-Zn", "-L", "8m", "-n", VOL, lab.vg, loops[0])
    lab.lvm("lvcreate", "-an", "-Zn", "-L", "4m", "-n", "filler", lab.vg, loops[0])
    lab.lvm("lvextend", "-L", "20m", f"{lab.vg}/{VOL}", loops[1])  # a second segment, on the other PV
    lab.lvm(
        "lvchange", *[a for t in tags.volume_tags(IMG, md.BLANK_UUID, 1) for a in ("--addtag", t)], f"{lab.vg}/{VOL}"
    )
    _write_lv_bytes(lab, "metadata", slots.slot_offset(1, 5), slots.format_slot(_meta(20 * MIB), 5))
    return loops


def test_view_reads_what_the_tools_wrote(lab: LvmLab) -> None:
    loops = _domain(lab)
    view = BlockView(loops)
    (vgs,) = lab.report("vgs", "vg", "-o", "vg_name,vg_uuid", lab.vg)
    assert (view.sd_id, view.vg_uuid, view.path) == (lab.vg, vgs["vg_uuid"], f"/dev/{lab.vg}")
    meta = view.metadata()
    assert (meta.sd_id, meta.description, meta.version) == (lab.vg, "a block, domain", 5)
    assert view.images() == [IMG]
    volumes, problems = view.scan_volumes()
    assert problems == []
    assert [(v.image, v.volume, v.meta, v.apparent_size) for v in volumes] == [(IMG, VOL, _meta(20 * MIB), 20 * MIB)]
    assert view.volume_info(IMG, VOL) == volumes[0]
    assert view.scan_legacy() == ({}, [])
    with pytest.raises(VolumeNotFound):
        view.volume_info(IMG, str(uuid.uuid4()))
    with pytest.raises(VolumeNotFound):
        view.volume_info(str(uuid.uuid4()), VOL)
    with pytest.raises(ImageNotFound):
        view.scan_volumes(str(uuid.uuid4()))
    with pytest.raises(InvalidArgument):
        view.open_volume(IMG, VOL, writable=True)


def test_segment_map_writes_land_where_the_tools_say(lab: LvmLab) -> None:
    loops = _domain(lab)
    view = BlockView(loops)
    where = _where(lab, VOL)
    assert len(where) == 2
    assert where[0][2] != where[1][2]  # two segments on two PVs
    assert [(p.lv_offset // EXTENT, p.length // EXTENT) for p in segment_map(view.vg, VOL)] == [
        (start, count) for start, count, _, _ in where
    ]
    data = os.urandom(20 * MIB)
    buf = aligned_buffer(20 * MIB)
    try:
        buf[:] = data
        with SegmentBackend(view.vg, VOL, view.pv_paths, writable=True) as backend:
            assert backend.size() == 20 * MIB
            backend.seek(0)
            backend.write(memoryview(buf)[: 12 * MIB])
            backend.write(memoryview(buf)[12 * MIB : 20 * MIB - 100])  # the unaligned tail, across the segment end
            backend.write(memoryview(buf)[20 * MIB - 100 :])
            backend.flush()
            with pytest.raises(InvalidArgument):
                backend.write(memoryview(buf)[:1])  # past the end of the LV
    finally:
        buf.close()
    for start, count, device, first in where:
        on_pv = _pv_bytes(lab, device, first * EXTENT, count * EXTENT)
        assert on_pv == data[start * EXTENT : (start + count) * EXTENT]
    with view.open_volume(IMG, VOL) as reader:
        out = aligned_buffer(4 * MIB)
        try:
            reader.seek(6 * MIB)
            assert reader.readinto(memoryview(out)) == 4 * MIB  # across the segment boundary at 8 MiB
            assert out[:] == data[6 * MIB : 10 * MIB]
            reader.seek(18 * MIB)
            assert reader.readinto(memoryview(out)) == 2 * MIB  # stops at the end of the LV
        finally:
            out.close()


class _RecordingSegments(SegmentBackend):
    """The real segment map I/O, noting of each write whether it was whole aligned blocks sent direct."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.writes: list[tuple[int, int, bool]] = []
        super().__init__(*args, **kwargs)

    def write(self, buf: memoryview) -> int:
        aligned = self._pos % ALIGNMENT == 0 and len(buf) % ALIGNMENT == 0
        self.writes.append((self._pos, len(buf), self.direct and aligned))
        return super().write(buf)


def test_a_range_across_segments_is_written_direct_and_alone(lab: LvmLab) -> None:
    # An appended store segment on an LV in two segments on two PVs: the range crosses the boundary at
    # 8 MiB, starts and ends inside a block, and every write is still whole blocks, direct.
    loops = _domain(lab)
    view = BlockView(loops)
    base = os.urandom(20 * MIB)
    data = os.urandom(3 * MIB + 1000)
    offset = 6 * MIB - 1536
    bufs = [aligned_buffer(MIB) for _ in range(3)]
    with ThreadPoolExecutor(1) as hasher, ThreadPoolExecutor(1) as writer:
        with SegmentBackend(view.vg, VOL, view.pv_paths, writable=True) as backend:
            write_from(io.BytesIO(base).readinto, backend, len(base), 20 * MIB, bufs, hasher, writer)
        with _RecordingSegments(view.vg, VOL, view.pv_paths, writable=True) as recording:
            result = write_from(
                io.BytesIO(data).readinto, recording, len(data), 20 * MIB, bufs, hasher, writer, offset=offset
            )
    assert result == WrittenData(len(data), hashlib.sha256(data).hexdigest())
    expected = base[:offset] + data + base[offset + len(data) :]
    for start, count, device, first in _where(lab, VOL):
        assert (
            _pv_bytes(lab, device, first * EXTENT, count * EXTENT)
            == expected[start * EXTENT : (start + count) * EXTENT]
        )
    assert recording.direct
    assert all(direct for _, _, direct in recording.writes), recording.writes
    assert recording.writes[0][0] == offset - offset % ALIGNMENT


def test_hostile_lvs_are_problems_and_hide_no_volume(lab: LvmLab) -> None:
    loops = _domain(lab)
    other_img = str(uuid.uuid4())

    def lv(name: str, *lv_tags: str) -> None:
        lab.lvm(
            "lvcreate", "-an", "-Zn", "-L", "4m", "-n", name, *[a for t in lv_tags for a in ("--addtag", t)], lab.vg
        )

    beyond, bad_tag, no_slot, cleared = (str(uuid.uuid4()) for _ in range(4))
    shared1, shared2 = str(uuid.uuid4()), str(uuid.uuid4())
    lv(beyond, "IU_" + other_img, "PU_" + md.BLANK_UUID, "MD_100000")
    lv(bad_tag, "IU_" + other_img, "MD_abc")
    lv(no_slot, "IU_" + other_img, "PU_" + md.BLANK_UUID)
    lv(cleared, "IU_" + other_img, "PU_" + md.BLANK_UUID, "MD_2")
    lv(shared1, "IU_" + other_img, "PU_" + md.BLANK_UUID, "MD_3")
    lv(shared2, "IU_" + other_img, "PU_" + md.BLANK_UUID, "MD_3")
    lv(str(uuid.uuid4()), "IU_" + other_img, "MD_4", tags.INITIALIZING)  # half created: ignored
    lv(str(uuid.uuid4()), tags.removing_tag(other_img), "MD_5")  # being deleted: ignored
    _write_lv_bytes(lab, "metadata", slots.slot_offset(3, 5), slots.format_slot(_meta(4 * MIB, other_img), 5))
    view = BlockView(loops)
    assert view.images() == sorted([IMG, other_img])
    volumes, problems = view.scan_volumes()
    assert [v.volume for v in volumes] == [VOL]
    assert {p.volume for p in problems} == {beyond, bad_tag, no_slot, cleared, shared1, shared2}
    assert all(isinstance(p.error, InvalidMetadata) and not p.error.transient for p in problems)
    messages = {p.volume: str(p.error) for p in problems}
    assert "past the end of the metadata LV" in messages[beyond]
    assert "cleared" in messages[cleared]
    assert "shares metadata slot 3" in messages[shared1]
    with pytest.raises(InvalidMetadata, match="shares"):
        view.volume_info(other_img, shared2)


def test_a_domain_whose_creation_did_not_finish_is_refused(lab: LvmLab) -> None:
    loops = lab.attach(1, 64)
    lab.lvm("pvcreate", *loops)
    lab.lvm("vgcreate", "-s", "4m", "--addtag", tags.DOMAIN_UNREADY, lab.vg, *loops)
    with pytest.raises(InvalidMetadata, match="did not finish"):
        BlockView(loops).metadata()


def test_domains_are_found_on_the_devices_and_a_damaged_one_is_a_problem(lab: LvmLab) -> None:
    loops = _domain(lab)
    found, problems = scan_all((), loops)
    assert [(d.storage, d.sd_id, meta.description) for d, meta in found] == [("block", lab.vg, "a block, domain")]
    assert problems == []
    assert find_domain((), ["/dev/nothing*", *loops], lab.vg).path == f"/dev/{lab.vg}"
    with pytest.raises(DomainNotFound, match="nor on its devices"):
        find_domain((), loops, str(uuid.uuid4()))
    lab.lvm("vgchange", "--addtag", "MDT_ROLE=Master", lab.vg)  # a second ROLE: damage, whatever the checksum
    found, problems = scan_all((), loops)
    assert found == []
    assert [(p.path, type(p.error)) for p in problems] == [(f"/dev/{lab.vg}", InvalidMetadata)]


@pytest.mark.parametrize("version", [None, "2", "6"])
def test_a_domain_of_no_known_format_is_damaged_not_read_with_a_guessed_slot_layout(
    lab: LvmLab, version: str | None
) -> None:
    loops = _domain(lab, version)  # a valid checksum: only the VERSION is wrong (or missing)
    with pytest.raises(InvalidMetadata, match="damaged metadata"):
        BlockView(loops).metadata()
    with pytest.raises(InvalidMetadata, match="damaged metadata"):
        BlockView(loops).scan_volumes()
    found, problems = scan_all((), loops)
    assert found == []
    assert [(p.path, type(p.error)) for p in problems] == [(f"/dev/{lab.vg}", InvalidMetadata)]


def test_a_device_that_is_not_the_pv_the_metadata_names_is_never_opened(lab: LvmLab) -> None:
    loops = _domain(lab)
    view = BlockView(loops)
    swapped = {name: loops[1] if path == loops[0] else loops[0] for name, path in view.pv_paths.items()}
    with pytest.raises(InvalidMetadata, match="devices changed"):
        SegmentBackend(view.vg, VOL, swapped, writable=True)
    with pytest.raises(InvalidMetadata, match="not among the devices given"):
        SegmentBackend(view.vg, VOL, {name: path for name, path in view.pv_paths.items() if path == loops[0]}, False)


def test_lvm_output_that_is_not_utf8_is_a_storage_error_not_a_decode_crash(lab: LvmLab) -> None:
    loops = lab.attach(1, 64)
    lvm = Lvm(loops, str(lab.root / "etc"))
    with pytest.raises(ToolFailed, match="lvm vgs failed") as raised:
        lvm.run("vgs", os.fsdecode(b"vg\xff\xfe"))  # LVM echoes the name back, as bytes that are not UTF-8
    assert "\ufffd" in str(raised.value)


def test_segment_io_falls_back_from_direct_io_on_a_pe_start_the_device_cannot_take_direct(lab: LvmLab) -> None:
    """A PV whose data starts off the device's 4 KiB logical block: O_DIRECT refuses the I/O (EINVAL), and
    the segment map goes on through the page cache, as `Backend` does, instead of failing."""
    (loop,) = lab.attach(1, 64)
    lab.lvm("pvcreate", loop)
    lab.lvm("vgcreate", "-s", "4m", lab.vg, loop)
    lab.lvm("lvcreate", "-an", "-Zn", "-L", "8m", "-n", "metadata", lab.vg)
    vg = BlockView([loop]).vg
    (name,) = vg.pvs
    pv = vg.pvs[name]
    shifted = dataclasses.replace(vg, pvs={name: dataclasses.replace(pv, pe_start=pv.pe_start + 1)})
    done = subprocess.run(
        ["losetup", "-f", "--show", "--sector-size", "4096", str(lab.images[0])], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    big_sectors = done.stdout.strip()
    data = os.urandom(64 << 10)
    buf = aligned_buffer(len(data))
    try:
        buf[:] = data
        with SegmentBackend(shifted, "metadata", {name: big_sectors}, writable=True) as backend:
            backend.seek(0)
            assert backend.write(memoryview(buf)) == len(data)
            backend.flush()
            buf[:] = b"\0" * len(data)
            backend.seek(0)
            assert backend.readinto(memoryview(buf)) == len(data)
            assert buf[:] == data
    finally:
        subprocess.run(["losetup", "-d", big_sectors], capture_output=True)  # first: a failure may hold buf
        buf.close()
    with lab.images[0].open("rb") as image:
        image.seek((pv.pe_start + 1) * 512)
        assert image.read(len(data)) == data

"""The LVM reader against volume groups made by the real lvm2 tools on loop devices.

What the reader finds (names, ids, seqno, tags, LVs, bytes) is compared with what the tools report, never
with the reader's own view of the format.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovfstore.storage.lvm import LvmFormatError, OpenVolumeGroup, open_volume_group, read_lv
from ovfstore.storage.lvm.ondisk import calc_crc, read_label, read_mda_header
from tests.fixtures.lvm import MIB, LvmLab, lvm_lab_at

BLOCK = 4096


@pytest.fixture
def lvm_lab(tmp_path: Path) -> Iterator[LvmLab]:
    with lvm_lab_at(tmp_path) as lab:
        yield lab


def _block(pv: int, offset: int) -> bytes:
    """The pattern of the 4 KiB block at byte `offset` (a multiple of 4096) of image `pv`."""
    return f"pv{pv}@{offset:012d}|".encode().ljust(32, b".") * (BLOCK // 32)


def _pattern(pv: int, offset: int, length: int) -> bytes:
    first = offset - offset % BLOCK
    data = b"".join(_block(pv, at) for at in range(first, offset + length, BLOCK))
    return data[offset - first : offset - first + length]


def _fill(image: Path, pv: int, start: int) -> None:
    """Every block of the image from `start` carries its image number and byte offset."""
    size = image.stat().st_size
    with image.open("r+b") as file:
        for at in range(start, size, MIB):
            file.seek(at)
            file.write(_pattern(pv, at, min(MIB, size - at)))


def _open(lab: LvmLab) -> OpenVolumeGroup:
    return open_volume_group([str(image) for image in lab.images])


def _tags(value: str) -> set[str]:
    return set(value.split(",")) - {""}


def test_vg_lvs_and_tags_agree_with_the_tools(lvm_lab: LvmLab) -> None:
    loops = lvm_lab.attach(3, 64)
    lvm_lab.lvm("pvcreate", *loops)
    lvm_lab.lvm("vgcreate", "-s", "4m", lvm_lab.vg, *loops)
    lvm_lab.lvm("vgchange", "--addtag", "RHAT_storage_domain", "--addtag", "MDT_CLASS=Data", lvm_lab.vg)
    lvm_lab.lvm("lvcreate", "-an", "-Zn", "-L", "8m", "-n", "metadata", "--addtag", "first", lvm_lab.vg)
    lvm_lab.lvm("lvcreate", "-an", "-Zn", "-L", "100m", "-n", "vol1", "--addtag", "IU_abc", lvm_lab.vg)
    lvm_lab.lvm("lvchange", "--addtag", "PU_00000000-0000-0000-0000-000000000000", f"{lvm_lab.vg}/vol1")
    (vgs,) = lvm_lab.report("vgs", "vg", "-o", "vg_name,vg_uuid,vg_seqno,vg_tags,vg_extent_size", lvm_lab.vg)
    lvs = lvm_lab.report("lvs", "lv", "-o", "lv_name,lv_uuid,lv_tags,lv_size", lvm_lab.vg)
    pvs = lvm_lab.report("pvs", "pv", "-o", "pv_name,pv_uuid,pe_start,pv_pe_count", *loops)
    with _open(lvm_lab) as opened:
        vg = opened.vg
        assert (vg.name, vg.id, vg.seqno) == (vgs["vg_name"], vgs["vg_uuid"], int(vgs["vg_seqno"]))
        assert vg.extent_size * 512 == int(vgs["vg_extent_size"]) == 4 * MIB
        assert set(vg.tags) == _tags(vgs["vg_tags"]) == {"RHAT_storage_domain", "MDT_CLASS=Data"}
        assert {name: (lv.id, set(lv.tags)) for name, lv in vg.lvs.items()} == {
            row["lv_name"]: (row["lv_uuid"], _tags(row["lv_tags"])) for row in lvs
        }
        assert {name: lv.extent_count * 4 * MIB for name, lv in vg.lvs.items()} == {
            row["lv_name"]: int(row["lv_size"]) for row in lvs
        }
        by_path = {device.path: name for name, device in opened.devices.items()}
        for row, image in zip(pvs, lvm_lab.images, strict=True):
            pv = vg.pvs[by_path[str(image)]]
            assert (pv.id, pv.pe_start * 512, pv.pe_count) == (
                row["pv_uuid"],
                int(row["pe_start"]),
                int(row["pv_pe_count"]),
            )
    with open_volume_group(loops) as on_devices:
        assert (on_devices.vg.id, on_devices.vg.seqno) == (vgs["vg_uuid"], int(vgs["vg_seqno"]))
        assert {name: device.path for name, device in on_devices.devices.items()} == {
            name: loops[lvm_lab.images.index(Path(device.path))] for name, device in opened.devices.items()
        }


def _segments(lab: LvmLab, lv: str) -> list[tuple[int, int, int, int]]:
    """(first LV extent, image index, first PV extent, extent count) of each segment, as the tools say."""
    rows = lab.report("lvs", "seg", "--segments", "-o", "lv_name,seg_start_pe,seg_pe_ranges", f"{lab.vg}/{lv}")
    found = []
    for row in rows:
        device, extents = row["seg_pe_ranges"].split(":")
        first, last = (int(part) for part in extents.split("-"))
        found.append((int(row["seg_start_pe"]), lab.loops.index(device), first, last - first + 1))
    return sorted(found)


def test_read_lv_across_segments_on_several_pvs(lvm_lab: LvmLab) -> None:
    loops = lvm_lab.attach(3, 64)
    lvm_lab.lvm("pvcreate", *loops)
    lvm_lab.lvm("vgcreate", "-s", "4m", lvm_lab.vg, *loops)
    lvm_lab.lvm("lvcreate", "-an", "-Zn", "-L", "8m", "-n", "a", lvm_lab.vg, loops[0])
    lvm_lab.lvm("lvcreate", "-an", "-Zn", "-L", "40m", "-n", "b", lvm_lab.vg, loops[0])
    lvm_lab.lvm("lvextend", "-L", "+28m", f"{lvm_lab.vg}/a", loops[0], loops[2])
    segments = _segments(lvm_lab, "a")
    assert len(segments) == 3
    assert {image for _, image, _, _ in segments} == {0, 2}
    pe_start = {
        row["pv_name"]: int(row["pe_start"]) for row in lvm_lab.report("pvs", "pv", "-o", "pv_name,pe_start", *loops)
    }
    for index, image in enumerate(lvm_lab.images):
        _fill(image, index, pe_start[loops[index]])
    extent = 4 * MIB

    def expected(offset: int, length: int) -> bytes:
        data = b""
        for lv_first, image, pv_first, count in segments:
            start, end = lv_first * extent, (lv_first + count) * extent
            low, high = max(offset, start), min(offset + length, end)
            if low < high:
                data += _pattern(image, pe_start[loops[image]] + pv_first * extent + low - start, high - low)
        return data

    with _open(lvm_lab) as opened:
        size = opened.vg.lvs["a"].extent_count * extent
        assert size == 36 * MIB
        for lv_first, _, _, _ in segments[1:]:
            boundary = lv_first * extent
            assert read_lv(opened, "a", boundary - 1000, 3000) == expected(boundary - 1000, 3000)
        assert read_lv(opened, "a", 0, size) == expected(0, size)
        assert read_lv(opened, "a", size - 7, 7) == expected(size - 7, 7)
        assert read_lv(opened, "b", 5 * MIB + 3, 10) == _pattern(0, pe_start[loops[0]] + 2 * extent + 5 * MIB + 3, 10)


def _wrapped(image: Path) -> bool:
    fd = os.open(image, os.O_RDONLY)
    try:
        header = read_mda_header(fd, str(image), read_label(fd, str(image)).metadata_areas[0])
    finally:
        os.close(fd)
    return header.text_offset + header.text_size > header.size


def test_newest_metadata_after_many_rewrites_and_a_wrap(lvm_lab: LvmLab) -> None:
    loops = lvm_lab.attach(2, 32)
    lvm_lab.lvm("pvcreate", "--metadatasize", "16k", "--dataalignment", "64k", *loops)
    lvm_lab.lvm("vgcreate", "-s", "4m", lvm_lab.vg, *loops)
    lvm_lab.lvm("lvcreate", "-an", "-Zn", "-L", "4m", "-n", "metadata", lvm_lab.vg)
    wrapped_seen = False
    for round_ in range(50):
        tag = f"MDT_ROUND={round_}_" + "x" * 80
        lvm_lab.lvm("vgchange", "--addtag", tag, lvm_lab.vg)
        if _wrapped(lvm_lab.images[0]):
            wrapped_seen = True
            (vgs,) = lvm_lab.report("vgs", "vg", "-o", "vg_seqno", lvm_lab.vg)
            with _open(lvm_lab) as opened:
                assert opened.vg.seqno == int(vgs["vg_seqno"])
                assert tag in opened.vg.tags
        if round_ % 2:
            lvm_lab.lvm("vgchange", "--deltag", tag, lvm_lab.vg)
    assert wrapped_seen, "the metadata text never wrapped around the ring buffer"
    (vgs,) = lvm_lab.report("vgs", "vg", "-o", "vg_seqno,vg_tags", lvm_lab.vg)
    with _open(lvm_lab) as opened:
        assert opened.vg.seqno == int(vgs["vg_seqno"]) > 70
        assert set(opened.vg.tags) == _tags(vgs["vg_tags"])


@pytest.fixture
def pv_copy(lvm_lab: LvmLab, tmp_path: Path) -> Path:
    """A copy of a real one-PV VG's image, with an LV `lv` of 4 MiB, for a test to damage."""
    loops = lvm_lab.attach(1, 16)
    lvm_lab.lvm("pvcreate", *loops)
    lvm_lab.lvm("vgcreate", "-s", "4m", lvm_lab.vg, *loops)
    lvm_lab.lvm("lvcreate", "-an", "-Zn", "-L", "4m", "-n", "lv", lvm_lab.vg)
    copy = tmp_path / "copy.img"
    shutil.copyfile(lvm_lab.images[0], copy)
    with _open(lvm_lab) as opened:
        assert read_lv(opened, "lv", 0, 16) == bytes(16)
    return copy


def _flip(image: Path, offset: int) -> None:
    with image.open("r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0xFF]))


def _replace_text(image: Path, text: bytes) -> None:
    """The current metadata text replaced by `text`, its CRC and the header's made right again."""
    fd = os.open(image, os.O_RDWR)
    try:
        area = read_label(fd, str(image)).metadata_areas[0]
        header = read_mda_header(fd, str(image), area)
        data = text + b"\0"
        os.pwrite(fd, data, area.offset + header.text_offset)
        block = bytearray(os.pread(fd, 512, area.offset))
        struct.pack_into("<QQI", block, 40, header.text_offset, len(data), calc_crc(data))
        struct.pack_into("<I", block, 0, calc_crc(bytes(block[4:])))
        os.pwrite(fd, bytes(block), area.offset)
    finally:
        os.close(fd)


def _refused(image: Path, *words: str) -> str:
    with pytest.raises(LvmFormatError) as caught, open_volume_group([str(image)]) as opened:
        read_lv(opened, "lv", 0, 4 * MIB)
    message = str(caught.value)
    assert all(word in message for word in words), message
    assert len(message) < 800
    return message


def test_a_bad_label_crc_is_refused(pv_copy: Path) -> None:
    _flip(pv_copy, 512 + 100)
    _refused(pv_copy, "label", "bad CRC")


def test_a_bad_metadata_area_crc_is_refused(pv_copy: Path) -> None:
    _flip(pv_copy, 4096 + 30)
    _refused(pv_copy, "metadata area header", "bad CRC")


def test_a_damaged_metadata_text_is_refused(pv_copy: Path) -> None:
    fd = os.open(pv_copy, os.O_RDONLY)
    try:
        area = read_label(fd, str(pv_copy)).metadata_areas[0]
        header = read_mda_header(fd, str(pv_copy), area)
    finally:
        os.close(fd)
    _flip(pv_copy, area.offset + header.text_offset + 10)
    _refused(pv_copy, "metadata text", "bad CRC")


@pytest.mark.parametrize(("size", "words"), [(100, ("too small",)), (3000, ("truncated",)), (3 * MIB, ("truncated",))])
def test_a_truncated_image_is_refused(pv_copy: Path, size: int, words: tuple[str, ...]) -> None:
    os.truncate(pv_copy, size)
    _refused(pv_copy, *words)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b'vg { id = "x"\nseqno = 1\n', ("unbalanced",)),
        (b"vg { seqno = " + b"9" * 5000 + b" }", ("too large",)),
        (b"vg " + b"{ a " * 40 + b"}" * 40, ("deep",)),
        (b'vg { id = "x" seqno = 1 extent_size = 8192 }', ("physical_volumes",)),
        (b'vg { id = "x" id = "y" }', ("twice",)),
        (b'vg { id = ["x" }', ("string, number or list",)),
    ],
)
def test_a_malformed_metadata_text_is_refused(pv_copy: Path, text: bytes, words: tuple[str, ...]) -> None:
    _replace_text(pv_copy, text)
    _refused(pv_copy, *words)


def test_ovirt_layout_two_copies_on_the_first_pv_and_ignored_areas_elsewhere(lvm_lab: LvmLab) -> None:
    loops = lvm_lab.attach(2, 32)
    lvm_lab.lvm("pvcreate", "--pvmetadatacopies", "2", *loops)
    lvm_lab.lvm("vgcreate", "-s", "4m", lvm_lab.vg, *loops)
    lvm_lab.lvm("pvchange", "--metadataignore", "y", loops[1])
    lvm_lab.lvm("lvcreate", "-an", "-Zn", "-L", "4m", "-n", "metadata", "--addtag", "MD_1", lvm_lab.vg)
    (vgs,) = lvm_lab.report("vgs", "vg", "-o", "vg_seqno", lvm_lab.vg)
    areas = []
    for image in lvm_lab.images:
        fd = os.open(image, os.O_RDONLY)
        try:
            label = read_label(fd, str(image))
            areas.append([(area, read_mda_header(fd, str(image), area).ignored) for area in label.metadata_areas])
        finally:
            os.close(fd)
    assert [[ignored for _, ignored in pv] for pv in areas] == [[False, False], [True, True]]
    with _open(lvm_lab) as opened:
        assert opened.vg.seqno == int(vgs["vg_seqno"])
        assert opened.damaged == []
    _flip(lvm_lab.images[0], areas[0][0][0].offset + 30)
    with _open(lvm_lab) as opened:
        assert opened.vg.seqno == int(vgs["vg_seqno"])
        assert opened.vg.lvs["metadata"].tags == ("MD_1",)
        assert len(opened.damaged) == 1
        assert "bad CRC" in opened.damaged[0]
    _flip(lvm_lab.images[0], areas[0][1][0].offset + 30)
    with pytest.raises(LvmFormatError, match="bad CRC"):
        _open(lvm_lab)


def test_random_damage_gives_lvm_format_errors_only(pv_copy: Path) -> None:
    """Bytes of the label, header and text changed at random, the CRCs made right again half the time (so
    the parsers behind them are reached): every outcome is a VG or an LvmFormatError with a short message."""
    original = pv_copy.read_bytes()[: 8 * 1024]
    text_offset, text_size = struct.unpack_from("<QQ", original, 4096 + 40)
    text = range(4096 + text_offset, 4096 + text_offset + text_size)
    generator = random.Random(14)
    messages = []
    for _ in range(300):
        data = bytearray(original)
        for _ in range(generator.randint(1, 8)):
            region = generator.choice([range(512, 1024), range(4096, 4608), text])
            data[generator.choice(region)] = generator.randrange(256)
        if generator.random() < 0.5:
            struct.pack_into("<I", data, 512 + 16, calc_crc(bytes(data[512 + 20 : 1024])))
            struct.pack_into("<I", data, 4096 + 56, calc_crc(bytes(data[text.start : text.stop])))
            struct.pack_into("<I", data, 4096, calc_crc(bytes(data[4096 + 4 : 4608])))
        with pv_copy.open("r+b") as file:
            file.write(data)
        try:
            with open_volume_group([str(pv_copy)]) as opened:
                read_lv(opened, "lv", 0, 512)
        except LvmFormatError as error:
            messages.append(str(error))
    assert messages
    assert max(len(message) for message in messages) < 800

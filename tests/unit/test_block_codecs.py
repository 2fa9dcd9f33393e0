"""The block domain's tag and slot codecs (storage/block/tags.py, slots.py), hostile values included."""

from __future__ import annotations

import pytest

from ovfstore.storage import metadata as md
from ovfstore.storage.block import slots, tags
from ovfstore.storage.errors import ChecksumMismatch, DescriptionTooLong, InvalidArgument, InvalidMetadata

SD = "3a9d5b6c-8f0e-4e2a-9b1c-2d3e4f5a6b7c"
IMG = "11111111-2222-4333-8444-555555555555"
VOL = "66666666-7777-4888-8999-aaaaaaaaaaaa"


def _values() -> dict[str, str]:
    return {
        "CLASS": "Data", "DESCRIPTION": "my domain, with spaces & commas", "POOL_UUID": "", "ROLE": "Regular",
        "SDUUID": SD, "TYPE": "ISCSI", "VERSION": "5", "VGUUID": "abcdef-0000-1111-2222-3333-4444-555555",
        "PV0": "pv:36001405abcdef,uuid:Xy12-ab,pestart:0,pecount:77,mapoffset:0",
    }  # fmt: skip


def test_escapes_as_vdsm_writes_them() -> None:
    assert tags.encode_value("a b,c&d") == "a&32&b&44&c&38&d"
    assert tags.encode_value("PV0=pv:x,uuid:y") == "PV0=pv:x&44&uuid:y"
    assert tags.encode_value("ok_+.-/=!:#") == "ok_+.-/=!:#"
    assert tags.decode_value("a&32&b&44&c&38&d") == "a b,c&d"
    text = "é ü 日本 \t' \" ; $ é" + chr(0x10FFFF)
    assert tags.decode_value(tags.encode_value(text)) == text


@pytest.mark.parametrize(
    "bad",
    ["a&32", "a&&b", "&x&", "&12345678&", "&1114112&", "&55296&", "a b", "a,b", "a&-1&", "\u00e9", "x" * 1025],
)
def test_bad_escapes_and_characters_are_damage(bad: str) -> None:
    with pytest.raises(InvalidMetadata):
        tags.decode_value(bad)


def test_domain_metadata_round_trips_with_one_checksum_definition() -> None:
    written = tags.domain_tags(_values())
    assert all(t.startswith("MDT_") and " " not in t and "," not in t for t in written)
    checksum = [t for t in written if t.startswith("MDT__SHA_CKSUM=")]
    assert checksum == [f"MDT__SHA_CKSUM={md.domain_checksum(_values())}"]
    parsed = tags.domain_metadata(reversed([*written, "RHAT_storage_domain", "other"]))  # any order
    assert dict(parsed.values) == _values()
    assert parsed.checksum == md.ChecksumState.VALID
    # The same lines as a file domain's dom_md/metadata.
    assert md.parse_domain_metadata(md.format_domain_metadata(_values())).values == parsed.values


def test_changed_value_fails_the_checksum() -> None:
    written = [t.replace("Regular", "Master") for t in tags.domain_tags(_values())]
    with pytest.raises(ChecksumMismatch):
        tags.domain_metadata(written)


@pytest.mark.parametrize(
    "extra",
    ["MDT_ROLE=Master", "MDT_NOEQUALS", "MDT_=x", "MDT_A=&10&", "MDT_A=&0&", "MDT_A=&13&b", "MDT_B=&99999999&"],
)
def test_hostile_domain_tags_are_damage(extra: str) -> None:
    with pytest.raises(InvalidMetadata):
        tags.domain_metadata([*tags.domain_tags(_values()), extra])


def test_no_metadata_tags_is_damage() -> None:
    with pytest.raises(InvalidMetadata, match="no MDT_"):
        tags.domain_metadata(["RHAT_storage_domain"])


def test_oversize_tag_and_description_are_refused() -> None:
    with pytest.raises(DescriptionTooLong):
        tags.domain_tags(dict(_values(), DESCRIPTION="x" * 51))
    with pytest.raises(InvalidArgument, match="1024"):
        tags.domain_tags(dict(_values(), POOL_DESCRIPTION="\u00e9" * 300))
    with pytest.raises(InvalidArgument):
        tags.domain_tags(dict(_values(), DESCRIPTION="two\nlines"))


def test_volume_tags() -> None:
    parsed = tags.parse_volume_tags(tags.volume_tags(IMG, md.BLANK_UUID, 7))
    assert parsed == tags.VolumeTags(IMG, md.BLANK_UUID, 7, False, False)
    assert parsed.is_volume
    assert not tags.parse_volume_tags([*tags.volume_tags(IMG, VOL, 3), tags.INITIALIZING]).is_volume
    removing = tags.parse_volume_tags([tags.removing_tag(IMG), "PU_" + VOL, "MD_3"])
    assert (removing.image, removing.removing, removing.is_volume) == (IMG, True, False)
    zero = tags.parse_volume_tags(["IU__remove_me_ZERO_" + IMG])
    assert (zero.image, zero.removing) == (IMG, True)
    assert not tags.parse_volume_tags(["MD_4", "other"]).is_volume  # a special LV or a stranger


@pytest.mark.parametrize(
    "bad",
    [
        ["IU_not-a-uuid"], ["IU_" + IMG, "IU_" + VOL], ["PU_" + IMG.upper() + "x"], ["MD_"], ["MD_-1"], ["MD_1.5"],
        ["MD_99999999"], ["MD_1048577"], ["MD_1", "MD_2"], ["PU_" + VOL, "PU_" + IMG], ["MD_\u0661"],
        ["IU_" + "{" + IMG + "}"],
    ],
)  # fmt: skip
def test_hostile_volume_tags_are_damage(bad: list[str]) -> None:
    with pytest.raises(InvalidMetadata):
        tags.parse_volume_tags(bad)


def _meta(**changes: object) -> md.VolumeMetadata:
    values: dict[str, object] = {
        "capacity": 128 << 20, "ctime": 1700000000, "description": '{"Updated":true,"Size":10240}',
        "disk_type": "OVFS", "domain": SD, "format": "RAW", "generation": 0, "image": IMG, "legality": "LEGAL",
        "parent": md.BLANK_UUID, "sequence": 0, "type": "PREALLOCATED", "voltype": "LEAF",
    }  # fmt: skip
    values.update(changes)
    return md.VolumeMetadata(**values)  # type: ignore[arg-type]


def test_slot_places() -> None:
    assert slots.slot_offset(1, 5) == (1 << 20) + 8192
    assert slots.slot_offset(4, 4) == 2048
    assert slots.slot_offset(4, 3) == 2048
    assert slots.first_slot(5) == 1
    assert slots.first_slot(4) == 4
    assert slots.slot_count(5, 128 << 20) == (127 << 20) // 8192
    assert slots.slot_count(3, 128 << 20) == (128 << 20) // 512
    assert slots.checked_offset(1, 5, 2 << 20) == (1 << 20) + 8192


@pytest.mark.parametrize(("slot", "version"), [(0, 5), (3, 4), (128, 5), (4096, 3), (10**6, 5)])
def test_slots_outside_the_lv_or_reserved_are_damage(slot: int, version: int) -> None:
    with pytest.raises(InvalidMetadata):
        slots.checked_offset(slot, version, 2 << 20)


def test_slot_round_trip_is_a_meta_padded() -> None:
    meta = _meta()
    data = slots.format_slot(meta, 5)
    assert len(data) == 8192
    assert data.rstrip(b"\0") == md.format_volume_meta(meta)
    assert slots.parse_slot(data) == meta
    assert len(slots.format_slot(meta, 4)) == 512
    assert slots.parse_slot(slots.format_slot(meta, 4)) == meta


@pytest.mark.parametrize("data", [b"\0" * 512, b"", b"NONE=######\nEOF\n" + b"\0" * 400, slots.cleared_slot(5)])
def test_cleared_slot_is_no_volume(data: bytes) -> None:
    assert slots.is_cleared(data[:512])
    with pytest.raises(InvalidMetadata, match="cleared"):
        slots.parse_slot(data)


@pytest.mark.parametrize(
    "data",
    [b"CAP=x\nEOF\n", b"\xff\xfe" * 100, b"garbage line\n", b"CAP=0\nEOF\n", b"PUUID=../../etc\nCAP=512\nEOF\n"],
)
def test_hostile_slot_is_damage(data: bytes) -> None:
    with pytest.raises(InvalidMetadata):
        slots.parse_slot(data.ljust(512, b"\0"))


def test_slot_reads_only_its_512_bytes() -> None:
    meta = _meta()
    data = md.format_volume_meta(meta).ljust(512, b"\0") + b"junk after the slot data" * 100
    assert slots.parse_slot(data) == meta


def test_oversize_metadata_is_refused_before_writing() -> None:
    with pytest.raises(DescriptionTooLong):
        slots.format_slot(_meta(description="x" * 211), 5)
    with pytest.raises(DescriptionTooLong):
        slots.format_slot(_meta(description="x" * 210, extra={"EXTRA": "y" * 300}), 5)

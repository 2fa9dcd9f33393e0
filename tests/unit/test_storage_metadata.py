from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovfstore.storage import metadata as md
from ovfstore.storage.errors import ChecksumMismatch, DescriptionTooLong, InvalidArgument, InvalidMetadata
from tests.fixtures.formats import DOMAIN_METADATA_EXAMPLE


def test_the_formats_example_checks_out() -> None:
    parsed = md.parse_domain_metadata(DOMAIN_METADATA_EXAMPLE)
    assert parsed.checksum is md.ChecksumState.VALID
    assert parsed.sd_id == "275766cb-c7d8-43d6-a663-4e52160de620"
    assert parsed.version == 5
    assert parsed.pool_id == ""
    assert parsed.storage_type == "LOCALFS"


def test_new_domain_values_format_to_the_example_byte_for_byte() -> None:
    values = md.new_domain_values(
        "275766cb-c7d8-43d6-a663-4e52160de620", "storage domain", "LOCALFS", "Data", "server:/path"
    )
    assert md.format_domain_metadata(values) == DOMAIN_METADATA_EXAMPLE


def test_trailing_nuls_are_stripped() -> None:
    assert md.parse_domain_metadata(DOMAIN_METADATA_EXAMPLE + b"\0" * 300).checksum is md.ChecksumState.VALID


def test_a_changed_value_breaks_the_checksum() -> None:
    with pytest.raises(ChecksumMismatch, match="changed or damaged"):
        md.parse_domain_metadata(DOMAIN_METADATA_EXAMPLE.replace(b"ROLE=Regular", b"ROLE=Master"))


def test_a_missing_checksum_is_accepted_unverified() -> None:
    body = b"".join(line + b"\n" for line in DOMAIN_METADATA_EXAMPLE.splitlines() if not line.startswith(b"_SHA"))
    assert md.parse_domain_metadata(body).checksum is md.ChecksumState.MISSING


def test_a_line_without_equals_is_damage() -> None:
    with pytest.raises(InvalidMetadata):
        md.parse_domain_metadata(b"CLASS=Data\ngarbage\n")


def test_non_ascii_is_summed_as_xml_character_references() -> None:
    values = md.new_domain_values("275766cb-c7d8-43d6-a663-4e52160de620", "dépôt", "NFS", "Data", "")
    data = md.format_domain_metadata(values)
    expected = hashlib.sha1()
    for key in sorted(values):
        expected.update(f"{key}={values[key]}".replace("é", "&#233;").replace("ô", "&#244;").encode())
    assert data.endswith(f"_SHA_CKSUM={expected.hexdigest()}\n".encode())
    assert md.parse_domain_metadata(data).description == "dépôt"


def test_domain_description_over_50_is_refused() -> None:
    values = md.new_domain_values("275766cb-c7d8-43d6-a663-4e52160de620", "x" * 51, "NFS", "Data", "")
    with pytest.raises(DescriptionTooLong):
        md.format_domain_metadata(values)


def test_newlines_cannot_be_smuggled_into_metadata() -> None:
    values = md.new_domain_values("275766cb-c7d8-43d6-a663-4e52160de620", "a\nROLE=Master", "NFS", "Data", "")
    with pytest.raises(InvalidArgument):
        md.format_domain_metadata(values)


@given(st.dictionaries(st.from_regex(r"[A-Z_]{1,12}", fullmatch=True), st.text(max_size=40)))
def test_any_metadata_round_trips(values: dict[str, str]) -> None:
    values = {k: v for k, v in values.items() if k != md.CHECKSUM_KEY and not any(c in v for c in "\n\r\0")}
    values["DESCRIPTION"] = values.get("DESCRIPTION", "")[:50]
    parsed = md.parse_domain_metadata(md.format_domain_metadata(values))
    assert dict(parsed.values) == values


def _meta(**changes: object) -> md.VolumeMetadata:
    base = md.VolumeMetadata(
        capacity=134217728, ctime=1700000000, description="OVF_STORE", disk_type="OVFS",
        domain="275766cb-c7d8-43d6-a663-4e52160de620", format="RAW", generation=0,
        image="9a5a2f57-1b1c-4c2f-8d8e-3f1f0f2f5b6a", legality="LEGAL", parent=md.BLANK_UUID,
        sequence=0, type="SPARSE", voltype="LEAF",
    )  # fmt: skip
    return md.VolumeMetadata(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_volume_meta_layout_is_sorted_lines_then_eof() -> None:
    assert md.format_volume_meta(_meta()) == (
        b"CAP=134217728\nCTIME=1700000000\nDESCRIPTION=OVF_STORE\nDISKTYPE=OVFS\n"
        b"DOMAIN=275766cb-c7d8-43d6-a663-4e52160de620\nFORMAT=RAW\nGEN=0\n"
        b"IMAGE=9a5a2f57-1b1c-4c2f-8d8e-3f1f0f2f5b6a\nLEGALITY=LEGAL\n"
        b"PUUID=00000000-0000-0000-0000-000000000000\nSEQ=0\nTYPE=SPARSE\nVOLTYPE=LEAF\nEOF\n"
    )


def test_volume_meta_round_trips_and_keeps_unknown_keys() -> None:
    meta = _meta(extra={"MTIME": "0"})
    assert md.parse_volume_meta(md.format_volume_meta(meta)) == meta


def test_old_volume_meta_reads_size_in_sectors_and_missing_counters_as_zero() -> None:
    meta = md.parse_volume_meta(b"SIZE=2048\nFORMAT=RAW\nMTIME=0\nEOF\n" + b"\0" * 100)
    assert meta.capacity == 2048 * 512
    assert (meta.generation, meta.sequence) == (0, 0)


def test_a_210_character_description_fits_and_211_is_refused() -> None:
    assert len(md.format_volume_meta(_meta(description="d" * 210))) <= 512
    with pytest.raises(DescriptionTooLong, match="refused rather than cut"):
        md.format_volume_meta(_meta(description="d" * 211))


def test_meta_over_512_bytes_is_refused() -> None:
    with pytest.raises(DescriptionTooLong, match="512"):
        md.format_volume_meta(_meta(description="é" * 210))


def test_a_non_numeric_capacity_is_damage() -> None:
    with pytest.raises(InvalidMetadata):
        md.parse_volume_meta(b"CAP=lots\nEOF\n")

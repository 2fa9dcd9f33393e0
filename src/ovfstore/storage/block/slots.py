"""Volume metadata slots in a block domain's `metadata` LV (docs/FORMATS.md 6.3), pure functions.

A slot holds what a file volume's `.meta` holds, in the same `KEY=VALUE ... EOF` lines
(`storage.metadata` parses and formats both), padded with NULs. Format 5 puts slot `n` at
`1 MiB + n * 8 KiB` (the first slot is 1); formats 3 and 4 at `n * 512` (the first slot is 4). A slot
number comes from an LV tag, which may be hostile: its place is checked against the LV before it is read.
"""

from __future__ import annotations

from ovfstore.storage import metadata as md
from ovfstore.storage.errors import InvalidMetadata

SLOT_DATA = md.VOLUME_META_MAX  # the bytes of a slot that hold metadata
V5_BASE = 1 << 20
V5_SLOT_SIZE = 8 << 10
OLD_SLOT_SIZE = 512
V5_FIRST_SLOT = 1
OLD_FIRST_SLOT = 4


def slot_size(version: int) -> int:
    return V5_SLOT_SIZE if version >= 5 else OLD_SLOT_SIZE


def first_slot(version: int) -> int:
    return V5_FIRST_SLOT if version >= 5 else OLD_FIRST_SLOT


def slot_offset(slot: int, version: int) -> int:
    """Where slot `slot` starts in the metadata LV of a domain of format `version`."""
    return V5_BASE + slot * V5_SLOT_SIZE if version >= 5 else slot * OLD_SLOT_SIZE


def checked_offset(slot: int, version: int, lv_size: int) -> int:
    """`slot_offset`, once the slot is known to be a real one that lies inside an LV of `lv_size` bytes."""
    if slot < first_slot(version):
        raise InvalidMetadata(
            f"metadata slot {slot} is below the first slot ({first_slot(version)}) of a format {version} domain; "
            "the volume's MD_ tag is damaged"
        )
    offset = slot_offset(slot, version)
    if offset + SLOT_DATA > lv_size:
        raise InvalidMetadata(
            f"metadata slot {slot} lies at byte {offset}, past the end of the metadata LV ({lv_size} bytes); "
            "the volume's MD_ tag is damaged"
        )
    return offset


def slot_count(version: int, lv_size: int) -> int:
    """How many slots a metadata LV of `lv_size` bytes holds (the last slot number + 1)."""
    return max(0, (lv_size - slot_offset(0, version)) // slot_size(version))


def is_cleared(data: bytes) -> bool:
    """A slot of no volume: all NULs, or `NONE=` as VDSM writes a freed one."""
    return not data.strip(b"\0") or data.startswith(b"NONE=")


def parse_slot(data: bytes) -> md.VolumeMetadata:
    """The volume metadata of a slot's bytes; a cleared slot is `InvalidMetadata` (the volume's LV
    points at a slot that holds no volume)."""
    data = data[:SLOT_DATA]
    if is_cleared(data):
        raise InvalidMetadata("the volume's metadata slot is cleared (it holds no volume); the volume is damaged")
    return md.parse_volume_meta(data)


def format_slot(meta: md.VolumeMetadata, version: int) -> bytes:
    """The bytes of a whole slot holding `meta` (checked as a `.meta` is), NUL-padded."""
    data = md.format_volume_meta(meta)
    return data.ljust(slot_size(version), b"\0")


def cleared_slot(version: int) -> bytes:
    return b"\0" * slot_size(version)

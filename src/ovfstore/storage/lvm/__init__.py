"""A reader of LVM2's on-disk structures, for block storage domains read without LVM tools or device-mapper.

`ondisk` reads the label, PV header, metadata area headers and metadata text of one device; `metadata`
parses that text into a typed volume group; `reader` opens the devices of a volume group and reads an LV's
bytes through its segments (docs/FORMATS.md, sections 6.3 and 6.5).
"""

from __future__ import annotations

from ovfstore.storage.lvm.metadata import LogicalVolume, PhysicalVolume, Segment, Stripe, VolumeGroup, parse_vg
from ovfstore.storage.lvm.ondisk import LvmFormatError
from ovfstore.storage.lvm.reader import OpenVolumeGroup, map_lv_offset, open_volume_group, read_lv

__all__ = [
    "LogicalVolume",
    "LvmFormatError",
    "OpenVolumeGroup",
    "PhysicalVolume",
    "Segment",
    "Stripe",
    "VolumeGroup",
    "map_lv_offset",
    "open_volume_group",
    "parse_vg",
    "read_lv",
]

"""A volume group read from its devices or images alone: the newest metadata, and an LV's bytes.

The devices are opened read-only and read with `os.pread`: nothing is activated, nothing written, and
neither LVM tools nor device-mapper are needed, so a domain can be read on any machine that sees its LUNs
or holds copies of them (docs/FORMATS.md 6.3 and 6.5).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType

from ovfstore.storage.lvm.metadata import LogicalVolume, Segment, VolumeGroup, parse_vg
from ovfstore.storage.lvm.ondisk import (
    SECTOR,
    LvmFormatError,
    PvLabel,
    device_size,
    pread_exact,
    read_label,
    read_mda_header,
    read_metadata_text,
)
from ovfstore.store.quoting import cut, quoted


@dataclass
class Device:
    path: str
    fd: int
    size: int
    label: PvLabel


@dataclass
class OpenVolumeGroup:
    """The newest metadata of a VG and its devices by PV name (a PV whose device was not given is absent).

    `damaged`: why each metadata area that could not be read was passed over for another copy.
    """

    vg: VolumeGroup
    devices: dict[str, Device]
    damaged: list[str] = field(default_factory=list)
    _open: list[Device] = field(default_factory=list)

    def close(self) -> None:
        for device in self._open:
            os.close(device.fd)
        self._open.clear()

    def __enter__(self) -> OpenVolumeGroup:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _open_device(path: str) -> Device:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return Device(path, fd, device_size(fd), read_label(fd, path))
    except BaseException:
        os.close(fd)
        raise


def _newest_metadata(devices: list[Device]) -> tuple[VolumeGroup, list[str]]:
    """The VG of the highest seqno among the metadata areas that are not ignored, on every device, and why
    any damaged area was passed over: a PV usually holds two copies, and one good copy is enough."""
    newest: VolumeGroup | None = None
    damaged: list[LvmFormatError] = []
    for device in devices:
        for area in device.label.metadata_areas:
            try:
                header = read_mda_header(device.fd, device.path, area)
                if header.ignored or not header.text_size:
                    continue
                vg = parse_vg(read_metadata_text(device.fd, device.path, header))
            except LvmFormatError as error:
                damaged.append(error)
                continue
            if newest is not None and vg.id != newest.id:
                raise LvmFormatError(
                    f"the devices hold two volume groups, {quoted(newest.name)} and {quoted(vg.name)}: "
                    "give the devices of one volume group only"
                )
            if newest is None or vg.seqno > newest.seqno:
                newest = vg
    if newest is None:
        if damaged:
            raise damaged[0]
        raise LvmFormatError("no device given holds LVM metadata (every metadata area is ignored or empty)")
    return newest, [str(error) for error in damaged]


def open_volume_group(paths: Iterable[str]) -> OpenVolumeGroup:
    """The volume group on the devices or images at `paths`, each of which must be a PV of it."""
    opened: list[Device] = []
    try:
        for path in paths:
            opened.append(_open_device(path))
        if not opened:
            raise LvmFormatError("no device given: name the devices or images of the volume group")
        vg, damaged = _newest_metadata(opened)
        by_uuid = {device.label.uuid: device for device in opened}
        devices = {name: by_uuid[pv.id] for name, pv in vg.pvs.items() if pv.id in by_uuid}
        for name, device in devices.items():
            if vg.pvs[name].pe_start * SECTOR != device.label.data_areas[0].offset:
                raise LvmFormatError(
                    f"PV {quoted(name)} ({cut(device.path)}): pe_start {vg.pvs[name].pe_start} sectors in "
                    f"the metadata, but its label puts the data at byte {device.label.data_areas[0].offset}"
                )
        strangers = [device.path for device in opened if device not in devices.values()]
        if strangers:
            raise LvmFormatError(f"{cut(strangers[0])} is a PV, but not of VG {quoted(vg.name)}")
        return OpenVolumeGroup(vg, devices, damaged, opened)
    except BaseException:
        for device in opened:
            os.close(device.fd)
        raise


def _logical_volume(vg: OpenVolumeGroup, lv_name: str) -> LogicalVolume:
    lv = vg.vg.lvs.get(lv_name)
    if lv is None:
        raise LvmFormatError(f"VG {quoted(vg.vg.name)} has no LV {quoted(lv_name)}")
    return lv


def _segment(lv: LogicalVolume, extent: int) -> Segment:
    for segment in lv.segments:
        if segment.start_extent <= extent < segment.start_extent + segment.extent_count:
            return segment
    raise LvmFormatError(f"LV {quoted(lv.name)} has {lv.extent_count} extents; extent {extent} is past its end")


def map_lv_offset(vg: OpenVolumeGroup, lv_name: str, offset: int) -> tuple[Device, int, int]:
    """(device, byte offset on it, bytes left in the segment) of byte `offset` of an LV."""
    lv = _logical_volume(vg, lv_name)
    extent_bytes = vg.vg.extent_size * SECTOR
    extent = offset // extent_bytes
    segment = _segment(lv, extent)
    if segment.type != "striped" or len(segment.stripes) != 1:
        raise LvmFormatError(
            f"LV {quoted(lv.name)}: a segment of type {quoted(segment.type)} with {len(segment.stripes)} "
            "stripes; only linear segments (striped, one stripe) can be read without LVM"
        )
    stripe = segment.stripes[0]
    pv = vg.vg.pvs.get(stripe.pv)
    if pv is None:
        raise LvmFormatError(f"LV {quoted(lv.name)} lies on PV {quoted(stripe.pv)}, which the VG does not list")
    device = vg.devices.get(stripe.pv)
    if device is None:
        raise LvmFormatError(
            f"LV {quoted(lv.name)} lies on PV {quoted(stripe.pv)} (UUID {pv.id}, last seen as "
            f"{cut(pv.device)}), which is not among the devices given: add it"
        )
    if stripe.first_extent + segment.extent_count > pv.pe_count:
        raise LvmFormatError(f"LV {quoted(lv.name)}: a segment passes the last extent of PV {quoted(stripe.pv)}")
    pv_extent = stripe.first_extent + extent - segment.start_extent
    position = pv.pe_start * SECTOR + pv_extent * extent_bytes + offset % extent_bytes
    left = (segment.start_extent + segment.extent_count) * extent_bytes - offset
    return device, position, left


def read_lv(vg: OpenVolumeGroup, lv_name: str, offset: int, length: int) -> bytes:
    """`length` bytes of an LV from byte `offset`, across its segments, wherever they lie."""
    lv = _logical_volume(vg, lv_name)
    lv_size = lv.extent_count * vg.vg.extent_size * SECTOR
    if offset < 0 or length < 0 or offset + length > lv_size:
        raise LvmFormatError(
            f"LV {quoted(lv_name)} is {lv_size} bytes: bytes {offset} to {offset + length} are outside it"
        )
    chunks: list[bytes] = []
    while length:
        device, position, left = map_lv_offset(vg, lv_name, offset)
        count = min(length, left)
        if position + count > device.size:
            raise LvmFormatError(
                f"LV {quoted(lv_name)}: byte {offset} lies at byte {position} of {cut(device.path)}, past its end "
                f"({device.size} bytes); the device or image is truncated"
            )
        chunks.append(pread_exact(device.fd, device.path, position, count, f"LV {quoted(lv_name)}"))
        offset += count
        length -= count
    return b"".join(chunks)

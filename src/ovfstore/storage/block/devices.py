"""The block devices an agent may use: found by pattern, identified (LUN id, vendor...), and read for
the LVM physical volume and volume group each holds, with no LVM tools (`storage.lvm`).

A device's LUN id is its WWID where the kernel gives one (`/sys/block/X/device/wwid` for SCSI,
`/sys/block/X/wwid` for NVMe, the multipath map's uuid for `/dev/mapper/*`), else its name (`loop3`).
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ovfstore.storage.lvm.metadata import VolumeGroup, parse_vg
from ovfstore.storage.lvm.ondisk import LvmFormatError, device_size, read_label, read_mda_header, read_metadata_text

#: A value read from sysfs is a short line; anything longer is cut.
SYSFS_MAX = 256
#: Well-known signatures of data on a device that is no PV: (byte offset, magic, what it is). A device
#: holding one is in use: creating a domain on it would destroy that data (wipefs shows the same ones).
SIGNATURES = (
    (0x438, b"\x53\xef", "an ext2/ext3/ext4 filesystem"),
    (0, b"XFSB", "an XFS filesystem"),
    (0x10040, b"_BHRfS_M", "a btrfs filesystem"),
    (0, b"LUKS\xba\xbe", "a LUKS encrypted volume"),
    (0, b"SKUL\xba\xbe", "a LUKS2 encrypted volume"),
    (0x1000, b"\xfc\x4e\x2b\xa9", "an MD RAID member (1.2)"),
    (0, b"\xfc\x4e\x2b\xa9", "an MD RAID member (1.1)"),
    (0x8001, b"CD001", "an ISO 9660 filesystem"),
    (512, b"EFI PART", "a GPT partition table"),
    (4086, b"SWAPSPACE2", "a swap area"),
    (16374, b"SWAPSPACE2", "a swap area"),
    (65526, b"SWAPSPACE2", "a swap area"),
    (3, b"NTFS    ", "an NTFS filesystem"),
    (510, b"\x55\xaa", "a partition table or boot sector (MBR, FAT)"),
)
#: How much of a device's start is read for signatures (the last offset + magic, rounded to 4 KiB).
SIGNATURE_SPAN = 68 << 10


@dataclass(frozen=True)
class Device:
    """One device: where and what it is, the PV its label names and the VG its own metadata describes
    (None when its metadata areas are ignored, as on every PV of a domain but the first)."""

    path: str
    lun_id: str
    size: int
    vendor: str
    product: str
    serial: str
    pv_uuid: str | None
    vg: VolumeGroup | None
    #: What a device that is no PV holds ("an ext2/ext3/ext4 filesystem"...), None when nothing known.
    signature: str | None = None


def _sysfs(path: str) -> str:
    try:
        with open(path, "rb") as file:
            return file.read(SYSFS_MAX).decode("utf-8", "replace").strip().strip("\0")
    except OSError:
        return ""


def _identity(path: str, is_block: bool) -> tuple[str, str, str, str]:
    """(LUN id, vendor, product, serial) of a device; an image file is known by its file name."""
    name = os.path.basename(os.path.realpath(path))
    if not is_block:
        return os.path.basename(path), "", "", ""
    base = f"/sys/block/{name}"
    wwid = _sysfs(f"{base}/device/wwid") or _sysfs(f"{base}/wwid")
    dm_uuid = _sysfs(f"{base}/dm/uuid")
    if dm_uuid.startswith("mpath-"):
        wwid = dm_uuid.removeprefix("mpath-")
    serial = _sysfs(f"{base}/device/serial") or _sysfs(f"{base}/serial")
    return wwid or name, _sysfs(f"{base}/device/vendor"), _sysfs(f"{base}/device/model"), serial


def expand(patterns: Iterable[str]) -> list[str]:
    """The block devices and image files the patterns (paths or globs) name, each once (by real path),
    in the order found; anything else (a directory, /dev/loop-control, a missing name) is passed over."""
    found: list[str] = []
    seen: set[str] = set()
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]:
            try:
                mode = os.stat(path).st_mode
            except OSError:
                continue
            real = os.path.realpath(path)
            if (stat.S_ISBLK(mode) or stat.S_ISREG(mode)) and real not in seen:
                seen.add(real)
                found.append(path)
    return found


def _newest(fd: int, path: str) -> VolumeGroup | None:
    newest: VolumeGroup | None = None
    for area in read_label(fd, path).metadata_areas:
        try:
            header = read_mda_header(fd, path, area)
            if header.ignored or not header.text_size:
                continue
            vg = parse_vg(read_metadata_text(fd, path, header))
        except LvmFormatError:
            continue  # the other copy may be good; a device none of whose copies reads holds no VG here
        if newest is None or vg.seqno > newest.seqno:
            newest = vg
    return newest


def signature(fd: int) -> str | None:
    """What known data the device's start holds, or None (all zeros, or nothing this knows)."""
    head = os.pread(fd, SIGNATURE_SPAN, 0)
    for offset, magic, what in SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return f"{what} (signature at byte {offset})"
    return None


def probe(path: str) -> Device | None:
    """The device at `path`, or None when it cannot be opened or is empty (a loop device with no file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        is_block = stat.S_ISBLK(os.fstat(fd).st_mode)
        size = device_size(fd)
        if size == 0:
            return None
        lun_id, vendor, product, serial = _identity(path, is_block)
        try:
            label = read_label(fd, path)
        except LvmFormatError:
            return Device(path, lun_id, size, vendor, product, serial, None, None, signature(fd))
        return Device(path, lun_id, size, vendor, product, serial, label.uuid, _newest(fd, path))
    except OSError:
        return None
    finally:
        os.close(fd)


def probe_all(patterns: Iterable[str]) -> list[Device]:
    return [device for device in map(probe, expand(patterns)) if device is not None]


@dataclass(frozen=True)
class Group:
    """A VG and the devices found of its PVs (by PV name)."""

    vg: VolumeGroup
    devices: dict[str, Device]


def volume_groups(devices: Sequence[Device]) -> dict[str, Group]:
    """The VGs the devices hold, by VG name, each with the devices of its PVs; the newest metadata wins."""
    newest: dict[str, VolumeGroup] = {}
    for device in devices:
        if device.vg is not None and (device.vg.id not in newest or device.vg.seqno > newest[device.vg.id].seqno):
            newest[device.vg.id] = device.vg
    by_pv = {device.pv_uuid: device for device in devices if device.pv_uuid}
    groups: dict[str, Group] = {}
    for vg in newest.values():
        members = {name: by_pv[pv.id] for name, pv in vg.pvs.items() if pv.id in by_pv}
        groups[vg.name] = Group(vg, members)
    return groups


def vg_of(device: Device, groups: dict[str, Group]) -> VolumeGroup | None:
    return next((g.vg for g in groups.values() if device in g.devices.values()), None)

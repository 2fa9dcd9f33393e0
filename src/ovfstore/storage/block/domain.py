"""`BlockDomain`: a block storage domain the agent creates and changes (docs/FORMATS.md 6).

Every change of LVM metadata (the VG, its tags, LVs and their tags) is made by the LVM tools (`lvmcmd`)
under the VG's operation lock, and read back from the devices with the pure reader (`BlockView.refresh`).
Volume metadata is written into its slot of the `metadata` LV, and volume data into the LV, through
`lvio` (the activated LV, or the segment map where there is no device-mapper).

Commit points, so that a crash leaves nothing half-listed:
- a domain: the VG is created tagged `RHAT_storage_domain_UNREADY`, which becomes `RHAT_storage_domain`
  once the special LVs and the `MDT_` tags are in place;
- a volume: the LV is created tagged `OVIRT_VOL_INITIALIZING` with its `MD_<slot>` tag (so no other
  volume takes the slot), the slot is written, then one `lvchange` swaps the initializing tag for
  `IU_<image>` and `PU_<parent>`: until then, no reader lists it;
- an image's deletion: one `lvchange` renames `IU_<image>` to `IU__remove_me_<image>` on all its LVs,
  then the slots are cleared and the LVs removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

from ovfstore.storage import fencing
from ovfstore.storage import metadata as md
from ovfstore.storage.backend import VolumeBackend, aligned_buffer
from ovfstore.storage.block import slots
from ovfstore.storage.block.devices import probe, vg_of, volume_groups
from ovfstore.storage.block.locks import lock_file, vg_locked, volume_lock
from ovfstore.storage.block.lvio import lv_size
from ovfstore.storage.block.lvmcmd import Lvm
from ovfstore.storage.block.tags import (
    DOMAIN_READY,
    DOMAIN_UNREADY,
    INITIALIZING,
    MD_PREFIX,
    SLOT_PREFIX,
    VolumeTags,
    domain_tags,
    removing_tag,
)
from ovfstore.storage.block.view import METADATA_LV, BlockView
from ovfstore.storage.domain import DOMAIN_CLASSES, VolumeOnDisk, check_uuid, check_volume_request, resized_meta
from ovfstore.storage.errors import (
    AlreadyExists,
    ImageNotFound,
    InvalidArgument,
    StorageError,
    ToolFailed,
    WrongPool,
)
from ovfstore.storage.lvm.ondisk import SECTOR
from ovfstore.store.quoting import quoted

log = logging.getLogger(__name__)

BLOCK_STORAGE_TYPES = ("ISCSI", "FCP")
MIB = 1 << 20
EXTENT_MIB = 128
#: The special LVs and their sizes in MiB, in VDSM's order of creation (format 5).
SPECIAL_LV_SIZES = (
    ("metadata", 128), ("ids", 128), ("inbox", 128), ("outbox", 128), ("leases", 2048), ("xleases", 1024),
    ("master", 1024),
)  # fmt: skip


def _tag_args(option: str, values: Sequence[str]) -> list[str]:
    return [arg for value in values for arg in (option, value)]


class BlockDomain(BlockView):
    """A block domain over the devices of its VG, changed with the LVM tools (`lvm_system_dir`: the
    LVM_SYSTEM_DIR they run with, None for the host's). `lun_ids` names each device by its LUN id."""

    def __init__(
        self, paths: Sequence[str], lvm_system_dir: str | None = None, lun_ids: dict[str, str] | None = None
    ) -> None:
        super().__init__(paths)
        self.lvm = Lvm(list(self.pv_paths.values()) or list(paths), lvm_system_dir)
        self.lun_ids = dict(lun_ids or {})

    # --- creation -------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        devices: Sequence[str],
        sd_id: str,
        description: str,
        storage_type: str = "ISCSI",
        domain_class: str = "Data",
        lvm_system_dir: str | None = None,
        lun_ids: dict[str, str] | None = None,
    ) -> BlockDomain:
        """A new, detached format 5 domain on `devices` (paths of block devices holding no PV yet)."""
        sd_id = check_uuid(sd_id, "storage domain id")
        values = _checked_new_values(devices, sd_id, description, storage_type, domain_class)
        leftover = _unfinished_vg(devices, sd_id)
        _check_devices_free(devices, leftover)
        lvm = Lvm(devices, lvm_system_dir)
        with vg_locked(sd_id):
            if leftover is not None:  # an earlier creation of this very domain died before its commit point
                lvm.run("vgremove", "--yes", "--force", sd_id)
                lvm.run("pvremove", "--yes", *leftover)
            made: list[str] = []
            try:
                _make_vg(lvm, devices, sd_id, made)
                domain = cls(devices, lvm_system_dir, dict(lun_ids or {}))
                values.update(domain._pv_keys())
                values["VGUUID"] = domain.vg.id
                lvm.run("vgchange", *_tag_args("--addtag", domain_tags(values)), sd_id)
                # The commit point: a reader takes the VG for a domain from here on.
                lvm.run("vgchange", "--deltag", DOMAIN_UNREADY, "--addtag", DOMAIN_READY, sd_id)
            except BaseException:
                with contextlib.suppress(StorageError):
                    lvm.run("vgremove", "--yes", "--force", sd_id)
                if made:
                    with contextlib.suppress(StorageError):
                        lvm.run("pvremove", "--yes", *made)
                raise
        domain.refresh()
        return domain

    def _pv_keys(self) -> dict[str, str]:
        """`PV0`, `PV1`... in the order of the devices given at creation: LUN id, PV UUID, extents."""
        by_path = {path: name for name, path in self.pv_paths.items()}
        keys: dict[str, str] = {}
        offset = 0
        for number, path in enumerate(self.device_paths):
            pv = self.vg.pvs[by_path[path]]
            lun = self.lun_ids.get(path) or path.rsplit("/", 1)[-1]
            keys[f"PV{number}"] = f"pv:{lun},uuid:{pv.id},pestart:0,pecount:{pv.pe_count},mapoffset:{offset}"
            offset += pv.pe_count
        return keys

    # --- domain metadata ------------------------------------------------------------------------------

    def _set_metadata(self, values: dict[str, str]) -> md.DomainMetadata:
        """Replace the `MDT_` tags that change, in one `vgchange` (one metadata commit)."""
        old = {t for t in self.vg.tags if t.startswith(MD_PREFIX)}
        new = set(domain_tags(values))
        args = _tag_args("--deltag", sorted(old - new)) + _tag_args("--addtag", sorted(new - old))
        if args:
            self.lvm.run("vgchange", *args, self.vg.name)
        self.refresh()
        return self.metadata()

    def attach(self, pool_id: str, master: bool) -> md.DomainMetadata:
        pool_id = check_uuid(pool_id, "data center id")
        with vg_locked(self.sd_id):
            self.refresh()
            current = self.metadata()
            if current.pool_id not in ("", pool_id):
                raise WrongPool(
                    f"storage domain {self.sd_id} is attached to data center {current.pool_id}; detach it "
                    "there first, or force a detach if that data center no longer exists"
                )
            return self._set_metadata(dict(current.values, POOL_UUID=pool_id, ROLE="Master" if master else "Regular"))

    def detach(self, pool_id: str, force: bool = False) -> md.DomainMetadata:
        pool_id = check_uuid(pool_id, "data center id")
        with vg_locked(self.sd_id):
            self.refresh()
            current = self.metadata()
            if current.pool_id not in ("", pool_id) and not force:
                raise WrongPool(
                    f"storage domain {self.sd_id} is attached to data center {current.pool_id}, not "
                    f"{pool_id}; detach with force=true if {current.pool_id} is stale"
                )
            return self._set_metadata(dict(current.values, POOL_UUID="", ROLE="Regular"))

    # --- volumes --------------------------------------------------------------------------------------

    def open_volume(self, img_id: str, vol_id: str, writable: bool = False, direct: bool = True) -> VolumeBackend:
        return self._open(img_id, vol_id, writable, direct)

    @contextmanager
    def volume_locked(self, img_id: str, vol_id: str, exclusive: bool = True) -> Iterator[VolumeOnDisk]:
        self.volume_info(img_id, vol_id)  # a missing volume is "not found"
        with volume_lock(self.sd_id, vol_id.lower(), exclusive):
            self.refresh()
            yield self.volume_info(img_id, vol_id)  # as the previous lock holder left it

    def write_volume_meta(self, img_id: str, vol_id: str, meta: md.VolumeMetadata) -> None:
        """Write the volume's slot, durably; callers hold the volume's lock."""
        tags = self._tags_of(img_id, vol_id)
        assert tags.slot is not None  # volume_info of a volume without MD_ raises
        self._write_slot(tags.slot, slots.format_slot(meta, self._version()))

    def _write_slot(self, slot: int, data: bytes) -> None:
        version = self._version()
        offset = slots.checked_offset(slot, version, lv_size(self.vg, METADATA_LV))
        with self._metadata_lv(writable=True) as backend:
            if version >= 5:  # an 8 KiB slot at an 8 KiB boundary: one aligned write
                _write_at(backend, offset, data)
            else:  # a 512-byte slot: the page around it, read and written back under the VG lock
                with vg_locked(self.sd_id):
                    start = offset - offset % 4096
                    page = bytearray(self._read_at(backend, start, 4096))
                    page[offset - start : offset - start + len(data)] = data
                    _write_at(backend, start, bytes(page))

    @contextmanager
    def term_fenced(self, term: int) -> Iterator[None]:
        """Check and raise the domain's leadership term (`storage.fencing`), kept in the VG tag
        `OVFSTORE_TERM_<n>` and changed in one `vgchange` (one metadata commit); locked on this host, as
        every block domain lock (docs/AGENT.md, "Fencing")."""

        def read() -> int:
            self.refresh()  # another process or host may have raised it
            return fencing.term_of_tags(self.vg.tags, self.sd_id)

        def record(new: int) -> None:
            with vg_locked(self.sd_id):
                self.refresh()
                old = sorted(t for t in self.vg.tags if t.startswith(fencing.TERM_TAG_PREFIX))
                self.lvm.run(
                    "vgchange", *_tag_args("--deltag", old), "--addtag", f"{fencing.TERM_TAG_PREFIX}{new}", self.vg.name
                )
                self.refresh()

        with fencing.fenced(lock_file(f"{self.sd_id}.term.lock"), self.sd_id, term, read, record):
            yield

    def set_description(self, img_id: str, vol_id: str, text: str) -> VolumeOnDisk:
        md.check_volume_description(text)
        with self.volume_locked(img_id, vol_id) as info:
            self.write_volume_meta(img_id, vol_id, replace(info.meta, description=text))
        return self.volume_info(img_id, vol_id)

    def _free_slot(self, version: int) -> int:
        used = {t.slot for _, t in self._volume_tags() if isinstance(t, VolumeTags) and t.slot is not None}
        for lv in self.vg.lvs.values():  # also the slots of LVs whose other tags are damaged
            for tag in lv.tags:
                digits = tag[len(SLOT_PREFIX) :]
                if tag.startswith(SLOT_PREFIX) and digits.isascii() and digits.isdigit() and len(digits) < 8:
                    used.add(int(digits))
        last = slots.slot_count(version, lv_size(self.vg, METADATA_LV))
        for slot in range(slots.first_slot(version), last):
            if slot not in used:
                return slot
        raise InvalidArgument(f"storage domain {self.sd_id} has no free metadata slot left ({last} slots)")

    def create_volume(
        self,
        img_id: str,
        vol_id: str,
        capacity: int,
        format: str = "RAW",
        volume_type: str = "PREALLOCATED",
        disk_type: str = "DATA",
        description: str = "",
        parent: str | None = None,
    ) -> VolumeOnDisk:
        """A RAW volume in an LV of the capacity rounded up to whole extents (always PREALLOCATED on
        block storage, whatever type is asked)."""
        img_id = check_uuid(img_id, "image id")
        vol_id = check_uuid(vol_id, "volume id")
        check_volume_request(format, volume_type, capacity)
        if format != "RAW" or parent is not None:
            raise InvalidArgument(
                "the agent creates RAW volumes only on block domains: a COW (qcow2) volume needs qemu-img on an "
                "activated LV, which this agent does not do; create the disk as RAW"
            )
        meta = md.VolumeMetadata(
            capacity=capacity, ctime=int(time.time()), description=description, disk_type=disk_type,
            domain=self.sd_id, format="RAW", generation=0, image=img_id, legality="LEGAL", parent=md.BLANK_UUID,
            sequence=0, type="PREALLOCATED", voltype="LEAF",
        )  # fmt: skip
        md.format_volume_meta(meta)  # refuses a bad description before any change
        size = self._lv_bytes(capacity)
        with vg_locked(self.sd_id):
            self.refresh()
            version = self.metadata().version
            if vol_id in self.vg.lvs:
                raise AlreadyExists(f"volume {vol_id} already exists on storage domain {self.sd_id}")
            slot = self._free_slot(version)
            _lvcreate(self.lvm, self.vg.name, vol_id, size, [INITIALIZING, f"{SLOT_PREFIX}{slot}"])
            try:
                self.refresh()
                self._write_slot(slot, slots.format_slot(meta, version))
                self.lvm.run(
                    "lvchange", "--deltag", INITIALIZING,
                    *_tag_args("--addtag", [f"IU_{img_id}", f"PU_{md.BLANK_UUID}"]), f"{self.vg.name}/{vol_id}",
                )  # fmt: skip
            except BaseException:
                with contextlib.suppress(StorageError):
                    self.lvm.run("lvremove", "--yes", "--force", f"{self.vg.name}/{vol_id}")
                raise
            self.refresh()
        return self.volume_info(img_id, vol_id)

    def _lv_bytes(self, capacity: int) -> int:
        """The size of an LV holding `capacity` bytes: whole extents of the VG."""
        extent = self.vg.extent_size * SECTOR
        return -(-capacity // extent) * extent

    def resize_volume(self, img_id: str, vol_id: str, capacity: int) -> VolumeOnDisk:
        """Give RAW volume `vol_id` `capacity` bytes (`resized_meta` says which volumes may be resized):
        its LV is extended (`lvextend`) or reduced (`lvreduce`) to whole extents, and its slot's `CAP`
        set, under its lease and the VG lock. The LV grows before the slot says so and shrinks after, so
        a crash between the two leaves an LV longer than its `CAP`, which is harmless; a grow never
        reduces an LV that is longer than it needs (such a crash, or a disk made so elsewhere)."""
        img_id = check_uuid(img_id, "image id")
        vol_id = check_uuid(vol_id, "volume id")
        with self.volume_locked(img_id, vol_id) as info, vg_locked(self.sd_id):
            meta = resized_meta(info, capacity)
            if meta is not None:
                self.refresh()
                wanted = self._lv_bytes(capacity)
                current = lv_size(self.vg, vol_id)
                lv = f"{self.vg.name}/{vol_id}"
                if wanted > current:
                    self.lvm.run("lvextend", "--yes", "--size", f"{wanted}b", lv)
                    self.refresh()
                self.write_volume_meta(img_id, vol_id, meta)
                if wanted < current and capacity < info.meta.capacity:  # a store made smaller, never a grow
                    self.lvm.run("lvreduce", "--yes", "--force", "--size", f"{wanted}b", lv)
                    self.refresh()
        return self.volume_info(img_id, vol_id)

    def delete_image(self, img_id: str) -> None:
        img_id = check_uuid(img_id, "image id")
        with vg_locked(self.sd_id):
            self.refresh()
            if img_id not in self.images():
                raise ImageNotFound(f"image {img_id} is not on storage domain {self.sd_id}")
            names = sorted(
                name
                for name, t in self._volume_tags()
                if isinstance(t, VolumeTags) and t.is_volume and t.image == img_id
            )
            lv_paths = [f"{self.vg.name}/{name}" for name in names]
            with contextlib.ExitStack() as held:
                for name in names:
                    held.enter_context(volume_lock(self.sd_id, name, True))
                slot_of = {name: t.slot for name, t in self._volume_tags() if isinstance(t, VolumeTags)}
                # A slot another LV claims too may hold that LV's metadata: it is left as it is.
                shared = self._shared_slots()
                self.lvm.run(
                    "lvchange", "--deltag", f"IU_{img_id}", "--addtag", removing_tag(img_id), *lv_paths
                )  # fmt: skip
                self.refresh()
                version = self._version()
                for name in names:
                    slot = slot_of.get(name)
                    if slot in shared:
                        log.warning(
                            "storage domain %s: metadata slot %s of volume %s (image %s) is claimed by another LV "
                            "too; it is not cleared, repair the MD_ tags",
                            self.sd_id, slot, name, img_id,
                        )  # fmt: skip
                    elif slot is not None:
                        with contextlib.suppress(StorageError):  # a damaged tag: the LV goes all the same
                            self._write_slot(slot, slots.cleared_slot(version))
                self.lvm.run("lvremove", "--yes", "--force", *lv_paths)
            self.refresh()


def _new_values(sd_id: str, description: str, storage_type: str, domain_class: str) -> dict[str, str]:
    values = md.new_domain_values(sd_id, description, storage_type, domain_class, "")
    del values["REMOTE_PATH"]
    return values


def _holds_data(path: str, what: str) -> str:
    return (
        f"device {quoted(path)} holds data: {what}; a domain is not created over it. Pick another device, or "
        "wipe this one (wipefs -a) if its data is not wanted"
    )


def _pvcreate(lvm: Lvm, args: Sequence[str], path: str) -> None:
    """`pvcreate` of one device, its refusal to wipe a signature said as what it is."""
    try:
        lvm.run(*args)
    except ToolFailed as e:
        if "signature" in str(e) or "Aborted wiping" in str(e):
            raise AlreadyExists(_holds_data(path, str(e))) from e
        raise


def _unfinished_vg(devices: Sequence[str], sd_id: str) -> list[str] | None:
    """The PVs of a VG named `sd_id`, tagged `RHAT_storage_domain_UNREADY`, that lies on exactly the
    `devices` (paths, by real path): what a creation of that domain left when it died before its commit
    point, removed before the domain is created again. None when there is no such VG."""
    found = [d for d in map(probe, devices) if d is not None]
    groups = volume_groups(found)
    group = groups.get(sd_id)
    if group is None or DOMAIN_UNREADY not in group.vg.tags or DOMAIN_READY in group.vg.tags:
        return None
    members = {os.path.realpath(d.path) for d in group.devices.values()}
    if len(group.devices) != len(group.vg.pvs) or members != {os.path.realpath(p) for p in devices}:
        return None  # on other devices as well (or some missing): left to the administrator
    if any(d.pv_uuid is not None and vg_of(d, groups) is not group.vg for d in found):
        return None
    return [d.path for d in group.devices.values()]


def _lvcreate(lvm: Lvm, vg: str, name: str, size: int, tags: list[str]) -> None:
    """An LV of `size` bytes, created inactive and not zeroed (there may be no device-mapper to do either)."""
    lvm.run(
        "lvcreate", "--yes", "--activate", "n", "--zero", "n", "--wipesignatures", "n", "--size", f"{size}b",
        "--name", name, *_tag_args("--addtag", tags), vg,
    )  # fmt: skip


def _write_at(backend: VolumeBackend, offset: int, data: bytes) -> None:
    """Write `data` (a multiple of 4 KiB) at `offset` (4 KiB aligned) and fsync."""
    buf = aligned_buffer(len(data))
    try:
        buf[:] = data
        view = memoryview(buf)
        try:
            backend.seek(offset)
            backend.write(view)
            backend.flush()
        finally:
            view.release()
    finally:
        buf.close()


def _checked_new_values(
    devices: Sequence[str], sd_id: str, description: str, storage_type: str, domain_class: str
) -> dict[str, str]:
    """The new domain's metadata values, every argument checked before anything on storage changes."""
    if domain_class not in DOMAIN_CLASSES:
        raise InvalidArgument(f"domain class {quoted(domain_class)} is not one of {', '.join(DOMAIN_CLASSES)}")
    if storage_type not in BLOCK_STORAGE_TYPES:
        raise InvalidArgument(
            f"storage type {quoted(storage_type)} is not a block type ({', '.join(BLOCK_STORAGE_TYPES)})"
        )
    if not devices or len(set(devices)) != len(devices):
        raise InvalidArgument("a block domain needs one or more devices, each named once")
    values = _new_values(sd_id, description, storage_type, domain_class)
    domain_tags(dict(values, PV0="pv:x,uuid:y", VGUUID="z"))  # refuses a bad description before any change
    return values


def _check_devices_free(devices: Sequence[str], leftover: list[str] | None) -> None:
    """Refuse a device that holds a PV (unless of this domain's unfinished creation) or any other data."""
    for path in devices:
        found = probe(path)
        if found is None:
            raise InvalidArgument(f"device {quoted(path)} cannot be opened or is empty")
        if found.pv_uuid is not None and leftover is None:
            raise AlreadyExists(
                f"device {quoted(path)} is already an LVM physical volume ({found.pv_uuid}"
                f"{', of VG ' + quoted(found.vg.name) if found.vg else ''}); import that domain, or wipe the "
                "device (pvremove) if its data is not wanted"
            )
        if found.signature is not None:
            raise AlreadyExists(_holds_data(path, found.signature))


def _make_vg(lvm: Lvm, devices: Sequence[str], sd_id: str, made: list[str]) -> None:
    """The PVs, the VG (tagged unready) and the special LVs; `made` collects the PVs created, for cleanup."""
    # Two metadata copies on each PV, as VDSM makes them; only the first PV's are in use, the others'
    # are flagged ignored (LVM then keeps one set of copies up to date, not one per LUN). No --yes:
    # pvcreate must refuse, never wipe, a signature found on the device since it was probed.
    pvcreate = ("pvcreate", "--metadatasize", "128m", "--pvmetadatacopies", "2")
    for number, path in enumerate(devices):
        _pvcreate(lvm, [*pvcreate, *(("--metadataignore", "y") if number else ()), path], path)
        made.append(path)
    lvm.run(
        "vgcreate", "--yes", "--physicalextentsize", f"{EXTENT_MIB}m", "--setautoactivation", "n",
        "--addtag", DOMAIN_UNREADY, sd_id, *devices,
    )  # fmt: skip
    for name, size in SPECIAL_LV_SIZES:
        _lvcreate(lvm, sd_id, name, size * MIB, [])

"""`BlockView`: a block storage domain read from its devices alone, with no LVM tools (docs/FORMATS.md 6).

The VG metadata comes from `storage.lvm` (the newest copy on the PVs), the domain metadata from the VG's
`MDT_` tags, each volume from its LV's tags and its slot in the `metadata` LV, its bytes through
`lvio` (the activated LV where there is one, else the segment map). Nothing is written: this is what
`ovfstore inspect` reads a LUN with, and the base of the agent's `BlockDomain`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ovfstore.storage import metadata as md
from ovfstore.storage.backend import ALIGNMENT, VolumeBackend, aligned_buffer
from ovfstore.storage.block import slots
from ovfstore.storage.block.lvio import lv_size, open_lv
from ovfstore.storage.block.tags import DOMAIN_READY, DOMAIN_UNREADY, VolumeTags, domain_metadata, parse_volume_tags
from ovfstore.storage.domain import Problem, VolumeOnDisk, _strict, _usable, as_storage_error, check_uuid
from ovfstore.storage.errors import (
    DomainNotFound,
    ImageNotFound,
    InvalidArgument,
    InvalidMetadata,
    StorageError,
    VolumeNotFound,
    from_os_error,
)
from ovfstore.storage.lvm import LvmFormatError, VolumeGroup, open_volume_group
from ovfstore.store.quoting import cut, quoted

#: The LVs VDSM creates in every block domain; never volumes.
SPECIAL_LVS = ("metadata", "ids", "inbox", "outbox", "leases", "xleases", "master")
METADATA_LV = "metadata"
#: The block domain formats whose metadata slots are known (docs/FORMATS.md 6.3).
BLOCK_VERSIONS = (3, 4, 5)
#: Reads of the VG metadata before it is taken for damaged (a commit of another process may be under way).
READ_ATTEMPTS = 3


class BlockView:
    """A block domain over `paths`, the devices (or images) of its VG: read-only."""

    storage = "block"

    def __init__(self, paths: Sequence[str]) -> None:
        self.device_paths = tuple(paths)
        self.refresh()

    def refresh(self) -> None:
        """Read the VG metadata from the devices again (after a change made by the LVM tools)."""
        for attempt in range(READ_ATTEMPTS):
            try:
                with open_volume_group(self.device_paths) as opened:
                    self.vg: VolumeGroup = opened.vg
                    self.pv_paths: dict[str, str] = {name: device.path for name, device in opened.devices.items()}
                    #: Why each metadata copy passed over for another was unreadable.
                    self.damaged: list[str] = list(opened.damaged)
                break
            except LvmFormatError as e:
                # The LVM tools of another process may be committing a change right now: read again.
                if attempt + 1 < READ_ATTEMPTS:
                    time.sleep(0.05)
                    continue
                where = cut(", ".join(self.device_paths))
                raise InvalidMetadata(f"the LVM metadata of {where} cannot be read: {e}") from e
            except OSError as e:
                raise from_os_error(e, f"the devices {cut(', '.join(self.device_paths))}") from e
        try:
            self.sd_id = check_uuid(self.vg.name, "volume group name")
        except InvalidArgument as e:
            raise DomainNotFound(f"VG {quoted(self.vg.name)} is not named by a domain id: not a storage domain") from e
        self.path = f"/dev/{self.vg.name}"
        self.vg_uuid = self.vg.id

    # --- domain metadata ------------------------------------------------------------------------------

    def metadata(self) -> md.DomainMetadata:
        tags = set(self.vg.tags)
        if DOMAIN_READY not in tags:
            if DOMAIN_UNREADY in tags:
                raise InvalidMetadata(
                    f"VG {self.sd_id} is tagged {DOMAIN_UNREADY}: the creation of this domain did not finish; "
                    "remove the VG and create the domain again"
                )
            raise DomainNotFound(f"VG {self.sd_id} has no {DOMAIN_READY} tag: it is not a storage domain")
        parsed = domain_metadata(self.vg.tags)
        if parsed.sd_id and parsed.sd_id != self.sd_id:
            raise InvalidMetadata(f"VG {self.sd_id} holds the metadata of domain {cut(parsed.sd_id)}: misnamed")
        if parsed.version not in BLOCK_VERSIONS:  # only formats 3, 4 and 5 say where the volume slots are
            raise InvalidMetadata(
                f"storage domain {self.sd_id}: damaged metadata, its MDT_ tags give VERSION="
                f"{quoted(parsed.values.get('VERSION', ''))}, not one of {', '.join(map(str, BLOCK_VERSIONS))}; "
                "where its volumes' metadata lies is unknown"
            )
        return parsed

    def _version(self) -> int:
        return self.metadata().version

    # --- the metadata LV ------------------------------------------------------------------------------

    @contextmanager
    def _metadata_lv(self, writable: bool = False) -> Iterator[VolumeBackend]:
        if METADATA_LV not in self.vg.lvs:
            raise InvalidMetadata(f"VG {self.sd_id} has no {METADATA_LV} LV: the domain is damaged")
        with open_lv(self.vg, METADATA_LV, self.pv_paths, writable) as backend:
            yield backend

    @staticmethod
    def _read_at(backend: VolumeBackend, offset: int, length: int) -> bytes:
        start = offset - offset % ALIGNMENT
        span = offset + length - start
        span += -span % ALIGNMENT
        buf = aligned_buffer(span)
        try:
            backend.seek(start)
            view = memoryview(buf)
            try:
                n = backend.readinto(view)
                data = bytes(view[offset - start : min(n, offset - start + length)])
            finally:
                view.release()
        finally:
            buf.close()
        return data

    def _slot(self, backend: VolumeBackend, name: str, tags: VolumeTags, version: int) -> md.VolumeMetadata:
        if tags.slot is None:
            raise InvalidMetadata(f"LV {quoted(name)} has no MD_ tag: where its metadata is is unknown")
        offset = slots.checked_offset(tags.slot, version, lv_size(self.vg, METADATA_LV))
        return slots.parse_slot(self._read_at(backend, offset, slots.SLOT_DATA))

    # --- images and volumes ---------------------------------------------------------------------------

    def _volume_tags(self) -> Iterator[tuple[str, VolumeTags | StorageError]]:
        """Every LV that may be a volume, with its tags or why they cannot be read."""
        for name in sorted(self.vg.lvs):
            if name in SPECIAL_LVS:
                continue
            try:
                yield name, parse_volume_tags(self.vg.lvs[name].tags)
            except InvalidMetadata as e:
                yield name, e

    def _shared_slots(self) -> set[int]:
        """Slots two LVs claim: damage, since writing one volume's metadata would change the other's."""
        counts = Counter(t.slot for _, t in self._volume_tags() if isinstance(t, VolumeTags) and t.slot is not None)
        return {slot for slot, count in counts.items() if count > 1}

    def images(self) -> list[str]:
        return sorted({t.image for _, t in self._volume_tags() if isinstance(t, VolumeTags) and t.is_volume})

    def volumes(self, img_id: str) -> list[VolumeOnDisk]:
        return _strict(self.scan_volumes(img_id))

    def all_volumes(self) -> list[VolumeOnDisk]:
        return _strict(self.scan_volumes())

    def _lv_path(self, name: str) -> str:
        return f"{self.path}/{name}"

    def scan_volumes(self, img_id: str | None = None) -> tuple[list[VolumeOnDisk], list[Problem]]:
        """The volumes of image `img_id`, or of every image, and a `Problem` for each LV that cannot be
        read as a volume (bad tags, a slot outside the metadata LV or shared, unparseable metadata)."""
        if img_id is not None:
            img_id = check_uuid(img_id, "image id")
            if img_id not in self.images():
                raise ImageNotFound(f"image {img_id} is not on storage domain {self.sd_id}")
        version = self._version()
        shared = self._shared_slots()
        found: list[VolumeOnDisk] = []
        problems: list[Problem] = []
        with self._metadata_lv() as backend:
            for name, tags in self._volume_tags():
                path = self._lv_path(name)
                if isinstance(tags, StorageError):
                    problems.append(Problem(path, tags, volume=name))
                    continue
                if not tags.is_volume or (img_id is not None and tags.image != img_id):
                    continue
                try:
                    found.append(_usable(self._info(backend, name, tags, version, shared)))
                except (StorageError, OSError) as e:
                    problems.append(Problem(path, as_storage_error(e, f"volume {quoted(path)}"), tags.image, name))
        return found, problems

    def _info(
        self, backend: VolumeBackend, name: str, tags: VolumeTags, version: int, shared: set[int]
    ) -> VolumeOnDisk:
        check_uuid(name, "volume LV name")
        if tags.slot in shared:
            raise InvalidMetadata(
                f"LV {name} shares metadata slot {tags.slot} with another LV; neither is trusted, repair the MD_ tags"
            )
        meta = self._slot(backend, name, tags, version)
        size = lv_size(self.vg, name)
        return VolumeOnDisk(tags.image, name, meta, size, size)

    def _tags_of(self, img_id: str, vol_id: str) -> VolumeTags:
        img_id = check_uuid(img_id, "image id")
        vol_id = check_uuid(vol_id, "volume id")
        lv = self.vg.lvs.get(vol_id)
        tags = parse_volume_tags(lv.tags) if lv is not None else None
        if tags is None or not tags.is_volume or tags.image != img_id:
            raise VolumeNotFound(f"volume {vol_id} of image {img_id} is not on storage domain {self.sd_id}")
        return tags

    def volume_info(self, img_id: str, vol_id: str) -> VolumeOnDisk:
        tags = self._tags_of(img_id, vol_id)
        with self._metadata_lv() as backend:
            return self._info(backend, vol_id.lower(), tags, self._version(), self._shared_slots())

    def open_volume(self, img_id: str, vol_id: str, writable: bool = False, direct: bool = True) -> VolumeBackend:
        """The volume's bytes (read-only in a view; `BlockDomain` writes)."""
        if writable:
            raise InvalidArgument(f"storage domain {self.sd_id} is open read-only here; writes go through the agent")
        return self._open(img_id, vol_id, writable, direct)

    def _open(self, img_id: str, vol_id: str, writable: bool, direct: bool) -> VolumeBackend:
        self._tags_of(img_id, vol_id)
        return open_lv(self.vg, vol_id.lower(), self.pv_paths, writable, direct)

    # --- legacy OVFs ----------------------------------------------------------------------------------

    def legacy_ovfs(self) -> dict[str, bytes]:
        return {}

    def scan_legacy(self) -> tuple[dict[str, bytes], list[Problem]]:
        """None: a block domain's pre-OVF-store copies are in the ext3 `master` LV, stale since OVF stores
        exist and not read (docs/FORMATS.md 6.2)."""
        return {}, []


__all__ = ["SPECIAL_LVS", "BlockView"]

"""One interface over both kinds of storage domain, and where the agent finds them.

`Domain` is what the agent's handlers, `storage.transfer` and offline tools call; `FileDomain`
(a directory under a storage root, `storage.domain`) and `BlockDomain` (an LVM volume group on the
agent's devices, `storage.block`) both provide it, so none of them knows which kind it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from ovfstore.storage import metadata as md
from ovfstore.storage.backend import VolumeBackend
from ovfstore.storage.block.devices import Device, Group, probe_all, volume_groups
from ovfstore.storage.block.domain import BlockDomain
from ovfstore.storage.block.tags import DOMAIN_READY, DOMAIN_UNREADY
from ovfstore.storage.domain import FileDomain, Problem, VolumeOnDisk, as_storage_error, check_uuid, scan_domains
from ovfstore.storage.errors import DomainNotFound, InvalidArgument, StorageError
from ovfstore.store.quoting import quoted


class Domain(Protocol):
    """A storage domain, file or block: everything the agent and offline tools do with one."""

    @property
    def storage(self) -> str: ...  # "file" or "block"
    @property
    def sd_id(self) -> str: ...
    @property
    def path(self) -> str: ...

    def metadata(self) -> md.DomainMetadata: ...
    def attach(self, pool_id: str, master: bool) -> md.DomainMetadata: ...
    def detach(self, pool_id: str, force: bool = False) -> md.DomainMetadata: ...
    def images(self) -> list[str]: ...
    def volumes(self, img_id: str) -> list[VolumeOnDisk]: ...
    def all_volumes(self) -> list[VolumeOnDisk]: ...
    def scan_volumes(self, img_id: str | None = None) -> tuple[list[VolumeOnDisk], list[Problem]]: ...
    def volume_info(self, img_id: str, vol_id: str) -> VolumeOnDisk: ...
    def open_volume(self, img_id: str, vol_id: str, writable: bool, direct: bool = True) -> VolumeBackend: ...
    def write_volume_meta(self, img_id: str, vol_id: str, meta: md.VolumeMetadata) -> None: ...
    def volume_locked(
        self, img_id: str, vol_id: str, exclusive: bool = True
    ) -> AbstractContextManager[VolumeOnDisk]: ...
    def set_description(self, img_id: str, vol_id: str, text: str) -> VolumeOnDisk: ...
    def term_fenced(self, term: int) -> AbstractContextManager[None]: ...
    def create_volume(
        self,
        img_id: str,
        vol_id: str,
        capacity: int,
        format: str = ...,
        volume_type: str = ...,
        disk_type: str = ...,
        description: str = ...,
        parent: str | None = None,
    ) -> VolumeOnDisk: ...
    def resize_volume(self, img_id: str, vol_id: str, capacity: int) -> VolumeOnDisk: ...
    def delete_image(self, img_id: str) -> None: ...
    def legacy_ovfs(self) -> dict[str, bytes]: ...
    def scan_legacy(self) -> tuple[dict[str, bytes], list[Problem]]: ...


def _is_domain_vg(group: Group) -> bool:
    try:
        check_uuid(group.vg.name, "volume group name")
    except InvalidArgument:
        return False
    return bool({DOMAIN_READY, DOMAIN_UNREADY} & set(group.vg.tags))


def block_domain(group: Group, lvm_system_dir: str | None) -> BlockDomain:
    """The block domain of a VG found on the devices, its PVs in their VG order (pv0, pv1...)."""
    members = [group.devices[name] for name in sorted(group.devices, key=lambda n: (len(n), n))]
    return BlockDomain(
        [d.path for d in members], lvm_system_dir, {d.path: d.lun_id for d in members}
    )  # fmt: skip


def find_block_domain(devices: Sequence[str], sd_id: str, lvm_system_dir: str | None = None) -> BlockDomain | None:
    group = volume_groups(probe_all(devices)).get(sd_id)
    if group is None or not _is_domain_vg(group):
        return None
    return block_domain(group, lvm_system_dir)


def find_domain(roots: Sequence[str], devices: Sequence[str], sd_id: str, lvm_system_dir: str | None = None) -> Domain:
    """Domain `sd_id`: a directory under the roots, or a VG on the devices (paths or glob patterns)."""
    sd_id = check_uuid(sd_id, "storage domain id")
    if roots:
        try:
            return FileDomain.find(tuple(roots), sd_id)
        except DomainNotFound:
            pass
    if devices:
        found = find_block_domain(devices, sd_id, lvm_system_dir)
        if found is not None:
            return found
    raise DomainNotFound(
        f"storage domain {sd_id} is neither under the agent's roots ({', '.join(roots) or 'none'}) nor on its "
        f"devices ({', '.join(devices) or 'none'}); mount it or connect its LUNs, or import it by path"
    )


def scan_all(
    roots: Sequence[str], devices: Sequence[str], lvm_system_dir: str | None = None
) -> tuple[list[tuple[Domain, md.DomainMetadata]], list[Problem]]:
    """Every domain under the roots and on the devices with its metadata; one that cannot be read is a
    `Problem` (its path `/dev/<vg>` for a block domain), and hides no other."""
    files, problems = scan_domains(tuple(roots))
    found: list[tuple[Domain, md.DomainMetadata]] = list(files)
    if devices:
        for name, group in sorted(volume_groups(probe_all(devices)).items()):
            if not _is_domain_vg(group):
                continue
            try:
                domain = block_domain(group, lvm_system_dir)
                found.append((domain, domain.metadata()))
            except (StorageError, OSError) as e:
                path = f"/dev/{name}"
                problems.append(Problem(path, as_storage_error(e, f"storage domain {quoted(path)}")))
    return found, problems


def devices_of(patterns: Sequence[str]) -> tuple[list[Device], dict[str, Group]]:
    """The devices the patterns name, and the VGs they hold by name."""
    devices = probe_all(patterns)
    return devices, volume_groups(devices)

"""Offline inspection of a storage domain, file or block: no engine, no database, no agent, no LVM tools.

A file domain is read from its `<sdUUID>` directory (`FileDomain`); a block domain from its devices, or
image files copied from them, with the pure LVM reader (`BlockView`: the label and metadata parsed from
the raw bytes, each LV reached through its segment map, nothing activated). Both are then read by one
code path, over the read-only part of the `storage.domains.Domain` interface (`ReadableDomain`), the way
recovery would: its metadata, every OVF store volume (each judged by
`store.selection`, the newest good one chosen), and the VMs and templates of the chosen store, with
which of their disks are on the domain. When no store is usable it falls back to the legacy
`master/vms` OVFs that engines before OVF stores wrote.

Memory stays bounded whatever the store holds: every store is first scanned without keeping its
documents, then the chosen one is read a second time and each OVF is parsed (and exported) as it
streams past, leaving only a small report per entity.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from uuid import UUID

from ovfstore.model import DiskStorageType, EntityType, LunConnection, TemplateStatus, VmStatus
from ovfstore.ovf import OvfError, read_ovf
from ovfstore.storage.backend import VolumeBackend
from ovfstore.storage.block.tags import MD_PREFIX, decode_value
from ovfstore.storage.block.view import BlockView
from ovfstore.storage.domain import FileDomain, Problem, VolumeOnDisk
from ovfstore.storage.errors import ChecksumMismatch, StorageError
from ovfstore.storage.lvm.ondisk import SECTOR, device_size
from ovfstore.storage.metadata import CHECKSUM_KEY, ChecksumState, DomainMetadata, parse_domain_metadata
from ovfstore.store.quoting import cut, quoted
from ovfstore.store.selection import StoreVerdict, StoreVolume, choose, evaluate, is_store
from ovfstore.store.tarread import StoreReadError, StoreSummary, scan_store

#: Stores are read in pieces of this size: large enough for few system calls, small next to a store.
READ_CHUNK = 1 << 20

Source = Literal["store", "legacy", "none"]


class InspectError(Exception):
    """The domain cannot be inspected at all: not a domain, its metadata or volume list unreadable."""


class ReadableDomain(Protocol):
    """What inspection reads of a domain: the read-only part of `storage.domains.Domain`, which both
    `FileDomain` and the read-only `BlockView` (and so `BlockDomain`) provide."""

    @property
    def storage(self) -> str: ...  # "file" or "block"
    @property
    def sd_id(self) -> str: ...

    def metadata(self) -> DomainMetadata: ...
    def scan_volumes(self, img_id: str | None = None) -> tuple[list[VolumeOnDisk], list[Problem]]: ...
    def open_volume(self, img_id: str, vol_id: str, writable: bool, direct: bool = True) -> VolumeBackend: ...
    def scan_legacy(self) -> tuple[dict[str, bytes], list[Problem]]: ...


@dataclass(frozen=True, slots=True)
class DiskReport:
    disk_id: UUID
    volume_ids: tuple[UUID, ...]  # the chain the OVF lists, base first
    present: bool  # an image directory of this disk on the domain holds every one of those volumes


@dataclass(slots=True)
class LunReport:
    """A direct LUN disk: on no domain, so only what the OVF says about it."""

    disk_id: UUID
    lun_id: str | None
    size: int
    vendor: str
    product: str
    serial: str
    connections: list[LunConnection]

    def to_json(self) -> dict[str, object]:
        return {
            "disk_id": str(self.disk_id), "lun_id": self.lun_id, "size": self.size, "vendor": self.vendor,
            "product": self.product, "serial": self.serial,
            "connections": [dataclasses.asdict(c) for c in self.connections],
        }  # fmt: skip


@dataclass(slots=True)
class EntityReport:
    id: UUID  # from the store member's name (or the legacy directory's), which is what recovery keys on
    name: str | None = None  # None: the OVF could not be read
    type: EntityType | None = None
    status: str | None = None
    disks: list[DiskReport] = field(default_factory=list)
    luns: list[LunReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unregistered: bool = False  # stored after metadata.json: found on the domain, never registered


@dataclass(slots=True)
class DomainReport:
    path: str
    metadata: DomainMetadata
    stores: list[StoreVerdict] = field(default_factory=list)
    entities: list[EntityReport] = field(default_factory=list)
    source: Source = "none"  # where `entities` came from
    errors: list[str] = field(default_factory=list)  # about the domain itself
    warnings: list[str] = field(default_factory=list)

    @property
    def chosen(self) -> StoreVerdict | None:
        return next((s for s in self.stores if s.chosen), None)

    def to_json(self) -> dict[str, Any]:
        """The shape of `ovfstore inspect --json` (docs/RECOVERY.md)."""
        meta = self.metadata
        return {
            "domain": {
                "id": meta.sd_id,
                "pool_id": meta.pool_id or None,
                "role": meta.role,
                "class": meta.domain_class,
            },
            "stores": [_store_json(s) for s in self.stores],
            "entities": [
                {
                    "id": str(e.id),
                    "name": e.name,
                    "type": e.type.value if e.type else None,
                    "status": e.status,
                    "disks": [
                        {"disk_id": str(d.disk_id), "volume_ids": [str(v) for v in d.volume_ids], "present": d.present}
                        for d in e.disks
                    ],
                    "luns": [lun.to_json() for lun in e.luns],
                    "errors": e.errors,
                }
                for e in self.entities
            ],
        }


def _store_json(store: StoreVerdict) -> dict[str, Any]:
    last = store.last_updated
    return {
        "disk_id": str(store.volume.disk_id),
        "volume_id": str(store.volume.volume_id),
        "updated": store.description.updated,
        "size": store.description.size,
        "last_updated": last.isoformat() if last else None,
        "generation": store.generation,
        "segments": store.segments,
        "verified": store.verified,
        "valid": store.valid,
        "chosen": store.chosen,
        "error": store.error,
    }


class _Exporter:
    """Writes `<id>.ovf` files, and takes back those of a store that turned out bad while read."""

    def __init__(self, directory: str | None) -> None:
        self.directory = directory
        self.written: list[str] = []
        if directory is not None:
            os.makedirs(directory, exist_ok=True)

    def write(self, entity_id: UUID, document: bytes) -> None:
        if self.directory is None:
            return
        path = os.path.join(self.directory, f"{entity_id}.ovf")  # a UUID: no path can be smuggled in
        with open(path, "wb") as f:
            f.write(document)
        self.written.append(path)

    def discard(self) -> None:
        for path in self.written:
            os.unlink(path)
        self.written.clear()


def inspect_domain(path: str, export_dir: str | None = None) -> DomainReport:
    """Inspect the domain directory `path` (the `<sdUUID>` directory itself); with `export_dir`, write
    each OVF of the chosen store (or of the legacy layout) there as `<id>.ovf`. `InspectError` when
    `path` is not a readable domain; anything less is in the report."""
    real = os.path.realpath(path)
    try:
        # The domain's own parent is its only root: nothing outside the domain directory is followed.
        domain = FileDomain(real, (os.path.dirname(real),))
    except StorageError as e:
        raise InspectError(f"{cut(path)}: {e}; give the <sdUUID> directory of a file storage domain") from e
    return _inspect(domain, path, real, export_dir, [], [])


def inspect_devices(paths: Sequence[str], export_dir: str | None = None) -> DomainReport:
    """Inspect the block domain on `paths`: the devices of its VG, or image files copied from them
    (`dd` of each LUN), read with no LVM tools and nothing activated. Export as `inspect_domain`.
    `InspectError` when the devices hold no storage domain (or two VGs, or not its first PV's metadata)."""
    if not paths:
        raise InspectError("no device given: name the devices (or images) of a block storage domain's VG")
    shown = cut(", ".join(paths))
    hint = "give the devices (or their images) of one block storage domain, every PV of its VG"
    try:
        domain = BlockView(paths)
    except StorageError as e:
        raise InspectError(f"{shown}: {e}; {hint}") from e
    errors = _missing_pvs(domain) + _truncated_pvs(domain)
    warnings = [f"LVM metadata copy passed over: {damage}" for damage in domain.damaged]
    where = ", ".join(f"{domain.pv_paths[name]} ({name})" for name in sorted(domain.pv_paths, key=_pv_order))
    shown_path = f"VG {domain.vg.name} ({domain.vg_uuid}) on {where}"
    return _inspect(domain, shown, shown_path, export_dir, errors, warnings)


def _pv_order(name: str) -> tuple[int, str]:
    return len(name), name  # pv2 before pv10


def _missing_pvs(domain: BlockView) -> list[str]:
    """A PV of the VG whose device was not given: what lies on it cannot be read."""
    errors = []
    for name in sorted(set(domain.vg.pvs) - set(domain.pv_paths), key=_pv_order):
        pv = domain.vg.pvs[name]
        errors.append(
            f"PV {name} of VG {domain.vg.name} (UUID {pv.id}, last seen as {cut(pv.device)}) is not among the "
            "devices given: volumes on it cannot be read; give every device (or image) of the VG"
        )
    return errors


def _truncated_pvs(domain: BlockView) -> list[str]:
    """A device or image shorter than its PV: a copy cut short (`dd` that stopped, a full disk)."""
    errors = []
    extent = domain.vg.extent_size * SECTOR
    for name, path in sorted(domain.pv_paths.items(), key=lambda item: _pv_order(item[0])):
        pv = domain.vg.pvs[name]
        needed = pv.pe_start * SECTOR + pv.pe_count * extent
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                size = device_size(fd)
            finally:
                os.close(fd)
        except OSError as e:
            errors.append(f"{cut(path)} (PV {name}) cannot be read: {e.strerror}")
            continue
        if size < needed:
            errors.append(
                f"{cut(path)} (PV {name}) is {size} bytes, but the PV's extents end at byte {needed}: the device "
                "or image is truncated, and volumes past its end cannot be read; copy the whole LUN again"
            )
    return errors


def _inspect(
    domain: ReadableDomain, shown: str, path: str, export_dir: str | None, errors: list[str], warnings: list[str]
) -> DomainReport:
    metadata = _read_metadata(domain, shown, errors, warnings)
    report = DomainReport(path=path, metadata=metadata, errors=errors, warnings=warnings)
    volumes, images = _list_volumes(domain, shown, report.warnings)
    report.stores = [evaluate(v, _reader(domain, v)) for v in volumes]
    for store in report.stores:
        report.warnings.extend(f"store {store.volume.disk_id}: {w}" for w in store.description.warnings)
    exporter = _Exporter(export_dir)
    if _read_chosen(domain, report, images, exporter):
        report.source = "store"
    elif _read_legacy(domain, report, images, exporter):
        report.source = "legacy"
        report.warnings.append(
            "no OVF store of this domain could be read; the VMs and templates below come from the legacy "
            "master/vms OVFs, which may be older than the stores"
        )
    elif domain.storage == "file":
        report.errors.append(
            "no OVF store of this domain could be read and it has no legacy master/vms OVFs: there is nothing "
            "to recover from it (see each store's error)"
        )
    else:
        report.errors.append(
            "no OVF store of this domain could be read (a block domain's legacy OVFs, in its master LV, are "
            "stale and not read): there is nothing to recover from it (see each store's error and the errors above)"
        )
    return report


def _read_metadata(domain: ReadableDomain, shown: str, errors: list[str], warnings: list[str]) -> DomainMetadata:
    where = "dom_md/metadata" if domain.storage == "file" else "the domain metadata (the VG's MDT_ tags)"
    try:
        meta = domain.metadata()
    except ChecksumMismatch as e:
        errors.append(f"{e}. The domain is not trusted; what follows is shown as found")
        # Shown anyway without its checksum line: inspection is for looking at damaged domains too.
        lines = _raw_metadata(domain).split(b"\n")
        return parse_domain_metadata(b"\n".join(x for x in lines if not x.startswith(CHECKSUM_KEY.encode() + b"=")))
    except (StorageError, OSError) as e:
        raise InspectError(f"{cut(shown)}: {where} cannot be read: {_reason(e)}") from e
    if meta.checksum is ChecksumState.MISSING:
        warnings.append(f"{where} has no {CHECKSUM_KEY}; accepted unverified, as VDSM does")
    return meta


def _raw_metadata(domain: ReadableDomain) -> bytes:
    """The domain metadata's lines as stored, its checksum unchecked."""
    if isinstance(domain, FileDomain):
        return domain.read_metadata()
    assert isinstance(domain, BlockView)
    lines = [decode_value(tag[len(MD_PREFIX) :]) for tag in domain.vg.tags if tag.startswith(MD_PREFIX)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _list_volumes(
    domain: ReadableDomain, shown: str, warnings: list[str]
) -> tuple[list[StoreVolume], dict[UUID, set[UUID]]]:
    """The store volumes, and every image's volume ids (to tell which disks are present)."""
    stores: list[StoreVolume] = []
    images: dict[UUID, set[UUID]] = {}
    try:
        infos, problems = domain.scan_volumes()
    except (StorageError, OSError) as e:
        raise InspectError(f"{cut(shown)}: the volumes cannot be listed: {_reason(e)}") from e
    damaged: set[str] = set()
    for problem in problems:
        # A disk with a volume that cannot be read is not whole: it is left out, and says which volume.
        if not problem.image:
            warnings.append(f"{cut(problem.path)} cannot be read as a volume and is left out: {problem.error}")
            continue
        damaged.add(problem.image)
        which = f" (volume {problem.volume})" if problem.volume else ""
        warnings.append(f"image {problem.image} cannot be listed and is left out: {problem.error}{which}")
    for v in infos:
        if v.image in damaged:
            continue
        images.setdefault(UUID(v.image), set()).add(UUID(v.volume))
        if is_store(v.meta.disk_type, v.meta.description):
            volume = StoreVolume(
                UUID(v.image), UUID(v.volume), v.meta.capacity, v.meta.disk_type, v.meta.description,
                v.meta.legality,
            )  # fmt: skip
            stores.append(volume)
    return stores, images


def _reason(e: StorageError | OSError) -> str:
    return str(e) if isinstance(e, StorageError) else f"{e.strerror} ({quoted(e.filename)})"


class VolumeUnreadable(OSError):
    """A volume that cannot be opened for a reason the storage layer gives (a PV missing, an image cut
    short): an `OSError`, as `selection.evaluate` takes a failed read, carrying that reason as its text."""

    def __str__(self) -> str:
        return str(self.strerror)


def _reader(domain: ReadableDomain, volume: StoreVolume) -> Callable[[int], Iterator[bytes]]:
    def read(size: int) -> Iterator[bytes]:
        # Plain buffered reads: offline there is no cache coherency to keep with other hosts, and a volume
        # shorter than `size` simply ends the stream, which the tar reader reports as a truncated store.
        # Opened as the domain opens its volumes: a file domain's never through a link, never a device or
        # a FIFO; a block domain's LV through its segment map on the devices given.
        try:
            backend = domain.open_volume(str(volume.disk_id), str(volume.volume_id), writable=False, direct=False)
        except StorageError as e:
            raise VolumeUnreadable(errno.EIO, str(e)) from e
        with backend:
            buf = bytearray(READ_CHUNK)
            view = memoryview(buf)
            left = size
            while left > 0:
                n = backend.readinto(view[: min(READ_CHUNK, left)])
                if not n:
                    return
                left -= n
                yield bytes(view[:n])

    return read


def _read_chosen(
    domain: ReadableDomain, report: DomainReport, images: dict[UUID, set[UUID]], exporter: _Exporter
) -> bool:
    """Read the chosen store's entities; a store that fails this second read (it changed since it was
    judged) is passed over for the next best."""
    while (best := choose(report.stores)) is not None:
        try:
            entities, summary = _read_entities(domain, best, images, exporter)
        except (StoreReadError, OSError) as e:
            best.chosen = False
            best.error = f"it changed while it was read and is now unusable: {e}"
            exporter.discard()
            continue
        report.entities = entities
        report.warnings.extend(f"store {best.volume.disk_id}: {w}" for w in summary.warnings)
        return True
    return False


def _read_entities(
    domain: ReadableDomain, store: StoreVerdict, images: dict[UUID, set[UUID]], exporter: _Exporter
) -> tuple[list[EntityReport], StoreSummary]:
    entities: list[EntityReport] = []

    def on_ovf(entity_id: UUID, document: bytes, unregistered: bool) -> None:
        exporter.write(entity_id, document)
        entity = _entity(entity_id, document, images)
        entity.unregistered = unregistered
        entities.append(entity)

    size = store.description.size or 0  # set: `evaluate` found the store valid
    # Only the final version of each entity (a store with appended segments may hold several); a store
    # that changed since it was judged fails here.
    summary = scan_store(_reader(domain, store.volume)(size), size, on_ovf, final=store.summary)
    # A member skipped as too large: the entity is listed with why, so it is not silently missing.
    entities += [EntityReport(id=i, errors=[f"its OVF was not read: {why}"]) for i, why in summary.skipped_ids.items()]
    for entity in entities:
        _set_status(entity, summary.vm_status)
    return entities, summary


def _read_legacy(
    domain: ReadableDomain, report: DomainReport, images: dict[UUID, set[UUID]], exporter: _Exporter
) -> bool:
    try:
        documents, problems = domain.scan_legacy()
    except (StorageError, OSError) as e:
        report.warnings.append(f"the legacy master/vms OVFs cannot be read: {_reason(e)}")
        return False
    report.warnings.extend(f"legacy OVF passed over: {p.error}" for p in problems)
    for name, document in documents.items():
        entity_id = UUID(name)
        exporter.write(entity_id, document)
        entity = _entity(entity_id, document, images)
        if entity.type is EntityType.TEMPLATE:
            entity.status = TemplateStatus.OK.value
        # A VM's status stays unknown: only stores carry the map of running VMs.
        report.entities.append(entity)
    return bool(documents)


def _entity(entity_id: UUID, document: bytes, images: dict[UUID, set[UUID]]) -> EntityReport:
    entity = EntityReport(id=entity_id)
    try:
        data = read_ovf(document).data
    except OvfError as e:
        entity.errors.append(f"its OVF cannot be read: {e}")
        return entity
    entity.name, entity.type = data.entity.name, data.entity_type
    if data.id != entity_id:
        entity.errors.append(f"its OVF describes entity {data.id}, yet it is stored as {entity_id}.ovf")
    for ovf_disk in data.disks:
        disk = ovf_disk.disk
        if disk.storage_type is not DiskStorageType.IMAGE:  # a direct LUN lives on no storage domain
            entity.luns.append(
                LunReport(
                    disk.id, disk.lun_id, disk.provisioned_size, disk.lun_vendor, disk.lun_product, disk.lun_serial,
                    list(disk.lun_connections),
                )
            )  # fmt: skip
            continue
        volume_ids = tuple(v.id for v in disk.volumes)
        on_domain = images.get(disk.id)
        present = bool(volume_ids) and on_domain is not None and set(volume_ids) <= on_domain
        entity.disks.append(DiskReport(disk.id, volume_ids, present))
    return entity


def _set_status(entity: EntityReport, vm_status: dict[UUID, int]) -> None:
    if entity.type is EntityType.TEMPLATE:
        entity.status = TemplateStatus.OK.value
        return
    if entity.type is None and entity.id not in vm_status:
        return  # an unreadable OVF: not even known to be a VM
    # metadata.json lists only the VMs that were not down.
    code = vm_status.get(entity.id, VmStatus.DOWN)
    try:
        entity.status = VmStatus(code).api_name
    except ValueError:
        entity.errors.append(f"metadata.json gives it status {code}, which is no VM status")

"""A file storage domain in VDSM's layout (docs/FORMATS.md 1): create, verify, attach, list, volumes.

Every path the agent touches is built here from validated UUIDs under a domain directory that itself
lies under a configured storage root, so no request can name a file outside the roots.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from ovfstore.storage import fencing
from ovfstore.storage import metadata as md
from ovfstore.storage.backend import Backend
from ovfstore.storage.errors import (
    AlreadyExists,
    DomainNotFound,
    ImageNotFound,
    InvalidArgument,
    PathOutsideRoots,
    StorageError,
    ToolFailed,
    UnusableStore,
    VolumeNotFound,
    WrongPool,
    from_os_error,
)
from ovfstore.storage.files import (
    atomic_write,
    contained,
    create_empty,
    fsync_dir,
    open_regular,
    read_small,
    stat_regular,
)
from ovfstore.storage.locking import locked
from ovfstore.storage.mounts import GLUSTER_DIR
from ovfstore.store.quoting import cut, quoted
from ovfstore.store.selection import is_store

REMOVE_PREFIX = "_remove_me_"
FILE_MODE = 0o660
DOMAIN_CLASSES = ("Data", "Iso", "Backup")
FILE_STORAGE_TYPES = ("NFS", "LOCALFS", "POSIXFS", "GLUSTERFS")
VOLUME_FORMATS = ("RAW", "COW")
VOLUME_TYPES = ("SPARSE", "PREALLOCATED")
# VDSM allocates 16 MiB for these on file domains; the agent has no sanlock or mailbox to feed, so it
# leaves them empty (docs/FORMATS.md allows it), which keeps a domain cheap to create.
_DOM_MD_EMPTY = ("ids", "leases", "inbox", "outbox", "xleases")
# VDSM's dom_md/metadata is well under a KiB; anything this large is damage, not read into memory.
DOMAIN_METADATA_MAX = 64 << 10
# A legacy OVF of a VM with many disks is tens of KiB; one this large is not an OVF.
LEGACY_OVF_MAX = 64 << 20


def check_uuid(value: str, what: str) -> str:
    """The canonical form of a UUID, or `InvalidArgument`; ids are the only names taken from requests."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError) as e:
        raise InvalidArgument(
            f"{what} {quoted(value)} is not a UUID; ids look like 1b4e28ba-2fa1-11d2-883f-0016d3cca427"
        ) from e
    if str(parsed) != value.lower():
        raise InvalidArgument(f"{what} {quoted(value)} is not a UUID in canonical form (8-4-4-4-12 hex digits)")
    return str(parsed)


def check_volume_request(format: str, volume_type: str, capacity: int) -> None:
    """`InvalidArgument` for a volume no domain can create: an unknown format or type, or a capacity that
    is not a positive multiple of 512 bytes within VDSM's limit."""
    if format not in VOLUME_FORMATS:
        raise InvalidArgument(f"volume format {quoted(format)} is not one of {', '.join(VOLUME_FORMATS)}")
    if volume_type not in VOLUME_TYPES:
        raise InvalidArgument(f"volume type {quoted(volume_type)} is not one of {', '.join(VOLUME_TYPES)}")
    _check_capacity(capacity)


def _check_capacity(capacity: int) -> None:
    if not 0 < capacity <= md.INT_MAX or capacity % 512:
        raise InvalidArgument(
            f"capacity {quoted(capacity)} must be a positive multiple of 512 bytes of at most {md.INT_MAX}"
        )


def resized_meta(volume: VolumeOnDisk, capacity: int) -> md.VolumeMetadata | None:
    """The `.meta` of `volume` once it has `capacity` bytes, or None when it has them already; for a file
    and a block domain alike. Only a RAW leaf volume is resized, and only an OVF store is made smaller
    (a disk's data only grows; a store is written whole after it is resized): a store made smaller is
    ILLEGAL until written again, since the tar it held may no longer fit. `SIZE` (sectors, domain formats
    before 5) follows `CAP` where the `.meta` has it."""
    meta = volume.meta
    _check_capacity(capacity)
    if meta.format != "RAW" or meta.voltype != "LEAF":
        raise InvalidArgument(
            f"volume {volume.volume} is a {meta.format} {meta.voltype} volume; only a RAW volume with no snapshot "
            "over it is resized here"
        )
    if capacity == meta.capacity:
        return None
    shrinks = capacity < meta.capacity
    if shrinks and not is_store(meta.disk_type, meta.description):
        raise InvalidArgument(
            f"volume {volume.volume} holds a disk's data and only grows ({meta.capacity} bytes now, {capacity} "
            "asked); only an OVF store is made smaller"
        )
    extra = dict(meta.extra)
    if "SIZE" in extra:
        extra["SIZE"] = str(capacity // 512)
    return replace(meta, capacity=capacity, extra=extra, legality="ILLEGAL" if shrinks else meta.legality)


def _is_uuid(name: str) -> bool:
    try:
        return str(uuid.UUID(name)) == name.lower()
    except ValueError:
        return False


@dataclass(frozen=True)
class VolumeOnDisk:
    image: str
    volume: str
    meta: md.VolumeMetadata
    # Bytes the volume file takes on the domain (a sparse file takes less than its capacity).
    apparent_size: int
    actual_size: int


@dataclass(frozen=True)
class Problem:
    """An item a listing passes over, and why: `error.transient` says whether a retry may see it (an I/O
    failure) or it stays until repaired (a link, a device, unparseable metadata)."""

    path: str
    error: StorageError
    image: str = ""
    volume: str = ""


def as_storage_error(e: StorageError | OSError, what: str) -> StorageError:
    return e if isinstance(e, StorageError) else from_os_error(e, what)


def _has_metadata(path: str) -> bool:
    # lexists: a domain whose metadata is a link or a device is still a domain, reported as damaged.
    return os.path.lexists(os.path.join(path, "dom_md", "metadata"))


def _entries(path: str, problems: list[Problem] | None) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []  # holds no domain
    except OSError as e:
        # A stale or hung mount among others: said, and the others are listed all the same.
        if problems is not None:
            problems.append(Problem(path, from_os_error(e, f"directory {cut(path)}")))
        return []


def find_domains(roots: tuple[str, ...], problems: list[Problem] | None = None) -> Iterator[str]:
    """Every domain directory under the roots: `<root>/<sdUUID>`, VDSM's mount points
    `<root>/<server>:<path with _>/<sdUUID>` and Gluster's `<root>/glusterSD/<server>:<volume>/<sdUUID>`
    (`storage.mounts`), recognised by their `dom_md/metadata`. A directory that cannot be listed is added
    to `problems` (when given) and passed over."""
    for root in roots:
        for entry in _entries(root, problems):
            path = os.path.join(root, entry)
            if _is_uuid(entry):
                if _has_metadata(path):
                    yield path
            elif os.path.isdir(path):
                yield from _domains_in(path, problems)
                if entry == GLUSTER_DIR:
                    for volume in _entries(path, problems):
                        yield from _domains_in(os.path.join(path, volume), problems)


def _domains_in(mount: str, problems: list[Problem] | None) -> Iterator[str]:
    for sub in _entries(mount, problems):
        if _is_uuid(sub) and _has_metadata(os.path.join(mount, sub)):
            yield os.path.join(mount, sub)


def scan_domains(roots: tuple[str, ...]) -> tuple[list[tuple[FileDomain, md.DomainMetadata]], list[Problem]]:
    """Every domain under the roots with its metadata; one that cannot be read is a `Problem`, and the
    others are listed all the same."""
    found: list[tuple[FileDomain, md.DomainMetadata]] = []
    problems: list[Problem] = []
    for path in find_domains(roots, problems):
        try:
            domain = FileDomain(path, roots)
            found.append((domain, domain.metadata()))
        except (StorageError, OSError) as e:
            problems.append(Problem(path, as_storage_error(e, f"storage domain {quoted(path)}")))
    return found, problems


class FileDomain:
    storage = "file"

    def __init__(self, path: str, roots: tuple[str, ...]) -> None:
        self.roots = roots
        self.path = contained(path, roots)
        self.sd_id = check_uuid(os.path.basename(self.path), "storage domain directory name")
        if not _has_metadata(self.path):
            raise DomainNotFound(f"{path} has no dom_md/metadata; it is not a storage domain")

    # --- location -------------------------------------------------------------------------------------

    @classmethod
    def find(cls, roots: tuple[str, ...], sd_id: str) -> FileDomain:
        sd_id = check_uuid(sd_id, "storage domain id")
        for path in find_domains(roots):
            if os.path.basename(path) == sd_id:
                return cls(path, roots)
        raise DomainNotFound(
            f"storage domain {sd_id} is not under the agent's roots ({', '.join(roots)}); mount it there "
            "or import it by path"
        )

    @classmethod
    def create(
        cls,
        roots: tuple[str, ...],
        parent: str,
        sd_id: str,
        description: str,
        storage_type: str = "LOCALFS",
        domain_class: str = "Data",
        remote_path: str = "",
    ) -> FileDomain:
        """Create an empty, detached format 5 domain at `<parent>/<sd_id>`; `parent` is under a root."""
        sd_id = check_uuid(sd_id, "storage domain id")
        if domain_class not in DOMAIN_CLASSES:
            raise InvalidArgument(f"domain class {quoted(domain_class)} is not one of {', '.join(DOMAIN_CLASSES)}")
        if storage_type not in FILE_STORAGE_TYPES:
            raise InvalidArgument(
                f"storage type {quoted(storage_type)} is not a file type ({', '.join(FILE_STORAGE_TYPES)})"
            )
        parent = contained(parent, roots)
        if not os.path.isdir(parent):
            raise InvalidArgument(f"{parent} is not a directory; create or mount it first")
        values = md.new_domain_values(sd_id, description, storage_type, domain_class, remote_path)
        content = md.format_domain_metadata(values)  # refuses a bad description before touching disk
        path = os.path.join(parent, sd_id)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError as e:
            raise AlreadyExists(f"{path} already exists; pick another id or import that domain") from e
        dom_md = os.path.join(path, "dom_md")
        os.mkdir(dom_md, 0o755)
        os.mkdir(os.path.join(path, "images"), 0o755)
        for name in _DOM_MD_EMPTY:
            create_empty(os.path.join(dom_md, name), FILE_MODE)
        # The metadata is the commit point: without it the directory is not recognised as a domain.
        atomic_write(os.path.join(dom_md, "metadata"), content, FILE_MODE)
        fsync_dir(parent)
        return cls(path, roots)

    # --- domain metadata ------------------------------------------------------------------------------

    @property
    def _md_path(self) -> str:
        return os.path.join(self.path, "dom_md", "metadata")

    def read_metadata(self) -> bytes:
        """The bytes of `dom_md/metadata`, read as every domain file is (`files.read_small`)."""
        try:
            return read_small(self._md_path, DOMAIN_METADATA_MAX, "dom_md/metadata")
        except FileNotFoundError as e:
            raise DomainNotFound(f"{self.path} has no dom_md/metadata; it is not a storage domain") from e

    def metadata(self) -> md.DomainMetadata:
        parsed = md.parse_domain_metadata(self.read_metadata())
        if parsed.sd_id and parsed.sd_id != self.sd_id:
            raise InvalidArgument(
                f"{self.path} holds the metadata of domain {cut(parsed.sd_id)}; its directory name is wrong"
            )
        return parsed

    @contextmanager
    def _md_locked(self) -> Iterator[md.DomainMetadata]:
        with locked(os.path.join(self.path, "dom_md"), True, f"storage domain {self.sd_id}", directory=True):
            yield self.metadata()

    def attach(self, pool_id: str, master: bool) -> md.DomainMetadata:
        pool_id = check_uuid(pool_id, "data center id")
        with self._md_locked() as current:
            if current.pool_id not in ("", pool_id):
                raise WrongPool(
                    f"storage domain {self.sd_id} is attached to data center {current.pool_id}; detach it "
                    "there first, or force a detach if that data center no longer exists"
                )
            values = dict(current.values, POOL_UUID=pool_id, ROLE="Master" if master else "Regular")
            atomic_write(self._md_path, md.format_domain_metadata(values), FILE_MODE)
        return self.metadata()

    def detach(self, pool_id: str, force: bool = False) -> md.DomainMetadata:
        pool_id = check_uuid(pool_id, "data center id")
        with self._md_locked() as current:
            if current.pool_id not in ("", pool_id) and not force:
                raise WrongPool(
                    f"storage domain {self.sd_id} is attached to data center {current.pool_id}, not "
                    f"{pool_id}; detach with force=true if {current.pool_id} is stale"
                )
            values = dict(current.values, POOL_UUID="", ROLE="Regular")
            atomic_write(self._md_path, md.format_domain_metadata(values), FILE_MODE)
        return self.metadata()

    # --- images and volumes ---------------------------------------------------------------------------

    def _image_dir(self, img_id: str) -> str:
        return self._inside(os.path.join(self.path, "images", check_uuid(img_id, "image id")))

    def volume_path(self, img_id: str, vol_id: str, suffix: str = "") -> str:
        """The volume's file (or its `.meta`/`.lease` with `suffix`). Its directory must resolve inside
        the domain, and the file itself is only ever opened with `files.open_regular`, which refuses a
        link, a device or a FIFO: nothing placed in a domain leads the agent to read or write elsewhere."""
        return self._inside(os.path.join(self._image_dir(img_id), check_uuid(vol_id, "volume id") + suffix))

    def _inside(self, path: str) -> str:
        try:
            contained(path, (self.path,))
        except PathOutsideRoots as e:
            if os.path.islink(path):
                raise PathOutsideRoots(
                    f"{cut(path)} is a symbolic link that leads outside storage domain {self.sd_id}; it is neither "
                    "read nor written (replace it with a regular file, or remove it)"
                ) from e
            raise
        return path

    def images(self) -> list[str]:
        images = os.path.join(self.path, "images")
        # Not-UUID names include `_remove_me_<id>`, images being deleted, which readers must skip.
        return sorted(e for e in os.listdir(images) if _is_uuid(e) and os.path.isdir(os.path.join(images, e)))

    def volumes(self, img_id: str) -> list[VolumeOnDisk]:
        """The volumes of one image; the first that cannot be read raises (`scan_volumes` goes on)."""
        return _strict(self.scan_volumes(img_id))

    def all_volumes(self) -> list[VolumeOnDisk]:
        return _strict(self.scan_volumes())

    def scan_volumes(self, img_id: str | None = None) -> tuple[list[VolumeOnDisk], list[Problem]]:
        """The volumes of image `img_id`, or of every image, and a `Problem` for each volume that cannot
        be read or, claiming to be an OVF store, cannot be one: one bad volume hides no other."""
        if img_id is not None:
            img_dir = self._image_dir(img_id)
            if not os.path.isdir(img_dir):
                raise ImageNotFound(f"image {img_id} is not on storage domain {self.sd_id}")
        found: list[VolumeOnDisk] = []
        problems: list[Problem] = []
        for img in [img_id] if img_id is not None else self.images():
            try:
                names = self._volume_names(img)
            except (StorageError, OSError) as e:
                path = os.path.join(self.path, "images", img)
                problems.append(Problem(path, as_storage_error(e, f"image {quoted(path)}"), img))
                continue
            for vol in names:
                try:
                    found.append(_usable(self.volume_info(img, vol)))
                except VolumeNotFound:
                    continue  # deleted while listing
                except (StorageError, OSError) as e:
                    path = os.path.join(self.path, "images", img, vol)
                    problems.append(Problem(path, as_storage_error(e, f"volume {quoted(path)}"), img, vol))
        return found, problems

    def _volume_names(self, img_id: str) -> list[str]:
        try:
            entries = os.listdir(self._image_dir(img_id))
        except FileNotFoundError:
            return []  # deleted while listing
        names = sorted(e[: -len(".meta")] for e in entries if e.endswith(".meta"))
        return [name for name in names if _is_uuid(name)]

    def volume_info(self, img_id: str, vol_id: str) -> VolumeOnDisk:
        path = self.volume_path(img_id, vol_id)
        try:
            meta = md.parse_volume_meta(
                read_small(self.volume_path(img_id, vol_id, ".meta"), md.VOLUME_META_MAX, "volume metadata")
            )
            st = stat_regular(path)
        except FileNotFoundError as e:
            raise VolumeNotFound(f"volume {vol_id} of image {img_id} is not on storage domain {self.sd_id}") from e
        return VolumeOnDisk(img_id, vol_id, meta, st.st_size, st.st_blocks * 512)

    def open_volume(self, img_id: str, vol_id: str, writable: bool, direct: bool = True) -> Backend:
        """The volume's data, opened only if it is a regular file of one link (`files.open_regular`)."""
        return Backend(self.volume_path(img_id, vol_id), writable, direct, domain_file=True)

    def write_volume_meta(self, img_id: str, vol_id: str, meta: md.VolumeMetadata) -> None:
        """Replace the `.meta` atomically; callers hold the volume's lease lock."""
        path = self.volume_path(img_id, vol_id, ".meta")
        atomic_write(path, md.format_volume_meta(meta), FILE_MODE)

    def lease_path(self, img_id: str, vol_id: str) -> str:
        return self.volume_path(img_id, vol_id, ".lease")

    @contextmanager
    def volume_locked(self, img_id: str, vol_id: str, exclusive: bool = True) -> Iterator[VolumeOnDisk]:
        self.volume_info(img_id, vol_id)  # a missing volume is "not found", not a missing lease file
        with locked(self.lease_path(img_id, vol_id), exclusive, f"volume {vol_id}"):
            yield self.volume_info(img_id, vol_id)  # as the previous lock holder left it

    @contextmanager
    def term_fenced(self, term: int) -> Iterator[None]:
        """Check and raise the domain's leadership term (`storage.fencing`), kept in `dom_md/ovfstore_term`
        and locked with `flock` on that file, which NFS carries to every host of the domain."""
        path = os.path.join(self.path, "dom_md", fencing.TERM_FILE)
        fd = open_regular(path, os.O_RDWR | os.O_CREAT, FILE_MODE)

        def read() -> int:
            return fencing.parse_term(os.pread(fd, 64, 0).decode("ascii", "replace"), path)

        def record(new: int) -> None:
            data = f"{new}\n".encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            os.fsync(fd)

        with fencing.fenced(fd, self.sd_id, term, read, record):
            yield

    def set_description(self, img_id: str, vol_id: str, text: str) -> VolumeOnDisk:
        md.check_volume_description(text)
        with self.volume_locked(img_id, vol_id) as info:
            self.write_volume_meta(img_id, vol_id, replace(info.meta, description=text))
        return self.volume_info(img_id, vol_id)

    def create_volume(
        self,
        img_id: str,
        vol_id: str,
        capacity: int,
        format: str = "RAW",
        volume_type: str = "SPARSE",
        disk_type: str = "DATA",
        description: str = "",
        parent: str | None = None,
    ) -> VolumeOnDisk:
        img_dir = self._image_dir(img_id)
        path = self.volume_path(img_id, vol_id)
        check_volume_request(format, volume_type, capacity)
        if parent is not None and format != "COW":
            raise InvalidArgument("only a COW (qcow2) volume can have a parent")
        meta = md.VolumeMetadata(
            capacity=capacity, ctime=int(time.time()), description=description, disk_type=disk_type,
            domain=self.sd_id, format=format, generation=0, image=img_id, legality="LEGAL",
            parent=md.BLANK_UUID if parent is None else check_uuid(parent, "parent volume id"),
            sequence=0, type=volume_type, voltype="LEAF",
        )  # fmt: skip
        meta_bytes = md.format_volume_meta(meta)  # refuses a bad description before touching disk
        parent_info = self.volume_info(img_id, parent) if parent is not None else None
        new_image = not os.path.isdir(img_dir)
        os.makedirs(img_dir, 0o755, exist_ok=True)
        try:
            try:
                create_empty(path, FILE_MODE)
            except FileExistsError as e:
                raise AlreadyExists(f"volume {vol_id} already exists in image {img_id}") from e
            if format == "RAW":
                _allocate(path, capacity, volume_type)
            else:
                self._qemu_img_create(path, capacity, volume_type, parent_info)
        except BaseException:
            if new_image:
                with contextlib.suppress(OSError):
                    os.rmdir(img_dir)  # empty again: a refused creation leaves nothing behind
            raise
        create_empty(self.volume_path(img_id, vol_id, ".lease"), FILE_MODE)
        # The .meta is the commit point: volumes are listed by their .meta files.
        atomic_write(self.volume_path(img_id, vol_id, ".meta"), meta_bytes, FILE_MODE)
        if parent_info is not None and parent_info.meta.voltype == "LEAF":
            with self.volume_locked(img_id, parent_info.volume):
                self.write_volume_meta(img_id, parent_info.volume, replace(parent_info.meta, voltype="INTERNAL"))
        return self.volume_info(img_id, vol_id)

    def resize_volume(self, img_id: str, vol_id: str, capacity: int) -> VolumeOnDisk:
        """Give RAW volume `vol_id` `capacity` bytes (`resized_meta` says which volumes may be resized),
        under its lease. The file grows before its `.meta` says so and shrinks after: a crash between
        the two leaves a file longer than its `CAP`, which is harmless."""
        with self.volume_locked(img_id, vol_id) as info:
            meta = resized_meta(info, capacity)
            if meta is not None:
                path = self.volume_path(img_id, vol_id)
                if info.meta.capacity < capacity and info.apparent_size < capacity:  # a grow never cuts a file
                    _set_size(path, capacity, info.meta.type)
                self.write_volume_meta(img_id, vol_id, meta)
                if capacity < info.meta.capacity:
                    _set_size(path, capacity, info.meta.type)
        return self.volume_info(img_id, vol_id)

    def _qemu_img_create(self, path: str, capacity: int, volume_type: str, parent: VolumeOnDisk | None) -> None:
        cmd = ["qemu-img", "create", "-f", "qcow2", "-o", "compat=1.1"]
        if volume_type == "PREALLOCATED":
            cmd += ["-o", "preallocation=falloc"]
        if parent is not None:
            # Relative, as VDSM writes it, so the chain survives the domain being mounted elsewhere.
            cmd += ["-b", parent.volume, "-F", "raw" if parent.meta.format == "RAW" else "qcow2"]
        cmd += [path, str(capacity)]
        try:
            subprocess.run(cmd, check=True, capture_output=True, cwd=os.path.dirname(path))
        except FileNotFoundError as e:
            os.unlink(path)
            raise ToolFailed("qemu-img is not installed; install qemu-utils to create COW volumes") from e
        except subprocess.CalledProcessError as e:
            os.unlink(path)
            raise ToolFailed(f"qemu-img create failed: {e.stderr.decode(errors='replace').strip()}") from e

    def delete_image(self, img_id: str) -> None:
        """Rename to `_remove_me_<id>` first, as VDSM does, so a crash leaves nothing half-listed."""
        img_dir = self._image_dir(img_id)
        if not os.path.isdir(img_dir):
            raise ImageNotFound(f"image {img_id} is not on storage domain {self.sd_id}")
        with _all_locked(self, img_id, [v.volume for v in self.volumes(img_id)]):
            doomed = os.path.join(os.path.dirname(img_dir), REMOVE_PREFIX + os.path.basename(img_dir))
            os.rename(img_dir, doomed)
            fsync_dir(os.path.dirname(img_dir))
        shutil.rmtree(doomed)

    # --- legacy OVFs ----------------------------------------------------------------------------------

    def legacy_ovfs(self) -> dict[str, bytes]:
        """`master/vms/<id>/<id>.ovf` by VM or template id; the first that cannot be read raises."""
        found, problems = self.scan_legacy()
        if problems:
            raise problems[0].error
        return found

    def scan_legacy(self) -> tuple[dict[str, bytes], list[Problem]]:
        """`master/vms/<id>/<id>.ovf` by VM or template id, written by engines before OVF stores, and a
        `Problem` for each that cannot be read (a link, a device...): one bad file hides no other."""
        vms = os.path.join(self.path, "master", "vms")
        if not os.path.isdir(vms):
            return {}, []
        found: dict[str, bytes] = {}
        problems: list[Problem] = []
        for entry in sorted(os.listdir(vms)):
            ovf = os.path.join(vms, entry, entry + ".ovf")
            if not (_is_uuid(entry) and os.path.lexists(ovf)):
                continue
            try:
                self._inside(os.path.dirname(ovf))  # the file itself is opened without following a link
                found[entry] = read_small(ovf, LEGACY_OVF_MAX, "legacy OVF")
            except (StorageError, OSError) as e:
                problems.append(Problem(ovf, as_storage_error(e, f"legacy OVF {quoted(ovf)}")))
        return found, problems


def _strict(scan: tuple[list[VolumeOnDisk], list[Problem]]) -> list[VolumeOnDisk]:
    found, problems = scan
    if problems:
        raise problems[0].error
    return found


def _usable(volume: VolumeOnDisk) -> VolumeOnDisk:
    """`volume`, unless it claims to be an OVF store and cannot hold one: a store is a RAW volume the
    tar is streamed into, and the engine creates a new store where none is usable."""
    meta = volume.meta
    if is_store(meta.disk_type, meta.description) and meta.format != "RAW":
        raise UnusableStore(
            f"volume {volume.volume} of image {volume.image} claims to be an OVF store but is {quoted(meta.format)}, "
            "not RAW; it is not used as a store (a new one is created in its place)"
        )
    return volume


def _set_size(path: str, capacity: int, volume_type: str, made: str = "reached by a resize") -> None:
    """Make the RAW volume file at `path` `capacity` bytes long, durably: allocated when it is
    PREALLOCATED and grows, sparse otherwise (a sparse file grows by its length alone)."""
    try:
        fd = open_regular(path, os.O_RDWR)
        try:
            if volume_type == "PREALLOCATED" and capacity > os.fstat(fd).st_size:
                os.posix_fallocate(fd, 0, capacity)
            else:
                os.ftruncate(fd, capacity)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        if e.errno in (errno.EFBIG, errno.EINVAL):
            raise InvalidArgument(
                f"a volume of {capacity} bytes cannot be {made} on this filesystem ({e.strerror}); ask for less"
            ) from e
        raise


def _allocate(path: str, capacity: int, volume_type: str) -> None:
    """Give the new, empty RAW volume at `path` its capacity; on failure (no space, a file size the
    filesystem refuses) the file is removed, so a refused creation leaves nothing behind."""
    try:
        _set_size(path, capacity, volume_type, "created")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


@contextmanager
def _all_locked(domain: FileDomain, img_id: str, vol_ids: list[str]) -> Iterator[None]:
    if not vol_ids:
        yield
        return
    with domain.volume_locked(img_id, vol_ids[0]), _all_locked(domain, img_id, vol_ids[1:]):
        yield

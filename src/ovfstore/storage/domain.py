"""A file storage domain in VDSM's layout (docs/FORMATS.md 1): create, verify, attach, list, volumes.

Every path the agent touches is built here from validated UUIDs under a domain directory that itself
lies under a configured storage root, so no request can name a file outside the roots.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from ovfstore.storage import metadata as md
from ovfstore.storage.errors import (
    AlreadyExists,
    DomainNotFound,
    ImageNotFound,
    InvalidArgument,
    ToolFailed,
    VolumeNotFound,
    WrongPool,
)
from ovfstore.storage.files import atomic_write, contained, create_empty, fsync_dir
from ovfstore.storage.locking import locked

REMOVE_PREFIX = "_remove_me_"
FILE_MODE = 0o660
DOMAIN_CLASSES = ("Data", "Iso", "Backup")
FILE_STORAGE_TYPES = ("NFS", "LOCALFS", "POSIXFS", "GLUSTERFS")
VOLUME_FORMATS = ("RAW", "COW")
VOLUME_TYPES = ("SPARSE", "PREALLOCATED")
# VDSM allocates 16 MiB for these on file domains; the agent has no sanlock or mailbox to feed, so it
# leaves them empty (docs/FORMATS.md allows it), which keeps a domain cheap to create.
_DOM_MD_EMPTY = ("ids", "leases", "inbox", "outbox", "xleases")


def check_uuid(value: str, what: str) -> str:
    """The canonical form of a UUID, or `InvalidArgument`; ids are the only names taken from requests."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError) as e:
        raise InvalidArgument(
            f"{what} {value!r} is not a UUID; ids look like 1b4e28ba-2fa1-11d2-883f-0016d3cca427"
        ) from e
    if str(parsed) != value.lower():
        raise InvalidArgument(f"{what} {value!r} is not a UUID in canonical form (8-4-4-4-12 hex digits)")
    return str(parsed)


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


def find_domains(roots: tuple[str, ...]) -> Iterator[str]:
    """Every domain directory under the roots: `<root>/<sdUUID>` and the NFS mount layout
    `<root>/<server>:<path with _>/<sdUUID>`, recognised by their `dom_md/metadata`."""
    for root in roots:
        if not os.path.isdir(root):
            continue
        for entry in sorted(os.listdir(root)):
            path = os.path.join(root, entry)
            if _is_uuid(entry) and os.path.isfile(os.path.join(path, "dom_md", "metadata")):
                yield path
            elif os.path.isdir(path) and not _is_uuid(entry):
                for sub in sorted(os.listdir(path)):
                    subpath = os.path.join(path, sub)
                    if _is_uuid(sub) and os.path.isfile(os.path.join(subpath, "dom_md", "metadata")):
                        yield subpath


class FileDomain:
    def __init__(self, path: str, roots: tuple[str, ...]) -> None:
        self.roots = roots
        self.path = contained(path, roots)
        self.sd_id = check_uuid(os.path.basename(self.path), "storage domain directory name")
        if not os.path.isfile(self._md_path):
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
            raise InvalidArgument(f"domain class {domain_class!r} is not one of {', '.join(DOMAIN_CLASSES)}")
        if storage_type not in FILE_STORAGE_TYPES:
            raise InvalidArgument(f"storage type {storage_type!r} is not a file type ({', '.join(FILE_STORAGE_TYPES)})")
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

    def metadata(self) -> md.DomainMetadata:
        with open(self._md_path, "rb") as f:
            parsed = md.parse_domain_metadata(f.read())
        if parsed.sd_id and parsed.sd_id != self.sd_id:
            raise InvalidArgument(
                f"{self.path} holds the metadata of domain {parsed.sd_id}; its directory name is wrong"
            )
        return parsed

    @contextmanager
    def _md_locked(self) -> Iterator[md.DomainMetadata]:
        with locked(os.path.join(self.path, "dom_md"), True, f"storage domain {self.sd_id}"):
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
        """The volume's file (or its `.meta`/`.lease` with `suffix`). Every one must resolve inside the
        domain: a symbolic link placed in a domain must not lead the agent to read or write elsewhere."""
        return self._inside(os.path.join(self._image_dir(img_id), check_uuid(vol_id, "volume id") + suffix))

    def _inside(self, path: str) -> str:
        contained(path, (self.path,))
        return path

    def images(self) -> list[str]:
        images = os.path.join(self.path, "images")
        # Not-UUID names include `_remove_me_<id>`, images being deleted, which readers must skip.
        return sorted(e for e in os.listdir(images) if _is_uuid(e) and os.path.isdir(os.path.join(images, e)))

    def volumes(self, img_id: str) -> list[VolumeOnDisk]:
        img_dir = self._image_dir(img_id)
        if not os.path.isdir(img_dir):
            raise ImageNotFound(f"image {img_id} is not on storage domain {self.sd_id}")
        names = sorted(e[: -len(".meta")] for e in os.listdir(img_dir) if e.endswith(".meta"))
        return [self.volume_info(img_id, name) for name in names if _is_uuid(name)]

    def all_volumes(self) -> list[VolumeOnDisk]:
        result = []
        for img in self.images():
            try:
                result.extend(self.volumes(img))
            except ImageNotFound:
                continue  # deleted while listing
        return result

    def volume_info(self, img_id: str, vol_id: str) -> VolumeOnDisk:
        path = self.volume_path(img_id, vol_id)
        try:
            with open(self.volume_path(img_id, vol_id, ".meta"), "rb") as f:
                meta = md.parse_volume_meta(f.read())
            st = os.stat(path)
        except FileNotFoundError as e:
            raise VolumeNotFound(f"volume {vol_id} of image {img_id} is not on storage domain {self.sd_id}") from e
        return VolumeOnDisk(img_id, vol_id, meta, st.st_size, st.st_blocks * 512)

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
        if format not in VOLUME_FORMATS:
            raise InvalidArgument(f"volume format {format!r} is not one of {', '.join(VOLUME_FORMATS)}")
        if volume_type not in VOLUME_TYPES:
            raise InvalidArgument(f"volume type {volume_type!r} is not one of {', '.join(VOLUME_TYPES)}")
        if capacity <= 0 or capacity % 512:
            raise InvalidArgument(f"capacity {capacity} must be a positive multiple of 512 bytes")
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
        os.makedirs(img_dir, 0o755, exist_ok=True)
        try:
            create_empty(path, FILE_MODE)
        except FileExistsError as e:
            raise AlreadyExists(f"volume {vol_id} already exists in image {img_id}") from e
        if format == "RAW":
            with open(path, "r+b") as f:
                if volume_type == "PREALLOCATED":
                    os.posix_fallocate(f.fileno(), 0, capacity)
                else:
                    f.truncate(capacity)
                os.fsync(f.fileno())
        else:
            self._qemu_img_create(path, capacity, volume_type, parent_info)
        create_empty(self.volume_path(img_id, vol_id, ".lease"), FILE_MODE)
        # The .meta is the commit point: volumes are listed by their .meta files.
        atomic_write(self.volume_path(img_id, vol_id, ".meta"), meta_bytes, FILE_MODE)
        if parent_info is not None and parent_info.meta.voltype == "LEAF":
            with self.volume_locked(img_id, parent_info.volume):
                self.write_volume_meta(img_id, parent_info.volume, replace(parent_info.meta, voltype="INTERNAL"))
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
        """`master/vms/<id>/<id>.ovf` by VM or template id, written by engines before OVF stores."""
        vms = os.path.join(self.path, "master", "vms")
        if not os.path.isdir(vms):
            return {}
        result = {}
        for entry in sorted(os.listdir(vms)):
            ovf = os.path.join(vms, entry, entry + ".ovf")
            if _is_uuid(entry) and os.path.isfile(ovf):
                with open(contained(ovf, self.roots), "rb") as f:
                    result[entry] = f.read()
        return result


@contextmanager
def _all_locked(domain: FileDomain, img_id: str, vol_ids: list[str]) -> Iterator[None]:
    if not vol_ids:
        yield
        return
    with domain.volume_locked(img_id, vol_ids[0]), _all_locked(domain, img_id, vol_ids[1:]):
        yield

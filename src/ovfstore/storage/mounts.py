"""Where a host has a storage connection mounted: VDSM's mount-point naming under a storage root.

VDSM mounts an NFS export, a POSIX file system or a Gluster volume at one directory of its storage root
named after the connection's spec (`address:path`, the path normalised): every `_` of the spec is
doubled, then every `/` becomes `_`, so `10.0.0.1:/exports/data` is mounted at
`<root>/10.0.0.1:_exports_data`. Gluster volumes live one level down, under `<root>/glusterSD/`. A local
(localfs) domain has no mount: its path is the directory itself. The domain is then the directory named
by its id in the mount point (`<mount>/<sdUUID>/dom_md/metadata`).
"""

from __future__ import annotations

import os
import posixpath

from ovfstore.storage.errors import DomainNotFound, InvalidArgument
from ovfstore.storage.files import contained
from ovfstore.store.quoting import cut, quoted

#: The directory of the storage root under which Gluster volumes are mounted.
GLUSTER_DIR = "glusterSD"
#: Connection types that are mounted under the storage root (lower case, as oVirt's API names them).
MOUNTED_TYPES = ("nfs", "posixfs", "glusterfs")


def connection_spec(address: str, path: str) -> str:
    """The spec a host mounts: `address:path` with the path normalised (no trailing or doubled `/`), or
    the path alone when there is no address."""
    path = path.strip()
    if not path:
        raise InvalidArgument("a storage connection needs its path (the export, volume or device)")
    tail = posixpath.normpath(path)
    if tail.startswith("//"):
        tail = tail[1:]
    address = address.strip()
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    if ":" in address:  # an IPv6 address is bracketed in the spec, as VDSM joins host and path
        address = f"[{address}]"
    return f"{address}:{tail}" if address else tail


def mount_name(storage_type: str, address: str, path: str) -> str:
    """The mount point of a connection relative to the storage root, e.g. `10.0.0.1:_exports_data` or
    `glusterSD/gluster1:_data`."""
    kind = storage_type.lower()
    if kind not in MOUNTED_TYPES:
        raise InvalidArgument(f"{quoted(storage_type)} storage is not mounted; give the domain's directory as its path")
    name = connection_spec(address, path).replace("_", "__").replace("/", "_")
    if name in (".", "..") or "\0" in name:
        raise InvalidArgument(f"{quoted(connection_spec(address, path))} is not a storage connection")
    return f"{GLUSTER_DIR}/{name}" if kind == "glusterfs" else name


def mounted_at(roots: tuple[str, ...], storage_type: str, address: str, path: str) -> str:
    """The directory under one of `roots` where the connection is mounted; DomainNotFound (saying where
    it is looked for) when no root has it."""
    name = mount_name(storage_type, address, path)
    for root in roots:
        candidate = os.path.join(root, name)
        if os.path.isdir(candidate):
            return contained(candidate, roots)
    where = ", ".join(cut(os.path.join(root, name)) for root in roots) or "no storage root (--root)"
    raise DomainNotFound(
        f"{quoted(connection_spec(address, path))} is not mounted on this host: mount it at {where} "
        "(VDSM's mount point), then add the domain again"
    )

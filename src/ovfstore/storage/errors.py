"""Errors of the storage layer.

They describe what is wrong with a domain, image or volume and what to do about it, and know nothing of
HTTP: the agent translates them once, at its edge, into status codes and JSON error bodies.
"""

from __future__ import annotations

import errno


class StorageError(Exception):
    """Base of every storage error. The agent names each kind on the wire (`ovfstore.agent.protocol`).

    `transient`: the failure may pass by itself (retry), as opposed to damage that stays until repaired.
    """

    transient = False


class InvalidArgument(StorageError):
    """A request that can never succeed as given: a malformed id, an unknown format, a bad size."""


class PathOutsideRoots(InvalidArgument):
    """A path that resolves outside every configured storage root."""


class DescriptionTooLong(InvalidArgument):
    """A description longer than the format allows; it is refused, never cut."""


class StorageObjectNotFound(StorageError):
    """A domain, image or volume that is not where the request looks for it."""


class DomainNotFound(StorageObjectNotFound):
    pass


class ImageNotFound(StorageObjectNotFound):
    pass


class VolumeNotFound(StorageObjectNotFound):
    pass


class AlreadyExists(StorageError):
    pass


class InvalidMetadata(StorageError):
    """Metadata that cannot be parsed or does not check out; the domain or volume is not trusted."""


class ChecksumMismatch(InvalidMetadata):
    pass


class WrongPool(StorageError):
    """The domain is attached to another data center; detach it from there (or force a stale one)."""


class VolumeBusy(StorageError):
    """Another writer holds the volume's lease; retry when its transfer ends."""

    transient = True


class StaleTerm(StorageError):
    """A write whose leadership term is lower than the highest the domain has accepted (`storage.fencing`):
    its engine is no longer the leader. Permanent for that writer: it must stop writing, not retry."""


class CapacityExceeded(StorageError):
    pass


class IncompleteTransfer(StorageError):
    """The byte stream ended before or after the announced length; nothing was acknowledged."""


class DigestMismatch(StorageError):
    """The bytes written (an upload, a copy) do not have the SHA-256 the caller expected of them."""


class ToolFailed(StorageError):
    """An external tool (qemu-img) failed or is missing."""


class UnsafeFile(InvalidMetadata):
    """A domain file that is not a regular file of one link (a symbolic or hard link, a device, a FIFO):
    never read nor written, since it may lead outside the domain. Permanent: pass the item over."""


class UnusableStore(InvalidMetadata):
    """A volume that claims to be an OVF store but cannot hold one (COW, no capacity): never adopted as a
    store, so the engine creates a new one."""


class FileUnreadable(StorageError):
    """A domain file the operating system refuses for good (permissions, not a file): pass it over."""


class StorageUnavailable(StorageError):
    """An I/O failure that may pass (EIO, EAGAIN, a timeout of a network mount): refuse, and retry later;
    never take the item for missing or damaged."""

    transient = True


#: Errors of the storage itself that a retry may not see again; any other OSError is taken as permanent.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EIO, errno.EAGAIN, errno.ETIMEDOUT, errno.ESTALE, errno.EBUSY, errno.EINTR, errno.ENOTCONN,
        errno.ECONNRESET, errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENOLCK,
    }
)  # fmt: skip


def from_os_error(e: OSError, what: str) -> StorageError:
    """`e`, raised while reading or writing `what`, as a storage error: transient or permanent."""
    reason = e.strerror or str(e)
    if e.errno in TRANSIENT_ERRNOS:
        return StorageUnavailable(f"{what}: {reason}; this may be a passing storage failure, retry later")
    return FileUnreadable(f"{what}: {reason}; check the file and the agent's access to it")

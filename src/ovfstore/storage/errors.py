"""Errors of the storage layer.

They describe what is wrong with a domain, image or volume and what to do about it, and know nothing of
HTTP: the agent translates them once, at its edge, into status codes and JSON error bodies.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every storage error. The agent names each kind on the wire (`ovfstore.agent.protocol`)."""


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


class CapacityExceeded(StorageError):
    pass


class IncompleteTransfer(StorageError):
    """The byte stream ended before or after the announced length; nothing was acknowledged."""


class DigestMismatch(StorageError):
    """The bytes written (an upload, a copy) do not have the SHA-256 the caller expected of them."""


class ToolFailed(StorageError):
    """An external tool (qemu-img) failed or is missing."""

"""Errors of the storage layer.

They describe what is wrong with a domain, image or volume and what to do about it, and know nothing of
HTTP: the agent translates them once, at its edge, into status codes and JSON error bodies.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every storage error; `code` is the stable, machine-readable name of the condition."""

    code = "storage_error"


class InvalidArgument(StorageError):
    """A request that can never succeed as given: a malformed id, an unknown format, a bad size."""

    code = "invalid_argument"


class PathOutsideRoots(InvalidArgument):
    """A path that resolves outside every configured storage root."""

    code = "path_outside_roots"


class DescriptionTooLong(InvalidArgument):
    """A description longer than the format allows; it is refused, never cut."""

    code = "description_too_long"


class NotFound(StorageError):
    code = "not_found"


class DomainNotFound(NotFound):
    code = "domain_not_found"


class ImageNotFound(NotFound):
    code = "image_not_found"


class VolumeNotFound(NotFound):
    code = "volume_not_found"


class AlreadyExists(StorageError):
    code = "already_exists"


class InvalidMetadata(StorageError):
    """Metadata that cannot be parsed or does not check out; the domain or volume is not trusted."""

    code = "invalid_metadata"


class ChecksumMismatch(InvalidMetadata):
    code = "checksum_mismatch"


class WrongPool(StorageError):
    """The domain is attached to another data center; detach it from there (or force a stale one)."""

    code = "wrong_pool"


class VolumeBusy(StorageError):
    """Another writer holds the volume's lease; retry when its transfer ends."""

    code = "volume_busy"


class CapacityExceeded(StorageError):
    code = "capacity_exceeded"


class IncompleteTransfer(StorageError):
    """The byte stream ended before or after the announced length; nothing was acknowledged."""

    code = "incomplete_transfer"


class DigestMismatch(StorageError):
    """The bytes written (an upload, a copy) do not have the SHA-256 the caller expected of them."""

    code = "transfer_corrupted"


class ToolFailed(StorageError):
    """An external tool (qemu-img) failed or is missing."""

    code = "tool_failed"

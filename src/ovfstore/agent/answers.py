"""Storage errors as the agent answers them: an HTTP status, a code of `ovfstore.agent.protocol`, and
whether a retry may succeed. Used for a failed request (`answer_for`) and for the items a listing
passes over (`problem_json`), so both name a failure the same way (docs/AGENT.md, "Errors")."""

from __future__ import annotations

import errno
import logging
from typing import Any

from ovfstore.agent import protocol
from ovfstore.agent.server import Response, error_response
from ovfstore.storage import errors
from ovfstore.storage.domain import Problem
from ovfstore.store.quoting import quoted

log = logging.getLogger(__name__)

#: Each storage error's status and code on the wire; the first class the error is an instance of wins,
#: so a subclass comes before its base.
_ANSWERS: list[tuple[type[errors.StorageError], int, str]] = [
    (errors.PathOutsideRoots, 403, protocol.PATH_OUTSIDE_ROOTS),
    (errors.DescriptionTooLong, 400, protocol.DESCRIPTION_TOO_LONG),
    (errors.InvalidArgument, 400, protocol.INVALID_ARGUMENT),
    (errors.DomainNotFound, 404, protocol.DOMAIN_NOT_FOUND),
    (errors.ImageNotFound, 404, protocol.IMAGE_NOT_FOUND),
    (errors.VolumeNotFound, 404, protocol.VOLUME_NOT_FOUND),
    (errors.StorageObjectNotFound, 404, protocol.NOT_FOUND),
    (errors.AlreadyExists, 409, protocol.ALREADY_EXISTS),
    (errors.WrongPool, 409, protocol.WRONG_POOL),
    (errors.VolumeBusy, 409, protocol.VOLUME_BUSY),
    (errors.StaleTerm, 409, protocol.STALE_TERM),
    (errors.ChecksumMismatch, 422, protocol.CHECKSUM_MISMATCH),
    (errors.UnsafeFile, 422, protocol.UNSAFE_FILE),
    (errors.UnusableStore, 422, protocol.UNUSABLE_STORE),
    (errors.InvalidMetadata, 422, protocol.INVALID_METADATA),
    (errors.CapacityExceeded, 413, protocol.CAPACITY_EXCEEDED),
    (errors.IncompleteTransfer, 400, protocol.INCOMPLETE_TRANSFER),
    (errors.DigestMismatch, 409, protocol.TRANSFER_CORRUPTED),
    (errors.ToolFailed, 500, protocol.TOOL_FAILED),
    (errors.StorageUnavailable, 503, protocol.STORAGE_UNAVAILABLE),
    (errors.FileUnreadable, 500, protocol.IO_ERROR),
    (errors.StorageError, 500, protocol.STORAGE_ERROR),
]


def status_and_code(e: errors.StorageError) -> tuple[int, str]:
    return next((status, code) for cls, status, code in _ANSWERS if isinstance(e, cls))


def answer_for(e: Exception) -> Response:
    """The error answer for a failure of an endpoint that started no answer of its own."""
    if isinstance(e, errors.StorageError):
        status, code = status_and_code(e)
        return error_response(status, code, str(e), transient=e.transient)
    if isinstance(e, OSError):
        log.exception("storage I/O failed")
        transient = e.errno in errors.TRANSIENT_ERRNOS
        advice = "retry later" if transient else "check the storage and the agent's log"
        reason = e.strerror or errno.errorcode.get(e.errno or 0, "")
        where = f" ({quoted(e.filename)})" if e.filename else ""
        return error_response(
            500, protocol.IO_ERROR, f"storage I/O failed: {reason}{where}; {advice}", transient=transient
        )
    log.exception("unexpected failure")
    return error_response(
        500, protocol.INTERNAL_ERROR, f"the agent failed unexpectedly: {quoted(repr(e))}; see the agent's log"
    )


def problem_json(problem: Problem) -> dict[str, Any]:
    """An item a listing passes over, in the listing: where, and the error as an answer would name it."""
    _, code = status_and_code(problem.error)
    entry: dict[str, Any] = {"path": problem.path}
    if problem.image:
        entry["image"] = problem.image
    if problem.volume:
        entry["volume"] = problem.volume
    entry.update(error=code, message=str(problem.error), transient=problem.error.transient)
    return entry

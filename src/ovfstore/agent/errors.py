"""The client's exception hierarchy (documented in docs/AGENT.md).

AgentError                  anything the agent refused or could not do; `code`, `status`, message
+-- AgentUnavailable        no answer: connection refused or reset, timeout; or 503 agent_busy
+-- AuthenticationFailed    401: missing or wrong secret
+-- InvalidRequest          400, 403, 411, 416: the request can never succeed as sent
|   +-- DescriptionTooLong  a description over 210 characters (50 for a domain), refused not cut
+-- ResourceNotFound        404: domain, image or volume absent
+-- Conflict                409: exists already, attached elsewhere, or locked by another writer
|   +-- VolumeBusy          another transfer or update holds the volume's lease; retry later
+-- StaleTerm               409 stale_term: the domain was written under a newer leadership term
+-- CapacityExceeded        413: more bytes than the volume holds
+-- IncompleteTransfer      fewer or more bytes than announced, in either direction; nothing acknowledged
+-- TransferCorrupted       the agent's SHA-256 of what it wrote differs from what was sent
+-- CorruptMetadata         422: metadata that does not parse or check out (broken `_SHA_CKSUM`)
+-- AgentInternalError      5xx: storage I/O failed or a tool (qemu-img) failed
    +-- StorageUnavailable  503 storage_unavailable: reading the domain failed in a way that may pass

Every error has `transient`: True when a retry may succeed (the agent's `"transient"` of its answer).
"""

from __future__ import annotations

from ovfstore.agent import protocol


class AgentError(Exception):
    def __init__(
        self, message: str, code: str = protocol.AGENT_ERROR, status: int | None = None, transient: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.transient = transient


class AgentUnavailable(AgentError):
    pass


class AuthenticationFailed(AgentError):
    pass


class InvalidRequest(AgentError):
    pass


class DescriptionTooLong(InvalidRequest):
    pass


class ResourceNotFound(AgentError):
    """404: what the request names (a domain, image or volume; an endpoint) is not there."""


class Conflict(AgentError):
    pass


class VolumeBusy(Conflict):
    pass


class StaleTerm(AgentError):
    """409 stale_term: the domain has been written under a higher leadership term than the request's;
    the engine that sent it lost the leadership and must stop writing (no retry, through no host)."""


class CapacityExceeded(AgentError):
    pass


class IncompleteTransfer(AgentError):
    pass


class TransferCorrupted(AgentError):
    pass


class CorruptMetadata(AgentError):
    pass


class AgentInternalError(AgentError):
    pass


class StorageUnavailable(AgentInternalError):
    """Storage failed in a way that may pass (EIO, a timeout of its mount): retry later, and meanwhile
    take nothing the agent could not read for missing or damaged."""


_BY_CODE: dict[str, type[AgentError]] = {
    protocol.DESCRIPTION_TOO_LONG: DescriptionTooLong,
    protocol.VOLUME_BUSY: VolumeBusy,
    protocol.STALE_TERM: StaleTerm,
    protocol.INCOMPLETE_TRANSFER: IncompleteTransfer,
    protocol.CAPACITY_EXCEEDED: CapacityExceeded,
    protocol.TRANSFER_CORRUPTED: TransferCorrupted,
    protocol.STORAGE_UNAVAILABLE: StorageUnavailable,
    protocol.AGENT_BUSY: AgentUnavailable,
}

_BY_STATUS: dict[int, type[AgentError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    403: InvalidRequest,
    404: ResourceNotFound,
    409: Conflict,
    411: InvalidRequest,
    413: CapacityExceeded,
    416: InvalidRequest,
    422: CorruptMetadata,
}


def from_answer(status: int, code: str, message: str, transient: bool = False) -> AgentError:
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or (AgentInternalError if status >= 500 else AgentError)
    return cls(message, code, status, transient)

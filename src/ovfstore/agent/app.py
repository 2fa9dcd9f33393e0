"""The agent's HTTP service over `ovfstore.storage`, built by `create_app(config)` and served by
`ovfstore.agent.server` (one thread per connection, so storage calls simply block their own thread).

`create_app` checks the credential and routes to the endpoints of `ovfstore.agent.handlers`. Storage
errors are translated into HTTP once, here, as `{"error": code, "message": ...}` bodies; the client
maps them back to its exception hierarchy (docs/AGENT.md).
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import unquote

from ovfstore.agent import protocol
from ovfstore.agent.config import AgentConfig
from ovfstore.agent.handlers import ROUTES, Endpoint
from ovfstore.agent.server import ClientGone, Handler, HTTPError, Request, Response, error_response
from ovfstore.routing import MethodNotAllowed, NoRoute, RouteTable
from ovfstore.storage import errors

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
    (errors.ChecksumMismatch, 422, protocol.CHECKSUM_MISMATCH),
    (errors.InvalidMetadata, 422, protocol.INVALID_METADATA),
    (errors.CapacityExceeded, 413, protocol.CAPACITY_EXCEEDED),
    (errors.IncompleteTransfer, 400, protocol.INCOMPLETE_TRANSFER),
    (errors.DigestMismatch, 409, protocol.TRANSFER_CORRUPTED),
    (errors.ToolFailed, 500, protocol.TOOL_FAILED),
    (errors.StorageError, 500, protocol.STORAGE_ERROR),
]


def answer_for(e: Exception) -> Response:
    """The error answer for a failure of an endpoint that started no answer of its own."""
    if isinstance(e, errors.StorageError):
        status, code = next((status, code) for cls, status, code in _ANSWERS if isinstance(e, cls))
        return error_response(status, code, str(e))
    if isinstance(e, OSError):
        log.exception("storage I/O failed")
        return error_response(500, protocol.IO_ERROR, f"storage I/O failed: {e}; check the storage and the agent's log")
    log.exception("unexpected failure")
    return error_response(500, protocol.INTERNAL_ERROR, f"the agent failed unexpectedly: {e!r}; see the agent's log")


def route_table() -> RouteTable[Endpoint]:
    table: RouteTable[Endpoint] = RouteTable()
    for method, template, endpoint in ROUTES:
        table.add(method, template, endpoint)
    return table


def _find(table: RouteTable[Endpoint], request: Request) -> Endpoint:
    """The endpoint of the request, its path parameters URL-unquoted into `request.params`."""
    try:
        match = table.match(request.method, request.path)
    except MethodNotAllowed as e:
        allowed = ", ".join(e.allowed)
        raise HTTPError(
            405, protocol.METHOD_NOT_ALLOWED, f"{request.path} takes {allowed}", {"Allow": allowed}
        ) from None
    except NoRoute:
        raise HTTPError(404, protocol.NOT_FOUND, f"no such endpoint: {request.path}; see docs/AGENT.md") from None
    request.params = {name: unquote(value) for name, value in match.params.items()}
    return match.value


def create_app(config: AgentConfig) -> Handler:
    """The agent as one request handler: credential check, routing, storage errors made answers."""
    expected = f"Bearer {config.secret}".encode()
    table = route_table()

    def app(request: Request) -> Response | None:
        given = request.headers.get("authorization", "").encode("latin-1")
        if not hmac.compare_digest(given, expected):
            return error_response(
                401, protocol.UNAUTHENTICATED, "missing or wrong credential: send 'Authorization: Bearer <secret>'"
            )
        request.authenticated = True
        request.refuse_chunked()
        endpoint = _find(table, request)
        try:
            return endpoint(config, request)
        except (HTTPError, ClientGone):
            raise
        except Exception as e:
            if request.started:
                raise OSError(f"failed after the answer started: {e}") from e
            return answer_for(e)

    return app

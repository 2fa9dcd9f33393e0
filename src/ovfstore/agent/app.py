"""The agent's HTTP service over `ovfstore.storage`, built by `create_app(config)` and served by
`ovfstore.agent.server` (one thread per connection, so storage calls simply block their own thread).

`create_app` checks the credential and routes to the endpoints of `ovfstore.agent.handlers`. Storage
errors are translated into HTTP once, at this edge (`ovfstore.agent.answers`), as
`{"error": code, "message": ..., "transient": ...}` bodies; the client maps them back to its exception
hierarchy (docs/AGENT.md).
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import unquote

from ovfstore.agent import protocol
from ovfstore.agent.answers import answer_for
from ovfstore.agent.config import AgentConfig
from ovfstore.agent.handlers import ROUTES, Endpoint
from ovfstore.agent.server import ClientGone, Handler, HTTPError, Request, Response, error_response
from ovfstore.routing import MethodNotAllowed, NoRoute, RouteTable

log = logging.getLogger(__name__)

__all__ = ["answer_for", "create_app", "route_table"]


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

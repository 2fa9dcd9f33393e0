"""Requests in, documents out: the routes (on `ovfstore.routing`'s table, which the agent shares),
authentication and authorization of each call, and the one place where engine errors become oVirt faults.

Handlers are plain synchronous functions of a `Call` (the engine's commands block on the database and
on host agents); Starlette runs them on its thread pool.
"""

from __future__ import annotations

import base64
import logging
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from ovfstore.api.xmlio import MAX_BODY, Body, Node, to_json, to_xml
from ovfstore.engine.domains import DomainCommandFailed
from ovfstore.engine.errors import Conflict, InvalidInput, NotFound
from ovfstore.engine.updater.domain import UpdateError
from ovfstore.engine.users import User
from ovfstore.routing import MethodNotAllowed, NoRoute, RouteTable

if TYPE_CHECKING:
    from ovfstore.api.app import Api
    from ovfstore.engine.runtime import Engine

log = logging.getLogger(__name__)

BASE = "/ovirt-engine/api"
XML = "application/xml"
JSON = "application/json"


# A fault's detail quotes what the client sent (an id, a name, a search) or what an agent answered. Those
# are cut here, where every fault is made, so that no value of any size becomes a fault of that size: a
# quoted value keeps enough characters to be recognized, and the whole detail stays a few kilobytes, its
# end kept too (where the advice is).
QUOTED_CHARS = 200
DETAIL_CHARS = 4096
_DETAIL_TAIL = 1024
_LONG_WORD = re.compile(rf"\S{{{QUOTED_CHARS + 1},}}")


def bounded(detail: str) -> str:
    """`detail` with every word over QUOTED_CHARS cut, and at most about DETAIL_CHARS long."""
    detail = _LONG_WORD.sub(lambda m: f"{m[0][:QUOTED_CHARS]}…[{len(m[0]) - QUOTED_CHARS} characters cut]", detail)
    if len(detail) <= DETAIL_CHARS:
        return detail
    head = DETAIL_CHARS - _DETAIL_TAIL
    return f"{detail[:head]}…[{len(detail) - DETAIL_CHARS} characters cut]…{detail[-_DETAIL_TAIL:]}"


class Fault(Exception):
    """An answer other than success, with oVirt's reason and our detail (which says what to do), bounded."""

    def __init__(self, status: int, reason: str, detail: str, headers: Mapping[str, str] | None = None) -> None:
        detail = bounded(detail)
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.headers = dict(headers or {})


def unauthorized(detail: str) -> Fault:
    return Fault(401, "Unauthorized", detail, {"WWW-Authenticate": 'Bearer realm="ovirt-engine"'})


@dataclass(frozen=True, slots=True)
class Document:
    """A successful answer: the root element's name and its content."""

    tag: str
    node: Node
    status: int = 200


@dataclass
class Call:
    api: Api
    request: Request
    method: str
    params: dict[str, str]
    query: Mapping[str, str]
    body: bytes
    user: User
    _doc: Body | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        return self.api.engine

    def id(self, name: str, kind: str) -> UUID:
        """A path parameter as an id; a malformed one names nothing, so it is a 404 like any unknown id."""
        try:
            return UUID(self.params[name])
        except ValueError:
            raise NotFound(kind, self.params[name]) from None

    def doc(self, expected: str | tuple[str, ...] | None = None) -> Body:
        if self._doc is None:
            self._doc = Body.parse(self.body, expected)
        return self._doc

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.query.get(name)
        if value is None:
            return default
        if value.lower() in ("", "true", "1", "yes"):  # a bare `?unregistered` means true
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise InvalidInput(f"query parameter {name} must be true or false, not {value!r}")


Handler = Callable[[Call], Document | None]


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    writes: bool  # refused to read-only users: every method but GET
    template: str = ""  # the path template, for the metrics


class Router:
    """The API's routes on the shared route table; a miss becomes the API's 404 or 405 fault."""

    def __init__(self) -> None:
        self.table: RouteTable[Route] = RouteTable(trailing_slash=True)

    def add(self, method: str, template: str, handler: Handler) -> None:
        self.table.add(method, template, Route(handler, writes=method != "GET", template=template))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        try:
            found = self.table.match(method, path)
        except MethodNotAllowed as exc:
            raise Fault(405, "Method Not Allowed", f"{path} takes {', '.join(exc.allowed)}") from None
        except NoRoute:
            raise Fault(
                404, "Not Found", f"no such resource: {BASE}{path}; see docs/API.md for what the API serves"
            ) from None
        return found.value, found.params


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return JSON in accept and XML not in accept


def render(request: Request, doc: Document) -> Response:
    if wants_json(request):
        return Response(to_json(doc.node), doc.status, media_type=JSON)
    return Response(to_xml(doc.tag, doc.node), doc.status, media_type=XML)


def fault_response(request: Request, fault: Fault) -> Response:
    response = render(request, Document("fault", {"reason": fault.reason, "detail": fault.detail}, fault.status))
    response.headers.update(fault.headers)
    return response


def to_fault(exc: Exception) -> Fault:
    """Engine errors know nothing of HTTP; this is where they become oVirt faults."""
    if isinstance(exc, Fault):
        return exc
    if isinstance(exc, NotFound):
        return Fault(404, "Not Found", str(exc))
    if isinstance(exc, InvalidInput):
        return Fault(400, "Bad Request", str(exc))
    if isinstance(exc, Conflict | UpdateError):
        return Fault(409, "Operation Failed", str(exc))
    if isinstance(exc, DomainCommandFailed):
        return Fault(409, "Operation Failed", f"the storage operation failed on the host: {exc}")
    log.exception("unexpected error in the API")
    return Fault(500, "Internal Server Error", f"{exc.__class__.__name__}: {exc}; see the engine's log")


class LoginRefused(Exception):
    """A wrong user name or password, or a login refused by the throttle; the message says which."""


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (SSO requests, the status page's forms: a few fields, no multipart parser)."""
    body = await read_body(request)
    fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in fields.items()}


def credentials(request: Request) -> tuple[str, str] | str | None:
    """A bearer token (str), Basic user and password (tuple), or None."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except ValueError:
            raise unauthorized("the Basic credentials are not valid base64 user:password") from None
        return user, password
    return None


async def read_body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise Fault(413, "Request Entity Too Large", f"request bodies are limited to {MAX_BODY} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise Fault(413, "Request Entity Too Large", f"request bodies are limited to {MAX_BODY} bytes")
    return bytes(data)

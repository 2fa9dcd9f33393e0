"""The JSON bodies of requests: one object, its fields checked for type before a handler uses them."""

from __future__ import annotations

from typing import Any, TypeVar

from ovfstore.agent import protocol
from ovfstore.agent.server import Request
from ovfstore.storage.errors import InvalidArgument, StorageError
from ovfstore.storage.fencing import parse_term
from ovfstore.store.quoting import cut

T = TypeVar("T")


def json_object(request: Request) -> dict[str, Any]:
    """The body, which must be a JSON object (`InvalidArgument` otherwise)."""
    data = request.json()
    if not isinstance(data, dict):
        raise InvalidArgument("the request body must be a JSON object")
    return data


def field(data: dict[str, Any], name: str, kind: type[T], default: T | None = None) -> T:
    """`data[name]` (or `default` when absent), which must be a `kind`; a bool is not an int here."""
    value = data.get(name, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidArgument(f"field {name!r} must be a {kind.__name__}, got {cut(repr(value))}")
    return value


def optional_id(data: dict[str, Any], name: str) -> str | None:
    """`data[name]`, an id or null (or absent)."""
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"field {name!r} must be a volume id or null, got {cut(repr(value))}")
    return value


def term_of(request: Request) -> int | None:
    """The leadership term of a store write (`X-Ovfstore-Term`), None when the request carries none."""
    text = request.headers.get(protocol.TERM_HEADER.lower())
    if text is None:
        return None
    try:
        return parse_term(text, f"the {protocol.TERM_HEADER} header")
    except StorageError as e:
        raise InvalidArgument(str(e)) from e

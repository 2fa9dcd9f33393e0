"""What resource handlers share: listing with search and `max`, and references by id or by name."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar
from uuid import UUID

from ovfstore.api import search
from ovfstore.api.router import Call, Document
from ovfstore.api.xmlio import Body, Node
from ovfstore.engine.errors import InvalidInput, NotFound
from ovfstore.engine.inventory.changes import UNSET, Unset
from ovfstore.store.quoting import quoted

T = TypeVar("T")


class Named(Protocol):
    @property
    def id(self) -> UUID: ...
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=Named)


def listing(
    call: Call,
    tag: str,
    items: list[T],
    view: Callable[[T], Node],
    keys: search.Keys,
    kind: str,
) -> Document:
    found = search.apply(items, call.query.get("search"), keys, kind)
    found = search.limit(found, call.query.get("max"))
    return Document(tag + "s", {tag: [view(item) for item in found]})


def resolve(body: Body | None, path: str, candidates: Iterable[N], kind: str, *, required: bool = True) -> N | None:
    """The object a request names at `path`, by `id` attribute or by `<name>`."""
    ident, name = body.ref(path) if body is not None else (None, None)
    if ident is None and not name:
        if required:
            raise InvalidInput(f'the request needs <{path} id="..."/> or <{path}><name>...</name></{path}>')
        return None
    for item in candidates:
        if (ident is not None and item.id == ident) or (ident is None and item.name == name):
            return item
    raise NotFound(kind, ident if ident is not None else str(name))


def required(body: Body | None, path: str, candidates: Iterable[N], kind: str) -> N:
    """The object a request must name at `path`, by `id` attribute or by `<name>`."""
    found = resolve(body, path, candidates, kind)
    assert found is not None  # resolve refuses a missing required reference
    return found


def name_keys(extra: search.Keys | None = None) -> dict[str, Callable[[Any], Iterable[str]]]:
    keys: dict[str, Callable[[Any], Iterable[str]]] = {"name": lambda item: [getattr(item, "name", "")]}
    keys["id"] = lambda item: [str(getattr(item, "id", ""))]
    keys.update(extra or {})
    return keys


def action_done(extra: Node | None = None) -> Document:
    """What an action answers when its work is done: `<action><status>complete</status></action>`."""
    node: Node = {"status": "complete"}
    node.update(extra or {})
    return Document("action", node)


def given(body: Body, path: str, convert: Callable[[str], T]) -> T | Unset:
    """The converted text of the element at `path` of a PUT or POST document, or `UNSET` when the document
    leaves it out (the field then stays as it is). The inventory's change sets check the values."""
    text = body.text(path)
    if text is None:
        return UNSET
    try:
        return convert(text)
    except ValueError as exc:
        raise InvalidInput(f"<{path}>: {quoted(text)} is not valid: {exc}") from exc

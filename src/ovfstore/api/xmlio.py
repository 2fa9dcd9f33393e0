"""The API's documents: one tree of plain Python values, written as oVirt XML or as oVirt JSON, and
request bodies read with a hardened parser.

A node is a dict: keys `id`, `href` and `rel` become XML attributes, every other key a child element;
a list value repeats the element; None is left out. `True` is written `true`, enums by value, times in
ISO-8601 with their offset. The same tree gives oVirt's JSON shape (`{"vm": [...]}` for a collection).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from lxml import etree

from ovfstore.engine.errors import InvalidInput
from ovfstore.store.quoting import quoted

Node = dict[str, Any]
ATTRIBUTES = ("id", "href", "rel")

# Bodies are a few kilobytes (a register action with its mappings is the largest); anything larger than
# this is not a request the API understands.
MAX_BODY = 4 * 1024 * 1024

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
)


def text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def to_xml(tag: str, node: Mapping[str, Any]) -> bytes:
    root = etree.Element(tag)
    _fill(root, node)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True, pretty_print=True))


def _fill(element: etree._Element, node: Mapping[str, Any]) -> None:
    for key, value in node.items():
        if value is None:
            continue
        if key in ATTRIBUTES:
            element.set(key, text_of(value))
            continue
        for item in value if isinstance(value, list) else [value]:
            child = etree.SubElement(element, key)
            if isinstance(item, Mapping):
                _fill(child, item)
            elif item is not None:
                child.text = text_of(item)


def to_json(node: Mapping[str, Any]) -> bytes:
    return json.dumps(_jsonable(node), indent=2).encode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | float):
        return value if isinstance(value, bool) else str(value)  # oVirt's JSON quotes numbers
    if value is None:
        return None
    return text_of(value)


def to_bool(text: str) -> bool:
    """An oVirt boolean: `true`/`1` or `false`/`0`, in any case."""
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise ValueError("must be true or false")


class Body:
    """A request document: typed accessors on paths of child elements (`storage/path`, `cluster/name`)."""

    def __init__(self, element: etree._Element) -> None:
        self.element = element

    @classmethod
    def parse(cls, data: bytes, expected: str | tuple[str, ...] | None = None) -> Body:
        if not data.strip():
            if expected is None or "action" in expected:
                return cls(etree.Element("action"))
            raise InvalidInput(f"the request needs a <{expected}> document")
        try:
            root = etree.fromstring(data, _PARSER)
        except etree.XMLSyntaxError as exc:
            raise InvalidInput(f"the request body is not well-formed XML: {exc}") from exc
        tags = (expected,) if isinstance(expected, str) else expected
        if tags is not None and root.tag not in tags:
            raise InvalidInput(f"expected a <{' or <'.join(tags)}> document, got <{root.tag}>")
        return cls(root)

    @property
    def tag(self) -> str:
        return str(self.element.tag)

    def find(self, path: str) -> Body | None:
        found = self.element.find(path)
        return None if found is None else Body(found)

    def findall(self, path: str) -> list[Body]:
        return [Body(e) for e in self.element.findall(path)]

    def has(self, path: str) -> bool:
        return self.element.find(path) is not None

    def attr(self, name: str) -> str | None:
        value = self.element.get(name)
        return value.strip() if value is not None else None

    def text(self, path: str | None = None) -> str | None:
        element = self.element if path is None else self.element.find(path)
        if element is None:
            return None
        return (element.text or "").strip()

    def get(self, path: str, default: str | None = None) -> str | None:
        value = self.text(path)
        return default if value is None else value

    def bool(self, path: str, default: bool | None = None) -> bool | None:
        value = self.text(path)
        if value is None:
            return default
        try:
            return to_bool(value)
        except ValueError:
            raise InvalidInput(f"<{path}> must be true or false, not {quoted(value)}") from None

    def int(self, path: str, default: int | None = None) -> int | None:
        value = self.text(path)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError as exc:
            raise InvalidInput(f"<{path}> must be an integer, not {quoted(value)}") from exc

    def id(self, path: str | None = None) -> UUID | None:
        """The `id` attribute of the element at `path` (or of this element)."""
        element = self.element if path is None else self.element.find(path)
        if element is None or element.get("id") is None:
            return None
        return parse_id(element.get("id", ""), path or self.tag)

    def ref(self, path: str) -> tuple[UUID | None, str | None]:
        """A reference by id or by name: `<cluster id="..."/>` or `<cluster><name>x</name></cluster>`."""
        found = self.find(path)
        if found is None:
            return None, None
        return found.id(), found.text("name")


def parse_id(value: str, what: str) -> UUID:
    try:
        return UUID(value.strip())
    except ValueError as exc:
        raise InvalidInput(f"{what}: {quoted(value)} is not a valid id (a UUID)") from exc

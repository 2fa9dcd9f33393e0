"""LVM2's metadata text: a bounded parser into plain dicts, then the typed volume group it describes.

The format (docs/FORMATS.md 6.5): sections `name { ... }`, assignments `key = value`, where a value is a
string (with `\\"` and `\\\\` escapes), a number or a list `[ ... ]` of them; `#` starts a comment outside a
string. The text comes from a device, so depth, size and numbers are bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ovfstore.storage.lvm.ondisk import MAX_TEXT_SIZE, LvmFormatError
from ovfstore.store.quoting import quoted

Scalar = str | int | float
Value = Scalar | list[Scalar]
Section = dict[str, "Value | Section"]

MAX_DEPTH = 16
MAX_DIGITS = 20
_TOKEN_RE = re.compile(
    r"""(?P<space>[ \t\r\n]+|\#[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>[-+]?[0-9]+(?:\.[0-9]+)?)(?![A-Za-z0-9_.+-])
      | (?P<name>[A-Za-z0-9_.+-]+)
      | (?P<punct>[{}\[\]=,])""",
    re.VERBOSE | re.DOTALL,
)
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, offset) of every token, comments and space left out."""
    found: list[tuple[str, str, int]] = []
    position = 0
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if match is None:
            raise LvmFormatError(f"metadata text: unexpected {quoted(text[position : position + 40])} at {position}")
        kind = match.lastgroup or ""
        if kind != "space":
            found.append((kind, match.group(), position))
        position = match.end()
    return found


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text) > MAX_TEXT_SIZE:
            raise LvmFormatError(f"metadata text of {len(text)} characters, more than {MAX_TEXT_SIZE}")
        self.tokens = _tokens(text)
        self.index = 0

    def _next(self, expected: str) -> tuple[str, str, int]:
        if self.index >= len(self.tokens):
            raise LvmFormatError(f"metadata text ends where {expected} was expected (unbalanced braces?)")
        token = self.tokens[self.index]
        self.index += 1
        return token

    def section(self, depth: int, closing: bool) -> Section:
        if depth > MAX_DEPTH:
            raise LvmFormatError(f"metadata text nests sections more than {MAX_DEPTH} deep")
        result: Section = {}
        while self.index < len(self.tokens) or closing:
            kind, token, at = self._next("a name or '}'")
            if closing and token == "}" and kind == "punct":
                return result
            if kind not in ("name", "number"):
                raise LvmFormatError(f"metadata text: a name expected at {at}, found {quoted(token)}")
            if token in result:
                raise LvmFormatError(f"metadata text: {quoted(token)} appears twice in one section (at {at})")
            _, punct, at = self._next("'=' or '{'")
            if punct == "{":
                result[token] = self.section(depth + 1, closing=True)
            elif punct == "=":
                result[token] = self.value()
            else:
                raise LvmFormatError(f"metadata text: '=' or '{{' expected at {at}, found {quoted(punct)}")
        return result

    def value(self) -> Value:
        kind, token, at = self._next("a value")
        if token == "[" and kind == "punct":
            items: list[Scalar] = []
            while True:
                kind, token, at = self._next("a list item or ']'")
                if token == "]" and kind == "punct":
                    return items
                if token == "," and kind == "punct" and items:
                    continue
                items.append(self._scalar(kind, token, at))
        return self._scalar(kind, token, at)

    @staticmethod
    def _scalar(kind: str, token: str, at: int) -> Scalar:
        if kind == "string":
            return _UNESCAPE_RE.sub(lambda match: match.group(1), token[1:-1])
        if kind == "number":
            if len(token.lstrip("+-").split(".")[0]) > MAX_DIGITS:
                raise LvmFormatError(f"metadata text: the number {quoted(token)} at {at} is too large")
            return float(token) if "." in token else int(token)
        raise LvmFormatError(f"metadata text: a string, number or list expected at {at}, found {quoted(token)}")


def parse_text(text: str) -> Section:
    """The metadata text as nested dicts: sections are dicts, values strings, numbers or lists."""
    return _Parser(text).section(0, closing=False)


@dataclass(frozen=True)
class Stripe:
    pv: str
    first_extent: int


@dataclass(frozen=True)
class Segment:
    start_extent: int
    extent_count: int
    type: str
    stripes: tuple[Stripe, ...]


@dataclass(frozen=True)
class LogicalVolume:
    name: str
    id: str
    tags: tuple[str, ...]
    segments: tuple[Segment, ...]

    @property
    def extent_count(self) -> int:
        return sum(segment.extent_count for segment in self.segments)


@dataclass(frozen=True)
class PhysicalVolume:
    """A PV as the metadata names it (`pv0`...); `device` is the path it had when written: a hint only."""

    name: str
    id: str
    device: str
    pe_start: int
    pe_count: int


@dataclass(frozen=True)
class VolumeGroup:
    """`extent_size` and every `pe_start` are in 512-byte sectors, as LVM writes them."""

    name: str
    id: str
    seqno: int
    extent_size: int
    tags: tuple[str, ...]
    pvs: dict[str, PhysicalVolume]
    lvs: dict[str, LogicalVolume]


def _field(section: Section, key: str, where: str) -> Value | Section:
    if key not in section:
        raise LvmFormatError(f"metadata of {where} has no {key!r}")
    return section[key]


def _int(section: Section, key: str, where: str, minimum: int = 0) -> int:
    value = _field(section, key, where)
    if not isinstance(value, int) or value < minimum:
        raise LvmFormatError(f"metadata of {where}: {key} is {quoted(value)}, not an integer >= {minimum}")
    return value


def _str(section: Section, key: str, where: str, default: str | None = None) -> str:
    if default is not None and key not in section:
        return default
    value = _field(section, key, where)
    if not isinstance(value, str):
        raise LvmFormatError(f"metadata of {where}: {key} is {quoted(value)}, not a string")
    return value


def _section(section: Section, key: str, where: str) -> Section:
    value = _field(section, key, where)
    if not isinstance(value, dict):
        raise LvmFormatError(f"metadata of {where}: {key} is not a section")
    return value


def _tags(section: Section, where: str) -> tuple[str, ...]:
    value = section.get("tags", [])
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise LvmFormatError(f"metadata of {where}: tags are {quoted(value)}, not a list of strings")
    return tuple(str(tag) for tag in value)


def _children(section: Section, key: str, where: str) -> dict[str, Section]:
    found = {}
    for name, child in _section(section, key, where).items():
        if not isinstance(child, dict):
            raise LvmFormatError(f"metadata of {where}: {key} holds {quoted(name)}, which is not a section")
        found[name] = child
    return found


def _stripes(section: Section, where: str) -> tuple[Stripe, ...]:
    value = section.get("stripes", [])
    if not isinstance(value, list) or len(value) % 2:
        raise LvmFormatError(f"metadata of {where}: stripes are {quoted(value)}, not pairs of PV and extent")
    stripes = []
    for pv, first in zip(value[::2], value[1::2], strict=True):
        if not isinstance(pv, str) or not isinstance(first, int) or first < 0:
            raise LvmFormatError(f"metadata of {where}: the stripe {quoted([pv, first])} is malformed")
        stripes.append(Stripe(pv, first))
    return tuple(stripes)


def _logical_volume(name: str, section: Section, vg: str) -> LogicalVolume:
    where = f"LV {quoted(name)} of VG {quoted(vg)}"
    count = _int(section, "segment_count", where)
    segments = []
    next_extent = 0
    for number in range(1, count + 1):
        seg_where = f"segment{number} of {where}"
        seg = _section(section, f"segment{number}", where)
        segment = Segment(
            _int(seg, "start_extent", seg_where),
            _int(seg, "extent_count", seg_where, minimum=1),
            _str(seg, "type", seg_where),
            _stripes(seg, seg_where),
        )
        if segment.start_extent != next_extent:
            raise LvmFormatError(f"metadata of {seg_where}: starts at extent {segment.start_extent}, not {next_extent}")
        next_extent += segment.extent_count
        segments.append(segment)
    return LogicalVolume(name, _str(section, "id", where), _tags(section, where), tuple(segments))


def volume_group(parsed: Section) -> VolumeGroup:
    """The one volume group a parsed metadata text describes, every field it needs checked."""
    sections = [(name, value) for name, value in parsed.items() if isinstance(value, dict)]
    if len(sections) != 1:
        raise LvmFormatError(f"metadata text describes {len(sections)} volume groups, not one")
    name, vg = sections[0]
    where = f"VG {quoted(name)}"
    pvs = {}
    for pv_name, pv in _children(vg, "physical_volumes", where).items():
        pv_where = f"PV {quoted(pv_name)} of {where}"
        pvs[pv_name] = PhysicalVolume(
            pv_name,
            _str(pv, "id", pv_where),
            _str(pv, "device", pv_where, default=""),
            _int(pv, "pe_start", pv_where),
            _int(pv, "pe_count", pv_where),
        )
    lvs = {}
    if "logical_volumes" in vg:
        lvs = {
            lv: _logical_volume(lv, section, name) for lv, section in _children(vg, "logical_volumes", where).items()
        }
    return VolumeGroup(
        name,
        _str(vg, "id", where),
        _int(vg, "seqno", where),
        _int(vg, "extent_size", where, minimum=1),
        _tags(vg, where),
        pvs,
        lvs,
    )


def parse_vg(text: str) -> VolumeGroup:
    """The volume group of an LVM metadata text."""
    return volume_group(parse_text(text))

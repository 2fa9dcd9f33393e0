"""The manifest: the project's own last member of a store tar (and of each segment appended to one), so a
reader can tell a complete, intact store from a damaged one. oVirt readers ignore it (they read only
`*.ovf` and `metadata.json`).

Format 1 ends a store written whole (its base segment); format 2 ends each segment appended later
(docs/FORMATS.md section 3): it also names the manifest before it (`previous`: its generation, and the
byte offset where this segment starts) and the entities removed since (`removed`).

Its length must be known before the tar is sent, yet it holds the SHA-256 of members streamed before
it. Serialization is therefore fixed-width where the hashes go: the length is computed with
placeholder hashes of the same size as real ones.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any
from uuid import UUID

from ovfstore.store.javadate import format_java_date
from ovfstore.store.quoting import quoted

MANIFEST_NAME = "manifest.json"
#: Generations and sizes are stored in 64-bit signed columns; anything larger is damage or an attack.
MAX_COUNT = 2**63 - 1
MANIFEST_FORMAT = 1
#: The manifest ending an appended segment.
SEGMENT_FORMAT = 2
_PLACEHOLDER = "0" * 64


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Previous:
    """What a format-2 manifest says of the segment before it: the generation of the manifest that ends
    it, and the byte offset where this segment's first header starts (just after that manifest)."""

    generation: int
    offset: int


@dataclass(frozen=True, slots=True)
class Manifest:
    generation: int
    writer: str
    created: datetime
    members: tuple[ManifestEntry, ...]
    format: int = MANIFEST_FORMAT
    previous: Previous | None = None  # format 2 only
    removed: tuple[UUID, ...] = ()  # format 2 only: sorted, each once

    def encode(self) -> bytes:
        members = [(m.name, m.size, m.sha256) for m in self.members]
        if self.format == SEGMENT_FORMAT:
            assert self.previous is not None
            return encode_segment(self.generation, self.writer, self.created, members, self.previous, self.removed)
        return encode(self.generation, self.writer, self.created, members)


class ManifestError(ValueError):
    pass


def _document(generation: int, writer: str, created: datetime, members: list[tuple[str, int, str]]) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "generation": generation,
        "writer": writer,
        "created": format_java_date(created),
        "members": [{"name": n, "size": s, "sha256": h} for n, s, h in members],
    }


def _dump(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")


def encode(generation: int, writer: str, created: datetime, members: list[tuple[str, int, str]]) -> bytes:
    """A format-1 manifest, ending a store written whole."""
    return _dump(_document(generation, writer, created, members))


def encoded_size(generation: int, writer: str, created: datetime, members: list[tuple[str, int]]) -> int:
    return len(encode(generation, writer, created, [(n, s, _PLACEHOLDER) for n, s in members]))


def encode_segment(
    generation: int,
    writer: str,
    created: datetime,
    members: list[tuple[str, int, str]],
    previous: Previous,
    removed: Iterable[UUID],
) -> bytes:
    """A format-2 manifest, ending an appended segment: `members` are this segment's (before the
    manifest, in order); `removed` is written sorted. `ValueError` for a segment the reader would refuse:
    a generation not above the previous one, or a removed entity that is also a member."""
    ids = sorted({str(u) for u in removed})
    if generation <= previous.generation:
        raise ValueError(f"generation {generation} is not above the previous segment's {previous.generation}")
    names = {n for n, _, _ in members}
    both = [i for i in ids if f"{i}.ovf" in names]
    if both:
        raise ValueError(f"entity {both[0]} is both removed and a member of the segment")
    document = _document(generation, writer, created, members)
    document["format"] = SEGMENT_FORMAT
    document["previous"] = {"generation": previous.generation, "offset": previous.offset}
    document["removed"] = ids
    return _dump(document)


def encoded_segment_size(
    generation: int,
    writer: str,
    created: datetime,
    members: list[tuple[str, int]],
    previous: Previous,
    removed: Iterable[UUID],
) -> int:
    placeholders = [(n, s, _PLACEHOLDER) for n, s in members]
    return len(encode_segment(generation, writer, created, placeholders, previous, removed))


def decode(data: bytes) -> Manifest:
    """Either format; `ManifestError` (its message bounded) for anything else."""
    from ovfstore.store.javadate import JavaDateError, parse_java_date

    try:
        value = json.loads(data)
        fmt = value["format"]
        if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt not in (MANIFEST_FORMAT, SEGMENT_FORMAT):
            raise ManifestError(f"manifest format {quoted(fmt)} is not 1 or 2; upgrade ovfstore")
        members = tuple(
            ManifestEntry(name=str(m["name"]), size=_count(m["size"], "a member size"), sha256=str(m["sha256"]))
            for m in value["members"]
        )
        created, _ = parse_java_date(str(value["created"]))
        manifest = Manifest(
            generation=_count(value["generation"], "the generation"), writer=str(value["writer"]), created=created,
            members=members, format=fmt,
        )  # fmt: skip
        return _segment_fields(manifest, value) if fmt == SEGMENT_FORMAT else manifest
    except ManifestError:
        raise
    except RecursionError as exc:
        raise ManifestError("the manifest is unreadable (JSON nested too deeply)") from exc
    except (ValueError, KeyError, TypeError, AttributeError, JavaDateError) as exc:
        raise ManifestError(f"the manifest is unreadable ({exc.__class__.__name__}: {quoted(str(exc))})") from exc


def _segment_fields(manifest: Manifest, value: dict[str, Any]) -> Manifest:
    """`previous` and `removed` of a format-2 manifest, checked."""
    raw = value["previous"]
    if not isinstance(raw, dict):
        raise ManifestError(f"the manifest is unreadable: previous is {quoted(raw)}, not an object")
    previous = Previous(_count(raw["generation"], "the previous generation"), _count(raw["offset"], "the offset"))
    if previous.generation >= manifest.generation:
        raise ManifestError(
            f"the manifest is unreadable: its generation {manifest.generation} is not above the previous "
            f"segment's {previous.generation}"
        )
    listed = value["removed"]
    if not isinstance(listed, list):
        raise ManifestError(f"the manifest is unreadable: removed is {quoted(listed)}, not a list")
    for item in listed:
        if not isinstance(item, str) or len(item) != 36 or str(UUID(item)) != item:
            raise ManifestError(f"the manifest is unreadable: removed holds {quoted(item)}, not an entity id")
    if any(a >= b for a, b in pairwise(listed)):
        raise ManifestError("the manifest is unreadable: its removed ids are not sorted and unique")
    return dataclasses.replace(manifest, previous=previous, removed=tuple(UUID(i) for i in listed))


def _count(value: object, what: str) -> int:
    """A whole number that fits the 64-bit columns it goes into."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
        raise ManifestError(f"the manifest is unreadable: {what} is {quoted(value)}, not a count of 0..{MAX_COUNT}")
    return value

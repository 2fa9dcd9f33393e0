"""The manifest: the project's own last member of a store tar, so a reader can tell a complete, intact
store from a damaged one. oVirt readers ignore it (they read only `*.ovf` and `metadata.json`).

Its length must be known before the tar is sent, yet it holds the SHA-256 of members streamed before
it. Serialization is therefore fixed-width where the hashes go: the length is computed with
placeholder hashes of the same size as real ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ovfstore.store.javadate import format_java_date
from ovfstore.store.quoting import quoted

MANIFEST_NAME = "manifest.json"
#: Generations and sizes are stored in 64-bit signed columns; anything larger is damage or an attack.
MAX_COUNT = 2**63 - 1
MANIFEST_FORMAT = 1
_PLACEHOLDER = "0" * 64


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    generation: int
    writer: str
    created: datetime
    members: tuple[ManifestEntry, ...]
    format: int = MANIFEST_FORMAT

    def encode(self) -> bytes:
        return encode(self.generation, self.writer, self.created, [(m.name, m.size, m.sha256) for m in self.members])


class ManifestError(ValueError):
    pass


def encode(generation: int, writer: str, created: datetime, members: list[tuple[str, int, str]]) -> bytes:
    document: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "generation": generation,
        "writer": writer,
        "created": format_java_date(created),
        "members": [{"name": n, "size": s, "sha256": h} for n, s, h in members],
    }
    return (json.dumps(document, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")


def encoded_size(generation: int, writer: str, created: datetime, members: list[tuple[str, int]]) -> int:
    return len(encode(generation, writer, created, [(n, s, _PLACEHOLDER) for n, s in members]))


def decode(data: bytes) -> Manifest:
    from ovfstore.store.javadate import JavaDateError, parse_java_date

    try:
        value = json.loads(data)
        if value["format"] != MANIFEST_FORMAT:
            raise ManifestError(f"manifest format {quoted(value['format'])} is not {MANIFEST_FORMAT}; upgrade ovfstore")
        members = tuple(
            ManifestEntry(name=str(m["name"]), size=_count(m["size"], "a member size"), sha256=str(m["sha256"]))
            for m in value["members"]
        )
        created, _ = parse_java_date(str(value["created"]))
        return Manifest(
            generation=_count(value["generation"], "the generation"), writer=str(value["writer"]), created=created,
            members=members,
        )  # fmt: skip
    except ManifestError:
        raise
    except RecursionError as exc:
        raise ManifestError("the manifest is unreadable (JSON nested too deeply)") from exc
    except (ValueError, KeyError, TypeError, JavaDateError) as exc:
        raise ManifestError(f"the manifest is unreadable ({exc.__class__.__name__}: {quoted(str(exc))})") from exc


def _count(value: object, what: str) -> int:
    """A whole number that fits the 64-bit columns it goes into."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
        raise ManifestError(f"the manifest is unreadable: {what} is {quoted(value)}, not a count of 0..{MAX_COUNT}")
    return value

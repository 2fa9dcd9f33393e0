"""Reading a store tar, from any source, without trusting it.

A store may have been written by oVirt, by an older ovfstore, half-written by a writer that died, or
damaged on purpose. The reader streams it with bounded memory and refuses anything a store never holds:
names with `/` or `..`, links, devices, directories, extension headers, duplicate members, members that
run past the end of the store, headers with a bad checksum. It stops at the end-of-archive blocks and
ignores what follows (stale bytes of an older, longer tar). With a manifest (ovfstore's stores), every
member must match it; without one (oVirt's), the store is read as "unverified".
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ovfstore.store import manifest as mf
from ovfstore.store.quoting import quoted
from ovfstore.store.tarstream import BLOCK, INFO_NAME, MAX_MEMBER, METADATA_NAME, padded

_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE)
ZERO_BLOCK = b"\0" * BLOCK
_SKIP_PIECE = 1 << 20


class StoreReadError(ValueError):
    """This store cannot be used; the message says why. Recovery passes over to the next store."""


@dataclass(slots=True)
class StoreSummary:
    """What a store holds, without the documents themselves."""

    info: dict[str, Any] = field(default_factory=dict)
    entity_ids: list[UUID] = field(default_factory=list)  # registered entities, in tar order
    unregistered_ids: list[UUID] = field(default_factory=list)  # listed after metadata.json
    vm_status: dict[UUID, int] = field(default_factory=dict)
    manifest: mf.Manifest | None = None
    warnings: list[str] = field(default_factory=list)
    # Members read through but not kept (over MAX_MEMBER), by name, with why; their entities by id.
    member_errors: dict[str, str] = field(default_factory=dict)
    skipped_ids: dict[UUID, str] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        """Checked against a manifest (ovfstore's stores); False for oVirt's, which carry none."""
        return self.manifest is not None

    @property
    def complete(self) -> bool:
        """Every member was read: False when some were skipped, and the entities they held are missing."""
        return not self.member_errors


@dataclass(slots=True)
class StoreContents(StoreSummary):
    ovfs: dict[UUID, bytes] = field(default_factory=dict)  # registered entities, in tar order
    unregistered: dict[UUID, bytes] = field(default_factory=dict)


OnOvf = Callable[[UUID, bytes, bool], None]


class _Source:
    """Exact reads over an iterator of chunks, with a hard limit on how far it may read."""

    def __init__(self, chunks: Iterable[bytes], limit: int) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self.offset = 0
        self.limit = limit

    def read(self, size: int, what: str) -> bytes:
        if self.offset + size > self.limit:
            raise StoreReadError(f"{what} runs past the end of the store ({self.offset + size} > {self.limit} bytes)")
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise StoreReadError(
                    f"the store is truncated: {what} ends after {self.offset + len(self._buffer)} bytes"
                )
            self._buffer.extend(chunk)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self.offset += size
        return data

    def skip(self, size: int, what: str) -> str:
        """Read through `size` bytes without keeping them; their SHA-256."""
        if self.offset + size > self.limit:
            raise StoreReadError(f"{what}, and it runs past the end of the store ({self.offset + size} > {self.limit})")
        digest = hashlib.sha256()
        left = size
        while left:
            piece = self.read(min(left, _SKIP_PIECE), f"{what} ({size - left} bytes in)")
            digest.update(piece)
            left -= len(piece)
        return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Member:
    """One member as read: its bytes, or None when it was skipped (`error` says why); its SHA-256 either
    way, so a manifest still vouches for a skipped member's integrity."""

    name: str
    size: int
    sha256: str
    data: bytes | None
    error: str | None = None


def iter_members(chunks: Iterable[bytes], limit: int) -> Iterator[Member]:
    """Each member, checked as the module describes; `limit` is the store's `Size` (or the volume's
    capacity when the size is not known). A member over `MAX_MEMBER` in an otherwise sound tar is skipped
    (read through, not kept) and comes with its error; the rest of the store is still read."""
    source = _Source(chunks, limit)
    seen: set[str] = set()
    while True:
        if source.offset + BLOCK > limit:
            raise StoreReadError(f"the store ends at {limit} bytes without its end-of-archive blocks")
        block = source.read(BLOCK, "a member header")
        if block == ZERO_BLOCK:
            _check_end(source)
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
        except (tarfile.HeaderError, UnicodeDecodeError) as exc:
            raise StoreReadError(f"bad tar header at byte {source.offset - BLOCK}: {exc}") from exc
        name = info.name
        _check_member(info, seen)
        seen.add(name)
        if info.size < 0:  # base-256 sizes can be negative; reading backwards would evade the limit
            raise StoreReadError(f"member {name!r} declares a negative size ({info.size})")
        if info.size > MAX_MEMBER:
            why = f"member {name!r} declares {info.size} bytes; no store member is over {MAX_MEMBER}"
            digest = source.skip(info.size, why)
            source.read(padded(info.size) - info.size, f"the padding of {name!r}")
            yield Member(name, info.size, digest, None, f"{why}: skipped")
            continue
        data = source.read(info.size, f"member {name!r}")
        source.read(padded(info.size) - info.size, f"the padding of {name!r}")
        yield Member(name, info.size, hashlib.sha256(data).hexdigest(), data)


def _check_end(source: _Source) -> None:
    """The end-of-archive blocks must end the store where its `Size` says. A write cut short inside a
    sparse volume leaves zeros where the rest of the tar should be, and zeros look just like an end of
    archive: only the position tells a complete store from a truncated one. Writers that pad the tar to a
    whole record leave less than one record of zeros after the end blocks; that is accepted."""
    end = source.offset + BLOCK
    if end > source.limit or source.read(BLOCK, "the end-of-archive blocks") != ZERO_BLOCK:
        raise StoreReadError(f"the store has no proper end-of-archive at byte {source.offset - BLOCK}")
    padding = source.limit - end
    if padding >= tarfile.RECORDSIZE or (padding and source.limit % tarfile.RECORDSIZE):
        raise StoreReadError(
            f"the archive ends at byte {end} but the store says it holds {source.limit}: it was cut short "
            "(a write that did not finish) or its Size is wrong"
        )
    if any(source.read(padding, "the record padding")):
        raise StoreReadError(f"the archive ends at byte {end} and is followed by data, not padding: it is damaged")


def _check_member(info: tarfile.TarInfo, seen: set[str]) -> None:
    name = info.name
    if info.type not in _REGULAR:
        kind = {
            tarfile.SYMTYPE: "a symbolic link",
            tarfile.LNKTYPE: "a hard link",
            tarfile.DIRTYPE: "a directory",
        }
        raise StoreReadError(
            f"member {name!r} is {kind.get(info.type, f'of tar type {info.type!r}')}; stores hold regular files only"
        )
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise StoreReadError(f"member name {name!r} is not a flat file name; stores hold no paths")
    if name in seen:
        raise StoreReadError(f"member {name!r} appears twice")


def scan_store(chunks: Iterable[bytes], limit: int, on_ovf: OnOvf | None = None) -> StoreSummary:
    """Read and verify a store, streaming: each OVF goes to `on_ovf(entity_id, document, unregistered)`
    as it is read and is not kept. The documents are only trustworthy once this returns: a store found
    damaged at its manifest (the last member) raises `StoreReadError` after they were handed over. A
    member skipped as oversized is in `member_errors`; the store is still valid (its manifest, if any,
    vouches for the skipped bytes too), only incomplete."""
    summary = StoreSummary()
    digests: list[tuple[str, int, str]] = []
    after_metadata = False
    for member in iter_members(chunks, limit):
        name, data = member.name, member.data
        if name == mf.MANIFEST_NAME:
            summary.manifest = _manifest(member)
            _verify(summary.manifest, digests)
            continue
        if summary.manifest is not None:
            raise StoreReadError(f"member {name!r} follows the manifest; the manifest must be last")
        digests.append((name, member.size, member.sha256))
        if data is None:
            summary.member_errors[name] = member.error or "unreadable"
            after_metadata = after_metadata or name == METADATA_NAME
            _list_entity(summary, name, after_metadata, skipped=True)
        elif name == INFO_NAME:
            summary.info = _json_object(name, data)
        elif name == METADATA_NAME:
            after_metadata = True
            summary.vm_status = _status_map(_json_object(name, data), summary.warnings)
        elif (entity_id := _list_entity(summary, name, after_metadata)) is not None and on_ovf is not None:
            on_ovf(entity_id, data, after_metadata)
    return summary


def _manifest(member: Member) -> mf.Manifest:
    if member.data is None:
        raise StoreReadError(f"the manifest cannot be read: {member.error}")
    try:
        return mf.decode(member.data)
    except mf.ManifestError as exc:
        raise StoreReadError(str(exc)) from exc


def _list_entity(summary: StoreSummary, name: str, after_metadata: bool, skipped: bool = False) -> UUID | None:
    """The entity id a `<id>.ovf` member names, listed in the summary (None for any other member, with a
    warning); a skipped member's entity goes to `skipped_ids` instead."""
    if name in (INFO_NAME, METADATA_NAME):
        return None
    if not name.endswith(".ovf"):
        summary.warnings.append(f"unknown member {name!r} ignored")
        return None
    try:
        entity_id = UUID(name[:-4])
    except ValueError:
        summary.warnings.append(f"member {name!r} is not named by an entity id; skipped")
        return None
    if skipped:
        summary.skipped_ids[entity_id] = summary.member_errors[name]
        return None
    (summary.unregistered_ids if after_metadata else summary.entity_ids).append(entity_id)
    return entity_id


def read_store(chunks: Iterable[bytes], limit: int) -> StoreContents:
    """Read and verify a whole store, keeping its documents in memory (inspection, tests)."""
    ovfs: dict[UUID, bytes] = {}
    unregistered: dict[UUID, bytes] = {}

    def keep(entity_id: UUID, document: bytes, is_unregistered: bool) -> None:
        (unregistered if is_unregistered else ovfs)[entity_id] = document

    summary = scan_store(chunks, limit, keep)
    return StoreContents(
        info=summary.info, entity_ids=summary.entity_ids, unregistered_ids=summary.unregistered_ids,
        vm_status=summary.vm_status, manifest=summary.manifest, warnings=summary.warnings,
        member_errors=summary.member_errors, skipped_ids=summary.skipped_ids, ovfs=ovfs, unregistered=unregistered,
    )  # fmt: skip


def _verify(manifest: mf.Manifest, digests: list[tuple[str, int, str]]) -> None:
    expected = [(m.name, m.size, m.sha256) for m in manifest.members]
    if expected == digests:
        return
    names = {n for n, _, _ in expected} ^ {n for n, _, _ in digests}
    changed = [n for (n, s, h) in digests if (n, s, h) not in expected]
    detail = f"members missing or extra: {sorted(names)}" if names else f"members differ: {changed[:5]}"
    raise StoreReadError(f"the store does not match its manifest ({detail}); it is damaged or incomplete")


def _json_object(name: str, data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except RecursionError as exc:
        raise StoreReadError(f"{name} is not usable JSON: it is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:  # huge numbers too: int conversion refuses them
        raise StoreReadError(f"{name} is not JSON: {quoted(str(exc))}") from exc
    if not isinstance(value, dict):
        raise StoreReadError(f"{name} is not a JSON object")
    return value


def _status_map(metadata: dict[str, Any], warnings: list[str]) -> dict[UUID, int]:
    result: dict[UUID, int] = {}
    raw = metadata.get("VM Status") or {}
    if not isinstance(raw, dict):
        warnings.append("metadata.json 'VM Status' is not an object; every VM reads as down")
        return result
    for key, value in raw.items():
        try:
            status = int(value)
            if not 0 <= status < 2**15:  # oVirt's statuses are small numbers; a huge one is damage
                raise ValueError(status)
            result[UUID(key)] = status
        except (ValueError, TypeError, OverflowError):
            warnings.append(f"metadata.json: bad VM status entry {quoted(key)}: {quoted(value)}")
    return result

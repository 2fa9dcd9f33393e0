"""Reading a store tar, from any source, without trusting it.

A store may have been written by oVirt, by an older ovfstore, half-written by a writer that died, or
damaged on purpose. The reader streams it with bounded memory and refuses anything a store never holds:
names with `/` or `..`, links, devices, directories, extension headers, duplicate members (within a
segment), members that run past the end of the store, headers with a bad checksum. It stops at the
end-of-archive blocks and ignores what follows (stale bytes of an older, longer tar). With a manifest
(ovfstore's stores), every member must match it; without one (oVirt's), the store is read as "unverified".

A store may have segments appended to it (docs/FORMATS.md section 3): each ends with a manifest of its
own, chained to the one before. A member of a later segment replaces one of the same name in an earlier
segment (as oVirt reads a store: a map by name, the last one wins), and an entity a segment lists as
removed is dropped unless a later segment holds it again.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    # Registered entities, in the order they first appear in the tar (again, after a removal), each once.
    entity_ids: list[UUID] = field(default_factory=list)
    unregistered_ids: list[UUID] = field(default_factory=list)  # listed after metadata.json
    vm_status: dict[UUID, int] = field(default_factory=dict)
    manifest: mf.Manifest | None = None
    warnings: list[str] = field(default_factory=list)
    # Members read through but not kept (over MAX_MEMBER), by name, with why; their entities by id.
    member_errors: dict[str, str] = field(default_factory=dict)
    skipped_ids: dict[UUID, str] = field(default_factory=dict)
    # The base segment and the segments appended to it: one per manifest (1 for a store without one).
    segments: int = 1
    # Entities a later segment removed (and no segment after it holds again), in the order removed.
    removed_ids: list[UUID] = field(default_factory=list)
    # For each entity, the index (0: the base) of the segment holding its final version; kept only for a
    # store of several segments, so that a second read can deliver just those (`scan_store(final=...)`).
    final_segments: dict[UUID, int] = field(default_factory=dict)

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
    offset: int = 0  # where its header starts in the store


def iter_members(chunks: Iterable[bytes], limit: int) -> Iterator[Member]:
    """Each member, checked as the module describes; `limit` is the store's `Size` (or the volume's
    capacity when the size is not known). A member over `MAX_MEMBER` in an otherwise sound tar is skipped
    (read through, not kept) and comes with its error; the rest of the store is still read."""
    source = _Source(chunks, limit)
    seen: set[str] = set()
    while True:
        if source.offset + BLOCK > limit:
            raise StoreReadError(f"the store ends at {limit} bytes without its end-of-archive blocks")
        start = source.offset
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
        # A manifest ends a segment: a later segment may hold the names of an earlier one again.
        if name == mf.MANIFEST_NAME:
            seen.clear()
        else:
            seen.add(name)
        if info.size < 0:  # base-256 sizes can be negative; reading backwards would evade the limit
            raise StoreReadError(f"member {name!r} declares a negative size ({info.size})")
        if info.size > MAX_MEMBER:
            why = f"member {name!r} declares {info.size} bytes; no store member is over {MAX_MEMBER}"
            digest = source.skip(info.size, why)
            source.read(padded(info.size) - info.size, f"the padding of {name!r}")
            yield Member(name, info.size, digest, None, f"{why}: skipped", start)
            continue
        data = source.read(info.size, f"member {name!r}")
        source.read(padded(info.size) - info.size, f"the padding of {name!r}")
        yield Member(name, info.size, hashlib.sha256(data).hexdigest(), data, offset=start)


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


def scan_store(
    chunks: Iterable[bytes], limit: int, on_ovf: OnOvf | None = None, final: StoreSummary | None = None
) -> StoreSummary:
    """Read and verify a store, streaming: each OVF goes to `on_ovf(entity_id, document, unregistered)`
    as it is read and is not kept. The documents are only trustworthy once this returns: a store found
    damaged at a manifest raises `StoreReadError` after they were handed over. A member skipped as
    oversized is in `member_errors`; the store is still valid (its manifest, if any, vouches for the
    skipped bytes too), only incomplete.

    In a store of several segments an entity may be there several times (or removed later): without
    `final`, `on_ovf` gets every occurrence, in store order, the last one being the final version unless
    the entity is in `removed_ids`. With `final`, the summary of an earlier read of the same store, it
    gets only the final version of each entity in `entity_ids` and `unregistered_ids`, and none of the
    removed ones; a store that changed since that read (another last generation or segment count)
    raises `StoreReadError`."""
    scan = _Scan(on_ovf, final)
    for member in iter_members(chunks, limit):
        scan.member(member)
    return scan.finish()


class _Scan:
    """The state of one read of a store, member after member (`scan_store`)."""

    def __init__(self, on_ovf: OnOvf | None, final: StoreSummary | None) -> None:
        self.summary = StoreSummary()
        self.on_ovf = on_ovf
        self.final = final
        self.segment = 0  # index of the segment being read: the number of manifests read so far
        self.start = 0  # the offset where it starts
        self.digests: list[tuple[str, int, str]] = []  # its members so far
        self.after_metadata = False  # in the base segment, past metadata.json: unregistered entities
        self.where: dict[UUID, int] = {}  # entity -> segment of its latest occurrence (not skipped)
        self.base_unregistered: set[UUID] = set()
        self.removed: dict[UUID, None] = {}  # an ordered set

    def member(self, member: Member) -> None:
        if self.final is not None and self.segment >= self.final.segments:
            raise self._changed(" or more")
        if member.name == mf.MANIFEST_NAME:
            self._end_segment(member)
            return
        name, data, summary = member.name, member.data, self.summary
        self.digests.append((name, member.size, member.sha256))
        if data is None:
            summary.member_errors[name] = member.error or "unreadable"
            self.after_metadata = self.after_metadata or (name == METADATA_NAME and self.segment == 0)
            self._entity(name, None)
            return
        summary.member_errors.pop(name, None)  # an earlier segment's member of this name is replaced
        if name == INFO_NAME:
            summary.info = _json_object(name, data)
        elif name == METADATA_NAME:
            self.after_metadata = self.after_metadata or self.segment == 0
            summary.warnings = [w for w in summary.warnings if not w.startswith(METADATA_NAME)]  # replaced
            summary.vm_status = _status_map(_json_object(name, data), summary.warnings)
        else:
            self._entity(name, data)

    def _entity(self, name: str, data: bytes | None) -> None:
        """An `<id>.ovf` member (any other name is warned about); `data` None when it was skipped."""
        entity_id = _entity_id(name, self.summary.warnings)
        if entity_id is None:
            return
        summary = self.summary
        self.removed.pop(entity_id, None)
        if data is None:
            summary.skipped_ids[entity_id] = summary.member_errors[name]
            self.where.pop(entity_id, None)
            return
        summary.skipped_ids.pop(entity_id, None)
        self.where[entity_id] = self.segment
        unregistered = self.segment == 0 and self.after_metadata
        if unregistered:
            self.base_unregistered.add(entity_id)
        if self.on_ovf is not None and self._final_here(entity_id):
            self.on_ovf(entity_id, data, unregistered)

    def _final_here(self, entity_id: UUID) -> bool:
        if self.final is None or self.final.segments == 1:
            return True
        return self.final.final_segments.get(entity_id) == self.segment

    def _end_segment(self, member: Member) -> None:
        manifest = _manifest(member)
        self._check_chain(manifest)
        _verify(manifest, self.digests, self.segment)
        names = {n for n, _, _ in self.digests}
        for entity_id in manifest.removed:
            if f"{entity_id}.ovf" in names:
                raise StoreReadError(
                    f"the manifest of segment {self.segment + 1} removes entity {entity_id}, which the segment "
                    "holds: it is damaged"
                )
            held = self.where.pop(entity_id, None) is not None
            if self.summary.skipped_ids.pop(entity_id, None) is not None or held:
                self.removed[entity_id] = None
                self.summary.member_errors.pop(f"{entity_id}.ovf", None)
        self.summary.manifest = manifest
        self.segment += 1
        self.start = member.offset + BLOCK + padded(member.size)
        self.digests = []

    def _check_chain(self, manifest: mf.Manifest) -> None:
        """A format-1 manifest ends the base segment, a format-2 one each later segment, naming the one
        before it and where its own segment starts."""
        if self.segment == 0:
            if manifest.format != mf.MANIFEST_FORMAT:
                raise StoreReadError(
                    f"the first manifest is of format {manifest.format}, which ends only an appended segment: the "
                    "store it was appended to is missing, or the store is damaged"
                )
            return
        previous, before = manifest.previous, self.summary.manifest
        if manifest.format != mf.SEGMENT_FORMAT or previous is None or before is None:
            raise StoreReadError(
                f"segment {self.segment + 1} ends with a manifest of format {manifest.format}, which only ends a "
                "store's first segment: the store is damaged"
            )
        if (previous.generation, previous.offset) != (before.generation, self.start):
            raise StoreReadError(
                f"segment {self.segment + 1} is not chained to the one before: its manifest names generation "
                f"{previous.generation} at byte {previous.offset}, but the segment before is of generation "
                f"{before.generation} and this one starts at byte {self.start}; the store is damaged"
            )

    def _changed(self, more: str = "") -> StoreReadError:
        assert self.final is not None
        then = self.final.manifest.generation if self.final.manifest else None
        now = self.summary.manifest.generation if self.summary.manifest else None
        return StoreReadError(
            f"the store changed since it was first read (then generation {then} in {self.final.segments} "
            f"segment(s), now generation {now} in {max(self.segment, 1)}{more}): read it again"
        )

    def finish(self) -> StoreSummary:
        summary = self.summary
        if summary.manifest is not None and self.digests:
            raise StoreReadError(
                f"member {self.digests[0][0]!r} follows the last manifest; a store must end with its manifest"
            )
        summary.segments = max(self.segment, 1)
        if self.final is not None:
            then = (self.final.manifest.generation if self.final.manifest else None, self.final.segments)
            if then != (summary.manifest.generation if summary.manifest else None, summary.segments):
                raise self._changed()
        for entity_id, segment in self.where.items():
            unregistered = segment == 0 and entity_id in self.base_unregistered
            (summary.unregistered_ids if unregistered else summary.entity_ids).append(entity_id)
        summary.removed_ids = list(self.removed)
        summary.final_segments = self.where if summary.segments > 1 else {}
        return summary


def _manifest(member: Member) -> mf.Manifest:
    if member.data is None:
        raise StoreReadError(f"the manifest cannot be read: {member.error}")
    try:
        return mf.decode(member.data)
    except mf.ManifestError as exc:
        raise StoreReadError(str(exc)) from exc


def _entity_id(name: str, warnings: list[str]) -> UUID | None:
    """The entity id a `<id>.ovf` member names; None for any other member, with a warning."""
    if name in (INFO_NAME, METADATA_NAME):
        return None
    if not name.endswith(".ovf"):
        warnings.append(f"unknown member {name!r} ignored")
        return None
    try:
        return UUID(name[:-4])
    except ValueError:
        warnings.append(f"member {name!r} is not named by an entity id; skipped")
        return None


def read_store(chunks: Iterable[bytes], limit: int) -> StoreContents:
    """Read and verify a whole store, keeping its documents in memory (inspection, tests): the final
    version of each entity, as `entity_ids` and `unregistered_ids` list them."""
    documents: dict[UUID, bytes] = {}

    def keep(entity_id: UUID, document: bytes, _unregistered: bool) -> None:
        documents[entity_id] = document  # a later segment's version replaces an earlier one

    summary = scan_store(chunks, limit, keep)
    return StoreContents(
        info=summary.info, entity_ids=summary.entity_ids, unregistered_ids=summary.unregistered_ids,
        vm_status=summary.vm_status, manifest=summary.manifest, warnings=summary.warnings,
        member_errors=summary.member_errors, skipped_ids=summary.skipped_ids, segments=summary.segments,
        removed_ids=summary.removed_ids, final_segments=summary.final_segments,
        ovfs=_pick(documents, summary.entity_ids), unregistered=_pick(documents, summary.unregistered_ids),
    )  # fmt: skip


def _pick(documents: dict[UUID, bytes], ids: Sequence[UUID]) -> dict[UUID, bytes]:
    return {i: documents[i] for i in ids}


def _verify(manifest: mf.Manifest, digests: list[tuple[str, int, str]], segment: int) -> None:
    expected = [(m.name, m.size, m.sha256) for m in manifest.members]
    if expected == digests:
        return
    names = {n for n, _, _ in expected} ^ {n for n, _, _ in digests}
    listed = set(expected)
    changed = [n for (n, s, h) in digests if (n, s, h) not in listed]
    detail = f"members missing or extra: {quoted(sorted(names)[:5])}" if names else f"members differ: {changed[:5]}"
    which = (
        f"segment {segment + 1} of the store does not match its manifest"
        if segment
        else "the store does not match its manifest"
    )
    raise StoreReadError(f"{which} ({detail}); it is damaged or incomplete")


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

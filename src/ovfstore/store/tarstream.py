"""The store tar, written as a stream whose exact length is known before the first byte.

Layout (docs/FORMATS.md section 3): `info.json`, one `<id>.ovf` per entity, `metadata.json` (the VM status
map), one `<id>.ovf` per unregistered entity, and last our `manifest.json`. POSIX ustar, flat names,
mode 0644, owner 0/0, no record padding: the length is `sum(512 + roundup512(size)) + 1024`.

OVF bytes are not held in memory: the caller gives each entity's size up front and a `fetch` function
that yields the documents in batches, in the order asked. If a fetched document does not have the size
announced (the cache changed under us), the stream fails rather than send a tar that lies about itself.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ovfstore.store import manifest
from ovfstore.store.javadate import format_java_date

#: The largest member a store holds, for writer and reader alike: the writer never produces a member the
#: reader would refuse. A single OVF larger than this is not a VM description but damage or an attack;
#: the OVF reader caps documents at the same size (`ovfstore.ovf.MAX_DOCUMENT_BYTES`, a test holds them equal).
MAX_MEMBER = 8 * 1024 * 1024
BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
INFO_NAME = "info.json"
METADATA_NAME = "metadata.json"
#: Documents are fetched from the cache this many at a time: enough to amortise a query, few enough
#: that memory stays flat (a typical OVF is 5-15 KiB, so a batch is a few MiB at most).
FETCH_BATCH = 256
#: The stream yields chunks of about this size, so HTTP sends few large writes, not thousands of small.
CHUNK = 1 << 20

Fetch = Callable[[Sequence[UUID]], Iterable[tuple[UUID, bytes]]]


class StoreBuildError(RuntimeError):
    """The store could not be built as announced; nothing written from it may be trusted."""


@dataclass(frozen=True, slots=True)
class EntityRef:
    id: UUID
    size: int  # bytes of its OVF document
    sha256: str | None = None  # of its OVF document, when known (hashed while streaming otherwise)


def metadata_json(vm_status: Mapping[UUID, int]) -> bytes:
    """`metadata.json`: the VM status map of the VMs that were not down, as oVirt writes it (a recovery
    restarts exactly these), by id."""
    running = dict(sorted((str(k), int(v)) for k, v in vm_status.items() if int(v)))
    return json.dumps({"VM Status": running}).encode()


def padded(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK


def _header_template() -> bytes:
    """The fields every member's header shares: mode 0644, owner 0/0, a regular file, ustar magic, and
    the checksum field as spaces (as the checksum is computed)."""
    block = bytearray(BLOCK)
    block[100:108] = b"0000644\0"
    block[108:116] = b"0000000\0"
    block[116:124] = b"0000000\0"
    block[148:156] = b" " * 8
    block[156] = ord(tarfile.REGTYPE)
    block[257:265] = tarfile.POSIX_MAGIC
    return bytes(block)


_TEMPLATE = _header_template()
_TEMPLATE_SUM = sum(_TEMPLATE)


def header(name: str, size: int, mtime: int) -> bytes:
    """A POSIX ustar header of a regular file, mode 0644, owner 0/0 (what `tarfile` writes, built
    directly: a store has thousands of members and `tarfile` spends most of a store's build time here).
    The checksum is the template's sum plus that of the fields filled in, not a sum over 512 bytes."""
    encoded = name.encode("ascii")
    if len(encoded) > 100:
        raise StoreBuildError(f"member name {name!r} is longer than a ustar name (100 bytes)")
    if not 0 <= size < 8 << 30 or not 0 <= mtime < 8 << 30:
        raise StoreBuildError(f"member {name!r}: size {size} or time {mtime} does not fit a ustar header")
    size_field = b"%011o\0" % size
    mtime_field = b"%011o\0" % mtime
    block = bytearray(_TEMPLATE)
    block[0 : len(encoded)] = encoded
    block[124:136] = size_field
    block[136:148] = mtime_field
    checksum = _TEMPLATE_SUM + sum(encoded) + sum(size_field) + sum(mtime_field)
    block[148:156] = b"%06o\0 " % checksum
    return bytes(block)


class StoreTar:
    """One store's tar. `length` is exact before streaming; `chunks()` streams it once. The SHA-256 of
    each member goes into the manifest (from `EntityRef.sha256` when the caller knows it); that of the
    whole is computed by whoever sends it (the agent client does, and compares with the agent's)."""

    def __init__(
        self,
        *,
        domain_id: UUID,
        generation: int,
        writer: str,
        created: datetime,
        entities: Sequence[EntityRef],
        unregistered: Sequence[EntityRef],
        vm_status: Mapping[UUID, int],
        fetch: Fetch,
    ) -> None:
        self.domain_id = domain_id
        self.generation = generation
        self.writer = writer
        self.created = created.replace(microsecond=0)
        self.entities = entities
        self.unregistered = unregistered
        self._fetch = fetch
        oversized = [e for e in (*entities, *unregistered) if e.size > MAX_MEMBER]
        if oversized:
            raise StoreBuildError(
                f"the OVF of {oversized[0].id} is {oversized[0].size} bytes; no store member may be over "
                f"{MAX_MEMBER} (leave such entities out of the store and report them)"
            )
        self._mtime = int(self.created.timestamp())
        self.info = (
            json.dumps(
                {
                    "Last Updated": format_java_date(self.created),
                    "Storage Domains": [{"uuid": str(domain_id)}],
                }
            )
        ).encode()
        self.metadata = metadata_json(vm_status)
        listed = [(INFO_NAME, len(self.info))]
        listed += [(f"{e.id}.ovf", e.size) for e in entities]
        listed.append((METADATA_NAME, len(self.metadata)))
        listed += [(f"{e.id}.ovf", e.size) for e in unregistered]
        self._listed = listed
        manifest_size = manifest.encoded_size(generation, writer, self.created, listed)
        self.length = sum(BLOCK + padded(size) for _, size in listed) + BLOCK + padded(manifest_size)
        self.length += len(END_OF_ARCHIVE)

    @property
    def entity_ids(self) -> list[UUID]:
        return [e.id for e in self.entities]

    def chunks(self) -> Iterator[bytes]:
        out = MemberStream(self._listed, self._mtime)
        yield from out.member(self.info)
        yield from stream_documents(self.entities, self._fetch, out)
        yield from out.member(self.metadata)
        yield from stream_documents(self.unregistered, self._fetch, out)
        yield from out.finish(manifest.encode(self.generation, self.writer, self.created, out.digests()), self.length)


class MemberStream:
    """Members streamed in the order announced (name, size), each checked against its announced size and
    hashed (unless its SHA-256 is known), in chunks of about `CHUNK`; then the manifest and the
    end-of-archive. What a store tar and an appended segment (`store.segment`) share."""

    def __init__(self, announced: Sequence[tuple[str, int]], mtime: int) -> None:
        self._announced = iter(announced)
        self._mtime = mtime
        self._digests: list[tuple[str, int, str]] = []
        self._buffer = bytearray()
        self._sent = 0

    def digests(self) -> list[tuple[str, int, str]]:
        """(name, size, SHA-256) of every member streamed, once all announced ones were."""
        if next(self._announced, None) is not None:
            raise StoreBuildError("fewer members were streamed than announced")
        return self._digests

    def member(self, data: bytes, sha256: str | None = None) -> Iterator[bytes]:
        name, size = next(self._announced, ("", -1))
        if len(data) != size:
            raise StoreBuildError(f"member {name or '(extra)'} has {len(data)} bytes, {size} were announced")
        self._digests.append((name, size, sha256 or hashlib.sha256(data).hexdigest()))
        yield from self._emit(name, data)

    def finish(self, manifest_bytes: bytes, length: int) -> Iterator[bytes]:
        """The manifest and the end-of-archive; the whole must come to `length` bytes."""
        yield from self._emit(manifest.MANIFEST_NAME, manifest_bytes)
        self._buffer.extend(END_OF_ARCHIVE)
        out = bytes(self._buffer)
        self._sent += len(out)
        if self._sent != length:
            raise StoreBuildError(f"streamed {self._sent} bytes but announced {length}")
        yield out

    def _emit(self, name: str, data: bytes) -> Iterator[bytes]:
        size = len(data)
        self._buffer.extend(header(name, size, self._mtime))
        self._buffer.extend(data)
        self._buffer.extend(b"\0" * (padded(size) - size))
        if len(self._buffer) >= CHUNK:
            out = bytes(self._buffer)
            self._buffer.clear()
            self._sent += len(out)
            yield out


def stream_documents(refs: Sequence[EntityRef], fetch: Fetch, out: MemberStream) -> Iterator[bytes]:
    """The documents of `refs`, fetched a batch at a time, each checked against the size announced."""
    for start in range(0, len(refs), FETCH_BATCH):
        batch = refs[start : start + FETCH_BATCH]
        wanted = [r.id for r in batch]
        got = list(fetch(wanted))
        if [g[0] for g in got] != wanted:
            raise StoreBuildError("the OVF cache returned other documents than asked for; retry the update")
        for ref, (_, data) in zip(batch, got, strict=True):
            if len(data) != ref.size:
                raise StoreBuildError(
                    f"the cached OVF of {ref.id} changed size while the store was built; retry the update"
                )
            yield from out.member(data, ref.sha256)

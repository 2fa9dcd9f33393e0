"""Writing a volume's data, the one way it is done: an upload and a copy both go through `write_volume`.

A write covers a range: from offset 0 (a store written whole) or from a later offset, a multiple of 512
(a segment appended to a store, docs/FORMATS.md 5), the bytes before it never changed.

The volume is marked ILLEGAL in its `.meta` before the first byte is written and LEGAL only once the
data is fsynced and, when the caller knows it, has the expected SHA-256. An agent killed mid-write, a
source that ends early or a failed write leaves the volume ILLEGAL, which any reader sees with or
without an agent: VDSM's own meaning of the flag (docs/AGENT.md, "Interrupted uploads").

A write that carries a leadership term (`term`) is fenced (`storage.fencing`): the term is checked and
raised on the domain when the volume is marked ILLEGAL, and checked again, under the term's lock, when it
is marked LEGAL. A writer that lost the leadership during its write is refused there (`StaleTerm`), the
volume left ILLEGAL; what a newer leader wrote is never marked over.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace

from ovfstore.storage.backend import VolumeBackend
from ovfstore.storage.domains import Domain
from ovfstore.storage.errors import CapacityExceeded, DigestMismatch, InvalidArgument
from ovfstore.storage.fencing import fence
from ovfstore.storage.metadata import VolumeMetadata
from ovfstore.storage.volumeio import SECTOR, WrittenData, read_views, write_from
from ovfstore.store.quoting import quoted

#: Fills part of a view and returns how much; 0 when the source has ended.
Source = Callable[[memoryview], int]


@dataclass(frozen=True)
class WritePipeline:
    """What a write runs on: `buffers` (two or more of `aligned_buffer`) filled in turn from the source,
    a `hasher` and a `writer` executor of one thread each (docs/AGENT.md, "Performance")."""

    buffers: Sequence[mmap.mmap]
    hasher: Executor
    writer: Executor


def write_volume(
    domain: Domain,
    img: str,
    vol: str,
    source: Source,
    length: int,
    pipeline: WritePipeline,
    *,
    expected_sha256: str | None = None,
    source_size: int | None = None,
    direct_io: bool = True,
    term: int | None = None,
    offset: int = 0,
) -> WrittenData:
    """Write exactly `length` bytes from `source` into RAW volume `vol` at `offset` (a multiple of 512;
    the bytes before and after the range are left as they are), under its lease.

    The volume is ILLEGAL from before the first byte until the data is durable; it becomes LEGAL only if
    the bytes written have `expected_sha256` (64 lowercase hex digits) when it is given, otherwise
    `DigestMismatch` and it stays ILLEGAL. `source_size`, the bytes a copy's source holds, refuses a
    copy past it before the volume is touched. Exceptions of `source` pass through, the volume ILLEGAL.
    `term`: the writer's leadership term, refused with `StaleTerm` if the domain has seen a higher one.
    """
    with domain.volume_locked(img, vol) as target:
        meta = target.meta
        _check_write(meta, vol, offset, length, source_size)
        # ILLEGAL until the data is durable: an agent killed mid-write leaves the volume marked, and the
        # engine never trusts its content.
        with fence(domain, term):
            domain.write_volume_meta(img, vol, replace(meta, legality="ILLEGAL"))
        with domain.open_volume(img, vol, True, direct_io) as backend:
            written = write_from(
                source, backend, length, meta.capacity, pipeline.buffers, pipeline.hasher, pipeline.writer,
                offset=offset,
            )  # fmt: skip
        if expected_sha256 is not None and written.sha256 != expected_sha256:
            raise DigestMismatch(
                f"the {length} bytes written{_at(offset)} to volume {vol} have SHA-256 {written.sha256}, not the "
                f"expected {expected_sha256}; it is left ILLEGAL until it is written again"
            )
        with fence(domain, term):
            domain.write_volume_meta(img, vol, replace(meta, legality="LEGAL"))
    return written


def _at(offset: int) -> str:
    return f" at offset {offset}" if offset else ""


def _check_write(meta: VolumeMetadata, vol: str, offset: int, length: int, source_size: int | None) -> None:
    """Refuse, before the volume is touched, a write it cannot take (`write_volume`)."""
    if meta.format != "RAW":
        raise InvalidArgument(f"volume {vol} is {meta.format}; raw bytes are only written to RAW volumes")
    if length < 0:
        raise InvalidArgument(f"a transfer length cannot be negative ({length})")
    if offset < 0 or offset % SECTOR:
        raise InvalidArgument(f"a write starts at a multiple of {SECTOR} bytes, not at {quoted(offset)}")
    if offset + length > meta.capacity:
        if not offset:
            raise CapacityExceeded(
                f"{length} bytes do not fit volume {vol} of {meta.capacity} bytes; send at most {meta.capacity} bytes"
            )
        raise CapacityExceeded(
            f"{length} bytes at offset {offset} do not fit volume {vol} of {meta.capacity} bytes; send at most "
            f"{max(0, meta.capacity - offset)} bytes at that offset, or resize the volume first"
        )
    if source_size is not None and offset + length > source_size:
        raise InvalidArgument(f"cannot copy {length} bytes{_at(offset)} from a source volume of {source_size} bytes")


def copy_volume(
    domain: Domain,
    src_img: str,
    src_vol: str,
    img: str,
    vol: str,
    length: int,
    expected_sha256: str,
    pipeline: WritePipeline,
    read_buffer: mmap.mmap,
    direct_io: bool = True,
    term: int | None = None,
    offset: int = 0,
) -> WrittenData:
    """Copy the bytes `[offset, offset + length)` of LEGAL RAW volume `src_vol` into the same range of
    `vol` with `write_volume`, the source held under a shared lease. The copy succeeds only if the bytes
    written have `expected_sha256` (what the caller verified the source to hold): a volume is never
    copied from a source that changed or was damaged. `read_buffer` (of `aligned_buffer`) is where the
    source is read, one span at a time."""
    if (src_img, src_vol) == (img, vol):
        raise InvalidArgument("a volume cannot be copied onto itself")
    with domain.volume_locked(src_img, src_vol, exclusive=False) as source:
        if source.meta.legality != "LEGAL":
            raise InvalidArgument(f"source volume {src_vol} is {source.meta.legality}; copy a complete one")
        if source.meta.format != "RAW":
            raise InvalidArgument(
                f"source volume {src_vol} is {source.meta.format}; copies go between RAW volumes only"
            )
        with domain.open_volume(src_img, src_vol, False, direct_io) as reader:
            try:
                return write_volume(
                    domain, img, vol, _views_reader(reader, offset, length, read_buffer), length, pipeline,
                    expected_sha256=expected_sha256, source_size=source.meta.capacity, direct_io=direct_io,
                    term=term, offset=offset,
                )  # fmt: skip
            except DigestMismatch as e:
                raise DigestMismatch(
                    f"volume {src_vol} does not hold what was expected: {e}; write volume {vol} from the "
                    "source of truth instead of copying"
                ) from e


def _views_reader(backend: VolumeBackend, offset: int, length: int, buffer: mmap.mmap) -> Source:
    """`length` bytes of `backend` from `offset` as a `Source`, read into `buffer` one aligned span at a time."""
    views = read_views(backend, offset, length, buffer)
    pending = memoryview(b"")

    def readinto(target: memoryview) -> int:
        nonlocal pending
        if not pending:
            pending = next(views, memoryview(b""))
        n = min(len(target), len(pending))
        target[:n] = pending[:n]
        pending = pending[n:]
        return n

    return readinto

"""Writing a volume's data, the one way it is done: an upload and a copy both go through `write_volume`.

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
from ovfstore.storage.volumeio import WrittenData, read_views, write_from

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
) -> WrittenData:
    """Write exactly `length` bytes from `source` into RAW volume `vol` from offset 0, under its lease.

    The volume is ILLEGAL from before the first byte until the data is durable; it becomes LEGAL only if
    the bytes written have `expected_sha256` (64 lowercase hex digits) when it is given, otherwise
    `DigestMismatch` and it stays ILLEGAL. `source_size`, the bytes a copy's source holds, refuses a
    longer copy before the volume is touched. Exceptions of `source` pass through, the volume ILLEGAL.
    `term`: the writer's leadership term, refused with `StaleTerm` if the domain has seen a higher one.
    """
    with domain.volume_locked(img, vol) as target:
        meta = target.meta
        if meta.format != "RAW":
            raise InvalidArgument(f"volume {vol} is {meta.format}; raw bytes are only written to RAW volumes")
        if length > meta.capacity:
            raise CapacityExceeded(
                f"{length} bytes do not fit volume {vol} of {meta.capacity} bytes; send at most {meta.capacity} bytes"
            )
        if length < 0:
            raise InvalidArgument(f"a transfer length cannot be negative ({length})")
        if source_size is not None and length > source_size:
            raise InvalidArgument(f"cannot copy {length} bytes from a source volume of {source_size} bytes")
        # ILLEGAL until the data is durable: an agent killed mid-write leaves the volume marked, and the
        # engine never trusts its content.
        with fence(domain, term):
            domain.write_volume_meta(img, vol, replace(meta, legality="ILLEGAL"))
        with domain.open_volume(img, vol, True, direct_io) as backend:
            written = write_from(
                source, backend, length, meta.capacity, pipeline.buffers, pipeline.hasher, pipeline.writer
            )
        if expected_sha256 is not None and written.sha256 != expected_sha256:
            raise DigestMismatch(
                f"the {length} bytes written to volume {vol} have SHA-256 {written.sha256}, not the expected "
                f"{expected_sha256}; it is left ILLEGAL until it is written again"
            )
        with fence(domain, term):
            domain.write_volume_meta(img, vol, replace(meta, legality="LEGAL"))
    return written


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
) -> WrittenData:
    """Copy the first `length` bytes of LEGAL RAW volume `src_vol` into `vol` with `write_volume`, the
    source held under a shared lease. The copy succeeds only if the bytes written have `expected_sha256`
    (what the caller verified the source to hold): a volume is never copied from a source that changed or
    was damaged. `read_buffer` (of `aligned_buffer`) is where the source is read, one span at a time."""
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
                    domain, img, vol, _views_reader(reader, length, read_buffer), length, pipeline,
                    expected_sha256=expected_sha256, source_size=source.meta.capacity, direct_io=direct_io,
                    term=term,
                )  # fmt: skip
            except DigestMismatch as e:
                raise DigestMismatch(
                    f"volume {src_vol} does not hold what was expected: {e}; write volume {vol} from the "
                    "source of truth instead of copying"
                ) from e


def _views_reader(backend: VolumeBackend, length: int, buffer: mmap.mmap) -> Source:
    """The first `length` bytes of `backend` as a `Source`, read into `buffer` one aligned span at a time."""
    views = read_views(backend, 0, length, buffer)
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

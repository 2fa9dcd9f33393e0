"""Streaming volume I/O: exactly N bytes in from a reader, exact byte ranges out.

Writes are pipelined over a ring of aligned buffers: while the caller fills one from the network, one
worker thread hashes what has arrived and another writes full buffers, each in order, so network, CPU
and disk overlap and a slow moment of one stage is absorbed by the buffers in between. The agent's
reader fills the buffer straight from the socket (`recv_into`), the only copy there is. The SHA-256 is
computed over exactly the bytes of the transfer, in order.

A write may start at an offset (a multiple of 512: an appended segment of a store, docs/FORMATS.md 5):
the bytes before it are never changed. Direct I/O needs whole aligned blocks, so a block the transfer
only partly covers is read first and written back whole, its other bytes as they were.
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass
from typing import Any

from ovfstore.storage.backend import ALIGNMENT, VolumeBackend, aligned_buffer
from ovfstore.storage.errors import CapacityExceeded, IncompleteTransfer, InvalidArgument

#: Where a write may start: a multiple of the sector, as VDSM and oVirt's imageio address volumes.
SECTOR = 512


@dataclass(frozen=True)
class WrittenData:
    size: int
    sha256: str


#: Bytes hashed per task of the hash thread: the hash follows the network within about this much, where
#: hashing whole buffers left up to one buffer's hash to do after the last byte came (docs/AGENT.md).
HASH_SLICE = 1 << 20


def _finish(tasks: list[Future[Any]]) -> None:
    """Wait for `tasks`, empty the list, and raise the first failure among them.

    A worker's exception holds the frames it went through, among them the one that waits here, and the
    futures held a reference back to it: a cycle that would keep views of the buffers alive until the
    garbage collector runs, and `mmap.close` refuses to unmap a buffer while a view of it exists. So the
    futures are dropped first, and the exception is not kept in this frame.
    """
    wait(tasks)
    error = next((e for e in (task.exception() for task in tasks) if e is not None), None)
    tasks.clear()
    if error is not None:
        try:
            raise error
        finally:
            del error


def _check_range(offset: int, length: int, capacity: int) -> None:
    if length < 0:
        raise InvalidArgument(f"a transfer length cannot be negative ({length})")
    if offset < 0 or offset % SECTOR:
        raise InvalidArgument(f"a write starts at a multiple of {SECTOR} bytes, not at {offset}")
    if offset + length > capacity:
        where = f" at offset {offset}" if offset else ""
        raise CapacityExceeded(
            f"{length} bytes{where} do not fit a volume of {capacity} bytes; send at most "
            f"{max(0, capacity - offset)} bytes{where} or use a larger volume"
        )


def write_from(
    readinto: Callable[[memoryview], int],
    backend: VolumeBackend,
    length: int,
    capacity: int,
    bufs: Sequence[mmap.mmap],
    hasher: Executor,
    writer: Executor,
    hash_slice: int = HASH_SLICE,
    offset: int = 0,
) -> WrittenData:
    """Write exactly `length` bytes read by `readinto` at `offset` (a multiple of 512), fsync, and return
    their size and SHA-256. Only `[offset, offset + length)` of the volume changes.

    `readinto(view)` fills part of `view` and returns how much; 0 means the source ended. `bufs` are two
    or more buffers of the same size from `aligned_buffer`, used in turn. `hasher` and `writer` each run
    one thread, so the hash and the writes follow the order of the bytes; a buffer is filled again once
    both have finished with it. A buffer is hashed as it arrives, in pieces of at least `hash_slice`
    bytes, and written once full. Hashing is CPU and a direct write mostly waits for the device, so the
    stages run side by side. Every write is aligned, so direct I/O takes it: an `offset` inside an
    aligned block has the block's bytes before it read into the first buffer and written back with the
    range, and the last partial block is completed the same way (`_write_end`). Raises
    `IncompleteTransfer` when the source ends early; the volume is then partly written and the caller
    must not report success. A worker's failure is raised once all the tasks are done, and leaves no
    reference to the buffers behind.
    """
    _check_range(offset, length, capacity)
    digest = hashlib.sha256()
    # What the workers still do with each buffer.
    pending: list[list[Future[Any]]] = [[] for _ in bufs]
    head = offset % ALIGNMENT if length else 0
    if head:
        _read_block(backend, offset - head, memoryview(bufs[0])[:ALIGNMENT])
    received = 0
    current = 0
    backend.seek(offset - head)
    try:
        while received < length:
            _finish(pending[current])
            tasks: list[Future[Any]] = []
            pending[current] = tasks
            start = head if received == 0 else 0  # the first buffer begins with the head block's bytes
            view = memoryview(bufs[current])[: start + length - received]
            _fill(readinto, view[start:], tasks, (hasher, digest, hash_slice), (received, length))
            received += len(view) - start
            if received < length:
                tasks.append(writer.submit(backend.write, view))
            else:
                tasks.append(writer.submit(_write_end, backend, view, offset + length))
            current = (current + 1) % len(bufs)
        for tasks in pending:
            _finish(tasks)
        backend.flush()
        return WrittenData(size=received, sha256=digest.hexdigest())
    finally:
        # The workers may still use a buffer; they must finish before the caller reuses it.
        wait([task for tasks in pending for task in tasks])


def _fill(
    readinto: Callable[[memoryview], int],
    view: memoryview,
    tasks: list[Future[Any]],
    hashing: tuple[Executor, Any, int],
    progress: tuple[int, int],
) -> None:
    """Fill all of `view` from `readinto`, handing the hash thread each `hash_slice` or more as it comes
    (its tasks added to `tasks`); `progress` is (bytes received before `view`, bytes announced)."""
    hasher, digest, hash_slice = hashing
    filled = hashed = 0
    while filled < len(view):
        n = readinto(view[filled:])
        if n == 0:
            raise IncompleteTransfer(
                f"the stream ended after {progress[0] + filled} of {progress[1]} bytes; the volume holds an "
                "incomplete copy, send it again"
            )
        filled += n
        if filled - hashed >= hash_slice or filled == len(view):
            tasks.append(hasher.submit(digest.update, view[hashed:filled]))
            hashed = filled


def _read_block(backend: VolumeBackend, pos: int, view: memoryview) -> None:
    """The volume's bytes at `[pos, pos + len(view))` (an aligned block) into `view`; zeros past its end."""
    backend.seek(pos)
    n = backend.readinto(view)
    view[n:] = bytes(len(view) - n)


def _write_end(backend: VolumeBackend, view: memoryview, end: int) -> None:
    """Write `view`, the last of a transfer, which ends at byte `end` of the volume.

    When `end` is inside a block, that block is read and written back whole with the transfer's bytes in
    it, so the write stays aligned (direct) and the bytes after `end` keep their value. A block that
    passes the end of the volume (a file whose capacity is not a multiple of the block) is not padded
    past it: its part of the transfer goes through the page cache instead (`Backend.write`)."""
    tail = end % ALIGNMENT
    whole = len(view) - tail
    if whole:
        backend.write(view[:whole])
    if not tail:
        return
    if end - tail + ALIGNMENT > backend.size():
        backend.seek(end - tail)
        backend.write(view[whole:])
        return
    # Not closed here: a view of it held by a failure's traceback would make `close` fail; it is unmapped
    # when the last reference goes.
    scratch = memoryview(aligned_buffer(ALIGNMENT))
    _read_block(backend, end - tail, scratch)
    scratch[:tail] = view[whole:]
    backend.seek(end - tail)
    backend.write(scratch)


def read_views(backend: VolumeBackend, offset: int, length: int, buf: mmap.mmap) -> Iterator[memoryview]:
    """Yield exactly the bytes `[offset, offset + length)` as views of `buf`, no copy: each view is only
    valid until the next one is asked for (send it, then move on).

    Raises `InvalidArgument` if the range ends beyond the volume; a volume that shrinks while being read
    ends the iteration with `IncompleteTransfer`, so a caller never passes off a short range as whole.
    """
    end = offset + length
    if offset < 0 or length < 0 or end > backend.size():
        raise InvalidArgument(f"range {offset}+{length} is outside the volume of {backend.size()} bytes; ask for less")
    view = memoryview(buf)
    pos = offset - offset % ALIGNMENT
    while pos < end:
        span = min(len(view), end - pos)
        span += -span % ALIGNMENT
        backend.seek(pos)
        n = backend.readinto(view[:span])
        skip = offset - pos if pos < offset else 0
        stop = min(n, end - pos)
        if stop <= skip:
            raise IncompleteTransfer(f"the volume ended at {pos + n} while reading up to {end}")
        yield view[skip:stop]
        pos += stop

"""Streaming volume I/O: exactly N bytes in from a reader or a chunk stream, exact byte ranges out.

Writes are pipelined over a ring of aligned buffers: while the caller fills one from the network, one
worker thread hashes earlier ones and another writes them, each in order, so network, CPU and disk
overlap and a slow moment of one stage is absorbed by the buffers in between. `write_from` is what the
agent uses: its reader fills the buffer straight from the socket (`recv_into`), the only copy there is.
`write_stream` takes a stream of chunks instead (one more copy, chunk -> buffer). The SHA-256 is
computed over exactly the bytes written, in order.
"""

from __future__ import annotations

import asyncio
import hashlib
import mmap
import threading
from collections.abc import AsyncIterable, Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass
from typing import Any

from ovfstore.storage.backend import ALIGNMENT, Backend, aligned_buffer
from ovfstore.storage.errors import CapacityExceeded, IncompleteTransfer, InvalidArgument


@dataclass(frozen=True)
class WriteResult:
    size: int
    sha256: str


class BufferPool:
    """Aligned buffers reused across transfers, for `write_stream` callers that have no connection to
    keep them in; at most `keep` idle buffers are kept, anything beyond is unmapped when returned.
    """

    def __init__(self, size: int, keep: int) -> None:
        self.size = size
        self._keep = keep
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._free:
                return self._free.pop()
        return aligned_buffer(self.size)

    def give(self, buf: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buf)
                return
        buf.close()


def _write_block(backend: Backend, digest: hashlib._Hash, view: memoryview) -> None:
    digest.update(view)
    backend.write(view)


def _check_length(length: int, capacity: int) -> None:
    if length < 0:
        raise InvalidArgument(f"a transfer length cannot be negative ({length})")
    if length > capacity:
        raise CapacityExceeded(
            f"{length} bytes do not fit a volume of {capacity} bytes; send at most {capacity} bytes or "
            "use a larger volume"
        )


def write_from(
    readinto: Callable[[memoryview], int],
    backend: Backend,
    length: int,
    capacity: int,
    bufs: Sequence[mmap.mmap],
    hasher: Executor,
    writer: Executor,
) -> WriteResult:
    """Write exactly `length` bytes read by `readinto` at offset 0, fsync, and return size and SHA-256.

    `readinto(view)` fills part of `view` and returns how much; 0 means the source ended. `bufs` are two
    or more buffers of the same size from `aligned_buffer`, used in turn. `hasher` and `writer` each run
    one thread, so the hash and the writes follow the order of the buffers; a buffer is filled again
    once both have finished with it. Hashing is CPU and a direct write mostly waits for the device, so
    the stages run side by side. Raises `IncompleteTransfer` when the source ends early; the volume is
    then partly written and the caller must not report success.
    """
    _check_length(length, capacity)
    digest = hashlib.sha256()
    # What the workers still do with each buffer.
    pending: list[list[Future[Any]]] = [[] for _ in bufs]
    received = 0
    current = 0
    backend.seek(0)
    try:
        while received < length:
            for task in pending[current]:
                task.result()
            view = memoryview(bufs[current])[: length - received]
            filled = 0
            while filled < len(view):
                n = readinto(view[filled:])
                if n == 0:
                    raise IncompleteTransfer(
                        f"the stream ended after {received + filled} of {length} bytes; the volume holds an "
                        "incomplete copy, send it again"
                    )
                filled += n
            received += filled
            pending[current] = [hasher.submit(digest.update, view), writer.submit(backend.write, view)]
            current = (current + 1) % len(bufs)
        for tasks in pending:
            for task in tasks:
                task.result()
        backend.flush()
        return WriteResult(size=received, sha256=digest.hexdigest())
    finally:
        # The workers may still use a buffer; they must finish before the caller reuses it.
        wait([task for tasks in pending for task in tasks])


async def write_stream(
    chunks: AsyncIterable[bytes],
    backend: Backend,
    length: int,
    capacity: int,
    pool: BufferPool,
    executor: Executor | None = None,
) -> WriteResult:
    """Write exactly `length` bytes from `chunks` at offset 0, fsync, and return size and SHA-256.

    Raises `IncompleteTransfer` when the stream ends early or carries more than `length`; the volume is
    then partly written and the caller must not report success.
    """
    _check_length(length, capacity)
    loop = asyncio.get_running_loop()
    digest = hashlib.sha256()
    bufs = [pool.take(), pool.take()]
    pending: asyncio.Future[None] | None = None
    received = 0
    try:
        backend.seek(0)
        current = 0
        view = memoryview(bufs[current])
        filled = 0
        async for chunk in chunks:
            if received + len(chunk) > length:
                raise IncompleteTransfer(
                    f"the stream carries more than the announced {length} bytes; nothing was acknowledged"
                )
            received += len(chunk)
            data = memoryview(chunk)
            while data:
                n = min(len(data), pool.size - filled)
                view[filled : filled + n] = data[:n]
                filled += n
                data = data[n:]
                if filled == pool.size:
                    if pending is not None:
                        await pending
                    pending = loop.run_in_executor(executor, _write_block, backend, digest, view)
                    current ^= 1
                    view = memoryview(bufs[current])
                    filled = 0
        if pending is not None:
            await pending
            pending = None
        if received != length:
            raise IncompleteTransfer(
                f"the stream ended after {received} of {length} bytes; the volume holds an incomplete "
                "copy, send it again"
            )
        if filled:
            await loop.run_in_executor(executor, _write_block, backend, digest, view[:filled])
        await loop.run_in_executor(executor, backend.flush)
        return WriteResult(size=received, sha256=digest.hexdigest())
    finally:
        if pending is not None:
            # The worker may still use a buffer; it must finish before the buffer goes back to the pool.
            await asyncio.wait([pending])
        for buf in bufs:
            pool.give(buf)


def read_range(backend: Backend, offset: int, length: int, buf: mmap.mmap) -> Iterator[bytes]:
    """Yield exactly the bytes `[offset, offset + length)` as `bytes`, read in aligned spans through `buf`."""
    for view in read_views(backend, offset, length, buf):
        yield bytes(view)


def read_views(backend: Backend, offset: int, length: int, buf: mmap.mmap) -> Iterator[memoryview]:
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

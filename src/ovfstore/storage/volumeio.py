"""Streaming volume I/O: exactly N bytes in from a chunk stream, exact byte ranges out.

Writes are pipelined: while a worker thread hashes and writes one full aligned buffer, the caller's
event loop keeps filling the other one from the network, so disk and network overlap and the only copy
is network chunk -> aligned buffer. The SHA-256 is computed over exactly the bytes written, in order.
"""

from __future__ import annotations

import asyncio
import hashlib
import mmap
import threading
from collections.abc import AsyncIterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass

from ovfstore.storage.backend import ALIGNMENT, Backend, aligned_buffer
from ovfstore.storage.errors import CapacityExceeded, IncompleteTransfer, InvalidArgument


@dataclass(frozen=True)
class WriteResult:
    size: int
    sha256: str


class BufferPool:
    """Aligned buffers reused across transfers, so steady traffic allocates nothing.

    ASGI does not expose connections, so buffers are reused per transfer from this pool; at most
    `keep` idle buffers are kept, anything beyond is unmapped when returned.
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
    if length < 0:
        raise InvalidArgument(f"a transfer length cannot be negative ({length})")
    if length > capacity:
        raise CapacityExceeded(
            f"{length} bytes do not fit a volume of {capacity} bytes; send at most {capacity} bytes or "
            "use a larger volume"
        )
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
    """Yield exactly the bytes `[offset, offset + length)`, read in aligned spans through `buf`.

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
        yield bytes(view[skip:stop])
        pos += stop

"""File-like access to volume data: regular files and block devices, direct I/O where allowed.

Direct I/O keeps a 128 MiB store write from flooding the page cache and makes `fsync` cheap; it needs
buffers, offsets and lengths aligned to the device's block size, so buffers come from `mmap` (always
page-aligned) and the unaligned tail of a transfer is written with direct I/O switched off for that one
write. Filesystems that refuse `O_DIRECT` (tmpfs) get buffered I/O instead; `flush` fsyncs either way.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import stat
from types import TracebackType
from typing import Protocol

from ovfstore.storage.files import open_regular

# Page size: a multiple of every logical block size in use (512 and 4096), so aligning to it satisfies
# O_DIRECT on any device.
ALIGNMENT = mmap.PAGESIZE
# An x86-64 and aarch64 (4 KiB pages) transparent huge page; smaller buffers get no huge page anyway.
HUGE_PAGE = 2 << 20


def aligned_buffer(size: int) -> mmap.mmap:
    """An anonymous mapping: page-aligned, as `O_DIRECT` requires, and returned to the OS when closed."""
    if size <= 0 or size % ALIGNMENT:
        raise ValueError(f"buffer size {size} must be a positive multiple of {ALIGNMENT}")
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if size >= HUGE_PAGE and hasattr(mmap, "MADV_HUGEPAGE"):
        # Transparent huge pages where the kernel has them: the network copies into the buffer, the
        # hash reads it and O_DIRECT pins it for the device with 512 times fewer pages to walk (docs/AGENT.md,
        # "Performance"). Only a hint; refused, it changes nothing.
        with contextlib.suppress(OSError):
            buf.madvise(mmap.MADV_HUGEPAGE)
    return buf


class VolumeBackend(Protocol):
    """What volume I/O needs of an open volume: a file or device (`Backend`) or an LV reached through its
    segment map (`storage.block.lvio.SegmentBackend`)."""

    direct: bool
    is_block: bool

    def size(self) -> int: ...
    def seek(self, offset: int) -> None: ...
    def write(self, buf: memoryview) -> int: ...
    def readinto(self, buf: memoryview) -> int: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> VolumeBackend: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Backend:
    """One open volume, read or written sequentially from a position (`seek`)."""

    def __init__(self, path: str, writable: bool, direct: bool = True, *, domain_file: bool = False) -> None:
        """Open `path`; a `domain_file` (a volume of a domain) is opened with `files.open_regular`, which
        refuses anything but a regular file of one link at the cost of one `fstat`."""
        self.path = path
        flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
        opener = open_regular if domain_file else os.open
        self.direct = False
        fd = -1
        if direct:
            try:
                fd = opener(path, flags | os.O_DIRECT)
                self.direct = True
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
        if fd < 0:
            fd = opener(path, flags)
        self._fd = fd
        self.is_block = stat.S_ISBLK(os.fstat(fd).st_mode)
        self._pos = 0

    def size(self) -> int:
        if self.is_block:
            return os.lseek(self._fd, 0, os.SEEK_END)
        return os.fstat(self._fd).st_size

    def seek(self, offset: int) -> None:
        self._pos = offset

    def _aligned(self, buf: memoryview) -> bool:
        return self._pos % ALIGNMENT == 0 and len(buf) % ALIGNMENT == 0

    def _set_direct(self, on: bool) -> None:
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        fcntl.fcntl(self._fd, fcntl.F_SETFL, (flags | os.O_DIRECT) if on else (flags & ~os.O_DIRECT))

    def write(self, buf: memoryview) -> int:
        """Write all of `buf` at the position; `buf` must come from `aligned_buffer` for direct I/O."""
        if self.direct and not self._aligned(buf):
            # The tail of a transfer: direct I/O cannot write a partial block, the page cache can, and
            # the fsync in `flush` makes it durable like the rest.
            self._set_direct(False)
            try:
                return self._write_all(buf)
            finally:
                self._set_direct(True)
        try:
            return self._write_all(buf)
        except OSError as e:
            # Some filesystems accept O_DIRECT at open and refuse it at the first write.
            if not (self.direct and e.errno == errno.EINVAL):
                raise
            self._set_direct(False)
            self.direct = False
            return self._write_all(buf)

    def _write_all(self, buf: memoryview) -> int:
        done = 0
        while done < len(buf):
            n = os.pwrite(self._fd, buf[done:], self._pos + done)
            if n == 0:
                raise OSError(errno.ENOSPC, f"no space left writing {self.path}")
            done += n
        self._pos += done
        return done

    def readinto(self, buf: memoryview) -> int:
        """Read up to `len(buf)` bytes at the position; fewer only at the end of the volume.

        With direct I/O the position and `len(buf)` must be aligned; `volumeio` reads aligned spans and
        slices the range out of them.
        """
        done = 0
        while done < len(buf):
            n = os.preadv(self._fd, [buf[done:]], self._pos + done)
            if n == 0:
                break
            done += n
            if self.direct and done % ALIGNMENT:
                break  # a partial block is only ever the end of the file
        self._pos += done
        return done

    def flush(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

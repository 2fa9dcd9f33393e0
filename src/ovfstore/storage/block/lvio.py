"""An LV's bytes: its activated device where device-mapper made one, else its segments on the PVs.

On a host with device-mapper an activated LV is `/dev/<vg>/<lv>`, read and written as any block device
(`storage.backend.Backend`). Where there is no device-mapper (a rescue host, a container, this project's
tests) or the LV is not active, `SegmentBackend` reaches the same bytes through the LV's segment map on
its PVs (docs/FORMATS.md 6.3): byte `x` of the LV is at `pe_start + (first PV extent + x // E - first LV
extent) * E + x % E` of the PV of the segment holding extent `x // E`. It has the Backend's interface and
I/O: direct where the device takes it, aligned buffers, the unaligned tail written through the page
cache, fsync of every PV written on `flush`. Extents are MiB multiples, so an aligned transfer stays
aligned on every PV it crosses.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

from ovfstore.storage.backend import ALIGNMENT, Backend
from ovfstore.storage.errors import InvalidArgument, InvalidMetadata, from_os_error
from ovfstore.storage.lvm.metadata import VolumeGroup
from ovfstore.storage.lvm.ondisk import SECTOR, LvmFormatError, device_size, read_label
from ovfstore.store.quoting import cut, quoted


@dataclass(frozen=True)
class Piece:
    """`length` bytes of an LV from byte `lv_offset`, at byte `pv_offset` of PV `pv` (its name in the VG)."""

    lv_offset: int
    length: int
    pv: str
    pv_offset: int


def lv_size(vg: VolumeGroup, lv_name: str) -> int:
    lv = vg.lvs.get(lv_name)
    if lv is None:
        raise InvalidMetadata(f"VG {quoted(vg.name)} has no LV {quoted(lv_name)}")
    return lv.extent_count * vg.extent_size * SECTOR


def segment_map(vg: VolumeGroup, lv_name: str) -> list[Piece]:
    """The pieces of LV `lv_name` in order, each checked: linear, on a PV the VG lists, inside its extents."""
    lv = vg.lvs.get(lv_name)
    if lv is None:
        raise InvalidMetadata(f"VG {quoted(vg.name)} has no LV {quoted(lv_name)}")
    extent = vg.extent_size * SECTOR
    pieces = []
    for segment in lv.segments:
        if segment.type != "striped" or len(segment.stripes) != 1:
            raise InvalidMetadata(
                f"LV {quoted(lv_name)} has a segment of type {quoted(segment.type)} with {len(segment.stripes)} "
                "stripes; only linear segments can be read and written through the segment map"
            )
        stripe = segment.stripes[0]
        pv = vg.pvs.get(stripe.pv)
        if pv is None:
            raise InvalidMetadata(f"LV {quoted(lv_name)} lies on PV {quoted(stripe.pv)}, which the VG does not list")
        if stripe.first_extent + segment.extent_count > pv.pe_count:
            raise InvalidMetadata(f"LV {quoted(lv_name)}: a segment passes the last extent of PV {quoted(stripe.pv)}")
        pieces.append(
            Piece(
                segment.start_extent * extent,
                segment.extent_count * extent,
                stripe.pv,
                pv.pe_start * SECTOR + stripe.first_extent * extent,
            )
        )
    return pieces


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_rdev, 0, 0) if stat.S_ISBLK(st.st_mode) else (0, st.st_dev, st.st_ino)


class SegmentBackend:
    """An LV opened through its segment map on the PVs (`pv_paths`: PV name -> device or image path).

    Each PV is opened once; its LVM label must carry the UUID the VG metadata gives that PV, so a device
    renamed since the metadata was read is never written by mistake."""

    is_block = True

    def __init__(
        self, vg: VolumeGroup, lv_name: str, pv_paths: Mapping[str, str], writable: bool, direct: bool = True
    ) -> None:
        self.path = f"{vg.name}/{lv_name}"
        self._pieces = segment_map(vg, lv_name)
        self._size = lv_size(vg, lv_name)
        self._fds: dict[str, int] = {}
        self._written: set[str] = set()
        self._pos = 0
        self.direct = direct
        try:
            for piece in self._pieces:
                if piece.pv not in self._fds:
                    self._fds[piece.pv] = self._open_pv(vg, piece.pv, pv_paths, writable)
                fd = self._fds[piece.pv]
                if piece.pv_offset + piece.length > device_size(fd):
                    raise InvalidMetadata(
                        f"LV {quoted(self.path)} passes the end of PV {quoted(piece.pv)} "
                        f"({cut(pv_paths[piece.pv])}); the device or image is truncated"
                    )
        except BaseException:
            self.close()
            raise

    def _open_pv(self, vg: VolumeGroup, name: str, pv_paths: Mapping[str, str], writable: bool) -> int:
        path = pv_paths.get(name)
        if path is None:
            raise InvalidMetadata(
                f"LV {quoted(self.path)} lies on PV {quoted(name)} (UUID {vg.pvs[name].id}), which is not among "
                "the devices given: add it"
            )
        try:
            check = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise from_os_error(e, f"PV {quoted(path)}") from e
        try:
            try:
                label = read_label(check, path)
            except LvmFormatError as e:
                raise InvalidMetadata(f"{e}; the devices changed since the VG was read") from e
            if label.uuid != vg.pvs[name].id:
                raise InvalidMetadata(
                    f"{cut(path)} is PV {label.uuid}, not {vg.pvs[name].id} as the VG says: the devices changed since "
                    "the VG was read; retry"
                )
            flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
            fd = -1
            if self.direct:
                try:
                    fd = os.open(path, flags | os.O_DIRECT)
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise from_os_error(e, f"PV {quoted(path)}") from e
                    self.direct = False
            if fd < 0:
                fd = os.open(path, flags)
            if _identity(os.fstat(fd)) != _identity(os.fstat(check)):
                os.close(fd)
                raise InvalidMetadata(f"{cut(path)} changed while it was opened; retry")
            return fd
        finally:
            os.close(check)

    def size(self) -> int:
        return self._size

    def seek(self, offset: int) -> None:
        self._pos = offset

    def _spans(self, start: int, length: int) -> list[tuple[str, int, int, int]]:
        """(pv, pv offset, length, buffer offset) of each run of `[start, start + length)` on one PV."""
        spans = []
        done = 0
        for piece in self._pieces:
            if done >= length:
                break
            at = start + done
            if piece.lv_offset <= at < piece.lv_offset + piece.length:
                count = min(length - done, piece.lv_offset + piece.length - at)
                spans.append((piece.pv, piece.pv_offset + at - piece.lv_offset, count, done))
                done += count
        return spans

    def _set_direct(self, fd: int, on: bool) -> None:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | os.O_DIRECT) if on else (flags & ~os.O_DIRECT))

    def write(self, buf: memoryview) -> int:
        """Write all of `buf` at the position, across segments; the LV never grows."""
        if self._pos < 0 or self._pos + len(buf) > self._size:
            raise InvalidArgument(
                f"{len(buf)} bytes at {self._pos} do not fit LV {quoted(self.path)} of {self._size} bytes"
            )
        aligned = self._pos % ALIGNMENT == 0 and len(buf) % ALIGNMENT == 0
        for pv, offset, count, at in self._spans(self._pos, len(buf)):
            fd = self._fds[pv]
            self._written.add(pv)
            if self.direct and not aligned:
                self._set_direct(fd, False)
                try:
                    _pwrite_all(fd, buf[at : at + count], offset)
                finally:
                    self._set_direct(fd, True)
            else:
                try:
                    _pwrite_all(fd, buf[at : at + count], offset)
                except OSError as e:
                    # A PV whose pe_start is not aligned to the device's logical block: O_DIRECT refuses it.
                    if not (self.direct and e.errno == errno.EINVAL):
                        raise
                    self._drop_direct()
                    _pwrite_all(fd, buf[at : at + count], offset)
        self._pos += len(buf)
        return len(buf)

    def _drop_direct(self) -> None:
        """Go on through the page cache on every PV (fsync'd on `flush` all the same)."""
        for fd in self._fds.values():
            self._set_direct(fd, False)
        self.direct = False

    def readinto(self, buf: memoryview) -> int:
        """Read up to `len(buf)` bytes at the position; fewer only at the end of the LV."""
        length = max(0, min(len(buf), self._size - self._pos))
        for pv, offset, count, at in self._spans(self._pos, length):
            view = buf[at : at + count]
            done = 0
            while done < count:
                try:
                    n = os.preadv(self._fds[pv], [view[done:]], offset + done)
                except OSError as e:
                    if not (self.direct and e.errno == errno.EINVAL):
                        raise
                    self._drop_direct()
                    continue
                if n == 0:
                    raise OSError(errno.EIO, f"PV {pv} of LV {self.path} ended early")
                done += n
        self._pos += length
        return length

    def flush(self) -> None:
        for pv in sorted(self._written):
            os.fsync(self._fds[pv])

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def __enter__(self) -> SegmentBackend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < len(view):
        n = os.pwrite(fd, view[done:], offset + done)
        if n == 0:
            raise OSError(errno.ENOSPC, "no space left writing a PV")
        done += n


def activated_path(vg_name: str, lv_name: str) -> str | None:
    """`/dev/<vg>/<lv>` when device-mapper has the LV active (a block device there), else None."""
    path = os.path.join("/dev", vg_name, lv_name)
    try:
        return path if stat.S_ISBLK(os.stat(path).st_mode) else None
    except OSError:
        return None


def open_lv(
    vg: VolumeGroup, lv_name: str, pv_paths: Mapping[str, str], writable: bool, direct: bool = True
) -> Backend | SegmentBackend:
    """The LV's bytes: its activated device when there is one, else through its segment map."""
    active = activated_path(vg.name, lv_name)
    if active is not None:
        return Backend(active, writable, direct)
    return SegmentBackend(vg, lv_name, pv_paths, writable, direct)

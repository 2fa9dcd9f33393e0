from __future__ import annotations

import ctypes
import errno
import gc
import hashlib
import io
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ovfstore.storage.backend import ALIGNMENT, Backend, aligned_buffer
from ovfstore.storage.errors import CapacityExceeded, IncompleteTransfer, InvalidArgument
from ovfstore.storage.volumeio import WrittenData, read_views, write_from

BUF = 64 * 1024


def write(
    path: str,
    data: bytes,
    length: int | None = None,
    capacity: int = 1 << 20,
    piece: int = 10_000,
    hash_slice: int = 3 * 4096 + 5,
    offset: int = 0,
    backend_class: type[Backend] | None = None,
) -> WrittenData:
    """`write_from` as the agent runs it (a ring of three buffers, a hash thread and a write thread),
    from a source that hands out at most `piece` bytes per read, as a socket does."""
    source = io.BytesIO(data)

    def readinto(view: memoryview) -> int:
        return source.readinto(view[:piece])

    bufs = [aligned_buffer(BUF) for _ in range(3)]
    with (
        (backend_class or Backend)(path, writable=True) as backend,
        ThreadPoolExecutor(1) as hasher,
        ThreadPoolExecutor(1) as writer,
    ):
        size = len(data) if length is None else length
        return write_from(readinto, backend, size, capacity, bufs, hasher, writer, hash_slice, offset)


def read(path: str, offset: int, length: int) -> bytes:
    with Backend(path, writable=False) as backend:
        return b"".join(bytes(view) for view in read_views(backend, offset, length, aligned_buffer(BUF)))


@pytest.fixture
def volume(tmp_path: Path) -> str:
    path = tmp_path / "vol"
    with open(path, "wb") as f:
        f.truncate(1 << 20)
    return str(path)


@pytest.fixture
def tmpfs_volume() -> Iterator[str]:
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm tmpfs on this system to test the buffered fallback")
    path = f"/dev/shm/ovfstore-test-{os.getpid()}"
    with open(path, "wb") as f:
        f.truncate(1 << 20)
    yield path
    os.unlink(path)


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("loop devices need root; run the tests as root to cover block devices")
    if not os.path.exists("/dev/loop-control") or shutil.which("losetup") is None:
        pytest.skip("no /dev/loop-control or losetup here; block devices are not covered")
    backing = tmp_path / "backing"
    with open(backing, "wb") as f:
        f.truncate(1 << 20)
    try:
        dev = subprocess.run(
            ["losetup", "--find", "--show", str(backing)], check=True, capture_output=True, text=True
        ).stdout.strip()
    except subprocess.CalledProcessError as e:
        pytest.skip(f"losetup could not attach a loop device: {e.stderr.strip()}")
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)


def _accepts_direct(path: str) -> bool:
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_DIRECT))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, BUF, BUF + 1, 3 * BUF + 513, 1 << 20])
def test_write_then_read_back_exactly_with_direct_io(volume: str, size: int) -> None:
    data = os.urandom(size)
    result = write(volume, data)
    assert result == WrittenData(size, hashlib.sha256(data).hexdigest())
    assert read(volume, 0, size) == data
    assert os.path.getsize(volume) == 1 << 20


def test_local_file_is_opened_with_direct_io(volume: str) -> None:
    with Backend(volume, writable=True) as backend:
        assert backend.direct
        assert not backend.is_block


def test_tmpfs_round_trips_whether_or_not_it_takes_direct_io(tmpfs_volume: str) -> None:
    # tmpfs refused O_DIRECT before Linux 6.6 and accepts it since; either way the data must round-trip.
    with Backend(tmpfs_volume, writable=True) as backend:
        assert backend.direct == _accepts_direct(tmpfs_volume)
    data = os.urandom(BUF * 2 + 17)
    assert write(tmpfs_volume, data).sha256 == hashlib.sha256(data).hexdigest()
    assert read(tmpfs_volume, 5, len(data) - 10) == data[5:-5]


def test_block_device(loop_device: str) -> None:
    with Backend(loop_device, writable=True) as backend:
        assert backend.is_block
        assert backend.size() == 1 << 20
    data = os.urandom(300_001)
    assert write(loop_device, data).size == len(data)
    assert read(loop_device, 0, len(data)) == data
    assert read(loop_device, 4097, 9000) == data[4097:13097]
    with pytest.raises(CapacityExceeded):
        write(loop_device, os.urandom(16), length=(1 << 20) + 1, capacity=1 << 20)


@pytest.mark.parametrize(("offset", "length"), [(0, 1), (1, 1), (4095, 2), (100, BUF * 3), (BUF - 1, BUF + 2)])
def test_exact_ranges(volume: str, offset: int, length: int) -> None:
    data = os.urandom(1 << 20)
    write(volume, data)
    assert read(volume, offset, length) == data[offset : offset + length]


def test_a_range_beyond_the_volume_is_refused(volume: str) -> None:
    with pytest.raises(InvalidArgument):
        read(volume, (1 << 20) - 1, 2)


def test_a_short_stream_is_incomplete(volume: str) -> None:
    with pytest.raises(IncompleteTransfer, match="ended after 100 of 200"):
        write(volume, b"x" * 100, length=200)


def test_only_the_announced_length_is_read(volume: str) -> None:
    # What follows belongs to the next request; the agent answers a long body itself (tests/functional).
    data = os.urandom(300)
    assert write(volume, data, length=200) == WrittenData(200, hashlib.sha256(data[:200]).hexdigest())
    assert read(volume, 0, 201) == data[:200] + b"\0"


@pytest.mark.parametrize(
    ("piece", "hash_slice"), [(1, 7), (4095, 4096), (BUF + 3, 1), (BUF * 4, BUF * 2), (999, 1 << 20)]
)
def test_the_digest_covers_the_bytes_in_order_however_they_arrive(volume: str, piece: int, hash_slice: int) -> None:
    data = os.urandom(BUF * 5 + 123) if piece > 1 else os.urandom(BUF + 77)
    result = write(volume, data, piece=piece, hash_slice=hash_slice)
    assert result == WrittenData(len(data), hashlib.sha256(data).hexdigest())
    assert read(volume, 0, len(data)) == data


def test_more_than_the_capacity_is_refused_before_writing(volume: str) -> None:
    with pytest.raises(CapacityExceeded):
        write(volume, b"x" * 10, length=(1 << 20) + 1)
    assert read(volume, 0, 10) == b"\0" * 10


class _SlowExecutor(ThreadPoolExecutor):
    """One thread that starts each task late, so tasks are still queued when the caller fails."""

    def __init__(self) -> None:
        super().__init__(1)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def late() -> Any:
            time.sleep(0.02)
            return fn(*args, **kwargs)

        return super().submit(late)


def test_a_failing_source_leaves_no_worker_on_the_buffers(volume: str) -> None:
    # The agent reuses a connection's buffers for its next request: none may still be hashed or written.
    data = os.urandom(BUF * 2 + 10)
    source = io.BytesIO(data)
    calls = 0

    def readinto(view: memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise ConnectionResetError("the client went away")
        return source.readinto(view[: BUF // 2 + 1])

    bufs = [aligned_buffer(BUF) for _ in range(2)]
    hasher, writer = _SlowExecutor(), _SlowExecutor()
    try:
        with Backend(volume, writable=True) as backend, pytest.raises(ConnectionResetError):
            write_from(readinto, backend, len(data), 1 << 20, bufs, hasher, writer, 1000)
        for buf in bufs:
            buf.close()  # BufferError if a queued task still held a view of it
    finally:
        hasher.shutdown()
        writer.shutdown()


def _vm_flags(address: int) -> list[str]:
    """The `VmFlags` of the mapping of this process that holds `address`."""
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(maxsplit=1)[0]
            if "-" in head and ":" not in head:
                start, end = (int(x, 16) for x in head.split("-"))
                inside = start <= address < end
            elif inside and head == "VmFlags:":
                return line.split()[1:]
    raise AssertionError(f"no mapping with VmFlags holds {address:#x}")


@pytest.mark.parametrize(("size", "huge"), [(8 << 20, True), (2 << 20, True), (BUF, False)])
def test_transfer_buffers_ask_for_huge_pages(size: int, huge: bool) -> None:
    if not os.path.isdir("/sys/kernel/mm/transparent_hugepage") or not os.path.exists("/proc/self/smaps"):
        pytest.skip("this kernel has no transparent huge pages (or no /proc/self/smaps) to ask for")
    buf = aligned_buffer(size)
    try:
        address = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        assert address % ALIGNMENT == 0
        assert ("hg" in _vm_flags(address)) is huge  # hg: madvise(MADV_HUGEPAGE)
    finally:
        buf.close()


def test_slow_workers_hold_the_ring_back(volume: str) -> None:
    # Workers far behind the network: a buffer is refilled only once hashed and written, and the result
    # waits for both, so the digest and the data are still those of the bytes sent.
    data = os.urandom(BUF * 5 + 999)
    source = io.BytesIO(data)
    bufs = [aligned_buffer(BUF) for _ in range(2)]
    hasher, writer = _SlowExecutor(), _SlowExecutor()
    try:
        with Backend(volume, writable=True) as backend:
            result = write_from(source.readinto, backend, len(data), 1 << 20, bufs, hasher, writer, BUF // 3)
    finally:
        hasher.shutdown()
        writer.shutdown()
    assert result == WrittenData(len(data), hashlib.sha256(data).hexdigest())
    assert read(volume, 0, len(data)) == data


class _FailingBackend(Backend):
    """A real volume whose second write fails as a dying device's would."""

    writes = 0

    def write(self, buf: memoryview) -> int:
        self.writes += 1
        if self.writes == 2:
            raise OSError(errno.EIO, "Input/output error (injected)")
        return super().write(buf)


def test_a_failed_write_lets_the_buffers_be_closed_at_once(volume: str) -> None:
    # The error refers to the frames it passed through; none of them may keep it (and with it views of
    # the buffers) in a reference cycle, or the agent could not unmap a connection's buffers when it
    # closes until the garbage collector happened to run.
    data = os.urandom(BUF * 4)
    source = io.BytesIO(data)
    bufs = [aligned_buffer(BUF) for _ in range(2)]
    gc.disable()
    try:
        with (
            _FailingBackend(volume, writable=True) as backend,
            ThreadPoolExecutor(1) as hasher,
            ThreadPoolExecutor(1) as writer,
            pytest.raises(OSError, match="injected"),
        ):
            write_from(source.readinto, backend, len(data), 1 << 20, bufs, hasher, writer, 1000)
        for buf in bufs:
            buf.close()
    finally:
        gc.enable()


class _RecordingBackend(Backend):
    """A real volume that notes where and how much each write wrote, and whether it went direct."""

    writes: list[tuple[int, int, bool]]

    def write(self, buf: memoryview) -> int:
        if not hasattr(self, "writes"):
            self.writes = []
        self.writes.append((self._pos, len(buf), self.direct and self._aligned(buf)))
        return super().write(buf)


def _recorded_writes(path: str, data: bytes, offset: int, capacity: int = 1 << 20) -> list[tuple[int, int, bool]]:
    recorded: list[list[tuple[int, int, bool]]] = []

    class Recording(_RecordingBackend):
        def close(self) -> None:
            recorded.append(getattr(self, "writes", []))
            super().close()

    result = write(path, data, offset=offset, capacity=capacity, backend_class=Recording)
    assert result == WrittenData(len(data), hashlib.sha256(data).hexdigest())
    return recorded[0]


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (512, 1),  # inside one block, neither end aligned
        (512, 3584),  # to the end of the first block
        (4096 + 1536, 4096),  # across two blocks, neither end aligned
        (3584, BUF * 3 + 513),  # through the ring, the head and the tail blocks partly covered
        (BUF, BUF),  # aligned both ends
        (8192, 100),
        ((1 << 20) - 512, 512),  # the last sector of the volume
        ((1 << 20) - BUF - 512, BUF + 512),
    ],
)
def test_a_write_at_an_offset_changes_exactly_its_range(volume: str, offset: int, length: int) -> None:
    before = os.urandom(1 << 20)
    write(volume, before)
    data = os.urandom(length)
    writes = _recorded_writes(volume, data, offset)
    assert Path(volume).read_bytes() == before[:offset] + data + before[offset + length :]
    assert os.path.getsize(volume) == 1 << 20
    # Each write whole aligned blocks, direct: the partly covered ones completed with their own bytes.
    assert all(direct for _, _, direct in writes), writes
    assert writes[0][0] == offset - offset % ALIGNMENT
    assert sum(n for _, n, _ in writes) == -(-(offset + length) // ALIGNMENT) * ALIGNMENT - writes[0][0]


def test_a_volume_ending_inside_a_block_is_not_padded(tmp_path: Path) -> None:
    # A file volume of a capacity that is no multiple of the block: its last, partial block cannot be read
    # and written whole without growing the file, so that part goes through the page cache.
    path = tmp_path / "odd"
    capacity = (1 << 20) + 1536
    before = os.urandom(capacity)
    path.write_bytes(before)
    data = os.urandom(5000)
    offset = capacity - len(data) - 12  # not a multiple of 512: refused
    with pytest.raises(InvalidArgument, match="multiple of 512"):
        write(str(path), data, offset=offset, capacity=capacity)
    offset = capacity - 5120
    data = os.urandom(5120)
    writes = _recorded_writes(str(path), data, offset, capacity)
    assert path.read_bytes() == before[:offset] + data
    assert os.path.getsize(path) == capacity
    assert [direct for _, _, direct in writes] == [True, False]


def test_a_write_past_the_capacity_at_an_offset_is_refused_before_writing(volume: str) -> None:
    before = os.urandom(1 << 20)
    write(volume, before)
    with pytest.raises(CapacityExceeded, match=r"at offset 1047552 do not fit .* send at most 1024 bytes"):
        write(volume, b"x" * 1025, offset=(1 << 20) - 1024)
    with pytest.raises(CapacityExceeded, match="send at most 0 bytes"):
        write(volume, b"x", offset=2 << 20)
    with pytest.raises(InvalidArgument, match="multiple of 512"):
        write(volume, b"x", offset=-512)
    assert Path(volume).read_bytes() == before


def test_a_short_stream_at_an_offset_leaves_the_bytes_before_it(volume: str) -> None:
    before = os.urandom(1 << 20)
    write(volume, before)
    with pytest.raises(IncompleteTransfer, match="ended after 100 of 9000"):
        write(volume, b"y" * 100, length=9000, offset=1024)
    assert Path(volume).read_bytes()[:1024] == before[:1024]


def test_tmpfs_writes_at_an_offset(tmpfs_volume: str) -> None:
    before = os.urandom(1 << 20)
    write(tmpfs_volume, before)
    data = os.urandom(BUF + 700)
    assert write(tmpfs_volume, data, offset=2560).sha256 == hashlib.sha256(data).hexdigest()
    assert Path(tmpfs_volume).read_bytes() == before[:2560] + data + before[2560 + len(data) :]


def test_a_block_device_is_written_at_an_offset(loop_device: str) -> None:
    before = os.urandom(1 << 20)
    write(loop_device, before)
    data = os.urandom(BUF * 2 + 1000)
    writes = _recorded_writes(loop_device, data, 4096 + 512)
    assert read(loop_device, 0, 1 << 20) == before[: 4096 + 512] + data + before[4096 + 512 + len(data) :]
    assert all(direct for _, _, direct in writes), writes

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ovfstore.storage.backend import Backend, aligned_buffer
from ovfstore.storage.errors import CapacityExceeded, IncompleteTransfer, InvalidArgument
from ovfstore.storage.volumeio import BufferPool, WriteResult, read_range, write_stream

BUF = 64 * 1024


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def write(path: str, data: bytes, length: int | None = None, capacity: int = 1 << 20) -> WriteResult:
    pool = BufferPool(BUF, keep=2)
    with Backend(path, writable=True) as backend:
        return asyncio.run(
            write_stream(_chunks(data, 10_000), backend, len(data) if length is None else length, capacity, pool)
        )


def read(path: str, offset: int, length: int) -> bytes:
    with Backend(path, writable=False) as backend:
        return b"".join(read_range(backend, offset, length, aligned_buffer(BUF)))


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
    assert result == WriteResult(size, hashlib.sha256(data).hexdigest())
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


def test_a_long_stream_is_incomplete(volume: str) -> None:
    with pytest.raises(IncompleteTransfer, match="more than"):
        write(volume, b"x" * 201, length=200)


def test_more_than_the_capacity_is_refused_before_writing(volume: str) -> None:
    with pytest.raises(CapacityExceeded):
        write(volume, b"x" * 10, length=(1 << 20) + 1)
    assert read(volume, 0, 10) == b"\0" * 10


def test_buffers_are_reused() -> None:
    pool = BufferPool(BUF, keep=1)
    first = pool.take()
    pool.give(first)
    assert pool.take() is first

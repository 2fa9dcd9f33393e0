"""The write protocol of `storage.transfer` on a real domain in tmp_path, without HTTP: ILLEGAL from
before the first byte, LEGAL only once the data is durable and has the expected digest."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from ovfstore.storage.backend import aligned_buffer
from ovfstore.storage.domain import FileDomain
from ovfstore.storage.errors import (
    CapacityExceeded,
    DigestMismatch,
    IncompleteTransfer,
    InvalidArgument,
    VolumeBusy,
)
from ovfstore.storage.locking import locked
from ovfstore.storage.transfer import Source, WritePipeline, copy_volume, write_volume
from ovfstore.storage.volumeio import WrittenData

BUF = 64 * 1024
CAPACITY = 1 << 20
IMG, VOL, OTHER_IMG, OTHER_VOL = (str(uuid.uuid4()) for _ in range(4))


@pytest.fixture
def domain(tmp_path: Path) -> FileDomain:
    root = tmp_path / "root"
    root.mkdir()
    domain = FileDomain.create((str(root),), str(root), str(uuid.uuid4()), "transfers")
    domain.create_volume(IMG, VOL, CAPACITY)
    domain.create_volume(OTHER_IMG, OTHER_VOL, CAPACITY)
    return domain


@pytest.fixture
def pipeline() -> Iterator[WritePipeline]:
    with ThreadPoolExecutor(1) as hasher, ThreadPoolExecutor(1) as writer:
        yield WritePipeline([aligned_buffer(BUF) for _ in range(3)], hasher, writer)


def source_of(data: bytes, piece: int = 10_000) -> Source:
    """`data` handed out at most `piece` bytes per read, as a socket does."""
    stream = io.BytesIO(data)
    return lambda view: stream.readinto(view[:piece])


def content(domain: FileDomain, img: str, vol: str, length: int) -> bytes:
    with open(domain.volume_path(img, vol), "rb") as f:
        return f.read(length)


def legality(domain: FileDomain, img: str = IMG, vol: str = VOL) -> str:
    return domain.volume_info(img, vol).meta.legality


def test_a_write_is_durable_and_marks_the_volume_legal(domain: FileDomain, pipeline: WritePipeline) -> None:
    data = os.urandom(3 * BUF + 123)  # several buffers round the ring, and an unaligned tail
    digest = hashlib.sha256(data).hexdigest()

    result = write_volume(domain, IMG, VOL, source_of(data), len(data), pipeline, expected_sha256=digest)

    assert result == WrittenData(len(data), digest)
    assert content(domain, IMG, VOL, len(data)) == data
    assert legality(domain) == "LEGAL"


def test_the_volume_is_illegal_while_it_is_written(domain: FileDomain, pipeline: WritePipeline) -> None:
    seen: list[str] = []
    stream = io.BytesIO(b"x" * 5000)

    def source(view: memoryview) -> int:
        seen.append(legality(domain))
        return stream.readinto(view)

    write_volume(domain, IMG, VOL, source, 5000, pipeline)
    assert seen
    assert set(seen) == {"ILLEGAL"}
    assert legality(domain) == "LEGAL"


def test_a_failure_mid_write_leaves_the_volume_illegal(domain: FileDomain, pipeline: WritePipeline) -> None:
    sent = 0

    def source(view: memoryview) -> int:
        nonlocal sent
        if sent >= 2 * BUF:
            raise ConnectionResetError("the client went away (simulated)")
        n = min(len(view), 1000)
        view[:n] = b"y" * n
        sent += n
        return n

    with pytest.raises(ConnectionResetError, match="simulated"):
        write_volume(domain, IMG, VOL, source, 4 * BUF, pipeline)
    assert legality(domain) == "ILLEGAL"
    # The lease was released with the failure: the volume can be written again at once.
    write_volume(domain, IMG, VOL, source_of(b"z" * 100), 100, pipeline)
    assert legality(domain) == "LEGAL"


def test_a_source_that_ends_early_leaves_the_volume_illegal(domain: FileDomain, pipeline: WritePipeline) -> None:
    with pytest.raises(IncompleteTransfer, match="ended after 100 of 200"):
        write_volume(domain, IMG, VOL, source_of(b"a" * 100), 200, pipeline)
    assert legality(domain) == "ILLEGAL"


def test_a_digest_mismatch_leaves_the_volume_illegal(domain: FileDomain, pipeline: WritePipeline) -> None:
    data = b"store" * 1000
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DigestMismatch, match=f"not the expected {wrong}.*left ILLEGAL"):
        write_volume(domain, IMG, VOL, source_of(data), len(data), pipeline, expected_sha256=wrong)
    assert legality(domain) == "ILLEGAL"
    assert content(domain, IMG, VOL, len(data)) == data  # written and fsynced, only not trusted


@pytest.mark.parametrize(
    ("length", "error"),
    [(CAPACITY + 1, CapacityExceeded), (-1, InvalidArgument)],
)
def test_a_length_that_cannot_be_written_is_refused_before_the_volume_is_touched(
    domain: FileDomain, pipeline: WritePipeline, length: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        write_volume(domain, IMG, VOL, source_of(b""), length, pipeline)
    assert legality(domain) == "LEGAL"


def test_only_raw_volumes_are_written(domain: FileDomain, pipeline: WritePipeline) -> None:
    # A COW volume as far as its `.meta` says: the write looks no further.
    meta = domain.volume_info(IMG, VOL).meta
    domain.write_volume_meta(IMG, VOL, replace(meta, format="COW"))
    with pytest.raises(InvalidArgument, match="only written to RAW volumes"):
        write_volume(domain, IMG, VOL, source_of(b"a"), 1, pipeline)
    assert legality(domain) == "LEGAL"


def test_a_volume_held_by_another_writer_is_busy(domain: FileDomain, pipeline: WritePipeline) -> None:
    with locked(domain.lease_path(IMG, VOL), True, "the other writer"), pytest.raises(VolumeBusy):
        write_volume(domain, IMG, VOL, source_of(b"a"), 1, pipeline)
    assert legality(domain) == "LEGAL"


def test_a_copy_is_written_like_an_upload_and_verified(domain: FileDomain, pipeline: WritePipeline) -> None:
    data = os.urandom(2 * BUF + 777)
    digest = write_volume(domain, OTHER_IMG, OTHER_VOL, source_of(data), len(data), pipeline).sha256

    result = copy_volume(domain, OTHER_IMG, OTHER_VOL, IMG, VOL, len(data), digest, pipeline, aligned_buffer(BUF))

    assert result == WrittenData(len(data), digest)
    assert content(domain, IMG, VOL, len(data)) == data
    assert legality(domain) == "LEGAL"


def test_a_copy_from_a_source_that_changed_is_left_illegal(domain: FileDomain, pipeline: WritePipeline) -> None:
    data = b"store" * 1000
    write_volume(domain, OTHER_IMG, OTHER_VOL, source_of(data), len(data), pipeline)
    with pytest.raises(DigestMismatch, match=f"volume {OTHER_VOL} does not hold what was expected"):
        copy_volume(domain, OTHER_IMG, OTHER_VOL, IMG, VOL, len(data), "0" * 64, pipeline, aligned_buffer(BUF))
    assert legality(domain) == "ILLEGAL"


def test_copies_that_cannot_succeed_are_refused_before_the_target_is_touched(
    domain: FileDomain, pipeline: WritePipeline
) -> None:
    buf = aligned_buffer(BUF)
    with pytest.raises(InvalidArgument, match="onto itself"):
        copy_volume(domain, IMG, VOL, IMG, VOL, 10, "0" * 64, pipeline, buf)
    big_img, big_vol = str(uuid.uuid4()), str(uuid.uuid4())
    domain.create_volume(big_img, big_vol, 4 * CAPACITY)
    with pytest.raises(InvalidArgument, match="cannot copy"):
        copy_volume(domain, OTHER_IMG, OTHER_VOL, big_img, big_vol, 2 * CAPACITY, "0" * 64, pipeline, buf)
    assert legality(domain, big_img, big_vol) == "LEGAL"
    # Too large for the target and the source alike: the target's capacity is what is reported.
    with pytest.raises(CapacityExceeded):
        copy_volume(domain, OTHER_IMG, OTHER_VOL, IMG, VOL, 2 * CAPACITY, "0" * 64, pipeline, buf)
    with pytest.raises(IncompleteTransfer):
        write_volume(domain, OTHER_IMG, OTHER_VOL, source_of(b""), 10, pipeline)  # leaves it ILLEGAL
    with pytest.raises(InvalidArgument, match="ILLEGAL; copy a complete one"):
        copy_volume(domain, OTHER_IMG, OTHER_VOL, IMG, VOL, 10, "0" * 64, pipeline, buf)
    assert legality(domain) == "LEGAL"

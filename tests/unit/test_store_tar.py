from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from ovfstore.store.tarread import MAX_MEMBER, StoreReadError, iter_members, read_store
from ovfstore.store.tarstream import BLOCK, EntityRef, StoreBuildError, StoreTar, header, padded

WHEN = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def _store(docs: dict[UUID, bytes], unregistered: dict[UUID, bytes] | None = None, **kw: object) -> StoreTar:
    unregistered = unregistered or {}
    everything = {**docs, **unregistered}
    calls: list[int] = []

    def fetch(ids: Sequence[UUID]) -> Iterable[tuple[UUID, bytes]]:
        calls.append(len(ids))
        return [(i, everything[i]) for i in ids]

    tar = StoreTar(
        domain_id=UUID(int=7),
        generation=int(kw.get("generation", 3)),  # type: ignore[call-overload]
        writer="ovfstore-test",
        created=WHEN,
        entities=[EntityRef(k, len(v)) for k, v in docs.items()],
        unregistered=[EntityRef(k, len(v)) for k, v in unregistered.items()],
        vm_status=kw.get("vm_status", {}),  # type: ignore[arg-type]
        fetch=fetch,
    )
    tar.fetch_calls = calls  # type: ignore[attr-defined]
    return tar


def _docs(n: int, size: int = 700) -> dict[UUID, bytes]:
    return {uuid4(): (b"<ovf>" + bytes([65 + i % 26]) * size + b"</ovf>") for i in range(n)}


@pytest.mark.parametrize("count", [0, 1, 3, 600])
def test_length_is_exact_and_known_before_streaming(count: int) -> None:
    docs = _docs(count)
    tar = _store(docs, vm_status={next(iter(docs), uuid4()): 1})
    announced = tar.length
    data = b"".join(tar.chunks())
    assert len(data) == announced
    # oVirt's formula: no record padding.
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        sizes = [m.size for m in archive.getmembers()]
    assert announced == sum(BLOCK + padded(s) for s in sizes) + 2 * BLOCK


def test_headers_are_what_tarfile_writes() -> None:
    for name, size in (("info.json", 0), (f"{uuid4()}.ovf", 9483), ("manifest.json", 8 * 1024**3 - 1)):
        expected = tarfile.TarInfo(name)
        expected.size, expected.mtime, expected.mode = size, 1764072000, 0o644
        expected.uname = expected.gname = ""
        assert header(name, size, 1764072000) == expected.tobuf(format=tarfile.USTAR_FORMAT, encoding="ascii")


def test_known_member_hashes_go_into_the_manifest_unrecomputed() -> None:
    docs = _docs(2)
    first = next(iter(docs))
    tar = _store(docs)
    tar.entities = [EntityRef(k, len(v), "ab" * 32 if k == first else None) for k, v in docs.items()]
    data = b"".join(tar.chunks())
    with pytest.raises(StoreReadError, match="does not match its manifest"):
        read_store([data], len(data))  # the claimed hash is wrong, and the reader notices


def test_members_order_and_content_as_ovirt_and_tarfile_read_them() -> None:
    docs = _docs(3)
    extra = _docs(1)
    running, down = list(docs)[:2]
    tar = _store(docs, extra, vm_status={running: 1, down: 0})
    data = b"".join(tar.chunks())
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getmembers()
        names = [m.name for m in members]
        assert names == [
            "info.json",
            *[f"{k}.ovf" for k in docs],
            "metadata.json",
            *[f"{k}.ovf" for k in extra],
            "manifest.json",
        ]
        assert all(m.mode == 0o644 and m.uid == 0 and m.gid == 0 and m.isreg() for m in members)
        for key, doc in docs.items():
            extracted = archive.extractfile(f"{key}.ovf")
            assert extracted is not None
            assert extracted.read() == doc
    contents = read_store([data], len(data))
    assert contents.verified
    assert contents.manifest is not None
    assert contents.manifest.generation == 3
    assert list(contents.ovfs) == list(docs)
    assert list(contents.unregistered) == list(extra)
    assert contents.vm_status == {running: 1}, "only VMs that were not down are listed"
    assert contents.info == {
        "Last Updated": "Wed Nov 25 12:00:00 UTC 2026",
        "Storage Domains": [{"uuid": str(UUID(int=7))}],
    }


def test_documents_are_fetched_in_batches_not_all_at_once() -> None:
    tar = _store(_docs(600, size=10))
    for _ in tar.chunks():
        pass
    assert tar.fetch_calls == [256, 256, 88]  # type: ignore[attr-defined]


def test_chunks_are_large_for_few_http_writes() -> None:
    tar = _store(_docs(400, size=8000))
    sizes = [len(c) for c in tar.chunks()]
    assert len(sizes) < 10
    assert all(s >= 1 << 20 for s in sizes[:-1])


def test_a_document_that_changed_size_fails_the_stream() -> None:
    docs = _docs(2)
    tar = _store(docs)
    first = next(iter(docs))
    docs[first] = docs[first] + b" "
    tar._fetch = lambda ids: [(i, docs[i]) for i in ids]  # the cache changed after the sizes were read
    with pytest.raises(StoreBuildError, match="changed size"):
        b"".join(tar.chunks())


def test_stale_bytes_after_the_end_are_ignored() -> None:
    data = b"".join(_store(_docs(2)).chunks())
    old = b"".join(_store(_docs(5)).chunks())
    volume = data + old[len(data) :]
    assert len(read_store([volume], len(data)).ovfs) == 2, "a reader reads Size bytes, never the stale rest"


def test_a_store_cut_short_reads_as_truncated_even_when_zeros_follow() -> None:
    tar = _store(_docs(5))
    data = b"".join(tar.chunks())
    cut_at = BLOCK + padded(len(tar.info))  # the write stopped after info.json; the sparse rest reads as zeros
    sparse = data[:cut_at] + b"\0" * (len(data) - cut_at)
    with pytest.raises(StoreReadError, match="cut short"):
        read_store([sparse], len(data))


def test_record_padding_after_the_end_is_accepted() -> None:
    data = b"".join(_store(_docs(2)).chunks())
    padded_to_record = data + b"\0" * (-len(data) % tarfile.RECORDSIZE)
    assert len(read_store([padded_to_record], len(padded_to_record)).ovfs) == 2
    with pytest.raises(StoreReadError, match="followed by data"):
        read_store([padded_to_record[:-1] + b"x"], len(padded_to_record))


# --- hostile and broken stores ----------------------------------------------------------------------


def _raw_tar(entries: list[tarfile.TarInfo], payloads: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for info in entries:
            data = payloads.get(info.name)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil.ovf", "not a flat file name"),
        ("dir/x.ovf", "not a flat file name"),
        ("..", "not a flat file name"),
    ],
)
def test_member_names_with_paths_are_refused(name: str, message: str) -> None:
    info, data = _file(name, b"x")
    raw = _raw_tar([info], {name: data})
    with pytest.raises(StoreReadError, match=message):
        read_store([raw], len(raw))


@pytest.mark.parametrize(("kind", "word"), [(tarfile.SYMTYPE, "symbolic link"), (tarfile.LNKTYPE, "hard link")])
def test_links_are_refused(kind: bytes, word: str) -> None:
    info = tarfile.TarInfo("a.ovf")
    info.type = kind
    info.linkname = "/etc/passwd"
    raw = _raw_tar([info], {})
    with pytest.raises(StoreReadError, match=word):
        read_store([raw], len(raw))


def test_member_running_past_the_end_of_the_store() -> None:
    data = b"".join(_store(_docs(2)).chunks())
    with pytest.raises(StoreReadError, match="runs past the end of the store"):
        read_store([data], 2048)


def test_truncated_store() -> None:
    data = b"".join(_store(_docs(2)).chunks())
    with pytest.raises(StoreReadError, match="truncated"):
        read_store([data[:1500]], len(data))


def test_gigantic_declared_size() -> None:
    info, _ = _file("huge.ovf", b"")
    raw = bytearray(_raw_tar([info], {"huge.ovf": b""}))
    forged = tarfile.TarInfo("huge.ovf")
    forged.size = 8 * 1024**4  # 8 TiB
    raw[:BLOCK] = forged.tobuf(format=tarfile.GNU_FORMAT)[:BLOCK]
    with pytest.raises(StoreReadError, match=f"no store member is over {MAX_MEMBER}|runs past"):
        read_store([bytes(raw)], 1 << 50)


def test_manifest_mismatch_is_detected() -> None:
    docs = _docs(2)
    data = bytearray(b"".join(_store(docs).chunks()))
    where = data.index(b"<ovf>") + 10
    data[where] ^= 0x01
    with pytest.raises(StoreReadError, match="does not match its manifest"):
        read_store([bytes(data)], len(data))


def test_corrupt_header_checksum() -> None:
    data = bytearray(b"".join(_store(_docs(1)).chunks()))
    data[0] ^= 0x20  # first byte of the first member's name
    with pytest.raises(StoreReadError, match="bad tar header"):
        read_store([bytes(data)], len(data))


def test_duplicate_members() -> None:
    a, da = _file("x.ovf", b"1")
    b, db = _file("x.ovf", b"2")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        archive.addfile(a, io.BytesIO(da))
        archive.addfile(b, io.BytesIO(db))
    raw = out.getvalue()
    with pytest.raises(StoreReadError, match="appears twice"):
        read_store([raw], len(raw))


def test_store_written_by_ovirt_has_no_manifest_and_reads_unverified() -> None:
    vm = uuid4()
    payloads = {"info.json": b'{"Last Updated": "Thu Feb 18 00:23:07 IST 2016"}', f"{vm}.ovf": b"<ovf/>"}
    payloads["metadata.json"] = b'{"VM Status": {"%s": 1}}' % str(vm).encode()
    infos = [_file(n, d)[0] for n, d in payloads.items()]
    raw = _raw_tar(infos, payloads)  # tarfile pads to a whole record; oVirt does not: both read
    contents = read_store([raw], len(raw))
    assert not contents.verified
    assert contents.ovfs == {vm: b"<ovf/>"}
    assert contents.vm_status == {vm: 1}


def test_reading_streams_in_small_chunks() -> None:
    data = b"".join(_store(_docs(5)).chunks())
    pieces = [data[i : i + 100] for i in range(0, len(data), 100)]
    names = [m.name for m in iter_members(pieces, len(data))]
    assert names[0] == "info.json"
    assert names[-1] == "manifest.json"


def test_a_negative_member_size_is_refused() -> None:
    forged = tarfile.TarInfo("a.ovf")
    forged.size = 0
    block = bytearray(forged.tobuf(format=tarfile.GNU_FORMAT)[:BLOCK])
    block[124:136] = b"\xff" * 12  # base-256: -1
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    raw = bytes(block) + b"\0" * 4096
    with pytest.raises(StoreReadError, match="negative size"):
        read_store([raw], len(raw))


def test_an_oversized_member_is_skipped_and_the_rest_recovered() -> None:
    docs = _docs(3)
    big_id = uuid4()
    big = b"<ovf>" + b"&gt;" * (MAX_MEMBER // 4) + b"</ovf>"
    vm = uuid4()
    infos = [_file("info.json", b"{}"), _file(f"{big_id}.ovf", big)]
    infos += [_file(f"{k}.ovf", v) for k, v in docs.items()]
    infos.append(_file("metadata.json", b'{"VM Status": {"%s": 1}}' % str(vm).encode()))
    raw = _raw_tar([i for i, _ in infos], {i.name: d for i, d in infos})
    contents = read_store([raw[i : i + 65536] for i in range(0, len(raw), 65536)], len(raw))
    assert contents.ovfs == docs
    assert list(contents.skipped_ids) == [big_id]
    assert contents.member_errors == {f"{big_id}.ovf": contents.skipped_ids[big_id]}
    assert f"declares {len(big)} bytes; no store member is over {MAX_MEMBER}" in contents.skipped_ids[big_id]
    assert not contents.complete
    assert not contents.verified
    assert contents.vm_status == {vm: 1}


def test_a_skipped_member_still_verifies_against_the_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest vouches for the skipped bytes too: the store is valid, only incomplete; a damaged
    skipped member is still caught."""
    from ovfstore.store import tarread

    docs = _docs(3, size=700)
    big_id = uuid4()
    docs[big_id] = b"<ovf>" + b"x" * 5000 + b"</ovf>"
    data = b"".join(_store(docs).chunks())
    monkeypatch.setattr(tarread, "MAX_MEMBER", 4096)
    contents = read_store([data], len(data))
    assert contents.verified
    assert not contents.complete
    assert set(contents.ovfs) == set(docs) - {big_id}
    assert set(contents.skipped_ids) == {big_id}
    damaged = bytearray(data)
    damaged[data.index(b"x" * 100) + 10] ^= 1
    with pytest.raises(StoreReadError, match=rf"does not match its manifest \(members differ: \['{big_id}.ovf'\]"):
        read_store([bytes(damaged)], len(damaged))


def test_an_oversized_member_in_a_truncated_store_is_refused() -> None:
    big = b"y" * (MAX_MEMBER + 1)
    info, _ = _file(f"{uuid4()}.ovf", big)
    raw = _raw_tar([info], {info.name: big})
    with pytest.raises(StoreReadError, match=r"truncated: member .* no store member is over"):
        read_store([raw[: MAX_MEMBER // 2]], len(raw))
    with pytest.raises(StoreReadError, match="runs past the end of the store"):
        read_store([raw], MAX_MEMBER // 2)


def test_the_writer_never_writes_a_member_the_reader_would_skip() -> None:
    from ovfstore.ovf import MAX_DOCUMENT_BYTES

    assert MAX_MEMBER == MAX_DOCUMENT_BYTES  # one limit for the OVF reader, the store writer and reader
    with pytest.raises(StoreBuildError, match=f"is {MAX_MEMBER + 1} bytes; no store member may be over"):
        StoreTar(
            domain_id=UUID(int=7), generation=1, writer="t", created=WHEN, vm_status={},
            entities=[EntityRef(uuid4(), MAX_MEMBER + 1)], unregistered=[], fetch=lambda ids: [],
        )  # fmt: skip

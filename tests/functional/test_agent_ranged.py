"""Writes of a byte range at an offset through a real agent process: `PUT .../data` with `Content-Range`
and `POST .../copy` with `"offset"` (an appended store segment, docs/FORMATS.md 5). The bytes before the
range are the base of a store: checked byte for byte on the volume's file or on the PV images."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ovfstore.agent import errors
from ovfstore.agent.client import AgentClient, WriteResult
from ovfstore.agent.process import LocalAgent
from tests.fixtures.lvm import MIB, LvmLab
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.test_agent_transfer import Volumes, chunked, download, raw_put
from tests.functional.test_block_agent import _create, _pv_bytes, client_of, lab, start  # noqa: F401

# 512-aligned, not 4096-aligned: the head block of the range holds bytes of the base.
PREFIX = 2 * MIB + 1536


@pytest.fixture
def vols(agent: AgentProcess) -> Iterator[Volumes]:
    with agent.client() as client:
        yield Volumes(agent, client)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _based(vols: Volumes, capacity: int = 4 * MIB) -> tuple[uuid.UUID, uuid.UUID, bytes]:
    """A LEGAL volume holding random bytes over its whole capacity: the base a range is written on."""
    img, vol = vols.new(capacity)
    base = os.urandom(capacity)
    vols.client.upload(vols.sd, img, vol, chunked(base), len(base))
    return img, vol, base


def _answer(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def test_an_append_leaves_the_bytes_before_it_identical(vols: Volumes) -> None:
    img, vol, base = _based(vols)
    prefix = os.urandom(PREFIX)
    vols.client.upload(vols.sd, img, vol, chunked(prefix), len(prefix))
    before = vols.path(img, vol).read_bytes()
    assert before == prefix + base[PREFIX:]

    # A segment over the old end-of-archive (Size - 1024), through the ring of 1 MiB buffers.
    offset = PREFIX - 1024
    segment = os.urandom(MIB + 300_001)
    result = vols.client.upload(vols.sd, img, vol, chunked(segment, 77_777), len(segment), offset=offset)

    assert result == WriteResult(len(segment), _sha(segment))
    after = vols.path(img, vol).read_bytes()
    assert after[:offset] == prefix[:offset]
    assert after[offset : offset + len(segment)] == segment
    assert after[offset + len(segment) :] == before[offset + len(segment) :]
    assert len(after) == 4 * MIB
    assert vols.legality(img, vol) == "LEGAL"
    assert download(vols, img, vol, 0, offset + len(segment)) == prefix[:offset] + segment

    # With the digest known to the caller, and at an aligned offset, ending inside a block.
    more = os.urandom(5000)
    at = 3 * MIB
    assert vols.client.upload(vols.sd, img, vol, [more], len(more), sha256=_sha(more), offset=at).sha256 == _sha(more)
    assert vols.path(img, vol).read_bytes() == after[:at] + more + after[at + len(more) :]


def test_the_answer_says_where_it_wrote_and_a_total_is_taken(vols: Volumes) -> None:
    img, vol, base = _based(vols, MIB)
    data = os.urandom(1000)
    path = f"/domains/{vols.sd}/images/{img}/volumes/{vol}/data"
    headers = {"Content-Length": "1000", "Content-Range": "bytes 512-1511/1512"}
    status, answer = _answer(raw_put(vols.agent, path, headers, data, False))
    assert (status, answer) == (200, {"size": 1000, "sha256": _sha(data), "offset": 512})
    assert vols.path(img, vol).read_bytes() == base[:512] + data + base[1512:]


def test_a_digest_mismatch_leaves_the_volume_illegal_and_the_base_intact(vols: Volumes) -> None:
    img, vol, base = _based(vols)
    segment = os.urandom(MIB // 2)
    with pytest.raises(errors.TransferCorrupted, match=r"at offset 1536 .*left ILLEGAL") as refused:
        vols.client.upload(vols.sd, img, vol, [segment], len(segment), sha256=_sha(b"other"), offset=1536)
    assert refused.value.status == 409
    assert vols.legality(img, vol) == "ILLEGAL"
    after = vols.path(img, vol).read_bytes()
    assert after[:1536] == base[:1536]
    assert after[1536 + len(segment) :] == base[1536 + len(segment) :]


def test_a_range_past_the_capacity_is_refused_before_anything_is_touched(vols: Volumes) -> None:
    img, vol, base = _based(vols, MIB)
    meta = Path(str(vols.path(img, vol)) + ".meta").read_bytes()
    with pytest.raises(errors.CapacityExceeded, match=r"at offset 1047552 .* send at most 1024 bytes at that offset"):
        vols.client.upload(vols.sd, img, vol, [b"x" * 1025], 1025, offset=MIB - 1024)
    with pytest.raises(errors.CapacityExceeded, match="send at most 0 bytes"):
        vols.client.upload(vols.sd, img, vol, [b"x"], 1, offset=2 * MIB)
    assert vols.legality(img, vol) == "LEGAL"
    assert vols.path(img, vol).read_bytes() == base
    assert Path(str(vols.path(img, vol)) + ".meta").read_bytes() == meta
    # The last bytes of the capacity fit.
    assert vols.client.upload(vols.sd, img, vol, [b"y" * 1024], 1024, offset=MIB - 1024).size == 1024
    assert vols.path(img, vol).read_bytes() == base[:-1024] + b"y" * 1024


@pytest.mark.parametrize(
    ("content_range", "length", "says"),
    [
        ("bytes 512-521/521", 10, b"FIRST <= LAST < TOTAL"),  # the total is not past the last byte
        ("bytes 521-512/*", 10, b"FIRST <= LAST < TOTAL"),
        ("bytes 512-521/*", 11, b"holds 10 bytes but Content-Length is 11"),
        ("bytes=512-521", 10, b"is not 'bytes FIRST-LAST/*'"),  # a Range, not a Content-Range
        ("bytes 512-521", 10, b"is not 'bytes FIRST-LAST/*'"),
        ("bytes */1000", 10, b"is not 'bytes FIRST-LAST/*'"),
        ("items 512-521/*", 10, b"is not 'bytes FIRST-LAST/*'"),
        ("bytes 512-521/*, 600-609/*", 10, b"is not 'bytes FIRST-LAST/*'"),
        ("bytes -1-8/*", 10, b"is not 'bytes FIRST-LAST/*'"),
        ("bytes 100-109/*", 10, b"multiple of 512 bytes, not at 100"),
        ("bytes 512-521/*" + " " * 3 + "x" * 20_000, 10, b"... (20018 characters)"),
        ("bytes " + "9" * 30 + "-" + "9" * 30 + "/*", 10, b"is not 'bytes FIRST-LAST/*'"),
    ],
)
def test_a_malformed_content_range_is_refused_with_a_bounded_message(
    vols: Volumes, content_range: str, length: int, says: bytes
) -> None:
    img, vol, base = _based(vols, MIB)
    path = f"/domains/{vols.sd}/images/{img}/volumes/{vol}/data"
    headers = {"Content-Length": str(length), "Content-Range": content_range}
    raw = raw_put(vols.agent, path, headers, b"z" * length, False)
    assert raw.startswith(b"HTTP/1.1 400 "), raw[:200]
    assert b'"invalid_argument"' in raw
    assert says in raw
    assert len(raw) < 1500, "a message quotes at most the start of what was sent"
    assert vols.legality(img, vol) == "LEGAL"
    assert vols.path(img, vol).read_bytes() == base


@pytest.mark.parametrize(("content_range", "status"), [("bytes 1048064-1049087/*", b"413"), ("bytes 1-1024/*", b"400")])
def test_a_refused_range_is_answered_before_100_continue(vols: Volumes, content_range: str, status: bytes) -> None:
    # A client waiting for 100 Continue sends nothing before the refusal: no byte of the body is ever read.
    img, vol, base = _based(vols, MIB)
    path = f"/domains/{vols.sd}/images/{img}/volumes/{vol}/data"
    with socket.create_connection(("127.0.0.1", vols.agent.port)) as sock:
        head = f"PUT {path} HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer {vols.agent.secret}\r\n"
        head += f"Content-Length: 1024\r\nContent-Range: {content_range}\r\nExpect: 100-continue\r\n\r\n"
        sock.sendall(head.encode())
        sock.settimeout(30)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer[:100]
    assert vols.legality(img, vol) == "LEGAL"
    assert vols.path(img, vol).read_bytes() == base


def test_the_client_refuses_an_offset_it_cannot_send(vols: Volumes) -> None:
    img, vol = vols.new()
    with pytest.raises(ValueError, match="multiple of 512"):
        vols.client.upload(vols.sd, img, vol, [b"x"], 1, offset=100)
    with pytest.raises(ValueError, match="at least one byte"):
        vols.client.upload(vols.sd, img, vol, [], 0, offset=512)


def test_a_ranged_copy_writes_only_that_range(vols: Volumes) -> None:
    src_img, src_vol, src = _based(vols)
    dst_img, dst_vol, dst = _based(vols)
    offset, length = PREFIX - 1024, MIB + 12345
    piece = src[offset : offset + length]

    copied = vols.client.copy(vols.sd, dst_img, dst_vol, src_img, src_vol, length, _sha(piece), offset=offset)

    assert copied == WriteResult(length, _sha(piece))
    assert vols.path(dst_img, dst_vol).read_bytes() == dst[:offset] + piece + dst[offset + length :]
    assert vols.legality(dst_img, dst_vol) == "LEGAL"
    assert vols.path(src_img, src_vol).read_bytes() == src


def test_a_ranged_copy_is_checked_and_refused_like_a_whole_one(vols: Volumes) -> None:
    src_img, src_vol, src = _based(vols, MIB)
    dst_img, dst_vol, dst = _based(vols, 2 * MIB)
    c = vols.client
    # More than the source holds from the offset: refused before the target is touched.
    with pytest.raises(errors.InvalidRequest, match="cannot copy 1024 bytes at offset 1048064 from a source"):
        c.copy(vols.sd, dst_img, dst_vol, src_img, src_vol, 1024, _sha(b""), offset=MIB - 512)
    with pytest.raises(errors.InvalidRequest, match="multiple of 512"):
        c._call(
            "POST", f"/domains/{vols.sd}/images/{dst_img}/volumes/{dst_vol}/copy",
            json={"image": str(src_img), "volume": str(src_vol), "length": 10, "sha256": "0" * 64, "offset": 10},
        )  # fmt: skip
    with pytest.raises(errors.InvalidRequest, match="field 'offset' must be a int"):
        c._call(
            "POST", f"/domains/{vols.sd}/images/{dst_img}/volumes/{dst_vol}/copy",
            json={"image": str(src_img), "volume": str(src_vol), "length": 10, "sha256": "0" * 64, "offset": "5"},
        )  # fmt: skip
    assert vols.legality(dst_img, dst_vol) == "LEGAL"
    assert vols.path(dst_img, dst_vol).read_bytes() == dst
    # A digest that is not the range's: the target is left ILLEGAL, the bytes before the range as they were.
    with pytest.raises(errors.TransferCorrupted, match="does not hold what was expected"):
        c.copy(vols.sd, dst_img, dst_vol, src_img, src_vol, 4096, _sha(src[:4096]), offset=1024)
    assert vols.legality(dst_img, dst_vol) == "ILLEGAL"
    assert vols.path(dst_img, dst_vol).read_bytes()[:1024] == dst[:1024]
    # An incomplete volume is never a source, at any offset.
    with pytest.raises(errors.InvalidRequest, match="ILLEGAL; copy a complete one"):
        c.copy(vols.sd, src_img, src_vol, dst_img, dst_vol, 512, _sha(dst[512:1024]), offset=512)


def test_a_stale_term_is_refused_and_touches_nothing(vols: Volumes) -> None:
    img, vol, base = _based(vols, MIB)
    src_img, src_vol, src = _based(vols, MIB)
    leader = vols.client.with_term(5)
    data = os.urandom(3000)
    assert leader.upload(vols.sd, img, vol, [data], len(data), offset=4608).size == len(data)
    now = base[:4608] + data + base[4608 + len(data) :]
    stale = vols.client.with_term(4)
    with pytest.raises(errors.StaleTerm, match="term 5") as refused:
        stale.upload(vols.sd, img, vol, [b"s" * 512], 512, offset=512)
    assert (refused.value.status, refused.value.code) == (409, "stale_term")
    with pytest.raises(errors.StaleTerm):
        stale.copy(vols.sd, img, vol, src_img, src_vol, 512, _sha(src[512:1024]), offset=512)
    assert vols.legality(img, vol) == "LEGAL"
    assert vols.path(img, vol).read_bytes() == now
    leader.copy(vols.sd, img, vol, src_img, src_vol, 512, _sha(src[512:1024]), offset=512)
    assert vols.path(img, vol).read_bytes() == now[:512] + src[512:1024] + now[1024:]


def test_an_agent_without_ranged_writes_is_found_out(agent: AgentProcess) -> None:
    with agent.client() as client:
        assert "ranged_writes" in client.health()["features"]

    # An agent older than ranged writes ignores Content-Range and "offset": it answers as for a write from
    # offset 0, without "offset", which the client refuses.
    def older(request: httpx.Request) -> httpx.Response:
        data = request.read() if request.method == "PUT" else b"store"
        return httpx.Response(200, json={"size": len(data), "sha256": _sha(data)})

    with AgentClient("http://agent", "s", transport=httpx.MockTransport(older)) as client:
        with pytest.raises(errors.TransferCorrupted, match=r"at offset 0 .* at offset 512"):
            client.upload(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), [b"store"], 5, offset=512)
        with pytest.raises(errors.TransferCorrupted, match=r"at offset 0 .* at offset 1024"):
            client.copy(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), 5, _sha(b"store"), 1024)
        assert client.upload(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), [b"store"], 5).sha256 == _sha(b"store")


def test_a_block_domain_takes_ranges_on_real_lvm(lab: LvmLab, start: Callable[[], LocalAgent]) -> None:  # noqa: F811
    with client_of(start()) as client:
        _create(client, lab)
        sd, img, vol, img2, vol2 = uuid.UUID(lab.vg), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        client.create_volume(sd, img, vol, 8 * MIB, disk_type="OVFS", description="OVF_STORE")
        client.create_volume(sd, img2, vol2, 8 * MIB, disk_type="OVFS", description="OVF_STORE")
        base = os.urandom(4 * MIB)
        client.upload(sd, img, vol, chunked(base, MIB), len(base))
        client.upload(sd, img2, vol2, chunked(base, MIB), len(base))

        offset = PREFIX - 1024
        segment = os.urandom(2 * MIB - 777)  # ends inside a block, before the end of the base
        written = client.upload(sd, img, vol, chunked(segment, 300_000), len(segment), offset=offset)
        assert written == WriteResult(len(segment), _sha(segment))
        # Where LVM says the LV lies on the PV images: the base before the range, the range, the base after.
        now = base[:offset] + segment + base[offset + len(segment) :]
        assert len(now) == len(base)
        assert _pv_bytes(lab, str(vol), len(base)) == now
        assert client.volume_info(sd, img, vol).legality == "LEGAL"

        client.copy(sd, img2, vol2, img, vol, len(segment), _sha(segment), offset=offset)
        assert _pv_bytes(lab, str(vol2), len(base)) == now
        assert client.volume_info(sd, img2, vol2).legality == "LEGAL"

        with pytest.raises(errors.TransferCorrupted, match="left ILLEGAL"):
            client.upload(sd, img, vol, [b"q" * 700], 700, sha256=_sha(b"other"), offset=512)
        assert client.volume_info(sd, img, vol).legality == "ILLEGAL"
        assert _pv_bytes(lab, str(vol), 512) == now[:512]
        with pytest.raises(errors.CapacityExceeded, match="send at most 512 bytes at that offset"):
            client.upload(sd, img2, vol2, [b"x" * 513], 513, offset=8 * MIB - 512)
        assert client.volume_info(sd, img2, vol2).legality == "LEGAL"
        assert _pv_bytes(lab, str(vol2), len(base)) == now

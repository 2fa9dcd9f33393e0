from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ovfstore.agent import errors
from ovfstore.agent.client import AgentClient, WriteResult
from tests.functional.agent_fixtures import AgentProcess

MiB = 1 << 20


def u() -> uuid.UUID:
    return uuid.uuid4()


class Volumes:
    """A domain with RAW volumes on a running agent."""

    def __init__(self, agent: AgentProcess, client: AgentClient) -> None:
        self.agent = agent
        self.client = client
        self.sd = u()
        client.create_domain(self.sd, "transfers")

    def new(self, capacity: int = 4 * MiB) -> tuple[uuid.UUID, uuid.UUID]:
        img, vol = u(), u()
        self.client.create_volume(self.sd, img, vol, capacity, disk_type="OVFS", description="OVF_STORE")
        return img, vol

    def path(self, img: uuid.UUID, vol: uuid.UUID) -> Path:
        return self.agent.roots[0] / str(self.sd) / "images" / str(img) / str(vol)

    def url(self, img: uuid.UUID, vol: uuid.UUID) -> str:
        return f"{self.agent.url}/domains/{self.sd}/images/{img}/volumes/{vol}/data"

    def legality(self, img: uuid.UUID, vol: uuid.UUID) -> str:
        return self.client.volume_info(self.sd, img, vol).legality


@pytest.fixture
def vols(agent: AgentProcess) -> Iterator[Volumes]:
    with agent.client() as client:
        yield Volumes(agent, client)


def chunked(data: bytes, size: int = 100_000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def download(vols: Volumes, img: uuid.UUID, vol: uuid.UUID, offset: int = 0, length: int | None = None) -> bytes:
    with vols.client.download(vols.sd, img, vol, offset, length) as stream:
        return b"".join(stream)


def raw_put(
    agent: AgentProcess,
    path: str,
    headers: dict[str, str],
    body: bytes,
    then_close: bool,
    until_close: bool = False,
) -> bytes:
    """Speak HTTP by hand to send what a well-behaved client never would; return all the agent says
    until it closes the connection (or for one answer when the connection stays open)."""
    with socket.create_connection(("127.0.0.1", agent.port)) as sock:
        head = f"PUT {path} HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer {agent.secret}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode() + body)
        if then_close:
            sock.shutdown(socket.SHUT_WR)
        sock.settimeout(30)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if not (then_close or until_close) and _one_answer_complete(answer):
                break
        return answer


def _one_answer_complete(answer: bytes) -> bool:
    head, sep, rest = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(rest) >= int(line.split(b":")[1])
    return False


def test_upload_is_durable_checksummed_and_reads_back_exactly(vols: Volumes) -> None:
    img, vol = vols.new()
    data = os.urandom(3 * MiB + 12345)
    result = vols.client.upload(vols.sd, img, vol, chunked(data), len(data))
    assert result == WriteResult(len(data), hashlib.sha256(data).hexdigest())
    assert vols.path(img, vol).read_bytes()[: len(data)] == data
    assert vols.legality(img, vol) == "LEGAL"
    # The engine reads back a store's `Size` bytes, and any exact range.
    assert download(vols, img, vol, 0, len(data)) == data
    assert download(vols, img, vol, 4095, 10) == data[4095:4105]
    assert download(vols, img, vol, MiB - 1, MiB + 2) == data[MiB - 1 : 2 * MiB + 1]
    whole = download(vols, img, vol)
    assert len(whole) == 4 * MiB
    assert whole[: len(data)] == data


def test_a_long_upload_cycles_through_the_buffers_in_order(vols: Volumes) -> None:
    # 1 MiB agent buffers (agent_fixtures) in a ring of 4: 11 of them go round it almost three times,
    # hashed and written in order by their own threads, and a copy goes the same way.
    img, vol = vols.new(capacity=16 * MiB)
    data = os.urandom(10 * MiB + 7)
    result = vols.client.upload(vols.sd, img, vol, chunked(data, 333_333), len(data))
    assert result == WriteResult(len(data), hashlib.sha256(data).hexdigest())
    assert vols.path(img, vol).read_bytes()[: len(data)] == data
    copy_img, copy_vol = vols.new(capacity=16 * MiB)
    vols.client.copy(vols.sd, copy_img, copy_vol, img, vol, len(data), result.sha256)
    assert vols.path(copy_img, copy_vol).read_bytes()[: len(data)] == data


def test_an_upload_is_checked_against_the_digest_the_caller_knows(vols: Volumes) -> None:
    img, vol = vols.new()
    data = os.urandom(MiB + 7)
    digest = hashlib.sha256(data).hexdigest()
    # The client then only sends; the agent's digest of what reached the disk must be the caller's.
    assert vols.client.upload(vols.sd, img, vol, chunked(data), len(data), sha256=digest.upper()) == WriteResult(
        len(data), digest
    )
    assert vols.legality(img, vol) == "LEGAL"
    # A digest that does not match (the source changed after it was hashed): the agent refuses to
    # mark the volume complete, so the bytes it holds are never taken for the caller's.
    other = hashlib.sha256(data[:-1]).hexdigest()
    with pytest.raises(errors.TransferCorrupted, match=f"not the expected {other}.*left ILLEGAL") as refused:
        vols.client.upload(vols.sd, img, vol, chunked(data), len(data), sha256=other)
    assert refused.value.status == 409
    assert vols.legality(img, vol) == "ILLEGAL"
    for malformed in (digest + "\n", digest[:-1], "z" * 64):
        with pytest.raises(ValueError, match="64 hexadecimal digits"):
            vols.client.upload(vols.sd, img, vol, chunked(data), len(data), sha256=malformed)
    path = f"/domains/{vols.sd}/images/{img}/volumes/{vol}/data"
    answer = raw_put(vols.agent, path, {"Content-Length": "5", "X-Expected-SHA256": "nope"}, b"hello", False)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"64 hexadecimal digits" in answer
    vols.client.upload(vols.sd, img, vol, chunked(data), len(data), sha256=digest)
    assert vols.legality(img, vol) == "LEGAL"


def test_range_answers_are_206_with_exactly_that_length(vols: Volumes) -> None:
    img, vol = vols.new()
    data = os.urandom(10_000)
    vols.client.upload(vols.sd, img, vol, [data], len(data))
    auth = {"Authorization": f"Bearer {vols.agent.secret}"}
    response = httpx.get(vols.url(img, vol), headers={**auth, "Range": "bytes=0-9999"})
    assert response.status_code == 206
    assert response.headers["content-length"] == "10000"
    assert response.headers["content-range"] == f"bytes 0-9999/{4 * MiB}"
    assert response.content == data
    response = httpx.get(vols.url(img, vol), headers={**auth, "Range": "bytes=100-"})
    assert (response.status_code, len(response.content)) == (206, 4 * MiB - 100)
    for bad in ("bytes=5-1", f"bytes=0-{4 * MiB}", "bytes=0-1,5-6", "items=0-1"):
        response = httpx.get(vols.url(img, vol), headers={**auth, "Range": bad})
        assert response.status_code == 400, bad


def test_an_empty_upload_is_valid(vols: Volumes) -> None:
    img, vol = vols.new()
    assert vols.client.upload(vols.sd, img, vol, [], 0) == WriteResult(0, hashlib.sha256().hexdigest())


def test_the_whole_capacity_fits_and_one_byte_more_is_refused(vols: Volumes) -> None:
    img, vol = vols.new(capacity=MiB)
    data = os.urandom(MiB)
    assert vols.client.upload(vols.sd, img, vol, chunked(data), MiB).size == MiB
    with pytest.raises(errors.CapacityExceeded, match="do not fit"):
        vols.client.upload(vols.sd, img, vol, chunked(data + b"x"), MiB + 1)
    assert vols.path(img, vol).read_bytes() == data
    assert vols.legality(img, vol) == "LEGAL"


def test_missing_content_length_is_refused(vols: Volumes) -> None:
    img, vol = vols.new()
    path = f"/domains/{vols.sd}/images/{img}/volumes/{vol}/data"
    answer = raw_put(vols.agent, path, {"Transfer-Encoding": "chunked"}, b"5\r\nhello\r\n0\r\n\r\n", False)
    assert answer.startswith(b"HTTP/1.1 411 ")
    assert b"length_required" in answer
    assert vols.legality(img, vol) == "LEGAL"


def test_a_short_body_is_never_acknowledged(vols: Volumes) -> None:
    img, vol = vols.new()
    path = f"/domains/{vols.sd}/images/{img}/volumes/{vol}/data"
    answer = raw_put(vols.agent, path, {"Content-Length": str(MiB)}, os.urandom(MiB // 2), then_close=True)
    assert b"sha256" not in answer
    assert not answer.startswith(b"HTTP/1.1 2")
    _wait_for(lambda: vols.legality(img, vol) == "ILLEGAL")


def test_bytes_past_content_length_are_never_written_and_are_refused(vols: Volumes) -> None:
    img, vol = vols.new()
    path = f"/domains/{vols.sd}/images/{img}/volumes/{vol}/data"
    data = os.urandom(1000)
    # In HTTP/1.1 bytes past Content-Length are not body but the next request: here a malformed one.
    answer = raw_put(vols.agent, path, {"Content-Length": "1000"}, data + b"\x00junk" * 100, False, until_close=True)
    # The upload ends at Content-Length and is acknowledged for exactly those bytes; what follows is read
    # as the next request, found malformed at its first control character, refused 400, and the
    # connection closed.
    ok = f'{{"size":1000,"sha256":"{hashlib.sha256(data).hexdigest()}"}}'.encode()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert ok in answer
    rest = answer[answer.index(ok) + len(ok) :]
    assert rest.startswith(b"HTTP/1.1 400 ")
    assert b"Invalid HTTP request" in rest
    assert b"Connection: close" in rest
    assert vols.path(img, vol).read_bytes()[:1000] == data
    assert vols.legality(img, vol) == "LEGAL"
    assert vols.path(img, vol).read_bytes()[1000:1100] == b"\0" * 100


def test_a_source_shorter_or_longer_than_announced_is_never_acknowledged(vols: Volumes) -> None:
    img, vol = vols.new()
    good = os.urandom(MiB)
    vols.client.upload(vols.sd, img, vol, chunked(good), MiB)
    with pytest.raises(errors.IncompleteTransfer, match="ended after"):
        vols.client.upload(vols.sd, img, vol, chunked(good[:-1]), MiB)
    _wait_for(lambda: vols.legality(img, vol) == "ILLEGAL")
    # The agent marks the volume before it reads the body, so ILLEGAL alone does not say that it has seen
    # the client go and let go of the lease; only then can the volume be written again.
    _wait_for(lambda: _lease_free(vols.path(img, vol)))
    vols.client.upload(vols.sd, img, vol, chunked(good), MiB)
    assert vols.legality(img, vol) == "LEGAL"
    with pytest.raises(errors.IncompleteTransfer, match="more than"):
        vols.client.upload(vols.sd, img, vol, chunked(good + b"x"), MiB)
    _wait_for(lambda: vols.legality(img, vol) == "ILLEGAL")
    # The agent got all but the held-back last chunk: it never wrote the full announced length.


def test_a_second_writer_is_refused_across_processes(vols: Volumes) -> None:
    img, vol = vols.new()
    lease = os.open(str(vols.path(img, vol)) + ".lease", os.O_RDONLY)
    try:
        fcntl.flock(lease, fcntl.LOCK_EX)  # this test process plays another agent
        with pytest.raises(errors.VolumeBusy, match="retry") as e:
            vols.client.upload(vols.sd, img, vol, [b"x" * 10], 10)
        assert e.value.status == 409
        with pytest.raises(errors.VolumeBusy):
            vols.client.set_description(vols.sd, img, vol, "x")
        with pytest.raises(errors.VolumeBusy):
            download(vols, img, vol, 0, 10)
        with pytest.raises(errors.VolumeBusy):
            vols.client.delete_image(vols.sd, img)
    finally:
        os.close(lease)
    assert vols.client.upload(vols.sd, img, vol, [b"x" * 10], 10).size == 10


def _stalled_upload(
    vols: Volumes, img: uuid.UUID, vol: uuid.UUID, first: bytes, length: int, release: threading.Event
) -> tuple[threading.Thread, list[BaseException]]:
    failures: list[BaseException] = []

    def source() -> Iterator[bytes]:
        yield first
        release.wait(60)
        yield b"\0" * (length - len(first))

    def run() -> None:
        with vols.agent.client() as client:
            try:
                client.upload(vols.sd, img, vol, source(), length)
            except BaseException as e:
                failures.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    _wait_for(lambda: vols.legality(img, vol) == "ILLEGAL")
    return thread, failures


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in 30 s"
        time.sleep(0.02)


def _lease_free(volume: Path) -> bool:
    lease = os.open(str(volume) + ".lease", os.O_RDONLY)
    try:
        fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(lease)  # closing the descriptor releases a lock it took
    return True


def test_a_refused_upload_gets_its_answer_and_the_connection_carries_on(vols: Volumes) -> None:
    # Refused before the body is read: the agent drains it, so a client that sends its whole body before
    # reading gets the real answer (not a reset), and the next request on the connection works.
    img, vol = vols.new(capacity=MiB)
    lease = os.open(str(vols.path(img, vol)) + ".lease", os.O_RDONLY)
    try:
        fcntl.flock(lease, fcntl.LOCK_EX)
        with pytest.raises(errors.VolumeBusy):
            vols.client.upload(vols.sd, img, vol, chunked(os.urandom(MiB)), MiB)
    finally:
        os.close(lease)
    with pytest.raises(errors.CapacityExceeded):
        vols.client.upload(vols.sd, img, vol, chunked(os.urandom(3 * MiB)), 3 * MiB)
    assert vols.client.upload(vols.sd, img, vol, [b"y" * 10], 10).size == 10
    assert vols.legality(img, vol) == "LEGAL"


def test_expect_100_continue_is_honoured(vols: Volumes) -> None:
    img, vol = vols.new()
    path = f"/domains/{vols.sd}/images/{img}/volumes/{vol}/data"
    with socket.create_connection(("127.0.0.1", vols.agent.port)) as sock:
        head = f"PUT {path} HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer {vols.agent.secret}\r\n"
        sock.sendall(head.encode() + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        sock.settimeout(30)
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        answer = b""
        while not _one_answer_complete(answer):
            answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert hashlib.sha256(b"hello").hexdigest().encode() in answer


def test_concurrent_uploads_to_one_volume_exclude_each_other(vols: Volumes) -> None:
    img, vol = vols.new()
    release = threading.Event()
    thread, failures = _stalled_upload(vols, img, vol, b"a" * MiB, 2 * MiB, release)
    try:
        with pytest.raises(errors.VolumeBusy):
            vols.client.upload(vols.sd, img, vol, [b"b" * 10], 10)
    finally:
        release.set()
        thread.join(60)
    assert failures == []
    assert vols.path(img, vol).read_bytes()[: 2 * MiB] == b"a" * MiB + b"\0" * MiB


def test_sigkill_mid_upload_leaves_others_untouched_and_the_volume_marked(
    agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    agent = agent_factory()
    with agent.client() as client:
        vols = Volumes(agent, client)
        other_img, other_vol = vols.new()
        other = os.urandom(3 * MiB)
        other_result = client.upload(vols.sd, other_img, other_vol, chunked(other), len(other))
        img, vol = vols.new()
        before = {p: p.read_bytes() for p in sorted(vols.path(other_img, other_vol).parent.iterdir())}

        release = threading.Event()
        thread, failures = _stalled_upload(vols, img, vol, os.urandom(2 * MiB), 4 * MiB, release)
        agent.kill(signal.SIGKILL)
        release.set()
        thread.join(60)
    assert len(failures) == 1
    assert isinstance(failures[0], errors.AgentUnavailable)

    # Other volumes: byte for byte as before, metadata included.
    assert {p: p.read_bytes() for p in sorted(vols.path(other_img, other_vol).parent.iterdir())} == before
    # The interrupted one says so on disk, for any reader, with or without an agent.
    meta = Path(str(vols.path(img, vol)) + ".meta").read_text()
    assert "LEGALITY=ILLEGAL\n" in meta

    restarted = agent_factory(roots=agent.roots)
    with restarted.client() as client:
        assert client.volume_info(vols.sd, img, vol).legality == "ILLEGAL"
        assert client.volume_info(vols.sd, other_img, other_vol).legality == "LEGAL"
        with client.download(vols.sd, other_img, other_vol, 0, len(other)) as stream:
            assert hashlib.sha256(b"".join(stream)).hexdigest() == other_result.sha256
        # The dead agent's lock died with it: the volume can be written again at once.
        data = os.urandom(MiB)
        assert client.upload(vols.sd, img, vol, [data], MiB).sha256 == hashlib.sha256(data).hexdigest()
        assert client.volume_info(vols.sd, img, vol).legality == "LEGAL"


def test_copy_between_volumes_is_verified_and_durable(agent: AgentProcess) -> None:
    sd, src_img, src_vol, dst_img, dst_vol = u(), u(), u(), u(), u()
    with agent.client() as client:
        client.create_domain(sd, "copies")
        client.create_volume(sd, src_img, src_vol, 4 << 20)
        client.create_volume(sd, dst_img, dst_vol, 4 << 20)
        data = os.urandom(3 * 1024 * 1024 + 777)  # not a multiple of the alignment
        written = client.upload(sd, src_img, src_vol, [data], len(data))

        copied = client.copy(sd, dst_img, dst_vol, src_img, src_vol, len(data), written.sha256)

        assert copied == WriteResult(len(data), hashlib.sha256(data).hexdigest())
        with client.download(sd, dst_img, dst_vol, 0, len(data)) as stream:
            assert b"".join(stream) == data
        assert client.volume_info(sd, dst_img, dst_vol).legality == "LEGAL"


def test_a_copy_that_does_not_match_is_refused_and_left_incomplete(agent: AgentProcess) -> None:
    sd, src_img, src_vol, dst_img, dst_vol = u(), u(), u(), u(), u()
    with agent.client() as client:
        client.create_domain(sd, "copies")
        client.create_volume(sd, src_img, src_vol, 1 << 20)
        client.create_volume(sd, dst_img, dst_vol, 1 << 20)
        data = b"store" * 1000
        client.upload(sd, src_img, src_vol, [data], len(data))
        with pytest.raises(errors.TransferCorrupted, match="does not hold what was expected"):
            client.copy(sd, dst_img, dst_vol, src_img, src_vol, len(data), "0" * 64)
        assert client.volume_info(sd, dst_img, dst_vol).legality == "ILLEGAL"
        with pytest.raises(errors.InvalidRequest, match="onto itself"):
            client.copy(sd, src_img, src_vol, src_img, src_vol, len(data), "0" * 64)
        with pytest.raises(errors.CapacityExceeded):
            client.copy(sd, dst_img, dst_vol, src_img, src_vol, 2 << 20, "0" * 64)
        big_img, big_vol = u(), u()
        client.create_volume(sd, big_img, big_vol, 4 << 20)
        with pytest.raises(errors.InvalidRequest, match="cannot copy"):
            client.copy(sd, big_img, big_vol, src_img, src_vol, 2 << 20, "0" * 64)  # more than the source holds
        assert client.volume_info(sd, big_img, big_vol).legality == "LEGAL", "refused before touching the target"
        # An incomplete volume is never a source.
        with pytest.raises(errors.InvalidRequest, match="ILLEGAL; copy a complete one"):
            client.copy(sd, src_img, src_vol, dst_img, dst_vol, len(data), "0" * 64)

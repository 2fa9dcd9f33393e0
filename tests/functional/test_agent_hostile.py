"""A real agent process over hostile domains and hostile clients: links, devices and FIFOs in a domain,
one bad domain or volume among good ones, huge metadata lines, slow or oversized request heads, too many
connections, bodies announced too large, nested JSON, impossible capacities."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from ovfstore.agent import errors, protocol
from ovfstore.agent.client import AgentClient
from ovfstore.cli.main import cli
from tests.functional.agent_fixtures import AgentProcess

pytestmark = pytest.mark.timeout(60)  # a FIFO opened the wrong way, or a server that waits, would hang

CANARY = b"the canary outside the domain\n" * 20
STORE = '{"DiskAlias":"OVF_STORE","DiskDescription":"OVF_STORE"}'
KINDS = {
    "hard link": "has 2 hard links",
    "symbolic link": "symbolic link",
    "character device": "is a character device",
    "FIFO": "is a FIFO",
}


def u() -> uuid.UUID:
    return uuid.uuid4()


def plant(path: Path, kind: str, canary: Path) -> None:
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "hard link":
        os.link(canary, path)
    elif kind == "symbolic link":
        os.symlink(canary, path)
    elif kind == "character device":
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    else:
        os.mkfifo(path)


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "canary"
    path.write_bytes(CANARY)
    return path


@pytest.fixture
def client(agent: AgentProcess) -> Iterator[AgentClient]:
    with agent.client() as client:
        yield client


def domain_dir(agent: AgentProcess, sd: uuid.UUID) -> Path:
    return agent.roots[0] / str(sd)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_store_volume_that_is_not_a_regular_file_is_never_adopted_nor_overwritten(
    client: AgentClient, agent: AgentProcess, canary: Path, kind: str
) -> None:
    sd, img, vol, disk, disk_vol = u(), u(), u(), u(), u()
    client.create_domain(sd, "d")
    client.create_volume(sd, img, vol, 1 << 20, disk_type="OVFS", description=STORE)
    client.create_volume(sd, disk, disk_vol, 1 << 20)
    plant(domain_dir(agent, sd) / "images" / str(img) / str(vol), kind, canary)
    assert [(v.volume, v.is_ovf_store) for v in client.list_volumes(sd)] == [(disk_vol, False)]
    _, problems = client.scan_volumes(sd)
    assert [(p.image, p.volume, p.transient) for p in problems] == [(str(img), str(vol), False)]
    assert KINDS[kind] in problems[0].message
    with pytest.raises((errors.CorruptMetadata, errors.InvalidRequest), match=KINDS[kind]):
        client.upload(sd, img, vol, [b"tar" * 512], 1536)
    with (
        pytest.raises((errors.CorruptMetadata, errors.InvalidRequest), match=KINDS[kind]),
        client.download(sd, img, vol) as data,
    ):
        b"".join(data)
    assert canary.read_bytes() == CANARY
    client.upload(sd, disk, disk_vol, [b"data"], 4)  # the rest of the domain works on


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_meta_that_is_not_a_regular_file_is_one_problem_of_the_listing(
    client: AgentClient, agent: AgentProcess, canary: Path, kind: str
) -> None:
    sd, img, vol, good = u(), u(), u(), u()
    client.create_domain(sd, "d")
    client.create_volume(sd, img, vol, 1 << 20)
    client.create_volume(sd, img, good, 1 << 20)
    plant(domain_dir(agent, sd) / "images" / str(img) / f"{vol}.meta", kind, canary)
    assert [v.volume for v in client.list_volumes(sd, img)] == [good]
    _, problems = client.scan_volumes(sd, img)
    assert problems[0].error in (protocol.UNSAFE_FILE, protocol.PATH_OUTSIDE_ROOTS)
    with pytest.raises(errors.AgentError, match=KINDS[kind]):
        client.set_description(sd, img, vol, "overwritten")
    assert canary.read_bytes() == CANARY


@pytest.mark.parametrize("kind", list(KINDS))
def test_domain_metadata_that_is_not_a_regular_file_hides_no_other_domain(
    client: AgentClient, agent: AgentProcess, canary: Path, kind: str
) -> None:
    bad, good = u(), u()
    client.create_domain(bad, "bad")
    client.create_domain(good, "good")
    plant(domain_dir(agent, bad) / "dom_md" / "metadata", kind, canary)
    assert [d.id for d in client.list_domains()] == [good]
    _, problems = client.scan_domains()
    assert [(p.id, p.error, p.transient) for p in problems] == [(str(bad), protocol.UNSAFE_FILE, False)]
    assert KINDS[kind] in problems[0].message
    with pytest.raises(errors.CorruptMetadata, match=KINDS[kind]):
        client.attach(bad, u(), master=True)
    client.create_domain(u(), "another")  # creating goes on too
    assert canary.read_bytes() == CANARY


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_legacy_ovf_that_is_not_a_regular_file_drops_no_other(
    client: AgentClient, agent: AgentProcess, canary: Path, kind: str
) -> None:
    sd, bad, good = u(), u(), u()
    client.create_domain(sd, "d")
    vms = domain_dir(agent, sd) / "master" / "vms"
    for vm in (bad, good):
        (vms / str(vm)).mkdir(parents=True)
        (vms / str(vm) / f"{vm}.ovf").write_bytes(b"<ovf/>")
    plant(vms / str(bad) / f"{bad}.ovf", kind, canary)
    assert client.legacy_ovfs(sd) == {good: b"<ovf/>"}
    _, problems = client.scan_legacy_ovfs(sd)
    assert [(p.id, p.transient) for p in problems] == [(str(bad), False)]
    assert KINDS[kind] in problems[0].message


def test_a_bad_checksum_and_a_bad_meta_are_passed_over_with_why(client: AgentClient, agent: AgentProcess) -> None:
    bad, good, img, vol, other = u(), u(), u(), u(), u()
    client.create_domain(bad, "bad")
    client.create_domain(good, "good")
    metadata = domain_dir(agent, bad) / "dom_md" / "metadata"
    metadata.write_bytes(metadata.read_bytes().replace(b"DESCRIPTION=bad", b"DESCRIPTION=evil"))
    domains, problems = client.scan_domains()
    assert [d.id for d in domains] == [good]
    assert [(p.id, p.error) for p in problems] == [(str(bad), protocol.CHECKSUM_MISMATCH)]
    client.create_volume(good, img, vol, 1 << 20)
    client.create_volume(good, img, other, 1 << 20)
    meta = domain_dir(agent, good) / "images" / str(img) / f"{vol}.meta"
    meta.write_bytes(meta.read_bytes().replace(b"PUUID=00000000-0000-0000-0000-000000000000", b"PUUID=../x"))
    assert [v.volume for v in client.list_volumes(good)] == [other]
    _, problems = client.scan_volumes(good)
    assert problems[0].error == protocol.INVALID_METADATA
    assert "PUUID='../x' is not a volume id" in problems[0].message


def test_a_cow_or_empty_store_is_reported_so_a_new_one_is_made(client: AgentClient, agent: AgentProcess) -> None:
    sd, cow, empty = u(), u(), u()
    client.create_domain(sd, "d")
    for img in (cow, empty):
        client.create_volume(sd, img, img, 1 << 20, disk_type="OVFS", description=STORE)
    images = domain_dir(agent, sd) / "images"
    meta = images / str(cow) / f"{cow}.meta"
    meta.write_bytes(meta.read_bytes().replace(b"FORMAT=RAW", b"FORMAT=COW"))
    meta = images / str(empty) / f"{empty}.meta"
    meta.write_bytes(meta.read_bytes().replace(b"CAP=1048576", b"CAP=0"))
    assert client.list_volumes(sd) == []
    _, problems = client.scan_volumes(sd)
    assert sorted((p.image, p.error) for p in problems) == sorted(
        [(str(cow), protocol.UNUSABLE_STORE), (str(empty), protocol.INVALID_METADATA)]
    )


def test_errors_quoting_huge_metadata_stay_short(client: AgentClient, agent: AgentProcess) -> None:
    sd = u()
    client.create_domain(sd, "d")
    metadata = domain_dir(agent, sd) / "dom_md" / "metadata"
    auth = {"Authorization": f"Bearer {agent.secret}"}
    for content in (b"x" * (60 << 10) + b"\n", b"DESCRIPTION=" + b"A" * (4 << 20) + b"\n"):
        metadata.write_bytes(content)
        response = httpx.get(f"{agent.url}/domains/{sd}", headers=auth)
        assert response.status_code == 422
        assert len(response.content) < 2048
        assert len(httpx.get(f"{agent.url}/domains", headers=auth).content) < 2048
        result = CliRunner().invoke(cli, ["inspect", str(domain_dir(agent, sd))])
        assert result.exit_code != 0
        assert len(result.output) < 2048


def test_the_client_refuses_a_listing_with_a_transient_failure() -> None:
    problem = {"path": "/d/images/i/v", "image": str(u()), "volume": str(u()), "error": "storage_unavailable"}
    listing = [dict(problem, message="volume: Input/output error; retry later", transient=True)]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=listing)

    with AgentClient("http://agent", "s", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(errors.StorageUnavailable, match="retry") as e:
            client.list_volumes(u())
        assert e.value.transient
        listing[0]["transient"] = False
        assert client.list_volumes(u()) == []  # damage for good: passed over

    def unavailable(request: httpx.Request) -> httpx.Response:
        body = {"error": "storage_unavailable", "message": "EIO; retry", "transient": True}
        return httpx.Response(503, json=body)

    with AgentClient("http://agent", "s", transport=httpx.MockTransport(unavailable)) as client:
        with pytest.raises(errors.StorageUnavailable) as e:
            client.domain_info(u())
        assert e.value.transient


# --- the agent's own limits --------------------------------------------------------------------------


def read_answer(sock: socket.socket, limit: float = 10.0) -> bytes:
    """Everything until the agent closes the connection (or `limit` seconds)."""
    sock.settimeout(limit)
    data = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def limited(agent_factory: Callable[..., AgentProcess]) -> AgentProcess:
    return agent_factory(extra_args=("--head-timeout", "1", "--max-connections", "3"))


def test_a_slow_head_is_dropped_after_the_deadline(limited: AgentProcess) -> None:
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", limited.port)) as sock:
        head = f"GET /health HTTP/1.1\r\nAuthorization: Bearer {limited.secret}\r\n\r\n".encode()
        answer = b""
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
            if time.monotonic() - start > 3:
                break
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"request_timeout" in answer
    assert time.monotonic() - start < 8


def test_a_head_too_large_is_refused_even_when_it_arrives_whole(limited: AgentProcess) -> None:
    with socket.create_connection(("127.0.0.1", limited.port)) as sock:
        head = b"GET /health HTTP/1.1\r\n" + b"X-Pad: " + b"a" * (70 << 10) + b"\r\n\r\n"
        sock.sendall(head)
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_connections_beyond_the_cap_are_answered_503(limited: AgentProcess) -> None:
    held = [socket.create_connection(("127.0.0.1", limited.port)) for _ in range(3)]
    try:
        time.sleep(0.3)  # the agent accepts them
        with socket.create_connection(("127.0.0.1", limited.port)) as extra:
            answer = read_answer(extra, 5)
        assert answer.startswith(b"HTTP/1.1 503 ")
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert (body["error"], body["transient"]) == (protocol.AGENT_BUSY, True)
        with pytest.raises(errors.AgentUnavailable), limited.client() as client:
            client.health()
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            with limited.client() as client:
                assert client.health()["status"] == "ok"
            break
        except errors.AgentUnavailable:
            assert time.monotonic() < deadline, "the closed connections were never counted off"
            time.sleep(0.1)


def test_413_comes_before_100_continue(client: AgentClient, agent: AgentProcess) -> None:
    sd, img, vol = u(), u(), u()
    client.create_domain(sd, "d")
    client.create_volume(sd, img, vol, 1 << 20)
    with socket.create_connection(("127.0.0.1", agent.port)) as sock:
        sock.sendall(
            f"PUT /domains/{sd}/images/{img}/volumes/{vol}/data HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {agent.secret}\r\nContent-Length: {2 << 20}\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
    assert b"100 Continue" not in answer
    assert b"capacity_exceeded" in answer
    assert client.volume_info(sd, img, vol).legality == "LEGAL"  # nothing was written


def test_json_bodies_have_a_depth_and_a_size_limit(agent: AgentProcess) -> None:
    auth = {"Authorization": f"Bearer {agent.secret}"}
    deep = httpx.post(f"{agent.url}/domains", headers=auth, content=b"[" * 5000 + b"]" * 5000)
    assert (deep.status_code, deep.json()["error"]) == (400, protocol.INVALID_ARGUMENT)
    assert "nests deeper" in deep.json()["message"]
    in_strings = json.dumps({"id": str(u()), "description": "[[[[[[[[[[[[[[[[[[[[[[[[["})
    assert httpx.post(f"{agent.url}/domains", headers=auth, content=in_strings).status_code == 201
    large = httpx.post(f"{agent.url}/domains", headers=auth, content=b" " * (1 << 20))
    assert large.status_code == 413


@pytest.mark.parametrize("capacity", [2**63, 2**200, 2**63 - 512])
def test_impossible_capacities_are_a_clean_400_leaving_no_file(
    client: AgentClient, agent: AgentProcess, capacity: int
) -> None:
    sd, img = u(), u()
    client.create_domain(sd, "d")
    with pytest.raises(errors.InvalidRequest, match=r"capacity|cannot be created"):
        client.create_volume(sd, img, u(), capacity)
    assert not (domain_dir(agent, sd) / "images" / str(img)).exists()


def test_hostile_request_values_give_short_4xx_answers(client: AgentClient, agent: AgentProcess) -> None:
    auth = {"Authorization": f"Bearer {agent.secret}"}
    sd, img, vol = u(), u(), u()
    client.create_domain(sd, "d")
    client.create_volume(sd, img, vol, 1 << 20)
    body = json.dumps({"id": [0] * 30000}, separators=(",", ":")).encode()
    answer = httpx.post(f"{agent.url}/domains", headers=auth, content=body)
    assert (answer.status_code, answer.json()["error"]) == (400, protocol.INVALID_ARGUMENT)
    assert len(answer.content) < 1024
    huge = "9" * 5000
    for header in (f"bytes={huge}-", f"bytes=-{huge}", f"bytes=0-{huge}"):
        answer = httpx.get(
            f"{agent.url}/domains/{sd}/images/{img}/volumes/{vol}/data", headers=auth | {"Range": header}
        )
        assert (answer.status_code, answer.json()["error"]) == (400, protocol.INVALID_ARGUMENT)
        assert len(answer.content) < 1024

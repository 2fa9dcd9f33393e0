from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ovfstore.agent import errors
from ovfstore.agent.client import AgentClient
from tests.fixtures.formats import DOMAIN_METADATA_EXAMPLE
from tests.functional.agent_fixtures import AgentProcess


def u() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def client(agent: AgentProcess) -> Iterator[AgentClient]:
    with agent.client() as client:
        yield client


def test_every_endpoint_needs_the_credential(agent: AgentProcess) -> None:
    sd = u()
    paths = ["/health", "/domains", f"/domains/{sd}", f"/domains/{sd}/volumes", f"/domains/{sd}/images"]
    for path in paths:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "engine-secret"}):
            response = httpx.get(agent.url + path, headers=headers)
            assert response.status_code == 401, path
            assert response.json()["error"] == "unauthenticated"
    response = httpx.put(agent.url + f"/domains/{sd}/images/{u()}/volumes/{u()}/data", content=b"x")
    assert response.status_code == 401
    with agent.client(secret="wrong") as bad, pytest.raises(errors.AuthenticationFailed):
        bad.health()


def test_unknown_paths_and_methods_are_json_errors(agent: AgentProcess) -> None:
    auth = {"Authorization": f"Bearer {agent.secret}"}
    response = httpx.get(agent.url + "/nowhere", headers=auth)
    assert (response.status_code, response.json()["error"]) == (404, "not_found")
    response = httpx.delete(agent.url + "/health", headers=auth)
    assert (response.status_code, response.json()["error"]) == (405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


def test_sigterm_stops_at_once_with_idle_keep_alive_connections(agent: AgentProcess) -> None:
    with agent.client() as client:
        client.health()  # leaves an idle keep-alive connection behind
        start = time.monotonic()
        agent.kill(signal.SIGTERM)
        assert time.monotonic() - start < 5
        assert agent.proc.returncode == 0
        with pytest.raises(errors.AgentUnavailable):
            client.health()


def test_health(client: AgentClient, agent: AgentProcess) -> None:
    assert client.health() == {
        "status": "ok", "roots": [str(agent.roots[0].resolve())], "features": ["ranged_writes"]
    }  # fmt: skip


def test_created_domain_matches_the_format_byte_for_byte(client: AgentClient, agent: AgentProcess) -> None:
    sd = uuid.UUID("275766cb-c7d8-43d6-a663-4e52160de620")
    info = client.create_domain(sd, "storage domain", remote_path="server:/path")
    assert (agent.roots[0] / str(sd) / "dom_md" / "metadata").read_bytes() == DOMAIN_METADATA_EXAMPLE
    assert (info.id, info.pool_id, info.role, info.version, info.checksum) == (
        sd,
        None,
        "Regular",
        5,
        "valid",
    )
    assert client.domain_info(sd) == info
    assert client.list_domains() == [info]
    assert client.domain_at(info.path) == info
    with pytest.raises(errors.Conflict):
        client.create_domain(sd, "again")


def test_domains_in_an_nfs_mount_directory_are_found(client: AgentClient, agent: AgentProcess) -> None:
    mount = agent.roots[0] / "server:_exports_data"
    mount.mkdir()
    sd = u()
    client.create_domain(sd, "nfs", parent=str(mount), storage_type="NFS", remote_path="server:/exports/data")
    info = client.domain_info(sd)
    assert info.path == str((mount / str(sd)).resolve())
    assert info.metadata["REMOTE_PATH"] == "server:/exports/data"
    with pytest.raises(errors.ResourceNotFound):
        client.domain_info(u())


def test_attach_detach_and_forced_detach_of_a_stale_pool(client: AgentClient) -> None:
    sd, pool, stale = u(), u(), u()
    client.create_domain(sd, "d")
    info = client.attach(sd, pool, master=True)
    assert (info.pool_id, info.role, info.checksum) == (pool, "Master", "valid")
    with pytest.raises(errors.Conflict, match="detach it there first"):
        client.attach(sd, u(), master=False)
    with pytest.raises(errors.Conflict, match="force"):
        client.detach(sd, stale)
    info = client.detach(sd, stale, force=True)
    assert (info.pool_id, info.role) == (None, "Regular")
    client.attach(sd, pool, master=False)
    assert client.detach(sd, pool).pool_id is None


def test_a_broken_metadata_checksum_is_refused(client: AgentClient, agent: AgentProcess) -> None:
    sd = u()
    info = client.create_domain(sd, "d")
    path = Path(info.path, "dom_md", "metadata")
    path.write_bytes(path.read_bytes().replace(b"ROLE=Regular", b"ROLE=Master"))
    with pytest.raises(errors.CorruptMetadata, match="checksum") as e:
        client.domain_info(sd)
    assert e.value.status == 422
    with pytest.raises(errors.CorruptMetadata):
        client.attach(sd, u(), master=True)


def test_ids_must_be_uuids(client: AgentClient, agent: AgentProcess) -> None:
    sd = u()
    client.create_domain(sd, "d")
    with pytest.raises(errors.InvalidRequest, match="not a UUID"):
        client.domain_info("not-a-uuid")
    with pytest.raises(errors.InvalidRequest, match="not a UUID"):
        client.create_volume(sd, "../../etc", u(), 1 << 20)
    with pytest.raises(errors.InvalidRequest, match="not a UUID"):
        client.volume_info(sd, u(), "x")
    with pytest.raises(errors.InvalidRequest):
        client.attach(sd, "pool", master=True)
    with pytest.raises(errors.InvalidRequest):
        client.create_domain("..", "d")
    response = httpx.get(f"{agent.url}/domains/%2E%2E%2F%2E%2E", headers={"Authorization": f"Bearer {agent.secret}"})
    assert response.status_code in (400, 404)


def test_paths_must_stay_under_the_roots(client: AgentClient, agent: AgentProcess, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(errors.InvalidRequest, match="outside the agent's storage roots") as e:
        client.create_domain(u(), "d", parent=str(outside))
    assert e.value.status == 403
    with pytest.raises(errors.InvalidRequest, match="outside"):
        client.create_domain(u(), "d", parent=str(agent.roots[0] / ".." / "outside"))
    with pytest.raises(errors.InvalidRequest, match="outside"):
        client.domain_at("/etc")
    # A symlink under a root that leads out of it is followed and refused.
    sd = u()
    target = outside / str(sd) / "dom_md"
    target.mkdir(parents=True)
    (target / "metadata").write_bytes(DOMAIN_METADATA_EXAMPLE)
    os.symlink(outside / str(sd), agent.roots[0] / str(sd))
    with pytest.raises(errors.InvalidRequest, match="outside"):
        client.domain_info(sd)


def test_symlinks_inside_a_domain_never_lead_out_of_it(
    client: AgentClient, agent: AgentProcess, tmp_path: Path
) -> None:
    sd, img, vol = u(), u(), u()
    client.create_domain(sd, "d")
    client.create_volume(sd, img, vol, 1 << 20)
    secret = tmp_path / "secret-file"
    secret.write_bytes(b"not yours" * 100)
    volume = agent.roots[0] / str(sd) / "images" / str(img) / str(vol)
    volume.unlink()
    os.symlink(secret, volume)  # the volume file now leads out of the domain
    with pytest.raises(errors.InvalidRequest, match="outside"), client.download(sd, img, vol, 0, 10) as data:
        b"".join(data)
    with pytest.raises(errors.InvalidRequest, match="outside"):
        client.upload(sd, img, vol, [b"x" * 512], 512)
    assert secret.read_bytes() == b"not yours" * 100
    # An image directory that is a link out of the domain is refused too.
    img2 = u()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, agent.roots[0] / str(sd) / "images" / str(img2))
    with pytest.raises(errors.InvalidRequest, match="outside"):
        client.create_volume(sd, img2, u(), 1 << 20)
    assert list(elsewhere.iterdir()) == []


def test_volumes_images_descriptions_and_ovf_stores(client: AgentClient, agent: AgentProcess) -> None:
    sd, store_img, store_vol, disk_img, disk_vol = u(), u(), u(), u(), u()
    client.create_domain(sd, "d")
    never_written = '{"DiskAlias":"OVF_STORE","DiskDescription":"OVF_STORE"}'
    store = client.create_volume(sd, store_img, store_vol, 128 << 20, disk_type="OVFS", description=never_written)
    assert (store.capacity, store.format, store.type, store.legality) == (128 << 20, "RAW", "SPARSE", "LEGAL")
    assert store.is_ovf_store
    assert store.parent is None
    client.create_volume(sd, disk_img, disk_vol, 1 << 20, type="PREALLOCATED")
    old_store = client.create_volume(sd, u(), u(), 1 << 20, disk_type="2")
    assert old_store.is_ovf_store
    assert set(client.list_images(sd)) == {store_img, disk_img, old_store.image}
    volumes = {v.volume: v for v in client.list_volumes(sd)}
    assert set(volumes) == {store_vol, disk_vol, old_store.volume}
    assert not volumes[disk_vol].is_ovf_store
    assert volumes[disk_vol].actual_size >= 1 << 20
    assert set(volumes[store_vol].meta) >= {
        "CAP",
        "CTIME",
        "DESCRIPTION",
        "DISKTYPE",
        "DOMAIN",
        "FORMAT",
        "GEN",
    }
    assert client.list_volumes(sd, disk_img) == [volumes[disk_vol]]
    meta_file = agent.roots[0] / str(sd) / "images" / str(store_img) / f"{store_vol}.meta"
    assert meta_file.read_text().endswith("VOLTYPE=LEAF\nEOF\n")
    assert len(meta_file.read_bytes()) <= 512

    updated = '{"Updated":true,"Size":10240,"Last Updated":"Thu Feb 18 00:23:07 UTC 2016",' + (
        f'"Storage Domains":[{{"uuid":"{sd}"}}],"Disk Description":"OVF_STORE"}}'
    )
    assert client.set_description(sd, store_img, store_vol, updated).description == updated
    with pytest.raises(errors.DescriptionTooLong, match="210"):
        client.set_description(sd, store_img, store_vol, "x" * 211)
    with pytest.raises(errors.DescriptionTooLong):
        client.create_volume(sd, u(), u(), 1 << 20, description="x" * 211)
    assert client.volume_info(sd, store_img, store_vol).description == updated

    client.delete_image(sd, disk_img)
    assert disk_img not in client.list_images(sd)
    assert not (agent.roots[0] / str(sd) / "images" / str(disk_img)).exists()
    with pytest.raises(errors.ResourceNotFound):
        client.delete_image(sd, disk_img)
    with pytest.raises(errors.ResourceNotFound):
        client.volume_info(sd, disk_img, disk_vol)
    (agent.roots[0] / str(sd) / "images" / f"_remove_me_{u()}").mkdir()
    assert disk_img not in client.list_images(sd)
    with pytest.raises(errors.InvalidRequest):
        client.create_volume(sd, u(), u(), 1000)


def test_qcow2_volumes_through_qemu_img(client: AgentClient, agent: AgentProcess) -> None:
    if shutil.which("qemu-img") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("qemu-img is missing but CI=true: CI must install qemu-utils")
        pytest.skip("qemu-img is not installed (install qemu-utils to run this test)")
    sd, img, base, top = u(), u(), u(), u()
    client.create_domain(sd, "d")
    client.create_volume(sd, img, base, 1 << 30, format="COW")
    leaf = client.create_volume(sd, img, top, 1 << 30, format="COW", parent=base)
    assert (leaf.format, leaf.parent, leaf.voltype) == ("COW", base, "LEAF")
    assert client.volume_info(sd, img, base).voltype == "INTERNAL"
    path = agent.roots[0] / str(sd) / "images" / str(img) / str(top)
    out = subprocess.run(["qemu-img", "info", str(path)], check=True, capture_output=True, text=True).stdout
    assert "file format: qcow2" in out
    with pytest.raises(errors.InvalidRequest, match="RAW"):
        client.upload(sd, img, top, [b"x"], 1)


def test_legacy_ovfs(client: AgentClient, agent: AgentProcess) -> None:
    sd, vm = u(), u()
    info = client.create_domain(sd, "d")
    assert client.legacy_ovfs(sd) == {}
    vm_dir = Path(info.path, "master", "vms", str(vm))
    vm_dir.mkdir(parents=True)
    (vm_dir / f"{vm}.ovf").write_bytes(b"<?xml version='1.0'?><ovf:Envelope/>\n\xc3\xa9")
    assert client.legacy_ovfs(sd) == {vm: b"<?xml version='1.0'?><ovf:Envelope/>\n\xc3\xa9"}


def test_an_agent_serves_several_roots(agent_factory: Callable[..., AgentProcess], tmp_path: Path) -> None:
    agent = agent_factory(roots=(tmp_path / "a", tmp_path / "b"))
    with agent.client() as client:
        one, two = u(), u()
        client.create_domain(one, "a", parent=str(tmp_path / "a"))
        client.create_domain(two, "b", parent=str(tmp_path / "b"))
        assert {d.id for d in client.list_domains()} == {one, two}
        assert client.domain_info(two).path == str((tmp_path / "b" / str(two)).resolve())


def test_an_unreachable_agent_is_unavailable() -> None:
    with AgentClient("http://127.0.0.1:9", "s") as client, pytest.raises(errors.AgentUnavailable):
        client.health()

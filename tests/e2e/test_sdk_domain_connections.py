"""File domains by their storage connection (issue 15 item 2), through the SDK: an NFS, POSIX or Gluster
domain is found where its host has the connection mounted, named as VDSM names its mount points under
the storage root, and every setting the client sends comes back unchanged.

Nothing can be mounted here: each test makes the directory with the mount point's name under the agent's
storage root, which is exactly what a host with the export mounted looks like to ovfstore.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest

from tests.e2e.conftest import ADMIN_PASSWORD, RunningEngine


def _nfs(name: str, host: str, address: str, path: str) -> types.StorageDomain:
    return types.StorageDomain(
        name=name, type=types.StorageDomainType.DATA, host=types.Host(name=host),
        backup=True, wipe_after_delete=True, discard_after_delete=False,
        warning_low_space_indicator=15, critical_space_action_blocker=3,
        storage=types.HostStorage(
            type=types.StorageType.NFS, address=address, path=path, nfs_version=types.NfsVersion.V4_1,
            mount_options="noatime", nfs_timeo=600, nfs_retrans=6,
        ),
    )  # fmt: skip


def _check_settings(sd: types.StorageDomain, path: str) -> None:
    assert (sd.backup, sd.wipe_after_delete, sd.discard_after_delete) == (True, True, False)
    assert (sd.warning_low_space_indicator, sd.critical_space_action_blocker) == (15, 3)
    storage = sd.storage
    assert (storage.type, storage.address, storage.path) == (types.StorageType.NFS, "10.0.0.1", path)
    assert (storage.nfs_version, storage.mount_options) == (types.NfsVersion.V4_1, "noatime")
    assert (storage.nfs_timeo, storage.nfs_retrans) == (600, 6)


def test_nfs_domain_by_connection_created_and_imported(
    engines: Callable[..., RunningEngine], db_url: str, tmp_path: Path
) -> None:
    primary = engines(f"sqlite:///{tmp_path / 'primary.db'}", "host1")
    # The export 10.0.0.1:/exports/my_data mounted as VDSM mounts it: '_' doubled, then '/' made '_'.
    mount = primary.storage / "10.0.0.1:_exports_my__data"
    mount.mkdir(parents=True)
    conn = primary.connect()
    try:
        domains = conn.system_service().storage_domains_service()
        with pytest.raises(sdk.Error, match=r"10\.0\.0\.2:_exports_my__data"):  # not mounted: says where to mount it
            domains.add(_nfs("elsewhere", "host1", "10.0.0.2", "/exports/my_data"))
        created = domains.add(_nfs("prod_nfs", "host1", "10.0.0.1", "/exports/my_data/"))
        _check_settings(created, "/exports/my_data/")
        assert (mount / created.id / "dom_md" / "metadata").is_file()
        shown = domains.storage_domain_service(created.id)
        shown.update(types.StorageDomain(backup=False, warning_low_space_indicator=20))
        got = shown.get()
        assert (got.backup, got.warning_low_space_indicator, got.critical_space_action_blocker) == (False, 20, 3)
        with pytest.raises(sdk.Error, match="percentage"):
            shown.update(types.StorageDomain(warning_low_space_indicator=101))
    finally:
        conn.close()
    primary.shutdown()

    # Another engine whose host sees the same storage finds the domain by the same connection and keeps its id.
    secondary = engines(db_url, "host2")
    conn = secondary.connect()
    try:
        domains = conn.system_service().storage_domains_service()
        imported = domains.add(_nfs("dr_nfs", "host2", "10.0.0.1", "/exports/my_data"))
        assert imported.id == created.id
        _check_settings(imported, "/exports/my_data")
        again = domains.storage_domain_service(imported.id).get()
        _check_settings(again, "/exports/my_data")
        assert again.name == "dr_nfs"
    finally:
        conn.close()


def test_gluster_and_posix_domains_by_connection(running: RunningEngine) -> None:
    (running.storage / "glusterSD" / "gluster1:data__vol").mkdir(parents=True)
    (running.storage / "nas:_srv_vm").mkdir(parents=True)
    conn = running.connect()
    try:
        domains = conn.system_service().storage_domains_service()
        gluster = domains.add(
            types.StorageDomain(
                name="gl", type=types.StorageDomainType.DATA, host=types.Host(name=running.host.name),
                storage=types.HostStorage(type=types.StorageType.GLUSTERFS, address="gluster1", path="data_vol",
                                          vfs_type="glusterfs"),
            )
        )  # fmt: skip
        assert (running.storage / "glusterSD" / "gluster1:data__vol" / gluster.id / "dom_md").is_dir()
        assert (gluster.storage.vfs_type, gluster.storage.path) == ("glusterfs", "data_vol")
        posix = domains.add(
            types.StorageDomain(
                name="px", type=types.StorageDomainType.DATA, host=types.Host(name=running.host.name),
                storage=types.HostStorage(type=types.StorageType.POSIXFS, address="nas", path="/srv/vm",
                                          vfs_type="cifs", mount_options="vers=3.0"),
            )
        )  # fmt: skip
        assert (running.storage / "nas:_srv_vm" / posix.id / "dom_md").is_dir()
        got = domains.storage_domain_service(posix.id).get()
        assert (got.storage.vfs_type, got.storage.mount_options, got.storage.nfs_version) == ("cifs", "vers=3.0", None)
        # oVirt's defaults for what was not sent.
        assert (got.backup, got.wipe_after_delete, got.warning_low_space_indicator) == (False, False, 10)
        assert got.critical_space_action_blocker == 5
    finally:
        conn.close()


def test_posix_domain_by_a_remote_spec_in_its_path(running: RunningEngine) -> None:
    """oVirt gives a POSIX connection as one spec in the path, with no address (`nas:/srv/px`): it is
    found at VDSM's mount point of that spec."""
    (running.storage / "nas:_srv_px").mkdir(parents=True)
    conn = running.connect()
    try:
        posix = conn.system_service().storage_domains_service().add(
            types.StorageDomain(
                name="px", type=types.StorageDomainType.DATA, host=types.Host(name=running.host.name),
                storage=types.HostStorage(type=types.StorageType.POSIXFS, path="nas:/srv/px", vfs_type="nfs"),
            )
        )  # fmt: skip
        assert (running.storage / "nas:_srv_px" / posix.id / "dom_md").is_dir()
        assert (posix.storage.path, posix.storage.address) == ("nas:/srv/px", None)
    finally:
        conn.close()


def _post(running: RunningEngine, path: str, body: str, method: str = "POST") -> tuple[int, str]:
    token = base64.b64encode(f"admin@internal:{ADMIN_PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"{running.url}{path}", data=body.encode(), method=method,
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/xml"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize(
    ("setting", "fault"),
    [
        ("<warning_low_space_indicator>101</warning_low_space_indicator>", "0 to 100"),
        ("<critical_space_action_blocker>3000000000</critical_space_action_blocker>", "out of range"),
        ("<storage_x><nfs_timeo>70000</nfs_timeo></storage_x>", "out of range"),
        ("<storage_x><nfs_retrans>-1</nfs_retrans></storage_x>", "out of range"),
        ("<storage_x><nfs_version>v9</nfs_version></storage_x>", "not one of oVirt's"),
        ("<storage_x><vfs_type>" + "x" * 300 + "</vfs_type></storage_x>", "limit is 255"),
        ("<storage_x><nfs_timeo>" + "9x" * 50000 + "</nfs_timeo></storage_x>", "100000 characters"),
    ],
)
def test_domain_settings_refused_before_storage_is_touched(running: RunningEngine, setting: str, fault: str) -> None:
    """A bad setting is a short 400 naming it, on both databases, and leaves nothing on storage (the
    domain is neither created nor taken over there), for a POST and a PUT alike."""
    mount = running.storage / "10.0.0.1:_exports_bad"
    mount.mkdir(parents=True)
    storage = "<type>nfs</type><address>10.0.0.1</address><path>/exports/bad</path>"
    inner = setting.replace("<storage_x>", "").replace("</storage_x>", "")
    settings, storage = ("", storage + inner) if "<storage_x>" in setting else (setting, storage)
    body = (
        f"<storage_domain><name>bad</name><type>data</type><host><name>{running.host.name}</name></host>"
        f"{settings}<storage>{storage}</storage></storage_domain>"
    )
    status, text = _post(running, "/storagedomains", body)
    assert status == 400, text
    assert fault in text
    assert len(text) < 4000
    assert list(mount.iterdir()) == []  # nothing created
    status, text = _post(running, "/storagedomains", body.replace(settings or inner, ""))
    assert status == 201, text
    sd_id = text.split('id="', 2)[1].split('"')[0]
    status, text = _post(running, f"/storagedomains/{sd_id}", body.replace("<name>bad</name>", ""), "PUT")
    assert status == 400, text
    assert fault in text
    assert len(text) < 4000

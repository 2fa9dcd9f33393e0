"""The oVirt domain builder writes what docs/FORMATS.md says oVirt writes, and `storage/` reads it back."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from ovfstore.storage.domain import FileDomain
from ovfstore.storage.metadata import ChecksumState
from ovfstore.store import description
from tests.fixtures.ovirt_domain import (
    DEFAULT_SD_ID,
    OVIRT_33_VM,
    V2V_VM,
    OvirtStore,
    build_ovirt_domain,
    domain_checksum,
    java_date,
    ovirt_tar,
    sample_ovfs,
)

POOL = "5c80c932-20ef-4c55-9e06-383c6152a0dc"


def test_checksum_matches_the_real_example_of_formats_md() -> None:
    values = {
        "ALIGNMENT": "1048576", "BLOCK_SIZE": "512", "CLASS": "Data", "DESCRIPTION": "storage domain",
        "IOOPTIMEOUTSEC": "10", "LEASERETRIES": "3", "LEASETIMESEC": "60", "LOCKPOLICY": "",
        "LOCKRENEWALINTERVALSEC": "5", "POOL_UUID": "", "REMOTE_PATH": "server:/path", "ROLE": "Regular",
        "SDUUID": "275766cb-c7d8-43d6-a663-4e52160de620", "TYPE": "LOCALFS", "VERSION": "5",
    }  # fmt: skip
    assert domain_checksum(values) == "9336f77705ff9e3d5faf65c4d0dc818a29de458d"


def test_java_date_in_israel() -> None:
    winter = datetime(2016, 2, 17, 22, 23, 7, tzinfo=UTC)
    summer = datetime(2023, 7, 1, 9, 0, 0, tzinfo=UTC)
    assert java_date(winter, "IST") == "Thu Feb 18 00:23:07 IST 2016"
    assert java_date(summer, "IDT") == "Sat Jul 01 12:00:00 IDT 2023"


def test_tar_has_ovirt_length_and_layout() -> None:
    members = [("info.json", b"{}"), ("a.ovf", b"x" * 513), ("metadata.json", b"{}")]
    tar = ovirt_tar(members)
    assert len(tar) == (512 + 512) + (512 + 1024) + (512 + 512) + 1024
    assert tar[-1024:] == b"\0" * 1024
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        infos = archive.getmembers()
    assert [i.name for i in infos] == ["info.json", "a.ovf", "metadata.json"]
    assert {(i.mode, i.uid, i.gid, i.type) for i in infos} == {(0o644, 0, 0, tarfile.REGTYPE)}


def test_domain_reads_through_storage_as_an_agent_would(tmp_path: Path) -> None:
    written = OvirtStore(last_updated="Sun Jul 02 10:00:00 IDT 2023")
    old = OvirtStore(disk_type="2")
    writing, never = OvirtStore(state="writing"), OvirtStore(state="never")
    path = build_ovirt_domain(tmp_path, pool_id=POOL, stores=[written, old, writing, never])
    domain = FileDomain(str(path), (str(tmp_path),))
    meta = domain.metadata()
    assert meta.checksum is ChecksumState.VALID
    assert (meta.sd_id, meta.pool_id, meta.role, meta.version) == (DEFAULT_SD_ID, POOL, "Master", 5)

    volumes = {v.image: v for v in domain.all_volumes()}
    store = volumes[written.disk_id]
    assert (store.meta.disk_type, store.meta.format, store.meta.capacity) == ("OVFS", "RAW", 128 << 20)
    assert volumes[old.disk_id].meta.disk_type == "2"
    text = json.loads(store.meta.description)
    assert list(text) == ["Updated", "Size", "Last Updated", "Storage Domains", "Disk Description"]
    parsed = description.parse(store.meta.description)
    assert parsed.updated is True
    assert parsed.last_updated == datetime(2023, 7, 2, 7, 0, 0, tzinfo=UTC)
    assert description.parse(volumes[writing.disk_id].meta.description).updated is False
    assert json.loads(volumes[never.disk_id].meta.description) == {
        "DiskAlias": "OVF_STORE",
        "DiskDescription": "OVF_STORE",
    }

    with open(domain.volume_path(written.disk_id, written.volume_id), "rb") as f:
        tar = f.read(parsed.size or 0)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        names = archive.getnames()
        status = json.loads(archive.extractfile("metadata.json").read())  # type: ignore[union-attr]
    assert names == ["info.json", f"{OVIRT_33_VM}.ovf", f"{V2V_VM}.ovf", "metadata.json"]
    assert status == {"VM Status": {OVIRT_33_VM: 1}}

    # The image disks of both samples are present, with the volumes their OVFs list.
    assert volumes["8c634412-1e8b-4ef3-bc40-b67a456e9d2f"].volume == "f934b12c-1e22-4ad8-bbce-ec0b2a5defa4"
    v2v_disk = volumes["752b9199-8083-4e60-9be2-b2f13f54790f"]
    assert (v2v_disk.volume, v2v_disk.meta.capacity) == ("e562465d-dc03-427f-8cc9-20fc1055424f", 214748364800)
    assert UUID(v2v_disk.meta.domain) == UUID(DEFAULT_SD_ID)


def test_legacy_layout_and_no_disks(tmp_path: Path) -> None:
    ovfs = sample_ovfs()
    path = build_ovirt_domain(tmp_path, stores=[], legacy_ovfs=ovfs, disks=[])
    domain = FileDomain(str(path), (str(tmp_path),))
    assert domain.metadata().pool_id == ""
    assert domain.legacy_ovfs() == ovfs
    assert domain.all_volumes() == []

"""Every OVF dialect a real writer produces, read from samples taken verbatim from public repositories
(tests/fixtures/ovf/SOURCES.md says where each comes from). Each sample: name, memory, CPU, every disk
with its disk and volume ids, NICs and MACs, snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import pytest

from ovfstore.model import DiskStorageType, LunConnection, SnapshotType, Vm
from ovfstore.ovf import read_ovf

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ovf"

# virt-v2v's test suite keeps its expected outputs with the run's variable parts replaced by placeholders
# (its test scripts' `sed`); a test puts fixed values back in. `'VM'`, `'IMAGE'`, `'VOL'` are the literal
# ids `-o vdsm` was given (-oo vdsm-vm-uuid=VM ...).
VM_ID, DISK_ID, VOL_ID = (UUID(f"0f0f0f0f-0000-4000-8000-00000000000{i}") for i in (1, 2, 3))
PLACEHOLDERS = {
    "#VM_ID#": str(VM_ID), "#DISK_ID#": str(DISK_ID), "#VOL_ID#": str(VOL_ID),
    "#UUID#": "0f0f0f0f-0000-4000-8000-000000000004", "#DATE#": "2024/05/06 07:08:09", "#SIZE#": "1073741824",
    "'VM'": f"'{VM_ID}'", "'IMAGE'": f"'{DISK_ID}'", "'VOL'": f"'{VOL_ID}'", ">VOL<": f">{VOL_ID}<",
}  # fmt: skip


def sample(name: str) -> bytes:
    document = (FIXTURES / name).read_text()
    if name.startswith("virt-v2v-test-"):
        for placeholder, value in PLACEHOLDERS.items():
            document = document.replace(placeholder, value)
    return document.encode()


@dataclass
class Expected:
    name: str
    memory_mb: int
    cpu: tuple[int, int, int]  # sockets, cores per socket, threads per core
    disks: list[tuple[str, list[str]]]  # disk id, volume ids base to leaf ("lun:<id>" for a direct LUN)
    nics: list[tuple[str, str | None]]
    snapshots: list[tuple[str, SnapshotType, bool]] = field(default_factory=list)  # id, type, with memory
    version: str = ""


SAMPLES = {
    "ovirt-engine-3.3-vm.ovf": Expected(
        "exporttedVM", 1024, (1, 1, 1),
        [("8c634412-1e8b-4ef3-bc40-b67a456e9d2f", ["f934b12c-1e22-4ad8-bbce-ec0b2a5defa4"]),
         ("eb331cad-8842-48d9-9c56-40b893dc8b1e", ["lun:36001405bb1b5071cfb44a4e9576aef7c"])],
        [],
        [("b60fcbad-d65a-4248-ae32-7f9411276df0", SnapshotType.ACTIVE, False),
         ("22eab740-c6ec-4edb-b417-c4ad9efe628a", SnapshotType.REGULAR, True)],
        "3.3.0.0",
    ),
    "virt-v2v-vm.ovf": Expected(
        "sevenofnine", 16384, (1, 8, 1),
        [("752b9199-8083-4e60-9be2-b2f13f54790f", ["e562465d-dc03-427f-8cc9-20fc1055424f"])],
        [("eth0", None)], [], "0.9",
    ),
    "hosted-engine-ha-ovf_test.xml": Expected(
        "HostedEngine", 4096, (1, 1, 1),
        [("1b52d184-a370-48a7-8335-a4755b01ec0a", ["05f1031c-6c9a-48c3-9a62-930984e52e11"])],
        [("nic1", "00:16:3e:43:ed:b5"), ("nic1", "00:16:3e:43:ed:b6")],
        [("47093b30-ef1b-4b7f-be3e-d2421fe7c6ef", SnapshotType.ACTIVE, False),
         ("04d0a7b2-17b9-4b19-a749-6715e353d9c6", SnapshotType.NEXT_RUN, False)],
        "3.6.0.0",
    ),
    "hosted-engine-ha-ovf_test_max_vcpu.xml": Expected(
        "HostedEngine", 4096, (1, 1, 1),
        [("1b52d184-a370-48a7-8335-a4755b01ec0a", ["05f1031c-6c9a-48c3-9a62-930984e52e11"])],
        [("nic1", "00:16:3e:43:ed:b5"), ("nic1", "00:16:3e:43:ed:b6")],
        [("47093b30-ef1b-4b7f-be3e-d2421fe7c6ef", SnapshotType.ACTIVE, False),
         ("04d0a7b2-17b9-4b19-a749-6715e353d9c6", SnapshotType.NEXT_RUN, False)],
        "3.6.0.0",
    ),
    "hosted-engine-ha-ovf_test_v4.2.xml": Expected(
        "HostedEngine", 16384, (12, 1, 1),
        [("69a2b8c2-8d1c-4014-8f75-a85c16bc5b71", ["3ab9fff0-9aa1-4c2e-ad67-5e25d05cb86e"])],
        [("vnet0", "00:16:3e:6a:7a:f9")],
        [("a1638d3b-9eb4-47c6-8f4c-bb5eff43b54c", SnapshotType.ACTIVE, False)],
        "4.1.0.0",
    ),
    "hosted-engine-ha-ovf_test_v4.2_unsafe.xml": Expected(
        "HostedEngine", 4096, (1, 4, 1),
        [("add49103-89de-4a7e-b22f-9768a324b8f9", ["81487a81-d27d-41b8-b3d1-139d38437f42"])],
        [("vnet0", "00:16:3e:62:28:65")],
        [("4e10e583-9880-40c4-9655-34b0586f2cca", SnapshotType.ACTIVE, False)],
        "4.1.0.0",
    ),
    # virt-v2v -o ovirt (formerly -o rhv): an export storage domain, fileRef "<disk>/<volume>".
    "virt-v2v-test-o-ovirt.ovf.expected": Expected(
        "windows", 1024, (1, 1, 1), [(str(DISK_ID), [str(VOL_ID)])], [("eth0", "00:11:22:33:44:55")], [], "0.9"
    ),
    # virt-v2v -o vdsm with the oVirt flavour (what -o rhv-upload sends too): plain DMTF sections, the
    # volume alone in File href, fileRef and HostResource, the disk in ovf:diskId. An image disk.
    "virt-v2v-test-o-vdsm-options.ovf.expected": Expected(
        "windows", 1024, (1, 1, 1), [(str(DISK_ID), [str(VOL_ID)])], [("eth0", "00:11:22:33:44:55")], [], "0.9"
    ),
}  # fmt: skip


def test_every_sample_in_the_directory_is_listed_here_and_in_sources() -> None:
    files = {p.name for p in FIXTURES.iterdir() if p.name != "SOURCES.md"}
    assert files == set(SAMPLES)
    sources = (FIXTURES / "SOURCES.md").read_text()
    assert all(f"`{name}`" in sources for name in files)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_reads_as_written(name: str) -> None:
    expected = SAMPLES[name]
    result = read_ovf(sample(name))
    data, entity = result.data, result.data.entity
    assert isinstance(entity, Vm)
    assert result.version == expected.version
    assert entity.name == expected.name
    assert entity.memory_mb == expected.memory_mb
    assert (entity.cpu_sockets, entity.cpu_cores, entity.cpu_threads) == expected.cpu
    disks = []
    for d in data.disks:
        if d.disk.storage_type is DiskStorageType.LUN:
            assert not d.disk.volumes
            disks.append((str(d.disk.id), [f"lun:{d.disk.lun_id}"]))
        else:
            assert d.disk.lun_id is None
            assert all(v.disk_id == d.disk.id for v in d.disk.volumes)
            disks.append((str(d.disk.id), [str(v.id) for v in d.disk.chain()]))
    assert disks == expected.disks
    assert [(n.nic.name, n.nic.mac) for n in data.nics] == expected.nics
    assert [(str(s.id), s.type, bool(s.memory)) for s in data.snapshots] == expected.snapshots
    assert not [w for w in result.warnings if "names no volume" in w or "LUN" in w]


def test_a_bare_volume_reference_with_the_disk_in_disk_id_is_an_image_disk() -> None:
    (disk,) = read_ovf(sample("virt-v2v-test-o-vdsm-options.ovf.expected")).data.disks
    assert disk.disk.storage_type is DiskStorageType.IMAGE
    (volume,) = disk.disk.volumes
    assert (disk.disk.id, volume.id, volume.capacity) == (DISK_ID, VOL_ID, 536870912)
    assert disk.disk.domain_ids == [UUID("12345678-1234-1234-1234-123456789abc")]
    assert disk.attachment.bootable


def test_ovirt_lun_connections_are_read() -> None:
    data = read_ovf(sample("ovirt-engine-3.3-vm.ovf")).data
    (lun,) = [d.disk for d in data.disks if d.disk.storage_type is DiskStorageType.LUN]
    assert lun.lun_connections == [
        LunConnection(
            address="10.35.16.55", port="3260", target="iqn.2015-07.com.mlipchuk5.redhat:444", portal="1",
            storage_type="ISCSI",
        )
    ]  # fmt: skip
    assert data.affinity_groups == ["aff1"]
    assert data.affinity_labels == ["aff1_label"]


def test_hosted_engine_ovfs_carry_their_engine_xml_without_harm() -> None:
    document = sample("hosted-engine-ha-ovf_test_v4.2.xml")
    assert b"EngineXml" in document
    result = read_ovf(document)
    assert result.data.disks[0].disk.domain_ids == [UUID("ce880525-a44b-4248-8b63-d9e11b2f123a")]

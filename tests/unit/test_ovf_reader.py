"""The reader on real documents, on other writers' dialects, and on hostile input."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from ovfstore.model import (
    GIB,
    BiosType,
    DiskInterface,
    DiskStorageType,
    DisplayType,
    GraphicsType,
    NicInterface,
    OriginType,
    SnapshotType,
    Template,
    Vm,
    VmType,
)
from ovfstore.ovf import MAX_DOCUMENT_BYTES, OvfError, read_ovf, write_ovf
from tests.unit.test_ovf_samples import fixed_sample

FIXTURES = Path(__file__).parents[1] / "fixtures" / "ovf"  # real OVFs written by oVirt and virt-v2v
OVF = "http://schemas.dmtf.org/ovf/envelope/1/"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_ovirt_engine_3_3_sample() -> None:
    result = read_ovf(fixture("ovirt-engine-3.3-vm.ovf"))
    data, vm = result.data, result.data.entity
    assert isinstance(vm, Vm)
    assert result.version == "3.3.0.0"
    assert vm.id == UUID("70f24c82-a7b8-4e0b-9192-cffd5705cf5c")
    assert vm.name == "exporttedVM"
    assert vm.description == "fsdf"
    assert vm.memory_mb == 1024
    assert (vm.cpu_sockets, vm.cpu_cores, vm.cpu_threads) == (1, 1, 1)
    assert vm.vm_type is VmType.DESKTOP
    assert vm.display_type is DisplayType.QXL
    assert vm.graphics == [GraphicsType.SPICE]  # derived from the qxl video of a pre-4.0 document
    assert vm.soundcard_enabled
    assert vm.db_generation == 2
    assert vm.creation_date == datetime(2013, 5, 27, 14, 44, 12, tzinfo=UTC)
    assert vm.template_id == UUID(int=0)
    assert data.template_name == "Blank"
    assert data.export_date == datetime(2013, 5, 27, 14, 47, 16, tzinfo=UTC)
    assert data.data_center_id == UUID("5c80c932-20ef-4c55-9e06-383c6152a0dc")
    image, lun = data.disks
    assert image.disk.id == UUID("8c634412-1e8b-4ef3-bc40-b67a456e9d2f")
    assert image.disk.alias == "exporttedVM_Disk1"
    assert image.disk.domain_ids == [UUID("7e2a7eac-3b76-4d45-a7dd-caae8fe0f588")]
    assert image.disk.provisioned_size == GIB
    (volume,) = image.disk.volumes
    assert volume.id == UUID("f934b12c-1e22-4ad8-bbce-ec0b2a5defa4")
    assert volume.parent_id is None
    assert volume.snapshot_id == UUID("b60fcbad-d65a-4248-ae32-7f9411276df0")
    assert image.attachment.interface is DiskInterface.VIRTIO
    assert image.attachment.bootable
    assert lun.disk.id == UUID("eb331cad-8842-48d9-9c56-40b893dc8b1e")
    assert lun.disk.storage_type is DiskStorageType.LUN
    assert lun.disk.lun_id == "36001405bb1b5071cfb44a4e9576aef7c"
    assert lun.disk.provisioned_size == 5 * GIB  # ovf:device_size, in GiB
    assert lun.attachment.interface is DiskInterface.VIRTIO_SCSI
    assert data.nics == []
    assert [(s.type, s.description) for s in data.snapshots] == [
        (SnapshotType.ACTIVE, "Active VM"),
        (SnapshotType.REGULAR, "snap"),
    ]
    assert data.snapshots[1].memory.startswith("44b6c877-d062-47a8-82e2-93972d262546,")
    assert data.affinity_groups == ["aff1"]
    assert data.affinity_labels == ["aff1_label"]
    assert "no ClusterName: the cluster must be chosen when registering" in result.warnings


def test_virt_v2v_sample() -> None:
    result = read_ovf(fixture("virt-v2v-vm.ovf"))
    data, vm = result.data, result.data.entity
    assert isinstance(vm, Vm)
    assert result.version == "0.9"
    assert vm.id == UUID("4a6237d9-05a0-4d5a-a7b1-ff01764a761f")
    assert vm.name == "sevenofnine"
    assert vm.os_type == "windows_2019x64"
    assert vm.memory_mb == 16384
    assert (vm.cpu_sockets, vm.cpu_cores) == (1, 8)
    assert vm.bios_type is BiosType.Q35_OVMF  # written as 2: oVirt's value minus one
    assert vm.display_type is DisplayType.VGA
    assert vm.origin is OriginType.VMWARE
    assert vm.initialized  # "True", capitalised
    (disk,) = data.disks
    assert disk.disk.id == UUID("752b9199-8083-4e60-9be2-b2f13f54790f")
    assert [v.id for v in disk.disk.volumes] == [UUID("e562465d-dc03-427f-8cc9-20fc1055424f")]
    assert disk.disk.provisioned_size == 214748364800  # ovf:capacity, exact
    assert disk.disk.domain_ids == [UUID("dfe7c94d-f724-4bbc-9156-d47761f417c6")]
    assert disk.disk.alias == "Drive 1"  # from the item caption: v2v writes no disk-alias
    assert disk.attachment.interface is DiskInterface.IDE
    assert disk.attachment.bootable
    assert data.data_center_id is None  # the all-zero pool id
    (nic,) = data.nics
    assert nic.nic.id == UUID("ab4bf497-a995-470c-8f4e-91a18c4b74fa")
    assert nic.nic.name == "eth0"
    assert nic.nic.mac is None
    assert nic.nic.interface is NicInterface.RTL8139
    assert nic.network_name == "DPG_VMNetwork"
    assert "NIC eth0 has no MAC address: one will be taken from the pool" in result.warnings
    assert "no Generation: assumed 1" in result.warnings


def test_reading_is_pure_and_a_rewrite_is_stable() -> None:
    document = fixture("ovirt-engine-3.3-vm.ovf")
    first, second = read_ovf(document), read_ovf(document)
    assert first.data == second.data
    ours = write_ovf(first.data)
    assert write_ovf(read_ovf(ours).data) == ours


# Leniency: the same VM in the forms other writers use.


def _ours(kind: str = "vm") -> str:
    return write_ovf(fixed_sample(kind)).decode()


@pytest.mark.parametrize("uri", [OVF, OVF.rstrip("/")])
def test_both_envelope_namespace_spellings(uri: str) -> None:
    document = _ours().replace(f'xmlns:ovf="{OVF}"', f'xmlns:ovf="{uri}"')
    result = read_ovf(document.encode())
    assert result.data.entity.id == fixed_sample("vm").entity.id
    assert result.data.disks[0].disk.volumes[1].capacity == 12 * GIB + 1
    assert result.warnings == []


def test_instance_id_spelled_the_dmtf_way() -> None:
    document = _ours().replace("rasd:InstanceId>", "rasd:InstanceID>")
    result = read_ovf(document.encode())
    assert result.data.nics[0].nic.id == UUID(int=60)
    assert result.warnings == []


def test_plain_dmtf_section_elements() -> None:
    document = _ours()
    for kind in ("NetworkSection", "DiskSection", "OperatingSystemSection", "VirtualHardwareSection"):
        start = document.rindex("<Section", 0, document.index(f'xsi:type="ovf:{kind}_Type"'))
        end = document.index("</Section>", start)  # none of these four holds another Section
        element = document[start:end].replace(f' xsi:type="ovf:{kind}_Type"', "")
        document = document[:start] + f"<{kind}" + element[len("<Section") :] + f"</{kind}>" + document[end + 10 :]
    document = document.replace("<Content ", "<VirtualSystem ").replace("</Content>", "</VirtualSystem>")
    assert "OperatingSystemSection_Type" not in document
    result = read_ovf(document.encode())
    assert result.data == read_ovf(_ours().encode()).data
    assert result.warnings == []


def test_capitalised_booleans() -> None:
    document = _ours().replace(">true<", ">True<").replace('="true"', '="True"')
    assert read_ovf(document.encode()).data == read_ovf(_ours().encode()).data


def test_missing_optional_elements_are_assumed_with_warnings() -> None:
    document = (
        f'<ovf:Envelope xmlns:ovf="{OVF}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<Content><Name>bare</Name><Section ovf:id="11111111-2222-3333-4444-555555555555" '
        'xsi:type="ovf:OperatingSystemSection_Type"/></Content></ovf:Envelope>'
    )
    result = read_ovf(document.encode())
    vm = result.data.entity
    assert isinstance(vm, Vm)
    assert vm.name == "bare"
    assert vm.id == UUID("11111111-2222-3333-4444-555555555555")
    assert vm.bios_type is BiosType.I440FX_SEA_BIOS
    assert result.warnings == [
        "no operating system Description: assumed 'other'",
        "no CreationDate: assumed 1970/01/01 00:00:00",
        "no TemplateId: assumed the Blank template",
        "no VirtualHardwareSection: CPU, memory, disks and NICs all assumed",
        "no Generation: assumed 1",
        "no BiosType: assumed I440FX_SEA_BIOS, as oVirt does",
        "no DefaultDisplayType and no video device: assumed VGA",
        "no ClusterName: the cluster must be chosen when registering",
        "no TemplateName: assumed 'Blank'",
    ]


def test_template_recognised_by_template_type_or_by_its_own_id() -> None:
    document = _ours("template")
    assert isinstance(read_ovf(document.encode()).data.entity, Template)
    without_type = document.replace("<TemplateType>TEMPLATE</TemplateType>", "")
    assert isinstance(read_ovf(without_type.encode()).data.entity, Template)
    vm = _ours("vm")
    assert isinstance(read_ovf(vm.encode()).data.entity, Vm)


def test_disagreeing_disk_ids_are_warned_about() -> None:
    document = _ours().replace(f"<rasd:HostResource>{UUID(int=10)}/", f"<rasd:HostResource>{UUID(int=99)}/")
    result = read_ovf(document.encode())
    assert [d.disk.id for d in result.data.disks] == [UUID(int=10), UUID(int=11)]
    assert any("disk item puts volume" in w for w in result.warnings)


def test_reading_from_threads() -> None:
    document = write_ovf(fixed_sample("vm"))
    expected = read_ovf(document).data
    failures: list[object] = []

    def work() -> None:
        for _ in range(50):
            if read_ovf(document).data != expected:
                failures.append(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# Hostile and broken input: one error type, a message that says what is wrong.

LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<Envelope>&lol3;</Envelope>"
)
UTF16_DOCTYPE = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE e [<!ENTITY x "y">]><Envelope>&x;</Envelope>'
UTF16_DOCTYPE_BYTES = UTF16_DOCTYPE.encode("utf-16")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(LAUGHS, "DOCTYPE", id="billion-laughs"),
        pytest.param(
            b'<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><Envelope>&x;</Envelope>',
            "DOCTYPE",
            id="external-entity-file",
        ),
        pytest.param(
            b'<!DOCTYPE e [<!ENTITY x SYSTEM "http://127.0.0.1:1/x">]><Envelope>&x;</Envelope>',
            "DOCTYPE",
            id="external-entity-http",
        ),
        pytest.param(
            b'<!DOCTYPE e [<!ENTITY % p SYSTEM "http://127.0.0.1:1/p.dtd"> %p;]><Envelope/>',
            "DOCTYPE",
            id="parameter-entity",
        ),
        pytest.param(b'<!DOCTYPE Envelope SYSTEM "x.dtd"><Envelope/>', "DOCTYPE", id="any-doctype"),
        pytest.param(
            UTF16_DOCTYPE_BYTES,
            "DOCTYPE",
            id="doctype-in-utf16",
        ),
        pytest.param(b"<ovf:Envelope xmlns:ovf='x'><Content>", "not well-formed XML", id="truncated"),
        pytest.param(b"", "not well-formed XML", id="empty"),
        pytest.param(b"\xff\xfe\x00garbage\x80\x81", "not well-formed XML", id="garbage"),
        pytest.param(b"<html><body/></html>", "root element is 'html', not an OVF Envelope", id="wrong-root"),
        pytest.param(b"<Envelope>" * 300 + b"</Envelope>" * 300, "more than 256 deep", id="too-deep"),
        pytest.param(b"<Envelope/>", "no Content", id="no-content"),
        pytest.param(
            b"<Envelope><Content><Name>x</Name></Content></Envelope>", "no OperatingSystemSection", id="no-os"
        ),
        pytest.param(
            b"<Envelope xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'><Content>"
            b"<Section xsi:type='ovf:OperatingSystemSection_Type'/></Content></Envelope>",
            "OperatingSystemSection has no ovf:id",
            id="no-os-id",
        ),
        pytest.param(
            b"<Envelope><Content><OperatingSystemSection id='nope'/></Content></Envelope>",
            "ovf:id 'nope' is not a UUID",
            id="bad-os-id",
        ),
    ],
)
def test_hostile_or_broken_input_is_one_clear_error(document: bytes, message: str) -> None:
    with pytest.raises(OvfError, match=message):
        read_ovf(document)


def test_exclamation_marks_and_comments_are_not_declarations() -> None:
    # The pre-parse refusal looks for "!" first; text and comments holding one must still read.
    document = _ours().replace("<Content ", "<!-- exported! --><Content ", 1)
    document = document.replace("<Name>", "<Name>hi! ", 1)
    result = read_ovf(document.encode())
    assert result.data.entity.name == "hi! " + fixed_sample("vm").entity.name
    assert result.warnings == []


def test_oversize_document_is_refused_before_parsing() -> None:
    document = b"<Envelope>" + b" " * MAX_DOCUMENT_BYTES + b"</Envelope>"
    with pytest.raises(OvfError, match="larger than the 8388608 an OVF may be"):
        read_ovf(document)


def test_ovf_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not well-formed"):
        read_ovf(b"<")

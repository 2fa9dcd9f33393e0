"""Model samples for the OVF codec tests (no tests here): hypothesis strategies and fixed samples."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from uuid import UUID

from hypothesis import strategies as st

from ovfstore.model import (
    GIB,
    BiosType,
    BootSequence,
    Disk,
    DiskAttachment,
    DiskContentType,
    DiskInterface,
    DiskStatus,
    DiskStorageType,
    DisplayType,
    GraphicsType,
    LunConnection,
    Nic,
    NicInterface,
    OriginType,
    OvfData,
    OvfDisk,
    OvfNic,
    Permission,
    Snapshot,
    SnapshotStatus,
    SnapshotType,
    Template,
    TemplateStatus,
    UsbPolicy,
    Vm,
    VmStatus,
    VmType,
    Volume,
    VolumeFormat,
    VolumeLegality,
    VolumeType,
)

# Any text XML 1.0 can carry: no control characters but tab and line breaks, no surrogates, no U+FFFE/F.
text = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), include_characters="\t\n\r", exclude_characters="\ufffe\uffff"),
    max_size=12,
)
names = text.filter(bool)
dates = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC))
dates = dates.map(lambda d: d.replace(microsecond=0))
sizes = st.integers(0, 1 << 50)
small = st.integers(0, 1 << 20)
macs = st.from_regex(r"\A[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
display_types = st.sampled_from([d for d in DisplayType if d is not DisplayType.VNC])


@st.composite
def image_disk(draw: st.DrawFn, entity_id: UUID) -> OvfDisk:
    disk_id = draw(st.uuids())
    volumes: list[Volume] = []
    for _ in range(draw(st.integers(1, 3))):
        volumes.append(
            Volume(
                id=draw(st.uuids()),
                disk_id=disk_id,
                parent_id=volumes[-1].id if volumes else None,
                format=draw(st.sampled_from(VolumeFormat)),
                volume_type=draw(st.sampled_from(VolumeType)),
                capacity=draw(sizes),
                actual_size=draw(sizes),
                legality=draw(st.sampled_from(VolumeLegality)),
                snapshot_id=draw(st.none() | st.uuids()),
                creation_date=draw(dates),
            )
        )
    disk = Disk(
        id=disk_id,
        alias=draw(text),
        description=draw(text),
        provisioned_size=volumes[-1].capacity,  # a disk is as large as its leaf
        shareable=draw(st.booleans()),
        wipe_after_delete=draw(st.booleans()),
        content_type=draw(st.sampled_from(DiskContentType)),
        status=draw(st.sampled_from(DiskStatus)),
        domain_ids=draw(st.lists(st.uuids(), max_size=2, unique=True)),
        volumes=volumes,
        creation_date=draw(dates),
    )
    return OvfDisk(disk=disk, attachment=draw(attachment(entity_id, disk_id)))


lun_connections = st.builds(
    LunConnection,
    address=text,
    port=text,
    target=text,
    portal=text,
    storage_type=st.sampled_from(["ISCSI", "FCP"]),
)


@st.composite
def lun_disk(draw: st.DrawFn, entity_id: UUID) -> OvfDisk:
    disk = Disk(
        id=draw(st.uuids()),
        alias=draw(text),
        description=draw(text),
        provisioned_size=draw(sizes),
        shareable=draw(st.booleans()),
        wipe_after_delete=draw(st.booleans()),
        storage_type=DiskStorageType.LUN,
        lun_id=draw(names),
        lun_vendor=draw(text),
        lun_product=draw(text),
        lun_serial=draw(text),
        lun_connections=draw(st.lists(lun_connections, max_size=2)),
        creation_date=draw(dates),
    )
    return OvfDisk(disk=disk, attachment=draw(attachment(entity_id, disk.id)))


def attachment(entity_id: UUID, disk_id: UUID) -> st.SearchStrategy[DiskAttachment]:
    return st.builds(
        DiskAttachment,
        entity_id=st.just(entity_id),
        disk_id=st.just(disk_id),
        interface=st.sampled_from(DiskInterface),
        bootable=st.booleans(),
        read_only=st.booleans(),
        active=st.booleans(),
        pass_discard=st.booleans(),
    )


def nic(entity_id: UUID) -> st.SearchStrategy[OvfNic]:
    return st.builds(
        OvfNic,
        nic=st.builds(
            Nic,
            id=st.uuids(),
            entity_id=st.just(entity_id),
            name=text,
            mac=st.none() | macs,
            interface=st.sampled_from(NicInterface),
            linked=st.booleans(),
            plugged=st.booleans(),
        ),
        network_name=st.none() | names,
        profile_name=st.none() | names,
    )


@st.composite
def ovf_data(draw: st.DrawFn) -> OvfData:
    """A VM or a template with every field drawn, within what the document can carry (see NOT_CARRIED)."""
    entity_id = draw(st.uuids())
    common = {
        "id": entity_id,
        "name": draw(text),
        "description": draw(text),
        "comment": draw(text),
        "os_type": draw(text),
        "vm_type": draw(st.sampled_from(VmType)),
        "memory_mb": draw(small),
        "max_memory_mb": draw(small),
        "min_memory_mb": draw(small),
        "cpu_sockets": draw(st.integers(1, 64)),
        "cpu_cores": draw(st.integers(1, 64)),
        "cpu_threads": draw(st.integers(1, 8)),
        "high_availability": draw(st.booleans()),
        "priority": draw(st.integers(0, 100)),
        "stateless": draw(st.booleans()),
        "delete_protected": draw(st.booleans()),
        "display_type": draw(display_types),
        "graphics": draw(st.lists(st.sampled_from(GraphicsType), unique=True)),
        "bios_type": draw(st.sampled_from(BiosType)),
        "boot_sequence": draw(st.sampled_from(BootSequence)),
        "boot_menu_enabled": draw(st.booleans()),
        "time_zone": draw(text),
        "usb_policy": draw(st.sampled_from(UsbPolicy)),
        "smartcard_enabled": draw(st.booleans()),
        "soundcard_enabled": draw(st.booleans()),
        "custom_emulated_machine": draw(text),
        "custom_cpu_name": draw(text),
        "lease_domain_id": draw(st.none() | st.uuids()),
        "origin": draw(st.sampled_from(OriginType)),
        "creation_date": draw(dates),
        "db_generation": draw(st.integers(0, 1 << 40)),
    }
    is_template = draw(st.booleans())
    entity: Vm | Template
    if is_template:
        base = draw(st.none() | st.uuids().filter(lambda u: u != entity_id))
        entity = Template(
            **common,  # type: ignore[arg-type]
            status=draw(st.sampled_from(TemplateStatus)),
            base_template_id=base,
            version_number=draw(small),
            version_name=draw(text),
            disabled=draw(st.booleans()),
            sealed=draw(st.booleans()),
        )
    else:
        entity = Vm(
            **common,  # type: ignore[arg-type]
            template_id=draw(st.uuids()),
            use_latest_template_version=draw(st.booleans()),
            status=draw(st.sampled_from(VmStatus)),
            initialized=draw(st.booleans()),
        )
    disks = draw(st.lists(image_disk(entity_id) | lun_disk(entity_id), max_size=3))
    has_image = any(d.disk.storage_type is DiskStorageType.IMAGE for d in disks)
    pairs = draw(st.lists(st.tuples(text, text), max_size=3, unique=True))
    return OvfData(
        entity=entity,
        cluster_name=draw(text),
        cluster_compatibility_version=draw(text),
        data_center_id=draw(st.none() | st.uuids()) if has_image else None,
        template_name="" if is_template else draw(text),
        base_template_name=draw(text) if is_template else "",
        disks=disks,
        nics=draw(st.lists(nic(entity_id), max_size=3)),
        snapshots=[] if is_template else draw(st.lists(snapshot(entity_id), max_size=3)),
        permissions=[Permission(entity_id=entity_id, user_name=u, role_name=r) for u, r in pairs],
        affinity_groups=draw(st.lists(text, max_size=3)),
        affinity_labels=draw(st.lists(text, max_size=3)),
        export_date=draw(dates),
    )


def snapshot(vm_id: UUID) -> st.SearchStrategy[Snapshot]:
    return st.builds(
        Snapshot,
        id=st.uuids(),
        vm_id=st.just(vm_id),
        type=st.sampled_from(SnapshotType),
        status=st.sampled_from(SnapshotStatus),
        description=text,
        creation_date=dates,
        memory=text,
    )


WHEN = datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC)


def fixed_sample(kind: str) -> OvfData:
    """One VM or template with every optional value set, each field different from its default."""
    entity_id = UUID("11111111-2222-3333-4444-555555555555")
    common = {
        "id": entity_id,
        "name": "app <01> & co",
        "description": "line one\nline two\ttabbed",
        "comment": "c",
        "os_type": "rhel_9x64",
        "memory_mb": 2048,
        "max_memory_mb": 8192,
        "min_memory_mb": 1536,
        "cpu_sockets": 2,
        "cpu_cores": 3,
        "cpu_threads": 2,
        "display_type": DisplayType.QXL,
        "graphics": [GraphicsType.SPICE],
        "bios_type": BiosType.Q35_SEA_BIOS,
        "time_zone": "Etc/GMT",
        "custom_emulated_machine": "q35",
        "custom_cpu_name": "Skylake",
        "lease_domain_id": UUID(int=77),
        "origin": OriginType.KVM,
        "creation_date": WHEN,
        "db_generation": 9,
    }
    entity: Vm | Template
    if kind == "template":
        entity = Template(**common, version_name="v1")  # type: ignore[arg-type]
    else:
        entity = Vm(**common, template_id=UUID(int=5))  # type: ignore[arg-type]
    disk_id = UUID(int=10)
    base = Volume(id=UUID(int=20), disk_id=disk_id, capacity=10 * GIB, actual_size=GIB, creation_date=WHEN)
    leaf = Volume(
        id=UUID(int=21),
        disk_id=disk_id,
        parent_id=base.id,
        format=VolumeFormat.COW,
        capacity=12 * GIB + 1,
        actual_size=3,
        snapshot_id=UUID(int=30),
        creation_date=WHEN,
    )
    image = Disk(
        id=disk_id,
        alias="disk 1",
        description="the system disk",
        provisioned_size=leaf.capacity,
        domain_ids=[UUID(int=40)],
        volumes=[base, leaf],
        creation_date=WHEN,
    )
    lun = Disk(
        id=UUID(int=11),
        alias="lun",
        provisioned_size=5 * GIB,
        storage_type=DiskStorageType.LUN,
        lun_id="36001405bb1b5071cfb44a4e9576aef7c",
        lun_vendor="LIO-ORG",
        lun_product="lun1",
        lun_serial="SLIO-ORG_lun1_bb1b5071-cfb4-4a4e-9576-aef7c",
        lun_connections=[
            LunConnection(address="10.35.1.2", port="3260", target="iqn.2003-01.org.linux-iscsi.storage:t1", portal="1")
        ],
        creation_date=WHEN,
    )
    return OvfData(
        entity=entity,
        cluster_name="Default",
        cluster_compatibility_version="4.7",
        data_center_id=UUID(int=50),
        template_name="" if kind == "template" else "base",
        base_template_name="base" if kind == "template" else "",
        disks=[
            OvfDisk(disk=image, attachment=DiskAttachment(entity_id=entity_id, disk_id=image.id, bootable=True)),
            OvfDisk(disk=lun, attachment=DiskAttachment(entity_id=entity_id, disk_id=lun.id)),
        ],
        nics=[
            OvfNic(
                nic=Nic(id=UUID(int=60), entity_id=entity_id, name="nic1", mac="56:6f:00:00:00:01"),
                network_name="ovirtmgmt",
                profile_name="ovirtmgmt",
            )
        ],
        snapshots=[]
        if kind == "template"
        else [Snapshot(id=UUID(int=30), vm_id=entity_id, description="before upgrade", creation_date=WHEN)],
        permissions=[Permission(entity_id=entity_id, user_name="admin@internal", role_name="UserRole")],
        affinity_groups=["g1"],
        affinity_labels=["l1"],
        export_date=WHEN,
    )


def clone(data: OvfData) -> OvfData:
    return copy.deepcopy(data)

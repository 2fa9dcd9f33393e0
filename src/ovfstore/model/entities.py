"""The inventory as plain dataclasses: no I/O, no database, no XML.

Field names follow the oVirt REST API where one exists. Ids are UUIDs; sizes are bytes unless the name
says otherwise; times are timezone-aware UTC. VMs and templates share `VmBase`, as in oVirt, because an
OVF document describes either with the same elements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID, uuid4

from ovfstore.model.enums import (
    BiosType,
    BootSequence,
    DataCenterStatus,
    DiskContentType,
    DiskInterface,
    DiskStatus,
    DiskStorageType,
    DisplayType,
    DomainClass,
    DomainStatus,
    GraphicsType,
    HostStatus,
    NicInterface,
    OriginType,
    SnapshotStatus,
    SnapshotType,
    StorageType,
    TemplateStatus,
    UsbPolicy,
    VmStatus,
    VmType,
    VolumeFormat,
    VolumeLegality,
    VolumeType,
)

#: The id oVirt gives the `Blank` template, the template of every VM created from nothing.
BLANK_TEMPLATE_ID = UUID(int=0)
#: oVirt's name for the all-zero UUID in parent links: "no parent".
NULL_UUID = UUID(int=0)
GIB = 1024**3


def utcnow() -> datetime:
    """Now, in UTC, to the second: OVF dates carry seconds, so the model keeps no more."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(kw_only=True, slots=True)
class DataCenter:
    """A storage pool: the domains, clusters and networks that belong together."""

    id: UUID = field(default_factory=uuid4)
    name: str
    description: str = ""
    comment: str = ""
    local: bool = False
    compatibility_version: str = "4.7"
    status: DataCenterStatus = DataCenterStatus.UNINITIALIZED
    # The MAC address pool of the data center, inclusive on both ends. oVirt's default pool starts at
    # 56:6f; NICs get addresses from here and any address given by hand must fall inside.
    mac_pool_start: str = "56:6f:00:00:00:00"
    mac_pool_end: str = "56:6f:00:00:ff:ff"


@dataclass(kw_only=True, slots=True)
class Cluster:
    id: UUID = field(default_factory=uuid4)
    name: str
    data_center_id: UUID
    description: str = ""
    comment: str = ""
    compatibility_version: str = "4.7"
    cpu_type: str = "Intel Nehalem Family"
    bios_type: BiosType = BiosType.Q35_OVMF


@dataclass(kw_only=True, slots=True)
class Host:
    """A hypervisor host, reached by the engine through its host agent's HTTP address."""

    id: UUID = field(default_factory=uuid4)
    name: str
    cluster_id: UUID
    address: str
    description: str = ""
    status: HostStatus = HostStatus.UP


@dataclass(kw_only=True, slots=True, frozen=True)
class LogicalUnit:
    """A LUN of a block (iSCSI or FC) domain as its host reported it: the LUN id (the WWID), its size, the
    SCSI vendor, product and serial, and the UUID of the LVM physical volume it carries."""

    id: str
    size: int = 0
    vendor_id: str = ""
    product_id: str = ""
    serial: str = ""
    pv_uuid: str = ""


@dataclass(kw_only=True, slots=True)
class StorageDomain:
    id: UUID = field(default_factory=uuid4)
    name: str
    storage_type: StorageType = StorageType.LOCALFS
    domain_class: DomainClass = DomainClass.DATA
    # File domains: `address` is the NFS/Gluster server ("" for local and POSIX paths) and `path` the
    # export or directory under which the domain's `<sdUUID>/` directory lives. Block domains (iSCSI,
    # FCP): `vg_uuid` is the LVM volume group's UUID (oVirt's `volume_group id`), `logical_units` its
    # LUNs; `path` stays "".
    address: str = ""
    path: str = ""
    vg_uuid: str = ""
    logical_units: list[LogicalUnit] = field(default_factory=list)
    description: str = ""
    comment: str = ""
    data_center_id: UUID | None = None
    status: DomainStatus = DomainStatus.UNATTACHED
    master: bool = False
    # How many OVF store disks the domain keeps. oVirt's default is 2 (valid 0..16); 0 means the
    # operator chose to keep none, and the domain is then not self-describing.
    ovf_store_count: int = 2
    format_version: int = 5
    # Settings oVirt keeps for a domain and returns as set (the disaster-recovery role sends them and
    # compares them on its next run); ovfstore stores them and acts on none. Defaults are oVirt's.
    backup: bool = False
    wipe_after_delete: bool = False
    discard_after_delete: bool = False
    warning_low_space_indicator: int = 10  # percent
    critical_space_action_blocker: int = 5  # GiB
    # The storage connection of a file domain beyond `address` and `path`: POSIX/Gluster file system
    # type, mount options, and NFS version ("" for auto), timeout (deciseconds) and retransmissions (0: unset).
    vfs_type: str = ""
    mount_options: str = ""
    nfs_version: str = ""
    nfs_timeo: int = 0
    nfs_retrans: int = 0


@dataclass(kw_only=True, slots=True)
class Network:
    id: UUID = field(default_factory=uuid4)
    name: str
    data_center_id: UUID
    description: str = ""
    vlan_id: int | None = None
    mtu: int = 0  # 0: the default of the host's network
    vm_network: bool = True


@dataclass(kw_only=True, slots=True)
class VnicProfile:
    id: UUID = field(default_factory=uuid4)
    name: str
    network_id: UUID
    description: str = ""


@dataclass(kw_only=True, slots=True)
class Volume:
    """One volume of a disk's chain; the chain is linked by `parent_id` (None for the base volume)."""

    id: UUID = field(default_factory=uuid4)
    disk_id: UUID
    parent_id: UUID | None = None
    format: VolumeFormat = VolumeFormat.RAW
    volume_type: VolumeType = VolumeType.SPARSE
    capacity: int  # provisioned (virtual) size in bytes
    actual_size: int = 0  # bytes allocated on storage
    legality: VolumeLegality = VolumeLegality.LEGAL
    snapshot_id: UUID | None = None  # the VM snapshot this volume belongs to
    creation_date: datetime = field(default_factory=utcnow)


@dataclass(kw_only=True, slots=True)
class FoundVolume:
    """A volume as a domain scan found it on storage, for a disk the engine does not know yet: its parent
    link, size, format and legality as its `.meta` records them (kept as text, as stored)."""

    id: str
    parent: str = ""  # "" for a base volume
    capacity: int = 0
    format: str = ""  # RAW, COW
    legality: str = ""  # LEGAL, ILLEGAL, FAKE
    type: str = ""  # SPARSE, PREALLOCATED


@dataclass(kw_only=True, slots=True)
class LunConnection:
    """One path to a direct LUN: the storage server connection oVirt records with the LUN (its
    `StorageServerConnections`), written in the OVF as a `<Connection>` of the LUN's disk."""

    address: str  # the iSCSI portal's address (oVirt's `connection`); "" for Fibre Channel
    port: str = ""  # the iSCSI port, as text ("3260"), as oVirt keeps it
    target: str = ""  # the iSCSI target name (IQN)
    portal: str = ""  # the target portal group tag
    storage_type: str = "ISCSI"  # oVirt's StorageType name: ISCSI, FCP


@dataclass(kw_only=True, slots=True)
class Disk:
    """A disk (oVirt: an image group): its volume chain lives on each domain listed in `domain_ids`.

    Several domains hold the same disk only for template disks copied to more than one domain.
    """

    id: UUID = field(default_factory=uuid4)
    alias: str
    description: str = ""
    provisioned_size: int
    shareable: bool = False
    wipe_after_delete: bool = False
    content_type: DiskContentType = DiskContentType.DATA
    status: DiskStatus = DiskStatus.OK
    storage_type: DiskStorageType = DiskStorageType.IMAGE
    lun_id: str | None = None  # direct LUN disks only
    # Direct LUN disks only: what identifies the LUN beyond its id, and the paths to it.
    lun_vendor: str = ""
    lun_product: str = ""
    lun_serial: str = ""
    lun_connections: list[LunConnection] = field(default_factory=list)
    domain_ids: list[UUID] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    creation_date: datetime = field(default_factory=utcnow)

    @property
    def actual_size(self) -> int:
        return sum(v.actual_size for v in self.volumes)

    def chain(self) -> list[Volume]:
        """The volumes from the base to the leaf (the active layer)."""
        by_parent = {v.parent_id: v for v in self.volumes}
        ordered: list[Volume] = []
        current = by_parent.get(None)
        while current is not None and len(ordered) < len(self.volumes):
            ordered.append(current)
            current = by_parent.get(current.id)
        return ordered

    @property
    def leaf(self) -> Volume | None:
        chain = self.chain()
        return chain[-1] if chain else None


@dataclass(kw_only=True, slots=True)
class DiskAttachment:
    """How a VM or template sees one disk: the per-VM settings of the disk."""

    entity_id: UUID
    disk_id: UUID
    interface: DiskInterface = DiskInterface.VIRTIO_SCSI
    bootable: bool = False
    read_only: bool = False
    active: bool = True  # plugged
    pass_discard: bool = False


@dataclass(kw_only=True, slots=True)
class Nic:
    id: UUID = field(default_factory=uuid4)
    entity_id: UUID
    name: str
    mac: str | None = None  # None: take the next free address of the data center's pool
    vnic_profile_id: UUID | None = None  # None: the NIC is not connected to any network
    interface: NicInterface = NicInterface.VIRTIO
    linked: bool = True
    plugged: bool = True


@dataclass(kw_only=True, slots=True)
class Snapshot:
    id: UUID = field(default_factory=uuid4)
    vm_id: UUID
    type: SnapshotType = SnapshotType.REGULAR
    status: SnapshotStatus = SnapshotStatus.OK
    description: str = ""
    creation_date: datetime = field(default_factory=utcnow)
    # oVirt's memory volume reference of a snapshot taken with memory ("" when without memory).
    memory: str = ""


@dataclass(kw_only=True, slots=True)
class Role:
    id: UUID = field(default_factory=uuid4)
    name: str
    description: str = ""
    administrative: bool = False
    read_only: bool = False


@dataclass(kw_only=True, slots=True)
class Permission:
    """A user's role on one VM or template; the OVF carries these in its UserDomainsSection."""

    id: UUID = field(default_factory=uuid4)
    entity_id: UUID
    user_name: str  # user@profile, as oVirt names users
    role_name: str


@dataclass(kw_only=True, slots=True)
class AffinityGroup:
    id: UUID = field(default_factory=uuid4)
    name: str
    cluster_id: UUID
    description: str = ""
    positive: bool = True
    enforcing: bool = False


@dataclass(kw_only=True, slots=True)
class AffinityLabel:
    id: UUID = field(default_factory=uuid4)
    name: str


@dataclass(kw_only=True, slots=True)
class VmBase:
    """What VMs and templates share: everything an operator configures on them."""

    id: UUID = field(default_factory=uuid4)
    name: str
    description: str = ""
    comment: str = ""
    cluster_id: UUID | None = None
    os_type: str = "other"
    vm_type: VmType = VmType.SERVER
    memory_mb: int = 1024
    max_memory_mb: int = 4096
    min_memory_mb: int = 1024  # guaranteed memory (MinAllocatedMem)
    cpu_sockets: int = 1
    cpu_cores: int = 1  # per socket
    cpu_threads: int = 1  # per core
    high_availability: bool = False  # AutoStartup
    priority: int = 1  # high-availability priority: 1 low, 50 medium, 100 high
    stateless: bool = False
    delete_protected: bool = False
    display_type: DisplayType = DisplayType.VGA
    graphics: list[GraphicsType] = field(default_factory=lambda: [GraphicsType.VNC])
    bios_type: BiosType = BiosType.CLUSTER_DEFAULT
    boot_sequence: BootSequence = BootSequence.C
    boot_menu_enabled: bool = False
    time_zone: str = ""
    usb_policy: UsbPolicy = UsbPolicy.DISABLED
    smartcard_enabled: bool = False
    soundcard_enabled: bool = False
    custom_emulated_machine: str = ""
    custom_cpu_name: str = ""
    lease_domain_id: UUID | None = None  # the domain holding the VM lease of an HA VM
    origin: OriginType = OriginType.OVIRT
    creation_date: datetime = field(default_factory=utcnow)
    # The change counter: bumped in the same transaction as every change that alters the OVF.
    db_generation: int = 1

    @property
    def cpu_count(self) -> int:
        return self.cpu_sockets * self.cpu_cores * self.cpu_threads


@dataclass(kw_only=True, slots=True)
class Vm(VmBase):
    template_id: UUID = BLANK_TEMPLATE_ID
    use_latest_template_version: bool = False
    status: VmStatus = VmStatus.DOWN
    initialized: bool = False  # the guest went through its first-boot initialisation


@dataclass(kw_only=True, slots=True)
class Template(VmBase):
    status: TemplateStatus = TemplateStatus.OK
    # A template version points at its base template; a base template points at itself (None here
    # means "itself", so a new template needs no id up front).
    base_template_id: UUID | None = None
    version_number: int = 1
    version_name: str = ""
    disabled: bool = False
    sealed: bool = False

    @property
    def base_id(self) -> UUID:
        return self.base_template_id or self.id

"""Enumerations of the inventory, with oVirt's names and, where oVirt stores a number, its codes.

String enums carry the lowercase names the oVirt REST API uses; `IntEnum`s carry the numeric codes that
appear in OVF documents and in the store's VM status map (docs/FORMATS.md sections 3 and 4).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class StorageType(StrEnum):
    NFS = "nfs"
    LOCALFS = "localfs"
    POSIXFS = "posixfs"
    GLUSTERFS = "glusterfs"
    ISCSI = "iscsi"
    FCP = "fcp"

    @property
    def is_file(self) -> bool:
        return self not in (StorageType.ISCSI, StorageType.FCP)


class DomainClass(StrEnum):
    """`CLASS` in `dom_md/metadata`; only data domains keep OVF stores."""

    DATA = "data"
    ISO = "iso"
    EXPORT = "export"


class DomainStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    LOCKED = "locked"
    MIXED = "mixed"
    UNATTACHED = "unattached"
    MAINTENANCE = "maintenance"
    PREPARING_FOR_MAINTENANCE = "preparing_for_maintenance"
    DETACHING = "detaching"
    ACTIVATING = "activating"
    UNKNOWN = "unknown"


class DataCenterStatus(StrEnum):
    UNINITIALIZED = "uninitialized"
    UP = "up"
    MAINTENANCE = "maintenance"
    NOT_OPERATIONAL = "not_operational"
    PROBLEMATIC = "problematic"
    CONTEND = "contend"


class HostStatus(StrEnum):
    UP = "up"
    DOWN = "down"
    MAINTENANCE = "maintenance"
    NON_RESPONSIVE = "non_responsive"
    INSTALLING = "installing"
    NON_OPERATIONAL = "non_operational"


class VolumeFormat(StrEnum):
    """`FORMAT` in a volume's `.meta` is the upper-case name (RAW, COW)."""

    RAW = "raw"
    COW = "cow"


class VolumeType(StrEnum):
    """`TYPE` in a volume's `.meta` is the upper-case name."""

    PREALLOCATED = "preallocated"
    SPARSE = "sparse"


class VolumeLegality(StrEnum):
    LEGAL = "legal"
    ILLEGAL = "illegal"
    FAKE = "fake"


class DiskInterface(StrEnum):
    VIRTIO = "virtio"
    VIRTIO_SCSI = "virtio_scsi"
    IDE = "ide"
    SATA = "sata"
    SPAPR_VSCSI = "spapr_vscsi"


class DiskContentType(StrEnum):
    DATA = "data"
    OVF_STORE = "ovf_store"
    MEMORY_DUMP_VOLUME = "memory_dump_volume"
    MEMORY_METADATA_VOLUME = "memory_metadata_volume"
    ISO = "iso"
    HOSTED_ENGINE = "hosted_engine"


class DiskStatus(StrEnum):
    OK = "ok"
    LOCKED = "locked"
    ILLEGAL = "illegal"


class DiskStorageType(StrEnum):
    """An image disk lives in volumes on a domain; a direct LUN is a whole block device of its own."""

    IMAGE = "image"
    LUN = "lun"


class VmStatus(IntEnum):
    """Run status with the codes of the store's `metadata.json` VM status map (docs/FORMATS.md section 3)."""

    DOWN = 0
    UP = 1
    POWERING_UP = 2
    PAUSED = 4
    MIGRATING_FROM = 5
    MIGRATING_TO = 6
    UNKNOWN = 7
    NOT_RESPONDING = 8
    WAIT_FOR_LAUNCH = 9
    REBOOT_IN_PROGRESS = 10
    SAVING_STATE = 11
    RESTORING_STATE = 12
    SUSPENDED = 13
    IMAGE_ILLEGAL = 14
    IMAGE_LOCKED = 15
    POWERING_DOWN = 16

    @property
    def api_name(self) -> str:
        """The REST API spelling: `up`, `image_locked`, ..."""
        return self.name.lower()


class TemplateStatus(StrEnum):
    OK = "ok"
    LOCKED = "locked"
    ILLEGAL = "illegal"


class VmType(IntEnum):
    """`VmType` in the OVF."""

    DESKTOP = 0
    SERVER = 1
    HIGH_PERFORMANCE = 2


class DisplayType(IntEnum):
    """`DefaultDisplayType` in the OVF: the video device model."""

    VNC = 0  # kept by oVirt for old documents; means cirrus with VNC
    QXL = 1
    CIRRUS = 2
    VGA = 3
    BOCHS = 4
    NONE = 5


class GraphicsType(StrEnum):
    """Graphics protocols a VM offers; a VM may offer both."""

    SPICE = "spice"
    VNC = "vnc"


class BiosType(IntEnum):
    """`BiosType` in the OVF."""

    CLUSTER_DEFAULT = 0
    I440FX_SEA_BIOS = 1
    Q35_SEA_BIOS = 2
    Q35_OVMF = 3
    Q35_SECURE_BOOT = 4


class BootSequence(IntEnum):
    """`default_boot_sequence` in the OVF: C = hard disk, D = CD-ROM, N = network, in order tried."""

    C = 0
    DC = 1
    N = 2
    CDN = 3
    CND = 4
    DCN = 5
    DNC = 6
    NCD = 7
    NDC = 8
    CD = 9
    D = 10
    CN = 11
    DN = 12
    NC = 13
    ND = 14


class OriginType(IntEnum):
    """`Origin` in the OVF: where the VM came from."""

    OVIRT = 0
    VMWARE = 1
    XEN = 2
    EXTERNAL = 4
    HOSTED_ENGINE = 5
    MANAGED_HOSTED_ENGINE = 6
    KVM = 7
    PHYSICAL_MACHINE = 8
    HYPERV = 9
    KUBEVIRT = 10


class UsbPolicy(StrEnum):
    DISABLED = "disabled"
    ENABLED_NATIVE = "enabled_native"


class NicInterface(IntEnum):
    """`rasd:ResourceSubType` of a NIC item in the OVF."""

    RTL8139_VIRTIO = 0
    RTL8139 = 1
    E1000 = 2
    VIRTIO = 3
    SPAPR_VLAN = 4
    PCI_PASSTHROUGH = 5
    E1000E = 7


class SnapshotType(StrEnum):
    """`Type` of a snapshot in the OVF is the upper-case name."""

    ACTIVE = "active"
    REGULAR = "regular"
    STATELESS = "stateless"
    PREVIEW = "preview"
    NEXT_RUN = "next_run"


class SnapshotStatus(StrEnum):
    OK = "ok"
    LOCKED = "locked"
    IN_PREVIEW = "in_preview"


class EntityType(StrEnum):
    """What an OVF describes."""

    VM = "vm"
    TEMPLATE = "template"


class OvfStoreStatus(StrEnum):
    """State of one OVF store disk as the engine tracks it."""

    UPDATED = "updated"
    OUTDATED = "outdated"
    DISABLED = "disabled"

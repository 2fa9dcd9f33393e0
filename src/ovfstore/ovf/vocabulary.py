"""The oVirt OVF dialect's names and value encodings, shared by the writer and the reader.

Where the model's enums differ from what oVirt writes (docs/FORMATS.md section 4 and oVirt's `OvfWriter`), the
translation lives here and nowhere else: the model keeps its own codes, the document keeps oVirt's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ovfstore.model import (
    BiosType,
    DiskInterface,
    DisplayType,
    GraphicsType,
    NicInterface,
    OriginType,
    UsbPolicy,
    VolumeFormat,
    VolumeType,
)

OVF_URI = "http://schemas.dmtf.org/ovf/envelope/1/"
# Engines before 4.2 (and some other tools) spell the envelope namespace without the trailing slash.
OVF_URI_OLD = "http://schemas.dmtf.org/ovf/envelope/1"
RASD_URI = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD_URI = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
XSI_URI = "http://www.w3.org/2001/XMLSchema-instance"

# rasd:ResourceType of the hardware items oVirt writes. oVirt keeps 20 and 26 for video and graphics
# where DMTF says 32768 and 24; readers accept both.
RT_OTHER = "0"
RT_CPU = "3"
RT_MEMORY = "4"
RT_NIC = "10"
RT_CDROM = "15"
RT_DISK = "17"
RT_VIDEO = "20"
RT_VIDEO_DMTF = "32768"
RT_USB = "23"
RT_GRAPHICS = "26"
RT_GRAPHICS_DMTF = "24"

TEMPLATE_TYPE = "TEMPLATE"  # oVirt's VmEntityType name for a template

# The elements of Content the reader uses; the others (oVirt writes many more) are skipped unread.
GENERAL_ELEMENTS = frozenset(
    (
        "AutoStartup",
        "BaseTemplateId",
        "BaseTemplateName",
        "BiosType",
        "ClusterCompatibilityVersion",
        "ClusterName",
        "Comment",
        "CreationDate",
        "CustomCpuName",
        "CustomEmulatedMachine",
        "DefaultDisplayType",
        "DeleteProtected",
        "Description",
        "ExportDate",
        "Generation",
        "IsBootMenuEnabled",
        "IsDisabled",
        "IsInitialized",
        "IsInitilized",  # sic: oVirt's own spelling, written by every engine
        "IsSmartcardEnabled",
        "IsStateless",
        "LeaseDomainId",
        "MaxMemorySizeMb",
        "MinAllocatedMem",
        "Name",
        "Origin",
        "Priority",
        "TemplateId",
        "TemplateName",
        "TemplateSealed",
        "TemplateType",
        "TemplateVersionName",
        "TemplateVersionNumber",
        "TimeZone",
        "UseLatestVersion",
        "VmType",
        "default_boot_sequence",
        "default_display_type",
    )
)

DISK_INTERFACE_TEXT = {
    DiskInterface.IDE: "IDE",
    DiskInterface.VIRTIO_SCSI: "VirtIO_SCSI",
    DiskInterface.VIRTIO: "VirtIO",
    DiskInterface.SPAPR_VSCSI: "SPAPR_VSCSI",
    DiskInterface.SATA: "SATA",
}
DISK_INTERFACE_BY_TEXT = {text.lower(): iface for iface, text in DISK_INTERFACE_TEXT.items()}

VOLUME_FORMAT_TEXT = {VolumeFormat.RAW: "RAW", VolumeFormat.COW: "COW"}
VOLUME_FORMAT_BY_TEXT = {text.lower(): fmt for fmt, text in VOLUME_FORMAT_TEXT.items()}
# ovf:format, a URI naming the image format, kept for readers of the DMTF standard.
VOLUME_FORMAT_URI = {
    VolumeFormat.RAW: "http://www.vmware.com/specifications/vmdk.html#sparse",
    VolumeFormat.COW: "http://www.gnome.org/~markmc/qcow-image-format.html",
}
VOLUME_TYPE_TEXT = {VolumeType.PREALLOCATED: "Preallocated", VolumeType.SPARSE: "Sparse"}
VOLUME_TYPE_BY_TEXT = {text.lower(): vtype for vtype, text in VOLUME_TYPE_TEXT.items()}

USB_POLICY_TEXT = {UsbPolicy.DISABLED: "DISABLED", UsbPolicy.ENABLED_NATIVE: "ENABLED_NATIVE"}
# Engines before 3.1 and 4.1 wrote other spellings; oVirt still reads them.
USB_POLICY_BY_TEXT = {
    "disabled": UsbPolicy.DISABLED,
    "enabled_native": UsbPolicy.ENABLED_NATIVE,
    "enabled": UsbPolicy.ENABLED_NATIVE,
    "enabledlegacy": UsbPolicy.ENABLED_NATIVE,
}

# oVirt numbers DefaultDisplayType by the ordinal of its enum (cirrus, qxl, vga, bochs, none); the
# model's codes differ, and its VNC is oVirt's old name for cirrus, so both are written as 0.
DISPLAY_TYPE_CODE = {
    DisplayType.VNC: 0,
    DisplayType.CIRRUS: 0,
    DisplayType.QXL: 1,
    DisplayType.VGA: 2,
    DisplayType.BOCHS: 3,
    DisplayType.NONE: 4,
}
DISPLAY_TYPE_BY_CODE = {
    0: DisplayType.CIRRUS,
    1: DisplayType.QXL,
    2: DisplayType.VGA,
    3: DisplayType.BOCHS,
    4: DisplayType.NONE,
}
# The libvirt video model of each display type: the `Device` of the video item.
VIDEO_DEVICE = {
    DisplayType.VNC: "cirrus",
    DisplayType.CIRRUS: "cirrus",
    DisplayType.QXL: "qxl",
    DisplayType.VGA: "vga",
    DisplayType.BOCHS: "bochs",
}
DISPLAY_TYPE_BY_VIDEO_DEVICE = {
    device: DISPLAY_TYPE_BY_CODE[DISPLAY_TYPE_CODE[display]] for display, device in VIDEO_DEVICE.items()
}

GRAPHICS_BY_DEVICE = {g.value: g for g in GraphicsType}

# oVirt's e1000e is 6 in rasd:ResourceSubType; every other model code is oVirt's.
NIC_INTERFACE_CODE = {nic: int(nic) for nic in NicInterface}
NIC_INTERFACE_CODE[NicInterface.E1000E] = 6
NIC_INTERFACE_BY_CODE = {code: nic for nic, code in NIC_INTERFACE_CODE.items()}
# Old documents name the type instead of numbering it (oVirt's VmInterfaceType internal names).
NIC_INTERFACE_BY_NAME = {
    "rtl8139_pv": NicInterface.RTL8139_VIRTIO,
    "rtl8139": NicInterface.RTL8139,
    "e1000": NicInterface.E1000,
    "pv": NicInterface.VIRTIO,
    "virtio": NicInterface.VIRTIO,
    "spapr-vlan": NicInterface.SPAPR_VLAN,
    "pci-passthrough": NicInterface.PCI_PASSTHROUGH,
    "pci-passthorugh": NicInterface.PCI_PASSTHROUGH,  # sic: oVirt's own spelling
    "e1000e": NicInterface.E1000E,
}
# rasd:speed, Mbps, as oVirt derives it from the type for readers older than 2.3.
NIC_SPEED = {
    NicInterface.RTL8139_VIRTIO: 1000,
    NicInterface.RTL8139: 100,
    NicInterface.E1000: 1000,
    NicInterface.VIRTIO: 10000,
    NicInterface.SPAPR_VLAN: 1000,
    NicInterface.PCI_PASSTHROUGH: 1000,
    NicInterface.E1000E: 1000,
}

# The document's Origin 3 is oVirt's OVIRT; the model calls it OVIRT with code 0 (oVirt's RHEV), so 3
# is read as OVIRT too and every model value is written as its own code.
ORIGIN_BY_CODE = {int(o): o for o in OriginType}
ORIGIN_BY_CODE[3] = OriginType.OVIRT


def bios_type_code(bios: BiosType) -> int:
    """oVirt writes its BiosType value minus one, for 4.3 readers that had no cluster default (-1)."""
    return int(bios) - 1


BIOS_TYPE_BY_CODE = {bios_type_code(b): b for b in BiosType}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_date(value: datetime) -> str:
    """`yyyy/MM/dd HH:mm:ss` in UTC, as oVirt writes every OVF date."""
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(UTC)
    return f"{value.year:04d}/{value.month:02d}/{value.day:02d} {value.hour:02d}:{value.minute:02d}:{value.second:02d}"


def parse_date(text: str) -> datetime | None:
    """The inverse of `format_date`, also taking oVirt's fallback `yyyy.MM.dd HH:mm:ss`; None if neither."""
    if len(text) != 19 or text[4] not in "/." or text[7] != text[4] or text[10] != " ":
        return None
    try:
        return datetime(
            int(text[0:4]),
            int(text[5:7]),
            int(text[8:10]),
            int(text[11:13]),
            int(text[14:16]),
            int(text[17:19]),
            tzinfo=UTC,
        )
    except ValueError:
        return None

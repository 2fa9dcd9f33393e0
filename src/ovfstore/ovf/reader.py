"""Read an OVF document into the model, leniently, with a warning for everything assumed.

Real documents differ by writer and version (oVirt engines since 3.x, virt-v2v, other tools): the reader
accepts both envelope namespace spellings, `InstanceId` and `InstanceID`, `Section xsi:type=...` and the
plain DMTF section elements, any capitalisation of booleans, and missing optional elements. What it
cannot do without (the entity id) is an `OvfError`; what it fills in is listed in the warnings.

A disk's volumes are described three times (References `File`, DiskSection `Disk`, hardware `Item`);
the reader joins them by volume id and takes each volume's disk from the first that names it, warning
when a later one disagrees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar
from uuid import NAMESPACE_OID, UUID, uuid5

from lxml import etree

from ovfstore.model import (
    BLANK_TEMPLATE_ID,
    GIB,
    NULL_UUID,
    BiosType,
    BootSequence,
    Disk,
    DiskAttachment,
    DiskInterface,
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
    SnapshotType,
    Template,
    UsbPolicy,
    Vm,
    VmType,
    Volume,
    VolumeFormat,
    VolumeType,
)
from ovfstore.ovf.errors import OvfError
from ovfstore.ovf.parse import local_name, ovf_namespace, parse, section_kind
from ovfstore.ovf.tree import Node, flatten
from ovfstore.ovf.vocabulary import (
    BIOS_TYPE_BY_CODE,
    DISK_INTERFACE_BY_TEXT,
    DISPLAY_TYPE_BY_CODE,
    DISPLAY_TYPE_BY_VIDEO_DEVICE,
    EPOCH,
    GENERAL_ELEMENTS,
    GRAPHICS_BY_DEVICE,
    NIC_INTERFACE_BY_CODE,
    NIC_INTERFACE_BY_NAME,
    ORIGIN_BY_CODE,
    RASD_URI,
    RT_CPU,
    RT_DISK,
    RT_GRAPHICS,
    RT_GRAPHICS_DMTF,
    RT_MEMORY,
    RT_NIC,
    RT_USB,
    RT_VIDEO,
    RT_VIDEO_DMTF,
    USB_POLICY_BY_TEXT,
    VOLUME_FORMAT_BY_TEXT,
    VOLUME_TYPE_BY_TEXT,
    XSI_URI,
    parse_date,
)

read_canonical: Callable[[etree._Element, str], tuple[OvfData, str] | None] | None
try:
    from ovfstore.ovf._fastread import LXML_VERSION, read_canonical
except ImportError:  # built without Cython or a C compiler: every document takes `_Reader`
    read_canonical = None
else:
    if etree.__version__ != LXML_VERSION:  # built against another lxml (see ovfstore.ovf.tree)
        read_canonical = None


@dataclass(slots=True)
class OvfReadResult:
    data: OvfData
    #: What the reader assumed or could not use, one sentence each, for the operator.
    warnings: list[str] = field(default_factory=list)
    #: `ovf:version` of the envelope: the writing engine's version, or the tool's ("0.9" for virt-v2v).
    version: str = ""


def read_ovf(document: bytes) -> OvfReadResult:
    """The entity `document` describes; `OvfError` when it is not a readable OVF."""
    root = parse(document)
    ovf_ns = ovf_namespace(root)
    if read_canonical is not None:
        # What ovfstore and oVirt 4.x write, read in compiled code; None for anything else.
        canonical = read_canonical(root, ovf_ns)
        if canonical is not None:
            return OvfReadResult(data=canonical[0], warnings=[], version=canonical[1])
    return _Reader(ovf_ns).read(flatten(root))


def _rasd(name: str) -> str:
    return f"{{{RASD_URI}}}{name}"


R_CAPTION = _rasd("Caption")
R_RESOURCE_TYPE = _rasd("ResourceType")
R_INSTANCE_ID = _rasd("InstanceId")
R_INSTANCE_ID_DMTF = _rasd("InstanceID")
R_SOCKETS = _rasd("num_of_sockets")
R_CORES = _rasd("cpu_per_socket")
R_THREADS = _rasd("threads_per_cpu")
R_QUANTITY = _rasd("VirtualQuantity")
R_HOST_RESOURCE = _rasd("HostResource")
R_PARENT = _rasd("Parent")
R_STORAGE_ID = _rasd("StorageId")
R_POOL_ID = _rasd("StoragePoolId")
R_CREATION_DATE = _rasd("CreationDate")
R_NAME = _rasd("Name")
R_MAC = _rasd("MACAddress")
R_CONNECTION = _rasd("Connection")
R_PROFILE = _rasd("OtherResourceType")
R_SUBTYPE = _rasd("ResourceSubType")
R_LINKED = _rasd("Linked")
R_USB_POLICY = _rasd("UsbPolicy")

_NULL = str(NULL_UUID)
# oVirt writes a LUN connection's storage type and portal in the XML Schema instance namespace.
_XSI_STORAGE_TYPE = f"{{{XSI_URI}}}storage_type"
_XSI_PORTAL = f"{{{XSI_URI}}}portal"
_T = TypeVar("_T")
_BOOT = {int(b): b for b in BootSequence}
_BOOLS: dict[str | None, bool] = {"true": True, "false": False, "True": True, "False": False}
_VM_TYPE = {int(t): t for t in VmType}


class _Attrs:
    """`ovf:` attribute names qualified with one spelling of the envelope namespace."""

    def __init__(self, ns: str) -> None:
        q = f"{{{ns}}}"
        self.id, self.href, self.size, self.name = q + "id", q + "href", q + "size", q + "name"
        self.version, self.storage_type = q + "version", q + "disk_storage_type"
        self.disk_id, self.file_ref, self.parent_ref = q + "diskId", q + "fileRef", q + "parentRef"
        self.actual_size, self.capacity, self.snapshot = (
            q + "actual_size",
            q + "capacity",
            q + "vm_snapshot_id",
        )
        self.volume_format, self.volume_type = q + "volume-format", q + "volume-type"
        self.interface, self.boot, self.read_only = q + "disk-interface", q + "boot", q + "read-only"
        self.shareable, self.pass_discard, self.plugged = q + "shareable", q + "pass-discard", q + "plugged"
        self.alias, self.description = q + "disk-alias", q + "disk-description"
        self.wipe, self.lun_id = q + "wipe-after-delete", q + "lun_id"
        self.device_size, self.capacity_units = q + "device_size", q + "capacityAllocationUnits"
        self.lun_vendor, self.lun_product, self.lun_serial = q + "lun_vendor_id", q + "lun_product_id", q + "lun_serial"
        self.connection, self.port, self.iqn = q + "connection", q + "port", q + "iqn"


_ATTRS: dict[str, _Attrs] = {}


def _attrs(ns: str) -> _Attrs:
    attrs = _ATTRS.get(ns)
    if attrs is None:
        attrs = _ATTRS[ns] = _Attrs(ns)
    return attrs


@dataclass(slots=True)
class _Vol:
    """What the three descriptions of one volume say, joined by volume id."""

    id: UUID
    disk_id: UUID
    file: Mapping[str, str] | None = None  # the attributes of each
    disk: Mapping[str, str] | None = None
    item: dict[str, str | None] | None = None  # child tag to text
    storage_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _HardwareItems:
    """The hardware section's items that describe the entity as a whole, by resource type."""

    cpu: dict[str, str | None] | None = None
    memory: dict[str, str | None] | None = None
    usb: dict[str, str | None] | None = None
    nics: list[dict[str, str | None]] = field(default_factory=list)
    graphics: list[GraphicsType] = field(default_factory=list)
    sound: bool = False


class _Reader:
    def __init__(self, ovf_ns: str) -> None:
        self.a = _attrs(ovf_ns)
        self.version = ""
        self.warnings: list[str] = []
        self.video: str | None = None  # the video item's Device, once seen
        self.uuids: dict[str, UUID] = {}
        self.disk_order: dict[UUID, None] = {}  # disk ids in the order the document names them

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    # Small typed readers: each returns the default, with a warning saying so, on a bad value.

    def uuid(self, text: str, what: str) -> UUID | None:
        # A volume id appears up to six times in a document; parsing each once is a fifth of reading.
        value = self.uuids.get(text)
        if value is None:
            try:
                value = self.uuids[text] = UUID(text)
            except ValueError:
                self.warn(f"{what} {text!r} is not a UUID: ignored")
        return value

    def int_(self, text: str | None, what: str, default: int, *, missing_warns: bool = False) -> int:
        if not text:
            if missing_warns:
                self.warn(f"no {what}: assumed {default}")
            return default
        try:
            return int(text)
        except ValueError:
            self.warn(f"{what} {text!r} is not a number: assumed {default}")
            return default

    def bool_(self, text: str | None, what: str, default: bool) -> bool:
        value = _BOOLS.get(text)
        if value is not None:
            return value
        if not text:
            return default
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        self.warn(f"{what} {text!r} is not true or false: assumed {str(default).lower()}")
        return default

    def date(self, text: str | None, what: str, default: datetime) -> datetime:
        if text:
            value = parse_date(text)
            if value is not None:
                return value
            self.warn(f"{what} {text!r} is not a yyyy/MM/dd HH:mm:ss date: ignored")
        return default

    def read(self, envelope: Node) -> OvfReadResult:
        self.version = envelope[2].get(self.a.version, "")
        references = disk_section = content = None
        for child in envelope[3]:
            kind = section_kind(child)
            if kind == "References":
                references = child
            elif kind == "DiskSection":
                disk_section = child
            elif kind in ("Content", "VirtualSystem"):
                content = child
            # The NetworkSection is not read: each NIC item names its network again.
        if content is None:
            raise OvfError("no Content (VirtualSystem) element: the document describes no VM or template")
        general: dict[str, str] = {}
        sections: dict[str, Node] = {}
        dmtf: dict[str, Node] = {}  # the DMTF section forms, plain or ovf-qualified: the last of each tag
        for child in content[3]:
            tag = child[0]
            if tag in GENERAL_ELEMENTS:
                general[tag] = child[1] or ""
            elif tag == "Section":
                sections.setdefault(section_kind(child), child)
            elif tag.endswith("Section"):
                dmtf[tag] = child
        for tag, child in dmtf.items():  # `Section xsi:type=...` wins over a plain form of the same kind
            sections.setdefault(local_name(tag), child)
        entity_id, os_type = self.os_section(sections.get("OperatingSystemSection"))
        entity = self.entity(general, entity_id, os_type)
        data = OvfData(entity=entity)
        hardware = sections.get("VirtualHardwareSection")
        if hardware is None:
            self.warn("no VirtualHardwareSection: CPU, memory, disks and NICs all assumed")
        else:
            self.hardware(data, hardware, references, disk_section)
        self.general(data, general)
        if "SnapshotsSection" in sections:
            data.snapshots = self.snapshots(sections["SnapshotsSection"], entity)
        if "UserDomainsSection" in sections:
            data.permissions = self.permissions(sections["UserDomainsSection"], entity.id)
        for kind, names in (
            ("AffinityGroupsSection", data.affinity_groups),
            ("AffinityLabelsSection", data.affinity_labels),
        ):
            if kind in sections:
                names += [child[2].get(self.a.name, "") for child in sections[kind][3]]
        return OvfReadResult(data=data, warnings=self.warnings, version=self.version)

    def os_section(self, section: Node | None) -> tuple[UUID, str]:
        if section is None:
            raise OvfError("no OperatingSystemSection: the document does not say which VM or template it is")
        attrib = section[2]
        raw = attrib.get(self.a.id) or attrib.get("id")
        if not raw:
            raise OvfError("the OperatingSystemSection has no ovf:id: the document does not name its entity")
        try:
            entity_id = UUID(raw)
        except ValueError:
            raise OvfError(f"the OperatingSystemSection ovf:id {raw!r} is not a UUID") from None
        os_type = None
        for tag, text, _, _ in section[3]:
            if local_name(tag) == "Description":
                os_type = text or ""
        if os_type is None:
            self.warn("no operating system Description: assumed 'other'")
            os_type = "other"
        return entity_id, os_type

    def entity(self, g: dict[str, str], entity_id: UUID, os_type: str) -> Vm | Template:
        template_id = g.get("TemplateId", "")
        is_template = "TemplateType" in g or template_id == str(entity_id)
        name = g.get("Name")
        if name is None:
            self.warn("no Name: assumed ''")
        creation = g.get("CreationDate")
        if creation is None:
            self.warn("no CreationDate: assumed 1970/01/01 00:00:00")
        created = self.date(creation, "CreationDate", EPOCH)
        if is_template:
            base = self.uuid(g["BaseTemplateId"], "BaseTemplateId") if g.get("BaseTemplateId") else None
            return Template(
                id=entity_id,
                name=name or "",
                os_type=os_type,
                creation_date=created,
                base_template_id=None if base == entity_id else base,
                version_number=self.int_(g.get("TemplateVersionNumber"), "TemplateVersionNumber", 1),
                version_name=g.get("TemplateVersionName", ""),
                disabled=self.bool_(g.get("IsDisabled"), "IsDisabled", False),
                sealed=self.bool_(g.get("TemplateSealed"), "TemplateSealed", False),
            )
        template = self.uuid(template_id, "TemplateId") if template_id else None
        if template is None:
            self.warn("no TemplateId: assumed the Blank template")
        initialized = g.get("IsInitilized", g.get("IsInitialized"))
        return Vm(
            id=entity_id,
            name=name or "",
            os_type=os_type,
            creation_date=created,
            template_id=template or BLANK_TEMPLATE_ID,
            use_latest_template_version=self.bool_(g.get("UseLatestVersion"), "UseLatestVersion", False),
            initialized=self.bool_(initialized, "IsInitilized", False),
        )

    def lookup(self, table: Mapping[int, _T], text: str | None, what: str, default: _T) -> _T:
        if not text:
            return default
        try:
            return table[int(text)]
        except (ValueError, KeyError):
            self.warn(f"{what} {text!r} is unknown: assumed {default}")
            return default

    def general(self, data: OvfData, g: dict[str, str]) -> None:
        e = data.entity
        e.description = g.get("Description", "")
        e.comment = g.get("Comment", "")
        e.time_zone = g.get("TimeZone", "")
        e.custom_emulated_machine = g.get("CustomEmulatedMachine", "")
        e.custom_cpu_name = g.get("CustomCpuName", "")
        e.delete_protected = self.bool_(g.get("DeleteProtected"), "DeleteProtected", False)
        e.smartcard_enabled = self.bool_(g.get("IsSmartcardEnabled"), "IsSmartcardEnabled", False)
        e.stateless = self.bool_(g.get("IsStateless"), "IsStateless", False)
        e.high_availability = self.bool_(g.get("AutoStartup"), "AutoStartup", False)
        e.boot_menu_enabled = self.bool_(g.get("IsBootMenuEnabled"), "IsBootMenuEnabled", False)
        e.db_generation = self.int_(g.get("Generation"), "Generation", 1, missing_warns=True)
        e.min_memory_mb = self.int_(g.get("MinAllocatedMem"), "MinAllocatedMem", e.memory_mb)
        e.max_memory_mb = self.int_(g.get("MaxMemorySizeMb"), "MaxMemorySizeMb", 4 * e.memory_mb)
        e.priority = self.int_(g.get("Priority"), "Priority", e.priority)
        e.boot_sequence = self.lookup(_BOOT, g.get("default_boot_sequence"), "default_boot_sequence", e.boot_sequence)
        e.vm_type = self.lookup(_VM_TYPE, g.get("VmType"), "VmType", e.vm_type)
        e.origin = self.lookup(ORIGIN_BY_CODE, g.get("Origin"), "Origin", OriginType.OVIRT)
        bios = g.get("BiosType")
        if bios is None:
            self.warn("no BiosType: assumed I440FX_SEA_BIOS, as oVirt does")
        e.bios_type = self.lookup(BIOS_TYPE_BY_CODE, bios, "BiosType", BiosType.I440FX_SEA_BIOS)
        display = g.get("DefaultDisplayType", g.get("default_display_type"))
        if display:
            e.display_type = self.lookup(DISPLAY_TYPE_BY_CODE, display, "DefaultDisplayType", e.display_type)
        elif self.video is None:
            self.warn(f"no DefaultDisplayType and no video device: assumed {e.display_type.name}")
        if g.get("LeaseDomainId"):
            e.lease_domain_id = self.uuid(g["LeaseDomainId"], "LeaseDomainId")
        if "ClusterName" not in g:
            self.warn("no ClusterName: the cluster must be chosen when registering")
        data.cluster_name = g.get("ClusterName", "")
        data.cluster_compatibility_version = g.get("ClusterCompatibilityVersion", "")
        if g.get("ExportDate"):
            data.export_date = self.date(g["ExportDate"], "ExportDate", e.creation_date)
        if isinstance(e, Vm):
            name = g.get("TemplateName")
            if name is None:
                name = "Blank" if e.template_id == BLANK_TEMPLATE_ID else ""
                self.warn(f"no TemplateName: assumed {name!r}")
            data.template_name = name
        else:
            data.template_name = ""
            data.base_template_name = g.get("BaseTemplateName", "")

    def hardware(
        self,
        data: OvfData,
        section: Node,
        references: Node | None,
        disk_section: Node | None,
    ) -> None:
        e = data.entity
        vols, luns = self.volume_descriptions(references, disk_section)
        items = self.hardware_items(section, vols)
        self.processor_and_memory(e, items)
        self.devices(e, items)
        data.disks = self.disks(data, vols, luns)
        data.nics = [self.nic(e.id, f, index, isinstance(e, Vm)) for index, f in enumerate(items.nics, 1)]
        self.data_center(data, vols)

    def hardware_items(self, section: Node, vols: dict[UUID, _Vol]) -> _HardwareItems:
        """Sort the section's `Item`s by resource type; disk items join their volumes at once."""
        items = _HardwareItems()
        for item in section[3]:
            if item[0] != "Item":
                continue
            f = {tag: text for tag, text, _, _ in item[3]}
            kind = f.get(R_RESOURCE_TYPE)
            if kind == RT_DISK:
                self.disk_item(vols, item, f)
            elif kind == RT_NIC:
                items.nics.append(f)
            elif kind == RT_CPU:
                items.cpu = f
            elif kind == RT_MEMORY:
                items.memory = f
            elif kind == RT_USB:
                items.usb = f
            elif kind in (RT_VIDEO, RT_VIDEO_DMTF):
                self.video = f.get("Device") or ""
            elif kind in (RT_GRAPHICS, RT_GRAPHICS_DMTF):
                device = (f.get("Device") or "").lower()
                if device in GRAPHICS_BY_DEVICE:
                    items.graphics.append(GRAPHICS_BY_DEVICE[device])
                else:
                    self.warn(f"graphics device {device!r} is unknown: ignored")
            elif f.get("Type") == "sound":
                items.sound = True
        return items

    def processor_and_memory(self, e: Vm | Template, items: _HardwareItems) -> None:
        cpu, memory = items.cpu, items.memory
        if cpu is None:
            self.warn("no CPU item: assumed 1 socket of 1 core")
        else:
            sockets = cpu.get(R_SOCKETS) or cpu.get(R_QUANTITY)
            e.cpu_sockets = self.int_(sockets, "CPU sockets", 1, missing_warns=True)
            e.cpu_cores = self.int_(cpu.get(R_CORES), "CPU cores per socket", 1)
            e.cpu_threads = self.int_(cpu.get(R_THREADS), "CPU threads per core", 1)
        if memory is None:
            self.warn(f"no memory item: assumed {e.memory_mb} MB")
        else:
            e.memory_mb = self.int_(memory.get(R_QUANTITY), "memory size", e.memory_mb, missing_warns=True)

    def devices(self, e: Vm | Template, items: _HardwareItems) -> None:
        """USB policy, display, graphics and sound card."""
        usb = items.usb
        if usb is not None and usb.get(R_USB_POLICY):
            policy = (usb.get(R_USB_POLICY) or "").lower()
            e.usb_policy = USB_POLICY_BY_TEXT.get(policy, UsbPolicy.DISABLED)
        if self.video is not None:
            e.display_type = DISPLAY_TYPE_BY_VIDEO_DEVICE.get(self.video.lower(), e.display_type)
        else:
            e.display_type = DisplayType.NONE
        graphics = items.graphics
        if not graphics and self.video and _major(self.version) < 4:
            # Engines before 4.0 and other tools write no graphics devices; oVirt derives one.
            graphics = [GraphicsType.SPICE if self.video == "qxl" else GraphicsType.VNC]
            self.warn(f"no graphics device: assumed {graphics[0].name} from the video device")
        e.graphics = graphics
        e.soundcard_enabled = items.sound

    def data_center(self, data: OvfData, vols: dict[UUID, _Vol]) -> None:
        """The data center the disks name (`StoragePoolId`), if any."""
        pools = {v.item.get(R_POOL_ID) for v in vols.values() if v.item is not None} - {None, "", _NULL}
        if pools:
            data.data_center_id = self.uuid(min(p for p in pools if p), "StoragePoolId")
            if len(pools) > 1:
                self.warn(f"disks name {len(pools)} data centers (StoragePoolId): took {data.data_center_id}")

    def split_ref(self, ref: str | None, what: str) -> tuple[UUID, UUID] | None:
        """`<diskId>/<volumeId>` of an href, fileRef or HostResource."""
        if not ref:
            return None
        disk, _, volume = ref.partition("/")
        disk_id = self.uuid(disk, what)
        volume_id = self.uuid(volume, what) if volume else None
        if disk_id is None or volume_id is None:
            return None
        return disk_id, volume_id

    def place(self, vols: dict[UUID, _Vol], ref: tuple[UUID, UUID] | None, what: str) -> _Vol | None:
        """The volume `ref` names, created on first sight, with a warning when its disk changes."""
        if ref is None:
            return None
        disk_id, volume_id = ref
        vol = vols.get(volume_id)
        if vol is None:
            vol = vols[volume_id] = _Vol(id=volume_id, disk_id=disk_id)
            self.disk_order.setdefault(disk_id)
        elif vol.disk_id != disk_id:
            self.warn(f"{what} puts volume {volume_id} in disk {disk_id}, not {vol.disk_id}: kept {vol.disk_id}")
        return vol

    def volume_descriptions(
        self, references: Node | None, disk_section: Node | None
    ) -> tuple[dict[UUID, _Vol], dict[UUID, Node | None]]:
        """Volumes by id (in document order) from References and the DiskSection; LUN disks by disk id.

        Volumes keep the attributes of their `File` and `Disk` elements; LUN disks their `Disk` element.
        A `File` or `fileRef` naming the volume alone (virt-v2v's oVirt flavour, oVirt's OVAs) leaves the
        disk to the `Disk`'s `ovf:diskId`: that is an image disk, not a LUN. A LUN's `Disk` says so with
        `ovf:lun_id`, with a `File` of `disk_storage_type` LUN, or by naming itself in `ovf:fileRef`.
        """
        a = self.a
        vols: dict[UUID, _Vol] = {}
        luns: dict[UUID, Node | None] = {}
        lun_files: set[str] = set()
        bare_files: dict[str, Mapping[str, str]] = {}  # Files naming a volume alone, by that volume id
        for tag, _, file, _ in references[3] if references is not None else ():
            if tag != "File":
                continue
            href = file.get(a.href, "")
            if file.get(a.storage_type) == "LUN":
                lun_files.add(href.partition("/")[0] or file.get(a.id, ""))
                lun = self.uuid(href.partition("/")[0] or file.get(a.id, ""), "LUN disk id")
                if lun is not None:
                    luns[lun] = None
                    self.disk_order.setdefault(lun)
                continue
            if href and "/" not in href:
                bare_files[href] = file
                continue
            vol = self.place(vols, self.split_ref(href, "File href"), "File href")
            if vol is not None:
                vol.file = file
        for node in disk_section[3] if disk_section is not None else ():
            tag, _, disk, _ = node
            if tag != "Disk":
                continue
            ref = disk.get(a.file_ref, "")
            named = disk.get(a.disk_id, "")
            if disk.get(a.lun_id) is not None or ref in lun_files or (ref and "/" not in ref and ref == named):
                lun = self.uuid(named or ref, "LUN disk id")
                if lun is not None:
                    luns[lun] = node
                    self.disk_order.setdefault(lun)
                continue
            if ref and "/" not in ref:
                # The volume alone in fileRef, its disk in diskId.
                disk_id, volume_id = self.uuid(named, "Disk diskId"), self.uuid(ref, "Disk fileRef")
                vol = self.place(vols, (disk_id, volume_id) if disk_id and volume_id else None, "Disk diskId")
                if vol is not None:
                    vol.file = vol.file or bare_files.get(ref)
            else:
                vol = self.place(vols, self.split_ref(ref, "Disk fileRef"), "Disk fileRef")
            if vol is None:
                volume_id = self.uuid(named, "Disk diskId")
                vol = vols.get(volume_id) if volume_id is not None else None
            if vol is None:
                self.warn(f"Disk {disk.get(a.disk_id)!r} names no volume of a known disk: ignored")
                continue
            vol.disk = disk
        return vols, luns

    def disk_item(self, vols: dict[UUID, _Vol], item: Node, f: dict[str, str | None]) -> None:
        ref = self.split_ref(f.get(R_HOST_RESOURCE), "disk HostResource")
        if ref is None:
            instance = f.get(R_INSTANCE_ID) or f.get(R_INSTANCE_ID_DMTF) or ""
            volume_id = self.uuid(instance, "disk InstanceId")
            known = vols.get(volume_id) if volume_id is not None else None
            ref = (known.disk_id, known.id) if known is not None else None
        vol = self.place(vols, ref, "disk item")
        if vol is None:
            self.warn(f"disk item {f.get(R_CAPTION)!r} names no volume: ignored")
            return
        vol.item = f
        vol.storage_ids = [text for tag, text, _, _ in item[3] if tag == R_STORAGE_ID and text]

    def disks(self, data: OvfData, vols: dict[UUID, _Vol], luns: dict[UUID, Node | None]) -> list[OvfDisk]:
        by_disk: dict[UUID, list[_Vol]] = {}
        for vol in vols.values():
            by_disk.setdefault(vol.disk_id, []).append(vol)
        return [
            self.image_disk(data.entity, disk_id, by_disk[disk_id])
            if disk_id in by_disk
            else self.lun_disk(data.entity, disk_id, luns[disk_id])
            for disk_id in self.disk_order
        ]

    def disk_common(self, disk: Disk, entity_id: UUID, element: Mapping[str, str] | None) -> DiskAttachment:
        a = self.a
        attachment = DiskAttachment(entity_id=entity_id, disk_id=disk.id)
        if element is None:
            self.warn(f"disk {disk.id} has no DiskSection entry: alias, interface and flags assumed")
            attachment.interface = DiskInterface.IDE
            return attachment
        get = element.get
        disk.alias = get(a.alias, "")
        disk.description = get(a.description, "")
        disk.shareable = self.bool_(get(a.shareable), "ovf:shareable", False)
        disk.wipe_after_delete = self.bool_(get(a.wipe), "ovf:wipe-after-delete", False)
        interface = get(a.interface)
        if interface is None:
            self.warn(f"disk {disk.id} has no ovf:disk-interface: assumed IDE, as oVirt does")
            attachment.interface = DiskInterface.IDE
        else:
            found = DISK_INTERFACE_BY_TEXT.get(interface.lower())
            if found is None:
                self.warn(f"disk {disk.id} interface {interface!r} is unknown: assumed VIRTIO_SCSI")
            attachment.interface = found or DiskInterface.VIRTIO_SCSI
        attachment.bootable = self.bool_(get(a.boot), "ovf:boot", False)
        attachment.read_only = self.bool_(get(a.read_only), "ovf:read-only", False)
        attachment.pass_discard = self.bool_(get(a.pass_discard), "ovf:pass-discard", False)
        attachment.active = self.bool_(get(a.plugged), "ovf:plugged", True)
        return attachment

    def lun_disk(self, entity: Vm | Template, disk_id: UUID, node: Node | None) -> OvfDisk:
        disk = Disk(
            id=disk_id,
            alias="",
            provisioned_size=0,
            storage_type=DiskStorageType.LUN,
            creation_date=entity.creation_date,
        )
        element = node[2] if node is not None else None
        attachment = self.disk_common(disk, entity.id, element)
        if node is not None and element is not None:
            a = self.a
            disk.lun_id = element.get(a.lun_id) or None
            disk.provisioned_size = self.int_(element.get(a.capacity), "ovf:capacity", 0)
            if not disk.provisioned_size:
                # Engines around 4.1 wrote the LUN size in GiB.
                disk.provisioned_size = self.int_(element.get(a.device_size), "ovf:device_size", 0) * GIB
            disk.lun_vendor = element.get(a.lun_vendor, "")
            disk.lun_product = element.get(a.lun_product, "")
            disk.lun_serial = element.get(a.lun_serial, "")
            for tag, _, c, _ in node[3]:
                if local_name(tag) != "Connection":
                    continue
                disk.lun_connections.append(
                    LunConnection(
                        address=c.get(a.connection, ""),
                        port=c.get(a.port, ""),
                        target=c.get(a.iqn, ""),
                        portal=c.get(_XSI_PORTAL, ""),
                        storage_type=c.get(_XSI_STORAGE_TYPE) or "ISCSI",
                    )
                )
        if disk.lun_id is None:
            self.warn(f"direct LUN disk {disk_id} has no ovf:lun_id")
        return OvfDisk(disk=disk, attachment=attachment)

    def image_disk(self, entity: Vm | Template, disk_id: UUID, chain: list[_Vol]) -> OvfDisk:
        a = self.a
        disk = Disk(id=disk_id, alias="", provisioned_size=0)
        described = [v.disk for v in chain if v.disk is not None]
        # Every volume's entry repeats the disk's settings; the last (the leaf, as oVirt writes) wins.
        attachment = self.disk_common(disk, entity.id, described[-1] if described else None)
        for v in chain:
            disk.volumes.append(self.volume(entity, disk_id, v))
            if v.item is not None:
                attachment.active = self.bool_(v.item.get("IsPlugged"), "IsPlugged", attachment.active)
                if v.disk is None or v.disk.get(a.read_only) is None:
                    attachment.read_only = self.bool_(v.item.get("IsReadOnly"), "IsReadOnly", False)
                for domain in v.storage_ids:
                    domain_id = self.uuid(domain, "StorageId")
                    if domain_id is not None and domain_id not in disk.domain_ids:
                        disk.domain_ids.append(domain_id)
        if not disk.domain_ids:
            self.warn(f"disk {disk_id} names no storage domain (rasd:StorageId)")
        if not disk.alias:
            # Other tools name the drive only in the item's caption.
            disk.alias = next((v.item.get(R_CAPTION) or "" for v in chain if v.item is not None), "")
        volumes = disk.chain() or disk.volumes  # a broken chain: document order
        disk.provisioned_size = volumes[-1].capacity
        disk.creation_date = volumes[0].creation_date
        return OvfDisk(disk=disk, attachment=attachment)

    def volume(self, entity: Vm | Template, disk_id: UUID, v: _Vol) -> Volume:
        a = self.a
        volume = Volume(id=v.id, disk_id=disk_id, capacity=0, creation_date=entity.creation_date)
        element, item = v.disk, v.item
        if element is None:
            self.warn(f"volume {v.id} has no DiskSection entry: format, type and size assumed")
        else:
            fmt = element.get(a.volume_format, "")
            volume.format = VOLUME_FORMAT_BY_TEXT.get(fmt.lower(), VolumeFormat.RAW)
            if fmt.lower() not in VOLUME_FORMAT_BY_TEXT:
                self.warn(f"volume {v.id} format {fmt!r} is unknown: assumed RAW")
            vtype = element.get(a.volume_type, "")
            volume.volume_type = VOLUME_TYPE_BY_TEXT.get(vtype.lower(), VolumeType.SPARSE)
            if vtype.lower() not in VOLUME_TYPE_BY_TEXT:
                self.warn(f"volume {v.id} type {vtype!r} is unknown: assumed SPARSE")
            capacity = element.get(a.capacity)
            if capacity:
                # oVirt's OVAs give the capacity in GiB, with ovf:capacityAllocationUnits="byte * 2^30".
                unit = self.allocation_unit(element.get(a.capacity_units))
                volume.capacity = self.int_(capacity, "ovf:capacity", 0) * unit
            else:
                volume.capacity = self.int_(element.get(a.size), "ovf:size", 0, missing_warns=True) * GIB
            snapshot = element.get(a.snapshot)
            volume.snapshot_id = self.uuid(snapshot, "ovf:vm_snapshot_id") if snapshot else None
            parent = self.split_ref(element.get(a.parent_ref), "ovf:parentRef")
            volume.parent_id = parent[1] if parent else None
        if v.file is not None and v.file.get(a.size):
            volume.actual_size = self.int_(v.file.get(a.size), "File ovf:size", 0)
        elif element is not None:
            volume.actual_size = self.int_(element.get(a.actual_size), "ovf:actual_size", 0) * GIB
        if item is not None:
            parent_text = item.get(R_PARENT)
            if parent_text:
                volume.parent_id = None if parent_text == _NULL else self.uuid(parent_text, "rasd:Parent")
            volume.creation_date = self.date(item.get(R_CREATION_DATE), "rasd:CreationDate", volume.creation_date)
        return volume

    def allocation_unit(self, text: str | None) -> int:
        """The bytes of a DMTF programmatic unit such as `byte * 2^30` (DSP0004 annex C.1); 1 when absent."""
        if not text:
            return 1
        factors = [f.strip() for f in text.split("*")]
        unit = 1
        if factors[0] == "byte":
            for factor in factors[1:]:
                base, _, power = factor.partition("^")
                if not _is_number(base) or (power and not _is_number(power)) or len(power) > 2:
                    break
                unit *= int(base) ** int(power or 1)
            else:
                return unit
        self.warn(f"ovf:capacityAllocationUnits {text!r} is not understood: the capacity is read as bytes")
        return 1

    def nic(self, entity_id: UUID, f: dict[str, str | None], index: int, is_vm: bool) -> OvfNic:
        instance = f.get(R_INSTANCE_ID) or f.get(R_INSTANCE_ID_DMTF) or ""
        nic_id = None if _is_number(instance) else self.uuid(instance, "NIC InstanceId")
        if nic_id is None:
            # Engines before 3.1 numbered NICs; the id must still be stable for one document.
            nic_id = uuid5(NAMESPACE_OID, f"{entity_id}/nic{index}")
        if R_NAME in f:
            name = f[R_NAME] or ""
        else:
            name = f"nic{index}"
            self.warn(f"NIC {index} has no rasd:Name: assumed {name!r}")
        subtype = (f.get(R_SUBTYPE) or "").strip()
        interface = NIC_INTERFACE_BY_CODE.get(int(subtype)) if _is_number(subtype) else None
        if interface is None:  # not `or`: code 0 (rtl8139_pv) is falsy
            interface = NIC_INTERFACE_BY_NAME.get(subtype.lower())
        if interface is None:
            self.warn(f"NIC {name} interface {subtype!r} is unknown: assumed VIRTIO")
            interface = NicInterface.VIRTIO
        mac = f.get(R_MAC) or None
        if mac is None and is_vm:
            self.warn(f"NIC {name} has no MAC address: one will be taken from the pool")
        nic = Nic(
            id=nic_id,
            entity_id=entity_id,
            name=name,
            mac=mac,
            interface=interface,
            linked=self.bool_(f.get(R_LINKED), "rasd:Linked", True),
            plugged=self.bool_(f.get("IsPlugged"), "IsPlugged", True),
        )
        return OvfNic(nic=nic, network_name=f.get(R_CONNECTION) or None, profile_name=f.get(R_PROFILE) or None)

    def snapshots(self, section: Node, entity: Vm | Template) -> list[Snapshot]:
        snapshots = []
        for tag, _, attrib, children in section[3]:
            if local_name(tag) != "Snapshot":
                continue
            snapshot_id = self.uuid(attrib.get(self.a.id, ""), "Snapshot ovf:id")
            if snapshot_id is None:
                continue
            f = {local_name(c[0]): c[1] or "" for c in children}
            kind = f.get("Type", "")
            try:
                snapshot_type = SnapshotType(kind.lower())
            except ValueError:
                self.warn(f"snapshot {snapshot_id} type {kind!r} is unknown: assumed REGULAR")
                snapshot_type = SnapshotType.REGULAR
            snapshots.append(
                Snapshot(
                    id=snapshot_id,
                    vm_id=entity.id,
                    type=snapshot_type,
                    description=f.get("Description", ""),
                    creation_date=self.date(f.get("CreationDate"), "snapshot CreationDate", entity.creation_date),
                    memory=f.get("Memory", ""),
                )
            )
        return snapshots

    def permissions(self, section: Node, entity_id: UUID) -> list[Permission]:
        permissions = []
        for tag, _, _, children in section[3]:
            if local_name(tag) != "User":
                continue
            user_name = ""
            roles: list[str] = []
            for child_tag, text, _, grandchildren in children:
                name = local_name(child_tag)
                if name == "UserDomain":
                    user_name = text or ""
                elif name == "UserRoles":
                    roles += [role[1] or "" for role in grandchildren if local_name(role[0]) == "RoleName"]
            # Permission ids are the engine's own; a stable one keeps reading a pure function.
            permissions += [
                Permission(
                    id=uuid5(NAMESPACE_OID, f"{entity_id}/{user_name}/{role}"),
                    entity_id=entity_id,
                    user_name=user_name,
                    role_name=role,
                )
                for role in roles
            ]
        return permissions


def _major(version: str) -> int:
    major = version.partition(".")[0]
    return int(major) if _is_number(major) else 0


def _is_number(text: str) -> bool:
    """ASCII digits only: `str.isdigit` also takes characters such as "²" that `int` refuses."""
    return text.isascii() and text.isdigit()

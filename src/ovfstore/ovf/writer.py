"""Write a VM or template as an OVF document in oVirt's dialect.

The text is built directly rather than through an XML tree: a tree costs more than the whole budget
(thousands of documents per second on one core), and the dialect is fixed, so building it by hand with one
escaping rule for text and one for attributes is both fast and easy to check. The element and attribute
order follows oVirt's `OvfWriter` family; output is a pure function of the arguments (no clock, no
random ids), so the same entity at the same generation always gives the same bytes.

Beyond what oVirt writes, each disk carries `ovf:capacity` (its exact virtual size in bytes, as virt-v2v
writes it for oVirt), a direct LUN its vendor, product and serial (`ovf:lun_vendor_id`, `ovf:lun_product_id`,
`ovf:lun_serial`), a template version its `BaseTemplateName`, and a template its NICs' MAC addresses and
affinity names; oVirt's readers ignore what they do not know, and ours get exact round trips.
"""

from __future__ import annotations

import re
from datetime import datetime
from uuid import NAMESPACE_OID, uuid5

from ovfstore.model import (
    GIB,
    NULL_UUID,
    DiskStorageType,
    DisplayType,
    NicInterface,
    OvfData,
    OvfDisk,
    Vm,
    VmBase,
)
from ovfstore.ovf.errors import OvfError
from ovfstore.ovf.vocabulary import (
    DISK_INTERFACE_TEXT,
    DISPLAY_TYPE_CODE,
    NIC_INTERFACE_CODE,
    NIC_SPEED,
    OVF_URI,
    RASD_URI,
    RT_CPU,
    RT_DISK,
    RT_GRAPHICS,
    RT_MEMORY,
    RT_NIC,
    RT_OTHER,
    RT_USB,
    RT_VIDEO,
    TEMPLATE_TYPE,
    USB_POLICY_TEXT,
    VIDEO_DEVICE,
    VOLUME_FORMAT_TEXT,
    VOLUME_FORMAT_URI,
    VOLUME_TYPE_TEXT,
    VSSD_URI,
    XSI_URI,
    bios_type_code,
    format_date,
)

_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
# Attribute values also lose tabs and line breaks to whitespace normalisation unless written as references.
_ATTR = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#9;"}
)
# Characters XML 1.0 cannot carry at all, not even as references. A regular expression over the whole
# text costs a third of writing; mapping the control bytes to NUL and looking for one costs a twentieth.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CONTROLS_TO_NUL = bytes(b if b >= 0x20 or b in b"\t\n\r" else 0 for b in range(256))

_ENVELOPE = (
    "<?xml version='1.0' encoding='UTF-8'?>"
    f'<ovf:Envelope xmlns:ovf="{OVF_URI}" xmlns:rasd="{RASD_URI}" xmlns:vssd="{VSSD_URI}" '
    f'xmlns:xsi="{XSI_URI}" ovf:version="'
)
_NULL = str(NULL_UUID)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _text(tag: str, value: str) -> str:
    return f"<{tag}>{value.translate(_TEXT)}</{tag}>"


def _device_id(entity: VmBase, device: str) -> str:
    """A stable id for a device the model does not identify (video, graphics, sound)."""
    return str(uuid5(NAMESPACE_OID, f"{entity.id}/{device}"))


def write_ovf(data: OvfData, *, engine_version: str = "4.5.0.0", export_date: datetime | None = None) -> bytes:
    """The OVF document of `data`: UTF-8 bytes, identical for identical arguments.

    `export_date` defaults to `data.export_date`, then to the entity's creation date, never to the clock.
    Raises `OvfError` when the data cannot be written: an image disk without volumes, or text holding
    characters XML cannot carry.
    """
    entity = data.entity
    when = export_date or data.export_date or entity.creation_date
    out: list[str] = [_ENVELOPE, engine_version.translate(_ATTR), '">']
    _references(out, data)
    _network_section(out, data)
    _disk_section(out, data)
    out.append('<Content ovf:id="out" xsi:type="ovf:VirtualSystem_Type">')
    _general_data(out, data, when)
    out.append(
        f'<Section ovf:id="{entity.id}" ovf:required="false" xsi:type="ovf:OperatingSystemSection_Type">'
        f"<Info>Guest Operating System</Info>{_text('Description', entity.os_type)}</Section>"
    )
    _hardware_section(out, data, engine_version)
    _snapshots_section(out, data)
    out.append("</Content></ovf:Envelope>")
    text = "".join(out)
    try:
        document = text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        document = b"\x00"
    if b"\x00" in document.translate(_CONTROLS_TO_NUL) or b"\xef\xbf\xbe" in document or b"\xef\xbf\xbf" in document:
        bad = _NOT_XML.search(text)
        code = ord(bad.group()) if bad else 0
        raise OvfError(
            f"cannot write the OVF of {entity.id}: it holds character U+{code:04X}, "
            "which XML cannot carry; remove it from the name, description or other text"
        )
    return document


def _image_volumes(disk: OvfDisk) -> bool:
    """Whether the disk is written as volumes (True) or as a direct LUN (False)."""
    if disk.disk.storage_type is DiskStorageType.LUN:
        return False
    if not disk.disk.volumes:
        raise OvfError(f"cannot write disk {disk.disk.id} ({disk.disk.alias!r}): an image disk has volumes")
    return True


def _references(out: list[str], data: OvfData) -> None:
    out.append("<References>")
    for d in data.disks:
        disk = d.disk
        if _image_volumes(d):
            for v in disk.volumes:
                out.append(
                    f'<File ovf:href="{disk.id}/{v.id}" ovf:id="{v.id}" ovf:size="{v.actual_size}" '
                    'ovf:description="" ovf:disk_storage_type="IMAGE" ovf:cinder_volume_type=""/>'
                )
        else:
            out.append(f'<File ovf:id="{disk.id}" ovf:href="{disk.id}" ovf:disk_storage_type="LUN"/>')
    out.append("</References>")


def _network_section(out: list[str], data: OvfData) -> None:
    out.append('<Section xsi:type="ovf:NetworkSection_Type"><Info>List of networks</Info>')
    seen: set[str] = set()
    for nic in data.nics:
        name = nic.network_name
        if name is not None and name not in seen:
            seen.add(name)
            out.append(f'<Network ovf:name="{name.translate(_ATTR)}"/>')
    out.append("</Section>")


def _disk_section(out: list[str], data: OvfData) -> None:
    out.append('<Section xsi:type="ovf:DiskSection_Type"><Info>List of Virtual Disks</Info>')
    for d in data.disks:
        disk, att = d.disk, d.attachment
        common = (
            f'ovf:disk-interface="{DISK_INTERFACE_TEXT[att.interface]}" '
            f'ovf:read-only="{_bool(att.read_only)}" '
            f'ovf:shareable="{_bool(disk.shareable)}" ovf:boot="{_bool(att.bootable)}" '
            f'ovf:pass-discard="{_bool(att.pass_discard)}"'
        )
        names = (
            f'ovf:disk-alias="{disk.alias.translate(_ATTR)}" '
            f'ovf:disk-description="{disk.description.translate(_ATTR)}" '
            f'ovf:wipe-after-delete="{_bool(disk.wipe_after_delete)}"'
        )
        if not _image_volumes(d):
            out.append(
                f'<Disk ovf:diskId="{disk.id}" ovf:fileRef="{disk.id}" {common} ovf:scsi_reservation="false" '
                f'ovf:plugged="{_bool(att.active)}" ovf:lun_id="{(disk.lun_id or "").translate(_ATTR)}" '
                f'{names} ovf:capacity="{disk.provisioned_size}" '
                f'ovf:lun_vendor_id="{disk.lun_vendor.translate(_ATTR)}" '
                f'ovf:lun_product_id="{disk.lun_product.translate(_ATTR)}" '
                f'ovf:lun_serial="{disk.lun_serial.translate(_ATTR)}">'
            )
            # oVirt's OvfOvirtWriter: one Connection per path, the storage type and portal in xsi:.
            for c in disk.lun_connections:
                out.append(
                    f'<Connection ovf:connection="{c.address.translate(_ATTR)}" '
                    f'ovf:iqn="{c.target.translate(_ATTR)}" ovf:port="{c.port.translate(_ATTR)}" '
                    f'xsi:storage_type="{c.storage_type.translate(_ATTR)}" xsi:portal="{c.portal.translate(_ATTR)}"/>'
                )
            out.append("</Disk>")
            continue
        own = {v.id for v in disk.volumes}
        for v in disk.volumes:
            parent = f"{disk.id}/{v.parent_id}" if v.parent_id in own else ""
            out.append(
                f'<Disk ovf:diskId="{v.id}" ovf:size="{-(-v.capacity // GIB)}" '
                f'ovf:actual_size="{-(-v.actual_size // GIB)}" '
                f'ovf:vm_snapshot_id="{v.snapshot_id or ""}" ovf:parentRef="{parent}" '
                f'ovf:fileRef="{disk.id}/{v.id}" ovf:format="{VOLUME_FORMAT_URI[v.format]}" '
                f'ovf:volume-format="{VOLUME_FORMAT_TEXT[v.format]}" '
                f'ovf:volume-type="{VOLUME_TYPE_TEXT[v.volume_type]}" {common} '
                f'ovf:incremental-backup="false" {names} ovf:capacity="{v.capacity}"/>'
            )
    out.append("</Section>")


def _general_data(out: list[str], data: OvfData, export_date: datetime) -> None:
    e = data.entity
    out += [
        _text("Name", e.name),
        _text("Description", e.description),
        _text("Comment", e.comment),
        f"<CreationDate>{format_date(e.creation_date)}</CreationDate>",
        f"<ExportDate>{format_date(export_date)}</ExportDate>",
        f"<DeleteProtected>{_bool(e.delete_protected)}</DeleteProtected>",
        f"<IsSmartcardEnabled>{_bool(e.smartcard_enabled)}</IsSmartcardEnabled>",
        _text("TimeZone", e.time_zone),
        f"<default_boot_sequence>{int(e.boot_sequence)}</default_boot_sequence>",
        f"<Generation>{e.db_generation}</Generation>",
        _text("ClusterCompatibilityVersion", data.cluster_compatibility_version),
        f"<VmType>{int(e.vm_type)}</VmType>",
        f"<MinAllocatedMem>{e.min_memory_mb}</MinAllocatedMem>",
        f"<IsStateless>{_bool(e.stateless)}</IsStateless>",
        "<IsRunAndPause>false</IsRunAndPause>",
        f"<AutoStartup>{_bool(e.high_availability)}</AutoStartup>",
        f"<Priority>{e.priority}</Priority>",
        f"<IsBootMenuEnabled>{_bool(e.boot_menu_enabled)}</IsBootMenuEnabled>",
        _text("CustomEmulatedMachine", e.custom_emulated_machine),
        f"<BiosType>{bios_type_code(e.bios_type)}</BiosType>",
        _text("CustomCpuName", e.custom_cpu_name),
        f"<MaxMemorySizeMb>{e.max_memory_mb}</MaxMemorySizeMb>",
    ]
    if e.lease_domain_id is not None:
        out.append(f"<LeaseDomainId>{e.lease_domain_id}</LeaseDomainId>")
    out.append(_text("ClusterName", data.cluster_name))
    _user_domains_section(out, data)
    display = DISPLAY_TYPE_CODE[e.display_type]
    if isinstance(e, Vm):
        out += [
            f"<TemplateId>{e.template_id}</TemplateId>",
            _text("TemplateName", data.template_name),
            f"<IsInitilized>{_bool(e.initialized)}</IsInitilized>",  # sic: oVirt's element name
            f"<Origin>{int(e.origin)}</Origin>",
            f"<DefaultDisplayType>{display}</DefaultDisplayType>",
            f"<UseLatestVersion>{_bool(e.use_latest_template_version)}</UseLatestVersion>",
        ]
    else:
        out += [
            f"<TemplateId>{e.id}</TemplateId>",
            f"<Origin>{int(e.origin)}</Origin>",
            f"<default_display_type>{display}</default_display_type>",
            f"<IsDisabled>{_bool(e.disabled)}</IsDisabled>",
            f"<TemplateType>{TEMPLATE_TYPE}</TemplateType>",
            f"<BaseTemplateId>{e.base_id}</BaseTemplateId>",
            f"<TemplateVersionNumber>{e.version_number}</TemplateVersionNumber>",
            _text("TemplateVersionName", e.version_name),
            f"<TemplateSealed>{_bool(e.sealed)}</TemplateSealed>",
        ]
        if data.base_template_name:
            out.append(_text("BaseTemplateName", data.base_template_name))
    _names_section(out, "AffinityGroupsSection_Type", "AffinityGroup", data.affinity_groups)
    _names_section(out, "AffinityLabelsSection_Type", "AffinityLabel", data.affinity_labels)


def _user_domains_section(out: list[str], data: OvfData) -> None:
    if not data.permissions:
        return
    # The model keeps permissions unordered; sorting keeps the bytes a function of the set.
    roles: dict[str, list[str]] = {}
    for p in sorted(data.permissions, key=lambda p: (p.user_name, p.role_name)):
        roles.setdefault(p.user_name, []).append(p.role_name)
    out.append('<Section xsi:type="ovf:UserDomainsSection_Type">')
    for user, names in roles.items():
        out.append(f"<User>{_text('UserDomain', user)}<UserRoles>")
        out += [_text("RoleName", name) for name in names]
        out.append("</UserRoles></User>")
    out.append("</Section>")


def _names_section(out: list[str], section: str, element: str, names: list[str]) -> None:
    if names:
        out.append(f'<Section xsi:type="ovf:{section}">')
        out += [f'<{element} ovf:name="{name.translate(_ATTR)}"></{element}>' for name in names]
        out.append("</Section>")


def _device_info(kind: str, device: str, plugged: bool, read_only: bool) -> str:
    return (
        f"<Type>{kind}</Type><Device>{device}</Device><rasd:Address></rasd:Address><BootOrder>0</BootOrder>"
        f"<IsPlugged>{_bool(plugged)}</IsPlugged><IsReadOnly>{_bool(read_only)}</IsReadOnly><Alias></Alias>"
    )


def _hardware_section(out: list[str], data: OvfData, engine_version: str) -> None:
    e = data.entity
    cpus = e.cpu_count
    out += [
        '<Section xsi:type="ovf:VirtualHardwareSection_Type">',
        f"<Info>{cpus} CPU, {e.memory_mb} Memory</Info>",
        f"<System><vssd:VirtualSystemType>ENGINE {engine_version.translate(_TEXT)}</vssd:VirtualSystemType></System>",
        f"<Item><rasd:Caption>{cpus} virtual cpu</rasd:Caption>"
        "<rasd:Description>Number of virtual CPU</rasd:Description>"
        f"<rasd:InstanceId>1</rasd:InstanceId><rasd:ResourceType>{RT_CPU}</rasd:ResourceType>"
        f"<rasd:num_of_sockets>{e.cpu_sockets}</rasd:num_of_sockets>"
        f"<rasd:cpu_per_socket>{e.cpu_cores}</rasd:cpu_per_socket>"
        f"<rasd:threads_per_cpu>{e.cpu_threads}</rasd:threads_per_cpu>"
        f"<rasd:max_num_of_vcpus>{cpus}</rasd:max_num_of_vcpus>"
        f"<rasd:VirtualQuantity>{cpus}</rasd:VirtualQuantity></Item>",
        f"<Item><rasd:Caption>{e.memory_mb} MB of memory</rasd:Caption>"
        "<rasd:Description>Memory Size</rasd:Description>"
        f"<rasd:InstanceId>2</rasd:InstanceId><rasd:ResourceType>{RT_MEMORY}</rasd:ResourceType>"
        "<rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>"
        f"<rasd:VirtualQuantity>{e.memory_mb}</rasd:VirtualQuantity></Item>",
    ]
    _disk_items(out, data)
    _nic_items(out, data)
    out.append(
        "<Item><rasd:Caption>USB Controller</rasd:Caption><rasd:InstanceId>3</rasd:InstanceId>"
        f"<rasd:ResourceType>{RT_USB}</rasd:ResourceType>"
        f"<rasd:UsbPolicy>{USB_POLICY_TEXT[e.usb_policy]}</rasd:UsbPolicy></Item>"
    )
    if e.display_type is not DisplayType.NONE:
        out.append(
            "<Item><rasd:Caption>Graphical Controller</rasd:Caption>"
            f"<rasd:InstanceId>{_device_id(e, 'video')}</rasd:InstanceId>"
            f"<rasd:ResourceType>{RT_VIDEO}</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity>"
            "<rasd:SinglePciQxl>false</rasd:SinglePciQxl>"
            f"{_device_info('video', VIDEO_DEVICE[e.display_type], True, True)}</Item>"
        )
    for graphics in e.graphics:
        out.append(
            "<Item><rasd:Caption>Graphical Framebuffer</rasd:Caption>"
            f"<rasd:InstanceId>{_device_id(e, graphics.value)}</rasd:InstanceId>"
            f"<rasd:ResourceType>{RT_GRAPHICS}</rasd:ResourceType>"
            f"{_device_info('graphics', graphics.value, True, False)}</Item>"
        )
    if e.soundcard_enabled:
        out.append(
            f"<Item><rasd:ResourceType>{RT_OTHER}</rasd:ResourceType>"
            f"<rasd:InstanceId>{_device_id(e, 'sound')}</rasd:InstanceId>"
            f"{_device_info('sound', 'ich6', True, True)}</Item>"
        )
    out.append("</Section>")


def _disk_items(out: list[str], data: OvfData) -> None:
    pool = ""
    if data.data_center_id is not None:
        pool = f"<rasd:StoragePoolId>{data.data_center_id}</rasd:StoragePoolId>"
    for d in data.disks:
        disk, att = d.disk, d.attachment
        if disk.storage_type is DiskStorageType.LUN:
            continue  # oVirt describes a direct LUN in the DiskSection only
        caption = _text("rasd:Caption", disk.alias)
        storage = "".join(f"<rasd:StorageId>{domain}</rasd:StorageId>" for domain in disk.domain_ids)
        device = _device_info("disk", "disk", att.active, att.read_only)
        own = {v.id for v in disk.volumes}
        for v in disk.volumes:
            parent = str(v.parent_id) if v.parent_id else _NULL
            # A parent outside the disk is the template volume a thin copy is based on.
            template = parent if v.parent_id and v.parent_id not in own else _NULL
            created = format_date(v.creation_date)
            out.append(
                f"<Item>{caption}<rasd:InstanceId>{v.id}</rasd:InstanceId>"
                f"<rasd:ResourceType>{RT_DISK}</rasd:ResourceType>"
                f"<rasd:HostResource>{disk.id}/{v.id}</rasd:HostResource>"
                f"<rasd:Parent>{parent}</rasd:Parent><rasd:Template>{template}</rasd:Template>"
                f"<rasd:ApplicationList></rasd:ApplicationList>{storage}{pool}"
                f"<rasd:CreationDate>{created}</rasd:CreationDate>"
                f"<rasd:LastModified>{created}</rasd:LastModified>"
                f"<rasd:last_modified_date>{created}</rasd:last_modified_date>{device}</Item>"
            )


def _nic_items(out: list[str], data: OvfData) -> None:
    for n in data.nics:
        nic = n.nic
        network = (n.network_name or "").translate(_TEXT)
        name = nic.name.translate(_TEXT)
        device = "hostdev" if nic.interface is NicInterface.PCI_PASSTHROUGH else "bridge"
        out.append(
            f"<Item><rasd:Caption>Ethernet adapter on {network or '[No Network]'}</rasd:Caption>"
            f"<rasd:InstanceId>{nic.id}</rasd:InstanceId><rasd:ResourceType>{RT_NIC}</rasd:ResourceType>"
            f"{_text('rasd:OtherResourceType', n.profile_name or '')}"
            f"<rasd:ResourceSubType>{NIC_INTERFACE_CODE[nic.interface]}</rasd:ResourceSubType>"
            f"<rasd:Connection>{network}</rasd:Connection><rasd:Linked>{_bool(nic.linked)}</rasd:Linked>"
            f"<rasd:Name>{name}</rasd:Name><rasd:ElementName>{name}</rasd:ElementName>"
            f"{_text('rasd:MACAddress', nic.mac or '')}<rasd:speed>{NIC_SPEED[nic.interface]}</rasd:speed>"
            f"{_device_info('interface', device, nic.plugged, False)}</Item>"
        )


def _snapshots_section(out: list[str], data: OvfData) -> None:
    if not data.snapshots:
        return
    out.append('<Section xsi:type="ovf:SnapshotsSection_Type">')
    for s in data.snapshots:
        out.append(
            f'<Snapshot ovf:id="{s.id}"><Type>{s.type.name}</Type>{_text("Description", s.description)}'
            f"<CreationDate>{format_date(s.creation_date)}</CreationDate>"
        )
        if s.memory:
            out.append(_text("Memory", s.memory))
        out.append("</Snapshot>")
    out.append("</Section>")

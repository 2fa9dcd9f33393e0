"""Inventory objects as oVirt API documents (element names from oVirt's API model, `ovirtsdk4.types`).

Every object carries `id` and an `href` under /ovirt-engine/api (the SDK follows no other links), and
references to other objects are `<kind id=".." href=".."/>`. Sizes are bytes, times ISO-8601 UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol
from uuid import UUID

from ovfstore.agent.client import DeviceInfo
from ovfstore.api.jobs import Job
from ovfstore.api.router import BASE
from ovfstore.api.xmlio import Node
from ovfstore.engine.updater.status import DomainOvfStatus, StoreStatus
from ovfstore.model import (
    BootSequence,
    Cluster,
    DataCenter,
    Disk,
    DiskAttachment,
    DiskContentType,
    Host,
    LogicalUnit,
    Network,
    Nic,
    Role,
    StorageDomain,
    StorageType,
    Template,
    Vm,
    VmBase,
    VnicProfile,
    VolumeFormat,
    VolumeType,
)
from ovfstore.store import description as store_description

MIB = 1024 * 1024


def href(*parts: object) -> str:
    return "/".join([BASE, *(str(p) for p in parts)])


def ref(collection: str, ident: UUID | None, *, base: str = "") -> Node | None:
    if ident is None:
        return None
    return {"id": ident, "href": f"{base or BASE}/{collection}/{ident}"}


def links(self_href: str, *rels: str) -> list[Node]:
    return [{"href": f"{self_href}/{rel}", "rel": rel} for rel in rels]


def version(text: str) -> Node:
    major, _, minor = text.partition(".")
    return {"major": major or "4", "minor": minor.split(".")[0] or "0"}


def collection(tag: str, items: Iterable[Node]) -> Node:
    return {tag: list(items)}


class _Described(Protocol):
    @property
    def id(self) -> UUID: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...


def _head(item: _Described, own: str) -> Node:
    """The elements every named object starts with, in oVirt's order."""
    return {"id": item.id, "href": own, "name": item.name, "description": item.description}


# --- infrastructure ---------------------------------------------------------------------------------------


def data_center(dc: DataCenter, *, status: str | None = None) -> Node:
    own = href("datacenters", dc.id)
    return {
        **_head(dc, own),
        "comment": dc.comment,
        "link": links(own, "clusters", "storagedomains", "networks"),
        "local": dc.local,
        "status": status or dc.status.value,
        "storage_format": "v5",
        "version": version(dc.compatibility_version),
        "mac_pool": {
            "name": f"{dc.name} pool",
            "ranges": {"range": {"from": dc.mac_pool_start, "to": dc.mac_pool_end}},
        },
    }


def cluster(c: Cluster) -> Node:
    own = href("clusters", c.id)
    return {
        **_head(c, own),
        "comment": c.comment,
        "link": links(own, "networks"),
        "ballooning_enabled": True,
        "bios_type": c.bios_type.name.lower(),
        "cpu": {"architecture": "x86_64", "type": c.cpu_type},
        "error_handling": {"on_error": "migrate"},
        "fencing_policy": {
            "enabled": True,
            "skip_if_connectivity_broken": {"enabled": False, "threshold": 50},
            "skip_if_gluster_bricks_up": False,
            "skip_if_gluster_quorum_not_met": False,
            "skip_if_sd_active": {"enabled": False},
        },
        "firewall_type": "firewalld",
        "gluster_service": False,
        "ha_reservation": False,
        "ksm": {"enabled": True, "merge_across_nodes": True},
        "maintenance_reason_required": False,
        "migration": {
            "auto_converge": "inherit",
            "bandwidth": {"assignment_method": "auto"},
            "compressed": "inherit",
            "encrypted": "inherit",
        },
        "optional_reason": False,
        "switch_type": "legacy",
        "threads_as_cores": False,
        "trusted_service": False,
        "version": version(c.compatibility_version),
        "virt_service": True,
        "data_center": ref("datacenters", c.data_center_id),
    }


def host(h: Host) -> Node:
    return {
        **_head(h, href("hosts", h.id)),
        "address": h.address,
        "comment": "",
        "power_management": {"enabled": False, "kdump_detection": True},
        "spm": {"priority": 5},
        "status": h.status.value,
        "type": "rhel",
        "vgpu_placement": "consolidated",
        "cluster": ref("clusters", h.cluster_id),
    }


def storage_domain(d: StorageDomain, *, in_data_center: UUID | None = None) -> Node:
    """A domain; under /datacenters/{id}/storagedomains its href is the attached one there."""
    own = (
        href("datacenters", in_data_center, "storagedomains", d.id) if in_data_center else href("storagedomains", d.id)
    )
    node: Node = {**_head(d, own), "comment": d.comment}
    if in_data_center is None:
        node["link"] = links(own, "disks", "vms", "templates", "diskprofiles")
    node.update(
        {
            "backup": d.backup,
            "block_size": 512,
            "critical_space_action_blocker": d.critical_space_action_blocker,
            "discard_after_delete": d.discard_after_delete,
            "master": d.master,
            "status": d.status.value,
            "external_status": "ok",
            "storage": _domain_storage(d),
            "storage_format": f"v{d.format_version}",
            "supports_discard": False,
            "supports_discard_zeroes_data": False,
            "type": d.domain_class.value,
            "warning_low_space_indicator": d.warning_low_space_indicator,
            "wipe_after_delete": d.wipe_after_delete,
            "data_center": ref("datacenters", d.data_center_id),
            "data_centers": {"data_center": [ref("datacenters", d.data_center_id)]} if d.data_center_id else None,
        }
    )
    return node


def _domain_storage(d: StorageDomain) -> Node:
    """A file domain's address and path; a block domain's volume group and its LUNs, as oVirt shows them."""
    if d.storage_type.is_file:
        return {
            "type": d.storage_type.value,
            "address": d.address or None,
            "mount_options": d.mount_options or None,
            "nfs_retrans": d.nfs_retrans or None,
            "nfs_timeo": d.nfs_timeo or None,
            "nfs_version": (d.nfs_version or "auto") if d.storage_type is StorageType.NFS else None,
            "path": d.path,
            "vfs_type": d.vfs_type or None,
        }
    units = [logical_unit(lu, vg_uuid=d.vg_uuid, domain_id=d.id) for lu in d.logical_units]
    return {
        "type": d.storage_type.value,
        "volume_group": {"id": d.vg_uuid, "logical_units": {"logical_unit": units}},
    }


def logical_unit(
    lu: LogicalUnit | DeviceInfo, *, vg_uuid: str | None = None, domain_id: UUID | None = None, status: str = ""
) -> Node:
    """A LUN (oVirt's `LogicalUnit`): a domain's recorded one, or a device a host reports now."""
    if isinstance(lu, DeviceInfo):
        vendor, product = lu.vendor, lu.product
    else:
        vendor, product = lu.vendor_id, lu.product_id
    return {
        "id": lu.id,
        "paths": 1,
        "product_id": product or None,
        "serial": lu.serial or None,
        "size": lu.size,
        "status": status or None,
        "storage_domain_id": domain_id,
        "vendor_id": vendor or None,
        "volume_group_id": vg_uuid or None,
    }


def host_storage(device: DeviceInfo, host_id: UUID) -> Node:
    """A block device a host offers, as oVirt's `HostStorage` with its one LUN. A device that is an LVM
    physical volume, or holds other data (a filesystem...), is `used`; any other is `free`."""
    status = "free" if device.pv_uuid is None and device.signature is None else "used"
    unit = logical_unit(device, vg_uuid=device.vg_uuid, domain_id=device.domain_id, status=status)
    return {
        "id": device.id,
        "logical_units": {"logical_unit": [unit]},
        "type": "iscsi",
        "host": ref("hosts", host_id),
    }


def network(n: Network) -> Node:
    own = href("networks", n.id)
    return {
        **_head(n, own),
        "link": links(own, "vnicprofiles"),
        "mtu": n.mtu,
        "usages": {"usage": ["vm"]} if n.vm_network else None,
        "vlan": {"id": n.vlan_id} if n.vlan_id is not None else None,
        "data_center": ref("datacenters", n.data_center_id),
    }


def vnic_profile(p: VnicProfile) -> Node:
    return {
        **_head(p, href("vnicprofiles", p.id)),
        "network": ref("networks", p.network_id),
    }


def role(r: Role) -> Node:
    return {
        **_head(r, href("roles", r.id)),
        "administrative": r.administrative,
        "mutable": False,
    }


def job(j: Job) -> Node:
    return {
        "id": j.id,
        "href": href("jobs", j.id),
        "description": j.description,
        "auto_cleared": True,
        "external": False,
        "status": j.status.value,
        "start_time": j.start_time,
        "end_time": j.end_time,
        "last_updated": j.last_updated,
        "owner": ref("users", j.owner_id),
    }


# --- disks --------------------------------------------------------------------------------------------------


def disk(d: Disk, *, store: StoreStatus | None = None, domain_id: UUID | None = None, base: str = "") -> Node:
    leaf = d.leaf
    own = f"{base}/{d.id}" if base else href("disks", d.id)
    text = d.description
    if d.content_type is DiskContentType.OVF_STORE and domain_id is not None:
        text = store_text(store, domain_id)
    return {
        "id": d.id,
        "href": own,
        "name": d.alias,
        "description": text,
        "actual_size": d.actual_size,
        "alias": d.alias,
        "content_type": d.content_type.value,
        "format": (leaf.format if leaf else VolumeFormat.RAW).value,
        "image_id": leaf.id if leaf else None,
        "propagate_errors": False,
        "provisioned_size": d.provisioned_size,
        "shareable": d.shareable,
        "sparse": (leaf.volume_type if leaf else VolumeType.SPARSE) is VolumeType.SPARSE,
        "status": d.status.value,
        "storage_type": d.storage_type.value,
        "total_size": d.actual_size,
        "wipe_after_delete": d.wipe_after_delete,
        "lun_storage": _lun_storage(d) if d.lun_id else None,
        "storage_domains": {"storage_domain": [ref("storagedomains", i) for i in d.domain_ids]}
        if d.domain_ids
        else None,
    }


def _lun_storage(d: Disk) -> Node:
    """A direct LUN as oVirt's API shows it: one logical unit per path (one without a path)."""
    unit: Node = {"id": d.lun_id, "vendor_id": d.lun_vendor or None, "product_id": d.lun_product or None,
                  "serial": d.lun_serial or None, "size": d.provisioned_size}  # fmt: skip
    paths = d.lun_connections or []
    units = [
        {**unit, "address": c.address or None, "port": int(c.port) if c.port.isdigit() else None,
         "target": c.target or None, "portal": c.portal or None}
        for c in paths
    ] or [unit]  # fmt: skip
    kind = (paths[0].storage_type if paths else "ISCSI").lower()
    return {"type": kind, "logical_units": {"logical_unit": units}}


def store_text(store: StoreStatus | None, domain_id: UUID) -> str:
    """The store's description as oVirt shows it: the JSON its volume carries (docs/FORMATS.md section 2)."""
    if store is None or store.last_updated is None or store.size is None:
        return store_description.never_written()
    return store_description.after_write(domain_id, store.size, store.last_updated)


def stores_by_disk(statuses: Iterable[DomainOvfStatus]) -> dict[UUID, StoreStatus]:
    return {st.disk_id: st for status in statuses for st in status.stores}


def attachment(a: DiskAttachment, owner: str, d: Disk | None = None) -> Node:
    owner_ref = {"vms": "vm", "templates": "template"}[owner]
    return {
        "id": a.disk_id,
        "href": href(owner, a.entity_id, "diskattachments", a.disk_id),
        "active": a.active,
        "bootable": a.bootable,
        "interface": a.interface.value,
        "pass_discard": a.pass_discard,
        "read_only": a.read_only,
        "uses_scsi_reservation": False,
        "disk": disk(d) if d is not None else ref("disks", a.disk_id),
        owner_ref: ref(owner, a.entity_id),
    }


def nic(n: Nic, owner: str) -> Node:
    owner_ref = {"vms": "vm", "templates": "template"}[owner]
    return {
        "id": n.id,
        "href": href(owner, n.entity_id, "nics", n.id),
        "name": n.name,
        "interface": n.interface.name.lower(),
        "linked": n.linked,
        "mac": {"address": n.mac} if n.mac else None,
        "plugged": n.plugged,
        "vnic_profile": ref("vnicprofiles", n.vnic_profile_id),
        owner_ref: ref(owner, n.entity_id),
    }


# --- VMs and templates --------------------------------------------------------------------------------------

_BOOT_DEVICES = {"C": "hd", "D": "cdrom", "N": "network"}


def _boot(sequence: BootSequence) -> list[str]:
    return [_BOOT_DEVICES[c] for c in sequence.name]


def _base(e: VmBase, own: str, sub: Iterable[str]) -> Node:
    return {
        **_head(e, own),
        "comment": e.comment,
        "link": links(own, *sub),
        "bios": {"boot_menu": {"enabled": e.boot_menu_enabled}, "type": e.bios_type.name.lower()},
        "cpu": {
            "architecture": "x86_64",
            "topology": {"cores": e.cpu_cores, "sockets": e.cpu_sockets, "threads": e.cpu_threads},
        },
        "console": {"enabled": False},
        "cpu_shares": 0,
        "creation_time": e.creation_date,
        "custom_cpu_model": e.custom_cpu_name or None,
        "custom_emulated_machine": e.custom_emulated_machine or None,
        "delete_protected": e.delete_protected,
        "display": {
            "type": e.graphics[0].value if e.graphics else "vnc",
            "copy_paste_enabled": True,
            "file_transfer_enabled": True,
            "monitors": 1,
            "smartcard_enabled": e.smartcard_enabled,
        },
        "high_availability": {"enabled": e.high_availability, "priority": e.priority},
        "io": {"threads": 1},
        "lease": {"storage_domain": ref("storagedomains", e.lease_domain_id)} if e.lease_domain_id else None,
        "memory": e.memory_mb * MIB,
        "memory_policy": {"ballooning": True, "guaranteed": e.min_memory_mb * MIB, "max": e.max_memory_mb * MIB},
        "migration_downtime": -1,
        "multi_queues_enabled": True,
        "numa_tune_mode": "interleave",
        "origin": e.origin.name.lower(),
        "os": {"boot": {"devices": {"device": _boot(e.boot_sequence)}}, "type": e.os_type},
        "placement_policy": {"affinity": "migratable"},
        "soundcard_enabled": e.soundcard_enabled,
        "sso": {"methods": {"method": [{"id": "guest_agent"}]}},
        "start_paused": False,
        "stateless": e.stateless,
        "storage_error_resume_behaviour": "kill" if e.lease_domain_id else "auto_resume",
        "time_zone": {"name": e.time_zone} if e.time_zone else None,
        "tpm_enabled": False,
        "type": e.vm_type.name.lower(),
        "usb": {"enabled": e.usb_policy.value != "disabled"},
        "virtio_scsi": {"enabled": True},
        "virtio_scsi_multi_queues_enabled": False,
        "cluster": ref("clusters", e.cluster_id),
        "cpu_profile": None,
        "storage_domain": ref("storagedomains", e.lease_domain_id),
    }


_VM_LINKS = ("diskattachments", "nics", "numanodes", "watchdogs", "graphicsconsoles", "cdroms",
             "hostdevices", "permissions", "tags", "affinitylabels")  # fmt: skip
_TEMPLATE_LINKS = ("diskattachments", "nics", "watchdogs", "graphicsconsoles", "cdroms", "permissions", "tags")


def vm(v: Vm, *, own: str | None = None, status: str | None = None) -> Node:
    own = own or href("vms", v.id)
    node = _base(v, own, _VM_LINKS)
    node["next_run_configuration_exists"] = False
    node["run_once"] = False
    node["status"] = status or v.status.api_name
    node["template"] = ref("templates", v.template_id)
    node["use_latest_template_version"] = v.use_latest_template_version
    return node


def template(t: Template, *, own: str | None = None) -> Node:
    own = own or href("templates", t.id)
    node = _base(t, own, _TEMPLATE_LINKS)
    node["status"] = t.status.value
    node["version"] = {
        "version_name": t.version_name or None,
        "version_number": t.version_number,
        "base_template": ref("templates", t.base_id),
    }
    return node


def api_root(summary: dict[str, tuple[int, int]], now: datetime, user_id: UUID, blank_id: UUID) -> Node:
    rels = (
        "clusters", "datacenters", "disks", "hosts", "jobs", "networks", "roles", "storagedomains",
        "templates", "vms", "vnicprofiles",
    )  # fmt: skip
    return {
        "link": [{"href": href(r), "rel": r} for r in rels],
        "authenticated_user": ref("users", user_id),
        "effective_user": ref("users", user_id),
        "product_info": {
            "instance_id": None,
            "name": "oVirt Engine",
            "vendor": "ovirt.org",
            "version": {"build": 0, "full_version": "4.5.0-ovfstore", "major": 4, "minor": 5, "revision": 0},
        },
        "special_objects": {"blank_template": ref("templates", blank_id), "root_tag": None},
        "summary": {key: {"active": a, "total": t} for key, (a, t) in summary.items()},
        "time": now,
    }

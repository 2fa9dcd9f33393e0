"""VMs and templates with their disk attachments and NICs, start and stop, and floating disks.

There is no hypervisor here: a VM's run status is inventory state that the OVF stores record (so a
recovery knows which VMs to start again). `start` records `up`, `stop` and `shutdown` record `down`.
"""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

from ovfstore.api import search, views
from ovfstore.api.resources.common import action_done, given, listing, name_keys, required, resolve
from ovfstore.api.router import Call, Document, Handler, Router
from ovfstore.api.xmlio import Body, to_bool
from ovfstore.engine.errors import InvalidInput, NotFound
from ovfstore.engine.inventory import UNSET, AttachmentChanges, DiskChanges, NicChanges, TemplateChanges, VmChanges
from ovfstore.engine.inventory.changes import Unset, apply
from ovfstore.engine.inventory.entities import EntityChanges
from ovfstore.model import (
    Disk,
    DiskAttachment,
    DiskInterface,
    Nic,
    NicInterface,
    Template,
    Vm,
    VmBase,
    VmStatus,
    Volume,
    VolumeFormat,
    VolumeType,
)

MIB = 1024 * 1024


C = TypeVar("C", bound=EntityChanges)


def _entity_keys(call: Call) -> search.Keys:
    inv = call.engine.inventory
    clusters = {c.id: c for c in inv.clusters.list()}
    dcs = {d.id: d.name for d in inv.data_centers.list()}

    def dc_of(e: VmBase) -> list[str]:
        cluster = clusters.get(e.cluster_id) if e.cluster_id else None
        return [dcs.get(cluster.data_center_id, "")] if cluster else []

    def domains_of(e: VmBase) -> list[str]:  # the domains of its disks: read only when a search asks
        if "disks" not in cache:
            cache["disks"] = inv.attachments.disks_by_entity()
            cache["domains"] = {d.id: d.domain_ids for d in inv.disks.list()}
            cache["names"] = {d.id: d.name for d in inv.storage_domains.list()}
        disks = cache["disks"].get(e.id, [])
        return [cache["names"].get(sd, "") for disk in disks for sd in cache["domains"].get(disk, ())]

    cache: dict[str, Any] = {}
    return name_keys(
        {
            "status": lambda e: [e.status.api_name if isinstance(e, Vm) else e.status.value],
            "cluster": lambda e: [clusters[e.cluster_id].name] if e.cluster_id in clusters else [],
            "datacenter": dc_of,
            "storage": domains_of,
            "storage.name": domains_of,
        }
    )


def _entity_changes(body: Body, kind: type[C], cluster_id: UUID | Unset = UNSET) -> C:
    """The fields of a VM or template document that a caller may set (`kind`: VmChanges or TemplateChanges)."""
    return kind(
        name=given(body, "name", str),
        description=given(body, "description", str),
        comment=given(body, "comment", str),
        os_type=given(body, "os/type", str),
        cpu_sockets=given(body, "cpu/topology/sockets", int),
        cpu_cores=given(body, "cpu/topology/cores", int),
        cpu_threads=given(body, "cpu/topology/threads", int),
        high_availability=given(body, "high_availability/enabled", to_bool),
        priority=given(body, "high_availability/priority", int),
        stateless=given(body, "stateless", to_bool),
        delete_protected=given(body, "delete_protected", to_bool),
        time_zone=given(body, "time_zone/name", str),
        memory_mb=_memory(body, "memory"),
        min_memory_mb=_memory(body, "memory_policy/guaranteed"),
        max_memory_mb=_memory(body, "memory_policy/max"),
        cluster_id=cluster_id,
    )


def _memory(body: Body, path: str) -> int | Unset:
    size = body.int(path)
    return UNSET if size is None else _mib(path, size)


def _mib(path: str, size: int) -> int:
    """A memory size in bytes as the whole MiB the engine keeps; anything else is refused, not rounded."""
    if size <= 0 or size % MIB:
        whole = max(1, -(-size // MIB))
        raise InvalidInput(
            f"<{path}> is {size} bytes, not a positive whole number of MiB; send a multiple of {MIB} "
            f"bytes (1 MiB), such as {whole * MIB} for {whole} MiB"
        )
    return size // MIB


# --- VMs ------------------------------------------------------------------------------------------------------


def list_vms(call: Call) -> Document:
    return listing(call, "vm", call.engine.inventory.vms.list(), views.vm, _entity_keys(call), "VM")


def get_vm(call: Call) -> Document:
    return Document("vm", views.vm(call.engine.inventory.vms.get(call.id("vm", "VM"))))


def add_vm(call: Call) -> Document:
    body = call.doc("vm")
    inv = call.engine.inventory
    cluster = required(body, "cluster", inv.clusters.list(), "cluster")
    template = resolve(body, "template", inv.templates.list(), "template", required=False)
    vm = Vm(name=body.get("name") or "", cluster_id=cluster.id)
    if template is not None:
        vm.template_id = template.id
    vm = apply(vm, _entity_changes(body, VmChanges), "VM")[0]
    return Document("vm", views.vm(inv.vms.add(vm)), 201)


def update_vm(call: Call) -> Document:
    body = call.doc("vm")
    inv = call.engine.inventory
    cluster_id = (
        required(body, "cluster", inv.clusters.list(), "cluster").id if body.find("cluster") is not None else UNSET
    )
    found = _entity_changes(body, VmChanges, cluster_id)
    return Document("vm", views.vm(inv.vms.update(call.id("vm", "VM"), found)))


def remove_vm(call: Call) -> None:
    call.engine.inventory.vms.remove(call.id("vm", "VM"), remove_disks=not call.flag("detach_only"))


def run_status(status: VmStatus, verb: str) -> Handler:
    def action(call: Call) -> Document:
        vm = call.engine.inventory.vms.get(call.id("vm", "VM"))
        with call.api.jobs.run(f"{verb} VM {vm.name}", call.user.id):
            call.engine.inventory.vms.set_status(vm.id, status)
        return action_done()

    return action


# --- templates ------------------------------------------------------------------------------------------------


def list_templates(call: Call) -> Document:
    return listing(
        call, "template", call.engine.inventory.templates.list(), views.template, _entity_keys(call), "template"
    )


def get_template(call: Call) -> Document:
    return Document("template", views.template(call.engine.inventory.templates.get(call.id("template", "template"))))


def add_template(call: Call) -> Document:
    body = call.doc("template")
    if body.find("vm") is not None:
        raise InvalidInput(
            "making a template from a VM copies its disks, which this engine does not do; add the template "
            "with <name> and <cluster>, then attach disks to it"
        )
    inv = call.engine.inventory
    cluster = required(body, "cluster", inv.clusters.list(), "cluster")
    template = apply(
        Template(name=body.get("name") or "", cluster_id=cluster.id), _entity_changes(body, TemplateChanges), "template"
    )[0]
    base_id = body.id("version/base_template")
    if base_id is not None:
        template.base_template_id = base_id
        template.version_name = body.get("version/version_name", "") or ""
    return Document("template", views.template(inv.templates.add(template)), 201)


def update_template(call: Call) -> Document:
    found = _entity_changes(call.doc("template"), TemplateChanges)
    template = call.engine.inventory.templates.update(call.id("template", "template"), found)
    return Document("template", views.template(template))


def remove_template(call: Call) -> None:
    call.engine.inventory.templates.remove(call.id("template", "template"))


# --- disk attachments and NICs of either ----------------------------------------------------------------------


def _owner(call: Call, owner: str) -> UUID:
    if owner == "vms":
        return call.engine.inventory.vms.get(call.id("entity", "VM")).id
    return call.engine.inventory.templates.get(call.id("entity", "template")).id


def attachments(owner: str) -> Handler:
    def handler(call: Call) -> Document:
        entity_id = _owner(call, owner)
        inv = call.engine.inventory
        found = inv.attachments.list(entity_id)
        disks = {a.disk_id: inv.disks.get(a.disk_id) for a in found}
        items = [views.attachment(a, owner, disks[a.disk_id]) for a in found]
        return Document("disk_attachments", {"disk_attachment": items})

    return handler


def attachment(owner: str) -> Handler:
    def handler(call: Call) -> Document:
        entity_id = _owner(call, owner)
        disk_id = call.id("disk", "disk attachment")
        for a in call.engine.inventory.attachments.list(entity_id):
            if a.disk_id == disk_id:
                return Document("disk_attachment", views.attachment(a, owner, call.engine.inventory.disks.get(disk_id)))
        raise NotFound("disk attachment", disk_id)

    return handler


def _interface(text: str | None) -> DiskInterface:
    try:
        return DiskInterface((text or "virtio_scsi").lower())
    except ValueError:
        raise InvalidInput(
            f"disk interface {text!r} is not one of {', '.join(i.value for i in DiskInterface)}"
        ) from None


def add_attachment(owner: str) -> Handler:
    def handler(call: Call) -> Document:
        entity_id = _owner(call, owner)
        body = call.doc("disk_attachment")
        inv = call.engine.inventory
        disk_body = body.find("disk")
        if disk_body is None:
            raise InvalidInput('a disk attachment needs <disk id="..."/> or a new <disk> to create')
        disk_id = disk_body.id()
        if disk_id is None:
            disk_id = _create_disk(call, disk_body, None).id
        with inv.transaction():
            made = inv.attachments.attach(
                DiskAttachment(
                    entity_id=entity_id,
                    disk_id=disk_id,
                    interface=_interface(body.get("interface")),
                    bootable=bool(body.bool("bootable", False)),
                    read_only=bool(body.bool("read_only", False)),
                    active=bool(body.bool("active", True)),
                    pass_discard=bool(body.bool("pass_discard", False)),
                )
            )
        return Document("disk_attachment", views.attachment(made, owner, inv.disks.get(disk_id)), 201)

    return handler


def update_attachment(owner: str) -> Handler:
    def handler(call: Call) -> Document:
        entity_id = _owner(call, owner)
        disk_id = call.id("disk", "disk attachment")
        body = call.doc("disk_attachment")
        found = AttachmentChanges(
            bootable=given(body, "bootable", to_bool), read_only=given(body, "read_only", to_bool),
            active=given(body, "active", to_bool), pass_discard=given(body, "pass_discard", to_bool),
            interface=given(body, "interface", _interface),
        )  # fmt: skip
        made = call.engine.inventory.attachments.update(entity_id, disk_id, found)
        return Document("disk_attachment", views.attachment(made, owner, call.engine.inventory.disks.get(disk_id)))

    return handler


def remove_attachment(owner: str) -> Handler:
    def handler(call: Call) -> None:
        entity_id = _owner(call, owner)
        disk_id = call.id("disk", "disk attachment")
        inv = call.engine.inventory
        with inv.transaction():
            inv.attachments.detach(entity_id, disk_id)
            if call.query.get("detach_only", "true").lower() == "false":
                inv.disks.remove(disk_id)

    return handler


def nics(owner: str) -> Handler:
    def handler(call: Call) -> Document:
        entity_id = _owner(call, owner)
        return Document("nics", {"nic": [views.nic(n, owner) for n in call.engine.inventory.nics.list(entity_id)]})

    return handler


def _nic(call: Call, owner: str) -> Nic:
    entity_id = _owner(call, owner)
    nic_id = call.id("nic", "NIC")
    for n in call.engine.inventory.nics.list(entity_id):
        if n.id == nic_id:
            return n
    raise NotFound("NIC", nic_id)


def get_nic(owner: str) -> Handler:
    return lambda call: Document("nic", views.nic(_nic(call, owner), owner))


def _nic_interface(text: str) -> NicInterface:
    try:
        return NicInterface[text.upper()]
    except KeyError:
        raise InvalidInput(
            f"NIC interface {text!r} is not one of {', '.join(i.name.lower() for i in NicInterface)}"
        ) from None


def _nic_changes(call: Call, body: Body) -> NicChanges:
    profile_id: UUID | Unset | None = UNSET
    if body.find("vnic_profile") is not None:
        profile = resolve(
            body, "vnic_profile", call.engine.inventory.vnic_profiles.list(), "vNIC profile", required=False
        )
        profile_id = profile.id if profile else None
    return NicChanges(
        name=given(body, "name", str), linked=given(body, "linked", to_bool), plugged=given(body, "plugged", to_bool),
        mac=given(body, "mac/address", str), interface=given(body, "interface", _nic_interface),
        vnic_profile_id=profile_id,
    )  # fmt: skip


def add_nic(owner: str) -> Handler:
    def handler(call: Call) -> Document:
        entity_id = _owner(call, owner)
        body = call.doc("nic")
        nic = apply(Nic(entity_id=entity_id, name=body.get("name") or ""), _nic_changes(call, body), "NIC")[0]
        return Document("nic", views.nic(call.engine.inventory.nics.add(nic), owner), 201)

    return handler


def update_nic(owner: str) -> Handler:
    def handler(call: Call) -> Document:
        nic = _nic(call, owner)
        found = _nic_changes(call, call.doc("nic"))
        return Document("nic", views.nic(call.engine.inventory.nics.update(nic.id, found), owner))

    return handler


def remove_nic(owner: str) -> Handler:
    def handler(call: Call) -> None:
        call.engine.inventory.nics.remove(_nic(call, owner).id)

    return handler


# --- floating disks -------------------------------------------------------------------------------------------


def list_disks(call: Call) -> Document:
    inv = call.engine.inventory
    domains = {d.id: d.name for d in inv.storage_domains.list()}
    users: dict[UUID, int] = {}
    for disks in inv.attachments.disks_by_entity().values():
        for disk_id in disks:
            users[disk_id] = users.get(disk_id, 0) + 1
    keys = name_keys(
        {"alias": lambda d: [d.alias], "storage.name": lambda d: [domains.get(i, "") for i in d.domain_ids],
         "status": lambda d: [d.status.value], "disk_type": lambda d: ["lun" if d.lun_id else "image"],
         "number_of_vms": lambda d: [str(users.get(d.id, 0))]}
    )  # fmt: skip
    keys["name"] = lambda d: [d.alias]
    return listing(call, "disk", inv.disks.list(), views.disk, keys, "disk")


def get_disk(call: Call) -> Document:
    return Document("disk", views.disk(call.engine.inventory.disks.get(call.id("disk", "disk"))))


def _create_disk(call: Call, body: Body, default_domain: UUID | None) -> Disk:
    domain_ids = [b.id() for b in body.findall("storage_domains/storage_domain") if b.id() is not None]
    if not domain_ids and default_domain is not None:
        domain_ids = [default_domain]
    size = body.int("provisioned_size")
    if size is None:
        raise InvalidInput("a new disk needs <provisioned_size> in bytes")
    alias = body.get("alias") or body.get("name") or ""
    disk = Disk(
        alias=alias,
        description=body.get("description", "") or "",
        provisioned_size=size,
        shareable=bool(body.bool("shareable", False)),
        wipe_after_delete=bool(body.bool("wipe_after_delete", False)),
        domain_ids=[d for d in domain_ids if d is not None],
    )
    fmt = (
        VolumeFormat((body.get("format") or "raw").lower())
        if (body.get("format") or "raw").lower() in ("raw", "cow")
        else None
    )
    if fmt is None:
        raise InvalidInput("disk <format> must be raw or cow")
    sparse = body.bool("sparse", None)
    if sparse is None:  # oVirt's default: sparse, except a raw disk on block storage, which is a whole LV
        domains = [call.engine.inventory.storage_domains.get(d) for d in disk.domain_ids]
        sparse = not (fmt is VolumeFormat.RAW and any(not d.storage_type.is_file for d in domains))
    disk.volumes = [
        Volume(disk_id=disk.id, capacity=size, format=fmt,
               volume_type=VolumeType.SPARSE if sparse else VolumeType.PREALLOCATED)
    ]  # fmt: skip
    return call.engine.domains.create_disk(disk)


def new_disk(call: Call, default_domain: UUID | None = None) -> Document:
    return Document("disk", views.disk(_create_disk(call, call.doc("disk"), default_domain)), 201)


def update_disk(call: Call) -> Document:
    body = call.doc("disk")
    name = given(body, "name", str)  # oVirt's disk name is our alias; given both, the name wins
    found = DiskChanges(
        alias=given(body, "alias", str) if isinstance(name, Unset) else name,
        description=given(body, "description", str), provisioned_size=given(body, "provisioned_size", int),
        shareable=given(body, "shareable", to_bool), wipe_after_delete=given(body, "wipe_after_delete", to_bool),
    )  # fmt: skip
    return Document("disk", views.disk(call.engine.inventory.disks.update(call.id("disk", "disk"), found)))


def remove_disk(call: Call) -> None:
    call.engine.inventory.disks.remove(call.id("disk", "disk"))


def register(router: Router) -> None:
    r = router.add
    r("GET", "/vms", list_vms)
    r("POST", "/vms", add_vm)
    r("GET", "/vms/{vm}", get_vm)
    r("PUT", "/vms/{vm}", update_vm)
    r("DELETE", "/vms/{vm}", remove_vm)
    r("POST", "/vms/{vm}/start", run_status(VmStatus.UP, "Starting"))
    r("POST", "/vms/{vm}/stop", run_status(VmStatus.DOWN, "Stopping"))
    r("POST", "/vms/{vm}/shutdown", run_status(VmStatus.DOWN, "Shutting down"))
    r("GET", "/templates", list_templates)
    r("POST", "/templates", add_template)
    r("GET", "/templates/{template}", get_template)
    r("PUT", "/templates/{template}", update_template)
    r("DELETE", "/templates/{template}", remove_template)
    for owner in ("vms", "templates"):
        base = f"/{owner}/{{entity}}"
        r("GET", f"{base}/diskattachments", attachments(owner))
        r("POST", f"{base}/diskattachments", add_attachment(owner))
        r("GET", f"{base}/diskattachments/{{disk}}", attachment(owner))
        r("PUT", f"{base}/diskattachments/{{disk}}", update_attachment(owner))
        r("DELETE", f"{base}/diskattachments/{{disk}}", remove_attachment(owner))
        r("GET", f"{base}/nics", nics(owner))
        r("POST", f"{base}/nics", add_nic(owner))
        r("GET", f"{base}/nics/{{nic}}", get_nic(owner))
        r("PUT", f"{base}/nics/{{nic}}", update_nic(owner))
        r("DELETE", f"{base}/nics/{{nic}}", remove_nic(owner))
    r("GET", "/disks", list_disks)
    r("POST", "/disks", new_disk)
    r("GET", "/disks/{disk}", get_disk)
    r("PUT", "/disks/{disk}", update_disk)
    r("DELETE", "/disks/{disk}", remove_disk)

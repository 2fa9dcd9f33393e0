"""What an imported domain holds that the engine does not: unregistered VMs, templates and disks, and
their registration with every parameter and mapping of oVirt's `register` action.

`register` answers when the entity is registered (it keeps its id: the client then reads `/vms/{id}`).
Beyond oVirt, `<dry_run>true</dry_run>` in the action checks everything and registers nothing, and the
answer carries a `<registration_report>` (outcome, renames, dropped disks, reassigned MACs, warnings);
clients that do not know these elements skip them.
"""

from __future__ import annotations

from uuid import UUID

from ovfstore.api import views
from ovfstore.api.resources.common import action_done, listing, name_keys
from ovfstore.api.router import Call, Document, Handler, Router
from ovfstore.api.xmlio import Body, Node
from ovfstore.engine.errors import InvalidInput, NotFound
from ovfstore.engine.recovery import (
    RecoveryService,
    RegistrationOptions,
    RegistrationReport,
    UnregisteredDisk,
    UnregisteredEntity,
    VnicProfileMapping,
)
from ovfstore.engine.recovery.options import LunMapping
from ovfstore.model import EntityType, LunConnection, Template, Vm


def recovery_service(call: Call) -> RecoveryService:
    return call.engine.recovery


_COLLECTION = {EntityType.VM: "vms", EntityType.TEMPLATE: "templates"}


def unregistered_view(domain_id: UUID, u: UnregisteredEntity) -> Node:
    collection = _COLLECTION[u.entity_type]
    own = views.href("storagedomains", domain_id, collection, u.id)
    entity = u.data.entity if u.data is not None else None
    if isinstance(entity, Vm):
        node = views.vm(entity, own=own, status=u.vm_status.api_name)
    elif isinstance(entity, Template):
        node = views.template(entity, own=own)
    else:  # the OVF could not be read: what the store's index says, and why
        node = {"id": u.id, "href": own, "name": u.name}
        if u.entity_type is EntityType.VM:
            node["status"] = u.vm_status.api_name
    node["high_availability"] = {"enabled": bool(u.high_availability), **(
        {"priority": entity.priority} if entity is not None else {})}  # fmt: skip
    node["storage_domain"] = views.ref("storagedomains", domain_id)
    node["link"] = []  # sub-collections of an unregistered entity are not served
    if u.errors:
        node["comment"] = f"{node.get('comment') or ''} [OVF problems: {u.errors}]".strip()
    return node


def _entity_type(collection: str) -> EntityType:
    return EntityType.VM if collection == "vms" else EntityType.TEMPLATE


def entities(collection: str) -> Handler:
    def handler(call: Call) -> Document:
        domain_id = call.id("sd", "storage domain")
        call.engine.inventory.storage_domains.get(domain_id)
        tag = collection[:-1]
        if call.flag("unregistered"):
            found = recovery_service(call).unregistered_entities(domain_id, _entity_type(collection))
            keys = name_keys({"status": lambda u: [u.vm_status.api_name]})
            return listing(call, tag, found, lambda u: unregistered_view(domain_id, u), keys, tag)
        return _registered_on(call, domain_id, collection)

    return handler


def _registered_on(call: Call, domain_id: UUID, collection: str) -> Document:
    """Registered VMs or templates with a disk on the domain."""
    inv = call.engine.inventory
    disk_ids = {d.id for d in inv.disks.list(domain_id)}

    def here(entity_id: UUID) -> bool:
        return any(a.disk_id in disk_ids for a in inv.attachments.list(entity_id))

    tag = collection[:-1]
    if collection == "vms":
        return listing(call, tag, [v for v in inv.vms.list() if here(v.id)], views.vm, name_keys(), tag)
    return listing(call, tag, [t for t in inv.templates.list() if here(t.id)], views.template, name_keys(), tag)


def entity(collection: str) -> Handler:
    def handler(call: Call) -> Document:
        domain_id = call.id("sd", "storage domain")
        entity_id = call.id("entity", collection[:-1])
        recovery = recovery_service(call)
        try:
            u = recovery.unregistered_entity(domain_id, entity_id)
        except NotFound:
            inv = call.engine.inventory
            if collection == "vms":
                return Document("vm", views.vm(inv.vms.get(entity_id)))
            return Document("template", views.template(inv.templates.get(entity_id)))
        if u.entity_type is not _entity_type(collection):
            raise NotFound(collection[:-1], entity_id)
        return Document(collection[:-1], unregistered_view(domain_id, u))

    return handler


# --- register -----------------------------------------------------------------------------------------------


def _names(body: Body, path: str, item: str, *, to_lookup: dict[UUID, str] | None = None) -> dict[str, str]:
    """`<path><item><from><name>a</name></from><to><name>b</name></to></item></path>` as {a: b}; a target
    given by id is turned into its name through `to_lookup`."""
    found: dict[str, str] = {}
    for mapping in body.findall(f"{path}/{item}"):
        source = mapping.text("from/name")
        target = mapping.text("to/name")
        target_id = mapping.id("to")
        if target is None and target_id is not None and to_lookup is not None:
            target = to_lookup.get(target_id)
            if target is None:
                raise NotFound(item.removeprefix("registration_").removesuffix("_mapping").replace("_", " "), target_id)
        if not source or not target:
            raise InvalidInput(f"<{item}> needs <from><name>...</name></from> and <to> with a name or a known id")
        found[source] = target
    return found


def _lun_id(disk: Body | None) -> str | None:
    if disk is None:
        return None
    unit = disk.find("lun_storage/logical_units/logical_unit")
    if unit is not None and unit.attr("id"):
        return unit.attr("id")
    return disk.attr("id")


def _lun_paths(disk: Body | None) -> tuple[LunConnection, ...]:
    """The paths to a mapping's target LUN, as the SDK sends them (the Ansible role's `dr_lun_mappings`):
    `<lun_storage><type>iscsi</type><logical_units><logical_unit><address>...`."""
    if disk is None:
        return ()
    kind = (disk.text("lun_storage/type") or "iscsi").upper()
    paths = []
    for unit in disk.findall("lun_storage/logical_units/logical_unit"):
        address, target = unit.text("address") or "", unit.text("target") or ""
        if address or target or kind == "FCP":
            paths.append(
                LunConnection(
                    address=address, port=unit.text("port") or "", target=target, portal=unit.text("portal") or "",
                    storage_type=kind,
                )
            )  # fmt: skip
    return tuple(paths)


def options_from(call: Call, body: Body) -> RegistrationOptions:
    """oVirt's register parameters as the recovery service's `RegistrationOptions`."""
    inv = call.engine.inventory
    clusters = {c.id: c.name for c in inv.clusters.list()}
    roles = {r.id: r.name for r in inv.roles.list()}
    cluster_id = body.id("cluster")
    if cluster_id is None and body.text("cluster/name"):
        name = body.text("cluster/name")
        cluster_id = next((i for i, n in clusters.items() if n == name), None)
        if cluster_id is None:
            raise NotFound("cluster", str(name))
    elif cluster_id is not None and cluster_id not in clusters:
        raise NotFound("cluster", cluster_id)
    conf = "registration_configuration"
    profiles: list[VnicProfileMapping] = []
    for m in body.findall(f"{conf}/vnic_profile_mappings/registration_vnic_profile_mapping"):
        to = m.find("to")
        target_id = to.id() if to is not None else None
        if target_id is None and to is not None and to.text("name"):
            target_id = _profile_by_name(call, to.text("name") or "", to.text("network/name"))
        profiles.append(VnicProfileMapping(m.text("from/network/name") or "", m.text("from/name") or "", target_id))
    for m in body.findall("vnic_profile_mappings/vnic_profile_mapping"):
        profiles.append(
            VnicProfileMapping(
                m.text("source_network_name") or "",
                m.text("source_network_profile_name") or "",
                m.id("target_vnic_profile"),
            )
        )
    luns: dict[str, str | LunMapping] = {}
    for m in body.findall(f"{conf}/lun_mappings/registration_lun_mapping"):
        source, target = _lun_id(m.find("from")), _lun_id(m.find("to"))
        if not source or not target:
            raise InvalidInput("<registration_lun_mapping> needs the LUN ids of <from> and <to>")
        luns[source] = LunMapping(target, _lun_paths(m.find("to")))
    entity_body = body.find("vm") if body.has("vm") else body.find("template")
    return RegistrationOptions(
        clone=bool(body.bool("clone", False)),
        name=entity_body.text("name") if entity_body is not None else None,
        cluster_id=cluster_id,
        allow_partial_import=bool(body.bool("allow_partial_import", False)),
        reassign_bad_macs=bool(body.bool("reassign_bad_macs", False)),
        cluster_mappings=_names(body, f"{conf}/cluster_mappings", "registration_cluster_mapping", to_lookup=clusters),
        vnic_profile_mappings=profiles,
        role_mappings=_names(body, f"{conf}/role_mappings", "registration_role_mapping", to_lookup=roles),
        affinity_group_mappings=_names(body, f"{conf}/affinity_group_mappings", "registration_affinity_group_mapping"),
        affinity_label_mappings=_names(body, f"{conf}/affinity_label_mappings", "registration_affinity_label_mapping"),
        lun_mappings=luns,
        domain_mappings=_names(body, f"{conf}/domain_mappings", "registration_domain_mapping"),
    )


def _profile_by_name(call: Call, name: str, network: str | None) -> UUID:
    inv = call.engine.inventory
    networks = {n.id: n.name for n in inv.networks.list()}
    for p in inv.vnic_profiles.list():
        if p.name == name and (network is None or networks.get(p.network_id) == network):
            return p.id
    raise NotFound("vNIC profile", name)


def report_view(report: RegistrationReport) -> Node:
    return {
        "entity": {"id": report.entity_id, "name": report.name, "type": report.entity_type.value},
        "registered": views.ref(_COLLECTION[report.entity_type], report.registered_id),
        "outcome": report.outcome,
        "reason": report.reason,
        "renamed_from": report.renamed_from,
        "dropped_disks": {"disk": [views.ref("disks", d) for d in report.dropped_disks]},
        "disk_reports": {
            "disk_report": [{"disk": views.ref("disks", d), "detail": text} for d, text in report.disk_reports]
        },
        "reassigned_macs": {
            "reassigned_mac": [{"nic": nic, "from": old, "to": new} for nic, old, new in report.reassigned_macs]
        },
        "warnings": {"warning": list(report.warnings)},
    }


def register_entity(collection: str) -> Handler:
    def handler(call: Call) -> Document:
        domain_id = call.id("sd", "storage domain")
        entity_id = call.id("entity", collection[:-1])
        recovery = recovery_service(call)
        u = recovery.unregistered_entity(domain_id, entity_id)
        if u.entity_type is not _entity_type(collection):
            raise NotFound(collection[:-1], entity_id)
        body = call.doc("action")
        options = options_from(call, body)
        dry_run = bool(body.bool("dry_run", False))
        verb = "Checking registration of" if dry_run else "Registering"
        with call.api.jobs.run(f"{verb} {collection[:-1].upper() if collection == 'vms' else 'Template'} {u.name}",
                               call.user.id):  # fmt: skip
            report = recovery.register(domain_id, entity_id, options, dry_run=dry_run)
        return action_done({"registration_report": report_view(report)})

    return handler


# --- disks ----------------------------------------------------------------------------------------------------


def unregistered_disk_view(domain_id: UUID, d: UnregisteredDisk, base: str) -> Node:
    return {
        "id": d.disk_id,
        "href": f"{base}/{d.disk_id}",
        "name": d.alias,
        "alias": d.alias,
        "description": d.description,
        "provisioned_size": d.provisioned_size,
        "actual_size": d.actual_size,
        "total_size": d.actual_size,
        "content_type": "data",
        "image_id": d.volume_ids[-1] if d.volume_ids else None,
        "storage_type": "image",
        "storage_domains": {"storage_domain": [views.ref("storagedomains", domain_id)]},
    }


def unregistered_disks(call: Call, domain_id: UUID, base: str) -> Document:
    found = recovery_service(call).unregistered_disks(domain_id)
    keys = name_keys({"alias": lambda d: [d.alias]})
    keys["name"] = lambda d: [d.alias]
    keys["id"] = lambda d: [str(d.disk_id)]
    return listing(call, "disk", found, lambda d: unregistered_disk_view(domain_id, d, base), keys, "disk")


def register_disk(call: Call, domain_id: UUID) -> Document:
    body = call.doc("disk")
    disk_id = body.id()
    if disk_id is None:
        raise InvalidInput('registering a disk needs <disk id="..."/>: list ?unregistered=true for the ids')
    with call.api.jobs.run(f"Registering Disk {disk_id}", call.user.id):
        disk = recovery_service(call).register_disk(domain_id, disk_id)
    return Document("disk", views.disk(disk), 201)


def register_all(call: Call) -> Document:
    """ovfstore's own: register everything on the domain, templates before the VMs that use them, with
    the same options for all; one refusal does not stop the others. With `<dry_run>` VMs are checked
    against the templates that would be registered first."""
    domain_id = call.id("sd", "storage domain")
    domain = call.engine.inventory.storage_domains.get(domain_id)
    body = call.doc("action")
    dry_run = bool(body.bool("dry_run", False))
    with call.api.jobs.run(f"Registering everything on Storage Domain {domain.name}", call.user.id):
        reports = recovery_service(call).register_all(domain_id, options_from(call, body), dry_run=dry_run)
    return action_done({"registration_reports": {"registration_report": [report_view(r) for r in reports]}})


def register(router: Router) -> None:
    router.add("POST", "/storagedomains/{sd}/registerall", register_all)
    for collection in ("vms", "templates"):
        base = f"/storagedomains/{{sd}}/{collection}"
        router.add("GET", base, entities(collection))
        router.add("GET", f"{base}/{{entity}}", entity(collection))
        router.add("POST", f"{base}/{{entity}}/register", register_entity(collection))

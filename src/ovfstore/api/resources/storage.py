"""Storage domains: add (create a new one, or import the one a path already holds), attach, activate,
deactivate, detach, remove, `updateovfstore`, and their disks, OVF stores included."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

from ovfstore.api import search, views
from ovfstore.api.resources.common import action_done, given, listing, name_keys, resolve
from ovfstore.api.router import Call, Document, Router
from ovfstore.api.xmlio import Body, to_bool
from ovfstore.engine.errors import Conflict, InvalidInput, NotFound
from ovfstore.engine.inventory import StorageDomainChanges
from ovfstore.engine.inventory.changes import apply
from ovfstore.engine.inventory.storage_domains import check_settings
from ovfstore.model import DomainClass, Host, HostStatus, LogicalUnit, StorageDomain, StorageType


def _keys(call: Call) -> search.Keys:
    dcs = {dc.id: dc.name for dc in call.engine.inventory.data_centers.list()}
    return name_keys(
        {
            "datacenter": lambda d: [dcs.get(d.data_center_id, "")] if d.data_center_id else [],
            "status": lambda d: [d.status.value],
            "type": lambda d: [d.domain_class.value],
            "storage.type": lambda d: [d.storage_type.value],
            "storage.path": lambda d: [d.path],
            "storage.name": lambda d: [d.name],
            "storage.volume_group": lambda d: [d.vg_uuid] if d.vg_uuid else [],
        }
    )


def list_domains(call: Call) -> Document:
    domains = call.engine.inventory.storage_domains.list()
    return listing(call, "storage_domain", domains, views.storage_domain, _keys(call), "storage domain")


def get_domain(call: Call) -> Document:
    domain = call.engine.inventory.storage_domains.get(call.id("sd", "storage domain"))
    return Document("storage_domain", views.storage_domain(domain))


def _host(call: Call, body: Body) -> Host:
    """The host named in the request, or any up host: the domain is reached through its agent."""
    hosts = call.engine.inventory.hosts.list()
    host = resolve(body, "host", hosts, "host", required=False)
    if host is None:
        up = [h for h in hosts if h.status is HostStatus.UP]
        if not up:
            raise Conflict("no host is up to reach the storage through; add a host (its agent's address) first")
        host = up[0]
    if host.status is not HostStatus.UP:
        raise Conflict(f"host {host.name} is {host.status.value}; use an up host")
    return host


def add_domain(call: Call) -> Document:
    body = call.doc("storage_domain")
    engine = call.engine
    host = _host(call, body)
    storage_type = _storage_type(body.get("storage/type") or "localfs")
    if not storage_type.is_file:
        return _add_block_domain(call, body, host, storage_type)
    path = body.get("storage/path") or ""
    address = body.get("storage/address") or ""
    name = body.get("name")
    if not path:
        raise InvalidInput("the domain needs <storage><path>...</path></storage>")
    settings = _settings(body)
    check_settings(settings)  # before the domain is made or taken over on storage
    where = _directory(call, host, storage_type, address, path)
    existing = engine.domains.unknown_at(host, where)
    wants_import = bool(body.bool("import", False))
    if len(existing) > 1:
        ids = ", ".join(str(d.id) for d in existing)
        raise Conflict(f"{where} holds several domains unknown to this engine ({ids}); give one domain's directory")
    if existing or wants_import:
        if not existing:
            raise Conflict(f"{where} holds no storage domain unknown to this engine; nothing to import")
        with call.api.jobs.run(f"Importing Storage Domain at {where}", call.user.id):
            # A domain carried from a lost site still names that site's data center on disk. oVirt's API
            # takes such a domain over without asking (the disaster-recovery role relies on it), so the
            # stale attachment is dropped on storage here too.
            domain = engine.recovery.import_domain(
                existing[0].path, host=host, name=name, storage_type=storage_type, address=address, force_detach=True
            )
            if where != path:  # reached by its connection: shown as the export it is, not the mount point
                settings = replace(settings, path=path)
            domain = engine.inventory.storage_domains.update(domain.id, settings)
        return Document("storage_domain", views.storage_domain(domain), 201)
    domain = StorageDomain(
        name=name or "", storage_type=storage_type, domain_class=_domain_class(body.get("type") or "data"),
        address=address, path=path, description=body.get("description", "") or "",
        comment=body.get("comment", "") or "",
    )  # fmt: skip
    domain = apply(domain, settings, "storage domain")[0]
    # Per domain is ovfstore's own; oVirt has only the engine-wide count, the default here.
    domain.ovf_store_count = body.int("ovf_store_count", engine.updater.config.store_count) or 0
    with call.api.jobs.run(f"Adding Storage Domain {domain.name}", call.user.id):
        domain = engine.domains.create(domain, host, parent=where if where != path else "")
    return Document("storage_domain", views.storage_domain(domain), 201)


def _directory(call: Call, host: Host, storage_type: StorageType, address: str, path: str) -> str:
    """Where the domain's directory lies on the host: with an address, or a path that is a remote spec
    (`server:/export`, as oVirt gives a POSIX connection), the mount point of the connection (an NFS
    export, a POSIX or Gluster file system; `storage.mounts`); else the path itself, a directory."""
    remote = ":" in path.split("/", 1)[0]
    if storage_type is StorageType.LOCALFS or not (address or remote):
        return path
    return call.engine.domains.mount_point(host, storage_type, address, path)


def _settings(body: Body) -> StorageDomainChanges:
    """The settings a POST or PUT gives that ovfstore keeps and returns as given (oVirt's defaults else)."""
    return StorageDomainChanges(
        backup=given(body, "backup", to_bool), wipe_after_delete=given(body, "wipe_after_delete", to_bool),
        discard_after_delete=given(body, "discard_after_delete", to_bool),
        warning_low_space_indicator=given(body, "warning_low_space_indicator", int),
        critical_space_action_blocker=given(body, "critical_space_action_blocker", int),
        vfs_type=given(body, "storage/vfs_type", str), mount_options=given(body, "storage/mount_options", str),
        nfs_version=given(body, "storage/nfs_version", str), nfs_timeo=given(body, "storage/nfs_timeo", int),
        nfs_retrans=given(body, "storage/nfs_retrans", int),
    )  # fmt: skip


def _add_block_domain(call: Call, body: Body, host: Host, storage_type: StorageType) -> Document:
    """iSCSI or FCP: import the domain the LUNs (or the volume group) hold when this engine does not know
    it, as for a path; else create a new domain on the LUNs. The LUNs are those the host already sees
    (ovfstore does not log in to targets): `address`, `port`, `target` and credentials are ignored."""
    engine = call.engine
    luns = _lun_ids(body)
    group = body.find("storage/volume_group")
    vg_uuid = (group.attr("id") if group is not None else None) or ""
    if not luns and not vg_uuid:
        raise InvalidInput(
            f"a {storage_type.value} domain needs its LUNs: "
            '<storage><logical_units><logical_unit id="..."/></logical_units></storage> '
            '(or <volume_group id="..."/> to import); GET /hosts/{id}/storage lists them'
        )
    name = body.get("name")
    wants_import = bool(body.bool("import", False))
    domain_class = _domain_class(body.get("type") or "data")
    asked_id = body.id()
    if wants_import or vg_uuid:
        existing = engine.domains.unknown_on_luns(host, luns, vg_uuid)  # a Conflict says what the LUNs hold
    else:
        # As for a path: LUNs holding a domain this engine does not know are imported, never overwritten;
        # free LUNs get a new domain (and LUNs in use otherwise are refused by `create`).
        try:
            existing = engine.domains.unknown_on_luns(host, luns)
        except Conflict:
            existing = []
    if len(existing) > 1:
        ids = ", ".join(str(d) for d in existing)
        raise Conflict(f"the LUNs hold several storage domains unknown to this engine ({ids}); name one domain's LUNs")
    if asked_id is not None and existing and existing[0] != asked_id:
        raise Conflict(f"the LUNs hold storage domain {existing[0]}, not {asked_id}")
    if existing or wants_import:
        if not existing:
            raise Conflict("the LUNs hold no storage domain unknown to this engine; nothing to import")
        with call.api.jobs.run(f"Importing Storage Domain {name or existing[0]}", call.user.id):
            domain = engine.recovery.import_block_domain(
                existing[0], host=host, name=name, storage_type=storage_type, force_detach=True
            )
        return Document("storage_domain", views.storage_domain(domain), 201)
    domain = StorageDomain(
        name=name or "",
        storage_type=storage_type,
        domain_class=domain_class,
        logical_units=[LogicalUnit(id=lun) for lun in luns],
        description=body.get("description", "") or "",
        comment=body.get("comment", "") or "",
    )
    if asked_id is not None:
        domain.id = asked_id
    domain.ovf_store_count = body.int("ovf_store_count", engine.updater.config.store_count) or 0
    with call.api.jobs.run(f"Adding Storage Domain {domain.name}", call.user.id):
        domain = engine.domains.create(domain, host)
    return Document("storage_domain", views.storage_domain(domain), 201)


def _lun_ids(body: Body) -> list[str]:
    """The LUN ids a request names, under `storage/logical_units` or `storage/volume_group/logical_units`."""
    found: list[str] = []
    for path in ("storage/logical_units/logical_unit", "storage/volume_group/logical_units/logical_unit"):
        for unit in body.findall(path):
            lun = (unit.attr("id") or unit.get("id") or "").strip()
            if not lun:
                raise InvalidInput('every <logical_unit> needs its id: <logical_unit id="..."/>')
            if lun not in found:
                found.append(lun)
    return found


def _storage_type(text: str) -> StorageType:
    try:
        return StorageType(text.lower())
    except ValueError:
        choices = ", ".join(t.value for t in StorageType)
        raise InvalidInput(f"storage type {text!r} is not one of {choices}") from None


def _domain_class(text: str) -> DomainClass:
    try:
        return DomainClass(text.lower())
    except ValueError:
        raise InvalidInput(f"storage domain type {text!r} is not one of data, iso, export") from None


def update_domain(call: Call) -> Document:
    body = call.doc("storage_domain")
    found = replace(
        _settings(body), name=given(body, "name", str), description=given(body, "description", str),
        comment=given(body, "comment", str), ovf_store_count=given(body, "ovf_store_count", int),
    )  # fmt: skip
    domain = call.engine.inventory.storage_domains.update(call.id("sd", "storage domain"), found)
    return Document("storage_domain", views.storage_domain(domain))


def remove_domain(call: Call) -> None:
    """DELETE takes `host`, `format` (delete the data: refused, remove the directory by hand) and
    `destroy` (oVirt's "remove it from the engine even if storage fails": detach by force first)."""
    domain_id = call.id("sd", "storage domain")
    domains = call.engine.domains
    domain = call.engine.inventory.storage_domains.get(domain_id)
    with call.api.jobs.run(f"Removing Storage Domain {domain.name}", call.user.id):
        if call.flag("destroy") and domain.data_center_id is not None:
            domains.deactivate(domain_id, force=True)
            domains.detach(domain_id, force=True)
        domains.remove(domain_id, destroy=call.flag("format"))


def update_ovf_store(call: Call) -> Document:
    domain = call.engine.inventory.storage_domains.get(call.id("sd", "storage domain"))
    with call.api.jobs.run(f"Updating OVF_STORE disks of Storage Domain {domain.name}", call.user.id):
        result = call.engine.updater.update_now(domain.id)
        if result.error:
            raise Conflict(f"the OVF stores of {domain.name} could not be written: {result.error}")
    return action_done()


# --- disks of a domain ------------------------------------------------------------------------------------------


def domain_disks(call: Call) -> Document:
    domain_id = call.id("sd", "storage domain")
    inv = call.engine.inventory
    inv.storage_domains.get(domain_id)
    base = views.href("storagedomains", domain_id, "disks")
    if call.flag("unregistered"):
        from ovfstore.api.resources.recovery import unregistered_disks

        return unregistered_disks(call, domain_id, base)
    stores = views.stores_by_disk(call.engine.updater.status(domain_id))
    disks = inv.disks.list(domain_id, include_ovf_stores=True)
    keys = name_keys({"alias": lambda d: [d.alias], "content_type": lambda d: [d.content_type.value]})
    keys["name"] = lambda d: [d.alias]
    return listing(
        call,
        "disk",
        disks,
        lambda d: views.disk(d, store=stores.get(d.id), domain_id=domain_id, base=base),
        keys,
        "disk",
    )


def domain_disk(call: Call) -> Document:
    domain_id = call.id("sd", "storage domain")
    disk = call.engine.inventory.disks.get(call.id("disk", "disk"))
    if domain_id not in disk.domain_ids:
        raise NotFound("disk", disk.id)
    stores = views.stores_by_disk(call.engine.updater.status(domain_id))
    base = views.href("storagedomains", domain_id, "disks")
    return Document("disk", views.disk(disk, store=stores.get(disk.id), domain_id=domain_id, base=base))


def add_domain_disk(call: Call) -> Document:
    domain_id = call.id("sd", "storage domain")
    if call.flag("unregistered"):
        from ovfstore.api.resources.recovery import register_disk

        return register_disk(call, domain_id)
    from ovfstore.api.resources.vms import new_disk

    return new_disk(call, default_domain=domain_id)


# --- attached to a data center --------------------------------------------------------------------------------


def _attached(call: Call) -> tuple[UUID, StorageDomain]:
    dc_id = call.id("dc", "data center")
    call.engine.inventory.data_centers.get(dc_id)
    domain = call.engine.inventory.storage_domains.get(call.id("sd", "storage domain"))
    if domain.data_center_id != dc_id:
        raise NotFound("storage domain", domain.id)
    return dc_id, domain


def dc_domains(call: Call) -> Document:
    dc_id = call.id("dc", "data center")
    call.engine.inventory.data_centers.get(dc_id)
    domains = call.engine.inventory.storage_domains.list(dc_id)
    return listing(
        call,
        "storage_domain",
        domains,
        lambda d: views.storage_domain(d, in_data_center=dc_id),
        _keys(call),
        "storage domain",
    )


def dc_domain(call: Call) -> Document:
    dc_id, domain = _attached(call)
    return Document("storage_domain", views.storage_domain(domain, in_data_center=dc_id))


def attach_domain(call: Call) -> Document:
    dc_id = call.id("dc", "data center")
    dc = call.engine.inventory.data_centers.get(dc_id)
    body = call.doc("storage_domain")
    domain = resolve(body, ".", call.engine.inventory.storage_domains.list(), "storage domain")
    if domain is None:  # resolve(".") reads the document's own id or name
        raise InvalidInput('attach needs <storage_domain id="..."/>')
    with call.api.jobs.run(f"Attaching Storage Domain {domain.name} to Data Center {dc.name}", call.user.id):
        domain = call.engine.domains.attach(domain.id, dc_id)
    return Document("storage_domain", views.storage_domain(domain, in_data_center=dc_id), 201)


def detach_domain(call: Call) -> None:
    _dc_id, domain = _attached(call)
    with call.api.jobs.run(f"Detaching Storage Domain {domain.name}", call.user.id):
        call.engine.domains.detach(domain.id, force=call.flag("force"))


def activate_domain(call: Call) -> Document:
    _dc_id, domain = _attached(call)
    with call.api.jobs.run(f"Activating Storage Domain {domain.name}", call.user.id):
        call.engine.domains.activate(domain.id)
    return action_done()


def deactivate_domain(call: Call) -> Document:
    _dc_id, domain = _attached(call)
    force = bool(call.doc("action").bool("force", False))
    with call.api.jobs.run(f"Deactivating Storage Domain {domain.name}", call.user.id):
        call.engine.domains.deactivate(domain.id, force=force)
    return action_done()


def register(router: Router) -> None:
    r = router.add
    r("GET", "/storagedomains", list_domains)
    r("POST", "/storagedomains", add_domain)
    r("GET", "/storagedomains/{sd}", get_domain)
    r("PUT", "/storagedomains/{sd}", update_domain)
    r("DELETE", "/storagedomains/{sd}", remove_domain)
    r("POST", "/storagedomains/{sd}/updateovfstore", update_ovf_store)
    r("GET", "/storagedomains/{sd}/disks", domain_disks)
    r("POST", "/storagedomains/{sd}/disks", add_domain_disk)
    r("GET", "/storagedomains/{sd}/disks/{disk}", domain_disk)
    r("GET", "/datacenters/{dc}/storagedomains", dc_domains)
    r("POST", "/datacenters/{dc}/storagedomains", attach_domain)
    r("GET", "/datacenters/{dc}/storagedomains/{sd}", dc_domain)
    r("DELETE", "/datacenters/{dc}/storagedomains/{sd}", detach_domain)
    r("POST", "/datacenters/{dc}/storagedomains/{sd}/activate", activate_domain)
    r("POST", "/datacenters/{dc}/storagedomains/{sd}/deactivate", deactivate_domain)

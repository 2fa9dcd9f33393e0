"""Storage domain lifecycle: create, attach, activate, deactivate, detach, remove, through host agents.

The on-disk side (the domain's metadata: `POOL_UUID`, `ROLE`) is changed through an up host's agent; the
inventory follows only when storage did. Before a domain is deactivated or detached its OVF stores are
written, so the domain leaves carrying a current description of its VMs and templates.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from uuid import UUID

from sqlalchemy import select

from ovfstore.agent.client import AgentClient, DeviceInfo, DomainInfo
from ovfstore.agent.errors import AgentError, AgentUnavailable
from ovfstore.engine.db import schema as s
from ovfstore.engine.errors import Conflict, InvalidInput
from ovfstore.engine.hosts import AgentDirectory
from ovfstore.engine.inventory import Inventory, StorageDomainChanges
from ovfstore.engine.updater import changes, records
from ovfstore.engine.updater.domain import UpdateError
from ovfstore.engine.updater.service import OvfUpdater
from ovfstore.model import (
    Disk,
    DiskStorageType,
    DomainClass,
    DomainStatus,
    EntityType,
    Host,
    LogicalUnit,
    StorageDomain,
    StorageType,
    Volume,
    VolumeFormat,
    VolumeType,
)

log = logging.getLogger(__name__)

_AGENT_TYPES = {
    StorageType.NFS: "NFS",
    StorageType.LOCALFS: "LOCALFS",
    StorageType.POSIXFS: "POSIXFS",
    StorageType.GLUSTERFS: "GLUSTERFS",
    StorageType.ISCSI: "ISCSI",
    StorageType.FCP: "FCP",
}
_CLASSES = {DomainClass.DATA: "Data", DomainClass.ISO: "Iso", DomainClass.EXPORT: "Backup"}


class DomainCommandFailed(Exception):
    """A storage operation failed on the host; the inventory was left as it was."""


class DomainService:
    def __init__(self, inventory: Inventory, agents: AgentDirectory, updater: OvfUpdater) -> None:
        self.inv = inventory
        self.agents = agents
        self.updater = updater
        # Called before the domain is attached (on storage and in the inventory): recovery reads an imported
        # domain's stores here, before the updater may rewrite them, and refuses the attach if it cannot.
        self.on_attach: Callable[[UUID, AgentClient], object] | None = None

    # --- create and attach -----------------------------------------------------------------------------

    def create(self, domain: StorageDomain, host: Host, parent: str = "") -> StorageDomain:
        """Create a new, empty domain through `host`'s agent, then record it: a file domain under `parent`
        (the connection's mount point, `mount_point`) or else under `domain.path`, or a block domain (iSCSI,
        FCP) on `domain.logical_units` (by LUN id)."""
        client = self.agents.client(host)
        if not domain.storage_type.is_file:
            self._create_block(domain, client)
        elif not parent and domain.storage_type not in (StorageType.LOCALFS, StorageType.POSIXFS):
            raise InvalidInput(
                f"a {domain.storage_type.value} domain is created on its connection: give <address> and <path> "
                "(the host must have it mounted), or create a localfs, posixfs, iscsi or fcp domain"
            )
        else:
            self._call(
                client.create_domain,
                domain.id,
                domain.name[:50],  # the metadata's DESCRIPTION holds 50 characters
                parent=parent or domain.path,
                storage_type=_AGENT_TYPES[domain.storage_type],
                domain_class=_CLASSES[domain.domain_class],
                remote_path=f"{domain.address}:{domain.path}" if domain.address else domain.path,
            )
        attach_to = domain.data_center_id
        domain.data_center_id = None
        domain.status = DomainStatus.UNATTACHED
        domain.master = False
        self.inv.storage_domains.add(domain)
        if attach_to is not None:
            return self.attach(domain.id, attach_to)
        return domain

    def _create_block(self, domain: StorageDomain, client: AgentClient) -> None:
        """A new volume group named by the domain's id on its LUNs; the LUNs must be free (no LVM)."""
        if domain.domain_class is not DomainClass.DATA:
            raise InvalidInput("only data domains can be created on block storage")
        wanted = [lu.id for lu in domain.logical_units]
        if not wanted:
            raise InvalidInput(
                f"a {domain.storage_type.value} domain needs its LUNs: "
                '<storage><logical_units><logical_unit id="..."/></logical_units></storage>'
            )
        devices = self.devices(client)
        for lun in wanted:
            device = _device(devices, lun)
            if device is None:
                raise Conflict(f"the host offers no LUN {lun!r}; list what it offers at /hosts/{{id}}/storage")
            if device.pv_uuid is not None:
                held = f"storage domain {device.domain_id}" if device.domain_id else f"volume group {device.vg_name}"
                raise Conflict(f"LUN {lun!r} is in use ({held}); import that domain instead, or clear the LUN by hand")
            if device.signature is not None:
                raise Conflict(
                    f"LUN {lun!r} holds data ({device.signature}); pick another LUN, or wipe this one on the host "
                    "(wipefs -a) if its data is not wanted"
                )
        info = self._call(
            client.create_domain,
            domain.id,
            domain.name[:50],
            storage_type=_AGENT_TYPES[domain.storage_type],
            domain_class=_CLASSES[domain.domain_class],
            devices=wanted,
        )
        assert isinstance(info, DomainInfo)
        domain.vg_uuid = info.vg_uuid
        domain.path = ""
        domain.logical_units = self.logical_units(client, info)

    def devices(self, client: AgentClient) -> list[DeviceInfo]:
        """The block devices a host offers (its LUNs), with the volume group and domain each holds."""
        found = self._call(client.list_devices)
        assert isinstance(found, list)
        return found

    def host_devices(self, host: Host) -> list[DeviceInfo]:
        return self.devices(self.agents.client(host))

    def logical_units(self, client: AgentClient, info: DomainInfo) -> list[LogicalUnit]:
        """A block domain's LUNs as the host reports them (every physical volume of its volume group)."""
        by_pv = {d.pv_uuid: d for d in self.devices(client) if d.pv_uuid}
        units = []
        for pv in info.devices:
            d = by_pv.get(pv.pv_uuid)
            unit = LogicalUnit(id=pv.id, pv_uuid=pv.pv_uuid)
            if d is not None:
                unit = LogicalUnit(
                    id=d.id, size=d.size, vendor_id=d.vendor, product_id=d.product, serial=d.serial, pv_uuid=pv.pv_uuid
                )
            units.append(unit)
        return units

    def unknown_on_luns(self, host: Host, luns: list[str], vg_uuid: str = "") -> list[UUID]:
        """The domains this engine does not know that the named LUNs (ids or device paths) or volume group
        hold. A LUN the host does not offer, or one holding no domain, is a Conflict saying which."""
        known = {d.id for d in self.inv.storage_domains.list()}
        devices = self.devices(self.agents.client(host))
        found: set[UUID] = set()
        for lun in luns:
            device = _device(devices, lun)
            if device is None:
                raise Conflict(f"host {host.name} offers no LUN {lun!r}; list what it offers at /hosts/{{id}}/storage")
            if device.domain_id is None:
                what = f"volume group {device.vg_name!r}, not a storage domain" if device.vg_name else "no domain"
                raise Conflict(f"LUN {lun!r} holds {what}; nothing to import from it")
            found.add(device.domain_id)
        if vg_uuid:
            holding = {d.domain_id for d in devices if d.vg_uuid == vg_uuid and d.domain_id is not None}
            if not holding:
                raise Conflict(f"host {host.name} sees no storage domain in volume group {vg_uuid!r}")
            found |= holding
        return sorted(found - known, key=str)

    def mount_point(self, host: Host, storage_type: StorageType, address: str, path: str) -> str:
        """The directory where `host` has the storage connection mounted (VDSM's mount point under its
        agent's storage root, `storage.mounts`)."""
        client = self.agents.client(host)
        return str(self._call(client.mount_point, storage_type.value, address, path))

    def unknown_at(self, host: Host, path: str) -> list[DomainInfo]:
        """Domains on storage at `path` (the domain's directory, or the directory holding it) that this
        engine does not know: those are imported, not created."""
        known = {d.id for d in self.inv.storage_domains.list()}
        try:
            found = self.agents.client(host).list_domains()
        except AgentError as exc:
            raise DomainCommandFailed(f"cannot list the domains through host {host.name}: {exc}") from exc
        wanted = os.path.normpath(path)
        return [
            d
            for d in found
            if d.id not in known and wanted in (os.path.normpath(d.path), os.path.dirname(os.path.normpath(d.path)))
        ]

    def attach(self, domain_id: UUID, data_center_id: UUID) -> StorageDomain:
        """Attach a domain to a data center and activate it; the first data domain becomes the master.
        Its OVF stores are created and written by the updater right after."""
        domain = self.inv.storage_domains.get(domain_id)
        self.inv.data_centers.get(data_center_id)
        if domain.data_center_id == data_center_id:
            return domain
        if domain.data_center_id is not None:
            raise Conflict(f"storage domain {domain.name!r} is attached to another data center; detach it first")
        master = domain.domain_class is DomainClass.DATA and not any(
            d.master for d in self.inv.storage_domains.list(data_center_id)
        )
        client = self._client(data_center_id)
        if self.on_attach is not None:
            # Before storage is touched: a domain whose stores cannot be read stays as it was.
            self._call(self.on_attach, domain_id, client)
        self._call(client.attach, domain_id, data_center_id, master)
        # With the attach: its stores (kept from an earlier attach) are written whole next, the noted
        # changes moot (the updater appends only what was noted while the domain was in this data center).
        with self.inv.transaction() as tx:
            records.mark_rejoined(tx.conn, domain_id, self.updater.clock())
            changes.forget(tx.conn, domain_id)
            return self.inv.storage_domains.update(
                domain_id,
                StorageDomainChanges(data_center_id=data_center_id, master=master, status=DomainStatus.ACTIVE),
            )

    def activate(self, domain_id: UUID) -> StorageDomain:
        domain = self.inv.storage_domains.get(domain_id)
        if domain.data_center_id is None:
            raise Conflict(f"storage domain {domain.name!r} is not attached; attach it to a data center first")
        return self.inv.storage_domains.update(domain_id, StorageDomainChanges(status=DomainStatus.ACTIVE))

    # --- leave ------------------------------------------------------------------------------------------

    def deactivate(self, domain_id: UUID, *, force: bool = False) -> StorageDomain:
        """Put an active domain into maintenance, after writing its OVF stores. If they cannot be written
        the domain stays active and the error is raised, unless `force`."""
        domain = self.inv.storage_domains.get(domain_id)
        if domain.status is DomainStatus.MAINTENANCE:
            return domain
        if domain.status is not DomainStatus.ACTIVE:
            raise Conflict(f"storage domain {domain.name!r} is {domain.status.value}, not active")
        self.inv.storage_domains.update(domain_id, StorageDomainChanges(status=DomainStatus.PREPARING_FOR_MAINTENANCE))
        try:
            self.updater.prepare_for_deactivation(domain_id)
        except UpdateError:
            if not force:
                self.inv.storage_domains.update(domain_id, StorageDomainChanges(status=DomainStatus.ACTIVE))
                raise
            log.warning("deactivating domain %s with stores that could not be updated", domain.name)
        return self.inv.storage_domains.update(domain_id, StorageDomainChanges(status=DomainStatus.MAINTENANCE))

    def detach(self, domain_id: UUID, *, force: bool = False) -> StorageDomain:
        """Detach a domain (in maintenance, as oVirt requires) from its data center. Its stores are written
        once more first; then the VMs and templates that live on it leave the inventory, while their
        disks and OVFs stay on the domain, ready to be imported elsewhere."""
        domain = self.inv.storage_domains.get(domain_id)
        if domain.data_center_id is None:
            return domain
        if domain.status is not DomainStatus.MAINTENANCE:
            raise Conflict(f"storage domain {domain.name!r} is {domain.status.value}; deactivate it first")
        leaving = self._entities_living_on(domain)
        self.inv.storage_domains.update(domain_id, StorageDomainChanges(status=DomainStatus.DETACHING))
        try:
            self.updater.prepare_for_deactivation(domain_id)
            self._call(self._client(domain.data_center_id).detach, domain_id, domain.data_center_id)
        except (UpdateError, DomainCommandFailed):
            if not force:
                self.inv.storage_domains.update(domain_id, StorageDomainChanges(status=DomainStatus.MAINTENANCE))
                raise
        # One transaction: nothing ever sees the entities gone while the domain is still attached. The
        # updater may run at any moment (a debounced run after any change); had it seen the domain
        # detaching with its entities already forgotten, it would have written stores without them, and
        # the site importing the domain next would find nothing on it.
        with self.inv.transaction():
            for entity_id in leaving:
                self.inv.entities.forget(entity_id)
            self.inv.disks.forget_domain(domain_id)
            return self.inv.storage_domains.update(
                domain_id, StorageDomainChanges(data_center_id=None, master=False, status=DomainStatus.UNATTACHED)
            )

    def remove(self, domain_id: UUID, *, destroy: bool = False) -> None:
        """Forget a detached domain. With `destroy` its directory is deleted from storage too (not done
        here: the agent keeps data unless an operator removes it by hand)."""
        domain = self.inv.storage_domains.get(domain_id)
        if domain.data_center_id is not None:
            raise Conflict(f"storage domain {domain.name!r} is attached; detach it first")
        if destroy:
            raise InvalidInput("destroying a domain's data is not supported; remove it and delete the directory")
        self.inv.disks.forget_domain(domain_id)
        self.inv.storage_domains.remove(domain_id)

    # --- disks ----------------------------------------------------------------------------------------------

    def create_disk(self, disk: Disk) -> Disk:
        """Create an image disk's volumes on each of its domains through an up host, then record it: a
        disk the inventory knows is then on storage too, where a recovery finds it. Storage first, so a
        failure leaves no disk in the inventory; an inventory refusal removes what was created."""
        if disk.storage_type is DiskStorageType.LUN or not disk.domain_ids:
            return self.inv.disks.add(disk)
        if not disk.volumes:
            disk.volumes = [Volume(disk_id=disk.id, capacity=disk.provisioned_size)]
        for domain_id in disk.domain_ids:
            _check_block_volumes(self.inv.storage_domains.get(domain_id), disk)
        created: list[tuple[AgentClient, UUID]] = []
        try:
            for domain_id in disk.domain_ids:
                domain = self.inv.storage_domains.get(domain_id)
                if domain.data_center_id is None:
                    raise Conflict(f"storage domain {domain.name!r} is not attached; attach it before adding disks")
                client = self._client(domain.data_center_id)
                created.append((client, domain_id))
                self._call(create_volumes, client, domain_id, disk)
            return self.inv.disks.add(disk)
        except Exception:
            for client, domain_id in created:
                try:
                    client.delete_image(domain_id, disk.id)
                except AgentError:
                    log.warning("could not remove the volumes of disk %s from domain %s", disk.id, domain_id)
            raise

    # --- helpers ------------------------------------------------------------------------------------------

    def _entities_living_on(self, domain: StorageDomain) -> list[UUID]:
        """Entities whose image disks are all on this domain. An entity with image disks here and on
        another domain cannot be split: the detach is refused."""
        da, dd = s.disk_attachments, s.disk_domains
        with self.inv.db.read() as conn:
            rows = conn.execute(
                select(da.c.entity_id, dd.c.domain_id).select_from(da.join(dd, dd.c.disk_id == da.c.disk_id))
            ).all()
        by_entity: dict[UUID, set[UUID]] = {}
        for entity_id, domain_id in rows:
            by_entity.setdefault(entity_id, set()).add(domain_id)
        here = [e for e, domains in by_entity.items() if domain.id in domains]
        split = [e for e in here if len(by_entity[e]) > 1]
        if split:
            raise Conflict(
                f"storage domain {domain.name!r} holds disks of VMs or templates with disks on other domains too "
                f"({', '.join(str(e) for e in split[:5])}); move those disks first"
            )
        # VMs leave before the templates they were made from, and template versions before their base:
        # the inventory refuses to drop a template something still refers to.
        vm = s.vm_static
        with self.inv.db.read() as conn:
            kinds = {
                r.id: (r.entity_type, r.base_template_id not in (None, r.id))
                for r in conn.execute(select(vm.c.id, vm.c.entity_type, vm.c.base_template_id).where(vm.c.id.in_(here)))
            }
        return sorted(here, key=lambda e: (kinds[e][0] != EntityType.VM, not kinds[e][1], e))

    def _client(self, data_center_id: UUID) -> AgentClient:
        hosts = self.agents.up_hosts(data_center_id)
        if not hosts:
            raise DomainCommandFailed("no host of the data center is up; bring a host up first")
        return self.agents.client(hosts[0])

    @staticmethod
    def _call(fn: object, *args: object, **kwargs: object) -> object:
        assert callable(fn)
        try:
            return fn(*args, **kwargs)
        except AgentUnavailable as exc:
            raise DomainCommandFailed(f"the host agent is not reachable: {exc}") from exc
        except AgentError as exc:
            raise DomainCommandFailed(str(exc)) from exc


def _device(devices: list[DeviceInfo], lun: str) -> DeviceInfo | None:
    """The device a request names by LUN id or by path."""
    return next((d for d in devices if lun in (d.id, d.path)), None)


def _check_block_volumes(domain: StorageDomain, disk: Disk) -> None:
    """On a block domain a raw volume is a whole LV: it cannot be sparse (oVirt refuses it too)."""
    if domain.storage_type.is_file:
        return
    for volume in disk.volumes:
        if volume.format is VolumeFormat.COW or volume.parent_id is not None:
            raise InvalidInput(
                f"disk {disk.alias!r}: qcow2 (cow) volumes and volume chains are not supported on the "
                f"{domain.storage_type.value} domain {domain.name!r} (qemu-img would need an activated LV); "
                "make it a raw preallocated disk or put it on a file domain"
            )
        if volume.format is VolumeFormat.RAW and volume.volume_type is VolumeType.SPARSE:
            raise InvalidInput(
                f"disk {disk.alias!r}: a raw sparse disk cannot live on the {domain.storage_type.value} domain "
                f"{domain.name!r}; make it preallocated (<sparse>false</sparse>) or put it on a file domain"
            )


def create_volumes(client: AgentClient, domain_id: UUID, disk: Disk) -> None:
    """Create the disk's volume chain on one domain, base first, with oVirt's `DiskAlias` description (a
    recovery reads a disk's alias from there when no OVF names it)."""
    for volume in disk.chain():
        client.create_volume(
            domain_id,
            disk.id,
            volume.id,
            volume.capacity,
            format=volume.format.value.upper(),
            type=volume.volume_type.value.upper(),
            description=json.dumps({"DiskAlias": disk.alias, "DiskDescription": disk.description}),
            parent=volume.parent_id,
        )

"""The disaster-recovery workflow of docs/API.md, driven by the oVirt SDK against two running engines:
a primary site builds VMs and templates and is lost; a fresh engine imports its domain by path,
registers templates then VMs with cluster and vNIC mappings, partial import and MAC reassignment,
starts the VMs that were up (highly available first), then fails back."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest

from ovfstore.model import DiskAttachment
from tests.e2e.conftest import RunningEngine

GIB = 1024**3


def _add_domain(system: sdk.services.SystemService, name: str, path: Path) -> types.StorageDomain:
    path.mkdir(parents=True, exist_ok=True)
    host = system.hosts_service().list(search="status=up")[0]
    return system.storage_domains_service().add(
        types.StorageDomain(
            name=name,
            type=types.StorageDomainType.DATA,
            host=types.Host(name=host.name),
            storage=types.HostStorage(type=types.StorageType.LOCALFS, path=str(path)),
        )
    )


def _attach(system: sdk.services.SystemService, sd_id: str) -> None:
    dc = system.data_centers_service().list(search="name=Default")[0]
    attached = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
    attached.add(types.StorageDomain(id=sd_id))
    deadline = time.monotonic() + 60
    while attached.storage_domain_service(sd_id).get().status != types.StorageDomainStatus.ACTIVE:
        status = attached.storage_domain_service(sd_id).get().status
        if status == types.StorageDomainStatus.MAINTENANCE:
            attached.storage_domain_service(sd_id).activate()
        assert time.monotonic() < deadline, f"domain {sd_id} stuck in {status}"
        time.sleep(0.2)


def _vm(system: sdk.services.SystemService, name: str, cluster: str, template: str, disks: list[str], *,
        ha: bool = False) -> types.Vm:  # fmt: skip
    vms = system.vms_service()
    vm = vms.add(
        types.Vm(
            name=name,
            cluster=types.Cluster(name=cluster),
            template=types.Template(name=template),
            high_availability=types.HighAvailability(enabled=ha, priority=100 if ha else 1),
        )
    )
    service = vms.vm_service(vm.id)
    for i, sd_id in enumerate(disks):
        service.disk_attachments_service().add(
            types.DiskAttachment(
                disk=types.Disk(
                    name=f"{name}_disk{i}", provisioned_size=GIB, storage_domains=[types.StorageDomain(id=sd_id)]
                ),
                interface=types.DiskInterface.VIRTIO_SCSI,
                bootable=i == 0,
                active=True,
            )
        )
    profile = next(p for p in system.vnic_profiles_service().list() if p.name == "ovirtmgmt")
    service.nics_service().add(types.Nic(name="nic1", vnic_profile=types.VnicProfile(id=profile.id)))
    return vm


def _build_primary(site: RunningEngine) -> dict[str, str]:
    conn = site.connect()
    try:
        system = conn.system_service()
        dc = system.data_centers_service().list(search="name=Default")[0]
        system.clusters_service().add(types.Cluster(name="prod", data_center=types.DataCenter(id=dc.id)))
        sd1 = _add_domain(system, "prod_data", site.storage / "prod_data")
        sd2 = _add_domain(system, "prod_extra", site.storage / "prod_extra")
        _attach(system, sd1.id)
        _attach(system, sd2.id)
        template = system.templates_service().add(types.Template(name="rhel9", cluster=types.Cluster(name="prod")))
        # The SDK has no "add" on a template's disk attachments (oVirt makes templates from VMs): the
        # disk is added through the API and attached through the primary's inventory.
        disk = system.disks_service().add(
            types.Disk(name="rhel9_disk", provisioned_size=GIB, storage_domains=[types.StorageDomain(id=sd1.id)])
        )
        site.engine.inventory.attachments.attach(
            DiskAttachment(entity_id=UUID(template.id), disk_id=UUID(disk.id), bootable=True)
        )
        ids = {
            "db": _vm(system, "db", "prod", "rhel9", [sd1.id], ha=True).id,
            "web": _vm(system, "web", "prod", "rhel9", [sd1.id]).id,
            "batch": _vm(system, "batch", "prod", "Blank", [sd1.id]).id,
            "split": _vm(system, "split", "prod", "Blank", [sd1.id, sd2.id]).id,
            "template": template.id,
            "sd1": sd1.id,
        }
        for name in ("db", "web", "split"):
            system.vms_service().vm_service(ids[name]).start()
        floating = system.disks_service().add(
            types.Disk(name="scratch", provisioned_size=GIB, storage_domains=[types.StorageDomain(id=sd1.id)])
        )
        ids["floating"] = floating.id
        for sd in (sd1.id, sd2.id):
            system.storage_domains_service().storage_domain_service(sd).update_ovf_store()
        return ids
    finally:
        conn.close()


@pytest.mark.slow
def test_recovery_workflow_and_fail_back(engines: Callable[..., RunningEngine], db_url: str, tmp_path: Path) -> None:
    primary = engines(f"sqlite:///{tmp_path / 'primary.db'}", "primary_host")
    ids = _build_primary(primary)
    primary.shutdown()  # the primary site is lost: its engine never detaches anything

    secondary = engines(db_url, "dr_host")
    conn = secondary.connect()
    try:
        system = conn.system_service()
        # The secondary site: its own network, and a VM already holding the MAC the primary gave `db`.
        dc = system.data_centers_service().list(search="name=Default")[0]
        net = system.networks_service().add(types.Network(name="dr_net", data_center=types.DataCenter(id=dc.id)))
        dr_profile = next(p for p in system.vnic_profiles_service().list() if p.name == "dr_net")
        local = system.vms_service().add(
            types.Vm(name="local", cluster=types.Cluster(name="Default"), template=types.Template(name="Blank"))
        )
        system.vms_service().vm_service(local.id).nics_service().add(types.Nic(name="nic1"))
        assert net.name == "dr_net"

        # Import the domain by its path: it keeps its id, unattached; attaching reads its stores.
        host = system.hosts_service().list(search="status=up")[0]
        imported = system.storage_domains_service().add(
            types.StorageDomain(
                name="prod_data",
                type=types.StorageDomainType.DATA,
                host=types.Host(name=host.name),
                storage=types.HostStorage(type=types.StorageType.LOCALFS, path=str(secondary.storage / "prod_data")),
            )
        )
        assert imported.id == ids["sd1"]
        _attach(system, imported.id)
        sd = system.storage_domains_service().storage_domain_service(imported.id)

        templates = sd.templates_service().list(unregistered=True)
        assert [t.name for t in templates] == ["rhel9"]
        mappings = types.RegistrationConfiguration(
            cluster_mappings=[
                types.RegistrationClusterMapping(from_=types.Cluster(name="prod"), to=types.Cluster(name="Default"))
            ]
        )
        vnic_mappings = [
            types.VnicProfileMapping(
                source_network_name="ovirtmgmt",
                source_network_profile_name="ovirtmgmt",
                target_vnic_profile=types.VnicProfile(id=dr_profile.id),
            )
        ]
        for t in templates:
            sd.templates_service().template_service(t.id).register(
                cluster=types.Cluster(name="Default"), registration_configuration=mappings
            )
        assert system.templates_service().template_service(ids["template"]).get().name == "rhel9"

        unregistered = sd.vms_service().list(unregistered=True)
        assert {v.name for v in unregistered} == {"db", "web", "batch", "split"}
        statuses = {v.name: (v.status, v.high_availability.enabled) for v in unregistered}
        assert statuses["db"] == (types.VmStatus.UP, True)
        assert statuses["batch"] == (types.VmStatus.DOWN, False)

        # Without partial import, the VM with a disk on the domain left behind is refused (409).
        split = next(v for v in unregistered if v.name == "split")
        with pytest.raises(sdk.Error) as refused:
            sd.vms_service().vm_service(split.id).register(
                registration_configuration=mappings, vnic_profile_mappings=vnic_mappings, reassign_bad_macs=True
            )
        assert refused.value.code == 409
        for v in unregistered:
            sd.vms_service().vm_service(v.id).register(
                allow_partial_import=True,
                reassign_bad_macs=True,
                registration_configuration=mappings,
                vnic_profile_mappings=vnic_mappings,
            )
        assert sd.vms_service().list(unregistered=True) == []

        vms = system.vms_service()
        db = vms.vm_service(ids["db"]).get()
        assert db.cluster.id == system.clusters_service().list(search="name=Default")[0].id
        [db_nic] = vms.vm_service(ids["db"]).nics_service().list()
        [local_nic] = vms.vm_service(local.id).nics_service().list()
        assert db_nic.vnic_profile.id == dr_profile.id
        assert db_nic.mac.address != local_nic.mac.address  # reassigned: the old one is taken here
        assert len(vms.vm_service(ids["split"]).disk_attachments_service().list()) == 1  # partial import
        assert vms.vm_service(ids["web"]).get().template.id == ids["template"]

        # The floating disk was unknown to every OVF: an unregistered disk, registered by id.
        loose = sd.disks_service().list(unregistered=True)
        assert [d.id for d in loose] == [ids["floating"]]
        sd.disks_service().add(types.Disk(id=ids["floating"]), unregistered=True)
        assert system.disks_service().disk_service(ids["floating"]).get().name == "scratch"

        # Start what was up, highly available first (the recovery role's order).
        was_up = [v for v in unregistered if v.status == types.VmStatus.UP]
        was_up.sort(key=lambda v: not v.high_availability.enabled)
        assert was_up[0].name == "db"
        for v in was_up:
            vms.vm_service(v.id).start()
        assert {v.name for v in vms.list(search="status=up")} == {"db", "web", "split"}

        # Fail-back: shut down, write the stores, maintenance, detach, remove.
        for v in was_up:
            vms.vm_service(v.id).shutdown()
        sd.update_ovf_store()
        stores = [d for d in sd.disks_service().list() if d.content_type == types.DiskContentType.OVF_STORE]
        assert stores
        assert all('"Updated":true' in d.description for d in stores)
        attached = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
        attached.storage_domain_service(imported.id).deactivate()
        attached.storage_domain_service(imported.id).remove()
        sd.remove(host=host.name)
        assert system.storage_domains_service().list(search="name=prod_data") == []
        assert {v.name for v in vms.list()} == {"local"}
    finally:
        conn.close()

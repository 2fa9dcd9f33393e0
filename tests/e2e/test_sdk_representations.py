"""What the `ovirt.ovirt` modules read of a VM, template, host, cluster and storage domain when they check
for changes (issue 15 item 3), through the SDK: the attributes with oVirt's defaults, the sub-collections
they list (empty where ovfstore keeps nothing), and the searches the disaster-recovery role sends."""

from __future__ import annotations

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest

from tests.e2e.conftest import RunningEngine, protected_vm


def test_vm_and_template_carry_what_the_modules_compare(running: RunningEngine) -> None:
    protected_vm(running)
    conn = running.connect()
    try:
        system = conn.system_service()
        vm = system.vms_service().list(search="name=web")[0]
        for entity in (vm, system.templates_service().list(search="name=Blank")[0]):
            assert entity.sso.methods[0].id == types.SsoMethod.GUEST_AGENT
            assert entity.io.threads == 1
            assert entity.memory_policy.ballooning is True
            assert (entity.bios.boot_menu.enabled, entity.usb.enabled, entity.console.enabled) == (False, False, False)
            assert (entity.display.smartcard_enabled, entity.display.monitors) == (False, 1)
            assert entity.virtio_scsi.enabled is True
            assert entity.storage_error_resume_behaviour == types.VmStorageErrorResumeBehaviour.AUTO_RESUME
        assert vm.numa_tune_mode == types.NumaTuneMode.INTERLEAVE
        assert vm.next_run_configuration_exists is False
        service = system.vms_service().vm_service(vm.id)
        for listed in (service.numa_nodes_service(), service.watchdogs_service(), service.graphics_consoles_service(),
                       service.cdroms_service(), service.host_devices_service(), service.permissions_service(),
                       service.tags_service(), service.affinity_labels_service()):  # fmt: skip
            assert listed.list() == []
        assert len(service.disk_attachments_service().list()) == 1
        with pytest.raises(sdk.NotFoundError):
            system.vms_service().vm_service("00000000-0000-0000-0000-00000000abcd").numa_nodes_service().list()
    finally:
        conn.close()


def test_cluster_host_and_top_level_collections(running: RunningEngine) -> None:
    protected_vm(running, domain="gold")
    conn = running.connect()
    try:
        system = conn.system_service()
        cluster = system.clusters_service().list(search="name=Default")[0]
        assert (cluster.ballooning_enabled, cluster.ksm.enabled, cluster.fencing_policy.enabled) == (True, True, True)
        assert system.clusters_service().cluster_service(cluster.id).affinity_groups_service().list() == []
        dc = system.data_centers_service().list(search="name=Default")[0]
        in_dc = system.data_centers_service().data_center_service(dc.id).clusters_service()
        assert in_dc.cluster_service(cluster.id).affinity_groups_service().list() == []
        unknown = "00000000-0000-0000-0000-00000000abcd"
        for owner in (system.data_centers_service().data_center_service(unknown).clusters_service(), in_dc):
            with pytest.raises(sdk.NotFoundError):  # an unknown data center, or a cluster not in it
                owner.cluster_service(cluster.id if owner is not in_dc else unknown).affinity_groups_service().list()
        for listed in (
            system.hosts_service().host_service(unknown).nics_service(),
            system.templates_service().template_service(unknown).watchdogs_service(),
            system.storage_domains_service().storage_domain_service(unknown).disk_profiles_service(),
        ):
            with pytest.raises(sdk.NotFoundError):
                listed.list()
        host = system.hosts_service().list()[0]
        assert (host.spm.priority, host.power_management.enabled) == (5, False)
        assert system.hosts_service().host_service(host.id).nics_service().list() == []
        assert system.affinity_labels_service().list() == []
        assert [d.name for d in system.domains_service().list()] == ["internal-authz"]
        # The role's searches: hosts reaching a domain, VMs with a disk on it, active domains by name.
        assert [h.name for h in system.hosts_service().list(search="status=up and storage=gold")] == [host.name]
        assert system.hosts_service().list(search="status=up and storage=nowhere") == []
        assert [v.name for v in system.vms_service().list(search="status != up and storage.name=gold")] == ["web"]
        found = system.storage_domains_service().list(search="status = active and storage.name=gold or name=x")
        assert [d.name for d in found] == ["gold"]
        assert system.disks_service().list(search="disk_type = lun and number_of_vms =0") == []
        assert [d.alias for d in system.disks_service().list(search="disk_type=image and number_of_vms=1")] == [
            "web_disk"
        ]
    finally:
        conn.close()

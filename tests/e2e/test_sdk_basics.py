"""The SDK against a running engine: token, defaults, errors, VMs, and a domain's whole lifecycle."""

from __future__ import annotations

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest

from ovfstore.engine.users import UserRole
from tests.e2e.conftest import READER_PASSWORD, RunningEngine


def test_connection_and_defaults(running: RunningEngine) -> None:
    conn = running.connect()
    try:
        assert conn.test(raise_exception=True)
        system = conn.system_service()
        api = system.get()
        assert api.product_info.name == "oVirt Engine"
        assert api.special_objects.blank_template.id == "00000000-0000-0000-0000-000000000000"
        dcs = system.data_centers_service().list(search="name=Default")
        assert [d.name for d in dcs] == ["Default"]
        clusters = system.clusters_service().list(search="datacenter=Default")
        assert [c.name for c in clusters] == ["Default"]
        hosts = system.hosts_service().list(search="status=up")
        assert [h.name for h in hosts] == ["host1"]
        assert [n.name for n in system.networks_service().list()] == ["ovirtmgmt"]
        assert [p.name for p in system.vnic_profiles_service().list()] == ["ovirtmgmt"]
        assert "Blank" in [t.name for t in system.templates_service().list()]
        assert "SuperUser" in [r.name for r in system.roles_service().list()]
    finally:
        conn.close()


def test_faults(running: RunningEngine) -> None:
    conn = running.connect()
    try:
        system = conn.system_service()
        with pytest.raises(sdk.NotFoundError):
            system.vms_service().vm_service("6b0c5b39-0000-0000-0000-000000000000").get()
        with pytest.raises(sdk.Error) as conflict:
            system.data_centers_service().add(types.DataCenter(name="Default", local=False))
        assert conflict.value.code == 409
        with pytest.raises(sdk.Error) as bad:
            system.vms_service().list(search="colour=blue")
        assert bad.value.code == 400
    finally:
        conn.close()


def test_memory_must_be_a_whole_number_of_mib(running: RunningEngine) -> None:
    conn = running.connect()
    try:
        vms = conn.system_service().vms_service()
        cluster, template = types.Cluster(name="Default"), types.Template(name="Blank")
        with pytest.raises(sdk.Error, match="not a positive whole number of MiB; send a multiple of 1048576") as bad:
            vms.add(types.Vm(name="odd", cluster=cluster, template=template, memory=2**30 + 1))
        assert bad.value.code == 400
        vm = vms.add(types.Vm(name="even", cluster=cluster, template=template, memory=2**30))
        with pytest.raises(sdk.Error, match="<memory_policy/guaranteed> is 512 bytes") as bad:
            vms.vm_service(vm.id).update(types.Vm(memory_policy=types.MemoryPolicy(guaranteed=512)))
        assert bad.value.code == 400
        assert vms.vm_service(vm.id).get().memory == 2**30
    finally:
        conn.close()


def test_an_overlong_description_is_a_400_naming_the_field(running: RunningEngine) -> None:
    conn = running.connect()
    try:
        vms = conn.system_service().vms_service()
        cluster, template = types.Cluster(name="Default"), types.Template(name="Blank")
        with pytest.raises(sdk.Error, match="description is 256 characters long; the limit is 255") as bad:
            vms.add(types.Vm(name="wordy", cluster=cluster, template=template, description="x" * 256))
        assert bad.value.code == 400
        vm = vms.add(types.Vm(name="terse", cluster=cluster, template=template, description="x" * 255))
        with pytest.raises(sdk.Error, match="description is 100000 characters long") as bad:
            vms.vm_service(vm.id).update(types.Vm(description=">" * 100_000))
        assert bad.value.code == 400
        assert vms.vm_service(vm.id).get().description == "x" * 255
    finally:
        conn.close()


def test_wrong_password_gets_the_sso_error(running: RunningEngine) -> None:
    conn = running.connect(password="wrong")
    with pytest.raises(sdk.AuthError, match="access_denied"):
        conn.system_service().get()
    conn.close(logout=False)


def test_read_only_user_reads_and_is_refused_every_change(running: RunningEngine) -> None:
    conn = running.connect("reader@internal", READER_PASSWORD)
    try:
        system = conn.system_service()
        dc = system.data_centers_service().list()[0]
        with pytest.raises(sdk.AuthError) as refused:
            system.data_centers_service().add(types.DataCenter(name="dc2", local=False))
        assert refused.value.code == 403
        with pytest.raises(sdk.AuthError):
            system.data_centers_service().data_center_service(dc.id).update(types.DataCenter(description="x"))
        with pytest.raises(sdk.AuthError):
            system.data_centers_service().data_center_service(dc.id).remove()
        with pytest.raises(sdk.AuthError):
            system.storage_domains_service().storage_domain_service(dc.id).update_ovf_store()
    finally:
        conn.close()


def test_domain_lifecycle_and_vms(running: RunningEngine) -> None:
    conn = running.connect()
    try:
        system = conn.system_service()
        sds = system.storage_domains_service()
        host = system.hosts_service().list(search="status=up")[0]
        path = running.storage / "data1"
        path.mkdir()
        sd = sds.add(
            types.StorageDomain(
                name="data1",
                type=types.StorageDomainType.DATA,
                host=types.Host(name=host.name),
                storage=types.HostStorage(type=types.StorageType.LOCALFS, path=str(path)),
            )
        )
        assert sd.status == types.StorageDomainStatus.UNATTACHED
        dc = system.data_centers_service().list(search="name=Default")[0]
        attached = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
        attached.add(types.StorageDomain(id=sd.id))
        assert attached.storage_domain_service(sd.id).get().status == types.StorageDomainStatus.ACTIVE
        assert sds.list(search="name=data1 and datacenter=Default")[0].id == sd.id

        cluster = system.clusters_service().list(search="name=Default")[0]
        vms = system.vms_service()
        vm = vms.add(
            types.Vm(
                name="web1",
                cluster=types.Cluster(id=cluster.id),
                template=types.Template(name="Blank"),
                memory=2 * 1024**3,
                high_availability=types.HighAvailability(enabled=True, priority=50),
            )
        )
        vm_service = vms.vm_service(vm.id)
        vm_service.disk_attachments_service().add(
            types.DiskAttachment(
                disk=types.Disk(
                    name="web1_boot",
                    provisioned_size=1024**3,
                    format=types.DiskFormat.COW,
                    storage_domains=[types.StorageDomain(id=sd.id)],
                ),
                interface=types.DiskInterface.VIRTIO_SCSI,
                bootable=True,
                active=True,
            )
        )
        profile = system.vnic_profiles_service().list()[0]
        vm_service.nics_service().add(types.Nic(name="nic1", vnic_profile=types.VnicProfile(id=profile.id)))
        vm_service.start()
        got = vm_service.get()
        assert got.status == types.VmStatus.UP
        assert got.memory == 2 * 1024**3
        assert got.high_availability.enabled is True
        [nic] = vm_service.nics_service().list()
        assert nic.mac.address.startswith("56:6f:")
        [att] = vm_service.disk_attachments_service().list()
        assert att.bootable is True
        assert conn.follow_link(att.disk).name == "web1_boot"

        domain_service = sds.storage_domain_service(sd.id)
        domain_service.update_ovf_store()
        disks = domain_service.disks_service().list()
        stores = [d for d in disks if d.content_type == types.DiskContentType.OVF_STORE]
        assert len(stores) == 2
        assert all(d.name == "OVF_STORE" and d.alias == "OVF_STORE" for d in stores)
        assert all('"Updated":true' in d.description for d in stores)
        assert "web1_boot" in [d.name for d in disks]

        vm_service.shutdown()
        assert vm_service.get().status == types.VmStatus.DOWN
        attached.storage_domain_service(sd.id).deactivate()
        assert attached.storage_domain_service(sd.id).get().status == types.StorageDomainStatus.MAINTENANCE
        attached.storage_domain_service(sd.id).remove()
        assert domain_service.get().status == types.StorageDomainStatus.UNATTACHED
        assert vms.list(search="name=web1") == []  # left with its domain
        domain_service.remove(host=host.name)
        assert sds.list(search="name=data1") == []
        jobs = system.jobs_service().list()
        assert any("Attaching" in j.description and j.status == types.JobStatus.FINISHED for j in jobs)
    finally:
        conn.close()


def test_a_token_dies_with_its_user_and_password(running: RunningEngine) -> None:
    users = running.engine.users
    users.add("temp", "first-password", UserRole.ADMIN)
    conn = running.connect("temp@internal", "first-password")
    try:
        system = conn.system_service()
        assert system.data_centers_service().list()  # a token is issued and works
        users.set_password("temp", "second-password")
        with pytest.raises(sdk.Error):  # the SDK retries once with the old password, which fails too
            system.data_centers_service().list()
    finally:
        conn.close(logout=False)
    conn = running.connect("temp@internal", "second-password")
    try:
        assert conn.system_service().data_centers_service().list()
        users.remove("temp")
        with pytest.raises(sdk.Error):
            conn.system_service().data_centers_service().list()
    finally:
        conn.close(logout=False)

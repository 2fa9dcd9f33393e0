"""Invalid input gets a clear error naming the problem and what to do, and changes nothing."""

from __future__ import annotations

import re
from uuid import uuid4

import pytest

from ovfstore.engine.errors import Conflict, InvalidInput, NotFound
from ovfstore.engine.inventory import DiskChanges, NicChanges, StorageDomainChanges, TemplateChanges, VmChanges
from ovfstore.model import (
    BLANK_TEMPLATE_ID,
    GIB,
    Cluster,
    Disk,
    DiskAttachment,
    Nic,
    StorageDomain,
    Template,
    Vm,
    VmStatus,
)

from .conftest import World


def test_unknown_ids_are_not_found(world: World) -> None:
    missing = uuid4()
    inv = world.inv
    calls = [
        lambda: inv.vms.get(missing),
        lambda: inv.templates.get(missing),
        lambda: inv.disks.get(missing),
        lambda: inv.clusters.get(missing),
        lambda: inv.storage_domains.get(missing),
        lambda: inv.vms.update(missing, VmChanges(memory_mb=1)),
        lambda: inv.nics.remove(missing),
        lambda: inv.vms.add(Vm(name="x", cluster_id=missing)),
        lambda: inv.vms.add(Vm(name="x", cluster_id=world.cluster.id, template_id=missing)),
        lambda: inv.attachments.attach(DiskAttachment(entity_id=world.vm3.id, disk_id=missing)),
        lambda: inv.disks.add(Disk(alias="d", provisioned_size=GIB, domain_ids=[missing])),
    ]
    for call in calls:
        with pytest.raises(NotFound, match=str(missing)):
            call()
    # A VM id is not a template id.
    with pytest.raises(NotFound, match="template"):
        inv.templates.get(world.vm1.id)


def test_vm_name_is_unique_within_its_data_center_only(world: World) -> None:
    with pytest.raises(Conflict, match=r"VM name 'vm1' is already used in this data center"):
        world.inv.vms.add(Vm(name="vm1", cluster_id=world.cluster.id))
    with pytest.raises(Conflict, match="already used"):
        world.inv.vms.update(world.vm2.id, VmChanges(name="vm1"))
    assert world.inv.vms.get(world.vm2.id).name == "vm2"
    # Another data center may use the name.
    other = world.inv.vms.add(Vm(name="vm1", cluster_id=world.cluster2.id))
    assert other.name == "vm1"


def test_mac_already_in_use_in_the_data_center(world: World) -> None:
    used = world.nic1.mac
    assert used is not None
    with pytest.raises(Conflict, match=f"MAC {used} is already used"):
        world.inv.nics.add(Nic(entity_id=world.vm3.id, name="eth0", mac=used.upper()))
    assert world.inv.nics.list(world.vm3.id) == []


def test_mac_outside_the_pool_range(world: World) -> None:
    with pytest.raises(Conflict, match=r"outside the MAC pool 56:6f:00:00:00:00-56:6f:00:00:ff:ff"):
        world.inv.nics.add(Nic(entity_id=world.vm3.id, name="eth0", mac="00:1a:4a:00:00:01"))
    with pytest.raises(Conflict, match="outside the MAC pool"):
        world.inv.nics.update(world.nic1.id, NicChanges(mac="56:6f:01:00:00:01"))


def test_malformed_and_multicast_macs(world: World) -> None:
    for bad in ("56:6f:00:00:00", "zz:6f:00:00:00:01", "566f00000001"):
        with pytest.raises(InvalidInput, match="six hex octets"):
            world.inv.nics.add(Nic(entity_id=world.vm3.id, name="eth0", mac=bad))
    with pytest.raises(InvalidInput, match="multicast"):
        world.inv.nics.add(Nic(entity_id=world.vm3.id, name="eth0", mac="57:6f:00:00:00:01"))


def test_macs_are_allocated_from_the_pool_without_clashes(world: World) -> None:
    macs = {world.inv.nics.add(Nic(entity_id=world.vm3.id, name=f"eth{i}")).mac for i in range(5)}
    assert len(macs) == 5
    assert all(m is not None and m.startswith("56:6f:00:00:") for m in macs)
    assert world.nic1.mac not in macs


def test_disk_on_a_domain_of_another_data_center(world: World) -> None:
    foreign = world.inv.disks.add(Disk(alias="far", provisioned_size=GIB, domain_ids=[world.sd3.id]))
    with pytest.raises(Conflict, match=re.escape("copy or move the disk to a domain of the VM's data center")):
        world.inv.attachments.attach(DiskAttachment(entity_id=world.vm3.id, disk_id=foreign.id))
    with pytest.raises(Conflict, match="different data centers"):
        world.inv.disks.add(Disk(alias="x", provisioned_size=GIB, domain_ids=[world.sd1.id, world.sd3.id]))
    with pytest.raises(Conflict, match="different data centers"):
        world.inv.disks.move(world.d1.id, world.sd1.id, world.sd3.id)
    assert world.inv.attachments.list(world.vm3.id) == []


def test_disk_on_an_unattached_domain(world: World) -> None:
    loose = world.inv.storage_domains.add(StorageDomain(name="loose", path="/s/l"))
    with pytest.raises(Conflict, match="not attached to a data center; attach it first"):
        world.inv.disks.add(Disk(alias="x", provisioned_size=GIB, domain_ids=[loose.id]))


def test_disk_rules(world: World) -> None:
    inv = world.inv
    with pytest.raises(InvalidInput, match="cannot shrink"):
        inv.disks.update(world.d1.id, DiskChanges(provisioned_size=GIB))
    with pytest.raises(InvalidInput, match="positive"):
        inv.disks.add(Disk(alias="x", provisioned_size=0, domain_ids=[world.sd1.id]))
    with pytest.raises(Conflict, match="not shareable"):
        inv.attachments.attach(DiskAttachment(entity_id=world.vm3.id, disk_id=world.d1.id))
    with pytest.raises(Conflict, match="must stay shareable"):
        inv.disks.update(world.shared.id, DiskChanges(shareable=False))
    spare = inv.disks.add(Disk(alias="spare", provisioned_size=GIB, domain_ids=[world.sd1.id]))
    with pytest.raises(Conflict, match="already has a bootable disk"):
        inv.attachments.attach(DiskAttachment(entity_id=world.vm1.id, disk_id=spare.id, bootable=True))
    with pytest.raises(Conflict, match="already attached"):
        inv.attachments.attach(DiskAttachment(entity_id=world.vm1.id, disk_id=world.shared.id))


def test_bad_field_values_and_unknown_fields(world: World) -> None:
    inv = world.inv
    # A field no change set has is refused where the change set is made (mypy flags it before that).
    with pytest.raises(TypeError, match="db_generation"):
        VmChanges(db_generation=99)  # type: ignore[call-arg]
    with pytest.raises(InvalidInput, match="is not one of"):
        inv.vms.update(world.vm1.id, VmChanges(status=3))
    with pytest.raises(InvalidInput, match="not a valid int"):
        inv.vms.update(world.vm1.id, VmChanges(memory_mb="lots"))
    with pytest.raises(InvalidInput, match="guaranteed memory"):
        inv.vms.update(world.vm1.id, VmChanges(memory_mb=100_000))
    with pytest.raises(InvalidInput, match="priority"):
        inv.vms.update(world.vm1.id, VmChanges(priority=101))
    with pytest.raises(InvalidInput, match="ovf_store_count 17 is out of range"):
        inv.storage_domains.update(world.sd1.id, StorageDomainChanges(ovf_store_count=17))
    with pytest.raises(InvalidInput, match="needs a name"):
        inv.vms.add(Vm(name=" ", cluster_id=world.cluster.id))
    # Values arrive as the API parsed them: enum values and id strings are accepted.
    assert inv.vms.update(world.vm1.id, VmChanges(status=1)).status is VmStatus.UP
    assert inv.vms.update(world.vm1.id, VmChanges(lease_domain_id=str(world.sd1.id))).lease_domain_id == world.sd1.id


def test_removals_that_would_orphan_things_are_refused(world: World) -> None:
    inv = world.inv
    with pytest.raises(Conflict, match="used by VMs"):
        inv.templates.remove(world.template.id)
    with pytest.raises(Conflict, match="Blank template"):
        inv.templates.remove(BLANK_TEMPLATE_ID)
    with pytest.raises(Conflict, match="still has VMs or templates"):
        inv.clusters.remove(world.cluster.id)
    with pytest.raises(Conflict, match="still holds disks"):
        inv.storage_domains.remove(world.sd1.id)
    with pytest.raises(Conflict, match="used by NICs"):
        inv.vnic_profiles.remove(world.profile_id)
    inv.vms.update(world.vm1.id, VmChanges(delete_protected=True))
    with pytest.raises(Conflict, match="delete-protected"):
        inv.vms.remove(world.vm1.id)
    inv.vms.set_status(world.vm2.id, VmStatus.UP)
    with pytest.raises(Conflict, match="stop it"):
        inv.vms.remove(world.vm2.id)


def test_template_versions_share_the_base_name(world: World) -> None:
    v2 = world.inv.templates.add(
        Template(name="ignored", cluster_id=world.cluster.id, base_template_id=world.template.id)
    )
    assert (v2.name, v2.version_number) == ("rhel9", 2)
    with pytest.raises(Conflict, match="template name 'rhel9' is already used"):
        world.inv.templates.add(Template(name="rhel9", cluster_id=world.cluster.id))
    with pytest.raises(InvalidInput, match="takes its base template's name"):
        world.inv.templates.update(v2.id, TemplateChanges(name="other"))
    world.inv.templates.update(world.template.id, TemplateChanges(name="rhel9-gold"))
    assert world.inv.templates.get(v2.id).name == "rhel9-gold"


def test_cluster_move_stays_within_the_data_center(world: World) -> None:
    other = world.inv.clusters.add(Cluster(name="c-b", data_center_id=world.dc.id))
    assert world.inv.vms.update(world.vm3.id, VmChanges(cluster_id=other.id)).cluster_id == other.id
    with pytest.raises(Conflict, match="same data center"):
        world.inv.vms.update(world.vm3.id, VmChanges(cluster_id=world.cluster2.id))


def test_bootstrap_is_idempotent(world: World) -> None:
    before = (world.inv.data_centers.list(), world.inv.templates.list(), world.inv.roles.list())
    world.inv.bootstrap()
    assert (world.inv.data_centers.list(), world.inv.templates.list(), world.inv.roles.list()) == before
    assert {r.name for r in world.inv.roles.list()} >= {"SuperUser", "ReadOnlyAdmin", "UserRole"}


def test_text_fields_are_bounded_as_ovirt_bounds_them(world: World) -> None:
    """Every free text ends in an OVF: an unbounded one would make the OVF unstorable (issue 13)."""
    inv, before = world.inv, world.generations()
    refused = [
        (
            lambda: inv.vms.add(Vm(name="v", cluster_id=world.cluster.id, description=">" * 256)),
            "description",
            256,
            255,
        ),
        (lambda: inv.vms.update(world.vm1.id, VmChanges(description=">" * 3_000_000)), "description", 3_000_000, 255),
        (lambda: inv.vms.update(world.vm1.id, VmChanges(comment="c" * 4001)), "comment", 4001, 4000),
        (
            lambda: inv.templates.update(world.template.id, TemplateChanges(description="t" * 256)),
            "description",
            256,
            255,
        ),
        (lambda: inv.disks.update(world.d1.id, DiskChanges(description="d" * 501)), "description", 501, 500),
        (
            lambda: inv.disks.add(
                Disk(alias="d", provisioned_size=GIB, domain_ids=[world.sd1.id], description="d" * 501)
            ),
            "description",
            501,
            500,
        ),
        (
            lambda: inv.nics.add(Nic(entity_id=world.vm3.id, name="n" * 256, vnic_profile_id=world.profile_id)),
            "name",
            256,
            255,
        ),
        (
            lambda: inv.storage_domains.update(world.sd1.id, StorageDomainChanges(comment="s" * 4001)),
            "comment",
            4001,
            4000,
        ),
        (
            lambda: inv.clusters.add(Cluster(name="c", data_center_id=world.dc.id, description="c" * 4001)),
            "description",
            4001,
            4000,
        ),
    ]
    for call, field, length, limit in refused:
        with pytest.raises(InvalidInput, match=rf"{field} is {length} characters long; the limit is {limit}"):
            call()
    assert world.generations() == before
    assert inv.vms.get(world.vm1.id).description == ""
    # At the limit is fine.
    assert inv.vms.update(world.vm1.id, VmChanges(description=">" * 255)).description == ">" * 255
    assert inv.disks.update(world.d1.id, DiskChanges(description="d" * 500)).description == "d" * 500

"""Each kind of change moves the generation of exactly the entities whose OVF it alters, by one step."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from ovfstore.engine.db import schema
from ovfstore.engine.errors import Conflict
from ovfstore.engine.inventory import (
    AffinityGroupChanges,
    AffinityLabelChanges,
    AttachmentChanges,
    Changes,
    ClusterChanges,
    DataCenterChanges,
    DiskChanges,
    NetworkChanges,
    NicChanges,
    RoleChanges,
    SnapshotChanges,
    StorageDomainChanges,
    TemplateChanges,
    VmChanges,
    VnicProfileChanges,
    VolumeChanges,
)
from ovfstore.model import (
    GIB,
    AffinityGroup,
    AffinityLabel,
    Disk,
    DiskAttachment,
    DiskInterface,
    DiskStatus,
    EntityType,
    Host,
    Nic,
    Role,
    Snapshot,
    SnapshotStatus,
    StorageDomain,
    VmStatus,
    Volume,
    VolumeFormat,
    utcnow,
)

from .conftest import World


def test_vm_fields_bump_only_that_vm(world: World) -> None:
    assert world.bumped_by(
        lambda: world.inv.vms.update(world.vm1.id, VmChanges(memory_mb=2048, max_memory_mb=8192))
    ) == {world.vm1.id}
    moved = world.bumped_by(
        lambda: world.inv.vms.update(world.vm2.id, VmChanges(description="web", high_availability=True))
    )
    assert moved == {world.vm2.id}
    assert world.inv.vms.get(world.vm2.id).high_availability is True


def test_unchanged_values_bump_nothing(world: World) -> None:
    assert (
        world.bumped_by(lambda: world.inv.vms.update(world.vm1.id, VmChanges(memory_mb=world.vm1.memory_mb))) == set()
    )


def test_run_status_and_image_lock_bump_the_vm(world: World) -> None:
    assert world.bumped_by(lambda: world.inv.vms.set_status(world.vm1.id, VmStatus.UP)) == {world.vm1.id}
    assert world.bumped_by(lambda: world.inv.vms.set_status(world.vm2.id, VmStatus.IMAGE_LOCKED)) == {world.vm2.id}
    assert world.inv.vms.get(world.vm2.id).status is VmStatus.IMAGE_LOCKED


def test_template_rename_bumps_it_and_the_vms_made_from_it(world: World) -> None:
    t = world.template.id
    assert world.bumped_by(lambda: world.inv.templates.update(t, TemplateChanges(name="rhel9-gold"))) == {
        t,
        world.vm1.id,
    }
    assert world.bumped_by(lambda: world.inv.templates.update(t, TemplateChanges(description="golden"))) == {t}


def test_disk_attach_and_detach_bump_the_entity(world: World) -> None:
    floating = world.inv.disks.add(Disk(alias="spare", provisioned_size=GIB, domain_ids=[world.sd2.id]))
    attach = DiskAttachment(entity_id=world.vm3.id, disk_id=floating.id)
    assert world.bumped_by(lambda: world.inv.attachments.attach(attach)) == {world.vm3.id}
    assert world.bumped_by(lambda: world.inv.attachments.detach(world.vm1.id, world.d2.id)) == {world.vm1.id}


def test_floating_disk_and_infrastructure_bump_nothing(world: World) -> None:
    inv = world.inv
    assert (
        world.bumped_by(lambda: inv.disks.add(Disk(alias="f", provisioned_size=GIB, domain_ids=[world.sd1.id])))
        == set()
    )
    assert world.bumped_by(lambda: inv.hosts.add(Host(name="h1", cluster_id=world.cluster.id, address="x"))) == set()
    assert (
        world.bumped_by(lambda: inv.storage_domains.update(world.sd1.id, StorageDomainChanges(description="fast")))
        == set()
    )
    assert world.bumped_by(lambda: inv.clusters.update(world.cluster.id, ClusterChanges(cpu_type="AMD EPYC"))) == set()
    assert world.bumped_by(lambda: inv.data_centers.update(world.dc.id, DataCenterChanges(description="main"))) == set()


def test_disk_changes_bump_every_entity_it_is_attached_to(world: World) -> None:
    inv = world.inv
    assert world.bumped_by(lambda: inv.disks.update(world.d1.id, DiskChanges(alias="boot"))) == {world.vm1.id}
    assert world.bumped_by(lambda: inv.disks.update(world.shared.id, DiskChanges(description="db"))) == {
        world.vm1.id,
        world.vm2.id,
    }
    assert world.bumped_by(lambda: inv.disks.update(world.template_disk.id, DiskChanges(wipe_after_delete=True))) == {
        world.template.id
    }


def test_resize_grows_the_leaf_and_bumps(world: World) -> None:
    assert world.bumped_by(lambda: world.inv.disks.update(world.d1.id, DiskChanges(provisioned_size=20 * GIB))) == {
        world.vm1.id
    }
    disk = world.inv.disks.get(world.d1.id)
    assert disk.leaf is not None
    assert disk.leaf.capacity == 20 * GIB


def test_locking_a_disk_bumps_its_owners(world: World) -> None:
    moved = world.bumped_by(lambda: world.inv.disks.update(world.d3.id, DiskChanges(status=DiskStatus.LOCKED)))
    assert moved == {world.vm2.id}
    assert world.inv.disks.get(world.d3.id).status is DiskStatus.LOCKED


def test_moving_a_disk_bumps_its_owner(world: World) -> None:
    moved = world.bumped_by(lambda: world.inv.disks.move(world.d2.id, world.sd2.id, world.sd1.id))
    assert moved == {world.vm1.id}
    assert world.inv.disks.get(world.d2.id).domain_ids == [world.sd1.id]


def test_copying_a_template_disk_bumps_the_template(world: World) -> None:
    moved = world.bumped_by(lambda: world.inv.disks.copy(world.template_disk.id, world.sd2.id))
    assert moved == {world.template.id}
    assert set(world.inv.disks.get(world.template_disk.id).domain_ids) == {world.sd1.id, world.sd2.id}


def test_removing_a_disk_bumps_its_owners(world: World) -> None:
    assert world.bumped_by(lambda: world.inv.disks.remove(world.shared.id)) == {world.vm1.id, world.vm2.id}


def test_volume_chain_changes_bump_the_owner(world: World) -> None:
    leaf = world.inv.disks.get(world.d1.id).leaf
    assert leaf is not None
    top = Volume(disk_id=world.d1.id, parent_id=leaf.id, capacity=leaf.capacity, format=VolumeFormat.COW)
    assert world.bumped_by(lambda: world.inv.disks.add_volume(top)) == {world.vm1.id}
    assert [v.id for v in world.inv.disks.get(world.d1.id).volumes] == [leaf.id, top.id]
    assert world.bumped_by(lambda: world.inv.disks.update_volume(top.id, VolumeChanges(actual_size=GIB))) == {
        world.vm1.id
    }
    assert world.bumped_by(lambda: world.inv.disks.remove_volume(top.id)) == {world.vm1.id}


def test_attachment_settings_bump_only_that_entity(world: World) -> None:
    moved = world.bumped_by(
        lambda: world.inv.attachments.update(
            world.vm2.id, world.shared.id, AttachmentChanges(interface=DiskInterface.VIRTIO)
        )
    )
    assert moved == {world.vm2.id}


def test_nic_changes_bump_the_owner(world: World) -> None:
    inv = world.inv
    nic = Nic(entity_id=world.vm3.id, name="eth0", vnic_profile_id=world.profile_id)
    assert world.bumped_by(lambda: inv.nics.add(nic)) == {world.vm3.id}
    assert world.bumped_by(lambda: inv.nics.update(nic.id, NicChanges(linked=False))) == {world.vm3.id}
    assert world.bumped_by(lambda: inv.nics.remove(nic.id)) == {world.vm3.id}


def test_snapshot_changes_bump_the_vm(world: World) -> None:
    inv = world.inv
    snap = Snapshot(vm_id=world.vm1.id, description="before upgrade", status=SnapshotStatus.LOCKED)
    assert world.bumped_by(lambda: inv.snapshots.add(snap)) == {world.vm1.id}
    assert world.bumped_by(lambda: inv.snapshots.update(snap.id, SnapshotChanges(status=SnapshotStatus.OK))) == {
        world.vm1.id
    }
    assert world.bumped_by(lambda: inv.snapshots.remove(snap.id)) == {world.vm1.id}


def test_cluster_name_and_version_bump_its_entities(world: World) -> None:
    everyone = {world.template.id, world.vm1.id, world.vm2.id, world.vm3.id}
    assert world.bumped_by(lambda: world.inv.clusters.update(world.cluster.id, ClusterChanges(name="prod"))) == everyone
    assert world.bumped_by(
        lambda: world.inv.clusters.update(world.cluster.id, ClusterChanges(compatibility_version="4.8"))
    ) == (everyone)


def test_network_and_profile_renames_bump_the_vms_using_them(world: World) -> None:
    users = {world.vm1.id, world.vm2.id}
    assert world.bumped_by(lambda: world.inv.networks.update(world.network_id, NetworkChanges(name="mgmt"))) == users
    assert (
        world.bumped_by(lambda: world.inv.vnic_profiles.update(world.profile_id, VnicProfileChanges(name="mgmt-p")))
        == users
    )
    assert world.bumped_by(lambda: world.inv.networks.update(world.network_id, NetworkChanges(mtu=9000))) == set()


def test_permissions_and_role_renames_bump_the_entities(world: World) -> None:
    inv = world.inv
    role = inv.roles.add(Role(name="Operator"))
    perm = world.bumped_by(lambda: inv.permissions.add(world.vm3.id, "alice@internal", role.id))
    assert perm == {world.vm3.id}
    assert world.bumped_by(lambda: inv.roles.update(role.id, RoleChanges(name="VmOperator"))) == {world.vm3.id}
    (granted,) = inv.permissions.list(world.vm3.id)
    assert granted.role_name == "VmOperator"
    assert world.bumped_by(lambda: inv.permissions.remove(granted.id)) == {world.vm3.id}


def test_affinity_groups_and_labels_bump_members(world: World) -> None:
    inv = world.inv
    group = inv.affinity_groups.add(AffinityGroup(name="apart", cluster_id=world.cluster.id, positive=False))
    label = inv.affinity_labels.add(AffinityLabel(name="gpu"))
    assert world.bumped_by(lambda: inv.affinity_groups.add_member(group.id, world.vm1.id)) == {world.vm1.id}
    assert world.bumped_by(lambda: inv.affinity_labels.add_member(label.id, world.vm2.id)) == {world.vm2.id}
    assert world.bumped_by(lambda: inv.affinity_groups.update(group.id, AffinityGroupChanges(name="spread"))) == {
        world.vm1.id
    }
    assert world.bumped_by(lambda: inv.affinity_labels.update(label.id, AffinityLabelChanges(name="nvidia"))) == {
        world.vm2.id
    }
    assert world.bumped_by(lambda: inv.affinity_groups.remove(group.id)) == {world.vm1.id}
    assert world.bumped_by(lambda: inv.affinity_labels.remove_member(label.id, world.vm2.id)) == {world.vm2.id}


def test_one_command_is_one_generation_step_whatever_it_touches(world: World) -> None:
    before = world.inv.entities.generation(world.vm1.id)
    world.inv.vms.update(world.vm1.id, VmChanges(name="vm1-renamed", memory_mb=2048, max_memory_mb=4096, cpu_sockets=4))
    assert world.inv.entities.generation(world.vm1.id) == before + 1


def test_listeners_hear_committed_changes_only(world: World) -> None:
    heard: list[Changes] = []
    world.inv.subscribe(heard.append)
    world.inv.vms.update(world.vm1.id, VmChanges(comment="hello"))
    assert heard == [Changes(entity_ids=frozenset({world.vm1.id}))]

    heard.clear()
    with pytest.raises(Conflict):
        world.inv.vms.update(world.vm1.id, VmChanges(name="vm2", comment="never"))  # the name is taken
    assert heard == []
    assert (world.inv.vms.get(world.vm1.id).name, world.inv.vms.get(world.vm1.id).comment) == ("vm1", "hello")

    new_disk = Disk(alias="f", provisioned_size=GIB, domain_ids=[world.sd1.id])
    world.inv.disks.add(new_disk)
    assert heard == [], "a floating disk changes no OVF"


def test_new_and_removed_entities_reach_listeners_and_the_cache(world: World) -> None:
    heard: list[Changes] = []
    world.inv.subscribe(heard.append)
    from ovfstore.model import Vm

    vm = world.inv.vms.add(Vm(name="vm4", cluster_id=world.cluster.id))
    assert heard[-1].entity_ids == frozenset({vm.id})
    assert world.inv.entities.generation(vm.id) == 1

    # Pretend the updater stored vm2's OVF; removing vm2 must leave the cached row, marked deleted.
    with world.inv.db.write() as conn:
        conn.execute(
            insert(schema.ovf_cache).values(
                entity_id=world.vm2.id,
                entity_type=EntityType.VM,
                ovf_generation=1,
                ovf_data=b"<x/>",
                ovf_size=4,
                ovf_sha256="0" * 64,
                deleted=False,
                updated_at=utcnow(),
            )
        )
    others = world.generations()
    world.inv.vms.remove(world.vm2.id)
    assert heard[-1] == Changes(entity_ids=frozenset(), deleted_ids=frozenset({world.vm2.id}))
    after = world.generations()
    assert world.vm2.id not in after
    assert {k: v for k, v in others.items() if k != world.vm2.id} == after
    with world.inv.db.read() as conn:
        row = conn.execute(select(schema.ovf_cache).where(schema.ovf_cache.c.entity_id == world.vm2.id)).one()
    assert row.deleted is True
    # vm2's own disk went with it; the disk it shared with vm1 stayed.
    remaining = {d.id for d in world.inv.disks.list()}
    assert world.d3.id not in remaining
    assert world.shared.id in remaining


def test_storage_domain_store_count_is_kept(world: World) -> None:
    sd = world.inv.storage_domains.add(StorageDomain(name="nostore", path="/s/x", ovf_store_count=0))
    assert world.inv.storage_domains.get(sd.id).ovf_store_count == 0
    assert world.inv.storage_domains.get(world.sd1.id).ovf_store_count == 2


def test_a_transaction_of_several_commands_commits_together_or_not_at_all(world: World) -> None:
    from ovfstore.model import Vm

    heard: list[Changes] = []
    world.inv.subscribe(heard.append)

    def three_commands() -> None:
        with world.inv.transaction():
            vm = world.inv.vms.add(Vm(name="atomic", cluster_id=world.cluster.id))
            world.inv.nics.add(Nic(entity_id=vm.id, name="nic1", vnic_profile_id=world.profile_id))
            world.inv.vms.add(Vm(name="vm1", cluster_id=world.cluster.id))  # taken: everything rolls back

    with pytest.raises(Conflict):
        three_commands()
    assert "atomic" not in {v.name for v in world.inv.vms.list()}
    assert heard == []

    with world.inv.transaction():
        vm = world.inv.vms.add(Vm(name="atomic", cluster_id=world.cluster.id))
        world.inv.nics.add(Nic(entity_id=vm.id, name="nic1", vnic_profile_id=world.profile_id))
    assert [n.name for n in world.inv.nics.list(vm.id)] == ["nic1"]
    assert len(heard) == 1, "one commit, one event"
    assert world.inv.entities.generation(vm.id) == 1, "created in this transaction: no bump"

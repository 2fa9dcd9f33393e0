from __future__ import annotations

from uuid import uuid4

from ovfstore.model import Disk, Template, Vm, VmStatus, Volume


def test_chain_orders_volumes_from_base_to_leaf_whatever_the_list_order() -> None:
    disk = Disk(alias="d", provisioned_size=1 << 30)
    base = Volume(disk_id=disk.id, capacity=1 << 30)
    mid = Volume(disk_id=disk.id, parent_id=base.id, capacity=1 << 30)
    leaf = Volume(disk_id=disk.id, parent_id=mid.id, capacity=1 << 30)
    disk.volumes = [leaf, base, mid]
    assert [v.id for v in disk.chain()] == [base.id, mid.id, leaf.id]
    assert disk.leaf is leaf


def test_broken_chain_stops_instead_of_looping() -> None:
    disk = Disk(alias="d", provisioned_size=1)
    a, b = uuid4(), uuid4()
    disk.volumes = [Volume(id=a, disk_id=disk.id, parent_id=b, capacity=1)]
    assert disk.chain() == []
    assert disk.leaf is None


def test_template_base_id_is_itself_unless_it_is_a_version() -> None:
    base = Template(name="t")
    version = Template(name="t", base_template_id=base.id, version_number=2)
    assert base.base_id == base.id
    assert version.base_id == base.id


def test_vm_status_codes_are_the_store_map_codes() -> None:
    assert VmStatus.UP == 1
    assert VmStatus.IMAGE_LOCKED == 15
    assert VmStatus.POWERING_DOWN.api_name == "powering_down"
    assert Vm(name="x", cpu_sockets=2, cpu_cores=3, cpu_threads=2).cpu_count == 12

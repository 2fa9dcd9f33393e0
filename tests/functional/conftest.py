"""A small but complete inventory, built through the inventory commands on each database backend."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from uuid import UUID

import pytest
from sqlalchemy import select

from ovfstore.engine.db import schema
from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory import Inventory
from ovfstore.model import (
    GIB,
    Cluster,
    DataCenter,
    Disk,
    DiskAttachment,
    DomainStatus,
    Nic,
    StorageDomain,
    Template,
    Vm,
)
from tests.conftest import IN_CI
from tests.functional.agent_fixtures import agent, agent_factory  # noqa: F401  (fixtures of the host agent)


@dataclass
class World:
    """Default DC with two domains; a template on sd1; vm1 (from the template: disks on sd1 and sd2, and
    a disk shared with vm2), vm2 (from Blank, disk on sd2), vm3 (no disk); a second DC with sd3."""

    inv: Inventory
    dc: DataCenter
    cluster: Cluster
    dc2: DataCenter
    cluster2: Cluster
    sd1: StorageDomain
    sd2: StorageDomain
    sd3: StorageDomain
    profile_id: UUID
    network_id: UUID
    template: Template
    template_disk: Disk
    vm1: Vm
    vm2: Vm
    vm3: Vm
    d1: Disk
    d2: Disk
    d3: Disk
    shared: Disk
    nic1: Nic

    def generations(self) -> dict[UUID, int]:
        with self.inv.db.read() as conn:
            rows = conn.execute(select(schema.vm_static.c.id, schema.vm_static.c.db_generation))
            return {row.id: row.db_generation for row in rows}

    def bumped_by(self, action: object) -> set[UUID]:
        """Run `action`; the entities whose generation moved. Each may move by one step only."""
        before = self.generations()
        assert callable(action)
        action()
        after = self.generations()
        moved = {k for k in after if k in before and after[k] != before[k]}
        for k in moved:
            assert after[k] == before[k] + 1, f"{k} jumped from {before[k]} to {after[k]}"
        return moved


def _disk(world_inv: Inventory, alias: str, domain: StorageDomain, *, shareable: bool = False) -> Disk:
    return world_inv.disks.add(
        Disk(alias=alias, provisioned_size=10 * GIB, domain_ids=[domain.id], shareable=shareable)
    )


@pytest.fixture
def world(database: Database) -> World:
    inv = Inventory(database)
    inv.bootstrap()
    dc = next(d for d in inv.data_centers.list() if d.name == "Default")
    cluster = next(c for c in inv.clusters.list() if c.name == "Default")
    network = next(n for n in inv.networks.list(dc.id) if n.name == "ovirtmgmt")
    profile = inv.vnic_profiles.list(network.id)[0]
    dc2 = inv.data_centers.add(
        DataCenter(name="dc2", mac_pool_start="56:6f:01:00:00:00", mac_pool_end="56:6f:01:00:00:ff")
    )
    cluster2 = inv.clusters.add(Cluster(name="cluster2", data_center_id=dc2.id))
    active = DomainStatus.ACTIVE
    sd1 = inv.storage_domains.add(
        StorageDomain(name="sd1", path="/s/1", data_center_id=dc.id, status=active, master=True)
    )
    sd2 = inv.storage_domains.add(StorageDomain(name="sd2", path="/s/2", data_center_id=dc.id, status=active))
    sd3 = inv.storage_domains.add(StorageDomain(name="sd3", path="/s/3", data_center_id=dc2.id, status=active))

    template = inv.templates.add(Template(name="rhel9", cluster_id=cluster.id, os_type="rhel_9x64"))
    template_disk = _disk(inv, "rhel9_disk", sd1)
    inv.attachments.attach(DiskAttachment(entity_id=template.id, disk_id=template_disk.id, bootable=True))

    vm1 = inv.vms.add(Vm(name="vm1", cluster_id=cluster.id, template_id=template.id))
    vm2 = inv.vms.add(Vm(name="vm2", cluster_id=cluster.id))
    vm3 = inv.vms.add(Vm(name="vm3", cluster_id=cluster.id))
    d1, d2, d3 = _disk(inv, "vm1_boot", sd1), _disk(inv, "vm1_data", sd2), _disk(inv, "vm2_boot", sd2)
    shared = _disk(inv, "shared", sd1, shareable=True)
    inv.attachments.attach(DiskAttachment(entity_id=vm1.id, disk_id=d1.id, bootable=True))
    inv.attachments.attach(DiskAttachment(entity_id=vm1.id, disk_id=d2.id))
    inv.attachments.attach(DiskAttachment(entity_id=vm2.id, disk_id=d3.id, bootable=True))
    inv.attachments.attach(DiskAttachment(entity_id=vm1.id, disk_id=shared.id))
    inv.attachments.attach(DiskAttachment(entity_id=vm2.id, disk_id=shared.id))
    nic1 = inv.nics.add(Nic(entity_id=vm1.id, name="nic1", vnic_profile_id=profile.id))
    inv.nics.add(Nic(entity_id=vm2.id, name="nic1", vnic_profile_id=profile.id))
    return World(
        inv=inv, dc=dc, cluster=cluster, dc2=dc2, cluster2=cluster2, sd1=sd1, sd2=sd2, sd3=sd3,
        profile_id=profile.id, network_id=network.id, template=template, template_disk=template_disk,
        vm1=vm1, vm2=vm2, vm3=vm3, d1=d1, d2=d2, d3=d3, shared=shared, nic1=nic1,
    )  # fmt: skip


@pytest.fixture
def chattr() -> str:
    """chattr's path, to make a volume file immutable (a write into it then fails, even as root)."""
    path = shutil.which("chattr")
    if os.geteuid() != 0 or path is None:
        reason = "this test makes a volume file immutable with chattr, as root"
        if IN_CI:
            pytest.fail(f"required under CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return path

"""The benchmarks' inventory: N VMs with 2 disks and 2 NICs each over D file domains (4 by default), VM
i with its disks on domains i%D and (i+1)%D (so each domain holds 2N/D VMs), inserted in bulk, not through the
inventory commands. Shared by `update_bench.py` and `recovery_bench.py`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Table, insert

from ovfstore.engine import macs
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.db.rows import entity_values, values
from ovfstore.engine.inventory import DataCenterChanges, Inventory
from ovfstore.model import GIB, DataCenter, Disk, DiskAttachment, Nic, StorageDomain, Vm, Volume

DOMAINS = 4
#: Rows per bulk insert.
BATCH = 1000
MAC_BASE = 0x566F_0000_0000
TABLES: tuple[tuple[str, Table], ...] = (
    ("vm", s.vm_static), ("disk", s.disks), ("dd", s.disk_domains), ("vol", s.volumes),
    ("att", s.disk_attachments), ("nic", s.nics),
)  # fmt: skip

Rows = dict[str, list[dict[str, Any]]]


def open_mac_pool(inv: Inventory) -> DataCenter:
    """The default data center with a MAC pool large enough for every benchmark size."""
    dc = inv.data_centers.list()[0]
    return inv.data_centers.update(
        dc.id, DataCenterChanges(mac_pool_start="56:6f:00:00:00:00", mac_pool_end="56:6f:ff:ff:ff:ff")
    )


def batches(
    domains: list[StorageDomain], cluster_id: uuid.UUID, profile_id: uuid.UUID, vms: int
) -> Iterator[tuple[list[uuid.UUID], Rows]]:
    """The inventory's rows, `BATCH` VMs at a time, with the ids of those VMs."""
    ids: list[uuid.UUID] = []
    batch: Rows = {key: [] for key, _ in TABLES}
    for i in range(vms):
        vm = Vm(name=f"vm{i:05d}", cluster_id=cluster_id, os_type="rhel_9x64", description=f"benchmark VM {i}")
        ids.append(vm.id)
        batch["vm"].append(entity_values(vm))
        for j in range(2):
            disk = Disk(alias=f"vm{i:05d}_disk{j}", provisioned_size=20 * GIB)
            batch["disk"].append(values(disk, s.disks))
            batch["dd"].append({"disk_id": disk.id, "domain_id": domains[(i + j) % len(domains)].id})
            batch["vol"].append(values(Volume(disk_id=disk.id, capacity=disk.provisioned_size), s.volumes))
            batch["att"].append(
                values(DiskAttachment(entity_id=vm.id, disk_id=disk.id, bootable=j == 0), s.disk_attachments)
            )
        for j in range(2):
            mac = macs.from_int(MAC_BASE + 2 * i + j)
            nic = Nic(entity_id=vm.id, name=f"nic{j}", mac=mac, vnic_profile_id=profile_id)
            batch["nic"].append(values(nic, s.nics))
        if len(ids) >= BATCH:
            yield ids, batch
            ids, batch = [], {key: [] for key, _ in TABLES}
    if ids:
        yield ids, batch


def insert_rows(db: Database, rows: Rows) -> None:
    """One transaction, one multi-row insert per table."""
    with db.write() as conn:
        for key, table in TABLES:
            if rows[key]:
                conn.execute(insert(table), rows[key])


def populate(
    db: Database, inv: Inventory, domains: list[StorageDomain], cluster_id: uuid.UUID, vms: int
) -> list[uuid.UUID]:
    """Bulk insert the benchmark inventory; returns the VM ids in order."""
    profile = inv.vnic_profiles.list()[0]
    ids: list[uuid.UUID] = []
    for batch_ids, rows in batches(domains, cluster_id, profile.id, vms):
        insert_rows(db, rows)
        ids += batch_ids
    return ids

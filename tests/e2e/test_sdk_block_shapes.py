"""The shapes of a block domain as the oVirt SDK reads them, and the API's refusals that need no LUN: a
block domain recorded in the engine (as an import leaves it) over a running engine and real agent."""

from __future__ import annotations

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest

from ovfstore.model import GIB, LogicalUnit, StorageDomain, StorageType
from tests.e2e.conftest import RunningEngine


def test_a_block_domain_reads_as_ovirt_shows_it(running: RunningEngine) -> None:
    luns = [
        LogicalUnit(id="36001405aa", size=64 * GIB, vendor_id="LIO-ORG", product_id="disk0", serial="aa", pv_uuid="p1"),
        LogicalUnit(id="36001405bb", size=32 * GIB, vendor_id="LIO-ORG", product_id="disk1", serial="bb", pv_uuid="p2"),
    ]
    domain = running.engine.inventory.storage_domains.add(
        StorageDomain(name="fc_data", storage_type=StorageType.FCP, vg_uuid="Jn3x0L-abcd", logical_units=luns)
    )
    conn = running.connect()
    try:
        system = conn.system_service()
        got = system.storage_domains_service().storage_domain_service(str(domain.id)).get()
        assert got.storage.type == types.StorageType.FCP
        assert got.storage.path is None
        vg = got.storage.volume_group
        assert vg.id == "Jn3x0L-abcd"
        assert [(lu.id, lu.size, lu.vendor_id, lu.product_id, lu.serial) for lu in vg.logical_units] == [
            ("36001405aa", 64 * GIB, "LIO-ORG", "disk0", "aa"),
            ("36001405bb", 32 * GIB, "LIO-ORG", "disk1", "bb"),
        ]
        assert {(lu.volume_group_id, lu.storage_domain_id) for lu in vg.logical_units} == {
            ("Jn3x0L-abcd", str(domain.id))
        }
        found = system.storage_domains_service().list(search="storage.volume_group=Jn3x0L-abcd")
        assert [d.name for d in found] == ["fc_data"]
        assert [d.name for d in system.storage_domains_service().list(search="storage.type=fcp")] == ["fc_data"]

        # A raw sparse disk cannot be an LV: 400 with the way out, before any host is asked.
        with pytest.raises(sdk.Error) as refused:
            system.disks_service().add(
                types.Disk(name="thin", provisioned_size=GIB, format=types.DiskFormat.RAW, sparse=True,
                           storage_domains=[types.StorageDomain(id=str(domain.id))])
            )  # fmt: skip
        assert refused.value.code == 400
        assert "preallocated" in str(refused.value)

        # A block domain needs its LUNs; an unknown LUN is refused by the host's answer, not guessed.
        add = system.storage_domains_service().add
        with pytest.raises(sdk.Error) as no_luns:
            add(types.StorageDomain(name="x", type=types.StorageDomainType.DATA,
                                    storage=types.HostStorage(type=types.StorageType.ISCSI)))  # fmt: skip
        assert no_luns.value.code == 400
        assert "logical_unit" in str(no_luns.value)
    finally:
        conn.close()

"""Importing domains the way oVirt leaves them (stores without a manifest, IST dates, DISKTYPE=2, the real
sample OVFs), and domains with hostile stores, through a real agent into a fresh engine."""

from __future__ import annotations

import io
import re
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from ovfstore.engine.errors import Conflict
from ovfstore.engine.recovery import RegistrationOptions
from ovfstore.model import VmStatus
from tests.fixtures.ovirt_domain import OVIRT_33_VM, V2V_VM, OvirtStore, build_ovirt_domain, ovirt_tar, sample_ovfs
from tests.fixtures.segments import RENAMED_V2V, sample_segmented_store
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.site import FreshEngine, fresh_engine

STALE_POOL = "5c80c932-20ef-4c55-9e06-383c6152a0dc"


@pytest.fixture
def engine(empty_db_url: str, agent_factory: Callable[..., AgentProcess], tmp_path: Path) -> FreshEngine:
    agent = agent_factory(roots=(tmp_path / "storage",))
    return fresh_engine(empty_db_url, agent)


def test_an_ovirt_domain_is_imported_and_its_vms_come_back(engine: FreshEngine, tmp_path: Path) -> None:
    newest = OvirtStore(last_updated="Thu Feb 18 00:23:07 IST 2016")
    older = OvirtStore(disk_type="2", last_updated="Wed Feb 17 09:00:00 IDT 2016")
    directory = build_ovirt_domain(tmp_path / "storage", pool_id=STALE_POOL, stores=[newest, older])

    with pytest.raises(Conflict, match="still attached to data center"):
        engine.recovery.import_domain(str(directory), host=engine.host)
    domain = engine.import_and_attach(directory, "from-ovirt")

    found = {str(e.id): e for e in engine.recovery.unregistered_entities(domain.id)}
    assert set(found) == {OVIRT_33_VM, V2V_VM}
    assert found[OVIRT_33_VM].name == "exporttedVM"
    assert found[OVIRT_33_VM].vm_status is VmStatus.UP, "from the store's VM status map"
    assert found[V2V_VM].name == "sevenofnine"
    assert found[V2V_VM].vm_status is VmStatus.DOWN
    v2v = found[V2V_VM].data
    assert v2v is not None
    assert v2v.entity.memory_mb == 16384
    disks = {str(d.disk_id) for d in engine.recovery.unregistered_disks(domain.id)}
    assert "752b9199-8083-4e60-9be2-b2f13f54790f" in disks
    # Both oVirt stores were adopted as the domain's stores (no third and fourth created beside them).
    report = engine.updater.run_once()
    assert report.domains[domain.id].ok, report.domains[domain.id].error
    assert len(report.domains[domain.id].written) == 2

    # virt-v2v writes no cluster name: the operator names the target cluster.
    result = engine.recovery.register(domain.id, uuid.UUID(V2V_VM), RegistrationOptions(cluster_id=engine.cluster.id))
    assert result.outcome == "registered"
    assert any("DPG_VMNetwork" in w for w in result.warnings), "an unknown network is reported, not fatal"
    vm = engine.inv.vms.get(uuid.UUID(V2V_VM))
    assert (vm.name, vm.memory_mb, vm.cpu_cores) == ("sevenofnine", 16384, 8)
    engine.close()


@pytest.mark.parametrize(
    ("hostile", "reason"),
    [
        (lambda: ovirt_tar([("../../etc/passwd.ovf", b"x")]), "not a flat file name"),
        (lambda: _with_link(), "symbolic link"),
        (lambda: ovirt_tar([("info.json", b"{}")])[:700], "truncated|cut short|runs past"),
        (lambda: _huge(), "runs past the end|no store member is over"),
    ],
    ids=["dotdot", "symlink", "truncated", "gigantic"],
)
def test_a_hostile_store_is_passed_over_and_the_next_is_used(
    engine: FreshEngine, tmp_path: Path, hostile: Callable[[], bytes], reason: str
) -> None:
    bad = OvirtStore(raw_tar=hostile(), last_updated="Fri Feb 19 00:00:00 IST 2016")  # the newest, but broken
    good = OvirtStore(last_updated="Thu Feb 18 00:23:07 IST 2016")
    directory = build_ovirt_domain(tmp_path / "storage", stores=[bad, good])
    domain = engine.recovery.import_domain(str(directory), host=engine.host, name="hostile")
    report = engine.recovery.scan_through(domain.id, engine.agents.client(engine.host))
    verdicts = {str(v.volume.disk_id): v for v in report.stores}
    assert verdicts[bad.disk_id].error is not None
    assert re.search(reason, verdicts[bad.disk_id].error or "")
    assert report.chosen is not None
    assert str(report.chosen.volume.disk_id) == good.disk_id
    assert {str(e.id) for e in engine.recovery.unregistered_entities(domain.id)} == set(sample_ovfs())
    engine.close()


def _with_link() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        link = tarfile.TarInfo("evil.ovf")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/shadow"
        archive.addfile(link)
    return out.getvalue()


def _huge() -> bytes:
    header = tarfile.TarInfo("huge.ovf")
    header.size = 1 << 40
    return header.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 1024


def test_stores_that_cannot_be_read_refuse_the_attach_and_change_nothing(engine: FreshEngine, tmp_path: Path) -> None:
    import fcntl

    from ovfstore.engine.domains import DomainCommandFailed
    from ovfstore.model import DomainStatus

    stores = [OvirtStore(), OvirtStore(last_updated="Wed Feb 17 00:23:07 IST 2016")]
    directory = build_ovirt_domain(tmp_path / "storage", stores=stores)
    domain = engine.recovery.import_domain(str(directory), host=engine.host, name="busy")
    leases = [open(directory / "images" / st.disk_id / f"{st.volume_id}.lease", "rb") for st in stores]  # noqa: SIM115
    try:
        for lease in leases:  # another writer holds both stores: the agent answers "busy"
            fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DomainCommandFailed, match=r"could not be read.*nothing was changed"):
            engine.domains.attach(domain.id, engine.dc.id)
    finally:
        for lease in leases:
            lease.close()
    assert engine.inv.storage_domains.get(domain.id).status is DomainStatus.UNATTACHED
    assert "POOL_UUID=\n" in (directory / "dom_md" / "metadata").read_text(), "storage untouched too"
    assert engine.recovery.unregistered_entities(domain.id) == []

    attached = engine.domains.attach(domain.id, engine.dc.id)  # the cause is gone: the attach goes through
    assert attached.status is DomainStatus.ACTIVE
    assert {str(e.id) for e in engine.recovery.unregistered_entities(domain.id)} == set(sample_ovfs())
    engine.close()


def test_when_every_store_is_damaged_none_is_overwritten(engine: FreshEngine, tmp_path: Path) -> None:
    damaged = [OvirtStore(raw_tar=ovirt_tar([("../x.ovf", b"x")])), OvirtStore(raw_tar=b"\x01" * 4096)]
    directory = build_ovirt_domain(tmp_path / "storage", stores=damaged)
    domain = engine.import_and_attach(directory, "damaged")
    before = {st.disk_id: (directory / "images" / st.disk_id / st.volume_id).read_bytes()[:8192] for st in damaged}

    report = engine.updater.run_once()

    assert report.domains[domain.id].ok, report.domains[domain.id].error
    assert len(report.domains[domain.id].written) == 2, "two new stores were created and written"
    after = {st.disk_id: (directory / "images" / st.disk_id / st.volume_id).read_bytes()[:8192] for st in damaged}
    assert after == before, "the damaged stores are left for an operator to inspect"
    engine.close()


def test_a_store_with_appended_segments_brings_back_its_final_entities(engine: FreshEngine, tmp_path: Path) -> None:
    """The newest store has three segments: the VM updated in the second comes back as updated, with the
    status of the last metadata.json, and the VM the third removed does not come back at all."""
    segmented, _ = sample_segmented_store()
    newest = OvirtStore(raw_tar=segmented.tar(), last_updated="Wed Jan 03 00:00:00 UTC 2024")
    older = OvirtStore(last_updated="Thu Feb 18 00:23:07 IST 2016")  # oVirt's, both VMs, unverified
    directory = build_ovirt_domain(tmp_path / "storage", stores=[newest, older])
    domain = engine.recovery.import_domain(str(directory), host=engine.host, name="segmented")
    report = engine.recovery.scan_through(domain.id, engine.agents.client(engine.host))
    assert report.chosen is not None
    assert str(report.chosen.volume.disk_id) == newest.disk_id
    assert report.chosen.summary is not None
    assert (report.chosen.generation, report.chosen.summary.segments) == (5, 3)
    assert report.entities == 1, "each entity once, removed ones not at all"

    found = {str(e.id): e for e in engine.recovery.unregistered_entities(domain.id)}
    assert set(found) == {V2V_VM}
    assert found[V2V_VM].name == RENAMED_V2V
    assert found[V2V_VM].vm_status is VmStatus.UP, "from the last metadata.json"
    engine.close()

"""Who is not protected, and why, on a real site (real agent, real stores): each reason arises from what
really happened, and the metrics count the same entities and the same failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ovfstore.engine.config import UpdaterConfig
from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory import DiskChanges
from ovfstore.engine.telemetry import Telemetry
from ovfstore.model import Cluster, DataCenter, DiskStatus, Vm
from tests.functional.agent_fixtures import AgentProcess
from tests.functional.site import build_site


def _samples(telemetry: Telemetry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(telemetry.exposition().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_each_reason_with_where_the_entity_is_kept(
    database: Database, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    # 64 KiB stores that do not grow: a few VMs fit, forty more do not (a real capacity failure on `small`).
    config = UpdaterConfig(
        store_capacity=64 * 1024,
        store_capacity_max=64 * 1024,
        locked_threshold_s=0,
        debounce_s=3600,
        sweep_interval_s=3600,
    )
    site = build_site(database, agent_factory, tmp_path, config)
    telemetry = Telemetry(site.updater)
    try:
        site.add_domain("gold")
        site.add_domain("bare", stores=0)
        site.add_domain("small")
        safe = site.add_vm("safe", "gold")
        site.add_vm("exposed", "bare")
        site.add_vm("both", "gold", "bare")
        stuck = site.add_vm("stuck", "gold")
        site.add_vm("nodisk")  # on every data domain of Default
        dc2 = site.inv.data_centers.add(
            DataCenter(name="empty-dc", mac_pool_start="56:6f:02:00:00:00", mac_pool_end="56:6f:02:00:00:ff")
        )
        cluster2 = site.inv.clusters.add(Cluster(name="c2", data_center_id=dc2.id))
        site.inv.vms.add(Vm(name="far", cluster_id=cluster2.id))
        # `doomed` never gets a usable copy: its first write is already too large for its stores.
        site.add_domain("doomed")
        for i in range(40):
            site.add_vm(f"doom{i:02}", "doomed")
        before = {st.name: st for st in site.updater.status()}
        assert before["gold"].state == "never_written"
        assert before["gold"].behind(3600)  # never written is behind whatever the threshold
        assert before["bare"].state == "stores_disabled"
        assert not before["bare"].behind(0)  # keeps no stores: waits for nothing
        report = site.updater.run_once()
        assert report.domains[site.domains["gold"].id].ok
        assert report.domains[site.domains["small"].id].ok
        assert report.domains[site.domains["doomed"].id].failure == "capacity"

        # `small` holds a usable copy, then its next write fails: behind, still protecting.
        for i in range(40):
            site.add_vm(f"crowd{i:02}", "small")
        disk_id = site.inv.attachments.list(stuck.id)[0].disk_id
        site.inv.disks.update(disk_id, DiskChanges(status=DiskStatus.LOCKED))
        report = site.updater.run_once()
        small = report.domains[site.domains["small"].id]
        assert small.failure == "capacity", small

        found = {u.name: u for u in site.updater.unprotected()}
        assert "safe" not in found
        assert "both" not in found  # gold protects it; bare keeps no stores
        assert "nodisk" not in found  # gold holds it, as every domain of Default does
        assert found["exposed"].reason == "no_store_domain"
        assert found["exposed"].kept_on == "bare"
        assert found["far"].reason == "no_store_domain"
        assert found["far"].kept_on == "diskless: every data domain of data center empty-dc"
        assert "no data domain" in found["far"].detail
        assert found["stuck"].reason == "locked"
        assert found["stuck"].since is not None
        doomed = [u for name, u in found.items() if name.startswith("doom")]
        assert len(doomed) == 40
        assert {u.reason for u in doomed} == {"stores_failing"}
        assert "doomed: failing, no usable copy" in doomed[0].detail
        assert "ceiling of 65536" in doomed[0].detail
        # small's copy protects what it holds, not the VMs added after it: those would be lost now.
        crowd = [u for name, u in found.items() if name.startswith("crowd")]
        assert len(crowd) == 40
        assert {u.reason for u in crowd} == {"not_stored_yet"}
        assert "small: its last write failed" in crowd[0].detail
        assert set(found) == {"exposed", "far", "stuck"} | {u.name for u in doomed} | {u.name for u in crowd}
        statuses = {st.name: st for st in site.updater.status()}
        assert statuses["small"].last_error is not None
        assert (statuses["small"].state, statuses["small"].protects) == ("pending", True)
        assert statuses["small"].behind(0)
        assert (statuses["doomed"].state, statuses["doomed"].protects) == ("stores_failing", False)
        assert statuses["bare"].state == "stores_disabled"

        samples = _samples(telemetry)
        assert samples[("ovfstore_unprotected_entities", (("reason", "no_store_domain"),))] == 2
        assert samples[("ovfstore_unprotected_entities", (("reason", "locked"),))] == 1
        assert samples[("ovfstore_unprotected_entities", (("reason", "stores_failing"),))] == 40
        assert samples[("ovfstore_unprotected_entities", (("reason", "ovf_too_large"),))] == 0
        assert samples[("ovfstore_unprotected_entities", (("reason", "not_stored_yet"),))] == 40
        assert samples[("ovfstore_domain_update_failures_total", (("domain", "small"), ("kind", "capacity")))] == 1
        assert samples[("ovfstore_domain_behind", (("domain", "small"),))] == 1
        assert samples[("ovfstore_domain_up_to_date", (("domain", "gold"),))] == 0  # stuck's change waits
        assert samples[("ovfstore_domain_behind", (("domain", "doomed"),))] == 1
        assert samples[("ovfstore_domain_recovery_point_seconds", (("domain", "doomed"),))] == float("inf")
        assert samples[("ovfstore_domain_behind", (("domain", "bare"),))] == 0
        assert ("ovfstore_domain_recovery_point_seconds", (("domain", "bare"),)) not in samples
        assert samples[("ovfstore_domain_state", (("domain", "bare"), ("state", "stores_disabled")))] == 1
        assert samples[("ovfstore_domain_state", (("domain", "small"), ("state", "pending")))] == 1
        assert samples[("ovfstore_domain_state", (("domain", "doomed"), ("state", "stores_failing")))] == 1

        # The lock released: the change is written and `stuck` is protected again.
        site.inv.disks.update(disk_id, DiskChanges(status=DiskStatus.OK))
        assert site.updater.run_once().domains[site.domains["gold"].id].ok
        assert "stuck" not in {u.name for u in site.updater.unprotected()}
        assert safe.id in site.entities_in("gold")
    finally:
        site.updater.domain_step.agents.close()

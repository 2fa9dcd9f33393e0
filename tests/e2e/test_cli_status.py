"""`ovfstore status` and `ovfstore unprotected` against a running engine: the recovery point, the threshold
that decides "behind", the unprotected count, and the exit statuses that cron and monitoring read."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from click.testing import CliRunner

from ovfstore.cli.main import cli
from ovfstore.engine.config import UpdaterConfig
from ovfstore.model import Cluster, DataCenter, Vm
from tests.e2e.conftest import ADMIN_PASSWORD, RunningEngine, edit_vm, protected_vm


def _run(running: RunningEngine, *args: str, code: int) -> str:
    env = {"OVFSTORE_URL": running.url, "OVFSTORE_USER": "admin@internal", "OVFSTORE_PASSWORD": ADMIN_PASSWORD}
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == code, result.output
    return result.output


def test_status_threshold_and_unprotected(db_url: str, engines: Callable[..., RunningEngine]) -> None:
    running = engines(db_url, updater=UpdaterConfig(debounce_s=3600, sweep_interval_s=3600))
    gold = protected_vm(running)
    running.engine.updater.update_now(gold, timeout=120)
    current = json.loads(_run(running, "status", "--json", code=0))
    assert (current["up_to_date"], current["behind"], current["unprotected_count"]) == (True, False, 0)
    assert current["storage_domains"][0]["behind"] is False
    assert "0 s" in _run(running, "status", code=0)  # the recovery point
    assert "every VM and template is protected" in _run(running, "unprotected", code=0)

    edit_vm(running, "web", "waits for the run")
    time.sleep(1.1)
    behind = json.loads(_run(running, "status", "--json", code=1))  # the engine's threshold: 0
    [gold_status] = behind["storage_domains"]
    assert (gold_status["behind"], gold_status["pending_count"]) == (True, 1)
    assert gold_status["pending_age_seconds"] >= 1
    assert "behind" in _run(running, "status", code=1)
    within = json.loads(_run(running, "status", "--json", "--threshold", "3600", code=0))
    assert (within["up_to_date"], within["behind"]) == (False, False)
    running.engine.updater.update_now(gold, timeout=120)
    _run(running, "status", code=0)

    inv = running.engine.inventory
    far = inv.data_centers.add(
        DataCenter(name="far", mac_pool_start="56:6f:04:00:00:00", mac_pool_end="56:6f:04:00:00:ff")
    )
    inv.vms.add(Vm(name="orphan", cluster_id=inv.clusters.add(Cluster(name="far", data_center_id=far.id)).id))
    assert "1 VMs and templates are not protected" in _run(running, "status", code=1)
    assert json.loads(_run(running, "status", "--json", code=1))["unprotected_count"] == 1
    [orphan] = json.loads(_run(running, "unprotected", "--json", code=1))
    assert (orphan["name"], orphan["type"], orphan["reason"]) == ("orphan", "vm", "no_store_domain")
    assert orphan["kept_on"] == "diskless: every data domain of data center far"
    assert "orphan" in _run(running, "unprotected", code=1)

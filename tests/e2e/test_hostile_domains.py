"""The hostile-storage corpus (tests/fixtures/hostile.py) against the real readers: `ovfstore inspect` and an
import through the REST API into a running engine with a real agent.

For every class: no traceback, no hang (each test is bounded), output of bounded size, every good entity
recovered, nothing read or written outside the domain (the canary keeps its bytes and times), and the
domain writable again afterwards (its stores are written and then read back as the chosen, valid store).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ovirtsdk4.types as types
import pytest

from tests.e2e.conftest import RunningEngine
from tests.fixtures.hostile import CLASSES, GOOD, Canary, HostileClass

#: More than any honest report of these domains needs; a message quoting a hostile input whole is far more.
MAX_OUTPUT = 200_000


def inspect(directory: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "ovfstore.cli.main", "inspect", "--json", str(directory)],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr[-2000:]
    assert b"Traceback" not in result.stderr, result.stderr[-4000:]
    assert len(result.stdout) + len(result.stderr) < MAX_OUTPUT, f"{len(result.stdout)} + {len(result.stderr)} bytes"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def import_and_protect(running: RunningEngine, directory: Path) -> set[str]:
    """Import the domain by its path, attach it, list what it holds, and write its stores again."""
    conn = running.connect()
    try:
        system = conn.system_service()
        host = system.hosts_service().list()[0]
        sd = system.storage_domains_service().add(types.StorageDomain(
            name="hostile", type=types.StorageDomainType.DATA, host=types.Host(name=host.name),
            storage=types.HostStorage(type=types.StorageType.LOCALFS, path=str(directory)),
        ))  # fmt: skip
        dc = system.data_centers_service().list(search="name=Default")[0]
        system.data_centers_service().data_center_service(dc.id).storage_domains_service().add(
            types.StorageDomain(id=sd.id)
        )
        domain = system.storage_domains_service().storage_domain_service(sd.id)
        found = {vm.id for vm in domain.vms_service().list(unregistered=True)}
        domain.update_ovf_store()  # the domain is writable again
        return found
    finally:
        conn.close()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("hostile", CLASSES, ids=[c.name for c in CLASSES])
def test_a_hostile_domain_costs_nothing_but_the_hostile_item(
    hostile: HostileClass, engines: Callable[..., RunningEngine], tmp_path: Path
) -> None:
    canary = Canary.plant(tmp_path / "outside")
    storage = tmp_path / "storage"
    storage.mkdir()
    directory = hostile.build(storage, canary)
    times = os.stat(canary.path).st_mtime_ns, os.stat(canary.path).st_ctime_ns  # a hard link changes ctime

    report = inspect(directory)
    if hostile.keeps_good:
        assert {e["id"] for e in report["entities"]} >= GOOD, report

    running = engines(f"sqlite:///{tmp_path / 'engine.db'}")
    found = import_and_protect(running, directory)
    if hostile.keeps_good:
        assert found >= GOOD, found

    after = inspect(directory)
    chosen = [s for s in after["stores"] if s["chosen"]]
    assert chosen, after["stores"]
    assert chosen[0]["valid"], chosen[0]
    assert {e["id"] for e in after["entities"]} >= GOOD
    assert canary.untouched(), "the canary outside the domain was written"
    assert (os.stat(canary.path).st_mtime_ns, os.stat(canary.path).st_ctime_ns) == times

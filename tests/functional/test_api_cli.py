"""`ovfstore up` as a real process, driven by the command line's resource commands: add and attach a
domain, write its stores, status, fail-back, then import it again and register what it holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest
from click.testing import CliRunner

from ovfstore.cli.main import cli

PASSWORD = "up-admin-secret"


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    env = {**os.environ, "OVFSTORE_ADMIN_PASSWORD": PASSWORD}
    storage = tmp_path / "storage"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ovfstore.cli.main", "up", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--storage-root", str(storage)],
        env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    url = None
    deadline = time.monotonic() + 60
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        if line.startswith("API:"):
            url = line.split()[1]
    assert url is not None, "ovfstore up did not print its API address"
    yield url, storage
    proc.terminate()
    proc.wait(30)
    proc.stdout.close()


def _run(url: str, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), env={"OVFSTORE_URL": url, "OVFSTORE_PASSWORD": PASSWORD})
    assert result.exit_code == code, result.output
    return result.output


def test_up_and_the_command_line(up: tuple[str, Path]) -> None:
    url, storage = up
    assert "Default" in _run(url, "datacenter", "list")
    assert "local" in _run(url, "host", "list", "--search", "status=up")
    path = storage / "d1"
    path.mkdir()
    _run(url, "domain", "add", "d1", str(path))
    _run(url, "domain", "attach", "d1")
    conn = sdk.Connection(url=url, username="admin", password=PASSWORD)
    try:
        system = conn.system_service()
        sd = system.storage_domains_service().list(search="name=d1")[0]
        vm = system.vms_service().add(
            types.Vm(name="app", cluster=types.Cluster(name="Default"), template=types.Template(name="Blank"))
        )
        system.vms_service().vm_service(vm.id).disk_attachments_service().add(
            types.DiskAttachment(
                disk=types.Disk(
                    name="app_disk", provisioned_size=1 << 30, storage_domains=[types.StorageDomain(id=sd.id)]
                ),
                interface=types.DiskInterface.VIRTIO,
                bootable=True,
                active=True,
            )
        )
    finally:
        conn.close()
    _run(url, "vm", "start", "app")
    _run(url, "domain", "update-ovf", "d1")
    assert "yes" in _run(url, "status")
    _run(url, "domain", "deactivate", "d1")
    _run(url, "domain", "detach", "d1")
    _run(url, "domain", "remove", "d1")
    assert "app" not in _run(url, "vm", "list")

    _run(url, "domain", "import", str(path), "--name", "d1")
    _run(url, "domain", "attach", "d1")
    found = _run(url, "unregistered", "d1", "--type", "vm")
    assert "app" in found
    assert "up" in found  # the run status the store kept: the VM to start again
    assert "would_register" in _run(url, "register", "d1", "--all", "--dry-run")
    assert "app" not in _run(url, "vm", "list")
    assert "registered" in _run(url, "register", "d1", "--all")
    assert "app" in _run(url, "vm", "list")
    assert "Attaching" in _run(url, "job", "list")


def test_status_exit_codes_and_json(up: tuple[str, Path]) -> None:
    """0 all up to date, 1 a domain behind (here: a change waiting for the updater's debounce), 2 the
    engine does not answer; `--json` carries the pending count and the age of the oldest change."""
    url, storage = up
    (storage / "d1").mkdir()
    _run(url, "domain", "add", "d1", str(storage / "d1"))
    _run(url, "domain", "attach", "d1")
    _run(url, "domain", "update-ovf", "d1")
    current = json.loads(_run(url, "status", "--json"))
    assert current["up_to_date"] is True
    [d1] = current["storage_domains"]
    assert (d1["name"], d1["up_to_date"], d1["pending_count"], d1["pending_age_seconds"]) == ("d1", True, 0, 0.0)
    # `ovfstore up` is one engine on SQLite: it leads, under a term of at least 1, since its start.
    leader = current["leader"]
    assert leader["engine"] == leader["served_by"]
    assert leader["term"] >= 1
    assert leader["since"]
    assert "led by engine" in _run(url, "status")

    conn = sdk.Connection(url=url, username="admin", password=PASSWORD)
    try:  # diskless: pending on every domain of its data center
        conn.system_service().vms_service().add(
            types.Vm(name="later", cluster=types.Cluster(name="Default"), template=types.Template(name="Blank"))
        )
    finally:
        conn.close()
    behind = json.loads(_run(url, "status", "--json", code=1))
    assert behind["up_to_date"] is False
    [d1] = behind["storage_domains"]
    assert (d1["up_to_date"], d1["pending_count"]) == (False, 1)
    assert d1["pending_age_seconds"] >= 0
    assert "behind" in _run(url, "status", code=1)

    _run(url, "domain", "update-ovf", "d1")
    assert "yes" in _run(url, "status")
    _run("http://127.0.0.1:9/ovirt-engine/api", "status", code=2)  # nothing listens there

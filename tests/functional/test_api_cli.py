"""`ovfstore up` as a real process, driven by the command line's resource commands: add and attach a
domain, write its stores, status, fail-back, then import it again and register what it holds."""

from __future__ import annotations

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

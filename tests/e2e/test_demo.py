"""`ovfstore demo`, the main job, run as a user runs it: a real agent process, two engines, real files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI


def test_the_demo_recovers_everything_and_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ovfstore.cli.main", "demo", "--vms", "4", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "OK: all 6 VMs and templates came back from the storage domains alone" in " ".join(result.stdout.split())
    # The demo's storage domains are real VDSM-format directories, left for inspection with --dir.
    domains = [p for p in (tmp_path / "demo" / "storage").iterdir() if (p / "dom_md" / "metadata").exists()]
    assert len(domains) == 2


def test_the_block_demo_recovers_everything_from_loop_devices(tmp_path: Path) -> None:
    """`ovfstore demo --storage block`: the same story on two iSCSI-style domains on loop devices. Where
    root, lvm2 or loop devices are missing it exits 77 with the reason: a skip here, a failure under CI."""
    result = subprocess.run(
        [sys.executable, "-m", "ovfstore.cli.main", "demo", "--storage", "block", "--vms", "4",
         "--dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    said = " ".join(result.stdout.split())
    if result.returncode == 77:
        assert "SKIPPED: the block demo cannot run here:" in said
        if IN_CI:
            pytest.fail(f"the block demo is required under CI=true: {said}", pytrace=False)
        pytest.skip(said)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "importing both domains by their LUNs" in said
    assert "OK: all 6 VMs and templates came back from the storage domains alone" in said
    # The LUNs stay as sparse images with --dir, each an LVM PV of a domain's VG; no loop device is left.
    images = sorted((tmp_path / "demo" / "luns").glob("lun*.img"))
    assert len(images) == 2
    attached = subprocess.run(["losetup", "-j", str(images[0])], capture_output=True, text=True, check=False)
    assert attached.stdout.strip() == ""
    for image in images:
        with image.open("rb") as file:
            assert b"LABELONE" in file.read(4096)

"""`ovfstore demo`, the main job, run as a user runs it: a real agent process, two engines, real files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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

"""The crash-injection campaign runs: two trials on each database, real processes killed with SIGKILL.

The full campaign (100 trials and more) is run by hand: `python -m tests.campaigns.crash_stores`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_URL

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_campaign_kills_and_the_domain_keeps_a_complete_store(db_url: str) -> None:
    db = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    command = [sys.executable, "-m", "tests.campaigns.crash_stores", "--trials", "2", "--vms", "8", "--db", db]
    if db == "postgresql":  # the campaign makes a database of its own on the server the suite uses
        command += ["--pg-url", PG_URL]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=540, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "trials 2, failures 0" in result.stdout

"""`bench/recovery_bench.py` still works: a small site is protected, imported into a fresh engine and
registered, on both databases, and the figures it prints are the ones documented (docs/PERFORMANCE.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_URL

BENCH = Path(__file__).resolve().parents[2] / "bench" / "recovery_bench.py"
VMS = 50
FIGURES = {
    "vms", "database", "load_avg_1m", "import_s", "attach_s", "list_volumes_s", "read_verify_s", "load_s",
    "parse_s", "record_s", "register_s", "recovery_s", "bulk_insert_s", "bytes_verified", "dd_bytes", "dd_read_s",
    "recovery_vs_bulk_insert", "read_vs_dd", "entities_found", "registered", "outcomes", "vms_in_inventory",
}  # fmt: skip


def test_recovery_bench_registers_every_vm(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    args = [sys.executable, str(BENCH), "--vms", str(VMS), "--dir", str(tmp_path), "--json"]
    if backend == "postgresql":
        request.getfixturevalue("pg_session_url")  # the server is reachable (or the test skips, or fails in CI)
        args += ["--pg", PG_URL]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout)
    assert set(out) >= FIGURES, FIGURES - set(out)
    assert out["database"] == backend
    assert out["vms"] == VMS
    assert out["registered"] == VMS, out
    assert out["outcomes"] == {"registered": VMS}, out.get("first_refusal")
    assert out["vms_in_inventory"] == VMS
    # Every VM has its disks on two of the four domains, so each is found in two stores.
    assert out["entities_found"] == 2 * VMS
    assert out["bytes_verified"] > 0
    assert out["dd_bytes"] == out["bytes_verified"], "dd reads the bytes the scan verified"
    for key in ("attach_s", "read_verify_s", "register_s", "bulk_insert_s", "dd_read_s"):
        assert out[key] > 0, key
    assert out["recovery_s"] >= out["register_s"]
    assert list(tmp_path.iterdir()) == [], "the bench removes its work directory"

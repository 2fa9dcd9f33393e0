"""`ovfstore up` stopped the way service managers stop it (SIGTERM) takes its local agent down too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    result = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in result.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has not collected it yet.
    return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[:1]


def test_sigterm_stops_the_engine_and_its_agent(tmp_path: Path) -> None:
    env = {**os.environ, "OVFSTORE_ADMIN_PASSWORD": "secret-for-test"}
    up = subprocess.Popen(
        [sys.executable, "-m", "ovfstore.cli.main", "up", "--data-dir", str(tmp_path / "data"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + 60
        seen = ""
        while "API:" not in seen and time.monotonic() < deadline:
            seen += up.stdout.readline()
        assert "API:" in seen, seen
        agents = _children(up.pid)
        assert agents, "ovfstore up runs its agent as a child process"

        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)

        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in agents) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in agents), "the local agent outlived ovfstore up"
    finally:
        if up.poll() is None:
            up.kill()
        for pid in _children(up.pid):
            os.kill(pid, signal.SIGKILL)
        if up.stdout is not None:
            up.stdout.close()

"""A dead local agent is started again: `SupervisedAgent` on its own (same port, growing delays, no
restart once stopped), and `ovfstore up` as a real process, whose host goes down and comes back up
through the API, with domain updates working again afterwards."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import ovirtsdk4 as sdk
import pytest
from click.testing import CliRunner

from ovfstore.agent.client import AgentClient
from ovfstore.agent.process import SupervisedAgent
from ovfstore.cli.main import cli

PASSWORD = "up-admin-secret"


def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout_s} s"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[:1]


def test_a_dead_agent_comes_back_on_its_port_with_growing_delays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ovfstore.agent.process")
    events: list[str] = []
    up = threading.Event()

    def on_up() -> None:
        events.append("up")
        up.set()

    storage = tmp_path / "storage"
    storage.mkdir()
    agent = SupervisedAgent(
        [storage], tmp_path, "a-secret", on_down=events.append, on_up=on_up, restart_initial_s=0.3, stable_s=60
    )
    try:
        port = agent.port
        for _ in range(2):
            pid = int((tmp_path / "agent.pid").read_text())
            assert pid == agent.process.pid
            up.clear()
            os.kill(pid, signal.SIGKILL)
            assert up.wait(30), "the agent was not started again"
            assert agent.port == port
            assert int((tmp_path / "agent.pid").read_text()) not in (pid, 0)
            with AgentClient(agent.url, "a-secret", timeout=10) as client:
                assert client.health()
        assert events == ["the local agent exited with signal SIGKILL", "up"] * 2
        delays = [r.getMessage().rsplit("restarting it in ", 1)[1] for r in caplog.records if "restarting" in r.message]
        assert delays == ["0.3 s", "0.6 s"]  # it kept dying within a minute: the delay doubles
    finally:
        agent.stop()
    last = agent.process.pid
    time.sleep(1)  # longer than the next restart delay would be
    assert not _alive(last)
    assert agent.process.pid == last, "no agent is started after stop"
    assert not (tmp_path / "agent.pid").exists()
    assert events == ["the local agent exited with signal SIGKILL", "up"] * 2


def _run(url: str, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env={"OVFSTORE_URL": url, "OVFSTORE_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    return result.output


def _local_host(conn: sdk.Connection) -> tuple[str, str]:
    host = conn.system_service().hosts_service().list(search="name=local")[0]
    return str(host.status.value), str(host.address)


def _start_up(data: Path, storage: Path, log_path: Path) -> tuple[subprocess.Popen[str], str | None]:
    """`ovfstore up` as a process, its messages in `log_path`; and its API address once printed."""
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ovfstore.cli.main", "up", "--port", "0", "--data-dir", str(data),
             "--storage-root", str(storage)],
            env={**os.environ, "OVFSTORE_ADMIN_PASSWORD": PASSWORD}, stdout=subprocess.PIPE, stderr=log_file,
            text=True,
        )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        if line.startswith("API:"):
            return proc, line.split()[1]
    return proc, None


def test_up_restarts_its_agent_and_the_host_follows(tmp_path: Path) -> None:
    data, storage = tmp_path / "data", tmp_path / "storage"
    log_path = tmp_path / "up.log"
    proc, url = _start_up(data, storage, log_path)
    assert proc.stdout is not None
    try:
        assert url is not None, log_path.read_text()
        (storage / "d1").mkdir(parents=True)
        _run(url, "domain", "add", "d1", str(storage / "d1"))
        _run(url, "domain", "attach", "d1")
        conn = sdk.Connection(url=url, username="admin", password=PASSWORD, timeout=30)
        try:
            status, address = _local_host(conn)
            assert status == "up"
            first = int((data / "agent.pid").read_text())
            os.kill(first, signal.SIGKILL)
            _until(lambda: _local_host(conn)[0] == "down", 30, "the host is marked down")
            _until(lambda: _local_host(conn)[0] == "up", 60, "the host is marked up again")
            assert _local_host(conn)[1] == address  # the same port: the engine's record holds
        finally:
            conn.close()
        second = int((data / "agent.pid").read_text())
        assert second != first
        _run(url, "domain", "update-ovf", "d1")
        log = log_path.read_text()
        assert f"the local agent (pid {first}) exited with signal SIGKILL" in log
        assert "host local marked down" in log
        assert "host local marked up" in log

        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        _until(lambda: not _alive(second), 15, "the agent stops with ovfstore up")
        time.sleep(1.5)  # longer than a restart would take to begin
        assert not (data / "agent.pid").exists()
        assert "restarting" not in log_path.read_text().split("host local marked up")[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid_file in (data / "agent.pid",):
            if pid_file.exists():
                pid = int(pid_file.read_text())
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
        proc.stdout.close()

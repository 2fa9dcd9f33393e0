"""A real agent process on port 0 over real domain directories, for the functional tests."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ovfstore.agent.client import AgentClient


@dataclass
class AgentProcess:
    roots: tuple[Path, ...]
    secret: str
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, secret: str | None = None) -> AgentClient:
        return AgentClient(self.url, self.secret if secret is None else secret, timeout=30)

    def kill(self, sig: int) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


def start_agent(workdir: Path, roots: tuple[Path, ...], secret: str) -> AgentProcess:
    for root in roots:
        root.mkdir(parents=True, exist_ok=True)
    port_file = workdir / f"port-{secrets.token_hex(4)}"
    secret_file = workdir / "secret"
    secret_file.write_text(secret)
    cmd = [
        sys.executable,
        "-m",
        "ovfstore.cli.main",
        "agent",
        "serve",
        "--port",
        "0",
    ]
    cmd += ["--port-file", str(port_file), "--secret-file", str(secret_file), "--buffer-size", str(1 << 20)]
    for root in roots:
        cmd += ["--root", str(root)]
    env = {k: v for k, v in os.environ.items() if k != "OVFSTORE_AGENT_SECRET"}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the agent exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the agent did not bind within 30 s")
        time.sleep(0.02)
    return AgentProcess(roots, secret, proc, int(port_file.read_text()))


def stop(agent: AgentProcess) -> None:
    if agent.proc.poll() is None:
        agent.proc.terminate()
        try:
            agent.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            agent.proc.kill()
            agent.proc.wait()
    if agent.proc.stderr:
        agent.proc.stderr.close()


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def factory(roots: tuple[Path, ...] | None = None, secret: str = "engine-secret") -> AgentProcess:
        agent = start_agent(tmp_path, roots or (tmp_path / "root",), secret)
        started.append(agent)
        return agent

    yield factory
    for agent in started:
        stop(agent)


@pytest.fixture
def agent(agent_factory: Callable[..., AgentProcess]) -> AgentProcess:
    return agent_factory()

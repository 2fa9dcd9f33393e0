"""A real agent process on port 0 over real domain directories, for the functional tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ovfstore.agent.client import AgentClient
from ovfstore.agent.process import LocalAgent


@dataclass
class AgentProcess:
    local: LocalAgent

    @property
    def roots(self) -> tuple[Path, ...]:
        return self.local.roots

    @property
    def secret(self) -> str:
        return self.local.secret

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.local.process

    @property
    def port(self) -> int:
        return self.local.port

    @property
    def url(self) -> str:
        return self.local.url

    def client(self, secret: str | None = None) -> AgentClient:
        return AgentClient(self.url, self.secret if secret is None else secret, timeout=30)

    def kill(self, sig: int) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


def start_agent(workdir: Path, roots: tuple[Path, ...], secret: str, extra_args: tuple[str, ...] = ()) -> AgentProcess:
    # Small buffers: tests move kilobytes, and many agents may run at once.
    args = ["--buffer-size", str(1 << 20), *extra_args]
    return AgentProcess(LocalAgent(list(roots), workdir, secret, extra_args=args))


def stop(agent: AgentProcess) -> None:
    agent.local.stop()


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def factory(
        roots: tuple[Path, ...] | None = None, secret: str = "engine-secret", extra_args: tuple[str, ...] = ()
    ) -> AgentProcess:
        agent = start_agent(tmp_path, roots or (tmp_path / "root",), secret, extra_args)
        started.append(agent)
        return agent

    yield factory
    for agent in started:
        stop(agent)


@pytest.fixture
def agent(agent_factory: Callable[..., AgentProcess]) -> AgentProcess:
    return agent_factory()

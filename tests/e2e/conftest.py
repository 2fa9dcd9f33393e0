"""A running engine for the SDK: the REST API on uvicorn (port 0, a thread of the test process) over a
real database, with a real host agent process registered as an up host in `Default`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import ovirtsdk4 as sdk
import pytest
import uvicorn

from ovfstore.api.app import create_app
from ovfstore.engine.config import AgentAccess, UpdaterConfig
from ovfstore.engine.runtime import Engine, EngineConfig
from ovfstore.engine.users import UserRole
from ovfstore.model import Host
from tests.e2e.browser import browser  # noqa: F401  (fixture)
from tests.functional.agent_fixtures import AgentProcess, agent_factory  # noqa: F401  (fixture)

ADMIN_PASSWORD = "admin-secret-1"
READER_PASSWORD = "reader-secret-1"


@dataclass
class RunningEngine:
    engine: Engine
    url: str
    storage: Path
    agent: AgentProcess
    host: Host
    shutdown: Callable[[], None]
    port: int

    @property
    def root(self) -> str:
        """The engine's root: the status page."""
        return f"http://127.0.0.1:{self.port}"

    def connect(self, username: str = "admin@internal", password: str = ADMIN_PASSWORD) -> sdk.Connection:
        return sdk.Connection(url=self.url, username=username, password=password, insecure=True, timeout=120)


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test process keeps its own handlers
        pass


def serve(app: object) -> tuple[_Server, threading.Thread, int]:
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, int(port)


@pytest.fixture
def engines(agent_factory: Callable[..., AgentProcess], tmp_path: Path) -> Iterator[Callable[..., RunningEngine]]:  # noqa: F811
    """Start engines, each with its own database and its own agent over one shared storage root (two
    sites seeing the same storage, as after a replicated disaster)."""
    stop: list[Callable[[], None]] = []
    storage = tmp_path / "storage"

    def start(db_url: str, host_name: str = "host1", updater: UpdaterConfig | None = None) -> RunningEngine:
        agent = agent_factory(roots=(storage,))
        engine = Engine(
            EngineConfig(
                db_url,
                AgentAccess(secret=agent.secret, timeout_s=60),
                updater or UpdaterConfig(debounce_s=0.2, backoff_initial_s=0.1),
            )
        )
        engine.start()
        users = engine.users
        users.ensure_admin(ADMIN_PASSWORD)
        users.add("reader", READER_PASSWORD, UserRole.READONLY)
        cluster = next(c for c in engine.inventory.clusters.list() if c.name == "Default")
        host = engine.inventory.hosts.add(Host(name=host_name, cluster_id=cluster.id, address=agent.url))
        server, thread, port = serve(create_app(engine))

        def shutdown() -> None:
            if server.should_exit:
                return
            server.should_exit = True
            thread.join(30)
            engine.stop()

        stop.append(shutdown)
        return RunningEngine(engine, f"http://127.0.0.1:{port}/ovirt-engine/api", storage, agent, host, shutdown, port)

    yield start
    for shutdown in reversed(stop):
        shutdown()


@pytest.fixture
def running(db_url: str, engines: Callable[..., RunningEngine]) -> RunningEngine:
    return engines(db_url)

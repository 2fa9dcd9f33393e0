"""A running engine for the SDK: the REST API on uvicorn (port 0, a thread of the test process) over a
real database, with a real host agent process registered as an up host in `Default`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest
import uvicorn

from ovfstore.api.app import create_app
from ovfstore.engine.config import AgentAccess, ApiConfig, UpdaterConfig
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

    def start(
        db_url: str,
        host_name: str = "host1",
        updater: UpdaterConfig | None = None,
        api: ApiConfig | None = None,
        agent: AgentProcess | None = None,
    ) -> RunningEngine:
        """`agent`: the host's agent when it is not the default one over the shared root (block LUNs)."""
        agent = agent or agent_factory(roots=(storage,))
        engine = Engine(
            EngineConfig(
                db_url,
                AgentAccess(secret=agent.secret, timeout_s=60),
                updater or UpdaterConfig(debounce_s=0.2, backoff_initial_s=0.1),
                api or ApiConfig(metrics_cache_s=0),
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


def protected_vm(running: RunningEngine, domain: str = "gold", vm: str = "web") -> UUID:
    """Through the SDK: a new domain attached to Default and a VM with a disk on it; returns the domain's id."""
    path = running.storage / domain
    path.mkdir(parents=True)
    conn = running.connect()
    try:
        system = conn.system_service()
        sd = system.storage_domains_service().add(
            types.StorageDomain(
                name=domain, type=types.StorageDomainType.DATA, host=types.Host(name=running.host.name),
                storage=types.HostStorage(type=types.StorageType.LOCALFS, path=str(path)),
            )
        )  # fmt: skip
        dc = system.data_centers_service().list(search="name=Default")[0]
        system.data_centers_service().data_center_service(dc.id).storage_domains_service().add(
            types.StorageDomain(id=sd.id)
        )
        added = system.vms_service().add(
            types.Vm(name=vm, cluster=types.Cluster(name="Default"), template=types.Template(name="Blank"))
        )
        system.vms_service().vm_service(added.id).disk_attachments_service().add(
            types.DiskAttachment(
                disk=types.Disk(
                    name=f"{vm}_disk", provisioned_size=1 << 30, storage_domains=[types.StorageDomain(id=sd.id)]
                ),
                interface=types.DiskInterface.VIRTIO, bootable=True, active=True,
            )
        )  # fmt: skip
    finally:
        conn.close()
    return UUID(sd.id)


def edit_vm(running: RunningEngine, vm: str, description: str) -> None:
    conn = running.connect()
    try:
        vms = conn.system_service().vms_service()
        found = vms.list(search=f"name={vm}")[0]
        vms.vm_service(found.id).update(types.Vm(description=description))
    finally:
        conn.close()

"""The engine-wide default number of OVF stores (`[updater] store_count`) reaches new and imported domains."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import ovirtsdk4.types as types

from ovfstore.api.app import create_app
from ovfstore.engine.config import AgentAccess, UpdaterConfig
from ovfstore.engine.runtime import Engine, EngineConfig
from ovfstore.model import Host
from tests.e2e.conftest import ADMIN_PASSWORD, serve
from tests.functional.agent_fixtures import AgentProcess


def test_a_domain_added_without_a_count_gets_the_engines_default(
    db_url: str, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    import ovirtsdk4 as sdk

    agent = agent_factory(roots=(tmp_path,))
    engine = Engine(EngineConfig(db_url, AgentAccess(secret=agent.secret), UpdaterConfig(store_count=1)))
    engine.start()
    engine.users.ensure_admin(ADMIN_PASSWORD)
    cluster = engine.inventory.clusters.list()[0]
    engine.inventory.hosts.add(Host(name="host1", cluster_id=cluster.id, address=agent.url))
    server, thread, port = serve(create_app(engine))
    conn = sdk.Connection(url=f"http://127.0.0.1:{port}/ovirt-engine/api", username="admin@internal",
                          password=ADMIN_PASSWORD)  # fmt: skip
    try:
        sds = conn.system_service().storage_domains_service()
        (tmp_path / "data1").mkdir()
        sd = sds.add(types.StorageDomain(
            name="data1", type=types.StorageDomainType.DATA, host=types.Host(name="host1"),
            storage=types.HostStorage(type=types.StorageType.LOCALFS, path=str(tmp_path / "data1")),
        ))  # fmt: skip
        assert engine.inventory.storage_domains.get(UUID(sd.id)).ovf_store_count == 1
    finally:
        conn.close()
        server.should_exit = True
        thread.join(30)
        engine.stop()

"""Which host agent the engine talks to for a domain: an up host of the domain's data center, with one
HTTP client per agent kept for the connection pool."""

from __future__ import annotations

import threading
from uuid import UUID

from sqlalchemy import select

from ovfstore.agent.client import AgentClient
from ovfstore.engine.config import AgentAccess
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.db.rows import from_row
from ovfstore.model import Host, HostStatus


class AgentDirectory:
    def __init__(self, db: Database, config: AgentAccess) -> None:
        self.db = db
        self.config = config
        self._clients: dict[str, AgentClient] = {}
        self._lock = threading.Lock()

    def up_hosts(self, data_center_id: UUID) -> list[Host]:
        """Up hosts of the data center, in a stable order (by name) so failures are reproducible."""
        h, c = s.hosts, s.clusters
        query = (
            select(h)
            .select_from(h.join(c, h.c.cluster_id == c.c.id))
            .where(c.c.data_center_id == data_center_id, h.c.status == HostStatus.UP.value)
            .order_by(h.c.name)
        )
        with self.db.read() as conn:
            return [from_row(Host, r) for r in conn.execute(query).mappings()]

    def client(self, host: Host) -> AgentClient:
        with self._lock:
            client = self._clients.get(host.address)
            if client is None:
                client = AgentClient(host.address, self.config.secret, timeout=self.config.timeout_s)
                self._clients[host.address] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

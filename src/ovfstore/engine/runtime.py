"""One running engine: its database, inventory, agents, OVF updater and domain service, built from one
configuration and started and stopped together. The REST API, `ovfstore up` and the tests use this.

Several engines may share one PostgreSQL database: each serves the API, the one holding the leadership
runs the OVF updater (engine/leadership.py), and each tells the others of its changes (engine/notify.py).
On SQLite the engine is alone, and a second one on the same file is refused."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from ovfstore.engine.config import AgentAccess, ApiConfig, EngineIdentity, UpdaterConfig
from ovfstore.engine.db.database import Database
from ovfstore.engine.domains import DomainService
from ovfstore.engine.hosts import AgentDirectory
from ovfstore.engine.inventory import Inventory
from ovfstore.engine.leadership import Leadership, SingleEngineLock
from ovfstore.engine.notify import ChangeListener, ChangeNotifier
from ovfstore.engine.recovery import RecoveryService
from ovfstore.engine.telemetry import Telemetry
from ovfstore.engine.updater.service import OvfUpdater
from ovfstore.engine.users import UserService


@dataclass(frozen=True, slots=True)
class EngineConfig:
    db_url: str
    agent: AgentAccess
    updater: UpdaterConfig = field(default_factory=UpdaterConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    engine: EngineIdentity = field(default_factory=EngineIdentity)


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.db = Database(config.db_url)
        self.inventory = Inventory(self.db)
        self.agents = AgentDirectory(self.db, config.agent)
        self.updater = OvfUpdater(self.db, self.inventory, self.agents, config.updater)
        self.domains = DomainService(self.inventory, self.agents, self.updater)
        self.recovery = RecoveryService(self.inventory, self.agents, self.domains)
        self.users = UserService(self.db)
        self.telemetry = Telemetry(self.updater, cache_s=config.api.metrics_cache_s)
        self.name = config.engine.name or socket.gethostname()
        self.leadership = Leadership(self.db, self.name, config.engine.lease_s, single=self.db.is_sqlite)
        self.updater.lead_with(self.leadership)
        self._listener = None if self.db.is_sqlite else ChangeListener(self.db, self.updater.wake)
        self._sqlite_lock: SingleEngineLock | None = None

    def start(self) -> None:
        """Refuse a second engine on one SQLite file, bring the schema up to date and create oVirt's defaults
        if missing (one engine at a time), then take part in the leadership and start the updater."""
        if self.db.is_sqlite and self._sqlite_lock is None:
            self._sqlite_lock = SingleEngineLock(str(self.db.url.database), self.name)
        with self.db.exclusive():
            self.db.migrate()
            self.inventory.bootstrap()
        self.leadership.start()
        if self._listener is not None:
            self.inventory.subscribe(ChangeNotifier(self.db))
            self._listener.start()
        self.updater.start()

    def stop(self) -> None:
        self.updater.stop()
        if self._listener is not None:
            self._listener.stop()
        self.leadership.stop()
        self.agents.close()
        if self._sqlite_lock is not None:
            self._sqlite_lock.release()
            self._sqlite_lock = None
        self.db.dispose()

"""One running engine: its database, inventory, agents, OVF updater and domain service, built from one
configuration and started and stopped together. The REST API, `ovfstore up` and the tests use this."""

from __future__ import annotations

from dataclasses import dataclass, field

from ovfstore.engine.config import AgentAccess, ApiConfig, UpdaterConfig
from ovfstore.engine.db.database import Database
from ovfstore.engine.domains import DomainService
from ovfstore.engine.hosts import AgentDirectory
from ovfstore.engine.inventory import Inventory
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

    def start(self) -> None:
        """Bring the schema up to date, create oVirt's defaults if missing, start the updater."""
        self.db.migrate()
        self.inventory.bootstrap()
        self.updater.start()

    def stop(self) -> None:
        self.updater.stop()
        self.agents.close()
        self.db.dispose()

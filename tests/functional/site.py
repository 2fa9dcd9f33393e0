"""A protected site for updater and recovery tests: a real agent process over real domain directories,
an engine database with inventory, and the OVF updater. Stores are read back straight from disk."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from ovfstore.engine.config import AgentAccess, UpdaterConfig
from ovfstore.engine.db.database import Database
from ovfstore.engine.domains import DomainService, create_volumes
from ovfstore.engine.hosts import AgentDirectory
from ovfstore.engine.inventory import Inventory
from ovfstore.engine.recovery import RecoveryService
from ovfstore.engine.updater.service import OvfUpdater
from ovfstore.model import (
    GIB,
    Cluster,
    DataCenter,
    Disk,
    DiskAttachment,
    DomainStatus,
    Host,
    StorageDomain,
    Vm,
)
from ovfstore.storage.metadata import parse_volume_meta
from ovfstore.store import description
from ovfstore.store.tarread import StoreContents, StoreReadError, read_store
from tests.functional.agent_fixtures import AgentProcess


@dataclass
class StoreOnDisk:
    disk_id: UUID
    volume_id: UUID
    meta: dict[str, str]
    description: description.StoreDescription
    contents: StoreContents | None
    error: str | None
    mtime_ns: int


@dataclass
class Site:
    db: Database
    inv: Inventory
    agent: AgentProcess
    root: Path
    dc: DataCenter
    cluster: Cluster
    host: Host
    updater: OvfUpdater
    domains: dict[str, StorageDomain] = field(default_factory=dict)

    def add_domain(self, name: str, *, stores: int = 2) -> StorageDomain:
        domain = StorageDomain(name=name, path=str(self.root), ovf_store_count=stores)
        with self.agent.client() as client:
            client.create_domain(domain.id, name, parent=str(self.root))
            client.attach(domain.id, self.dc.id, master=not self.domains)
        domain.data_center_id = self.dc.id
        domain.status = DomainStatus.ACTIVE
        domain.master = not self.domains
        self.inv.storage_domains.add(domain)
        self.domains[name] = domain
        return domain

    def add_vm(self, name: str, *domains: str, shareable: bool = False, size: int = GIB) -> Vm:
        vm = self.inv.vms.add(Vm(name=name, cluster_id=self.cluster.id, os_type="rhel_9x64"))
        for i, domain in enumerate(domains):
            disk = self.inv.disks.add(
                Disk(
                    alias=f"{name}_disk{i}",
                    provisioned_size=size,
                    domain_ids=[self.domains[domain].id],
                    shareable=shareable,
                )
            )
            self.inv.attachments.attach(DiskAttachment(entity_id=vm.id, disk_id=disk.id, bootable=i == 0))
        return vm

    def materialize(self, disk_id: UUID) -> None:
        """Create the disk's volumes on storage (tests build volume chains in the inventory first)."""
        disk = self.inv.disks.get(disk_id)
        with self.agent.client() as client:
            for domain_id in disk.domain_ids:
                create_volumes(client, domain_id, disk)

    def domain_dir(self, name: str) -> Path:
        return self.root / str(self.domains[name].id)

    def stores_on_disk(self, name: str) -> list[StoreOnDisk]:
        """Every OVF store of the domain as the files say, verified, with no engine or agent involved."""
        found = []
        images = self.domain_dir(name) / "images"
        for image in sorted(images.iterdir()):
            for meta_path in image.glob("*.meta"):
                meta = parse_volume_meta(meta_path.read_bytes()).to_dict()
                if meta["DISKTYPE"] != "OVFS":
                    continue
                volume = meta_path.with_suffix("")
                desc = description.parse(meta["DESCRIPTION"])
                contents, error = None, None
                if desc.complete and meta["LEGALITY"] == "LEGAL":
                    assert desc.size is not None
                    try:
                        contents = read_store([volume.read_bytes()[: desc.size]], desc.size)
                    except StoreReadError as exc:
                        error = str(exc)
                else:
                    error = f"incomplete: Updated={desc.updated}, LEGALITY={meta['LEGALITY']}"
                found.append(
                    StoreOnDisk(
                        UUID(image.name), UUID(volume.name), meta, desc, contents, error, os.stat(volume).st_mtime_ns
                    )
                )
        return found

    def entities_in(self, name: str) -> set[UUID]:
        """The entities of the newest complete, verified store of the domain."""
        good = [s for s in self.stores_on_disk(name) if s.contents is not None and s.contents.verified]
        assert good, f"domain {name} has no complete, verified store"
        newest = max(good, key=lambda s: s.contents.manifest.generation if s.contents and s.contents.manifest else 0)
        assert newest.contents is not None
        return set(newest.contents.ovfs)


def build_site(
    database: Database,
    agent_factory: Callable[..., AgentProcess],
    tmp_path: Path,
    config: UpdaterConfig | None = None,
) -> Site:
    root = tmp_path / "storage"
    agent = agent_factory(roots=(root,))
    inv = Inventory(database)
    inv.bootstrap()
    dc = next(d for d in inv.data_centers.list() if d.name == "Default")
    cluster = next(c for c in inv.clusters.list() if c.name == "Default")
    host = inv.hosts.add(Host(name="host1", cluster_id=cluster.id, address=agent.url))
    agents = AgentDirectory(database, AgentAccess(secret=agent.secret, timeout_s=30))
    updater = OvfUpdater(database, inv, agents, config or UpdaterConfig(debounce_s=0.2, backoff_initial_s=0.1))
    return Site(database, inv, agent, root, dc, cluster, host, updater)


@dataclass
class FreshEngine:
    """An engine that has never seen the protected site's domains, with the same agent as its host."""

    db: Database
    inv: Inventory
    agents: AgentDirectory
    updater: OvfUpdater
    domains: DomainService
    recovery: RecoveryService
    host: Host
    dc: DataCenter
    cluster: Cluster

    def import_and_attach(self, directory: Path, name: str) -> StorageDomain:
        domain = self.recovery.import_domain(str(directory), host=self.host, name=name, force_detach=True)
        return self.domains.attach(domain.id, self.dc.id)

    def close(self) -> None:
        self.agents.close()
        self.db.dispose()


def fresh_engine(db_url: str, agent: AgentProcess) -> FreshEngine:
    db = Database(db_url)
    db.migrate()
    inv = Inventory(db)
    inv.bootstrap()
    dc = inv.data_centers.list()[0]
    cluster = inv.clusters.list()[0]
    host = inv.hosts.add(Host(name="dr-host", cluster_id=cluster.id, address=agent.url))
    agents = AgentDirectory(db, AgentAccess(secret=agent.secret, timeout_s=30))
    updater = OvfUpdater(db, inv, agents, UpdaterConfig())
    domains = DomainService(inv, agents, updater)
    recovery = RecoveryService(inv, agents, domains)
    return FreshEngine(db, inv, agents, updater, domains, recovery, host, dc, cluster)

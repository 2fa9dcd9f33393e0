"""Inventory commands: create, update and delete every entity, one transaction each.

`Inventory` composes one service per kind of entity (`inventory.vms`, `inventory.disks`, ...), all
running their commands through one `Transactions`: every command that alters what a VM's or template's
OVF would say bumps that entity's `db_generation` in the same transaction, and after the commit the
subscribers (the OVF updater) hear which entities changed. No HTTP here: the REST API and the command
line both call these.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory.affinity import (
    AffinityGroupChanges,
    AffinityGroupService,
    AffinityLabelChanges,
    AffinityLabelService,
)
from ovfstore.engine.inventory.attachments import AttachmentChanges, AttachmentService
from ovfstore.engine.inventory.base import Changes, Listener, Transactions, Tx
from ovfstore.engine.inventory.changes import UNSET
from ovfstore.engine.inventory.clusters import ClusterChanges, ClusterService
from ovfstore.engine.inventory.data_centers import DataCenterChanges, DataCenterService
from ovfstore.engine.inventory.defaults import bootstrap
from ovfstore.engine.inventory.disks import DiskChanges, DiskService, VolumeChanges
from ovfstore.engine.inventory.entities import EntityService
from ovfstore.engine.inventory.hosts import HostChanges, HostService
from ovfstore.engine.inventory.networks import NetworkChanges, NetworkService
from ovfstore.engine.inventory.nics import NicChanges, NicService
from ovfstore.engine.inventory.permissions import PermissionService
from ovfstore.engine.inventory.roles import RoleChanges, RoleService
from ovfstore.engine.inventory.snapshots import SnapshotChanges, SnapshotService
from ovfstore.engine.inventory.storage_domains import StorageDomainChanges, StorageDomainService
from ovfstore.engine.inventory.templates import TemplateChanges, TemplateService
from ovfstore.engine.inventory.vms import VmChanges, VmService
from ovfstore.engine.inventory.vnic_profiles import VnicProfileChanges, VnicProfileService


class Inventory:
    """The inventory of one engine: a service per kind of entity, one transaction rule for all."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._transactions = t = Transactions(db)
        self.entities = EntityService(t)  # either kind: generation, forget
        self.vms = VmService(t)
        self.templates = TemplateService(t)
        self.nics = NicService(t)
        self.snapshots = SnapshotService(t)
        self.disks = DiskService(t)  # with their volumes
        self.attachments = AttachmentService(t)
        self.data_centers = DataCenterService(t)
        self.clusters = ClusterService(t)
        self.hosts = HostService(t)
        self.storage_domains = StorageDomainService(t)
        self.networks = NetworkService(t)
        self.vnic_profiles = VnicProfileService(t)
        self.roles = RoleService(t)
        self.permissions = PermissionService(t)
        self.affinity_groups = AffinityGroupService(t)
        self.affinity_labels = AffinityLabelService(t)

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` after every committed command that changed what an OVF says."""
        self._transactions.subscribe(listener)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """Run several commands as one: on this thread, every command inside joins this transaction, and
        all of them commit together or not at all (registering a VM with its disks and NICs, say)."""
        with self._transactions.transaction() as tx:
            yield tx

    def bootstrap(self) -> None:
        """Create whatever of oVirt's defaults is missing; running it again changes nothing."""
        bootstrap(self)


__all__ = [
    "UNSET",
    "AffinityGroupChanges",
    "AffinityLabelChanges",
    "AttachmentChanges",
    "Changes",
    "ClusterChanges",
    "DataCenterChanges",
    "DiskChanges",
    "HostChanges",
    "Inventory",
    "Listener",
    "NetworkChanges",
    "NicChanges",
    "RoleChanges",
    "SnapshotChanges",
    "StorageDomainChanges",
    "TemplateChanges",
    "VmChanges",
    "VnicProfileChanges",
    "VolumeChanges",
]

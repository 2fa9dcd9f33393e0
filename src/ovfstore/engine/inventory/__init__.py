"""Inventory commands: create, update and delete every entity, one transaction each.

Every command that alters what a VM's or template's OVF would say bumps that entity's `db_generation` in
the same transaction, and after the commit tells subscribers (the OVF updater) which entities changed.
No HTTP here: the REST API and the command line both call these.
"""

from ovfstore.engine.inventory.base import Changes, Listener
from ovfstore.engine.inventory.defaults import DefaultsMixin
from ovfstore.engine.inventory.disks import DiskCommands
from ovfstore.engine.inventory.infra import InfraCommands
from ovfstore.engine.inventory.vms import VmCommands


class Inventory(InfraCommands, DiskCommands, VmCommands, DefaultsMixin):
    """The inventory service of one engine."""


__all__ = ["Changes", "Inventory", "Listener"]

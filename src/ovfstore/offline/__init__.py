"""Reading storage domains directly, with no engine and no database: inspection and export."""

from ovfstore.offline.inspect import DiskReport, DomainReport, EntityReport, InspectError, inspect_domain

__all__ = ["DiskReport", "DomainReport", "EntityReport", "InspectError", "inspect_domain"]

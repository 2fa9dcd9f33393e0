"""Reading storage domains directly, with no engine and no database: inspection and export,
file domains from their directory, block domains from their devices or images."""

from ovfstore.offline.inspect import (
    DiskReport,
    DomainReport,
    EntityReport,
    InspectError,
    inspect_devices,
    inspect_domain,
)

__all__ = ["DiskReport", "DomainReport", "EntityReport", "InspectError", "inspect_devices", "inspect_domain"]

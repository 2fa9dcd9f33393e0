"""Recovery: a storage domain carried to an engine that has never seen it gives back every VM and template.

- `scan`: read every OVF store of a domain, verify each, take the newest good one, and record what it
  describes as unregistered VMs and templates (and the unknown volumes as unregistered disks).
- `register`: turn an unregistered entity into inventory, keeping its id, with mappings for names that
  differ at the new site.
- `service`: the operations the API and the command line call.
"""

from ovfstore.engine.recovery.options import (
    LunMapping,
    RegistrationOptions,
    RegistrationRefused,
    RegistrationReport,
    VnicProfileMapping,
)
from ovfstore.engine.recovery.scan import ScanReport
from ovfstore.engine.recovery.service import RecoveryService, UnregisteredDisk, UnregisteredEntity

__all__ = [
    "LunMapping",
    "RecoveryService",
    "RegistrationOptions",
    "RegistrationRefused",
    "RegistrationReport",
    "ScanReport",
    "UnregisteredDisk",
    "UnregisteredEntity",
    "VnicProfileMapping",
]

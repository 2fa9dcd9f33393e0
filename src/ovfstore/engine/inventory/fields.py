"""How long the inventory's text fields may be, checked on every add and update.

Every free-text field ends up in an OVF, and an OVF larger than a store member may be
(`ovfstore.store.tarstream.MAX_MEMBER`) cannot be stored: one oversized description would leave a VM out
of its domain's stores. oVirt bounds the same fields in its engine (`BusinessEntitiesDefinitions` and the
columns of its database), and the limits here are oVirt's where it has one:

- names and disk aliases: 255 characters (oVirt's VM_NAME_SIZE and GENERAL_NAME_SIZE; oVirt is stricter
  for some kinds, 40 for data centers and clusters, 50 for vNIC profiles: 255 is what this inventory always
  accepted, so names already in use stay valid);
- VM and template descriptions: 255 (VM_DESCRIPTION_SIZE, oVirt's `vm_static.description varchar(255)`);
- disk descriptions: 500 (DISK_DESCRIPTION_MAX_SIZE);
- comments and every other description: 4000 (GENERAL_MAX_SIZE; oVirt keeps comments as unbounded `text`,
  but an unbounded field is exactly what lets one edit make an OVF unstorable, and 4000 is our columns' width);
- the short technical strings (OS type, time zone, machine type, MAC, version): the width of their columns.

Any text field not listed gets the general 4000: a new field is bounded before anyone thinks of it.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from ovfstore.engine.errors import InvalidInput
from ovfstore.model import Disk, VmBase

NAME_MAX: Final = 255
GENERAL_MAX: Final = 4000
VM_DESCRIPTION_MAX: Final = 255
DISK_DESCRIPTION_MAX: Final = 500

_BY_FIELD: Final[dict[str, int]] = {
    "name": NAME_MAX,
    "alias": NAME_MAX,
    "version_name": NAME_MAX,
    "custom_cpu_name": NAME_MAX,
    "cpu_type": NAME_MAX,
    "lun_id": NAME_MAX,
    "lun_vendor": NAME_MAX,
    "lun_product": NAME_MAX,
    "lun_serial": NAME_MAX,
    "user_name": NAME_MAX,
    "role_name": NAME_MAX,
    "os_type": 64,
    "time_zone": 64,
    "custom_emulated_machine": 64,
    "compatibility_version": 16,
    "mac": 17,
    "mac_pool_start": 17,
    "mac_pool_end": 17,
    "address": 1024,
    "path": 1024,
    "vfs_type": NAME_MAX,
    "nfs_version": 16,
}
_BY_KIND: Final[dict[tuple[type, str], int]] = {
    (VmBase, "description"): VM_DESCRIPTION_MAX,
    (Disk, "description"): DISK_DESCRIPTION_MAX,
}


def limit_of(obj: object, field: str) -> int:
    """The most characters `field` of `obj` may hold."""
    for (kind, name), limit in _BY_KIND.items():
        if name == field and isinstance(obj, kind):
            return limit
    return _BY_FIELD.get(field, GENERAL_MAX)


def check_text(obj: object, kind: str, only: set[str] | None = None) -> None:
    """Refuse `obj` (a model dataclass) if one of its text fields (or of `only`) is over its limit; the
    error names the field, its length and the limit, and the API answers it with a 400."""
    for field in dataclasses.fields(obj):  # type: ignore[arg-type]
        if only is not None and field.name not in only:
            continue
        value = getattr(obj, field.name)
        if isinstance(value, str) and len(value) > (limit := limit_of(obj, field.name)):
            raise InvalidInput(f"{kind} {field.name} is {len(value)} characters long; the limit is {limit}: shorten it")

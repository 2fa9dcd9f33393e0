"""What a fresh engine starts with, the way oVirt starts: the `Default` data center and cluster, the
`ovirtmgmt` network with its vNIC profile, the `Blank` template and the built-in roles."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING
from uuid import uuid4

from sqlalchemy import select

from ovfstore.engine.db import schema as s
from ovfstore.model import BLANK_TEMPLATE_ID, Cluster, DataCenter, Network, Role, Template, VnicProfile

if TYPE_CHECKING:
    from ovfstore.engine.inventory import Inventory

DEFAULT = "Default"
MANAGEMENT_NETWORK = "ovirtmgmt"
BUILTIN_ROLES = (
    Role(name="SuperUser", description="Roles management administrator", administrative=True),
    Role(name="ReadOnlyAdmin", description="Read-only administrator", administrative=True, read_only=True),
    Role(name="UserRole", description="Standard user role"),
    Role(name="UserVmManager", description="User role, with permission for any operation on VMs"),
)


def bootstrap(inv: Inventory) -> None:
    """Create whatever of oVirt's defaults is missing; running it again changes nothing."""
    with inv.db.read() as conn:
        has_blank = conn.execute(select(s.vm_static.c.id).where(s.vm_static.c.id == BLANK_TEMPLATE_ID)).first()
        roles = set(conn.execute(select(s.roles.c.name)).scalars())
        has_any_dc = conn.execute(select(s.data_centers.c.id).limit(1)).first()
    if not has_blank:
        inv.templates.add(Template(id=BLANK_TEMPLATE_ID, name="Blank", description="Blank template"))
    for role in BUILTIN_ROLES:
        if role.name not in roles:
            inv.roles.add(dataclasses.replace(role, id=uuid4()))
    if not has_any_dc:
        dc = inv.data_centers.add(DataCenter(name=DEFAULT, description="The default Data Center"))
        inv.clusters.add(Cluster(name=DEFAULT, data_center_id=dc.id, description="The default server cluster"))
        network = inv.networks.add(
            Network(name=MANAGEMENT_NETWORK, data_center_id=dc.id, description="Management Network")
        )
        inv.vnic_profiles.add(VnicProfile(name=MANAGEMENT_NETWORK, network_id=network.id))

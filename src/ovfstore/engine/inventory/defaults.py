"""What a fresh engine starts with, the way oVirt starts: the `Default` data center and cluster, the
`ovirtmgmt` network with its vNIC profile, the `Blank` template and the built-in roles."""

from __future__ import annotations

import dataclasses
from uuid import uuid4

from sqlalchemy import select

from ovfstore.engine.db import schema as s
from ovfstore.engine.inventory.base import CommandsBase
from ovfstore.model import BLANK_TEMPLATE_ID, Cluster, DataCenter, Network, Role, Template, VnicProfile

DEFAULT = "Default"
MANAGEMENT_NETWORK = "ovirtmgmt"
BUILTIN_ROLES = (
    Role(name="SuperUser", description="Roles management administrator", administrative=True),
    Role(name="ReadOnlyAdmin", description="Read-only administrator", administrative=True, read_only=True),
    Role(name="UserRole", description="Standard user role"),
    Role(name="UserVmManager", description="User role, with permission for any operation on VMs"),
)


class DefaultsMixin(CommandsBase):
    def bootstrap(self) -> None:
        """Create whatever of oVirt's defaults is missing; running it again changes nothing."""
        from ovfstore.engine.inventory import Inventory

        assert isinstance(self, Inventory)
        with self.db.read() as conn:
            has_blank = conn.execute(select(s.vm_static.c.id).where(s.vm_static.c.id == BLANK_TEMPLATE_ID)).first()
            roles = set(conn.execute(select(s.roles.c.name)).scalars())
            has_any_dc = conn.execute(select(s.data_centers.c.id).limit(1)).first()
        if not has_blank:
            self.add_template(Template(id=BLANK_TEMPLATE_ID, name="Blank", description="Blank template"))
        for role in BUILTIN_ROLES:
            if role.name not in roles:
                self.add_role(dataclasses.replace(role, id=uuid4()))
        if not has_any_dc:
            dc = self.add_data_center(DataCenter(name=DEFAULT, description="The default Data Center"))
            self.add_cluster(Cluster(name=DEFAULT, data_center_id=dc.id, description="The default server cluster"))
            network = self.add_network(
                Network(name=MANAGEMENT_NETWORK, data_center_id=dc.id, description="Management Network")
            )
            self.add_vnic_profile(VnicProfile(name=MANAGEMENT_NETWORK, network_id=network.id))

"""Commands on roles. An OVF lists the permissions on its entity by role name: renaming a role bumps
every entity it is granted on."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import insert

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import values
from ovfstore.engine.inventory import lookups
from ovfstore.engine.inventory.base import Service, changed, check_name, unique_name, update_row
from ovfstore.engine.inventory.changes import UNSET, ChangeSet, Unset
from ovfstore.engine.inventory.fields import check_text
from ovfstore.model import Role

r = s.roles


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleChanges(ChangeSet):
    name: str | Unset = UNSET
    description: str | Unset = UNSET


class RoleService(Service):
    def add(self, role: Role) -> Role:
        check_name(role.name, "role")
        check_text(role, "role")
        with self._tx() as tx:
            unique_name(tx.conn, r, role.name, "role")
            tx.conn.execute(insert(r).values(values(role, r)))
        return role

    def update(self, role_id: UUID, changes: RoleChanges) -> Role:
        with self._tx() as tx:
            _, new, effective = changed(tx, r, Role, role_id, changes, "role")
            if "name" in effective:
                unique_name(tx.conn, r, new.name, "role")
                tx.bump(lookups.entities_with_role(tx.conn, role_id))
            update_row(tx.conn, r, role_id, effective)
        return new

    def list(self) -> list[Role]:
        return self._list(r, Role)

"""Commands on permissions: a user's role on a VM or template. An OVF lists its entity's permissions,
so granting or revoking one bumps that entity."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import delete, insert, select

from ovfstore.engine.db import schema as s
from ovfstore.engine.errors import Conflict, InvalidInput, NotFound
from ovfstore.engine.inventory import lookups
from ovfstore.engine.inventory.base import Service, exists, one
from ovfstore.engine.inventory.fields import check_text
from ovfstore.model import Permission, Role

p = s.permissions


class PermissionService(Service):
    def add(self, entity_id: UUID, user_name: str, role_id: UUID) -> Permission:
        if "@" not in user_name:
            raise InvalidInput(f"user {user_name!r}: name users as oVirt does, user@profile (admin@internal)")
        with self._tx() as tx:
            lookups.entity_type(tx.conn, entity_id)
            role = one(tx.conn, s.roles, Role, role_id, "role")
            if exists(tx.conn, p, p.c.entity_id == entity_id, p.c.user_name == user_name, p.c.role_id == role_id):
                raise Conflict(f"{user_name} already has role {role.name} on {entity_id}")
            permission = Permission(entity_id=entity_id, user_name=user_name, role_name=role.name)
            check_text(permission, "permission")
            tx.conn.execute(
                insert(p).values(id=permission.id, entity_id=entity_id, user_name=user_name, role_id=role_id)
            )
            tx.bump([entity_id])
        return permission

    def remove(self, permission_id: UUID) -> None:
        with self._tx() as tx:
            entity_id = tx.conn.execute(select(p.c.entity_id).where(p.c.id == permission_id)).scalar()
            if entity_id is None:
                raise NotFound("permission", permission_id)
            tx.conn.execute(delete(p).where(p.c.id == permission_id))
            tx.bump([entity_id])

    def list(self, entity_id: UUID) -> list[Permission]:
        query = lookups.permissions_query(p.c.entity_id == entity_id)
        with self.db.read() as conn:
            return [Permission(**row) for row in conn.execute(query).mappings()]

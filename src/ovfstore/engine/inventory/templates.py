"""Commands on templates and template versions. Renaming a template bumps the VMs made from it and its
versions too, whose OVFs carry its name."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import insert, select, update

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.rows import entity_values
from ovfstore.engine.errors import Conflict, InvalidInput, NotFound
from ovfstore.engine.inventory import entities, lookups
from ovfstore.engine.inventory.base import Service, Tx
from ovfstore.engine.inventory.changes import UNSET, Unset, apply
from ovfstore.engine.inventory.entities import EntityChanges
from ovfstore.model import BLANK_TEMPLATE_ID, EntityType, Template, TemplateStatus

vm = s.vm_static


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateChanges(EntityChanges):
    status: TemplateStatus | Unset = UNSET
    version_name: str | Unset = UNSET
    disabled: bool | Unset = UNSET
    sealed: bool | Unset = UNSET


class TemplateService(Service):
    def add(self, new: Template) -> Template:
        """Add a template, or a version of one when `base_template_id` names an existing base template
        (the version then takes the base's name and the next version number)."""
        with self._tx() as tx:
            if new.cluster_id is None and new.id != BLANK_TEMPLATE_ID:
                raise InvalidInput(f"template {new.name!r} needs a cluster")
            if new.base_template_id is not None and new.base_template_id != new.id:
                _make_version(tx, new)
            else:
                new.base_template_id = None
                _check_name(tx, new)
            entities.check(tx, new)
            tx.conn.execute(insert(vm).values(entity_values(new)))
            tx.created.add(new.id)
        return new

    def update(self, template_id: UUID, changes: TemplateChanges) -> Template:
        with self._tx() as tx:
            old = _load(tx, template_id)
            new, effective = apply(old, changes, "template")
            if not effective:
                return new
            if "name" in effective:
                if old.base_template_id not in (None, old.id):
                    raise InvalidInput("a template version takes its base template's name; rename the base")
                _check_name(tx, new)
                tx.bump(lookups.entities_using_template(tx.conn, template_id))
                tx.conn.execute(update(vm).where(vm.c.base_template_id == template_id).values(name=new.name))
            entities.check(tx, new, previous=old)
            entities.write(tx, new, effective)
        return new

    def remove(self, template_id: UUID) -> None:
        with self._tx() as tx:
            old = _load(tx, template_id)
            if template_id == BLANK_TEMPLATE_ID:
                raise Conflict("the Blank template is where every VM starts; it cannot be removed")
            if old.delete_protected:
                raise Conflict(f"template {old.name!r} is delete-protected; clear delete_protected first")
            users = tx.conn.execute(select(vm.c.name).where(vm.c.template_id == template_id)).scalars().all()
            if users:
                raise Conflict(f"template {old.name!r} is used by VMs {sorted(users)}; remove them first")
            versions = tx.conn.execute(
                select(vm.c.id).where(vm.c.base_template_id == template_id, vm.c.id != template_id)
            ).all()
            if versions:
                raise Conflict(f"template {old.name!r} has versions; remove them first")
            entities.remove_own_disks(tx, template_id)
            entities.delete_entity(tx, template_id)

    def get(self, template_id: UUID) -> Template:
        with self.db.read() as conn:
            found = entities.find(conn, template_id)
        if not isinstance(found, Template):
            raise NotFound("template", template_id)
        return found

    def list(self, cluster_id: UUID | None = None) -> list[Template]:
        with self.db.read() as conn:
            found = entities.list_of(conn, EntityType.TEMPLATE, cluster_id)
        return [e for e in found if isinstance(e, Template)]


def _load(tx: Tx, template_id: UUID) -> Template:
    found = entities.load(tx, template_id)
    if not isinstance(found, Template):
        raise NotFound("template", template_id)
    return found


def _make_version(tx: Tx, new: Template) -> None:
    """Make `new` the next version of its base template: the base's name, the next number."""
    assert new.base_template_id is not None
    base = entities.load(tx, new.base_template_id)
    if not isinstance(base, Template) or base.base_template_id not in (None, base.id):
        raise InvalidInput(f"{new.base_template_id} is not a base template")
    new.name = base.name
    versions = tx.conn.execute(
        select(vm.c.version_number).where((vm.c.base_template_id == base.id) | (vm.c.id == base.id))
    ).scalars()
    new.version_number = max(versions, default=1) + 1


def _check_name(tx: Tx, entity: Template) -> None:
    """Base template names are unique per data center (versions share their base's name)."""
    where = [
        vm.c.entity_type == EntityType.TEMPLATE.value,
        vm.c.name == entity.name,
        vm.c.base_template_id.is_(None),
        vm.c.id != entity.id,
    ]
    c = s.clusters
    if entity.cluster_id is not None:
        dc = lookups.cluster_data_center(tx.conn, entity.cluster_id)
        query = select(vm.c.id).select_from(vm.outerjoin(c, vm.c.cluster_id == c.c.id))
        where.append((c.c.data_center_id == dc) | vm.c.cluster_id.is_(None))
    else:
        query = select(vm.c.id)
    if tx.conn.execute(query.where(*where).limit(1)).first() is not None:
        raise Conflict(f"template name {entity.name!r} is already used; choose another")

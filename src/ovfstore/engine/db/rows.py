"""Rows to dataclasses and back. Column names equal field names (see `schema`), so the mapping is
generic; VMs and templates, which share `vm_static`, are the one special case."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import Table

from ovfstore.model import EntityType, Template, Vm, VmBase

T = TypeVar("T")

_BASE_FIELDS = tuple(f.name for f in dataclasses.fields(VmBase))
_VM_ONLY = ("template_id", "use_latest_template_version", "status", "initialized")
# Template field -> vm_static column (a template's `status` has its own column: VMs use `status`).
_TEMPLATE_ONLY = {
    "status": "template_status",
    "base_template_id": "base_template_id",
    "version_number": "version_number",
    "version_name": "version_name",
    "disabled": "disabled",
    "sealed": "sealed",
}
_FIELDS_CACHE: dict[type[Any], tuple[str, ...]] = {}


def field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELDS_CACHE.get(cls)
    if names is None:
        names = _FIELDS_CACHE[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def values(obj: Any, table: Table) -> dict[str, Any]:
    """The column values of a dataclass for `table` (fields without a column are left out)."""
    columns = table.c
    return {name: getattr(obj, name) for name in field_names(type(obj)) if name in columns}


def from_row(cls: type[T], row: Mapping[Any, Any]) -> T:
    """A dataclass from a row; fields without a column keep their defaults."""
    return cls(**{name: row[name] for name in field_names(cls) if name in row})


def entity_values(entity: Vm | Template) -> dict[str, Any]:
    result = {name: getattr(entity, name) for name in _BASE_FIELDS}
    if isinstance(entity, Template):
        result["entity_type"] = EntityType.TEMPLATE
        for attr, column in _TEMPLATE_ONLY.items():
            result[column] = getattr(entity, attr)
    else:
        result["entity_type"] = EntityType.VM
        for name in _VM_ONLY:
            result[name] = getattr(entity, name)
    return result


def entity_column(entity_type: EntityType, field: str) -> str:
    """The vm_static column holding `field` of a VM or a template."""
    if entity_type is EntityType.TEMPLATE:
        return _TEMPLATE_ONLY.get(field, field)
    return field


def entity_from_row(row: Mapping[Any, Any]) -> Vm | Template:
    base = {name: row[name] for name in _BASE_FIELDS}
    if row["entity_type"] is EntityType.TEMPLATE:
        return Template(**base, **{attr: row[column] for attr, column in _TEMPLATE_ONLY.items()})
    return Vm(**base, **{name: row[name] for name in _VM_ONLY})

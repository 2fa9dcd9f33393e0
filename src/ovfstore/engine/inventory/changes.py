"""Typed change sets for the inventory's update commands.

Each service's `update` takes a frozen dataclass of the fields it lets a caller change, every one
`UNSET` unless given: `vms.update(vm_id, VmChanges(name="web", memory_mb=4096))`. mypy checks the field
names at every call site; `apply` checks the values, coerced to the entity's field types (an enum from
its value, a UUID from its string) so the API can pass what it parsed.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from datetime import datetime
from typing import Any, Final, TypeVar
from uuid import UUID

from ovfstore.engine.errors import InvalidInput
from ovfstore.engine.inventory.fields import check_text

T = TypeVar("T")


class Unset(enum.Enum):
    """The value of a change-set field the caller did not give: the field stays as it is."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ChangeSet:
    """Base of the change sets: their fields are fields of the entity they change, of the same name."""

    def given(self) -> dict[str, Any]:
        """The fields the caller set, with their values."""
        found = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {name: value for name, value in found.items() if value is not UNSET}


def apply(obj: T, changes: ChangeSet, kind: str) -> tuple[T, dict[str, Any]]:
    """A copy of `obj` with `changes` applied, and the fields whose value really changed (their text
    within its limits: every update goes through here)."""
    hints = _hints(type(obj))
    effective: dict[str, Any] = {}
    for name, value in changes.given().items():
        coerced = _coerce(hints[name], value, f"{kind} {name}")
        if getattr(obj, name) != coerced:
            effective[name] = coerced
    new = dataclasses.replace(obj, **effective)  # type: ignore[type-var]
    check_text(new, kind, set(effective))
    return new, effective


def _hints(cls: type[Any]) -> dict[str, Any]:
    cached = _HINTS.get(cls)
    if cached is None:
        cached = _HINTS[cls] = typing.get_type_hints(cls)
    return cached


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _coerce(hint: Any, value: Any, what: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(options[0], value, what)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise InvalidInput(f"{what} must be a list")
        return [_coerce(item, v, what) for v in value]
    try:
        return _coerce_scalar(hint, value)
    except (TypeError, ValueError) as exc:
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            choices = ", ".join(str(m.value) for m in hint)
            raise InvalidInput(f"{what}: {value!r} is not one of {choices}") from exc
        name = getattr(hint, "__name__", str(hint))
        raise InvalidInput(f"{what}: {value!r} is not a valid {name}") from exc


def _coerce_scalar(hint: Any, value: Any) -> Any:
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if hint is UUID:
        return value if isinstance(value, UUID) else UUID(str(value))
    if hint is int and isinstance(value, bool):
        raise TypeError  # a bool is an int to Python, never to the inventory
    if hint is datetime and isinstance(value, datetime) and value.tzinfo is None:
        raise TypeError
    if hint in (bool, int, str, datetime) and not isinstance(value, hint):
        raise TypeError
    return value

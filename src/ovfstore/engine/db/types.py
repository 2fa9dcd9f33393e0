"""Column types that keep the model's Python types across SQLite and PostgreSQL.

Enums are stored by value (the string the REST API uses, or oVirt's numeric code), never by Python
name, so renaming a member in code cannot silently change what a database means. Times are stored in
UTC and always come back timezone-aware, which SQLite alone would not do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum, IntEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import DateTime, Dialect, Integer, String, Text
from sqlalchemy.types import TypeDecorator

E = TypeVar("E", bound=Enum)
I = TypeVar("I", bound=IntEnum)  # noqa: E741


class StrEnumType(TypeDecorator[E], Generic[E]):
    impl = String(32)
    cache_ok = True

    def __init__(self, enum_cls: type[E]) -> None:
        super().__init__()
        self.enum_cls = enum_cls

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return str(self.enum_cls(value).value)

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        return None if value is None else self.enum_cls(value)


class IntEnumType(TypeDecorator[I], Generic[I]):
    impl = Integer
    cache_ok = True

    def __init__(self, enum_cls: type[I]) -> None:
        super().__init__()
        self.enum_cls = enum_cls

    def process_bind_param(self, value: I | int | None, dialect: Dialect) -> int | None:
        return None if value is None else int(self.enum_cls(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> I | None:
        return None if value is None else self.enum_cls(value)


class EnumListType(TypeDecorator[list[E]], Generic[E]):
    """A short list of enum values as one comma-separated column (e.g. a VM's graphics protocols)."""

    impl = String(64)
    cache_ok = True

    def __init__(self, enum_cls: type[E]) -> None:
        super().__init__()
        self.enum_cls = enum_cls

    def process_bind_param(self, value: list[E] | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return ",".join(str(self.enum_cls(v).value) for v in value)

    def process_result_value(self, value: Any, dialect: Dialect) -> list[E] | None:
        if value is None:
            return None
        return [self.enum_cls(v) for v in value.split(",") if v]


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the engine stores only timezone-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UUIDList(TypeDecorator[list[Any]]):
    """An ordered list of UUIDs as text, one per line (e.g. the entity ids held by a store)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: list[Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else "\n".join(str(v) for v in value)

    def process_result_value(self, value: Any, dialect: Dialect) -> list[Any] | None:
        from uuid import UUID

        if value is None:
            return None
        return [UUID(v) for v in value.split("\n") if v]


class DataclassList(TypeDecorator[list[Any]]):
    """A short list of one model dataclass as a JSON array of objects, read and written with its row and
    never searched: a block domain's LUNs (`model.LogicalUnit`), a direct LUN's paths
    (`model.LunConnection`). Keys the dataclass does not know (written by a newer version) are dropped."""

    impl = Text
    cache_ok = True

    def __init__(self, kind: type[Any]) -> None:
        super().__init__()
        self.kind = kind

    def process_bind_param(self, value: list[Any] | None, dialect: Dialect) -> str | None:
        import dataclasses
        import json

        return None if value is None else json.dumps([dataclasses.asdict(v) for v in value], sort_keys=True)

    def process_result_value(self, value: Any, dialect: Dialect) -> list[Any] | None:
        import dataclasses
        import json

        if value is None:
            return None
        names = {f.name for f in dataclasses.fields(self.kind)}
        return [
            self.kind(**{k: v for k, v in item.items() if k in names})
            for item in json.loads(value or "[]")
            if isinstance(item, dict)
        ]

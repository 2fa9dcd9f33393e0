"""What every inventory command shares: one transaction per command, the generation bumps made inside
it, the change event sent after it commits, and checked updates of dataclass fields."""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import Connection, Table, select, update

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.db.rows import from_row
from ovfstore.engine.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)
T = TypeVar("T")

NAME_MAX = 255


@dataclass(frozen=True, slots=True)
class Changes:
    """What one committed command changed, for the OVF updater: entities whose OVF would now read
    differently (bumped or created) and entities deleted."""

    entity_ids: frozenset[UUID]
    deleted_ids: frozenset[UUID] = frozenset()
    # Domains whose stores must be created or rewritten for reasons of their own: added, attached,
    # activated, or a new number of stores.
    domain_ids: frozenset[UUID] = frozenset()


Listener = Callable[[Changes], None]


class Tx:
    """One command's transaction. `bump` raises each entity's `db_generation` at most once per
    transaction: one command is one step of the entity's history, whatever it touched."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.bumped: set[UUID] = set()
        self.created: set[UUID] = set()
        self.deleted: set[UUID] = set()
        self.domains: set[UUID] = set()

    def bump(self, entity_ids: Iterable[UUID]) -> None:
        new = set(entity_ids) - self.bumped - self.created
        if not new:
            return
        self.bumped |= new
        for chunk in chunks(sorted(new), 500):
            self.conn.execute(
                update(s.vm_static)
                .where(s.vm_static.c.id.in_(chunk))
                .values(db_generation=s.vm_static.c.db_generation + 1)
            )

    @property
    def changes(self) -> Changes | None:
        touched = (self.bumped | self.created) - self.deleted
        if not touched and not self.deleted and not self.domains:
            return None
        return Changes(
            entity_ids=frozenset(touched), deleted_ids=frozenset(self.deleted), domain_ids=frozenset(self.domains)
        )


class CommandsBase:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._listeners: list[Listener] = []
        self._local = threading.local()

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` after every committed command that changed what an OVF says."""
        self._listeners.append(listener)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """Run several commands as one: on this thread, every command inside joins this transaction, and
        all of them commit together or not at all (registering a VM with its disks and NICs, say)."""
        if getattr(self._local, "tx", None) is not None:
            yield self._local.tx
            return
        with self._tx() as tx:
            yield tx

    @contextmanager
    def _tx(self) -> Iterator[Tx]:
        current: Tx | None = getattr(self._local, "tx", None)
        if current is not None:
            yield current
            return
        try:
            with self.db.write() as conn:
                tx = self._local.tx = Tx(conn)
                yield tx
        finally:
            self._local.tx = None
        changes = tx.changes
        if changes is not None:
            for listener in self._listeners:
                try:
                    listener(changes)
                except Exception:  # a listener must never undo or fail a committed command
                    log.exception("inventory change listener %r failed", listener)

    # --- generic reads ---------------------------------------------------------------------------

    @staticmethod
    def _one(conn: Connection, table: Table, cls: type[T], ident: UUID, kind: str) -> T:
        row = conn.execute(select(table).where(table.c.id == ident)).mappings().first()
        if row is None:
            raise NotFound(kind, ident)
        return from_row(cls, row)

    @staticmethod
    def _all(conn: Connection, table: Table, cls: type[T], *where: Any) -> list[T]:
        query = select(table).where(*where).order_by(table.c.name)
        return [from_row(cls, row) for row in conn.execute(query).mappings()]

    def _unique_name(self, conn: Connection, table: Table, name: str, kind: str, *where: Any) -> None:
        if exists(conn, table, table.c.name == name, *where):
            raise Conflict(f"{kind} name {name!r} is already used; choose another name")

    @staticmethod
    def _update(conn: Connection, table: Table, ident: UUID, effective: Mapping[str, Any]) -> None:
        if effective:
            conn.execute(update(table).where(table.c.id == ident).values(**effective))


def exists(conn: Connection, table: Table, *where: Any) -> bool:
    """Whether `table` has a row matching `where`."""
    return conn.execute(select(table.c[0]).where(*where).limit(1)).first() is not None


def check_name(name: str, kind: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"a {kind} needs a name")
    if len(name) > NAME_MAX:
        raise InvalidInput(f"{kind} name is {len(name)} characters long; the limit is {NAME_MAX}")
    return name


def apply_changes(obj: T, changes: Mapping[str, Any], allowed: Iterable[str], kind: str) -> tuple[T, dict[str, Any]]:
    """A copy of `obj` with `changes` applied, and the fields whose value really changed.

    Values are coerced to the field's type (an enum from its value, a UUID from its string), so the
    API can pass what it parsed. Fields that are not allowed are refused by name.
    """
    allowed = set(allowed)
    hints = _hints(type(obj))
    effective: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise InvalidInput(f"{kind} field {name!r} cannot be changed; fields that can: {known}")
        coerced = _coerce(hints[name], value, f"{kind} {name}")
        if getattr(obj, name) != coerced:
            effective[name] = coerced
    return dataclasses.replace(obj, **effective), effective  # type: ignore[type-var]


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
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return hint(value)
        if hint is UUID:
            return value if isinstance(value, UUID) else UUID(str(value))
        if hint is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError
            return value
        if hint is str:
            if not isinstance(value, str):
                raise TypeError
            return value
        if hint is datetime:
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise TypeError
            return value
    except (TypeError, ValueError) as exc:
        name = getattr(hint, "__name__", str(hint))
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            choices = ", ".join(str(m.value) for m in hint)
            raise InvalidInput(f"{what}: {value!r} is not one of {choices}") from exc
        raise InvalidInput(f"{what}: {value!r} is not a valid {name}") from exc
    return value


def chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

"""What every inventory service shares: one transaction per command, the generation bumps made inside
it, and the change event sent to subscribers after it commits. `Transactions` is the one owner of that
rule; each service (`Service`) runs its commands through it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import Connection, Table, select, update

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.db.rows import from_row
from ovfstore.engine.errors import Conflict, InvalidInput, NotFound
from ovfstore.engine.inventory.changes import ChangeSet, apply
from ovfstore.engine.inventory.fields import NAME_MAX
from ovfstore.model import utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")


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
                .values(db_generation=s.vm_static.c.db_generation + 1, changed_at=utcnow())
            )

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Commands inside are undone together, and forgotten by this transaction, if they raise; the
        rest of the transaction stands. For work done in batches (registering many VMs) where one
        failure must not undo the others."""
        marks = (set(self.bumped), set(self.created), set(self.deleted), set(self.domains))
        try:
            with self.conn.begin_nested():
                yield
        except BaseException:
            self.bumped, self.created, self.deleted, self.domains = marks
            raise

    @property
    def changes(self) -> Changes | None:
        touched = (self.bumped | self.created) - self.deleted
        if not touched and not self.deleted and not self.domains:
            return None
        return Changes(
            entity_ids=frozenset(touched), deleted_ids=frozenset(self.deleted), domain_ids=frozenset(self.domains)
        )


class Transactions:
    """The inventory's transactions and their subscribers. A command opens one here; after it commits,
    every subscriber hears what changed (a rolled-back command tells nobody)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._listeners: list[Listener] = []
        self._local = threading.local()

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` after every committed command that changed what an OVF says."""
        self._listeners.append(listener)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """The transaction of this thread's command. Commands run inside another's transaction join it,
        and all of them commit together or not at all (registering a VM with its disks and NICs, say)."""
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
            self._tell(changes)

    def _tell(self, changes: Changes) -> None:
        for listener in self._listeners:
            try:
                listener(changes)
            except Exception:  # a listener must never undo or fail a committed command
                log.exception("inventory change listener %r failed", listener)


class Service:
    """Base of the inventory services: commands run in `_tx()`, reads in `self.db.read()`."""

    def __init__(self, transactions: Transactions) -> None:
        self.db = transactions.db
        self._transactions = transactions

    def _tx(self) -> AbstractContextManager[Tx]:
        return self._transactions.transaction()

    def _get(self, table: Table, cls: type[T], ident: UUID, kind: str) -> T:
        with self.db.read() as conn:
            return one(conn, table, cls, ident, kind)

    def _list(self, table: Table, cls: type[T], *where: Any) -> list[T]:
        """The rows of `table` matching `where`, by name."""
        query = select(table).where(*where).order_by(table.c.name)
        with self.db.read() as conn:
            return [from_row(cls, row) for row in conn.execute(query).mappings()]


def one(conn: Connection, table: Table, cls: type[T], ident: UUID, kind: str) -> T:
    """The row of `table` with id `ident`, or NotFound naming it as a `kind`."""
    row = conn.execute(select(table).where(table.c.id == ident)).mappings().first()
    if row is None:
        raise NotFound(kind, ident)
    return from_row(cls, row)


def exists(conn: Connection, table: Table, *where: Any) -> bool:
    """Whether `table` has a row matching `where`."""
    return conn.execute(select(table.c[0]).where(*where).limit(1)).first() is not None


def unique_name(conn: Connection, table: Table, name: str, kind: str, *where: Any) -> None:
    """Refuse `name` if a row of `table` matching `where` has it already."""
    if exists(conn, table, table.c.name == name, *where):
        raise Conflict(f"{kind} name {name!r} is already used; choose another name")


def update_row(conn: Connection, table: Table, ident: UUID, effective: Mapping[str, Any]) -> None:
    if effective:
        conn.execute(update(table).where(table.c.id == ident).values(**effective))


def check_name(name: str, kind: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"a {kind} needs a name")
    if len(name) > NAME_MAX:
        raise InvalidInput(f"{kind} name is {len(name)} characters long; the limit is {NAME_MAX}")
    return name


def chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def changed(
    tx: Tx, table: Table, cls: type[T], ident: UUID, changes: ChangeSet, kind: str
) -> tuple[T, T, dict[str, Any]]:
    """The row before and after `changes`, and the fields that really change; a changed name must be a
    valid one (uniqueness is the caller's, whose scope differs)."""
    old = one(tx.conn, table, cls, ident, kind)
    new, effective = apply(old, changes, kind)
    if "name" in effective:
        check_name(effective["name"], kind)
    return old, new, effective

"""Which engine runs the OVF updater when several share one database: the leader, holding a lease.

The lease is the one row of the `leadership` table: the leader's name and session, its term, since when
it leads and when its lease expires. Times are the database's (`clock_timestamp()` on PostgreSQL), so
engines on machines with different clocks agree.

- **Taking it**: an engine that does not lead tries every second (and at once when told the lease was
  released) with one conditional UPDATE: `term = term + 1`, its name and session, `expires_at = now +
  lease`, only where the lease has expired. Two engines trying at once serialize on the row; the second
  finds the lease fresh and changes nothing. The term thus grows with each new leader.
- **Keeping it**: the leader renews every quarter of the lease, an UPDATE that only matches its own
  session and term and an unexpired lease. It counts its lease from the moment it *sent* the renewal,
  on its own monotonic clock, and minus a tenth: it stops leading (the updater stops starting writes)
  before the database would let another engine take the lease, even when it can no longer reach the
  database to learn that it lost.
- **Fencing**: every store write of the leader carries its term; an agent refuses a write whose term is
  lower than the highest the domain has seen (`storage/fencing.py`). A leader paused past its lease
  (GC, SIGSTOP, a partition) that resumes mid-write is refused there, and steps down (`step_down`).
- **Leaving**: a clean stop expires the lease at once, so the next engine takes over within a second.

SQLite is for one engine: `SingleEngineLock` refuses a second engine on the same database file, and
that engine takes the leadership at once, whatever the row says (a previous run that died left it).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Update, func, insert, select, update

from ovfstore.engine import events
from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.model import utcnow

log = logging.getLogger(__name__)

#: How often an engine that does not lead looks whether the lease has expired.
FOLLOWER_POLL_S = 1.0


@dataclass(frozen=True, slots=True)
class Leader:
    """The leadership as the database has it: `engine` leads since `since` under `term`, while
    `expires_at` is ahead (`alive`)."""

    engine: str
    term: int
    since: datetime | None
    expires_at: datetime
    alive: bool

    def to_json(self) -> dict[str, object]:
        return {
            "engine": self.engine if self.alive else None,
            "term": self.term,
            "since": self.since.isoformat() if self.since and self.alive else None,
            "expires_at": self.expires_at.isoformat(),
        }


class LeadershipError(Exception):
    """This engine cannot take part in the leadership (a second engine on one SQLite database)."""


def current(db: Database) -> Leader | None:
    """Who leads, as the database says (None before the schema has the table's row)."""
    with db.read() as conn:
        row = conn.execute(select(s.leadership).where(s.leadership.c.id == 1)).mappings().first()
        if row is None:
            return None
        now = _now(conn, db)
    alive = bool(row["session"]) and row["expires_at"] > now
    return Leader(row["engine"], int(row["term"]), row["since"], row["expires_at"], alive)


def _now(conn: Connection, db: Database) -> datetime:
    """The database's clock (PostgreSQL), or this machine's for SQLite (one engine: no one to disagree)."""
    if db.is_sqlite:
        return datetime.now(UTC)
    # A leader paused inside this transaction (SIGSTOP, a GC pause) must not hold the row's lock and keep
    # every other engine from taking the lease: the server ends such a session, and a waiting engine gives
    # up its attempt after a second and tries again.
    conn.exec_driver_sql("SET LOCAL lock_timeout = '1s'")
    conn.exec_driver_sql("SET LOCAL idle_in_transaction_session_timeout = '2s'")
    value = conn.execute(select(func.clock_timestamp())).scalar_one()
    assert isinstance(value, datetime)
    return value


class Leadership:
    """This engine's part in the election; `term()` answers "do I lead, and under which term?"."""

    def __init__(self, db: Database, name: str, lease_s: float, *, single: bool = False) -> None:
        self.db = db
        self.name = name
        self.lease_s = lease_s
        self.single = single  # SQLite: the only engine, it takes the lease whatever the row says
        self.session = uuid.uuid4().hex
        self._term: int | None = None
        self._deadline = 0.0  # monotonic: lead until then unless renewed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[int | None], None]] = []

    # --- what the updater asks ----------------------------------------------------------------------

    def term(self) -> int | None:
        """The term while this engine leads, else None. Turns None on its own when the lease runs out
        unrenewed, whatever the renewal thread is doing."""
        with self._lock:
            if self._term is not None and time.monotonic() >= self._deadline:
                self._lost_locked("its lease ran out before it could be renewed")
            return self._term

    def on_change(self, listener: Callable[[int | None], None]) -> None:
        """Call `listener(term)` when this engine starts leading, `listener(None)` when it stops."""
        self._listeners.append(listener)

    def step_down(self, reason: str, storage_term: int | None = None) -> None:
        """Stop leading now: an agent refused a write under this term, the domain having been written under
        `storage_term`. Normally a newer leader's; if the database's term is behind it (a database restored
        from an old backup), the database's term is raised to it, so that the next leader's term passes."""
        with self._lock:
            if self._term is not None:
                self._lost_locked(reason)
        t = s.leadership
        with contextlib.suppress(Exception), self.db.write() as conn:
            if storage_term is not None:
                conn.execute(update(t).where(t.c.id == 1, t.c.term < storage_term).values(term=storage_term))
            # Still ours (the database was behind, or the refusal named no term): hand it over now rather
            # than leave every engine waiting for its expiry.
            conn.execute(
                update(t).where(t.c.id == 1, t.c.session == self.session).values(expires_at=_now(conn, self.db))
            )

    # --- the thread -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Try once at once (a single engine leads before its updater's first run), then keep trying."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._attempt()
        self._thread = threading.Thread(target=self._loop, name="leadership", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and hand the lease over at once (expire it) if this engine holds it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        with self._lock:
            term, self._term = self._term, None
        if term is not None:
            with contextlib.suppress(Exception), self.db.write() as conn:
                now = _now(conn, self.db)
                conn.execute(self._mine(term).values(expires_at=now))
            self._tell(None)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval()):
            self._attempt()

    def _interval(self) -> float:
        """A leader renews every quarter lease; a follower looks every second (sooner for short leases)."""
        quarter = self.lease_s / 4
        return quarter if self.term() is not None else min(FOLLOWER_POLL_S, quarter)

    def _attempt(self) -> None:
        try:
            if self.term() is None:
                self._take()
            else:
                self._renew()
        except Exception as exc:  # the database is away: keep trying; the deadline decides
            log.warning("leadership: the database did not answer: %s", exc)

    def _mine(self, term: int) -> Update:
        t = s.leadership
        return update(t).where(t.c.id == 1, t.c.session == self.session, t.c.term == term)

    def _take(self) -> None:
        t = s.leadership
        sent = time.monotonic()
        with self.db.write() as conn:
            now = _now(conn, self.db)
            if conn.execute(select(t.c.id).where(t.c.id == 1)).first() is None:  # emptied by hand: start over
                conn.execute(insert(t).values(id=1, term=0, engine="", session="", since=None, expires_at=now))
            query = update(t).where(t.c.id == 1)
            if not self.single:
                query = query.where(t.c.expires_at <= now)
            query = query.values(
                term=t.c.term + 1, engine=self.name, session=self.session, since=now,
                expires_at=now + timedelta(seconds=self.lease_s),
            ).returning(t.c.term)  # fmt: skip
            term = conn.execute(query).scalar()
        if term is None:
            return
        with self._lock:
            self._term = int(term)
            self._deadline = sent + self.lease_s * 0.9
        self._tell(int(term))  # first: the updater catches up even if the event cannot be recorded
        with contextlib.suppress(Exception):
            events.record(
                self.db, utcnow(), events.Severity.NORMAL, "leadership_taken",
                f"engine {self.name} leads the OVF updater under term {term}",
            )  # fmt: skip

    def _renew(self) -> None:
        term = self.term()
        if term is None:
            return
        sent = time.monotonic()
        t = s.leadership
        with self.db.write() as conn:
            now = _now(conn, self.db)
            renewed = conn.execute(
                self._mine(term).where(t.c.expires_at > now).values(expires_at=now + timedelta(seconds=self.lease_s))
            ).rowcount
        with self._lock:
            if self._term != term:
                return
            if renewed:
                self._deadline = sent + self.lease_s * 0.9
                return
            self._lost_locked("its lease expired or another engine took it")

    def _lost_locked(self, reason: str) -> None:
        """Stop leading (the caller holds `_lock`); the event is recorded by another thread."""
        term, self._term = self._term, None
        log.warning("leadership: engine %s no longer leads (term %s): %s", self.name, term, reason)
        threading.Thread(target=self._after_loss, args=(term, reason), daemon=True).start()

    def _after_loss(self, term: int | None, reason: str) -> None:
        with contextlib.suppress(Exception):
            events.record(
                self.db, utcnow(), events.Severity.WARNING, "leadership_lost",
                f"engine {self.name} stopped leading the OVF updater (term {term}): {reason}",
            )  # fmt: skip
        self._tell(None)

    def _tell(self, term: int | None) -> None:
        for listener in self._listeners:
            try:
                listener(term)
            except Exception:
                log.exception("a listener of the leadership failed")


class SingleEngineLock:
    """An exclusive `flock` on `<database file>.lock`, held while an engine runs on a SQLite database: a
    second engine on the same file is refused with a clear error instead of running a second updater."""

    def __init__(self, database_path: str, name: str) -> None:
        self.path = database_path + ".lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 200, 0).decode("utf-8", "replace").strip() or "another engine"
            os.close(self._fd)
            raise LeadershipError(
                f"{holder} already runs on the SQLite database {database_path}: one engine per SQLite database. "
                "Stop it first, or give several engines one PostgreSQL database (docs/OPERATIONS.md)"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"engine {name} (pid {os.getpid()})\n".encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

"""Inventory changes of any engine wake the leader's OVF updater (PostgreSQL `LISTEN/NOTIFY`).

Every engine serves the API, only the leader writes stores (engine/leadership.py). After each committed
inventory command an engine sends `NOTIFY ovfstore_changes`; every engine listens on a connection of its
own and wakes its updater, whose debounce starts as for a change of its own (an engine that does not lead
ignores it). A notification lost while a listener reconnects is caught by the periodic sweep. SQLite has
one engine and no notifications: its updater hears its own inventory directly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory import Changes

log = logging.getLogger(__name__)

CHANNEL = "ovfstore_changes"
#: Seconds between attempts to connect the listener again after its connection broke.
RECONNECT_S = 2.0


class ChangeNotifier:
    """An inventory subscriber that tells every engine a change was committed."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __call__(self, changes: Changes) -> None:
        try:
            with self.db.engine.begin() as conn:
                conn.exec_driver_sql(f"NOTIFY {CHANNEL}")
        except Exception as exc:  # the sweep catches up; a change must not fail for its notification
            log.warning("could not notify the other engines of a change: %s", exc)


class ChangeListener:
    """A thread listening on its own connection; `wake()` is called for each notification."""

    def __init__(self, db: Database, wake: Callable[[], None]) -> None:
        self.conninfo = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.wake = wake
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="change-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.wake()  # what was committed while not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.wake()
            except Exception as exc:
                log.warning("listening for other engines' changes failed, again in %s s: %s", RECONNECT_S, exc)
                self._stop.wait(RECONNECT_S)

"""Failed logins, counted per user and per client address, so that passwords cannot be guessed at the
speed of the API.

After `user_limit` failures for one user (or `address_limit` from one address) within `window_s`, further
logins for it are refused at once, without checking the password, until the oldest of those failures
leaves the window. A lockout refuses the right password too: saying "right password, but locked" would
let the guessing go on. A success clears the user's failures (not the address's: one valid account must
not buy a sprayer more guesses at the others).

The counts live in this engine's memory: engines sharing a database each count their own, and a restart
forgets them.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# oVirt's own SSO locks nothing by default; these are a compromise. Five wrong passwords in five minutes
# is more than a person mistyping does, and caps a guesser at about 1500 tries a day per user. An address
# gets more, since several people or a whole automation host may log in from one (or through one proxy).
USER_LIMIT = 5
ADDRESS_LIMIT = 20
WINDOW_S = 300.0

# A name is counted by its first characters only: memory must not grow with what a client sends.
_KEY_CHARS = 256


@dataclass(frozen=True, slots=True)
class Lockout:
    """Why a login is refused without looking at its password."""

    what: str  # "user admin@internal" or "address 10.0.0.7"
    wait_s: float

    def __str__(self) -> str:
        wait = max(1, math.ceil(self.wait_s))
        return (
            f"too many failed logins for {self.what}; wait {wait} s. Logins are refused until then, "
            "even with the right password"
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """A login let through: counted as failed until `LoginThrottle.succeeded` says otherwise, so that
    many attempts in flight at once cannot slip past the limit together."""

    user: str
    address: str
    at: float


class _Failures:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.times: dict[str, deque[float]] = {}

    def lockout(self, key: str, now: float, window_s: float) -> float | None:
        """Seconds until `key` may try again, or None if it may now."""
        times = self.times.get(key)
        if times is None:
            return None
        while times and times[0] <= now - window_s:
            times.popleft()
        if not times:
            del self.times[key]
            return None
        if len(times) < self.limit:
            return None
        return times[-self.limit] + window_s - now

    def add(self, key: str, at: float) -> None:
        self.times.setdefault(key, deque()).append(at)

    def discard(self, key: str, at: float) -> None:
        times = self.times.get(key)
        if times is not None and at in times:
            times.remove(at)

    def clear(self, key: str) -> None:
        self.times.pop(key, None)

    def prune(self, now: float, window_s: float) -> None:
        for key in list(self.times):
            self.lockout(key, now, window_s)


class LoginThrottle:
    def __init__(
        self,
        user_limit: int = USER_LIMIT,
        address_limit: int = ADDRESS_LIMIT,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self._users = _Failures(user_limit)
        self._addresses = _Failures(address_limit)
        self._clock = clock
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def begin(self, user: str, address: str) -> Attempt | Lockout:
        """Let a login through (to be settled with `succeeded` when its password is right), or refuse it."""
        user, address = user[:_KEY_CHARS], address[:_KEY_CHARS]
        with self._lock:
            now = self._clock()
            self._prune(now)
            for what, failures, key in (("user", self._users, user), ("address", self._addresses, address)):
                wait = failures.lockout(key, now, self.window_s)
                if wait is not None:
                    return Lockout(f"{what} {key}", wait)
            self._users.add(user, now)
            self._addresses.add(address, now)
            return Attempt(user, address, now)

    def succeeded(self, attempt: Attempt) -> None:
        with self._lock:
            self._users.clear(attempt.user)
            self._addresses.discard(attempt.address, attempt.at)

    def _prune(self, now: float) -> None:
        # Names nobody tries again would stay forever; sweep them out once per window.
        if now < self._next_prune:
            return
        self._users.prune(now, self.window_s)
        self._addresses.prune(now, self.window_s)
        self._next_prune = now + self.window_s

"""SSO access tokens: random strings kept in this engine's memory with their user and expiry.

A token is valid on the engine that issued it; after a restart (or on another engine sharing the
database) the SDK gets a 401, asks for a new token once and retries, as it does with oVirt's expiry.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from ovfstore.engine.users import User

# oVirt's SSO tokens live 10 hours by default; the same here, since the SDK renews on 401 anyway.
TOKEN_LIFETIME_S = 10 * 3600.0


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    user: User
    expires: float  # time.time()


class TokenStore:
    def __init__(self, lifetime_s: float = TOKEN_LIFETIME_S) -> None:
        self.lifetime_s = lifetime_s
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def issue(self, user: User) -> Token:
        token = Token(secrets.token_urlsafe(32), user, time.time() + self.lifetime_s)
        with self._lock:
            self._drop_expired()
            self._tokens[token.value] = token
        return token

    def user(self, value: str) -> User | None:
        with self._lock:
            token = self._tokens.get(value)
            if token is None:
                return None
            if token.expires < time.time():
                del self._tokens[value]
                return None
            return token.user

    def revoke(self, value: str) -> bool:
        with self._lock:
            return self._tokens.pop(value, None) is not None

    def _drop_expired(self) -> None:
        now = time.time()
        for value in [v for v, t in self._tokens.items() if t.expires < now]:
            del self._tokens[value]

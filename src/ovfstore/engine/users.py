"""Users of the REST API and their passwords, kept only as salted scrypt hashes: the engine's side of
who may call it (the API keeps the tokens and the HTTP).

Users are named as oVirt names them, `user@profile`; the only profile is `internal`, so a bare name means
`name@internal`. Two roles: `admin` may do everything, `readonly` may only read (GET).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import delete, insert, select, update

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.errors import Conflict, InvalidInput, NotFound
from ovfstore.model import utcnow

ADMIN = "admin@internal"
PROFILE = "internal"

# scrypt at n=2**14, r=8, p=1 costs 16 MiB and tens of milliseconds per check (docs/PERFORMANCE.md): slow
# enough to make guessing offline expensive, fast enough for a token request (the SDK asks once per
# session, not per call).
_N, _R, _P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024


class UserRole(StrEnum):
    ADMIN = "admin"
    READONLY = "readonly"


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    name: str
    role: UserRole
    # A digest of the stored password hash when the user was read: a token issued then is only good while
    # the password is unchanged (and the user still exists).
    credential: str = field(default="", compare=False, repr=False)

    @property
    def may_change(self) -> bool:
        return self.role is UserRole.ADMIN


def full_name(name: str) -> str:
    """`admin` -> `admin@internal`; names with a profile stay as they are."""
    name = name.strip()
    if not name:
        raise InvalidInput("a user needs a name")
    return name if "@" in name else f"{name}@{PROFILE}"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), maxmem=_MAXMEM
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def _check_rules(password: str) -> None:
    if len(password) < 8:
        raise InvalidInput("a password needs at least 8 characters")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def generate_password() -> str:
    return secrets.token_urlsafe(18)


class UserService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_admin(self, password: str | None) -> str | None:
        """Create `admin@internal` if missing, with `password` or a generated one. Returns the password
        when it was generated (to be shown once), None otherwise. An existing admin is left alone: the
        password is set on first start only."""
        if self.find(ADMIN) is not None:
            return None
        generated = None
        if not password:
            password = generated = generate_password()
        self.add(ADMIN, password, UserRole.ADMIN)
        return generated

    def add(self, name: str, password: str, role: UserRole = UserRole.READONLY) -> User:
        name = full_name(name)
        _check_rules(password)
        user = User(uuid4(), name, role)
        with self.db.write() as conn:
            if conn.execute(select(s.users.c.id).where(s.users.c.name == name)).first() is not None:
                raise Conflict(f"user {name} exists; remove it first or set its password")
            conn.execute(
                insert(s.users).values(
                    id=user.id, name=name, password_hash=hash_password(password), role=role.value, created=utcnow()
                )
            )
        return user

    def set_password(self, name: str, password: str) -> None:
        name = full_name(name)
        _check_rules(password)
        with self.db.write() as conn:
            done = conn.execute(
                update(s.users).where(s.users.c.name == name).values(password_hash=hash_password(password))
            )
            if done.rowcount == 0:
                raise NotFound("user", name)

    def remove(self, name: str) -> None:
        name = full_name(name)
        with self.db.write() as conn:
            if conn.execute(delete(s.users).where(s.users.c.name == name)).rowcount == 0:
                raise NotFound("user", name)

    def find(self, name: str) -> User | None:
        with self.db.read() as conn:
            row = conn.execute(select(s.users).where(s.users.c.name == full_name(name))).first()
        return None if row is None else _user(row)

    def current(self, user: User) -> User | None:
        """`user` as the database has it now, or None if it was removed or its password changed since:
        what a token stands for must not outlive the user or the password that got it."""
        with self.db.read() as conn:
            row = conn.execute(select(s.users).where(s.users.c.id == user.id)).first()
        if row is None:
            return None
        now = _user(row)
        return now if hmac.compare_digest(now.credential, user.credential) else None

    def list(self) -> list[User]:
        with self.db.read() as conn:
            rows = conn.execute(select(s.users).order_by(s.users.c.name)).all()
        return [_user(r) for r in rows]

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is right; None for an unknown user or a wrong password alike."""
        try:
            name = full_name(name)
        except InvalidInput:
            return None
        with self.db.read() as conn:
            row = conn.execute(select(s.users).where(s.users.c.name == name)).first()
        if row is None:
            # Spend the same time as a real check, so response times do not tell which users exist.
            check_password(password, _DUMMY_HASH)
            return None
        if not check_password(password, row.password_hash):
            return None
        return _user(row)


_DUMMY_HASH = hash_password(secrets.token_hex(8))


def _user(row: Any) -> User:
    return User(row.id, row.name, UserRole(row.role), hashlib.sha256(row.password_hash.encode()).hexdigest())

"""The engine's API users: the first-start admin password, salted hashes only, names as oVirt writes them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database
from ovfstore.engine.errors import Conflict, InvalidInput
from ovfstore.engine.users import ADMIN, UserRole, UserService


def test_admin_password_is_set_once_and_stored_only_as_a_salted_hash(database: Database) -> None:
    users = UserService(database)
    assert users.ensure_admin("first-password") is None  # chosen, so not shown
    assert users.ensure_admin("another-password") is None  # the first start decides
    users.add("reader", "first-password", UserRole.READONLY)  # same password, different salt
    with database.read() as conn:
        rows = conn.execute(select(s.users)).all()
    assert sorted(r.name for r in rows) == [ADMIN, "reader@internal"]
    stored = [r.password_hash for r in rows]
    assert all("first-password" not in h and h.startswith("scrypt$") for h in stored)
    assert stored[0] != stored[1]
    assert users.authenticate("admin", "first-password") == users.find(ADMIN)
    assert users.authenticate("admin@internal", "another-password") is None
    assert users.authenticate("nobody", "first-password") is None
    reader = users.authenticate("reader@internal", "first-password")
    assert reader is not None
    assert not reader.may_change


def test_generated_password_is_returned_once(database: Database) -> None:
    users = UserService(database)
    generated = users.ensure_admin(None)
    assert generated is not None
    assert len(generated) >= 16
    assert users.authenticate(ADMIN, generated) is not None
    assert users.ensure_admin(None) is None


def test_refusals(database: Database) -> None:
    users = UserService(database)
    users.add("ops", "long-enough", UserRole.ADMIN)
    with pytest.raises(Conflict):
        users.add("ops@internal", "long-enough")
    with pytest.raises(InvalidInput):
        users.add("short", "short")
    users.set_password("ops", "a-new-password")
    assert users.authenticate("ops", "a-new-password") is not None
    users.remove("ops")
    assert users.find("ops") is None

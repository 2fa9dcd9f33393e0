"""Errors of the inventory commands. They know nothing of HTTP; the API maps them to oVirt faults once,
at its edge: `NotFound` to 404, `InvalidInput` to 400, `Conflict` to 409."""

from __future__ import annotations

from uuid import UUID


class InventoryError(Exception):
    """Base of every inventory error; the message says what is wrong and what to do."""


class NotFound(InventoryError):
    def __init__(self, kind: str, ident: UUID | str) -> None:
        super().__init__(f"{kind} {ident} does not exist; list the {kind}s to find the right id")
        self.kind = kind
        self.ident = ident


class InvalidInput(InventoryError):
    """The request itself is wrong (a bad value, an unknown field); repeating it cannot succeed."""


class Conflict(InventoryError):
    """The request is well formed but clashes with the inventory (a name or MAC in use, a domain of
    another data center, an object still in use)."""

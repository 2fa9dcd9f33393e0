"""Events an operator should know about, kept in the database (oVirt's audit log) and logged."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from sqlalchemy import insert, select

from ovfstore.engine.db import schema as s
from ovfstore.engine.db.database import Database

log = logging.getLogger("ovfstore.events")


class Severity(StrEnum):
    NORMAL = "normal"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Event:
    id: UUID
    time: datetime
    severity: Severity
    code: str
    message: str
    domain_id: UUID | None


_LEVEL = {Severity.NORMAL: logging.INFO, Severity.WARNING: logging.WARNING, Severity.ERROR: logging.ERROR}


def record(
    db: Database, time: datetime, severity: Severity, code: str, message: str, domain_id: UUID | None = None
) -> Event:
    event = Event(uuid4(), time, severity, code, message, domain_id)
    log.log(_LEVEL[severity], "%s: %s", code, message)
    with db.write() as conn:
        conn.execute(
            insert(s.events).values(
                id=event.id, time=time, severity=severity.value, code=code, message=message, domain_id=domain_id
            )
        )
    return event


def recent(db: Database, limit: int = 100, domain_id: UUID | None = None) -> list[Event]:
    e = s.events
    query = select(e).order_by(e.c.time.desc(), e.c.id).limit(limit)
    if domain_id is not None:
        query = query.where(e.c.domain_id == domain_id)
    with db.read() as conn:
        return [Event(r.id, r.time, Severity(r.severity), r.code, r.message, r.domain_id) for r in conn.execute(query)]

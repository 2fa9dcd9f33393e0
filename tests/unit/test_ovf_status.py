"""A domain's status: up to date only with every store current and nothing pending; the age of the
oldest pending change (the recovery point)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from ovfstore.engine.updater.status import DomainOvfStatus, StoreStatus
from ovfstore.model import OvfStoreStatus

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def _store(status: OvfStoreStatus, last_updated: datetime | None = NOW - timedelta(hours=1)) -> StoreStatus:
    return StoreStatus(uuid4(), status, 1, 10, "x", 1, last_updated, None, None)


def _domain(*stores: StoreStatus, pending: int = 0, oldest: datetime | None = None) -> DomainOvfStatus:
    return DomainOvfStatus(uuid4(), "sd", 2, stores, pending_count=pending, oldest_pending_change=oldest, as_of=NOW)


def test_current_stores_and_nothing_pending_is_up_to_date_with_age_zero() -> None:
    status = _domain(_store(OvfStoreStatus.UPDATED), _store(OvfStoreStatus.UPDATED))
    assert status.up_to_date
    assert status.pending_age_s == 0.0


def test_a_pending_change_makes_current_stores_not_up_to_date() -> None:
    status = _domain(_store(OvfStoreStatus.UPDATED), pending=1, oldest=NOW - timedelta(seconds=7))
    assert not status.up_to_date
    assert status.pending_age_s == 7.0


def test_behind_since_an_unknown_time_is_at_most_as_old_as_the_last_write() -> None:
    status = _domain(_store(OvfStoreStatus.OUTDATED), pending=1)
    assert status.pending_age_s == 3600.0
    assert _domain(_store(OvfStoreStatus.OUTDATED, last_updated=None), pending=1).pending_age_s is None


def test_a_domain_without_stores_is_never_up_to_date() -> None:
    assert not _domain().up_to_date

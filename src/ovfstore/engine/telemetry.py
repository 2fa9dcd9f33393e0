"""The engine's metrics, in the Prometheus text format (`prometheus-client`), every name `ovfstore_`.

Two kinds:

- Figures of the present, computed at a scrape (at most once per `cache_s`, `[api] metrics_cache_s`:
  a scrape loop cannot keep the database busy) from the status (`OvfUpdater.status`, the one
  definition of up to date, pending and the recovery point) and the unprotected entities
  (`OvfUpdater.unprotected`): per domain (label `domain`, its name) the age of the newest store, the
  recovery point, pending entities, up to date, behind; unprotected entities per reason.
- Figures of what happened, counted as it happens: the domain updates (duration histogram, bytes
  written, failures by kind, outcomes), the transfers to the agents (bytes and seconds by `upload`,
  `copy`, `append` or `append-copy`: their ratio is the transfer rate), and the API's requests
  (`observe_request`, by method, route template and status; latency histogram).

One registry per engine (tests run several engines in one process). The last updates of each domain are
also kept in memory (`history`) for the status page's chart of update durations.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select

from ovfstore.engine.db import schema as s
from ovfstore.engine.updater.domain import FAILURE_KINDS, DomainResult
from ovfstore.engine.updater.protection import REASONS
from ovfstore.engine.updater.status import STATES
from ovfstore.model import utcnow

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ovfstore.engine.updater.service import OvfUpdater

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HISTORY = 30  # updates kept per domain for the page's chart

# An update writes a few hundred kilobytes in well under a second for a typical domain and a full 128 MiB
# store in tens of seconds on slow storage: the buckets cover both ends.
_UPDATE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class Update:
    """One domain update, for the page: when it ended, how long it took, and whether it failed."""

    time: datetime
    seconds: float
    error: str | None


class Telemetry:
    def __init__(self, updater: OvfUpdater, *, cache_s: float = 0.0) -> None:
        self.updater = updater
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.update_seconds = Histogram(
            "ovfstore_domain_update_duration_seconds", "Time to update one domain's OVF stores (written or failed)",
            ["domain"], buckets=_UPDATE_BUCKETS, registry=r,
        )  # fmt: skip
        self.updates = Counter(
            "ovfstore_domain_updates", "Domain updates by outcome: written or failed", ["domain", "outcome"], registry=r
        )
        self.bytes_written = Counter(
            "ovfstore_domain_bytes_written", "Bytes written into a domain's OVF stores (every copy)", ["domain"],
            registry=r,
        )  # fmt: skip
        self.failures = Counter(
            "ovfstore_domain_update_failures", f"Failed domain updates by kind ({', '.join(FAILURE_KINDS)})",
            ["domain", "kind"], registry=r,
        )  # fmt: skip
        self.transfer_bytes = Counter(
            "ovfstore_agent_transfer_bytes", "Bytes of OVF stores moved by the agents: upload (engine to agent), "
            "copy (the agent, store to store), append and append-copy (a segment appended, sent or copied)",
            ["kind"], registry=r,
        )  # fmt: skip
        self.transfer_seconds = Counter(
            "ovfstore_agent_transfer_seconds", "Seconds spent on those transfers (rate: bytes / seconds)", ["kind"],
            registry=r,
        )  # fmt: skip
        self.transfer_rate = Gauge(
            "ovfstore_agent_transfer_rate_bytes_per_second", "The rate of the last transfer of each kind", ["kind"],
            registry=r,
        )  # fmt: skip
        self.api_requests = Counter(
            "ovfstore_api_requests", "REST API requests by method, route and status", ["method", "route", "status"],
            registry=r,
        )  # fmt: skip
        self.api_seconds = Histogram(
            "ovfstore_api_request_duration_seconds", "REST API request latency", ["method", "route"],
            buckets=_API_BUCKETS, registry=r,
        )  # fmt: skip
        r.register(_Present(updater, cache_s))
        Gauge(
            "ovfstore_leader", "1 while this engine leads (runs the OVF updater) among the engines of its database",
            registry=r,
        ).set_function(lambda: 0.0 if updater.leading_term() is None else 1.0)  # fmt: skip
        Gauge(
            "ovfstore_leader_term", "The leadership term this engine leads under; 0 while it does not lead", registry=r
        ).set_function(lambda: float(updater.leading_term() or 0))
        self._lock = threading.Lock()
        self._history: dict[UUID, deque[Update]] = {}
        updater.observe(self.domain_updated)

    # --- what happened --------------------------------------------------------------------------------------

    def domain_updated(self, result: DomainResult) -> None:
        """An updater observer: count a domain update that wrote stores or failed (not one skipped)."""
        if not result.written and result.error is None:
            return
        name = self._name(result.domain_id)
        self.update_seconds.labels(name).observe(result.seconds)
        self.updates.labels(name, "failed" if result.error else "written").inc()
        if result.error is not None:
            self.failures.labels(name, result.failure or "internal").inc()
        for transfer in result.transfers:
            self.bytes_written.labels(name).inc(transfer.size)
            self.transfer_bytes.labels(transfer.kind).inc(transfer.size)
            self.transfer_seconds.labels(transfer.kind).inc(transfer.seconds)
            if transfer.seconds > 0:
                self.transfer_rate.labels(transfer.kind).set(transfer.size / transfer.seconds)
        with self._lock:
            self._history.setdefault(result.domain_id, deque(maxlen=HISTORY)).append(
                Update(utcnow(), result.seconds, result.error)
            )

    def history(self, domain_id: UUID) -> list[Update]:
        """The domain's last updates (at most HISTORY), oldest first, since this engine started."""
        with self._lock:
            return list(self._history.get(domain_id, ()))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One API request; `route` is the route's template (never the path: ids would make a series each)."""
        self.api_requests.labels(method, route, str(status)).inc()
        self.api_seconds.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def _name(self, domain_id: UUID) -> str:
        """The domain's name as it is now (the label the present figures use too), its id if it is gone."""
        d = s.storage_domains
        with self.updater.db.read() as conn:
            name = conn.execute(select(d.c.name).where(d.c.id == domain_id)).scalar()
        return str(name) if name is not None else str(domain_id)


class _Present(Collector):
    """Figures computed at each scrape from the status and the unprotected entities."""

    def __init__(self, updater: OvfUpdater, cache_s: float) -> None:
        self.updater = updater
        self.cache_s = cache_s
        self._lock = threading.Lock()  # one computation at a time: concurrent scrapes share it
        self._cached: tuple[float, list[GaugeMetricFamily]] | None = None

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            cached = self._cached
            if cached is None or time.monotonic() - cached[0] >= self.cache_s:
                cached = (time.monotonic(), self._compute())
                self._cached = cached
        yield from cached[1]

    def _compute(self) -> list[GaugeMetricFamily]:
        statuses = self.updater.status()
        unprotected = self.updater.unprotected(statuses)
        now = utcnow()
        families = self._families()
        age, point, pending, fresh, behind, entities, generation, state, unprotected_family = families
        threshold = self.updater.config.recovery_point_threshold_s
        for st in statuses:
            label = [st.name]
            if st.last_updated is not None:
                age.add_metric(label, max(0.0, (now - st.last_updated).total_seconds()))
            current = st.state
            for key in STATES:
                state.add_metric([st.name, key], 1.0 if key == current else 0.0)
            if current != "stores_disabled":  # no stores, nothing to wait for: no recovery point at all
                recovery = st.pending_age_s
                point.add_metric(label, math.inf if recovery is None else recovery)
            pending.add_metric(label, st.pending_count)
            fresh.add_metric(label, 1.0 if st.up_to_date else 0.0)
            behind.add_metric(label, 1.0 if st.behind(threshold) else 0.0)
            entities.add_metric(label, st.entity_count)
            generation.add_metric(label, max((store.generation for store in st.stores), default=0))
        for reason in REASONS:
            unprotected_family.add_metric([reason], sum(u.reason == reason for u in unprotected))
        return families

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        domain = ["domain"]
        return [
            GaugeMetricFamily(
                "ovfstore_domain_store_age_seconds", "Age of the domain's newest written OVF store", labels=domain
            ),
            GaugeMetricFamily(
                "ovfstore_domain_recovery_point_seconds",
                "Age of the oldest change not on the domain's stores (0 up to date; +Inf unknown or never written; "
                "absent when the domain keeps no stores)",
                labels=domain,
            ),
            GaugeMetricFamily(
                "ovfstore_domain_pending_entities",
                "VMs and templates whose change is not on the domain's stores",
                labels=domain,
            ),
            GaugeMetricFamily("ovfstore_domain_up_to_date", "1 when every store is current, else 0", labels=domain),
            GaugeMetricFamily(
                "ovfstore_domain_behind", "1 when the recovery point is past the engine's threshold", labels=domain
            ),
            GaugeMetricFamily(
                "ovfstore_domain_store_entities", "VMs and templates in the newest store written", labels=domain
            ),
            GaugeMetricFamily("ovfstore_domain_store_generation", "The newest store generation", labels=domain),
            GaugeMetricFamily(
                "ovfstore_domain_state",
                f"1 for the domain's state ({', '.join(STATES)}), 0 for the others",
                labels=["domain", "state"],
            ),
            GaugeMetricFamily(
                "ovfstore_unprotected_entities", "VMs and templates no OVF store protects, by reason", labels=["reason"]
            ),
        ]

"""When the updater runs.

- Every committed inventory change sets the updater going, debounced: the run starts `debounce_s` after
  the first change of a burst, so a change is on disk within seconds and a burst costs one run.
- A periodic sweep (`sweep_interval_s`) is the safety net for anything an event missed.
- `update_now(domain)` asks for a domain's stores to be rewritten and lets the caller wait for the
  result. A request made while a run is in progress is served by the next run, right after it; several
  requests for one domain share that run and all get its result. Nothing fails because a run is busy.
- `prepare_for_deactivation(domain)` is `update_now` that raises when the stores could not be written,
  for deactivation and detach to call first.
- A domain whose update failed is retried with exponential backoff; "update now" ignores the backoff.

With several engines on one database (engine/leadership.py, `lead_with`), the updater runs only while its
engine leads, every agent request carrying the leader's term; a write the agents refuse as fenced makes
the engine step down. A change committed by another engine wakes it (`wake`, engine/notify.py).

All work happens on the updater's thread, the domain steps of one run on a few worker threads: the pool
step never interleaves with a domain step, and each domain is written by one thread at a time.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from ovfstore.engine import events
from ovfstore.engine.config import UpdaterConfig
from ovfstore.engine.db.database import Database
from ovfstore.engine.hosts import AgentDirectory
from ovfstore.engine.inventory import Changes, Inventory
from ovfstore.engine.leadership import Leadership, current
from ovfstore.engine.updater import records
from ovfstore.engine.updater.domain import DomainResult, DomainStep, UpdateError
from ovfstore.engine.updater.pool import PoolResult, Render, pool_step
from ovfstore.engine.updater.protection import Unprotected, unprotected_entities
from ovfstore.engine.updater.status import DomainOvfStatus, domains_status
from ovfstore.model import utcnow

log = logging.getLogger(__name__)

#: The term a domain was written under, as an agent's `stale_term` refusal says it (`storage/fencing.py`).
_STORAGE_TERM = re.compile(r"written under leadership term (\d{1,19})")


@dataclass(slots=True)
class RunReport:
    pool: PoolResult
    domains: dict[UUID, DomainResult] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(slots=True)
class _Backoff:
    failures: int
    next_attempt: float


class OvfUpdater:
    def __init__(
        self,
        db: Database,
        inventory: Inventory,
        agents: AgentDirectory,
        config: UpdaterConfig,
        render: Render | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if render is None:
            from ovfstore.ovf import write_ovf

            render = write_ovf
        self.db = db
        self.config = config
        self.render = render
        self.clock = clock
        self.domain_step = DomainStep(db, inventory, agents, config, clock)
        self._cond = threading.Condition()
        self._dirty_since: float | None = None
        # Wall-clock time of the first change heard since the last run started: the status's time for a
        # change the database does not date (a deletion).
        self._heard_at: datetime | None = None
        self._requests: dict[UUID, Future[DomainResult]] = {}
        self._backoff: dict[UUID, _Backoff] = {}
        self._next_sweep = 0.0  # the first run starts at once: catch up with what happened while stopped
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._observers: list[Callable[[DomainResult], None]] = []
        self.last_report: RunReport | None = None
        self._leadership: Leadership | None = None
        inventory.subscribe(self._on_change)

    # --- control -------------------------------------------------------------------------------------

    def observe(self, observer: Callable[[DomainResult], None]) -> None:
        """Call `observer` with each domain's result, on the updater's threads, after it is recorded (the
        metrics and the status page's history of update durations). An observer must not block or raise."""
        self._observers.append(observer)

    def lead_with(self, leadership: Leadership) -> None:
        """Run only while `leadership` says this engine leads; fence every store write by its term."""
        self._leadership = leadership
        leadership.on_change(self._leadership_changed)

    def wake(self) -> None:
        """A change committed elsewhere (another engine): start the debounce as for one of our own."""
        self._on_change(Changes(frozenset()))

    def _leadership_changed(self, term: int | None) -> None:
        with self._cond:
            if term is not None:
                self._next_sweep = 0.0  # a new leader catches up with everything at once
            self._cond.notify_all()

    def _leading(self) -> bool:
        return self._leadership is None or self._leadership.term() is not None

    def leading_term(self) -> int | None:
        """The term this engine leads under; None while another leads. An updater without a leadership
        (tests, tools) leads under no term: 0."""
        return 0 if self._leadership is None else self._leadership.term()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="ovf-updater", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def update_now(self, domain_id: UUID, timeout: float | None = None) -> DomainResult:
        """Rewrite the domain's stores now and return the outcome (served by the next run when one is in
        progress). Without a running updater thread the work is done on the caller's thread. An engine
        that does not lead answers with an error naming the leader."""
        if not self._leading():
            return DomainResult(domain_id, error=self._not_leading())
        if self._thread is None:
            return self.run_once(force={domain_id}).domains[domain_id]
        with self._cond:
            future = self._requests.get(domain_id)
            if future is None:
                future = self._requests[domain_id] = Future()
            self._cond.notify_all()
        return future.result(timeout)

    def prepare_for_deactivation(self, domain_id: UUID, timeout: float | None = None) -> DomainResult:
        """Write the domain's stores before it goes into maintenance or is detached; raise if that failed,
        so the caller can refuse to go on with stale stores (or go on knowingly)."""
        result = self.update_now(domain_id, timeout)
        if result.error:
            raise UpdateError(
                f"the OVF stores of domain {domain_id} could not be updated: {result.error}. Fix the cause "
                "and retry, or go on knowing the domain's stores are not current"
            )
        return result

    def status(self, domain_id: UUID | None = None) -> list[DomainOvfStatus]:
        """How fresh the OVF stores of every data domain (or of one) are, as the database has it, with
        the changes not on them yet (the debounce counts: a change waiting for its run is pending)."""
        return domains_status(self.db, domain_id, now=self.clock(), heard=self._heard_at)

    def unprotected(self, statuses: list[DomainOvfStatus] | None = None) -> list[Unprotected]:
        """The VMs and templates no domain's stores protect, with the reason (`protection`). `statuses`: the
        status of every domain just taken, to answer both from one moment."""
        statuses = self.status() if statuses is None else statuses
        with self.db.read() as conn:
            return unprotected_entities(conn, statuses, self.clock(), self.config.locked_threshold_s)

    def _not_leading(self) -> str:
        leader = current(self.db)
        who = f"engine {leader.engine} (term {leader.term})" if leader and leader.alive else "no engine, right now,"
        return f"this engine does not lead the OVF updater; {who} does: ask the leader, or retry in a few seconds"

    # --- one run -------------------------------------------------------------------------------------

    def run_once(self, force: set[UUID] | frozenset[UUID] = frozenset()) -> RunReport:
        """The pool step, then the domain step for every outdated domain (and those in `force`)."""
        started = time.monotonic()
        self._heard_at = None  # what is heard from now on waits for the next run
        report = RunReport(pool=pool_step(self.db, self.render, self.clock()))
        for entity_id, error in report.pool.failed.items():
            events.record(
                self.db, self.clock(), events.Severity.ERROR, "ovf_generation_failed",
                f"the OVF of {entity_id} could not be written: {error}",
            )  # fmt: skip
        now = time.monotonic()
        pending = self._domains_to_update()
        # A domain that failed and then went away (removed, or no longer outdated) must not keep a backoff
        # entry: an expired one would make the updater run back to back forever.
        for gone in set(self._backoff) - pending - set(force):
            del self._backoff[gone]
        due = [
            domain_id
            for domain_id in sorted(pending | set(force))
            if domain_id in force or domain_id not in self._backoff or self._backoff[domain_id].next_attempt <= now
        ]
        workers = max(1, min(self.config.parallel_domains, len(due)))
        with ThreadPoolExecutor(workers, thread_name_prefix="ovf-domain") as executor:
            results = executor.map(lambda d: self._update_domain(d, d in force), due)
            for domain_id, result in zip(due, results, strict=True):
                report.domains[domain_id] = result
                self._after(domain_id, result)
        report.seconds = time.monotonic() - started
        self.last_report = report
        return report

    def _update_domain(self, domain_id: UUID, force: bool) -> DomainResult:
        started = time.monotonic()
        term = self.leading_term()  # read for each domain: the run may outlive a term
        if term is None:
            return DomainResult(domain_id, skipped="this engine no longer leads the OVF updater")
        try:
            result = self.domain_step.update(domain_id, force=force, term=term or None)
        except Exception as exc:  # a bug must not stop the other domains; it is recorded like a failure
            log.exception("updating the OVF stores of domain %s failed", domain_id)
            result = DomainResult(
                domain_id, error=f"internal error: {exc.__class__.__name__}: {exc}", failure="internal"
            )
        result.seconds = time.monotonic() - started
        return result

    def _domains_to_update(self) -> set[UUID]:
        with self.db.read() as conn:
            return records.domains_with_work(conn)

    def _after(self, domain_id: UUID, result: DomainResult) -> None:
        self._record(domain_id, result)
        for observer in self._observers:
            try:
                observer(result)
            except Exception:  # the updater's work must not depend on who watches it
                log.exception("an observer of the OVF updater failed")

    def _record(self, domain_id: UUID, result: DomainResult) -> None:
        if result.failure == "fenced":  # an agent saw a newer term: another engine leads; no retry here
            events.record(
                self.db, self.clock(), events.Severity.WARNING, "ovf_update_fenced",
                f"the OVF stores of domain {domain_id} were not written by this engine: {result.error}", domain_id,
            )  # fmt: skip
            if self._leadership is not None:
                error = result.error or "an agent refused a write of this term"
                found = _STORAGE_TERM.search(error)
                self._leadership.step_down(error, int(found.group(1)) if found else None)
            return
        if result.written:
            events.record(
                self.db, self.clock(), events.Severity.NORMAL, "ovf_update_done",
                f"the OVF stores of domain {domain_id} were written: {len(result.written)} stores, generation "
                f"{result.generation}, {result.entity_count} entities, {result.size} bytes in {result.seconds:.2f} s",
                domain_id,
            )  # fmt: skip
        if result.error is None:
            if domain_id in self._backoff:
                del self._backoff[domain_id]
                events.record(
                    self.db, self.clock(), events.Severity.NORMAL, "ovf_update_recovered",
                    f"the OVF stores of domain {domain_id} are written again", domain_id,
                )  # fmt: skip
            return
        previous = self._backoff.get(domain_id)
        failures = previous.failures + 1 if previous else 1
        delay = min(self.config.backoff_initial_s * 2 ** (failures - 1), self.config.backoff_max_s)
        self._backoff[domain_id] = _Backoff(failures, time.monotonic() + delay)
        events.record(
            self.db, self.clock(), events.Severity.ERROR, "ovf_update_failed",
            f"the OVF stores of domain {domain_id} were not updated (attempt {failures}, next in {delay:.0f} s): "
            f"{result.error}",
            domain_id,
        )  # fmt: skip

    # --- the thread ------------------------------------------------------------------------------------

    def _on_change(self, changes: Changes) -> None:
        with self._cond:
            if self._dirty_since is None:
                self._dirty_since = time.monotonic()
            if self._heard_at is None:
                self._heard_at = self.clock()
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._due(time.monotonic()):
                    self._cond.wait(self._wait_time(time.monotonic()))
                if self._stopping:
                    requests, self._requests = self._requests, {}
                    for future in requests.values():
                        future.set_exception(UpdateError("the updater stopped before serving the request"))
                    return
                requests, self._requests = self._requests, {}
                if not self._leading():
                    for domain_id, future in requests.items():
                        future.set_result(DomainResult(domain_id, error=self._not_leading()))
                    continue
                now = time.monotonic()
                if now >= self._next_sweep:
                    self._next_sweep = now + self.config.sweep_interval_s
                self._dirty_since = None
            try:
                report = self.run_once(force=set(requests))
            except Exception as exc:
                log.exception("the OVF updater run failed; retrying on the next trigger")
                self._dirty_since = self._dirty_since or time.monotonic()
                for future in requests.values():
                    future.set_exception(exc)
                continue
            for domain_id, future in requests.items():
                future.set_result(report.domains[domain_id])

    def _due(self, now: float) -> bool:
        if not self._leading():
            return bool(self._requests)  # answered at once: this engine does not lead
        if self._requests or now >= self._next_sweep:
            return True
        if self._dirty_since is not None and now >= self._dirty_since + self.config.debounce_s:
            return True
        return any(b.next_attempt <= now for b in self._backoff.values())

    def _wait_time(self, now: float) -> float:
        if not self._leading():
            return 1.0  # and woken when this engine becomes the leader
        deadlines = [self._next_sweep]
        if self._dirty_since is not None:
            deadlines.append(self._dirty_since + self.config.debounce_s)
        deadlines += [b.next_attempt for b in self._backoff.values()]
        return max(0.01, min(deadlines) - now)

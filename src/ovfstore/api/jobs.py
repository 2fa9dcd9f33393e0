"""Jobs: what long actions (attach, deactivate, detach, register, store updates) did, for `GET /jobs`.

The engine answers those actions when they are done, so every job is already finished or failed when
the client sees it; the list lets Ansible and operators follow what happened. Kept in memory, newest
last, up to `KEEP` entries: jobs are a progress view, the events table is the durable record.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from ovfstore.model import utcnow

KEEP = 1000


class JobStatus(StrEnum):
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"


@dataclass(slots=True)
class Job:
    description: str
    owner_id: UUID | None
    id: UUID = field(default_factory=uuid4)
    status: JobStatus = JobStatus.STARTED
    start_time: datetime = field(default_factory=utcnow)
    end_time: datetime | None = None
    last_updated: datetime = field(default_factory=utcnow)


class Jobs:
    def __init__(self) -> None:
        self._jobs: OrderedDict[UUID, Job] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def run(self, description: str, owner_id: UUID | None) -> Iterator[Job]:
        """Record a job around a piece of work: finished if it returns, failed if it raises."""
        job = Job(description, owner_id)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP:
                self._jobs.popitem(last=False)
        try:
            yield job
        except BaseException:
            self._end(job, JobStatus.FAILED)
            raise
        self._end(job, JobStatus.FINISHED)

    def _end(self, job: Job, status: JobStatus) -> None:
        with self._lock:
            job.status = status
            job.end_time = job.last_updated = utcnow()

    def list(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def get(self, job_id: UUID) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

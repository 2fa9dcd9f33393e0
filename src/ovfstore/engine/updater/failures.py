"""How failures travel through the domain step, so host failover is decided in one place.

- `HostLost`: the host's agent did not answer (refused, reset, timed out). Not the domain's fault: the
  domain step tries the next up host of the data center.
- `StepFailed`: the domain cannot be written now, whatever the host; the message says why and is kept
  on the domain's stores. The domain stays outdated and is retried later.
- `AgentRefused`, a `StepFailed`: the agent answered with an error (`detail` is its message).
- `Fenced`, a `StepFailed`: the agent refused a write because the domain was written under a newer
  leadership term: this engine lost the leadership; it stops, through every host (`engine/leadership.py`).

`agent_errors` turns the agent client's exceptions into these two kinds around each call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ovfstore.agent.errors import AgentError, AgentUnavailable, StaleTerm


class HostLost(Exception):
    """The host's agent did not answer: try the domain through the next host."""


class StepFailed(Exception):
    """The domain's stores cannot be written now, through any host; the message says why. `kind` sorts
    failures for the metrics (`storage`: the agent refused or the volumes are missing; `capacity`: the tar
    is larger than a store)."""

    kind = "storage"


class TooLarge(StepFailed):
    kind = "capacity"


class Fenced(StepFailed):
    kind = "fenced"


class AgentRefused(StepFailed):
    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


@contextmanager
def agent_errors(failure: str) -> Iterator[None]:
    """Agent errors inside become `HostLost`, or `AgentRefused` with the message `<failure>: <error>`."""
    try:
        yield
    except AgentUnavailable as exc:
        raise HostLost(str(exc)) from exc
    except StaleTerm as exc:
        raise Fenced(f"{failure}: {exc}") from exc
    except AgentError as exc:
        raise AgentRefused(f"{failure}: {exc}", str(exc)) from exc

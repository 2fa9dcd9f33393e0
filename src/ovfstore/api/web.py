"""The operator's status page at the engine's root (`/`): server-rendered (Jinja2), no script, no build.

Per data center and domain: every store's generation, size, entity count, last write and verified
digest; the recovery point, the pending changes, the last error with its time and a chart of the last
update durations. Then the VMs and templates no store protects, with the reason, and the recent events.
Administrators get "Update OVF stores now" per domain, which waits for the result and shows it.

Login is the API's: the same users, passwords and login throttle; the session is an API token in an
HttpOnly, SameSite=Lax cookie (a link from an alert opens the page logged in), and every form that changes
something carries a token derived from the session (`csrf`), so another site cannot post it. Read-only
users see everything and change nothing: the button is not shown to them and the action refuses them.
Everything shown comes from engine services (`OvfUpdater.status` and `unprotected`, `events.recent`, the
telemetry's history): no query of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ovfstore.api.router import LoginRefused, client_address, read_form
from ovfstore.engine import events
from ovfstore.engine.leadership import current
from ovfstore.engine.updater.domain import DomainResult
from ovfstore.engine.updater.protection import REASONS, Unprotected
from ovfstore.engine.updater.status import STATES, DomainOvfStatus, StoreStatus
from ovfstore.engine.users import User
from ovfstore.model import OvfStoreStatus, utcnow
from ovfstore.store.quoting import cut

if TYPE_CHECKING:
    from ovfstore.api.app import Api

COOKIE = "ovfstore_session"
EVENTS_SHOWN = 25
UPDATE_TIMEOUT_S = 600.0  # "update now" waits this long for the run that serves it
_FORM_LIMIT = 8192

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("ovfstore.api", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def age(seconds: float | None) -> str:
    """Seconds as an operator reads them: `4 s`, `12 min`, `3 h 5 min`, `2 d 4 h`."""
    if seconds is None:
        return "unknown"
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def when(t: datetime | None) -> str:
    return "never" if t is None else f"{t:%Y-%m-%d %H:%M:%S} UTC"


@dataclass(frozen=True, slots=True)
class Chart:
    """A sparkline of the last update durations: an SVG polyline, failed updates as red dots."""

    points: str
    failures: list[tuple[float, float]]
    last: str
    count: int
    width: int = 120
    height: int = 24


def chart(durations: list[tuple[float, bool]]) -> Chart | None:
    if not durations:
        return None
    width, height, pad = 120, 24, 2
    top = max(seconds for seconds, _ in durations) or 1.0
    step = (width - 2 * pad) / max(1, len(durations) - 1)
    xy = [
        (round(pad + i * step, 1), round(height - pad - (seconds / top) * (height - 2 * pad), 1))
        for i, (seconds, _) in enumerate(durations)
    ]
    points = " ".join(f"{x},{y}" for x, y in xy)
    failed = [xy[i] for i, (_, ok) in enumerate(durations) if not ok]
    last = durations[-1][0]
    return Chart(points, failed, f"{last:.2f} s", len(durations))


@dataclass(slots=True)
class DomainView:
    status: DomainOvfStatus
    state: str  # a key of status.STATES with dashes: up-to-date, pending, stores-failing, never-written, ...
    state_text: str
    behind: bool
    recovery_point: str
    error_time: datetime | None
    chart: Chart | None
    stores: list[dict[str, object]]


@dataclass(slots=True)
class DataCenterView:
    name: str
    domains: list[DomainView] = field(default_factory=list)


def _state(st: DomainOvfStatus) -> tuple[str, str]:
    """The domain's state (`DomainOvfStatus.state`, the one definition) as a CSS class and words."""
    state = st.state
    text = STATES[state]
    if state == "pending" and st.last_error:
        text = "changes pending: the last update failed"
    return state.replace("_", "-"), text


class StatusPage:
    def __init__(self, api: Api) -> None:
        self.api = api
        self._csrf_key = secrets.token_bytes(32)
        self._flash: dict[str, tuple[str, str]] = {}  # session token -> (kind, message) shown once
        self._lock = threading.Lock()

    # --- session ------------------------------------------------------------------------------------------

    def _session(self, request: Request) -> tuple[str, User] | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        user = self.api.user_of_token(token)
        return None if user is None else (token, user)

    def _csrf(self, token: str) -> str:
        return hmac.new(self._csrf_key, token.encode(), hashlib.sha256).hexdigest()

    # --- pages ---------------------------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        return _html("login.html", error=None, name="")

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        name = form.get("username", "")
        try:
            user = await run_in_threadpool(self.api.login, name, form.get("password", ""), client_address(request))
        except LoginRefused as exc:
            return _html("login.html", status=401, error=cut(str(exc), 300), name=cut(name, 100))
        token = self.api.tokens.issue(user)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token.value, httponly=True, samesite="lax", path="/")
        return response

    async def logout(self, request: Request) -> Response:
        found = self._session(request)
        form = await _form(request)
        if found is not None and hmac.compare_digest(form.get("csrf", ""), self._csrf(found[0])):
            self.api.tokens.revoke(found[0])
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def page(self, request: Request) -> Response:
        found = self._session(request)
        if found is None:
            return RedirectResponse("/login", status_code=303)
        token, user = found
        with self._lock:
            flash = self._flash.pop(token, None)
        context = await run_in_threadpool(self._context)
        return _html("status.html", status=200, user=user, csrf=self._csrf(token), flash=flash, page=context)

    async def update(self, request: Request) -> Response:
        found = self._session(request)
        if found is None:
            return RedirectResponse("/login", status_code=303)
        token, user = found
        form = await _form(request)
        if not hmac.compare_digest(form.get("csrf", ""), self._csrf(token)):
            return _html("refused.html", status=403, message="the form is stale or came from another site; reload")
        if not user.may_change:
            return _html("refused.html", status=403, message=f"user {user.name} may only read; ask an administrator")
        try:
            domain_id = UUID(request.path_params["sd"])
        except ValueError:
            return _html("refused.html", status=404, message="no such storage domain")
        names = {st.domain_id: st.name for st in await run_in_threadpool(self.api.engine.updater.status)}
        if domain_id not in names:
            return _html("refused.html", status=404, message="no such storage domain")
        try:
            result = await run_in_threadpool(self.api.engine.updater.update_now, domain_id, UPDATE_TIMEOUT_S)
            flash = _outcome(names[domain_id], result)
        except Exception as exc:  # the updater stopped, or the wait ran out: say so on the page
            flash = ("error", f"{names[domain_id]}: the update did not finish: {cut(str(exc), 500)}")
        with self._lock:
            self._flash[token] = flash
        return RedirectResponse("/", status_code=303)

    # --- what the page shows --------------------------------------------------------------------------------

    def _context(self) -> dict[str, object]:
        engine = self.api.engine
        statuses = engine.updater.status()
        unprotected = engine.updater.unprotected(statuses)
        threshold = engine.updater.config.recovery_point_threshold_s
        recent = events.recent(engine.db, 200)
        last_error_at: dict[UUID, datetime] = {}
        for event in recent:  # newest first
            if event.severity is events.Severity.ERROR and event.domain_id is not None:
                last_error_at.setdefault(event.domain_id, event.time)
        names = {st.domain_id: st.name for st in statuses}
        dcs = {dc.id: dc.name for dc in engine.inventory.data_centers.list()}
        grouped: dict[str, DataCenterView] = {}
        for st in statuses:
            dc_name = dcs.get(st.data_center_id, "") if st.data_center_id else ""
            view = grouped.setdefault(dc_name, DataCenterView(dc_name or "not in a data center"))
            state, text = _state(st)
            history = engine.telemetry.history(st.domain_id)
            view.domains.append(
                DomainView(
                    status=st,
                    state=state,
                    state_text=text,
                    behind=st.behind(threshold),
                    recovery_point=age(st.pending_age_s),
                    error_time=last_error_at.get(st.domain_id) if st.last_error else None,
                    chart=chart([(u.seconds, u.error is None) for u in history]),
                    stores=[_store(store) for store in st.stores],
                )
            )
        return {
            "data_centers": [grouped[k] for k in sorted(grouped, key=lambda k: (k == "", k))],
            "unprotected": [_unprotected(u) for u in unprotected],
            "events": [_event(e, names) for e in recent[:EVENTS_SHOWN]],
            "all_up_to_date": all(st.up_to_date for st in statuses) and bool(statuses),
            "behind_count": sum(st.behind(threshold) for st in statuses),
            "threshold": age(threshold),
            "as_of": when(utcnow()),
            "leader": current(engine.db),
            "engine_name": engine.name,
            "when": when,
            "size": size,
        }


def _store(store: StoreStatus) -> dict[str, object]:
    return {
        "id": str(store.disk_id),
        "status": store.status.value,
        "ok": store.status is OvfStoreStatus.UPDATED,
        "generation": store.generation,
        "size": size(store.size),
        "entities": store.entity_count,
        "segments": store.segments or 0,
        "appended": size(store.appended),
        "last_updated": when(store.last_updated),
        "sha256": store.sha256 or "",
        "error": cut(store.last_error, 300) if store.last_error else "",
    }


def _event(e: events.Event, names: dict[UUID, str]) -> dict[str, object]:
    domain = names.get(e.domain_id, str(e.domain_id)) if e.domain_id else ""
    return {"time": when(e.time), "severity": e.severity.value, "code": e.code, "domain": domain,
            "message": cut(e.message, 600)}  # fmt: skip


def _unprotected(u: Unprotected) -> dict[str, object]:
    return {
        "name": u.name,
        "type": u.entity_type.value,
        "reason": u.reason,
        "reason_text": REASONS[u.reason],
        "detail": cut(u.detail, 600),
        "kept_on": u.kept_on,
        "since": when(u.since) if u.since else "",
    }


def _outcome(name: str, result: DomainResult) -> tuple[str, str]:
    if result.error is not None:
        return "error", f"{name}: the stores were not updated: {cut(result.error, 500)}"
    if result.written:
        return "ok", (
            f"{name}: {len(result.written)} stores written, generation {result.generation}, "
            f"{_count(result.entity_count)}, {size(result.size)} in {result.seconds:.2f} s"
        )
    return "ok", f"{name}: nothing written: {result.skipped or 'nothing to do'}"


def _count(n: int) -> str:
    return "1 VM or template" if n == 1 else f"{n} VMs and templates"


def _html(template: str, *, status: int = 200, **context: object) -> HTMLResponse:
    response = HTMLResponse(_env.get_template(template).render(**context), status_code=status)
    # The page shows what an operator acts on: never from a cache, never inside another site's frame.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    return response


async def _form(request: Request) -> dict[str, str]:
    return {k: v[:_FORM_LIMIT] for k, v in (await read_form(request)).items()}

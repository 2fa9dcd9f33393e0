"""The oVirt-compatible REST API of one engine, as a Starlette application.

`create_app(engine)` serves `/ovirt-engine/api/...`, the SSO token endpoint
`/ovirt-engine/sso/oauth/token` and logout `/ovirt-engine/services/sso-logout`. Every API call needs a
bearer token (or HTTP Basic credentials); read-only users may only GET (403 otherwise). The operator's
status page is the root (`/`, `/login`, `/logout`, `/update/{sd}`: `api/web.py`) and the Prometheus
metrics are at `/metrics` (`engine/telemetry.py`).
"""

from __future__ import annotations

import hmac
import logging
import time

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ovfstore.api import resources
from ovfstore.api.jobs import Jobs
from ovfstore.api.router import (
    BASE,
    Call,
    Fault,
    LoginRefused,
    Router,
    bounded,
    client_address,
    credentials,
    fault_response,
    read_body,
    read_form,
    render,
    to_fault,
    unauthorized,
)
from ovfstore.api.throttle import Lockout, LoginThrottle
from ovfstore.api.tokens import TokenStore
from ovfstore.api.web import StatusPage
from ovfstore.engine.errors import InvalidInput
from ovfstore.engine.runtime import Engine
from ovfstore.engine.telemetry import CONTENT_TYPE as METRICS_TYPE
from ovfstore.engine.users import User, full_name

log = logging.getLogger(__name__)

SCOPE = "ovirt-app-api"


class Api:
    """What the handlers share: the engine, tokens, the login throttle, jobs and the route table."""

    def __init__(self, engine: Engine, tokens: TokenStore | None = None, throttle: LoginThrottle | None = None) -> None:
        self.engine = engine
        self.tokens = tokens or TokenStore()
        self.throttle = throttle or LoginThrottle()
        self.jobs = Jobs()
        self.router = Router()
        resources.register_all(self.router)

    def authenticate(self, request: Request) -> User:
        found = credentials(request)
        if found is None:
            raise unauthorized(
                "this call needs a token: POST /ovirt-engine/sso/oauth/token, then send it as "
                "'Authorization: Bearer <token>'"
            )
        if isinstance(found, str):
            if self.tokens.user(found) is None:
                raise unauthorized("the token is unknown or expired; ask /ovirt-engine/sso/oauth/token for a new one")
            current = self.user_of_token(found)
            if current is None:
                raise unauthorized("the token's user was removed or its password changed; log in again")
            return current
        try:
            return self.login(*found, client_address(request))
        except LoginRefused as exc:
            raise unauthorized(str(exc)) from None

    def user_of_token(self, token: str) -> User | None:
        """The token's user with its role as it is now; None for an unknown or expired token, or one whose
        user was removed or changed its password (the token is revoked then)."""
        user = self.tokens.user(token)
        if user is None:
            return None
        current = self.engine.users.current(user)
        if current is None:
            self.tokens.revoke(token)
        return current

    def login(self, name: str, password: str, address: str) -> User:
        """The user whose password this is, unless the throttle refuses the attempt before any check."""
        attempt = self.throttle.begin(_login_name(name), address)
        if isinstance(attempt, Lockout):
            log.warning("login of %.100r from %s refused: %s", name, address, attempt)
            raise LoginRefused(str(attempt))
        user = self.engine.users.authenticate(name, password)
        if user is None:
            raise LoginRefused("wrong user name or password")
        self.throttle.succeeded(attempt)
        return user

    async def handle(self, request: Request) -> Response:
        started = time.monotonic()
        template, response = await self._handle(request)
        self.engine.telemetry.observe_request(
            request.method, template, response.status_code, time.monotonic() - started
        )
        return response

    async def _handle(self, request: Request) -> tuple[str, Response]:
        """The answer, and the route's template for the metrics (never the path: ids are unbounded)."""
        template = "unmatched"
        try:
            path = "/" + request.path_params.get("path", "").strip("/")
            route, params = self.router.match(request.method, path.rstrip("/") or "/")
            template = BASE + route.template
            user = await run_in_threadpool(self.authenticate, request)
            if route.writes and not user.may_change:
                raise Fault(
                    403,
                    "Forbidden",
                    f"user {user.name} may only read; {request.method} {BASE}{path} needs an administrator",
                )
            body = await read_body(request)
            call = Call(self, request, request.method, params, request.query_params, body, user)
            doc = await run_in_threadpool(route.handler, call)
        except Exception as exc:
            return template, fault_response(request, to_fault(exc))
        if doc is None:  # DELETE: the SDK accepts 200 only, with or without a body
            return template, Response(b"", 200)
        return template, render(request, doc)

    # --- SSO ----------------------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except Fault as fault:
            return _sso_error("invalid_request", fault.detail, fault.status)
        grant = str(form.get("grant_type", ""))
        if grant != "password":
            return _sso_error("unsupported_grant_type", f"grant_type {grant!r} is not supported; use 'password'")
        scope = str(form.get("scope", SCOPE))
        if SCOPE not in scope.split():
            return _sso_error("invalid_scope", f"scope must include {SCOPE}")
        name, password = str(form.get("username", "")), str(form.get("password", ""))
        try:
            user = await run_in_threadpool(self.login, name, password, client_address(request))
        except LoginRefused as exc:
            return _sso_error("access_denied", f"Cannot authenticate user: {exc}.")
        token = self.tokens.issue(user)
        return JSONResponse(
            {
                "access_token": token.value,
                "scope": SCOPE,
                "exp": str(int(token.expires * 1000)),
                "token_type": "bearer",
            }
        )

    async def logout(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except Fault as fault:
            return _sso_error("invalid_request", fault.detail, fault.status)
        self.tokens.revoke(str(form.get("token", "")))
        return JSONResponse({})


def _login_name(name: str) -> str:
    """Failures count against the user however its name is spelt (`admin` is `admin@internal`)."""
    try:
        return full_name(name)
    except InvalidInput:
        return name


def _sso_error(code: str, message: str, status: int = 400) -> Response:
    """oVirt's SSO error, which the SDK raises as an AuthError; the message quotes the client, so bounded."""
    return JSONResponse({"error_code": code, "error": bounded(message)}, status_code=status)


def create_app(engine: Engine, *, tokens: TokenStore | None = None, throttle: LoginThrottle | None = None) -> Starlette:
    api = Api(engine, tokens, throttle)
    page = StatusPage(api)

    metrics_token = engine.config.api.metrics_token.encode()

    async def metrics(request: Request) -> Response:
        if metrics_token:
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), metrics_token):
                return Response(
                    "metrics need the token set in [api] metrics_token: send Authorization: Bearer <token>\n",
                    status_code=401, media_type="text/plain", headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )  # fmt: skip
        body = await run_in_threadpool(engine.telemetry.exposition)
        return Response(body, media_type=METRICS_TYPE)

    app = Starlette(
        routes=[
            Route("/", page.page, methods=["GET"]),
            Route("/login", page.login_form, methods=["GET"]),
            Route("/login", page.login, methods=["POST"]),
            Route("/logout", page.logout, methods=["POST"]),
            Route("/update/{sd}", page.update, methods=["POST"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/ovirt-engine/sso/oauth/token", api.token, methods=["POST"]),
            Route("/ovirt-engine/services/sso-logout", api.logout, methods=["POST", "GET"]),
            Route(BASE, api.handle, methods=["GET", "POST", "PUT", "DELETE"]),
            Route(BASE + "/{path:path}", api.handle, methods=["GET", "POST", "PUT", "DELETE"]),
        ]
    )
    app.state.api = api
    return app

"""The API's guards against clients, over a real HTTP connection: failed logins are throttled per user and
per address (the SDK sees an AuthError that says why), faults stay small whatever the client or an agent
sent, and every route refuses a body over the cap."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import ovirtsdk4 as sdk
import pytest

from ovfstore.api.app import create_app
from ovfstore.api.router import Call, Document
from ovfstore.api.throttle import LoginThrottle
from ovfstore.api.xmlio import MAX_BODY
from ovfstore.engine.config import AgentAccess
from ovfstore.engine.domains import DomainCommandFailed
from ovfstore.engine.runtime import Engine, EngineConfig
from ovfstore.engine.users import UserRole
from tests.e2e.conftest import serve

PASSWORD = "admin-secret-1"
TOKEN = "/ovirt-engine/sso/oauth/token"
API = "/ovirt-engine/api"


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the throttle and the faults are the API's, whatever the database


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = Engine(EngineConfig(db_url, AgentAccess(secret="unused")))
    engine.start()
    engine.users.ensure_admin(PASSWORD)
    engine.users.add("reader", PASSWORD, UserRole.READONLY)
    yield engine
    engine.stop()


@pytest.fixture
def start(engine: Engine) -> Iterator[Callable[..., str]]:
    """Serve the engine's API on a free port with the given throttle; the base URL."""
    servers: list[Any] = []

    def run(throttle: LoginThrottle | None = None) -> str:
        app = create_app(engine, throttle=throttle)
        server, thread, port = serve(app)
        servers.append((server, thread))
        app.state.api.router.add("GET", "/boom", _boom)
        return f"http://127.0.0.1:{port}"

    yield run
    for server, thread in servers:
        server.should_exit = True
        thread.join(30)


def _boom(call: Call) -> Document:
    # What an agent's error passed through looks like: its message, of any size, inside ours.
    raise DomainCommandFailed(f"writing the store failed: {'the agent said no ' * 500_000}; retry later")


def _login(client: httpx.Client, user: str, password: str) -> httpx.Response:
    form = {"grant_type": "password", "scope": "ovirt-app-api", "username": user, "password": password}
    return client.post(TOKEN, data=form)


def _counting(engine: Engine) -> list[str]:
    """Record every password check the engine makes."""
    checked: list[str] = []
    real = engine.users.authenticate

    def authenticate(name: str, password: str) -> Any:
        checked.append(name)
        return real(name, password)

    engine.users.authenticate = authenticate  # type: ignore[method-assign]
    return checked


def test_a_user_is_locked_after_five_failures_even_with_the_right_password(
    engine: Engine, start: Callable[..., str]
) -> None:
    url = start()  # the defaults: 5 per user, 20 per address, 5 minutes
    checked = _counting(engine)
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(5):
            wrong = _login(client, "admin", "wrong-password")
            assert wrong.status_code == 400
            assert wrong.json() == {
                "error_code": "access_denied",
                "error": "Cannot authenticate user: wrong user name or password.",
            }
        assert len(checked) == 5
        locked = _login(client, "admin@internal", PASSWORD)
        assert locked.status_code == 400
        assert locked.json()["error_code"] == "access_denied"
        error = locked.json()["error"]
        assert "too many failed logins for user admin@internal; wait " in error
        assert "even with the right password" in error
        wait = int(error.split("wait ")[1].split(" s")[0])
        assert 290 <= wait <= 300
        basic = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        refused = client.get(API, headers={"Authorization": f"Basic {basic}"})  # no way around it by Basic
        assert refused.status_code == 401
        assert "too many failed logins for user admin@internal" in refused.text
        assert len(checked) == 5, "a locked user's password is not even checked"
        assert _login(client, "reader", PASSWORD).status_code == 200  # other users log in as before

    conn = sdk.Connection(url=url + API, username="admin@internal", password=PASSWORD, insecure=True, timeout=30)
    began = time.monotonic()
    with pytest.raises(sdk.AuthError, match="access_denied : Cannot authenticate user: too many failed logins"):
        conn.system_service().get()
    assert time.monotonic() - began < 10, "the SDK gives up at once, it does not retry"
    conn.close(logout=False)


def test_the_lockout_ends_with_its_window_and_a_success_resets_the_count(start: Callable[..., str]) -> None:
    url = start(LoginThrottle(user_limit=2, address_limit=100, window_s=1.5))
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(2):
            assert "wrong user name" in _login(client, "admin", "wrong-password").json()["error"]
        assert "too many failed logins" in _login(client, "admin", PASSWORD).json()["error"]
        time.sleep(1.6)
        assert _login(client, "admin", PASSWORD).status_code == 200
        for _ in range(3):  # a failure, a success that clears it, a failure: never two in a row
            assert _login(client, "admin", "wrong-password").status_code == 400
            assert _login(client, "admin", PASSWORD).status_code == 200


def test_an_address_is_locked_across_users(start: Callable[..., str]) -> None:
    url = start(LoginThrottle(user_limit=100, address_limit=3, window_s=300))
    with httpx.Client(base_url=url, timeout=30) as client:
        for user in ("nobody", "reader", "admin"):
            assert "wrong user name" in _login(client, user, "wrong-password").json()["error"]
        locked = _login(client, "reader", PASSWORD).json()
        assert locked["error_code"] == "access_denied"
        assert "too many failed logins for address 127.0.0.1" in locked["error"]


def test_faults_quoting_huge_values_stay_small(start: Callable[..., str]) -> None:
    url = start()
    huge = "n" * (3 * 1024 * 1024)
    with httpx.Client(base_url=url, auth=("admin", PASSWORD), timeout=60) as client:
        vm = f"<vm><name>v</name><cluster><name>{huge}</name></cluster><template><name>Blank</name></template></vm>"
        missing = client.post(f"{API}/vms", content=vm, headers={"Content-Type": "application/xml"})
        assert missing.status_code == 404
        assert len(missing.content) < 8192
        assert "n" * 200 in missing.text
        assert "characters cut" in missing.text
        assert "list the clusters to find the right id" in missing.text  # the advice survives

        failed = client.get(f"{API}/boom", headers={"Accept": "application/json"})
        assert failed.status_code == 409
        assert len(failed.content) < 8192
        detail = failed.json()["detail"]
        assert detail.startswith("the storage operation failed on the host: writing the store failed: the agent")
        assert detail.endswith("; retry later")


def test_a_huge_search_is_a_small_fault(engine: Engine) -> None:
    # A URL this long passes neither uvicorn's request parser nor httpx: the ASGI call is made by hand, since
    # the application must not rely on what is in front of it.
    app = create_app(engine)
    basic = base64.b64encode(f"admin:{PASSWORD}".encode())
    query = b"search=" + b"k" * (4 * 1024 * 1024) + b"%3D1"
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": f"{API}/vms", "raw_path": f"{API}/vms".encode(), "query_string": query, "root_path": "",
        "headers": [(b"host", b"api"), (b"authorization", b"Basic " + basic)], "client": ("127.0.0.1", 1),
        "server": ("api", 80),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 400
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert len(body) < 8192
    assert b"k" * 150 in body
    assert b"characters cut" in body


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", TOKEN), ("POST", "/ovirt-engine/services/sso-logout"), ("POST", f"{API}/vms"), ("GET", f"{API}/vms")],
)
def test_every_route_refuses_a_body_over_the_cap(start: Callable[..., str], method: str, path: str) -> None:
    url = start()
    with httpx.Client(base_url=url, auth=("admin", PASSWORD), timeout=60) as client:
        answer = client.request(method, path, content=b"x" * (MAX_BODY + 1))
    assert answer.status_code == 413
    assert f"request bodies are limited to {MAX_BODY} bytes" in answer.text


def test_an_sso_error_quoting_the_client_is_bounded(start: Callable[..., str]) -> None:
    url = start()
    with httpx.Client(base_url=url, timeout=60) as client:
        answer = client.post(TOKEN, data={"grant_type": "g" * 1_000_000})
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "unsupported_grant_type"
    assert len(answer.content) < 8192

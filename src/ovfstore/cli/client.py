"""The command line's client of the REST API: a token from the SSO endpoint, XML in and out, faults as
click errors that carry the engine's explanation."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar
from xml.sax.saxutils import escape

import click
import httpx
from lxml import etree

DEFAULT_URL = "http://127.0.0.1:8080/ovirt-engine/api"
F = TypeVar("F", bound=Callable[..., Any])
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


class ApiClient:
    def __init__(self, url: str, user: str, password: str, timeout: float = 600.0) -> None:
        self.url = url.rstrip("/")
        self.user = user
        self.password = password
        # Long actions (detach writes the stores first, register --all) answer when done.
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0))
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def _sso(self) -> str:
        root = self.url.split("/ovirt-engine/")[0]
        try:
            answer = self._http.post(
                f"{root}/ovirt-engine/sso/oauth/token",
                data={"grant_type": "password", "scope": "ovirt-app-api", "username": self.user,
                      "password": self.password},
                headers={"Accept": "application/json"},
            )  # fmt: skip
        except httpx.TransportError as exc:
            raise click.ClickException(f"the engine at {root} does not answer: {exc}; is it running?") from exc
        body = answer.json()
        if "access_token" not in body:
            raise click.ClickException(f"login failed: {body.get('error', answer.text)}")
        return str(body["access_token"])

    def request(self, method: str, path: str, body: str | None = None, **params: Any) -> etree._Element | None:
        if self._token is None:
            self._token = self._sso()
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items() if v is not None}
        headers = {"Authorization": f"Bearer {self._token}", "Version": "4", "Accept": "application/xml"}
        if body is not None:
            headers["Content-Type"] = "application/xml"
        try:
            answer = self._http.request(method, self.url + path, content=body, params=query, headers=headers)
        except httpx.TransportError as exc:
            raise click.ClickException(f"the engine at {self.url} does not answer: {exc}") from exc
        root = etree.fromstring(answer.content, _PARSER) if answer.content.strip() else None
        if answer.status_code >= 400:
            if root is not None and root.tag == "fault":
                reason, detail = root.findtext("reason", ""), root.findtext("detail", "")
                raise click.ClickException(f"{reason} ({answer.status_code}): {detail}")
            raise click.ClickException(f"{method} {path} failed with HTTP {answer.status_code}")
        return root

    def get(self, path: str, **params: Any) -> etree._Element:
        found = self.request("GET", path, **params)
        assert found is not None
        return found

    def post(self, path: str, body: str = "<action/>", **params: Any) -> etree._Element | None:
        return self.request("POST", path, body, **params)

    def delete(self, path: str, **params: Any) -> None:
        self.request("DELETE", path, **params)

    def find(self, collection: str, name_or_id: str, tag: str) -> etree._Element:
        """One object by name or id."""
        items = self.get(f"/{collection}", search=f"name={name_or_id}").findall(tag)
        if not items:
            items = [e for e in self.get(f"/{collection}").findall(tag) if e.get("id") == name_or_id]
        if len(items) != 1:
            found = "nothing" if not items else f"{len(items)} objects"
            raise click.ClickException(f"{name_or_id!r} names {found} in /{collection}; give a name or an id")
        return items[0]

    def find_id(self, collection: str, name_or_id: str, tag: str) -> str:
        return str(self.find(collection, name_or_id, tag).get("id"))


def x(text: object) -> str:
    """Text for an XML element."""
    return escape(str(text))


def with_api(f: F) -> F:
    """Add --url, --user and --password (or their environment variables) and pass `api`."""

    @click.option("--url", envvar="OVFSTORE_URL", default=DEFAULT_URL, show_default=True, help="The engine's API.")
    @click.option("--user", envvar="OVFSTORE_USER", default="admin@internal", show_default=True)
    @click.option(
        "--password",
        envvar="OVFSTORE_PASSWORD",
        default=None,
        help="Default: the OVFSTORE_PASSWORD environment variable, else asked for.",
    )
    @functools.wraps(f)
    def wrapper(*args: Any, url: str, user: str, password: str | None, **kwargs: Any) -> Any:
        if password is None:
            password = os.environ.get("OVFSTORE_PASSWORD") or click.prompt(f"password of {user}", hide_input=True)
        api = ApiClient(url, user, str(password))
        try:
            return f(*args, api=api, **kwargs)
        finally:
            api.close()

    return wrapper  # type: ignore[return-value]

"""`create_app` without a socket: the credential, the answers for unknown paths and wrong methods, the
storage errors made answers, and the JSON field checks of `agent.handlers.bodies`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest

from ovfstore.agent import protocol
from ovfstore.agent.app import answer_for, create_app
from ovfstore.agent.config import AgentConfig
from ovfstore.agent.handlers import ROUTES
from ovfstore.agent.handlers.bodies import field, optional_id
from ovfstore.agent.server import Connection, Handler, HTTPError, Request, Response
from ovfstore.storage import errors

SECRET = "s3cret"


def request(method: str, target: str, secret: str = SECRET) -> Request:
    # Routing and the credential never touch the connection.
    headers = {"authorization": f"Bearer {secret}"}
    return Request(cast(Connection, None), method, target, headers, None, keep_alive=True)


def error_of(response: Response | None) -> tuple[int, str]:
    assert response is not None
    return response.status, json.loads(response.body)["error"]


@pytest.fixture
def app(tmp_path: Path) -> Handler:
    return create_app(AgentConfig(roots=(str(tmp_path),), secret=SECRET))


def test_a_wrong_or_missing_credential_is_refused_before_routing(app: Handler) -> None:
    assert error_of(app(request("GET", "/nowhere", secret="wrong"))) == (401, protocol.UNAUTHENTICATED)
    anonymous = Request(cast(Connection, None), "GET", "/health", {}, None, keep_alive=True)
    assert error_of(app(anonymous)) == (401, protocol.UNAUTHENTICATED)


def test_an_unknown_path_is_not_found(app: Handler) -> None:
    with pytest.raises(HTTPError) as e:
        app(request("GET", "/domains/a/b/c/d"))
    assert (e.value.status, e.value.code) == (404, protocol.NOT_FOUND)


def test_a_wrong_method_is_refused_with_the_methods_allowed(app: Handler) -> None:
    with pytest.raises(HTTPError) as e:
        app(request("DELETE", "/domains"))
    assert (e.value.status, e.value.code, e.value.headers) == (405, protocol.METHOD_NOT_ALLOWED, {"Allow": "GET, POST"})


def test_path_parameters_are_unquoted(app: Handler) -> None:
    req = request("GET", "/domains/not%20a%20uuid")
    assert error_of(app(req)) == (400, protocol.INVALID_ARGUMENT)
    assert req.params == {"sd": "not a uuid"}


def test_health_answers_and_every_route_is_added_once(app: Handler) -> None:
    response = app(request("GET", "/health"))
    assert response is not None
    assert response.status == 200
    assert len({(method, template) for method, template, _ in ROUTES}) == len(ROUTES)


@pytest.mark.parametrize(
    ("error", "answer"),
    [
        (errors.PathOutsideRoots("x"), (403, protocol.PATH_OUTSIDE_ROOTS)),
        (errors.DescriptionTooLong("x"), (400, protocol.DESCRIPTION_TOO_LONG)),
        (errors.InvalidArgument("x"), (400, protocol.INVALID_ARGUMENT)),
        (errors.VolumeNotFound("x"), (404, protocol.VOLUME_NOT_FOUND)),
        (errors.StorageObjectNotFound("x"), (404, protocol.NOT_FOUND)),
        (errors.VolumeBusy("x"), (409, protocol.VOLUME_BUSY)),
        (errors.ChecksumMismatch("x"), (422, protocol.CHECKSUM_MISMATCH)),
        (errors.CapacityExceeded("x"), (413, protocol.CAPACITY_EXCEEDED)),
        (errors.DigestMismatch("x"), (409, protocol.TRANSFER_CORRUPTED)),
        (errors.ToolFailed("x"), (500, protocol.TOOL_FAILED)),
        (errors.StorageError("x"), (500, protocol.STORAGE_ERROR)),
        (OSError(5, "EIO"), (500, protocol.IO_ERROR)),
        (KeyError("bug"), (500, protocol.INTERNAL_ERROR)),
    ],
)
def test_failures_become_answers_with_their_code(error: Exception, answer: tuple[int, str]) -> None:
    assert error_of(answer_for(error)) == answer


def test_fields_are_checked_for_their_type() -> None:
    data = {"capacity": 512, "flag": True, "parent": None, "name": "x"}
    assert field(data, "capacity", int) == 512
    assert field(data, "missing", str, "default") == "default"
    with pytest.raises(errors.InvalidArgument, match="'flag' must be a int"):
        field(data, "flag", int)  # a bool is not a number of bytes
    with pytest.raises(errors.InvalidArgument, match="'missing' must be a str"):
        field(data, "missing", str)
    assert optional_id(data, "parent") is None
    assert optional_id(data, "name") == "x"
    with pytest.raises(errors.InvalidArgument, match="volume id or null"):
        optional_id(data, "capacity")

"""The API's routes on the shared route table: its own 404 and 405 faults, and which calls write."""

from __future__ import annotations

import pytest

from ovfstore.api.router import Call, Document, Fault, Router


def _handler(call: Call) -> Document:
    return Document("x", {})


def test_matches_with_parameters_and_a_trailing_slash() -> None:
    router = Router()
    router.add("GET", "/vms/{vm}", _handler)
    router.add("DELETE", "/vms/{vm}", _handler)
    route, params = router.match("GET", "/vms/abc/")
    assert route.handler is _handler
    assert params == {"vm": "abc"}
    assert not route.writes
    assert router.match("DELETE", "/vms/abc")[0].writes


def test_unknown_path_and_wrong_method_are_the_api_faults() -> None:
    router = Router()
    router.add("GET", "/vms/{vm}", _handler)
    router.add("PUT", "/vms/{vm}", _handler)
    with pytest.raises(Fault) as missing:
        router.match("GET", "/vms/abc/disks")
    assert (missing.value.status, missing.value.reason) == (404, "Not Found")
    assert missing.value.detail == (
        "no such resource: /ovirt-engine/api/vms/abc/disks; see docs/API.md for what the API serves"
    )
    with pytest.raises(Fault) as wrong:
        router.match("POST", "/vms/abc")
    assert (wrong.value.status, wrong.value.reason, wrong.value.detail) == (
        405,
        "Method Not Allowed",
        "/vms/abc takes GET, PUT",
    )


def test_a_fault_cuts_long_words_and_keeps_its_end() -> None:
    fault = Fault(404, "Not Found", f"vm {'v' * 1000} does not exist; list the vms to find the right id")
    assert fault.detail == f"vm {'v' * 200}…[800 characters cut] does not exist; list the vms to find the right id"
    spaced = Fault(400, "Bad Request", "name 'a " + "a " * 1_000_000 + "' is bad; send another")
    assert len(spaced.detail) < 4200
    assert spaced.detail.startswith("name 'a a a")
    assert spaced.detail.endswith("a a ' is bad; send another")
    assert "characters cut" in spaced.detail
    assert Fault(400, "Bad Request", "short and plain").detail == "short and plain"

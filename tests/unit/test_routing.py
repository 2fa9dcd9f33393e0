"""The route table shared by the agent and the API."""

from __future__ import annotations

import pytest

from ovfstore.routing import MethodNotAllowed, NoRoute, RouteTable


def test_parameters_match_one_segment_each() -> None:
    table = RouteTable[str]()
    table.add("GET", "/domains/{sd}/images/{img}", "image")
    match = table.match("GET", "/domains/a/images/b")
    assert (match.value, match.template, match.params) == (
        "image",
        "/domains/{sd}/images/{img}",
        {"sd": "a", "img": "b"},
    )
    with pytest.raises(NoRoute):
        table.match("GET", "/domains/a/b/images/c")


def test_literal_text_is_not_a_pattern() -> None:
    table = RouteTable[str]()
    table.add("GET", "/v1.0/{x}", "dotted")
    assert table.match("GET", "/v1.0/y").value == "dotted"
    with pytest.raises(NoRoute):
        table.match("GET", "/v1x0/y")


def test_a_method_on_another_template_of_the_same_path_is_found() -> None:
    table = RouteTable[str]()
    table.add("GET", "/vms/{id}", "get")
    table.add("POST", "/vms/{name}", "post")
    assert table.match("POST", "/vms/x").value == "post"
    with pytest.raises(MethodNotAllowed) as e:
        table.match("DELETE", "/vms/x")
    assert e.value.allowed == ["GET", "POST"]


def test_trailing_slash_only_where_asked() -> None:
    strict = RouteTable[str]()
    lenient = RouteTable[str](trailing_slash=True)
    for table in (strict, lenient):
        table.add("GET", "/health", "ok")
    assert lenient.match("GET", "/health/").value == "ok"
    with pytest.raises(NoRoute):
        strict.match("GET", "/health/")


def test_adding_again_replaces_and_keeps_order() -> None:
    table = RouteTable[int]()
    table.add("GET", "/a", 1)
    table.add("GET", "/b", 2)
    table.add("GET", "/a", 3)
    assert table.match("GET", "/a").value == 3
    assert table.templates() == [("/a", ["GET"]), ("/b", ["GET"])]

"""oVirt search expressions (`api.search`): `and`, `or`, parentheses and `!=`, as the disaster-recovery
role writes them."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from ovfstore.api import search
from ovfstore.engine.errors import InvalidInput


@dataclass
class Sd:
    name: str
    dc: str
    status: str
    type: str = "data"


KEYS: search.Keys = {
    "name": lambda d: [d.name],
    "datacenter": lambda d: [d.dc],
    "status": lambda d: [d.status],
    "type": lambda d: [d.type],
}
DOMAINS = [
    Sd("prod", "Default", "active"),
    Sd("prod2", "Other", "maintenance"),
    Sd("spare", "", "unattached"),
    Sd("glance", "", "unattached", "image"),
]


def names(expression: str) -> list[str]:
    return [d.name for d in search.apply(DOMAINS, expression, KEYS, "storage domain")]


def test_the_roles_clean_up_search() -> None:
    # tasks/clean/remove_valid_filtered_master_domains.yml, with its folded newlines
    expression = """name=prod* and
(
  datacenter=Default and status = active and type != cinder or
  datacenter=Default and status = maintenance and type != cinder or
  status = unattached and type != cinder and type != glance
)"""
    assert names(expression) == ["prod"]
    assert names("status = unattached and type != image or name=prod2") == ["prod2", "spare"]
    assert names("(status=active or status=maintenance) and datacenter=Other") == ["prod2"]


def test_and_binds_closer_than_or() -> None:
    assert names("name=spare or name=prod and status=maintenance") == ["spare"]


@pytest.mark.parametrize("bad", ["(name=prod", "name=prod)", "name=prod and", "or name=x", "name"])
def test_malformed_expressions_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        names(bad)


def test_unknown_key_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match="datacenter, name, status, type"):
        names("name=prod or storage.name=prod")


def test_parse_keeps_and_only_terms() -> None:
    assert [t.key for t in search.parse("Vms: name=a and status!=up")] == ["name", "status"]
    with pytest.raises(InvalidInput):
        search.parse("name=a or name=b")


def test_quotes_and_parentheses_inside_values() -> None:
    """Names may hold parentheses and the words and/or: quoted, or a term's own `(...)`, they are the value."""
    items = [Sd("web (prod)", "", "up"), Sd("a or b", "", "up"), Sd("db(1)", "", "down")]
    found = lambda e: [d.name for d in search.apply(items, e, KEYS, "vm")]  # noqa: E731
    assert found('name="web (prod)"') == ["web (prod)"]
    assert found("name='a or b' or name=x") == ["a or b"]
    assert found("(name=db(1) or name=x) and status=down") == ["db(1)"]


def test_deep_nesting_and_huge_expressions_are_clear_faults() -> None:
    nested = "(" * search.MAX_DEPTH + "name=prod" + ")" * search.MAX_DEPTH
    assert names(nested) == ["prod"]
    with pytest.raises(InvalidInput, match="deeper than 32"):
        names("(" + nested + ")")
    with pytest.raises(InvalidInput, match="deeper than 32"):
        names("(" * 5000 + "name=prod" + ")" * 5000)  # never a RecursionError
    with pytest.raises(InvalidInput, match="at most 65536") as refused:
        names("name=" + "x" * search.MAX_EXPRESSION)
    assert len(str(refused.value)) < 600  # a bounded quote (the API cuts it further), never all of it


def test_long_expressions_parse_in_linear_time() -> None:
    many = " or ".join(["name=spare"] * 4500)  # about 63,000 characters
    started = time.perf_counter()
    assert names(many) == ["spare"]
    assert time.perf_counter() - started < 2  # the old parser's slicing took seconds for this


@pytest.mark.parametrize("bad", ["name=prod) and name=" + "x" * 100_000, "name=" + "'" + "x" * 60_000])
def test_faults_quote_a_bounded_part(bad: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        search.parse_tree(bad[: search.MAX_EXPRESSION])
    assert len(str(refused.value)) < 500

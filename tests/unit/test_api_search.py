"""oVirt search expressions (`api.search`): `and`, `or`, parentheses and `!=`, as the disaster-recovery
role writes them."""

from __future__ import annotations

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

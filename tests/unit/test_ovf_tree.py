"""The OVF reader's tree walk: the C walk (`_tree.c`) gives exactly what the Python definition gives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree

from ovfstore.model import OvfData
from ovfstore.ovf import tree as tree_module
from ovfstore.ovf import write_ovf
from ovfstore.ovf.parse import parse
from ovfstore.ovf.tree import MAX_DEPTH, flatten_py
from tests.unit.test_ovf_samples import ovf_data

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ovf"

if not tree_module.COMPILED:
    if os.environ.get("CI") == "true":
        # CI builds the extension (gcc and lxml's headers are there): a silent fallback would hide a
        # broken build behind a reader that is half as fast.
        pytest.fail("ovfstore.ovf._tree was not built: run `pip install -e .` with a C compiler", pytrace=False)
    pytest.skip("ovfstore.ovf._tree is not built (no C compiler at install time)", allow_module_level=True)

from ovfstore.ovf._tree import flatten  # noqa: E402 - only once the extension is known to be there

KEEP_ALL = etree.XMLParser(remove_comments=False, remove_pis=False, strip_cdata=False, huge_tree=True)


def both(element: etree._Element) -> tree_module.Node:
    walked = flatten(element)
    assert walked == flatten_py(element)
    return walked


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.ovf")))
def test_the_oVirt_samples_walk_the_same(name: str) -> None:
    root = parse((FIXTURES / name).read_bytes())
    node = both(root)
    assert node[0].endswith("}Envelope")
    assert sum(1 for _ in root.iter()) == _count(node)


def _count(node: tree_module.Node) -> int:
    return 1 + sum(_count(child) for child in node[3])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ovf_data())
def test_written_documents_walk_the_same(data: OvfData) -> None:
    both(parse(write_ovf(data)))


def test_text_is_lxmls_text_before_the_first_child_node() -> None:
    root = etree.fromstring(b"<a>one<![CDATA[ & two]]>three<!--c-->four<b>five</b>six<?pi x?></a>", KEEP_ALL)
    node = both(root)
    assert node[1] == root.text == "one & twothree"
    assert node[3] == (("b", "five", {}, ()),)  # comments, PIs and tail text are left out


def test_names_values_and_namespaces_as_lxml_spells_them() -> None:
    long_ns = "urn:" + "x" * 400  # longer than the walk's stack buffer for names
    document = (
        f'<r xmlns="urn:default" xmlns:p="urn:p" xmlns:l="{long_ns}" p:a="1" b="" c="caf\u00e9 \u2603">'
        "<p:x>d\u00e9j\u00e0 vu</p:x><l:y l:z='q'/><e/></r>"
    ).encode()
    node = both(etree.fromstring(document))
    assert node[0] == "{urn:default}r"
    assert node[2] == {"{urn:p}a": "1", "b": "", "c": "caf\u00e9 \u2603"}
    assert node[3][0] == ("{urn:p}x", "d\u00e9j\u00e0 vu", {}, ())
    assert node[3][1] == (f"{{{long_ns}}}y", None, {f"{{{long_ns}}}z": "q"}, ())
    assert node[3][2] == ("{urn:default}e", None, {}, ())


def test_more_distinct_names_than_the_walk_interns_and_repeated_short_values() -> None:
    items = "".join(f'<n{i} v="{i % 7}">{"true" if i % 2 else "false"}</n{i}>' for i in range(1000))
    node = both(etree.fromstring(f"<r>{items}</r>".encode()))
    assert [child[0] for child in node[3]] == [f"n{i}" for i in range(1000)]
    assert node[3][999] == ("n999", "true", {"v": "5"}, ())


def test_a_tree_deeper_than_the_limit_is_refused_by_both_walks() -> None:
    deep = etree.fromstring(b"<a>" * (MAX_DEPTH + 2) + b"</a>" * (MAX_DEPTH + 2), KEEP_ALL)
    with pytest.raises(ValueError, match="more than 300 deep"):
        flatten(deep)
    with pytest.raises(ValueError, match="more than 300 deep"):
        flatten_py(deep)
    shallow = etree.fromstring(b"<a>" * MAX_DEPTH + b"</a>" * MAX_DEPTH, KEEP_ALL)
    assert both(shallow)[0] == "a"


def test_only_lxml_elements_are_walked() -> None:
    for not_an_element in (None, "<a/>", b"<a/>", 42):
        with pytest.raises(TypeError):
            flatten(not_an_element)  # type: ignore[arg-type]
    comment = etree.fromstring(b"<a><!--c--></a>", KEEP_ALL)[0]
    with pytest.raises(ValueError, match="not an XML element"):
        flatten(comment)


def test_the_walk_of_a_subtree_keeps_its_document_alive() -> None:
    child = etree.fromstring(b"<a><b x='1'>t</b></a>")[0]
    assert both(child) == ("b", "t", {"x": "1"}, ())

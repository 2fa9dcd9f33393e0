"""The OVF reader's tree walk: the C walk (`_tree.c`) gives exactly what the Python definition gives."""

from __future__ import annotations

import gc
import importlib
import weakref
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree

from ovfstore.model import OvfData
from ovfstore.ovf import tree as tree_module
from ovfstore.ovf import write_ovf
from ovfstore.ovf.parse import parse
from ovfstore.ovf.tree import MAX_DEPTH, flatten_py
from tests.unit.compiled import require_compiled
from tests.unit.test_ovf_samples import ovf_data

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ovf"

require_compiled(tree_module.COMPILED, "ovfstore.ovf._tree")

from ovfstore.ovf._tree import flatten  # noqa: E402 - only once the extension is known to be there

THRESHOLDS = gc.get_threshold()
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


def test_entity_references_and_xinclude_read_as_lxml_reads_them(tmp_path: Path) -> None:
    # Never in a parsed OVF (parse() refuses a DOCTYPE and runs no XInclude), but the walk is general.
    keep_entities = etree.XMLParser(resolve_entities=False)
    node = both(etree.fromstring(b'<!DOCTYPE r [<!ENTITY e "X">]><r a="1&e;2">t&e;u<c/></r>', keep_entities))
    assert node[2] == {"a": "1X2"}
    assert node[1] == "t"
    (tmp_path / "inc.txt").write_text("INC")
    (tmp_path / "main.xml").write_text(
        '<r xmlns:xi="http://www.w3.org/2001/XInclude">a<xi:include href="inc.txt" parse="text"/>b<c/></r>'
    )
    included = etree.parse(str(tmp_path / "main.xml"))
    included.xinclude()
    assert both(included.getroot())[1] == "aINCb"


def test_a_finalizer_that_changes_the_tree_cannot_run_during_the_walk() -> None:
    root = etree.fromstring(b"<r>" + b"<a/>" * 25 + b"</r>")  # more children than tuple free lists hold

    class Grow:
        def __init__(self) -> None:
            self.cycle = self

        def __del__(self) -> None:
            for _ in range(2000):
                etree.SubElement(root, "x")

    gc.disable()
    try:
        Grow()  # cyclic garbage with a finalizer, collected at the next allocation once enabled
        gc.set_threshold(gc.get_count()[0] + 1)
        gc.enable()
        node = flatten(root)
    finally:
        gc.set_threshold(*THRESHOLDS)
        gc.enable()
    gc.collect()
    assert len(node[3]) == 25
    assert len(root) == 2025  # the finalizer ran, after the walk


def test_the_shared_empty_attributes_are_read_only_and_cycles_through_attributes_are_collected() -> None:
    node = flatten(etree.fromstring(b"<r><c/></r>"))
    with pytest.raises(TypeError):
        node[3][0][2]["injected"] = "x"  # type: ignore[index]
    assert flatten(etree.fromstring(b"<other/>"))[2] == {}
    # A cycle through a node's attributes: node -> attrib -> probe -> node. The collector must see it.
    node = flatten(etree.fromstring(b'<r a="1"/>'))
    probe = Probe()
    probe.node = node
    node[2]["probe"] = probe  # type: ignore[index]
    watcher = weakref.ref(probe)
    del probe, node
    gc.collect()
    assert watcher() is None


class Probe:
    node: object = None


def test_a_walk_built_against_another_lxml_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # It reads lxml's own structures: after an lxml upgrade without a rebuild, Python walks instead.
    monkeypatch.setattr(etree, "__version__", "0.0.0")
    try:
        reloaded = importlib.reload(tree_module)
        assert not reloaded.COMPILED
        assert reloaded.flatten is reloaded.flatten_py
    finally:
        monkeypatch.undo()
        assert importlib.reload(tree_module).COMPILED

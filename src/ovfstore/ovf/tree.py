"""A parsed OVF as plain tuples: what the reader walks instead of lxml elements.

Asking lxml for an element from Python builds a proxy object on every access; a 2-disk VM has about 200
elements, and walking them that way cost the reader three times the parse itself. `flatten` turns the
whole tree into tuples in one pass, in C (`_tree.c`, built by `setup.py` against lxml's public C API),
and the reader then only unpacks tuples. `flatten_py` is the same walk in Python: the definition of the
result, the fallback where the extension was not built, and what the tests hold the C walk to.

    node = (tag, text, attrib, children)

- `tag`: the element's name as lxml spells `Element.tag`: `{namespace}local`, or `local` without one.
- `text`: `Element.text`: the text (and CDATA) before the first child node, or None.
- `attrib`: attribute name (spelled like tags) to value. Elements without attributes share one empty,
  read-only mapping.
- `children`: the child elements, in document order, as nodes. Comments, processing instructions and
  tail text are left out: the reader uses none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TypeAlias, cast

from lxml import etree

Node: TypeAlias = tuple[str, str | None, Mapping[str, str], tuple["Node", ...]]

_EMPTY: Mapping[str, str] = MappingProxyType({})


#: Deeper trees are refused (ValueError) rather than walked; the parser already stops at 256 levels.
MAX_DEPTH = 300


def flatten_py(element: etree._Element) -> Node:
    """`element` and its descendant elements as nodes, walked in Python (lxml's iterwalk, no recursion)."""
    stack: list[list[Node]] = [[]]
    for event, child in etree.iterwalk(element, events=("start", "end"), tag=etree.Element):
        if event == "start":
            if len(stack) > MAX_DEPTH + 1:
                raise ValueError(f"the tree nests elements more than {MAX_DEPTH} deep")
            stack.append([])
            continue
        children = tuple(stack.pop())
        attrib = child.attrib
        # lxml gives str names and values for a parsed document; the casts only tell the type checker.
        values = cast("dict[str, str]", dict(attrib)) if attrib else _EMPTY
        stack[-1].append((cast(str, child.tag), child.text, values, children))
    return stack[0][0]


flatten: Callable[[etree._Element], Node]
try:
    from ovfstore.ovf._tree import LXML_VERSION
    from ovfstore.ovf._tree import flatten as _flatten_c
except ImportError:  # built without a C compiler, or against an lxml whose C API differs
    COMPILED = False
    flatten = flatten_py
else:
    # Built against another lxml (upgraded since the install): its structures may differ; reinstall
    # ovfstore to rebuild. Until then the walk in Python gives the same result.
    COMPILED = etree.__version__ == LXML_VERSION
    flatten = _flatten_c if COMPILED else flatten_py

from collections.abc import Mapping

from lxml import etree

from ovfstore.ovf.tree import Node

EMPTY_ATTRIB: Mapping[str, str]
LXML_VERSION: str

def flatten(element: etree._Element, /) -> Node: ...

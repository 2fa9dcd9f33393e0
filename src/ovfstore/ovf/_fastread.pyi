from lxml import etree

from ovfstore.model import OvfData

def read_canonical(root: etree._Element, ovf_ns: str, /) -> tuple[OvfData, str] | None: ...

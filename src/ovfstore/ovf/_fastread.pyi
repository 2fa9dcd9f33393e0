from lxml import etree

from ovfstore.model import OvfData

LXML_VERSION: str

def read_canonical(root: etree._Element, ovf_ns: str, /) -> tuple[OvfData, str] | None: ...

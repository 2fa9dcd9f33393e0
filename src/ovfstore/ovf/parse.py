"""Hardened XML parsing of OVF bytes, and the lenient element names the reader walks with.

OVF documents arrive from storage that anyone with access to a domain may have written, so the parser
expands no entities, loads no DTD, reaches no network, and any document type declaration at all is
refused: an OVF has none, and refusing it is simpler to trust than any setting that tames one.
"""

from __future__ import annotations

import threading

from lxml import etree

from ovfstore.ovf.errors import OvfError
from ovfstore.ovf.tree import Node
from ovfstore.ovf.vocabulary import OVF_URI, OVF_URI_OLD, XSI_URI

#: The largest document read. oVirt's largest OVFs (hundreds of snapshots and disks) stay well below 1 MiB.
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
#: libxml2's own nesting limit without XML_PARSE_HUGE; an OVF nests about eight deep.
MAX_DEPTH = 256

_local = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parser objects must not be shared between threads.
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def parse(document: bytes) -> etree._Element:
    """The root `Envelope` of `document`, or `OvfError` saying why the bytes are not an OVF."""
    if len(document) > MAX_DOCUMENT_BYTES:
        raise OvfError(f"document is {len(document)} bytes, larger than the {MAX_DOCUMENT_BYTES} an OVF may be")
    # A single-byte search is memchr, much faster than the two substring searches it spares documents
    # without any "!" (oVirt's own), which would otherwise be a visible part of the parse (docs/PERFORMANCE.md).
    if b"!" in document and (b"<!DOCTYPE" in document or b"<!ENTITY" in document):
        raise OvfError("document has a DOCTYPE or entity declarations; an OVF has none and they are refused")
    try:
        root = etree.fromstring(document, _parser())
    except etree.XMLSyntaxError as e:
        if "Excessive depth" in str(e):
            raise OvfError(f"document nests elements more than {MAX_DEPTH} deep; an OVF is shallow") from None
        raise OvfError(f"not well-formed XML: {e}") from None
    # Declarations in an encoding the byte scan cannot see (UTF-16) are caught here, after a parse that
    # expanded and fetched nothing.
    if root.getroottree().docinfo.internalDTD is not None:
        raise OvfError("document has a DOCTYPE; an OVF has none and it is refused")
    if local_name(root.tag) != "Envelope":
        raise OvfError(f"root element is {local_name(root.tag)!r}, not an OVF Envelope")
    return root


def local_name(tag: object) -> str:
    if not isinstance(tag, str):
        return ""
    return tag[tag.find("}") + 1 :]


def ovf_namespace(root: etree._Element) -> str:
    """The envelope namespace the document uses for its `ovf:` attributes (either spelling)."""
    ns = root.nsmap.get("ovf")
    if ns in (OVF_URI, OVF_URI_OLD):
        return ns
    tag = root.tag
    if isinstance(tag, str) and tag.startswith("{"):
        return tag[1 : tag.find("}")]
    return OVF_URI


XSI_TYPE = f"{{{XSI_URI}}}type"


def section_kind(node: Node) -> str:
    """`DiskSection` for both `<Section xsi:type="ovf:DiskSection_Type">` and the DMTF `<DiskSection>`."""
    name = local_name(node[0])
    if name != "Section":
        return name
    kind = node[2].get(XSI_TYPE, "")
    kind = kind[kind.find(":") + 1 :]
    return kind.removesuffix("_Type")

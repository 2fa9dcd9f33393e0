# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The OVF reader's fast path: documents in the canonical dialect, read in compiled code.

`read_canonical(root, ovf_ns)` reads what ovfstore writes and what oVirt 4.x engines write: every value
where the dialect puts it, in the form the dialect spells it. It walks libxml2's nodes through lxml's
public C API (the `.pxd` files lxml ships for this) and compares names as C strings, so the only Python
objects it makes are the values and the model itself.

It is not a second reader. It makes no decision of its own: it follows `reader._Reader` step by step,
and wherever that reader would warn, assume, or accept a variant spelling, it gives up and returns
None, and `read_ovf` reads the document with `_Reader`. Anything it does return is what `_Reader`
returns for the same document, with no warnings: `tests/unit/test_ovf_fastread.py` holds the two to
that on every written document, on the oVirt samples, and on documents damaged at random.
"""

from cpython.object cimport PyObject_GenericSetAttr
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset, strcmp, strlen

cdef extern from "<string.h>":
    size_t strnlen(const char* text, size_t most)
from lxml.includes.etreepublic cimport _Element
from lxml.includes.tree cimport (
    XML_CDATA_SECTION_NODE,
    XML_ELEMENT_NODE,
    XML_ENTITY_REF_NODE,
    XML_TEXT_NODE,
    XML_XINCLUDE_END,
    XML_XINCLUDE_START,
    const_xmlChar,
    xmlAttr,
    xmlNode,
)

cimport lxml.includes.etreepublic as cetree


cdef extern from "lxml-version.h":
    const char* LXML_VERSION_STRING

#: The lxml this was built against: it reads lxml's and libxml2's structures, which only that version is
#: known to lay out so (ovfstore.ovf.reader refuses the module under another).
LXML_VERSION = LXML_VERSION_STRING.decode()

cetree.import_lxml__etree()

from datetime import UTC, datetime
from hashlib import sha1
from uuid import NAMESPACE_OID, UUID, SafeUUID

from ovfstore.model import (
    BLANK_TEMPLATE_ID,
    GIB,
    NULL_UUID,
    BiosType,
    Disk,
    DiskAttachment,
    DisplayType,
    Nic,
    OriginType,
    OvfData,
    OvfDisk,
    OvfNic,
    Permission,
    Snapshot,
    SnapshotType,
    Template,
    UsbPolicy,
    Vm,
    Volume,
)
from ovfstore.ovf.vocabulary import (
    BIOS_TYPE_BY_CODE,
    GENERAL_ELEMENTS,
    DISK_INTERFACE_BY_TEXT,
    DISPLAY_TYPE_BY_CODE,
    DISPLAY_TYPE_BY_VIDEO_DEVICE,
    GRAPHICS_BY_DEVICE,
    NIC_INTERFACE_BY_CODE,
    ORIGIN_BY_CODE,
    USB_POLICY_BY_TEXT,
    VOLUME_FORMAT_BY_TEXT,
    VOLUME_TYPE_BY_TEXT,
)

cdef const char* RASD = b"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
cdef const char* XSI = b"http://www.w3.org/2001/XMLSchema-instance"

# The hardware item children the reader uses; the last of each name counts, as in `_Reader`.
cdef enum Field:
    F_CAPTION, F_RESOURCE_TYPE, F_INSTANCE_ID, F_SOCKETS, F_CORES, F_THREADS, F_QUANTITY,
    F_HOST_RESOURCE, F_PARENT, F_POOL_ID, F_CREATION_DATE, F_NAME, F_MAC, F_CONNECTION, F_PROFILE,
    F_SUBTYPE, F_LINKED, F_USB_POLICY, F_DEVICE, F_TYPE, F_IS_PLUGGED, F_IS_READ_ONLY, F_COUNT

cdef const char* RASD_FIELDS[18]
RASD_FIELDS[:] = [
    b"Caption", b"ResourceType", b"InstanceId", b"num_of_sockets", b"cpu_per_socket",
    b"threads_per_cpu", b"VirtualQuantity", b"HostResource", b"Parent", b"StoragePoolId",
    b"CreationDate", b"Name", b"MACAddress", b"Connection", b"OtherResourceType",
    b"ResourceSubType", b"Linked", b"UsbPolicy",
]
cdef const char* PLAIN_FIELDS[4]
PLAIN_FIELDS[:] = [b"Device", b"Type", b"IsPlugged", b"IsReadOnly"]

cdef tuple GENERAL = tuple(sorted(GENERAL_ELEMENTS))

# GENERAL as an open-addressing table of C strings: the ~40 children of Content are matched in C and
# kept by their index in GENERAL, as nodes; their text becomes a Python string only when it is used.
cdef enum:
    GENERAL_SLOTS = 128
cdef const char* general_names[128]
cdef int general_index[128]
cdef list _general_bytes = [name.encode() for name in GENERAL]  # keeps the C strings alive


cdef inline uint32_t fnv1a(const char* name):
    cdef uint32_t h = 2166136261
    while name[0]:
        h = (h ^ <unsigned char>name[0]) * 16777619
        name += 1
    return h


cdef void _fill_general():
    cdef Py_ssize_t i
    cdef uint32_t slot
    for i in range(len(GENERAL)):
        slot = fnv1a(<const char*>_general_bytes[i]) % GENERAL_SLOTS
        while general_names[slot] != NULL:
            slot = (slot + 1) % GENERAL_SLOTS
        general_names[slot] = <const char*>_general_bytes[i]
        general_index[slot] = i


memset(general_names, 0, sizeof(general_names))
_fill_general()


cdef int general_of(const char* name):
    """The index in GENERAL of Content child `name`, or -1 if the reader does not use it."""
    cdef uint32_t slot = fnv1a(name) % GENERAL_SLOTS
    while general_names[slot] != NULL:
        if strcmp(general_names[slot], name) == 0:
            return general_index[slot]
        slot = (slot + 1) % GENERAL_SLOTS
    return -1


cdef int G_AUTO_STARTUP = GENERAL.index("AutoStartup")
cdef int G_BASE_TEMPLATE_ID = GENERAL.index("BaseTemplateId")
cdef int G_BASE_TEMPLATE_NAME = GENERAL.index("BaseTemplateName")
cdef int G_BIOS_TYPE = GENERAL.index("BiosType")
cdef int G_CLUSTER_VERSION = GENERAL.index("ClusterCompatibilityVersion")
cdef int G_CLUSTER_NAME = GENERAL.index("ClusterName")
cdef int G_COMMENT = GENERAL.index("Comment")
cdef int G_CREATION_DATE = GENERAL.index("CreationDate")
cdef int G_CUSTOM_CPU_NAME = GENERAL.index("CustomCpuName")
cdef int G_CUSTOM_MACHINE = GENERAL.index("CustomEmulatedMachine")
cdef int G_DEFAULT_DISPLAY_TYPE = GENERAL.index("DefaultDisplayType")
cdef int G_DELETE_PROTECTED = GENERAL.index("DeleteProtected")
cdef int G_DESCRIPTION = GENERAL.index("Description")
cdef int G_EXPORT_DATE = GENERAL.index("ExportDate")
cdef int G_GENERATION = GENERAL.index("Generation")
cdef int G_BOOT_MENU = GENERAL.index("IsBootMenuEnabled")
cdef int G_IS_DISABLED = GENERAL.index("IsDisabled")
cdef int G_IS_INITIALIZED = GENERAL.index("IsInitialized")
cdef int G_IS_INITILIZED = GENERAL.index("IsInitilized")
cdef int G_SMARTCARD = GENERAL.index("IsSmartcardEnabled")
cdef int G_STATELESS = GENERAL.index("IsStateless")
cdef int G_LEASE_DOMAIN = GENERAL.index("LeaseDomainId")
cdef int G_MAX_MEMORY = GENERAL.index("MaxMemorySizeMb")
cdef int G_MIN_MEMORY = GENERAL.index("MinAllocatedMem")
cdef int G_NAME = GENERAL.index("Name")
cdef int G_ORIGIN = GENERAL.index("Origin")
cdef int G_PRIORITY = GENERAL.index("Priority")
cdef int G_TEMPLATE_ID = GENERAL.index("TemplateId")
cdef int G_TEMPLATE_NAME = GENERAL.index("TemplateName")
cdef int G_TEMPLATE_SEALED = GENERAL.index("TemplateSealed")
cdef int G_TEMPLATE_TYPE = GENERAL.index("TemplateType")
cdef int G_VERSION_NAME = GENERAL.index("TemplateVersionName")
cdef int G_VERSION_NUMBER = GENERAL.index("TemplateVersionNumber")
cdef int G_TIME_ZONE = GENERAL.index("TimeZone")
cdef int G_USE_LATEST = GENERAL.index("UseLatestVersion")
cdef int G_VM_TYPE = GENERAL.index("VmType")
cdef int G_BOOT_SEQUENCE = GENERAL.index("default_boot_sequence")
cdef int G_DISPLAY_TYPE = GENERAL.index("default_display_type")

cdef dict BOOT = None
cdef dict VM_TYPES = None
cdef str NULL_TEXT = str(NULL_UUID)

# The sections of Content the reader uses, by their kind (reader.section_kind).
cdef enum:
    S_OS, S_HARDWARE, S_SNAPSHOTS, S_USERS, S_AFFINITY_GROUPS, S_AFFINITY_LABELS
cdef dict SECTIONS = {
    "OperatingSystemSection": S_OS,
    "VirtualHardwareSection": S_HARDWARE,
    "SnapshotsSection": S_SNAPSHOTS,
    "UserDomainsSection": S_USERS,
    "AffinityGroupsSection": S_AFFINITY_GROUPS,
    "AffinityLabelsSection": S_AFFINITY_LABELS,
}
cdef object UNKNOWN_SAFETY = SafeUUID.unknown
cdef bytes OID_BYTES = NAMESPACE_OID.bytes
cdef dict SNAPSHOT_TYPES = {t.value: t for t in SnapshotType}
cdef str INT = "int"
cdef str IS_SAFE = "is_safe"


cdef inline int hex_value(char c):
    if b"0" <= c <= b"9":
        return c - 48
    if b"a" <= c <= b"f":
        return c - 87
    if b"A" <= c <= b"F":
        return c - 55
    return -1


cdef object make_uuid(object number):
    """What `UUID(int=number)` builds, without its argument checks (UUID forbids setattr)."""
    value = UUID.__new__(UUID)
    PyObject_GenericSetAttr(value, INT, number)
    PyObject_GenericSetAttr(value, IS_SAFE, UNKNOWN_SAFETY)
    return value


cdef object uuid5_of(str name):
    """uuid.uuid5(NAMESPACE_OID, name)."""
    number = int.from_bytes(sha1(OID_BYTES + name.encode()).digest()[:16], "big")
    number &= ~(0xC000 << 48)
    number |= 0x8000 << 48
    number &= ~(0xF000 << 64)
    number |= 5 << 76
    return make_uuid(number)


def _tables():
    global BOOT, VM_TYPES
    from ovfstore.model import BootSequence, VmType
    BOOT = {int(b): b for b in BootSequence}
    VM_TYPES = {int(t): t for t in VmType}


_tables()


class _GiveUp(Exception):
    """The document leaves the canonical dialect here: `_Reader` reads it instead."""


# --- nodes ------------------------------------------------------------------------------------------


cdef inline bint named(xmlNode* node, const char* href, const char* name):
    """`node` is an element called `name` in namespace `href` (NULL: in none)."""
    if node.type != XML_ELEMENT_NODE or strcmp(<const char*>node.name, name) != 0:
        return False
    if href == NULL:
        return node.ns == NULL
    return node.ns != NULL and node.ns.href != NULL and strcmp(<const char*>node.ns.href, href) == 0


cdef inline str utf8(const_xmlChar* text):
    return (<const char*>text)[:strlen(<const char*>text)].decode("utf-8")


cdef xmlAttr* find_attribute(xmlNode* node, const char* href, const char* name):
    """Attribute `name` in namespace `href` (NULL: in none) of `node`, or NULL."""
    cdef xmlAttr* attr = node.properties
    while attr != NULL:
        if attr.name[0] == name[0] and strcmp(<const char*>attr.name, name) == 0 and (
            (href == NULL and attr.ns == NULL)
            or (
                href != NULL and attr.ns != NULL and attr.ns.href != NULL
                and strcmp(<const char*>attr.ns.href, href) == 0
            )
        ):
            return attr
        attr = attr.next
    return NULL


cdef str local_kind(xmlNode* node):
    """reader.section_kind: the local name, or for `Section` the kind its xsi:type names."""
    if strcmp(<const char*>node.name, b"Section") != 0:
        return utf8(node.name)
    kind = attribute(node, XSI, b"type") or ""
    kind = kind[kind.find(":") + 1 :]
    return kind.removesuffix("_Type")


# Values read straight from libxml2's text, without a Python string when none is needed: NULL when
# there is no value, `EMPTY` for an empty attribute, and a give-up for text in several pieces (CDATA).
cdef const char* EMPTY = b""


cdef inline bint is_text(xmlNode* node):
    return node.type == XML_TEXT_NODE or node.type == XML_CDATA_SECTION_NODE


cdef inline bint is_marker(xmlNode* node):
    """A node lxml looks past or stops at inside text; never in a parsed OVF (no XInclude, no DTD)."""
    return node.type == XML_XINCLUDE_START or node.type == XML_XINCLUDE_END or node.type == XML_ENTITY_REF_NODE


cdef const char* raw_text(xmlNode* node) except? NULL:
    """lxml's `Element.text` (or an attribute's value) when it is one text node; else give up."""
    cdef xmlNode* child = node.children
    if child == NULL:
        return NULL
    if is_marker(child) or (child.next != NULL and (is_text(child.next) or is_marker(child.next))):
        raise _GiveUp
    if not is_text(child):
        return NULL
    return <const char*>child.content


cdef const char* raw_attribute(xmlNode* node, const char* href, const char* name) except? NULL:
    cdef xmlAttr* attr = find_attribute(node, href, name)
    if attr == NULL:
        return NULL
    cdef const char* value = raw_text(<xmlNode*>attr)
    return value if value != NULL else EMPTY


cdef inline object c_str(const char* text):
    return None if text == NULL else utf8(<const_xmlChar*>text)


cdef object text_of(xmlNode* node):
    """lxml's `Element.text` as a string, or None."""
    return c_str(raw_text(node))


cdef object attribute(xmlNode* node, const char* href, const char* name):
    """The value of attribute `name` in namespace `href` (NULL: in none), or None if absent."""
    return c_str(raw_attribute(node, href, name))


cdef inline bint c_empty(const char* text):
    return text == NULL or text[0] == 0


cdef object c_bool(const char* text, object default):
    """reader._Reader.bool_ on `text`: the default when there is none."""
    if c_empty(text):
        return default
    if strcmp(text, b"true") == 0 or strcmp(text, b"True") == 0:
        return True
    if strcmp(text, b"false") == 0 or strcmp(text, b"False") == 0:
        return False
    raise _GiveUp


cdef object c_int(const char* text, object default, bint required=False):
    """reader._Reader.int_ on `text`: the default when there is none (giving up if `required`)."""
    if c_empty(text):
        if required:
            raise _GiveUp
        return default
    cdef bint negative = text[0] == b"-"
    cdef const char* digit = text + 1 if negative else text
    cdef long long value = 0
    cdef int count = 0
    while digit[0]:
        if not b"0" <= digit[0] <= b"9" or count == 18:
            raise _GiveUp
        value = value * 10 + (digit[0] - 48)
        digit += 1
        count += 1
    if count == 0:
        raise _GiveUp
    return -value if negative else value


cdef struct Item:
    xmlNode* fields[22]  # F_COUNT


cdef inline int is_field(const char* name, int field, const char** names, int base):
    return field if strcmp(name, names[field - base]) == 0 else -1


cdef int rasd_field(const char* name):
    """The `Field` of rasd element `name`, or -1; by first letter, since an item has ~15 children."""
    cdef char c = name[0]
    cdef int found
    if c == b"C":
        found = is_field(name, F_CAPTION, RASD_FIELDS, 0)
        if found < 0:
            found = is_field(name, F_CREATION_DATE, RASD_FIELDS, 0)
        if found < 0:
            found = is_field(name, F_CONNECTION, RASD_FIELDS, 0)
        return found
    if c == b"R":
        found = is_field(name, F_RESOURCE_TYPE, RASD_FIELDS, 0)
        return found if found >= 0 else is_field(name, F_SUBTYPE, RASD_FIELDS, 0)
    if c == b"I":
        return is_field(name, F_INSTANCE_ID, RASD_FIELDS, 0)
    if c == b"n":
        return is_field(name, F_SOCKETS, RASD_FIELDS, 0)
    if c == b"c":
        return is_field(name, F_CORES, RASD_FIELDS, 0)
    if c == b"t":
        return is_field(name, F_THREADS, RASD_FIELDS, 0)
    if c == b"V":
        return is_field(name, F_QUANTITY, RASD_FIELDS, 0)
    if c == b"H":
        return is_field(name, F_HOST_RESOURCE, RASD_FIELDS, 0)
    if c == b"P":
        return is_field(name, F_PARENT, RASD_FIELDS, 0)
    if c == b"S":
        return is_field(name, F_POOL_ID, RASD_FIELDS, 0)
    if c == b"N":
        return is_field(name, F_NAME, RASD_FIELDS, 0)
    if c == b"M":
        return is_field(name, F_MAC, RASD_FIELDS, 0)
    if c == b"O":
        return is_field(name, F_PROFILE, RASD_FIELDS, 0)
    if c == b"L":
        return is_field(name, F_LINKED, RASD_FIELDS, 0)
    if c == b"U":
        return is_field(name, F_USB_POLICY, RASD_FIELDS, 0)
    return -1


cdef int plain_field(const char* name):
    cdef char c = name[0]
    cdef int found
    if c == b"D":
        return is_field(name, F_DEVICE, PLAIN_FIELDS, F_DEVICE)
    if c == b"T":
        return is_field(name, F_TYPE, PLAIN_FIELDS, F_DEVICE)
    if c == b"I":
        found = is_field(name, F_IS_PLUGGED, PLAIN_FIELDS, F_DEVICE)
        return found if found >= 0 else is_field(name, F_IS_READ_ONLY, PLAIN_FIELDS, F_DEVICE)
    return -1


cdef void item_fields(xmlNode* item, Item* out):
    cdef xmlNode* child = item.children
    cdef int found
    memset(out, 0, sizeof(Item))
    while child != NULL:
        if child.type == XML_ELEMENT_NODE:
            if child.ns == NULL:
                found = plain_field(<const char*>child.name)
            elif child.ns.href != NULL and strcmp(<const char*>child.ns.href, RASD) == 0:
                found = rasd_field(<const char*>child.name)
            else:
                found = -1
            if found >= 0:
                out.fields[found] = child
        child = child.next


cdef inline object field(Item* item, int which):
    """The text of field `which` (None if the item has no such child or it is empty of text)."""
    node = item.fields[which]
    return None if node == NULL else text_of(node)


cdef inline const char* raw_field(Item* item, int which) except? NULL:
    cdef xmlNode* node = item.fields[which]
    if node == NULL:
        return NULL
    return raw_text(node)


# --- values -----------------------------------------------------------------------------------------


cdef enum:
    CACHED = 16  # distinct ids (or dates) kept per document; a 2-disk VM has about 12


cdef int digits(const char* text, int start, int count):
    cdef int value = 0
    cdef int i
    for i in range(start, start + count):
        if not b"0" <= text[i] <= b"9":
            return -1
        value = value * 10 + (text[i] - 48)
    return value


cdef class _Values:
    """Strict value readers: each gives up where `_Reader` would warn or accept a variant spelling.

    Ids and dates recur through a document (a volume id up to six times); each is made once."""

    cdef char uuid_text[16][36]
    cdef list uuids
    cdef char date_text[16][20]
    cdef list dates

    def __cinit__(self):
        self.uuids = []
        self.dates = []

    cdef object uuid(self, str text):
        """The UUID of `text` in the 8-4-4-4-12 form (what UUID(text) gives); other spellings give up."""
        return self.c_uuid(text.encode("utf-8"))

    cdef object c_uuid(self, const char* text):
        if strnlen(text, 37) != 36:
            raise _GiveUp
        cdef Py_ssize_t n = len(self.uuids)
        cdef int i
        for i in range(n):  # the same spelling seen before: the same object, as _Reader caches by text
            if memcmp(self.uuid_text[i], text, 36) == 0:
                return self.uuids[i]
        cdef uint64_t high = 0, low = 0
        cdef int digit, count = 0
        for i in range(36):
            if text[i] == 0:
                raise _GiveUp
            if i == 8 or i == 13 or i == 18 or i == 23:
                if text[i] != b"-":
                    raise _GiveUp
                continue
            digit = hex_value(text[i])
            if digit < 0:
                raise _GiveUp
            if count < 16:
                high = (high << 4) | digit
            else:
                low = (low << 4) | digit
            count += 1
        if text[36] != 0:
            raise _GiveUp
        value = make_uuid((<object>high << 64) | <object>low)
        if n < CACHED:
            memcpy(self.uuid_text[n], text, 36)
            self.uuids.append(value)
        return value

    cdef object date(self, str text):
        return self.c_date(text.encode("utf-8"))

    cdef object c_date(self, const char* text):
        """parse_date of `text`, strictly `yyyy/MM/dd HH:mm:ss` (or with dots): else give up."""
        if strlen(text) != 19 or (text[4] != b"/" and text[4] != b".") or text[7] != text[4]:
            raise _GiveUp
        if text[10] != b" " or text[13] != b":" or text[16] != b":":
            raise _GiveUp
        cdef Py_ssize_t n = len(self.dates)
        cdef int i
        for i in range(n):
            if memcmp(self.date_text[i], text, 19) == 0:
                return self.dates[i]
        year, month, day = digits(text, 0, 4), digits(text, 5, 2), digits(text, 8, 2)
        hour, minute, second = digits(text, 11, 2), digits(text, 14, 2), digits(text, 17, 2)
        if min(year, month, day, hour, minute, second) < 0:
            raise _GiveUp
        try:
            value = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            raise _GiveUp from None
        if n < CACHED:
            memcpy(self.date_text[n], text, 19)
            self.dates.append(value)
        return value


cdef object c_lookup(dict table, const char* text, object default):
    """reader._Reader.lookup: the default when there is no text."""
    if c_empty(text):
        return default
    value = table.get(c_int(text, None))
    if value is None:
        raise _GiveUp
    return value


# --- the document -----------------------------------------------------------------------------------


cdef class _Vol:
    cdef public object id
    cdef public object disk_id
    cdef xmlNode* file
    cdef xmlNode* disk
    cdef Item item
    cdef bint has_item
    cdef list storage_ids


cdef class _Read:
    cdef _Values v
    cdef bytes ovf_ns
    cdef const char* a  # the envelope namespace of ovf: attributes
    cdef dict vols  # volume id -> _Vol, in document order
    cdef dict disk_order  # disk ids in the order the document names them
    cdef bint has_video
    cdef str entity_text  # str(entity id), from the text it was read from
    cdef xmlNode* general[40]  # the last Content child of each GENERAL name, or NULL

    def __cinit__(self, str ovf_ns):
        memset(self.general, 0, sizeof(self.general))
        self.v = _Values()
        self.ovf_ns = ovf_ns.encode()
        self.a = self.ovf_ns
        self.vols = {}
        self.disk_order = {}

    cdef object split_ref(self, const char* ref):
        """`(disk id, volume id)` of `<disk>/<volume>`; None when there is no reference."""
        if c_empty(ref):
            return None
        if strlen(ref) != 73 or ref[36] != b"/":
            raise _GiveUp
        cdef char disk[37]
        memcpy(disk, ref, 36)
        disk[36] = 0
        return self.v.c_uuid(disk), self.v.c_uuid(ref + 37)

    cdef _Vol place(self, object ref):
        # Keyed by the ids' numbers: UUID's own __hash__ and __eq__ are Python code.
        if ref is None:
            raise _GiveUp
        disk_id, volume_id = ref
        disk_key = disk_id.int
        cdef _Vol vol = self.vols.get(volume_id.int)
        if vol is None:
            vol = _Vol()
            vol.id = volume_id
            vol.disk_id = disk_id
            vol.storage_ids = []
            self.vols[volume_id.int] = vol
            if disk_key not in self.disk_order:
                self.disk_order[disk_key] = disk_id
        elif vol.disk_id.int != disk_key:
            raise _GiveUp
        return vol

    cdef const char* g(self, int which) except? NULL:
        """What `g.get(name)` gives in _Reader: NULL when absent, EMPTY when it has no text."""
        cdef xmlNode* node = self.general[which]
        if node == NULL:
            return NULL
        cdef const char* text = raw_text(node)
        return text if text != NULL else EMPTY

    cdef inline str g_str(self, int which):
        """`g.get(name, "")`."""
        return c_str(self.g(which)) or ""

    cdef read(self, xmlNode* envelope):
        cdef xmlNode* references = NULL
        cdef xmlNode* disk_section = NULL
        cdef xmlNode* content = NULL
        cdef xmlNode* child = envelope.children
        while child != NULL:
            if child.type == XML_ELEMENT_NODE:
                kind = local_kind(child)
                if kind == "References":
                    references = child
                elif kind == "DiskSection":
                    disk_section = child
                elif kind == "Content" or kind == "VirtualSystem":
                    content = child
            child = child.next
        if content == NULL:
            raise _GiveUp
        cdef int index
        cdef xmlNode* sections[6]  # by SECTIONS, the first of each kind (as _Reader's setdefault)
        memset(sections, 0, sizeof(sections))
        child = content.children
        while child != NULL:
            if child.type == XML_ELEMENT_NODE:
                if child.ns == NULL and strcmp(<const char*>child.name, b"Section") == 0:
                    index = SECTIONS.get(local_kind(child), -1)
                    if index >= 0 and sections[index] == NULL:
                        sections[index] = child
                else:
                    index = general_of(<const char*>child.name) if child.ns == NULL else -1
                    if index >= 0:
                        self.general[index] = child
                    elif utf8(child.name).endswith("Section"):
                        raise _GiveUp  # the plain DMTF section forms
            child = child.next
        if sections[S_OS] == NULL or sections[S_HARDWARE] == NULL:
            raise _GiveUp
        entity_id, os_type = self.os_section(sections[S_OS])
        entity = self.entity(entity_id, os_type)
        data = OvfData(entity=entity)
        version = attribute(envelope, self.a, b"version") or ""
        self.hardware(data, sections[S_HARDWARE], references, disk_section, version)
        self.read_general(data)
        if sections[S_SNAPSHOTS] != NULL:
            data.snapshots = self.snapshots(sections[S_SNAPSHOTS], entity)
        if sections[S_USERS] != NULL:
            data.permissions = self.permissions(sections[S_USERS], entity_id)
        if sections[S_AFFINITY_GROUPS] != NULL:
            data.affinity_groups += self.names(sections[S_AFFINITY_GROUPS])
        if sections[S_AFFINITY_LABELS] != NULL:
            data.affinity_labels += self.names(sections[S_AFFINITY_LABELS])
        return data, version

    cdef tuple os_section(self, xmlNode* section):
        raw = attribute(section, self.a, b"id") or attribute(section, NULL, b"id")
        if not raw:
            raise _GiveUp
        entity_id = self.v.uuid(raw)
        self.entity_text = raw.lower()  # what str(UUID) gives for the one spelling uuid() takes
        os_type = None
        cdef xmlNode* child = section.children
        while child != NULL:
            if child.type == XML_ELEMENT_NODE and strcmp(<const char*>child.name, b"Description") == 0:
                os_type = text_of(child) or ""
            child = child.next
        if os_type is None:
            raise _GiveUp
        return entity_id, os_type

    cdef object entity(self, object entity_id, str os_type):
        template_id = self.g_str(G_TEMPLATE_ID)
        is_template = self.general[G_TEMPLATE_TYPE] != NULL or template_id == self.entity_text
        name = c_str(self.g(G_NAME))
        creation = self.g(G_CREATION_DATE)
        if name is None or creation == NULL:
            raise _GiveUp
        created = self.v.c_date(creation)
        if is_template:
            base_text = self.g(G_BASE_TEMPLATE_ID)
            base = None if c_empty(base_text) else self.v.c_uuid(base_text)
            return Template(
                id=entity_id,
                name=name,
                os_type=os_type,
                creation_date=created,
                base_template_id=None if base == entity_id else base,
                version_number=c_int(self.g(G_VERSION_NUMBER), 1),
                version_name=self.g_str(G_VERSION_NAME),
                disabled=c_bool(self.g(G_IS_DISABLED), False),
                sealed=c_bool(self.g(G_TEMPLATE_SEALED), False),
            )
        if not template_id:
            raise _GiveUp
        initialized = self.g(G_IS_INITILIZED if self.general[G_IS_INITILIZED] != NULL else G_IS_INITIALIZED)
        return Vm(
            id=entity_id,
            name=name,
            os_type=os_type,
            creation_date=created,
            template_id=self.v.uuid(template_id),
            use_latest_template_version=c_bool(self.g(G_USE_LATEST), False),
            initialized=c_bool(initialized, False),
        )

    cdef read_general(self, object data):
        e = data.entity
        e.description = self.g_str(G_DESCRIPTION)
        e.comment = self.g_str(G_COMMENT)
        e.time_zone = self.g_str(G_TIME_ZONE)
        e.custom_emulated_machine = self.g_str(G_CUSTOM_MACHINE)
        e.custom_cpu_name = self.g_str(G_CUSTOM_CPU_NAME)
        e.delete_protected = c_bool(self.g(G_DELETE_PROTECTED), False)
        e.smartcard_enabled = c_bool(self.g(G_SMARTCARD), False)
        e.stateless = c_bool(self.g(G_STATELESS), False)
        e.high_availability = c_bool(self.g(G_AUTO_STARTUP), False)
        e.boot_menu_enabled = c_bool(self.g(G_BOOT_MENU), False)
        e.db_generation = c_int(self.g(G_GENERATION), 1, required=True)
        e.min_memory_mb = c_int(self.g(G_MIN_MEMORY), e.memory_mb)
        e.max_memory_mb = c_int(self.g(G_MAX_MEMORY), 4 * e.memory_mb)
        e.priority = c_int(self.g(G_PRIORITY), e.priority)
        e.boot_sequence = c_lookup(BOOT, self.g(G_BOOT_SEQUENCE), e.boot_sequence)
        e.vm_type = c_lookup(VM_TYPES, self.g(G_VM_TYPE), e.vm_type)
        e.origin = c_lookup(ORIGIN_BY_CODE, self.g(G_ORIGIN), OriginType.OVIRT)
        bios = self.g(G_BIOS_TYPE)
        if bios == NULL:
            raise _GiveUp
        e.bios_type = c_lookup(BIOS_TYPE_BY_CODE, bios, BiosType.I440FX_SEA_BIOS)
        display = self.g(G_DEFAULT_DISPLAY_TYPE if self.general[G_DEFAULT_DISPLAY_TYPE] != NULL else G_DISPLAY_TYPE)
        if not c_empty(display):
            e.display_type = c_lookup(DISPLAY_TYPE_BY_CODE, display, e.display_type)
        elif not self.has_video:  # _Reader warns
            raise _GiveUp
        lease = self.g(G_LEASE_DOMAIN)
        if not c_empty(lease):
            e.lease_domain_id = self.v.c_uuid(lease)
        cluster = self.g(G_CLUSTER_NAME)
        if cluster == NULL:
            raise _GiveUp
        data.cluster_name = c_str(cluster)
        data.cluster_compatibility_version = self.g_str(G_CLUSTER_VERSION)
        exported = self.g(G_EXPORT_DATE)
        if not c_empty(exported):
            data.export_date = self.v.c_date(exported)
        if isinstance(e, Vm):
            name = self.g(G_TEMPLATE_NAME)
            if name == NULL:
                raise _GiveUp
            data.template_name = c_str(name)
        else:
            data.template_name = ""
            data.base_template_name = self.g_str(G_BASE_TEMPLATE_NAME)

    cdef volume_descriptions(self, xmlNode* references, xmlNode* disk_section):
        cdef xmlNode* child
        cdef _Vol vol
        if references != NULL:
            child = references.children
            while child != NULL:
                if named(child, NULL, b"File"):
                    storage_type = raw_attribute(child, self.a, b"disk_storage_type")
                    if storage_type != NULL and strcmp(storage_type, b"LUN") == 0:
                        raise _GiveUp  # direct LUNs
                    vol = self.place(self.split_ref(raw_attribute(child, self.a, b"href")))
                    vol.file = child
                child = child.next
        if disk_section != NULL:
            child = disk_section.children
            while child != NULL:
                if named(child, NULL, b"Disk"):
                    if raw_attribute(child, self.a, b"lun_id") != NULL:
                        raise _GiveUp  # direct LUNs
                    vol = self.place(self.split_ref(raw_attribute(child, self.a, b"fileRef")))
                    vol.disk = child
                child = child.next

    cdef hardware(self, object data, xmlNode* section, xmlNode* references, xmlNode* disk_section, str version):
        e = data.entity
        self.volume_descriptions(references, disk_section)
        cdef Item item, cpu, memory, usb
        cdef bint has_cpu = False, has_memory = False, has_usb = False
        memset(&cpu, 0, sizeof(Item))
        memset(&memory, 0, sizeof(Item))
        memset(&usb, 0, sizeof(Item))
        cdef list nics = []
        cdef list graphics = []
        cdef bint sound = False
        cdef _Vol vol
        video = None
        cdef xmlNode* child = section.children
        cdef xmlNode* grandchild
        while child != NULL:
            if named(child, NULL, b"Item"):
                item_fields(child, &item)
                kind = raw_field(&item, F_RESOURCE_TYPE)
                if kind == NULL:
                    kind = EMPTY
                if strcmp(kind, b"17") == 0:
                    vol = self.place(self.split_ref(raw_field(&item, F_HOST_RESOURCE)))
                    vol.item = item
                    vol.has_item = True
                    vol.storage_ids = []
                    grandchild = child.children
                    while grandchild != NULL:
                        if named(grandchild, RASD, b"StorageId"):
                            text = text_of(grandchild)
                            if text:
                                vol.storage_ids.append(text)
                        grandchild = grandchild.next
                elif strcmp(kind, b"10") == 0:
                    nics.append(self.nic(e, &item))
                elif strcmp(kind, b"3") == 0:
                    cpu = item
                    has_cpu = True
                elif strcmp(kind, b"4") == 0:
                    memory = item
                    has_memory = True
                elif strcmp(kind, b"23") == 0:
                    usb = item
                    has_usb = True
                elif strcmp(kind, b"20") == 0 or strcmp(kind, b"32768") == 0:
                    video = field(&item, F_DEVICE) or ""
                elif strcmp(kind, b"26") == 0 or strcmp(kind, b"24") == 0:
                    device = (field(&item, F_DEVICE) or "").lower()
                    found = GRAPHICS_BY_DEVICE.get(device)
                    if found is None:
                        raise _GiveUp
                    graphics.append(found)
                else:
                    sort = raw_field(&item, F_TYPE)
                    if sort != NULL and strcmp(sort, b"sound") == 0:
                        sound = True
            child = child.next
        if not has_cpu or not has_memory:
            raise _GiveUp
        sockets = raw_field(&cpu, F_SOCKETS)
        if c_empty(sockets):
            sockets = raw_field(&cpu, F_QUANTITY)
        e.cpu_sockets = c_int(sockets, 1, required=True)
        e.cpu_cores = c_int(raw_field(&cpu, F_CORES), 1)
        e.cpu_threads = c_int(raw_field(&cpu, F_THREADS), 1)
        e.memory_mb = c_int(raw_field(&memory, F_QUANTITY), e.memory_mb, required=True)
        if has_usb:
            policy = field(&usb, F_USB_POLICY)
            if policy:
                e.usb_policy = USB_POLICY_BY_TEXT.get(policy.lower(), UsbPolicy.DISABLED)
        self.has_video = video is not None
        if video is not None:
            e.display_type = DISPLAY_TYPE_BY_VIDEO_DEVICE.get(video.lower(), e.display_type)
        else:
            e.display_type = DisplayType.NONE
        if not graphics and video:
            major = version.partition(".")[0]
            if not (major.isascii() and major.isdigit()) or int(major) < 4:
                raise _GiveUp  # _Reader derives a graphics device and warns
        e.graphics = graphics
        e.soundcard_enabled = sound
        data.disks = self.disks(e)
        data.nics = nics
        pools = set()
        for vol in self.vols.values():
            if vol.has_item:
                pools.add(field(&vol.item, F_POOL_ID))
        pools -= {None, "", NULL_TEXT}
        if pools:
            if len(pools) > 1:
                raise _GiveUp
            data.data_center_id = self.v.uuid(pools.pop())

    cdef list disks(self, object entity):
        cdef dict by_disk = {}
        cdef _Vol vol
        for vol in self.vols.values():
            by_disk.setdefault(vol.disk_id.int, []).append(vol)
        return [self.image_disk(entity, disk_id, by_disk[key]) for key, disk_id in self.disk_order.items()]

    cdef object disk_common(self, object disk, object entity_id, xmlNode* element):
        cdef const char* a = self.a
        attachment = DiskAttachment(entity_id=entity_id, disk_id=disk.id)
        disk.alias = c_str(raw_attribute(element, a, b"disk-alias")) or ""
        disk.description = c_str(raw_attribute(element, a, b"disk-description")) or ""
        disk.shareable = c_bool(raw_attribute(element, a, b"shareable"), False)
        disk.wipe_after_delete = c_bool(raw_attribute(element, a, b"wipe-after-delete"), False)
        interface = c_str(raw_attribute(element, a, b"disk-interface"))
        if interface is None:
            raise _GiveUp
        found = DISK_INTERFACE_BY_TEXT.get(interface.lower())
        if found is None:
            raise _GiveUp
        attachment.interface = found
        attachment.bootable = c_bool(raw_attribute(element, a, b"boot"), False)
        attachment.read_only = c_bool(raw_attribute(element, a, b"read-only"), False)
        attachment.pass_discard = c_bool(raw_attribute(element, a, b"pass-discard"), False)
        attachment.active = c_bool(raw_attribute(element, a, b"plugged"), True)
        return attachment

    cdef object image_disk(self, object entity, object disk_id, list chain):
        cdef _Vol vol
        cdef xmlNode* described = NULL
        disk = Disk(id=disk_id, alias="", provisioned_size=0, creation_date=entity.creation_date)
        for vol in chain:
            if vol.disk != NULL:
                described = vol.disk
        if described == NULL:
            raise _GiveUp
        attachment = self.disk_common(disk, entity.id, described)
        volumes = disk.volumes
        domain_ids = disk.domain_ids
        for vol in chain:
            volumes.append(self.volume(entity, disk_id, vol))
            if vol.has_item:
                attachment.active = c_bool(raw_field(&vol.item, F_IS_PLUGGED), attachment.active)
                if vol.disk == NULL or raw_attribute(vol.disk, self.a, b"read-only") == NULL:
                    attachment.read_only = c_bool(raw_field(&vol.item, F_IS_READ_ONLY), False)
                for domain in vol.storage_ids:
                    domain_id = self.v.uuid(domain)
                    if domain_id not in domain_ids:
                        domain_ids.append(domain_id)
        if not domain_ids:
            raise _GiveUp
        if not disk.alias:
            for vol in chain:
                if vol.has_item:
                    disk.alias = field(&vol.item, F_CAPTION) or ""
                    break
        ordered = volumes if len(volumes) == 1 else (disk.chain() or volumes)
        disk.provisioned_size = ordered[len(ordered) - 1].capacity
        disk.creation_date = ordered[0].creation_date
        return OvfDisk(disk=disk, attachment=attachment)

    cdef object volume(self, object entity, object disk_id, _Vol vol):
        cdef const char* a = self.a
        cdef xmlNode* element = vol.disk
        if element == NULL:
            raise _GiveUp
        volume = Volume(id=vol.id, disk_id=disk_id, capacity=0, creation_date=entity.creation_date)
        fmt = VOLUME_FORMAT_BY_TEXT.get((c_str(raw_attribute(element, a, b"volume-format")) or "").lower())
        vtype = VOLUME_TYPE_BY_TEXT.get((c_str(raw_attribute(element, a, b"volume-type")) or "").lower())
        if fmt is None or vtype is None:
            raise _GiveUp
        volume.format = fmt
        volume.volume_type = vtype
        capacity = raw_attribute(element, a, b"capacity")
        if not c_empty(capacity):
            volume.capacity = c_int(capacity, 0)
        else:
            volume.capacity = c_int(raw_attribute(element, a, b"size"), 0, required=True) * GIB
        snapshot = raw_attribute(element, a, b"vm_snapshot_id")
        volume.snapshot_id = None if c_empty(snapshot) else self.v.c_uuid(snapshot)
        parent = self.split_ref(raw_attribute(element, a, b"parentRef"))
        volume.parent_id = parent[1] if parent else None
        size = raw_attribute(vol.file, a, b"size") if vol.file != NULL else NULL
        if not c_empty(size):
            volume.actual_size = c_int(size, 0)
        else:
            volume.actual_size = c_int(raw_attribute(element, a, b"actual_size"), 0) * GIB
        if vol.has_item:
            parent_text = raw_field(&vol.item, F_PARENT)
            if not c_empty(parent_text):
                parent_id = self.v.c_uuid(parent_text)
                volume.parent_id = None if parent_id == NULL_UUID else parent_id
            created = raw_field(&vol.item, F_CREATION_DATE)
            if not c_empty(created):
                volume.creation_date = self.v.c_date(created)
        return volume

    cdef object nic(self, object entity, Item* item):
        instance = raw_field(item, F_INSTANCE_ID)
        if c_empty(instance) or item.fields[<int>F_NAME] == NULL:
            raise _GiveUp  # numbered NICs of old engines, and unnamed ones
        name = field(item, F_NAME) or ""
        subtype = raw_field(item, F_SUBTYPE)
        if c_empty(subtype) or subtype[0] == b"-":  # _Reader takes digits only here ("-0" is no code)
            raise _GiveUp
        interface = NIC_INTERFACE_BY_CODE.get(c_int(subtype, None))
        if interface is None:
            raise _GiveUp
        mac = field(item, F_MAC) or None
        if mac is None and isinstance(entity, Vm):
            raise _GiveUp
        nic = Nic(
            id=self.v.c_uuid(instance),
            entity_id=entity.id,
            name=name,
            mac=mac,
            interface=interface,
            linked=c_bool(raw_field(item, F_LINKED), True),
            plugged=c_bool(raw_field(item, F_IS_PLUGGED), True),
        )
        return OvfNic(nic=nic, network_name=field(item, F_CONNECTION) or None, profile_name=field(item, F_PROFILE) or None)

    cdef list snapshots(self, xmlNode* section, object entity):
        cdef list snapshots = []
        cdef xmlNode* element = section.children
        cdef xmlNode* child
        while element != NULL:
            if element.type == XML_ELEMENT_NODE and strcmp(<const char*>element.name, b"Snapshot") == 0:
                raw = attribute(element, self.a, b"id")
                if raw is None:
                    raise _GiveUp
                snapshot_id = self.v.uuid(raw)
                f = {}
                child = element.children
                while child != NULL:
                    if child.type == XML_ELEMENT_NODE:
                        f[utf8(child.name)] = text_of(child) or ""
                    child = child.next
                snapshot_type = SNAPSHOT_TYPES.get(f.get("Type", "").lower())
                if snapshot_type is None:
                    raise _GiveUp
                created = f.get("CreationDate")
                snapshots.append(
                    Snapshot(
                        id=snapshot_id,
                        vm_id=entity.id,
                        type=snapshot_type,
                        description=f.get("Description", ""),
                        creation_date=self.v.date(created) if created else entity.creation_date,
                        memory=f.get("Memory", ""),
                    )
                )
            element = element.next
        return snapshots

    cdef list permissions(self, xmlNode* section, object entity_id):
        cdef list permissions = []
        cdef xmlNode* user = section.children
        cdef xmlNode* child
        cdef xmlNode* role
        while user != NULL:
            if user.type == XML_ELEMENT_NODE and strcmp(<const char*>user.name, b"User") == 0:
                user_name = ""
                roles = []
                child = user.children
                while child != NULL:
                    if child.type == XML_ELEMENT_NODE:
                        if strcmp(<const char*>child.name, b"UserDomain") == 0:
                            user_name = text_of(child) or ""
                        elif strcmp(<const char*>child.name, b"UserRoles") == 0:
                            role = child.children
                            while role != NULL:
                                if role.type == XML_ELEMENT_NODE and strcmp(<const char*>role.name, b"RoleName") == 0:
                                    roles.append(text_of(role) or "")
                                role = role.next
                    child = child.next
                for role_name in roles:
                    permissions.append(
                        Permission(
                            id=uuid5_of(f"{self.entity_text}/{user_name}/{role_name}"),
                            entity_id=entity_id,
                            user_name=user_name,
                            role_name=role_name,
                        )
                    )
            user = user.next
        return permissions

    cdef list names(self, xmlNode* section):
        cdef list names = []
        cdef xmlNode* child = section.children
        while child != NULL:
            if child.type == XML_ELEMENT_NODE:
                names.append(attribute(child, self.a, b"name") or "")
            child = child.next
        return names


def read_canonical(_Element root not None, str ovf_ns not None):
    """`(data, version)` of the canonical document `root`, or None: then `_Reader` must read it."""
    cdef _Read reader = _Read(ovf_ns)
    try:
        return reader.read(root._c_node)
    except _GiveUp:
        return None

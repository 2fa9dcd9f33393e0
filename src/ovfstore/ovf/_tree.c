/*
 * ovfstore.ovf._tree: an lxml tree as plain Python tuples, in one pass in C.
 *
 * Reading an OVF spends most of its time asking lxml, from Python, for element after element: each
 * access builds a proxy object, and a 2-disk VM has about 200 elements. This module walks libxml2's
 * nodes directly (through lxml's public C API, lxml.etree_api.h, the supported way for C extensions
 * to reach an lxml tree) and returns the same facts as plain tuples, which Python reads at the speed
 * of tuple unpacking. `ovfstore.ovf.tree.flatten_py` is the pure-Python definition of the result; the
 * tests hold both to the same output.
 *
 *   node = (tag, text, attrib, children)
 *   tag      "{namespace}local" or "local", as lxml spells Element.tag
 *   text     Element.text: the text and CDATA before the first child node, or None
 *   attrib   {"{namespace}local" or "local": value}; elements without attributes share one empty,
 *            read-only mapping
 *   children the child elements as a tuple of nodes (comments and PIs are skipped, as is tail text)
 *
 * Nothing here parses: the tree was built by lxml's hardened parser (ovfstore.ovf.parse), and the
 * walk only reads it. The walk refuses trees deeper than MAX_DEPTH instead of recursing without end.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "lxml-version.h"
#include "etree_defs.h"
#include "lxml.etree_api.h"

#define MAX_DEPTH 300
/* Names are interned per walk: libxml2 keeps one copy of each name in the document's dictionary,
 * so (namespace pointer, name pointer) identifies a tag, and each distinct tag becomes one Python
 * string whose hash is computed once. A table of 256 slots holds the ~100 names of an OVF. */
#define NAME_SLOTS 256

typedef struct {
    const xmlChar *href;
    const xmlChar *name;
    PyObject *str; /* borrowed from `owned` */
} NameSlot;

/* Short values repeat through a document ("true", "false", "0", "disk", ...): those of at most 8
 * bytes are kept per walk, keyed by their bytes, so each is created once. */
#define SHORT_SLOTS 128

typedef struct {
    uint64_t key; /* the bytes, zero-padded; the length is stored beside */
    size_t len;
    PyObject *str; /* borrowed from `owned` */
} ShortSlot;

typedef struct {
    NameSlot slots[NAME_SLOTS];
    ShortSlot shorts[SHORT_SLOTS];
    PyObject *owned; /* list keeping the interned strings alive for the walk */
} Walk;

static PyObject *empty_attrib; /* the shared empty mapping: a read-only view of an empty dict */

/* A str of the UTF-8 bytes [data, data + len): ASCII (all of an oVirt OVF but free text) is copied
 * straight into a compact string; anything else goes through the UTF-8 decoder. */
static PyObject *
make_str(const char *data, size_t len)
{
    const unsigned char *bytes = (const unsigned char *)data;
    for (size_t i = 0; i < len; i++) {
        if (bytes[i] >= 0x80) {
            return PyUnicode_DecodeUTF8(data, (Py_ssize_t)len, "strict");
        }
    }
    PyObject *str = PyUnicode_New((Py_ssize_t)len, 127);
    if (str != NULL && len > 0) {
        memcpy(PyUnicode_1BYTE_DATA(str), data, len);
    }
    return str;
}

/* A new reference to the str of a value, shared within the walk when it is short. */
static PyObject *
value_str(Walk *walk, const char *data, size_t len)
{
    if (len > 8 || len == 0) {
        return make_str(data, len);
    }
    uint64_t key = 0;
    memcpy(&key, data, len);
    size_t hash = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 57) ^ len;
    ShortSlot *slot = &walk->shorts[hash % SHORT_SLOTS];
    if (slot->str != NULL && slot->key == key && slot->len == len) {
        Py_INCREF(slot->str);
        return slot->str;
    }
    PyObject *str = make_str(data, len);
    if (str != NULL && slot->str == NULL) {
        if (PyList_Append(walk->owned, str) < 0) {
            Py_DECREF(str);
            return NULL;
        }
        slot->key = key;
        slot->len = len;
        slot->str = str;
    }
    return str;
}

static PyObject *
clark_name(const xmlChar *href, const xmlChar *name)
{
    if (href == NULL || href[0] == '\0') {
        return make_str((const char *)name, strlen((const char *)name));
    }
    size_t href_len = strlen((const char *)href), name_len = strlen((const char *)name);
    char stack[256];
    char *buf = href_len + name_len + 2 <= sizeof(stack) ? stack : PyMem_Malloc(href_len + name_len + 2);
    if (buf == NULL) {
        return PyErr_NoMemory();
    }
    buf[0] = '{';
    memcpy(buf + 1, href, href_len);
    buf[href_len + 1] = '}';
    memcpy(buf + href_len + 2, name, name_len);
    PyObject *result = make_str(buf, href_len + name_len + 2);
    if (buf != stack) {
        PyMem_Free(buf);
    }
    return result;
}

/* A new reference to the Python name of (href, name). */
static PyObject *
interned_name(Walk *walk, const xmlNs *ns, const xmlChar *name)
{
    const xmlChar *href = ns != NULL ? ns->href : NULL;
    size_t hash = ((size_t)name >> 4) ^ ((size_t)href >> 3);
    for (size_t probe = 0; probe < 8; probe++) {
        NameSlot *slot = &walk->slots[(hash + probe) % NAME_SLOTS];
        if (slot->str == NULL) {
            PyObject *str = clark_name(href, name);
            if (str == NULL || PyList_Append(walk->owned, str) < 0) {
                Py_XDECREF(str);
                return NULL;
            }
            slot->href = href;
            slot->name = name;
            slot->str = str; /* the list holds one reference; the caller gets the one below */
            return str;
        }
        if (slot->name == name && slot->href == href) {
            Py_INCREF(slot->str);
            return slot->str;
        }
    }
    return clark_name(href, name); /* a crowded table only costs an uninterned string */
}

static int
is_text(const xmlNode *node)
{
    return node->type == XML_TEXT_NODE || node->type == XML_CDATA_SECTION_NODE;
}

/* `node` (a child list) is one text or CDATA node and nothing lxml would add to it: what a parsed
 * OVF always has. Anything else (several pieces, XInclude markers, entity references) is left to
 * lxml's own functions, so the result is lxml's in every case. */
static int
is_lone_text(const xmlNode *node)
{
    if (node == NULL || !is_text(node)) {
        return 0;
    }
    const xmlNode *next = node->next;
    return next == NULL || !(is_text(next) || next->type == XML_XINCLUDE_START ||
                             next->type == XML_XINCLUDE_END || next->type == XML_ENTITY_REF_NODE);
}

/* Element.text of `element`. */
static PyObject *
element_text(Walk *walk, xmlNode *element)
{
    const xmlNode *first = element->children;
    if (first == NULL || first->type == XML_ELEMENT_NODE || first->type == XML_COMMENT_NODE ||
        first->type == XML_PI_NODE) {
        Py_RETURN_NONE;
    }
    if (is_lone_text(first)) {
        const char *content = first->content != NULL ? (const char *)first->content : "";
        return value_str(walk, content, strlen(content));
    }
    return textOf(element);
}

static PyObject *
collect_attrib(Walk *walk, xmlNode *node)
{
    if (node->properties == NULL) {
        Py_INCREF(empty_attrib);
        return empty_attrib;
    }
    PyObject *attrib = PyDict_New();
    if (attrib == NULL) {
        return NULL;
    }
    for (xmlAttr *attr = node->properties; attr != NULL; attr = attr->next) {
        if (attr->type != XML_ATTRIBUTE_NODE) {
            continue;
        }
        PyObject *key = interned_name(walk, attr->ns, attr->name);
        PyObject *value = NULL;
        if (key != NULL) {
            if (attr->children == NULL) {
                value = PyUnicode_New(0, 0);
            } else if (is_lone_text(attr->children) && attr->children->next == NULL) {
                const char *content = attr->children->content ? (const char *)attr->children->content : "";
                value = value_str(walk, content, strlen(content));
            } else {
                value = attributeValue(node, attr);
            }
        }
        if (value == NULL || PyDict_SetItem(attrib, key, value) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(value);
            Py_DECREF(attrib);
            return NULL;
        }
        Py_DECREF(key);
        Py_DECREF(value);
    }
    return attrib;
}

static PyObject *
walk_element(Walk *walk, xmlNode *node, int depth)
{
    if (depth > MAX_DEPTH) {
        PyErr_Format(PyExc_ValueError, "the tree nests elements more than %d deep", MAX_DEPTH);
        return NULL;
    }
    Py_ssize_t count = 0;
    for (const xmlNode *c = node->children; c != NULL; c = c->next) {
        count += c->type == XML_ELEMENT_NODE;
    }
    PyObject *children = PyTuple_New(count); /* the empty tuple is a shared singleton */
    if (children == NULL) {
        return NULL;
    }
    Py_ssize_t i = 0;
    for (xmlNode *c = node->children; c != NULL; c = c->next) {
        if (c->type != XML_ELEMENT_NODE) {
            continue;
        }
        if (i == count) { /* cannot happen while the collector is off (see flatten) */
            Py_DECREF(children);
            PyErr_SetString(PyExc_RuntimeError, "the tree changed while it was walked");
            return NULL;
        }
        PyObject *child = walk_element(walk, c, depth + 1);
        if (child == NULL) {
            Py_DECREF(children);
            return NULL;
        }
        PyTuple_SET_ITEM(children, i++, child);
    }
    if (i != count) {
        Py_DECREF(children);
        PyErr_SetString(PyExc_RuntimeError, "the tree changed while it was walked");
        return NULL;
    }
    PyObject *tag = interned_name(walk, node->ns, node->name);
    PyObject *text = tag != NULL ? element_text(walk, node) : NULL;
    PyObject *attrib = text != NULL ? collect_attrib(walk, node) : NULL;
    if (attrib == NULL) {
        Py_XDECREF(tag);
        Py_XDECREF(text);
        Py_DECREF(children);
        return NULL;
    }
    PyObject *result = PyTuple_New(4);
    if (result == NULL) {
        Py_DECREF(tag);
        Py_DECREF(text);
        Py_DECREF(attrib);
        Py_DECREF(children);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, tag);
    PyTuple_SET_ITEM(result, 1, text);
    PyTuple_SET_ITEM(result, 2, attrib);
    PyTuple_SET_ITEM(result, 3, children);
    return result;
}

static PyObject *
flatten(PyObject *module, PyObject *element)
{
    (void)module;
    /* TypeError unless an lxml node; ValueError for a comment or PI */
    struct LxmlElement *root = rootNodeOrRaise(element);
    if (root == NULL) {
        return NULL;
    }
    PyObject *result = NULL;
    Walk *walk = PyMem_Calloc(1, sizeof(Walk));
    if (walk == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    walk->owned = PyList_New(0);
    if (walk->owned != NULL) {
        if (root->_c_node == NULL || root->_c_node->type != XML_ELEMENT_NODE) {
            PyErr_SetString(PyExc_TypeError, "flatten() needs an element");
        } else {
            /* The walk holds pointers into the tree and runs no Python code, as long as no collection
             * runs a finalizer (which could change the tree, or let another thread in) between its
             * allocations: the collector is off for the walk. */
            int collecting = PyGC_Disable();
            result = walk_element(walk, root->_c_node, 0);
            if (collecting) {
                PyGC_Enable();
            }
        }
        Py_DECREF(walk->owned);
    }
    PyMem_Free(walk);
done:
    Py_DECREF((PyObject *)root);
    return result;
}

static PyMethodDef methods[] = {
    {"flatten", flatten, METH_O,
     "flatten(element) -> (tag, text, attrib, children): an lxml element and its descendants as tuples."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "ovfstore.ovf._tree",
    .m_doc = "An lxml tree as plain tuples, walked in C (see ovfstore.ovf.tree).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__tree(void)
{
    if (import_lxml__etree() < 0) {
        return NULL;
    }
    PyObject *empty = PyDict_New();
    empty_attrib = empty != NULL ? PyDictProxy_New(empty) : NULL;
    Py_XDECREF(empty);
    if (empty_attrib == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    /* The lxml this was built against: it reads lxml's and libxml2's structures, which only that
     * version is known to lay out so (ovfstore.ovf.tree refuses the module under another). */
    if (PyModule_AddStringConstant(module, "LXML_VERSION", LXML_VERSION_STRING) < 0 ||
        PyModule_AddObjectRef(module, "EMPTY_ATTRIB", empty_attrib) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

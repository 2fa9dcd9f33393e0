"""The reader's compiled fast path (`_fastread.pyx`) against the reader it shortens (`reader._Reader`).

Whatever the fast path returns must be exactly what `_Reader` returns for the same document, and
`_Reader` must have nothing to warn about; where it cannot be sure of that, it must give up (None).
Checked on every document the writer produces, on the oVirt samples, and on written documents damaged
at random: values replaced with near misses, elements and attributes removed, duplicated, renamed.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from ovfstore.model import OvfData
from ovfstore.ovf import OvfError, read_ovf, write_ovf
from ovfstore.ovf.parse import ovf_namespace, parse
from ovfstore.ovf.reader import OvfReadResult, _Reader, read_canonical
from ovfstore.ovf.tree import flatten
from tests.unit.compiled import require_compiled
from tests.unit.test_ovf_samples import fixed_sample, ovf_data

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ovf"
sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
from ovf_bench import typical_vm  # noqa: E402 - the benchmark's document, to prove it takes the fast path

require_compiled(read_canonical is not None, "ovfstore.ovf._fastread")


def lenient(document: bytes) -> OvfReadResult:
    root = parse(document)
    return _Reader(ovf_namespace(root)).read(flatten(root))


def fast(document: bytes) -> tuple[OvfData, str] | None:
    root = parse(document)
    assert read_canonical is not None
    return read_canonical(root, ovf_namespace(root))


def agree(document: bytes) -> bool:
    """The invariant; True if the fast path took the document."""
    try:
        parse(document)
    except OvfError:
        return False  # not an OVF at all: neither reader sees it
    try:
        slow: OvfReadResult | None = lenient(document)
    except OvfError:
        slow = None
    quick = fast(document)
    if slow is None:
        assert quick is None, "the fast path read a document _Reader refuses"
        return False
    if quick is None:
        return False
    assert slow.warnings == [], f"fast path read a document _Reader warns about: {slow.warnings}"
    assert quick[1] == slow.version
    assert quick[0] == slow.data
    assert read_ovf(document) == OvfReadResult(data=slow.data, warnings=[], version=slow.version)
    return True


def has_lun(data: OvfData) -> bool:
    return any(d.disk.lun_id is not None for d in data.disks)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ovf_data())
def test_every_written_document_reads_the_same_and_takes_the_fast_path(data: OvfData) -> None:
    document = write_ovf(data)
    took = agree(document)
    if not has_lun(data) and not lenient(document).warnings:
        assert took, "the fast path gave up on a document in the canonical dialect"


@pytest.mark.parametrize("kind", ["vm", "template"])
def test_the_fixed_samples_agree(kind: str) -> None:
    agree(write_ovf(fixed_sample(kind)))


def test_the_benchmark_document_takes_the_fast_path() -> None:
    assert agree(write_ovf(typical_vm()))


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.ovf")))
def test_oVirt_samples_of_other_dialects_agree(name: str) -> None:
    # oVirt 3.3 (numbered NIC ids, no graphics) and virt-v2v (DMTF sections): _Reader's to read.
    assert not agree((FIXTURES / name).read_bytes())


NEAR_MISSES = [
    "",
    " ",
    "TRUE",
    "True",
    "false ",
    "1",
    "0",
    "-1",
    "+1",
    "007",
    "1_000",
    "99999999999999999999",
    "x",
    "\u0661",
    "LUN",
    "IMAGE",
    "qxl",
    "VGA",
    "Sparse",
    "COW",
    "cow",
    "VirtIO",
    "virtio_scsi",
    "sound",
    "17",
    "10",
    "3",
    "4",
    "20",
    "26",
    "23",
    "32768",
    "24",
    "2024/05/01 12:00:00",
    "2024.05.01 12:00:00",
    "2024-05-01 12:00:00",
    "2024/13/01 12:00:00",
    "2024/05/01 12x00x00",
    "00000000-0000-0000-0000-000000000000",
    "00000000-0000-0000-0000-00000000000A",
    "{00000000-0000-0000-0000-00000000000a}",
    "0000000000000000000000000000000a",
    "00000000-0000-0000-0000-00000000000a/00000000-0000-0000-0000-000000000014",
    "00000000-0000-0000-0000-00000000000a/",
    "/00000000-0000-0000-0000-000000000014",
    "ovf:Foo_Type",
    "-0",
    "-00",
    "\u00b2",
    "3.0",
    "4.5.0.0",
    "\u00b2.5",
]


def mutate(document: bytes, seed: int, count: int) -> bytes:
    """`document` with `count` random damages, chosen by `seed`."""
    rng = random.Random(seed)
    root = etree.fromstring(document)
    for _ in range(count):
        elements = list(root.iter())
        element = rng.choice(elements[1:])
        action = rng.randrange(7)
        if action == 0 and element.getparent() is not None:
            element.getparent().remove(element)
        elif action == 1 and element.attrib:
            del element.attrib[rng.choice(list(element.attrib))]
        elif action == 2 and element.attrib:
            element.set(rng.choice(list(element.attrib)), rng.choice(NEAR_MISSES))
        elif action == 3:
            element.text = rng.choice(NEAR_MISSES)
        elif action == 4 and element.getparent() is not None:
            element.addnext(etree.fromstring(etree.tostring(element)))
        elif action == 5:
            local = etree.QName(element).localname
            element.tag = rng.choice([local, f"{{urn:other}}{local}", local.lower(), "Section", "Item"])
        elif action == 6:
            element.text = etree.CDATA(element.text or "x")
    return etree.tostring(root)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["vm", "template", "typical"]), st.integers(0, 2**32), st.integers(1, 3))
def test_damaged_documents_are_read_the_same_or_left_to_the_lenient_reader(kind: str, seed: int, count: int) -> None:
    data = typical_vm() if kind == "typical" else fixed_sample(kind)
    agree(mutate(write_ovf(data), seed, count))


@pytest.mark.parametrize("subtype", ["-0", "-00", "\u00b2", " 3", "03"])
def test_nic_types_the_lenient_reader_does_not_take_as_codes(subtype: str) -> None:
    # -0 is no code to _Reader (it takes digits only), and int() refuses "\u00b2" although isdigit() does not.
    document = write_ovf(typical_vm()).replace(
        b"<rasd:ResourceSubType>3</rasd:ResourceSubType>",
        f"<rasd:ResourceSubType>{subtype}</rasd:ResourceSubType>".encode(),
        1,
    )
    agree(document)
    assert read_ovf(document).data.nics  # read, with a warning or without, never a crash


def test_an_envelope_version_that_is_no_number_is_not_a_crash() -> None:
    data = typical_vm()
    data.entity.graphics = []  # no graphics device: the reader looks at the version to derive one
    document = write_ovf(data, engine_version="\u00b2.5")
    agree(document)
    assert read_ovf(document).warnings

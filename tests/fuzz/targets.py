"""Fuzz targets: each parser of untrusted bytes, with the contract it must keep on any input.

A storage domain may come from anywhere (an imported LUN, a copy from another site, an attacker), so
every reader of its bytes must either return a result or raise its own documented error, with a message
of bounded size. Anything else (another exception type, a recursion error, a message echoing megabytes
of input) is a bug that would surface as a traceback, a 500 or a stuck domain.

Each target takes raw bytes; `SEEDS` gives each one real inputs to start mutating from. The same targets
run under hypothesis in the suite (`test_fuzz.py`) and under atheris, coverage-guided, through
`python -m tests.fuzz.run` (`make fuzz` for the long run; docs/RECOVERY.md says how).
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from ovfstore.ovf import OvfError, read_ovf
from ovfstore.storage.errors import StorageError
from ovfstore.storage.metadata import parse_domain_metadata, parse_volume_meta
from ovfstore.store import description, manifest
from ovfstore.store.tarread import StoreReadError, read_store
from tests.fixtures.formats import DOMAIN_METADATA_EXAMPLE
from tests.fixtures.ovirt_domain import SAMPLE_FILES, SAMPLES, store_members
from tests.fixtures.segments import sample_segmented_store

#: The longest error message a parser may produce, whatever its input: a message quotes a little of the
#: input to say where the problem is, never all of it.
MAX_MESSAGE = 2000


class ContractBroken(AssertionError):
    """A parser broke its contract on this input."""


def _check_message(exc: BaseException) -> None:
    if len(str(exc)) > MAX_MESSAGE:
        raise ContractBroken(f"{type(exc).__name__} message of {len(str(exc))} characters (max {MAX_MESSAGE})")


def _expect(call: Callable[[], object], *allowed: type[BaseException]) -> None:
    try:
        call()
    except allowed as exc:
        _check_message(exc)


def store_tar(data: bytes) -> None:
    _expect(lambda: read_store([data], len(data)), StoreReadError)


def store_tar_chunked(data: bytes) -> None:
    """The same bytes arriving in small pieces, as they do from the network."""
    chunks = [data[i : i + 509] for i in range(0, len(data), 509)]
    _expect(lambda: read_store(chunks, len(data)), StoreReadError)


def domain_metadata(data: bytes) -> None:
    _expect(lambda: parse_domain_metadata(data), StorageError)


def volume_meta(data: bytes) -> None:
    _expect(lambda: parse_volume_meta(data), StorageError)


def store_description(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    _expect(lambda: description.parse(text), ValueError)


def ovf_document(data: bytes) -> None:
    _expect(lambda: read_ovf(data), OvfError)


def store_manifest(data: bytes) -> None:
    """A manifest's numbers go into 64-bit columns: a decoded one must fit them."""
    try:
        found = manifest.decode(data)
    except manifest.ManifestError as exc:
        _check_message(exc)
        return
    previous = (found.previous.generation, found.previous.offset) if found.previous else ()
    if not all(0 <= n <= manifest.MAX_COUNT for n in (found.generation, *previous, *(m.size for m in found.members))):
        raise ContractBroken(f"a manifest count beyond 64 bits was accepted: generation {found.generation}")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "store_tar": store_tar,
    "store_tar_chunked": store_tar_chunked,
    "domain_metadata": domain_metadata,
    "volume_meta": volume_meta,
    "store_description": store_description,
    "ovf_document": ovf_document,
    "store_manifest": store_manifest,
}


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    length = sum(512 + (len(data) + 511) // 512 * 512 for _, data in members) + 1024
    return buffer.getvalue()[:length]


def _samples() -> dict[str, bytes]:
    return {name: (SAMPLES / name).read_bytes() for name in SAMPLE_FILES}


def _store_seeds() -> list[bytes]:
    sd = str(uuid.uuid4())
    ovfs = {str(uuid.uuid4()): doc for doc in _samples().values()}
    status = dict.fromkeys(ovfs, 1)
    when = datetime(2024, 1, 1, tzinfo=UTC).strftime("%a %b %d %H:%M:%S UTC %Y")
    nested = json.dumps({"VM Status": {"a": [[[[1]]]]}}).encode()
    return [
        _tar(store_members(sd, ovfs, status, when)),
        _tar([("info.json", b"{}"), ("metadata.json", nested)]),
        sample_segmented_store()[0].tar(),  # three segments, format-2 manifests, an entity removed
    ]


META = b"CAP=134217728\nCTIME=1700000000\nDESCRIPTION=x\nDISKTYPE=OVFS\nDOMAIN=%s\nFORMAT=RAW\nGEN=0\n" % (
    str(uuid.uuid4()).encode()
)
META += b"IMAGE=%s\nLEGALITY=LEGAL\nPUUID=00000000-0000-0000-0000-000000000000\nSEQ=0\nTYPE=SPARSE\n" % (
    str(uuid.uuid4()).encode()
)
META += b"VOLTYPE=LEAF\nEOF\n"


def _manifest_seed() -> bytes:
    return manifest.encode(7, "ovfstore", datetime(2024, 1, 1, tzinfo=UTC), [("info.json", 10, "0" * 64)])


def _segment_manifest_seed() -> bytes:
    when, previous = datetime(2024, 1, 1, tzinfo=UTC), manifest.Previous(6, 10752)
    removed = [uuid.UUID(int=1), uuid.UUID(int=2)]
    return manifest.encode_segment(7, "ovfstore", when, [("info.json", 10, "0" * 64)], previous, removed)


def _deep(opening: bytes, closing: bytes, depth: int = 100_000) -> bytes:
    return opening * depth + closing * depth


def _manifest_with(**fields: object) -> bytes:
    value = json.loads(_manifest_seed())
    value.update(fields)
    return json.dumps(value).encode()


_HUGE_NUMBER = b"9" * 100_000
#: Inputs found by the fuzz harness or by review that once broke a contract (issue 13): deeply nested
#: JSON (a RecursionError, not the documented error), huge numbers, a generation beyond 64 bits, and
#: messages echoing megabytes of input. Each runs through its target in the suite.
HOSTILE: list[tuple[str, bytes]] = [
    ("store_tar", _tar([("info.json", _deep(b"[", b"]")), ("metadata.json", b"{}")])),
    ("store_tar", _tar([("info.json", b"{}"), ("metadata.json", _deep(b'{"a":', b"}"))])),
    (
        "store_tar",
        _tar([("info.json", b"{}"), ("metadata.json", b'{"VM Status": {"a": [' + _deep(b"[", b"]") + b"]}}")]),
    ),
    ("store_tar", _tar([("info.json", b'{"n": ' + _HUGE_NUMBER + b"}")])),
    ("store_tar", _tar([("info.json", b'"' + b"x" * 1_000_000 + b"\\q")])),
    (
        "store_tar",
        _tar(
            [
                ("info.json", b"{}"),
                ("metadata.json", b'{"VM Status": {"%s": %s}}' % (b"k" * 100_000, _HUGE_NUMBER[:4000])),
            ]
        ),
    ),
    ("store_tar", _tar([("info.json", b"{}"), ("manifest.json", _manifest_with(generation=2**64))])),
    ("store_tar", _tar([("info.json", b"{}"), ("manifest.json", _deep(b"[", b"]"))])),
    ("store_manifest", _manifest_with(generation=2**64)),
    ("store_manifest", _manifest_with(generation=-1)),
    ("store_manifest", _manifest_with(generation=1.5)),
    ("store_manifest", _manifest_with(generation="9" * 100_000)),
    ("store_manifest", _manifest_with(members=[{"name": "x", "size": 2**70, "sha256": "0"}])),
    ("store_manifest", _manifest_with(format="f" * 1_000_000)),
    ("store_manifest", _manifest_with(created="c" * 1_000_000)),
    ("store_manifest", _manifest_with(format=2, previous={"generation": 2**64, "offset": 0}, removed=[])),
    ("store_manifest", _manifest_with(format=2, previous={"generation": 1, "offset": 0}, removed=["r" * 1_000_000])),
    ("store_manifest", _manifest_with(format=2, previous={"generation": 1, "offset": 0}, removed=[[[[1]]]])),
    ("store_manifest", _deep(b'{"a":', b"}")),
    ("store_manifest", b'{"generation": ' + _HUGE_NUMBER + b"}"),
    ("store_description", _deep(b"[", b"]")),
    ("store_description", b'{"Updated": true, "Size": ' + _HUGE_NUMBER + b"}"),
    ("store_description", b'{"Updated": true, "Size": 1e999}'),
    ("store_description", b'{"Updated": [' + b"1," * 500_000 + b'1], "Storage Domains": "' + b"s" * 500_000 + b'"}'),
    ("store_description", b'{"Last Updated": "' + b"d" * 1_000_000 + b'"}'),
]

SEEDS: dict[str, list[bytes]] = {
    "store_tar": _store_seeds(),
    "store_tar_chunked": _store_seeds(),
    "domain_metadata": [DOMAIN_METADATA_EXAMPLE],
    "volume_meta": [META],
    "store_description": [
        description.after_write(uuid.uuid4(), 10240, datetime(2024, 1, 1, tzinfo=UTC)).encode(),
        description.before_write(uuid.uuid4(), None).encode(),
        description.never_written().encode(),
    ],
    "ovf_document": list(_samples().values()),
    "store_manifest": [_manifest_seed(), _segment_manifest_seed()],
}

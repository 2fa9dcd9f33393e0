"""Codecs of the VDSM metadata files (docs/FORMATS.md 1.1 and 1.2), pure functions over bytes.

`dom_md/metadata` carries a SHA-1 `_SHA_CKSUM` over its sorted lines; a volume's `.meta` is sorted
`KEY=VALUE` lines ended by `EOF`, at most 512 bytes. No I/O here: the domain module reads and writes
the files atomically.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ovfstore.storage.errors import ChecksumMismatch, DescriptionTooLong, InvalidArgument, InvalidMetadata
from ovfstore.store.quoting import quoted

log = logging.getLogger(__name__)

CHECKSUM_KEY = "_SHA_CKSUM"
DOMAIN_DESCRIPTION_MAX = 50
VOLUME_DESCRIPTION_MAX = 210
VOLUME_META_MAX = 512
BLANK_UUID = "00000000-0000-0000-0000-000000000000"
#: The largest number a `.meta` may hold: sizes and offsets are signed 64-bit values for qemu and VDSM.
INT_MAX = 2**63 - 1


class ChecksumState(StrEnum):
    VALID = "valid"
    # Accepted with a warning, as VDSM does: very old domains were written without it.
    MISSING = "missing"


def domain_checksum(values: Mapping[str, str]) -> str:
    """SHA-1 over `KEY=VALUE` of every key but the checksum, keys sorted, ASCII with XML char refs."""
    digest = hashlib.sha1()
    for key in sorted(values):
        if key != CHECKSUM_KEY:
            digest.update(f"{key}={values[key]}".encode("ascii", "xmlcharrefreplace"))
    return digest.hexdigest()


def _check_line_safe(key: str, value: str) -> None:
    if not key or "=" in key or any(c in key + value for c in "\n\r\0"):
        raise InvalidArgument(
            f"metadata entry {quoted(key)}={quoted(value)} cannot be stored: no '=' in keys, no newlines"
        )


def _split_lines(data: bytes, what: str) -> list[tuple[str, str]]:
    # Block storage pads metadata slots with NULs, and some writers leave them on file domains too.
    text = data.rstrip(b"\0").decode("utf-8", errors="strict") if data else ""
    pairs = []
    # Only "\n" ends a line: splitlines() would also split on characters a description may hold.
    for line in text.split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            if line == "EOF":
                break
            raise InvalidMetadata(f"{what}: line {quoted(line)} is not KEY=VALUE; the file is damaged")
        pairs.append((key, value))
    return pairs


@dataclass(frozen=True)
class DomainMetadata:
    """The parsed `dom_md/metadata`; `values` excludes the checksum line."""

    values: Mapping[str, str]
    checksum: ChecksumState

    @property
    def sd_id(self) -> str:
        return self.values.get("SDUUID", "")

    @property
    def pool_id(self) -> str:
        return self.values.get("POOL_UUID", "")

    @property
    def role(self) -> str:
        return self.values.get("ROLE", "")

    @property
    def domain_class(self) -> str:
        return self.values.get("CLASS", "")

    @property
    def storage_type(self) -> str:
        return self.values.get("TYPE", "")

    @property
    def version(self) -> int:
        return int(self.values.get("VERSION", "0") or 0)

    @property
    def description(self) -> str:
        return self.values.get("DESCRIPTION", "")


def parse_domain_metadata(data: bytes) -> DomainMetadata:
    """Parse and verify; a checksum that does not match raises `ChecksumMismatch`."""
    try:
        pairs = _split_lines(data, "dom_md/metadata")
    except UnicodeDecodeError as e:
        raise InvalidMetadata(f"dom_md/metadata is not valid UTF-8 ({e}); the file is damaged") from e
    values = dict(pairs)
    version = values.get("VERSION", "")
    if version and not (version.isascii() and version.isdigit() and len(version) <= 3):
        raise InvalidMetadata(f"dom_md/metadata: VERSION={quoted(version)} is not a domain format; the file is damaged")
    stored = values.pop(CHECKSUM_KEY, None)
    if stored is None:
        log.warning("dom_md/metadata of domain %s has no %s; accepted unverified", values.get("SDUUID"), CHECKSUM_KEY)
        return DomainMetadata(values, ChecksumState.MISSING)
    computed = domain_checksum(values)
    if stored.strip().lower() != computed:
        raise ChecksumMismatch(
            f"dom_md/metadata of domain {quoted(values.get('SDUUID', '?'))} has checksum {quoted(stored)} but its "
            f"content sums to {computed}: the file was changed or damaged; restore it or rewrite it with a tool "
            "that recomputes the checksum"
        )
    return DomainMetadata(values, ChecksumState.VALID)


def format_domain_metadata(values: Mapping[str, str]) -> bytes:
    """Sorted lines, then `_SHA_CKSUM`; the checksum is always recomputed, never copied."""
    clean = {k: v for k, v in values.items() if k != CHECKSUM_KEY}
    for key, value in clean.items():
        _check_line_safe(key, value)
    if len(clean.get("DESCRIPTION", "")) > DOMAIN_DESCRIPTION_MAX:
        raise DescriptionTooLong(f"a domain description holds at most {DOMAIN_DESCRIPTION_MAX} characters; shorten it")
    lines = [f"{key}={clean[key]}" for key in sorted(clean)]
    lines.append(f"{CHECKSUM_KEY}={domain_checksum(clean)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def new_domain_values(
    sd_id: str, description: str, storage_type: str, domain_class: str, remote_path: str
) -> dict[str, str]:
    """Metadata of a new, detached, format 5 domain, with VDSM's defaults."""
    return {
        "ALIGNMENT": "1048576",
        "BLOCK_SIZE": "512",
        "CLASS": domain_class,
        "DESCRIPTION": description,
        "IOOPTIMEOUTSEC": "10",
        "LEASERETRIES": "3",
        "LEASETIMESEC": "60",
        "LOCKPOLICY": "",
        "LOCKRENEWALINTERVALSEC": "5",
        "POOL_UUID": "",
        "REMOTE_PATH": remote_path,
        "ROLE": "Regular",
        "SDUUID": sd_id,
        "TYPE": storage_type,
        "VERSION": "5",
    }


_VOLUME_FIELDS = (
    "CAP", "CTIME", "DESCRIPTION", "DISKTYPE", "DOMAIN", "FORMAT", "GEN", "IMAGE",
    "LEGALITY", "PUUID", "SEQ", "TYPE", "VOLTYPE",
)  # fmt: skip


@dataclass(frozen=True)
class VolumeMetadata:
    """A volume's `.meta`; keys this project does not model are kept in `extra` and written back."""

    capacity: int
    ctime: int
    description: str
    disk_type: str
    domain: str
    format: str
    generation: int
    image: str
    legality: str
    parent: str
    sequence: int
    type: str
    voltype: str
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, str]:
        values = dict(self.extra)
        values.update(
            CAP=str(self.capacity),
            CTIME=str(self.ctime),
            DESCRIPTION=self.description,
            DISKTYPE=self.disk_type,
            DOMAIN=self.domain,
            FORMAT=self.format,
            GEN=str(self.generation),
            IMAGE=self.image,
            LEGALITY=self.legality,
            PUUID=self.parent,
            SEQ=str(self.sequence),
            TYPE=self.type,
            VOLTYPE=self.voltype,
        )
        return values


def _int(values: Mapping[str, str], key: str, default: int) -> int:
    raw = values.get(key, "")
    if raw == "":
        return default
    digits = raw.removeprefix("-")
    # Plain ASCII digits only (int() also takes "1_0", " 1", "+1"); and no int() of thousands of digits:
    # it is slow, and 2**63 has 19.
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidMetadata(f"volume metadata {key}={quoted(raw)} is not a number; the .meta is damaged")
    if digits != raw or len(digits) > 19 or int(digits) > INT_MAX:
        raise InvalidMetadata(f"volume metadata {key}={quoted(raw)} is outside 0..{INT_MAX}; the .meta is damaged")
    return int(digits)


def _capacity(values: Mapping[str, str]) -> int:
    if "CAP" in values:
        capacity = _int(values, "CAP", 0)
    else:
        # Domain versions before 5 store the size in 512-byte sectors.
        capacity = _int(values, "SIZE", 0) * 512
    if not 0 < capacity <= INT_MAX:
        raise InvalidMetadata(
            f"volume metadata gives a capacity of {capacity} bytes; a volume holds at least one byte and at most "
            f"{INT_MAX}: the .meta is damaged"
        )
    return capacity


def _parent(values: Mapping[str, str]) -> str:
    raw = values.get("PUUID", BLANK_UUID)
    try:
        parsed = uuid.UUID(raw) if len(raw) <= 36 else None
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != raw.lower():
        raise InvalidMetadata(f"volume metadata PUUID={quoted(raw)} is not a volume id; the .meta is damaged")
    return raw


def parse_volume_meta(data: bytes) -> VolumeMetadata:
    try:
        values = dict(_split_lines(data, ".meta"))
    except UnicodeDecodeError as e:
        raise InvalidMetadata(f".meta is not valid UTF-8 ({e}); the file is damaged") from e
    return VolumeMetadata(
        capacity=_capacity(values),
        ctime=_int(values, "CTIME", 0),
        description=values.get("DESCRIPTION", ""),
        disk_type=values.get("DISKTYPE", ""),
        domain=values.get("DOMAIN", ""),
        format=values.get("FORMAT", ""),
        generation=_int(values, "GEN", 0),
        image=values.get("IMAGE", ""),
        legality=values.get("LEGALITY", ""),
        parent=_parent(values),
        sequence=_int(values, "SEQ", 0),
        type=values.get("TYPE", ""),
        voltype=values.get("VOLTYPE", ""),
        extra={k: v for k, v in values.items() if k not in _VOLUME_FIELDS},
    )


def check_volume_description(text: str) -> None:
    if len(text) > VOLUME_DESCRIPTION_MAX:
        raise DescriptionTooLong(
            f"a volume description holds at most {VOLUME_DESCRIPTION_MAX} characters, this one has "
            f"{len(text)}; it is refused rather than cut, since a cut JSON description is unreadable"
        )


def format_volume_meta(meta: VolumeMetadata) -> bytes:
    check_volume_description(meta.description)
    values = meta.to_dict()
    for key, value in values.items():
        _check_line_safe(key, value)
    data = ("".join(f"{key}={values[key]}\n" for key in sorted(values)) + "EOF\n").encode("utf-8")
    if len(data) > VOLUME_META_MAX:
        raise DescriptionTooLong(
            f"the volume metadata would take {len(data)} bytes, more than the {VOLUME_META_MAX} a .meta "
            "slot holds; shorten the description"
        )
    return data

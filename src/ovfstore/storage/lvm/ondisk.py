"""LVM2's label, PV header, metadata area headers and metadata text on one device (docs/FORMATS.md 6.5).

Everything here comes from a device that may be damaged or hostile: every size and offset read from it is
checked against the device and the area before it is used, and every structure against its magic and CRC.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from dataclasses import dataclass

from ovfstore.store.quoting import cut, quoted

SECTOR = 512
LABEL_SCAN_SECTORS = 4
LABEL_ID = b"LABELONE"
LABEL_TYPE = b"LVM2 001"
MDA_MAGIC = b" LVM2 x[5A%r0N*>"
MDA_HEADER_SIZE = 512
MDA_VERSION = 1
INITIAL_CRC = 0xF597A6CF
RAW_LOCN_IGNORED = 0x1
#: The largest metadata text read (LVM's own default area is 1 MiB; oVirt's is 128 MiB but holds little).
MAX_TEXT_SIZE = 64 * 1024 * 1024
#: The most areas a PV header may list before its terminating zero entry.
MAX_AREAS = 16
_UUID_RE = re.compile(rb"[0-9A-Za-z!#]{32}")


class LvmFormatError(Exception):
    """LVM structures that are missing, damaged or beyond what this reader supports."""


def calc_crc(data: bytes, initial: int = INITIAL_CRC) -> int:
    """LVM's `calc_crc`: zlib's CRC-32 without its initial and final inversions, from LVM's start value."""
    return zlib.crc32(data, initial ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def format_uuid(raw: str) -> str:
    """The 32 characters of an LVM UUID in LVM's dashed 6-4-4-4-4-4-6 form, as the metadata text writes it."""
    parts, start = [], 0
    for width in (6, 4, 4, 4, 4, 4, 6):
        parts.append(raw[start : start + width])
        start += width
    return "-".join(parts)


@dataclass(frozen=True)
class Area:
    offset: int
    size: int


@dataclass(frozen=True)
class PvLabel:
    """A PV's label and header: `uuid` in the dashed form, areas in bytes from the start of the device."""

    path: str
    sector: int
    uuid: str
    device_size: int
    data_areas: tuple[Area, ...]
    metadata_areas: tuple[Area, ...]


@dataclass(frozen=True)
class MetadataAreaHeader:
    """A metadata area's header and its first raw location (the current text, relative to `start`)."""

    start: int
    size: int
    text_offset: int
    text_size: int
    text_crc: int
    ignored: bool


def device_size(fd: int) -> int:
    """The size in bytes of an open image file or block device."""
    return os.lseek(fd, 0, os.SEEK_END)


def pread_exact(fd: int, path: str, offset: int, length: int, what: str) -> bytes:
    """Exactly `length` bytes at `offset`, or an error naming `what` was cut short and where."""
    chunks: list[bytes] = []
    done = 0
    while done < length:
        chunk = os.pread(fd, min(length - done, 1 << 24), offset + done)
        if not chunk:
            raise LvmFormatError(
                f"{what} of {cut(path)} is cut short: {length} bytes expected at byte {offset}, "
                f"the device ends after {done}; the device or image is truncated"
            )
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)


def read_label(fd: int, path: str) -> PvLabel:
    """The LVM label of the device, found in one of its first four sectors, with its PV header."""
    size = device_size(fd)
    if size < LABEL_SCAN_SECTORS * SECTOR:
        raise LvmFormatError(f"{cut(path)} has {size} bytes, too small to hold an LVM label (2048 bytes at least)")
    head = pread_exact(fd, path, 0, LABEL_SCAN_SECTORS * SECTOR, "the label sectors")
    for sector in range(LABEL_SCAN_SECTORS):
        block = head[sector * SECTOR : (sector + 1) * SECTOR]
        if block.startswith(LABEL_ID):
            return _parse_label(block, sector, path, size)
    raise LvmFormatError(f"{cut(path)} has no LVM label (LABELONE) in sectors 0-3: it is not an LVM PV")


def _parse_label(block: bytes, sector: int, path: str, size: int) -> PvLabel:
    where = f"the LVM label of {cut(path)} (sector {sector})"
    sector_xl, crc, header_offset = struct.unpack_from("<QII", block, 8)
    label_type = block[24:32]
    if crc != calc_crc(block[20:]):
        raise LvmFormatError(f"{where} has a bad CRC ({crc:#010x}, computed {calc_crc(block[20:]):#010x})")
    if sector_xl != sector:
        raise LvmFormatError(f"{where} says it is in sector {sector_xl}")
    if label_type != LABEL_TYPE:
        raise LvmFormatError(f"{where} has the type {quoted(label_type)}, not {LABEL_TYPE!r}")
    if not 32 <= header_offset <= SECTOR - 48:
        raise LvmFormatError(f"{where} puts the PV header at {header_offset}, outside the label sector")
    raw_uuid = block[header_offset : header_offset + 32]
    if not _UUID_RE.fullmatch(raw_uuid):
        raise LvmFormatError(f"{where} has a malformed PV UUID {quoted(raw_uuid)}")
    (dev_size,) = struct.unpack_from("<Q", block, header_offset + 32)
    position = header_offset + 40
    data_areas, position = _parse_areas(block, position, size, where, "data")
    metadata_areas, _ = _parse_areas(block, position, size, where, "metadata")
    if not data_areas:
        raise LvmFormatError(f"{where} lists no data area")
    return PvLabel(path, sector, format_uuid(raw_uuid.decode("ascii")), dev_size, data_areas, metadata_areas)


def _parse_areas(block: bytes, position: int, size: int, where: str, kind: str) -> tuple[tuple[Area, ...], int]:
    """The `{offset, size}` list at `position`, ended by a zero entry, each area inside the device."""
    areas: list[Area] = []
    while True:
        if position + 16 > len(block) or len(areas) > MAX_AREAS:
            raise LvmFormatError(f"{where}: the list of {kind} areas has no end inside the label sector")
        offset, length = struct.unpack_from("<QQ", block, position)
        position += 16
        if offset == 0:
            return tuple(areas), position
        # A data area of size 0 means "to the end of the device"; only its start must be inside. A metadata
        # area past the end is kept: reading it fails, and the copy is passed over for another one, as the
        # second copy at the end of a PV is lost from an image cut short (docs/RECOVERY.md).
        if kind == "metadata" and offset + length > size:
            areas.append(Area(offset, length))
            continue
        if offset > size or offset + length > size:
            raise LvmFormatError(
                f"{where}: a {kind} area at byte {offset} of {length} bytes passes the end of the device "
                f"({size} bytes); the device or image is truncated"
            )
        areas.append(Area(offset, length))


def read_mda_header(fd: int, path: str, area: Area) -> MetadataAreaHeader:
    """The header of the metadata area `area`, checked: CRC, magic, version, and that it describes `area`."""
    where = f"the metadata area header of {cut(path)} at byte {area.offset}"
    if area.size < 2 * MDA_HEADER_SIZE:
        raise LvmFormatError(f"{where}: the area is {area.size} bytes, too small for a header and text")
    block = pread_exact(fd, path, area.offset, MDA_HEADER_SIZE, "a metadata area header")
    (crc,) = struct.unpack_from("<I", block, 0)
    if crc != calc_crc(block[4:]):
        raise LvmFormatError(f"{where} has a bad CRC ({crc:#010x}, computed {calc_crc(block[4:]):#010x})")
    if block[4:20] != MDA_MAGIC:
        raise LvmFormatError(f"{where} has the magic {quoted(block[4:20])}, not LVM2's")
    version, start, size = struct.unpack_from("<IQQ", block, 20)
    if version != MDA_VERSION:
        raise LvmFormatError(f"{where} has version {version}; only version {MDA_VERSION} is supported")
    if start != area.offset or size != area.size:
        raise LvmFormatError(
            f"{where} describes an area at {start} of {size} bytes, but the PV header says "
            f"{area.offset} of {area.size} bytes"
        )
    text_offset, text_size, text_crc, flags = struct.unpack_from("<QQII", block, 40)
    ignored = bool(flags & RAW_LOCN_IGNORED)
    if not ignored and text_size:
        if text_size > min(size - MDA_HEADER_SIZE, MAX_TEXT_SIZE):
            raise LvmFormatError(f"{where} says its metadata text is {text_size} bytes, more than the area holds")
        if not MDA_HEADER_SIZE <= text_offset < size:
            raise LvmFormatError(f"{where} puts its metadata text at {text_offset}, outside the area")
    return MetadataAreaHeader(start, size, text_offset, text_size, text_crc, ignored)


def read_metadata_text(fd: int, path: str, header: MetadataAreaHeader) -> str:
    """The current metadata text of an area: a ring buffer whose text may wrap to just after the header."""
    where = f"the metadata text of {cut(path)} in the area at byte {header.start}"
    if header.ignored or not header.text_size:
        raise LvmFormatError(f"{where}: the area holds no current metadata")
    first = min(header.text_size, header.size - header.text_offset)
    data = pread_exact(fd, path, header.start + header.text_offset, first, "a metadata text")
    if first < header.text_size:
        rest = header.text_size - first
        data += pread_exact(fd, path, header.start + MDA_HEADER_SIZE, rest, "a metadata text (wrapped)")
    if calc_crc(data) != header.text_crc:
        raise LvmFormatError(
            f"{where} has a bad CRC ({header.text_crc:#010x}, computed {calc_crc(data):#010x}): "
            "the text is damaged or was being written"
        )
    text = data.rstrip(b"\0")
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as error:
        raise LvmFormatError(f"{where} is not UTF-8 text near byte {error.start}") from None

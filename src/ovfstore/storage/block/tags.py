"""LVM tags of a block domain (docs/FORMATS.md 6.1 and 6.3), pure functions over strings.

The domain metadata lives in VG tags `MDT_<KEY>=<VALUE>`, each character outside LVM's tag alphabet
written `&<decimal code>&`. The lines they decode to are exactly the lines of a file domain's
`dom_md/metadata`, so both are formatted, checksummed and parsed by `storage.metadata` (one definition).
A volume is an LV tagged `IU_<image>`, `PU_<parent>` and `MD_<slot>`. Tags come from a device that may be
damaged or hostile: every escape, number and id is checked, and sizes are bounded.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ovfstore.storage import metadata as md
from ovfstore.storage.errors import InvalidArgument, InvalidMetadata
from ovfstore.store.quoting import quoted

MD_PREFIX = "MDT_"
IMAGE_PREFIX = "IU_"
PARENT_PREFIX = "PU_"
SLOT_PREFIX = "MD_"
REMOVE_PREFIX = "_remove_me_"
INITIALIZING = "OVIRT_VOL_INITIALIZING"
DOMAIN_READY = "RHAT_storage_domain"
DOMAIN_UNREADY = "RHAT_storage_domain_UNREADY"
#: The longest tag LVM accepts (lvm2 2.02.x and later); an encoded value that does not fit is refused.
TAG_MAX = 1024
#: The highest slot number read from a tag: 2**20 slots of 8 KiB already pass 8 GiB, far over a metadata LV.
SLOT_MAX = 1 << 20

# Characters LVM allows in a tag besides `&`, which only starts an escape here.
_PLAIN = re.compile(r"[A-Za-z0-9_+.\-/=!:#]")
_ESCAPE = re.compile(r"&([0-9]{1,7})&")
_TAG_CHARS = re.compile(r"[A-Za-z0-9_+.\-/=!:#&]*")


def encode_value(text: str) -> str:
    """`text` in LVM's tag alphabet: every other character (and `&`) as `&<decimal code>&`."""
    return "".join(c if _PLAIN.fullmatch(c) else f"&{ord(c)}&" for c in text)


def decode_value(text: str) -> str:
    """The text `encode_value` made; a malformed escape, a code that is not a character, or a character
    outside the tag alphabet is `InvalidMetadata`."""
    if len(text) > TAG_MAX or not _TAG_CHARS.fullmatch(text):
        raise InvalidMetadata(f"the tag {quoted(text)} is longer than {TAG_MAX} or holds characters LVM does not write")
    out: list[str] = []
    position = 0
    while position < len(text):
        amp = text.find("&", position)
        if amp < 0:
            out.append(text[position:])
            break
        out.append(text[position:amp])
        match = _ESCAPE.match(text, amp)
        if match is None:
            raise InvalidMetadata(f"the tag {quoted(text)} has a malformed escape at {amp} (expected &<digits>&)")
        code = int(match.group(1))
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise InvalidMetadata(f"the tag {quoted(text)} escapes {code}, which is not a character")
        out.append(chr(code))
        position = match.end()
    return "".join(out)


def domain_tags(values: Mapping[str, str]) -> list[str]:
    """The `MDT_` tags of domain metadata `values`: the lines `metadata.format_domain_metadata` writes
    (the checksum recomputed, the same checks), one tag each."""
    lines = md.format_domain_metadata(values).decode("utf-8").splitlines()
    tags = [MD_PREFIX + encode_value(line) for line in lines]
    for tag in tags:
        if len(tag) > TAG_MAX:
            raise InvalidArgument(
                f"the metadata entry {quoted(tag[:80])} takes {len(tag)} characters as a tag, more than the "
                f"{TAG_MAX} LVM allows; shorten it"
            )
    return tags


def domain_metadata(tags: Iterable[str]) -> md.DomainMetadata:
    """The domain metadata of a VG's tags, parsed and checksum-verified as `dom_md/metadata` is. A key
    given twice, or a value holding a line end once decoded, is damage."""
    lines: list[str] = []
    keys: set[str] = set()
    for tag in tags:
        if not tag.startswith(MD_PREFIX):
            continue
        line = decode_value(tag[len(MD_PREFIX) :])
        key, sep, _ = line.partition("=")
        if not sep or not key:
            raise InvalidMetadata(f"the VG tag {quoted(tag)} is not {MD_PREFIX}KEY=VALUE: damaged domain metadata")
        if any(c in line for c in "\n\r\0"):
            raise InvalidMetadata(f"the VG tag {quoted(tag)} decodes to a line end or NUL: damaged domain metadata")
        if key in keys:
            raise InvalidMetadata(f"the VG tags give the key {quoted(key)} twice; the domain metadata is damaged")
        keys.add(key)
        lines.append(line)
    if not lines:
        raise InvalidMetadata(f"the VG has no {MD_PREFIX} tags: it holds no storage domain metadata")
    return md.parse_domain_metadata(("\n".join(lines) + "\n").encode("utf-8"))


def _uuid(value: str, tag: str) -> str:
    try:
        parsed = uuid.UUID(value) if len(value) == 36 else None
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != value.lower():
        raise InvalidMetadata(f"the LV tag {quoted(tag)} does not hold an id (a UUID)")
    return str(parsed)


@dataclass(frozen=True)
class VolumeTags:
    """What a volume's LV tags say. `image` is empty for an LV of no image (a special LV); `removing`
    marks an image being deleted (`IU__remove_me_...`), `initializing` a volume whose creation did not
    finish: neither is a volume of an image."""

    image: str = ""
    parent: str = ""
    slot: int | None = None
    initializing: bool = False
    removing: bool = False

    @property
    def is_volume(self) -> bool:
        return bool(self.image) and not self.initializing and not self.removing


def parse_volume_tags(tags: Iterable[str]) -> VolumeTags:
    """The volume tags of an LV; a malformed or repeated one is `InvalidMetadata`."""
    image = parent = ""
    slot: int | None = None
    initializing = removing = False
    for tag in tags:
        if tag == INITIALIZING:
            initializing = True
        elif tag.startswith(IMAGE_PREFIX):
            value = tag[len(IMAGE_PREFIX) :]
            if value.startswith(REMOVE_PREFIX):
                removing = True
                value = value[len(REMOVE_PREFIX) :].removeprefix("ZERO_")
            if image:
                raise InvalidMetadata(f"the LV has two image tags, {quoted(image)} and {quoted(tag)}")
            image = _uuid(value, tag)
        elif tag.startswith(PARENT_PREFIX):
            if parent:
                raise InvalidMetadata(f"the LV has two parent tags ({quoted(tag)})")
            parent = _uuid(tag[len(PARENT_PREFIX) :], tag)
        elif tag.startswith(SLOT_PREFIX):
            digits = tag[len(SLOT_PREFIX) :]
            if slot is not None:
                raise InvalidMetadata(f"the LV has two metadata slot tags ({quoted(tag)})")
            if not (digits.isascii() and digits.isdigit() and len(digits) <= 7) or int(digits) > SLOT_MAX:
                raise InvalidMetadata(f"the LV tag {quoted(tag)} does not hold a slot number of at most {SLOT_MAX}")
            slot = int(digits)
    return VolumeTags(image, parent, slot, initializing, removing)


def volume_tags(image: str, parent: str, slot: int) -> list[str]:
    """The tags of a finished volume."""
    return [IMAGE_PREFIX + image, PARENT_PREFIX + parent, SLOT_PREFIX + str(slot)]


def removing_tag(image: str) -> str:
    return IMAGE_PREFIX + REMOVE_PREFIX + image

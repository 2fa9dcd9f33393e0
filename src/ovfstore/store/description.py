"""The DESCRIPTION of an OVF store volume: a JSON object that tells readers whether the store holds a
complete tar and how many bytes of the volume it uses (docs/FORMATS.md section 2).

- never written: `{"DiskAlias":"OVF_STORE","DiskDescription":"OVF_STORE"}`
- being written: `{"Updated":false,"Last Updated":<previous or null>,"Storage Domains":[...],...}`
- written:       `{"Updated":true,"Size":<tar bytes>,"Last Updated":"<java date>",...}`

The volume metadata keeps at most 210 characters of description; all three forms fit easily.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from ovfstore.store.javadate import JavaDateError, format_java_date, parse_java_date
from ovfstore.store.quoting import quoted

OVF_STORE = "OVF_STORE"
MAX_DESCRIPTION = 210


@dataclass(frozen=True, slots=True)
class StoreDescription:
    updated: bool | None  # None: the store was never written
    size: int | None = None
    last_updated: datetime | None = None
    last_updated_text: str | None = None  # as found, for stores written in another zone
    domain_ids: tuple[UUID, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def complete(self) -> bool:
        """The volume holds a whole tar of `size` bytes, as far as its description says."""
        return self.updated is True and self.size is not None


def never_written() -> str:
    return _dump({"DiskAlias": OVF_STORE, "DiskDescription": OVF_STORE})


def before_write(domain_id: UUID, previous_last_updated: str | None) -> str:
    return _dump(
        {
            "Updated": False,
            "Last Updated": previous_last_updated,
            "Storage Domains": [{"uuid": str(domain_id)}],
            "Disk Description": OVF_STORE,
        }
    )


def after_write(domain_id: UUID, size: int, when: datetime) -> str:
    return _dump(
        {
            "Updated": True,
            "Size": size,
            "Last Updated": format_java_date(when),
            "Storage Domains": [{"uuid": str(domain_id)}],
            "Disk Description": OVF_STORE,
        }
    )


def is_store_description(text: str) -> bool:
    """Engines before 4.2 marked stores only by this text (and `DISKTYPE=2`)."""
    return OVF_STORE in text


def parse(text: str) -> StoreDescription:
    """Read a store volume's description. Anything that is not one of the three forms reads as a store
    of unknown state (updated None) with a warning: the tar itself decides then."""
    try:
        value = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):  # malformed, a huge number, or nested too deeply
        value = None
    if not isinstance(value, dict):
        return StoreDescription(updated=None, warnings=(f"description is not a JSON object: {quoted(text[:80])}",))
    warnings: list[str] = []
    updated = value.get("Updated")
    if updated is not None and not isinstance(updated, bool):
        warnings.append(f"'Updated' is {quoted(updated)}, not true or false")
        updated = None
    size = value.get("Size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 2**63):
        warnings.append(f"'Size' is {quoted(size)}, not a byte count")
        size = None
    last_text = value.get("Last Updated")
    last: datetime | None = None
    if isinstance(last_text, str):
        try:
            last, warning = parse_java_date(last_text)
            if warning:
                warnings.append(warning)
        except JavaDateError as exc:
            warnings.append(str(exc))
    domains: list[UUID] = []
    entries = value.get("Storage Domains") or []
    if not isinstance(entries, list):
        warnings.append(f"'Storage Domains' is {quoted(entries)}, not a list")
        entries = []
    for entry in entries[:16]:  # a store names its one domain; more is damage
        try:
            domains.append(UUID(str(entry["uuid"])))
        except (KeyError, TypeError, ValueError):
            warnings.append(f"bad storage domain entry {quoted(entry)}")
    return StoreDescription(
        updated=updated,
        size=size,
        last_updated=last,
        last_updated_text=last_text if isinstance(last_text, str) else None,
        domain_ids=tuple(domains),
        warnings=tuple(warnings),
    )


def _dump(value: dict[str, object]) -> str:
    text = json.dumps(value, separators=(",", ":"))
    if len(text) > MAX_DESCRIPTION:  # cannot happen with one domain id; a guard against future edits
        raise ValueError(f"store description is {len(text)} characters; volumes keep {MAX_DESCRIPTION}")
    return text

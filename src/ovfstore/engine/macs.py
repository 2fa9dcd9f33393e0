"""MAC addresses: parsing, the data center's pool range, and allocation of the next free address."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ovfstore.engine.errors import Conflict, InvalidInput

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def normalize(mac: str) -> str:
    """`56:6F:00:00:00:01` -> `56:6f:00:00:00:01`; anything else that is not six colon-separated
    hex octets is refused. Multicast addresses are refused too: a NIC cannot use one."""
    value = mac.strip().lower().replace("-", ":")
    if not _MAC.match(value):
        raise InvalidInput(f"MAC address {mac!r} is not six hex octets separated by colons (56:6f:00:00:00:01)")
    if int(value[:2], 16) & 1:
        raise InvalidInput(f"MAC address {mac!r} is a multicast address; a NIC needs a unicast one")
    return value


def to_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def from_int(value: int) -> str:
    raw = f"{value:012x}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def check_range(start: str, end: str) -> tuple[str, str]:
    start, end = normalize(start), normalize(end)
    if to_int(start) > to_int(end):
        raise InvalidInput(f"MAC pool range {start}-{end} is empty: the start must not be after the end")
    return start, end


def in_range(mac: str, start: str, end: str) -> bool:
    return to_int(start) <= to_int(mac) <= to_int(end)


def next_free(start: str, end: str, used: Iterable[str]) -> str:
    """The lowest address of the range not in `used`."""
    taken = {to_int(m) for m in used}
    low, high = to_int(start), to_int(end)
    candidate = low
    for value in sorted(v for v in taken if low <= v <= high):
        if value != candidate:
            break
        candidate += 1
    if candidate > high:
        raise Conflict(f"the MAC pool {start}-{end} is exhausted; widen the data center's MAC range")
    return from_int(candidate)

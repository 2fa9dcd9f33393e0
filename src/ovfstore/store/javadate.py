"""Java's `Date.toString()` form, `EEE MMM dd HH:mm:ss zzz yyyy`, which oVirt writes into store
descriptions and `info.json` ("Thu Feb 18 00:23:07 UTC 2016").

We always write UTC. oVirt writes its local zone's abbreviation; we read the abbreviations in use where
oVirt engines run and treat an unknown one as UTC, saying so, because a store's age only orders stores
and an error of hours between two engines' stores is far better than refusing to read them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from ovfstore.store.quoting import quoted

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FORM = re.compile(
    r"^(?:[A-Z][a-z]{2}) ([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})"  # Thu Feb 18 00:23:07
    r" ([A-Za-z][A-Za-z0-9+:-]*) (\d{4})$"  # UTC 2016
)

# Offsets in hours. IST is Israel Standard Time here, not India's: oVirt's engineers and many of its
# engines were in Israel, and oVirt's own stores show IST/IDT pairs.
ZONES: dict[str, float] = {
    "UTC": 0, "GMT": 0, "UT": 0, "Z": 0, "WET": 0, "WEST": 1, "BST": 1, "IST": 2, "IDT": 3,
    "CET": 1, "CEST": 2, "MET": 1, "MEST": 2, "EET": 2, "EEST": 3, "MSK": 3,
    "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    "AKST": -9, "AKDT": -8, "HST": -10, "JST": 9, "KST": 9, "AEST": 10, "AEDT": 11, "ACST": 9.5,
    "AWST": 8, "NZST": 12, "NZDT": 13, "SGT": 8, "HKT": 8, "BRT": -3, "ART": -3,
}  # fmt: skip


class JavaDateError(ValueError):
    pass


def format_java_date(moment: datetime) -> str:
    """`Thu Feb 18 00:23:07 UTC 2016`, always in UTC."""
    utc = moment.astimezone(UTC)
    return (
        f"{_DAYS[utc.weekday()]} {_MONTHS[utc.month - 1]} {utc.day:02d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d} UTC {utc.year:04d}"
    )


def parse_java_date(text: str) -> tuple[datetime, str | None]:
    """The moment, and a warning when the zone was not known and UTC was assumed."""
    match = _FORM.match(text.strip())
    if match is None:
        raise JavaDateError(f"{quoted(text)} is not a date of the form 'Thu Feb 18 00:23:07 UTC 2016'")
    month_name, day, hour, minute, second, zone, year = match.groups()
    if month_name not in _MONTHS:
        raise JavaDateError(f"{quoted(text)}: unknown month {month_name!r}")
    warning = None
    offset = _offset(zone)
    if offset is None:
        warning = f"unknown time zone {zone!r} in {quoted(text)}; read as UTC"
        offset = timedelta(0)
    try:
        moment = datetime(
            int(year), _MONTHS.index(month_name) + 1, int(day), int(hour), int(minute), int(second),
            tzinfo=timezone(offset),
        )  # fmt: skip
    except ValueError as exc:
        raise JavaDateError(f"{quoted(text)}: {exc}") from exc
    return moment.astimezone(UTC), warning


def _offset(zone: str) -> timedelta | None:
    if zone in ZONES:
        return timedelta(hours=ZONES[zone])
    # Java also prints "GMT+02:00" for zones without an abbreviation.
    match = re.fullmatch(r"(?:GMT|UTC)([+-])(\d{1,2}):?(\d{2})?", zone)
    if match:
        sign = 1 if match.group(1) == "+" else -1
        return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))
    return None

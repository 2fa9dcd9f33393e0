"""Which OVF store of a domain to believe.

Every store volume is judged on its own: its volume must be legal (the agent marks a volume ILLEGAL from
the start of a write until its fsync), its description must say the write completed and how many bytes
the tar takes, and the tar must read cleanly and match its manifest (oVirt's stores have none and are
accepted as unverified when they read cleanly). Of the good ones the newest wins: the highest store
generation, then the latest `Last Updated`. A store passed over keeps the reason, for the operator.

Pure: the caller supplies a `read(size)` that streams the volume's first `size` bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from ovfstore.store import description
from ovfstore.store.tarread import OnOvf, StoreReadError, StoreSummary, scan_store

#: VDSM's DISKTYPE of an OVF store since oVirt 4.2 (what this project writes), and the older numeric one.
STORE_DISK_TYPE = "OVFS"
STORE_DISK_TYPES = (STORE_DISK_TYPE, "2")


@dataclass(frozen=True, slots=True)
class StoreVolume:
    disk_id: UUID
    volume_id: UUID
    capacity: int
    disk_type: str
    description: str
    legality: str = "LEGAL"


def is_store(disk_type: str, volume_description: str) -> bool:
    """Whether a volume is an OVF store: by its DISKTYPE, or by its description, which names a store in
    every version (engines before 4.2 marked stores only so). The one definition of the rule."""
    return disk_type in STORE_DISK_TYPES or description.is_store_description(volume_description)


@dataclass(slots=True)
class StoreVerdict:
    volume: StoreVolume
    description: description.StoreDescription
    summary: StoreSummary | None = None
    error: str | None = None
    chosen: bool = False
    # The volume could not be read at all (an I/O or agent failure), as opposed to read and found
    # damaged: its content is unknown, and may well be the good copy.
    unreadable: bool = False

    @property
    def valid(self) -> bool:
        return self.summary is not None and self.error is None

    @property
    def verified(self) -> bool:
        return self.summary is not None and self.summary.verified

    @property
    def generation(self) -> int | None:
        if self.summary is None or self.summary.manifest is None:
            return None
        return self.summary.manifest.generation

    @property
    def segments(self) -> int | None:
        """The segments of its tar: 1 for a store written whole, more when segments were appended."""
        return None if self.summary is None else self.summary.segments

    @property
    def last_updated(self) -> datetime | None:
        return self.description.last_updated


def evaluate(
    volume: StoreVolume,
    read: Callable[[int], Iterable[bytes]],
    on_ovf: OnOvf | None = None,
    final: StoreSummary | None = None,
) -> StoreVerdict:
    """Judge one store volume, reading it only when its metadata says it holds a complete tar. `on_ovf`
    and `final` as `scan_store` takes them: a second read, given the first one's summary as `final`,
    delivers only the final version of each entity, and refuses a store that changed in between."""
    desc = description.parse(volume.description)
    verdict = StoreVerdict(volume, desc)
    if volume.legality.upper() != "LEGAL":
        verdict.error = f"the volume is {volume.legality}: a write into it did not finish"
    elif desc.updated is None:
        verdict.error = "never written" if "DiskAlias" in volume.description else "its description is not readable"
    elif desc.updated is False:
        verdict.error = "a write into it did not finish (Updated is false)"
    elif desc.size is None:
        verdict.error = "its description gives no Size"
    elif desc.size > volume.capacity:
        verdict.error = f"its description claims {desc.size} bytes, more than the volume's {volume.capacity}"
    if verdict.error is not None:
        return verdict
    assert desc.size is not None
    try:
        verdict.summary = scan_store(read(desc.size), desc.size, on_ovf, final)
    except StoreReadError as exc:
        verdict.error = str(exc)
    except OSError as exc:  # reading the volume itself failed
        verdict.error = f"the volume could not be read: {exc}"
        verdict.unreadable = True
    return verdict


def choose(verdicts: Sequence[StoreVerdict]) -> StoreVerdict | None:
    """The newest valid store, marked `chosen`; None when no store is usable."""
    oldest = datetime.min.replace(tzinfo=UTC)
    valid = [v for v in verdicts if v.valid]
    if not valid:
        return None
    best = max(valid, key=lambda v: (v.generation if v.generation is not None else -1, v.last_updated or oldest))
    best.chosen = True
    return best

"""Stores that grow with their domain: the "size the store" step of the domain step.

Before a store is written, its capacity is set for the tar about to go into it (`target_capacity`):
kept while the tar fits and takes more than a quarter of it; otherwise the smallest of `store_capacity`,
twice that, four times that... that holds the tar with a quarter to spare, never above the ceiling
(`store_capacity_max`). A tar larger than the ceiling (and than the store) is refused (`TooLarge`), the
stores left as they are.

The A/B guarantee holds because sizing is part of writing one store: the domain step sizes and writes
its stores in its write order (never-written and oldest first, the last good one last, and each only
after the one before succeeded), so a store is resized only when it is about to be rewritten whole, and
the last good one only once another store holds the new tar, written and verified. A store made
smaller says `Updated:false` in its description before its volume is touched, and is ILLEGAL on storage
until written again (the agent marks it), so no reader takes a cut tar for a store. A store grown keeps
its copy readable (its bytes and `Size` are unchanged) until its write begins: a grow that fails (no free
extents in the VG) leaves it as good as it was, which matters most for a domain's only store.

The store's capacity is taken from storage, not from the inventory: a resize whose answer was lost
leaves the two apart, and sizing by the inventory's figure would write a tar into a volume too small
for it, again at every run.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from ovfstore.agent.client import AgentClient
from ovfstore.engine import events
from ovfstore.engine.config import UpdaterConfig
from ovfstore.engine.db.database import Database
from ovfstore.engine.inventory import Inventory
from ovfstore.engine.updater.failures import TooLarge, agent_errors
from ovfstore.engine.updater.records import StoreRecord
from ovfstore.model import StorageDomain
from ovfstore.store import description

log = logging.getLogger(__name__)

#: A grown store holds its tar with this share to spare (a quarter), so a domain growing slowly is not
#: resized at every write; a store is made smaller once its tar takes less than `1 / SHRINK_BELOW` of it.
SPARE = 4
SHRINK_BELOW = 4


def ceiling(config: UpdaterConfig) -> int:
    """The largest capacity a store grows to: `store_capacity_max` (never below `store_capacity`), in
    whole 512-byte sectors as volumes are."""
    top = max(config.store_capacity_max, config.store_capacity)
    return top - top % 512


def target_capacity(length: int, current: int, config: UpdaterConfig) -> int:
    """The capacity a store of `current` bytes should have to take a tar of `length` bytes (`current`
    when it is to stay as it is). Raises `TooLarge` when the tar fits neither the store nor the ceiling."""
    top = ceiling(config)
    if length > max(current, top):
        raise TooLarge(
            f"the store tar is {length} bytes, more than the ceiling of {top} bytes a store may grow to "
            f"([updater] store_capacity_max, OVFSTORE_UPDATER_STORE_CAPACITY_MAX); the old stores are kept intact. "
            "Raise store_capacity_max or split the domain's VMs over more domains"
        )
    too_small = length > current
    too_large = current > config.store_capacity and length < current // SHRINK_BELOW
    if not (too_small or too_large):
        return current
    wanted = config.store_capacity
    while wanted < length + length // SPARE and wanted < top:
        wanted *= 2
    wanted = min(wanted, top)
    # Made smaller only to a size that still holds the tar: under a lowered ceiling, a store above it keeps
    # a tar it holds rather than be cut below it.
    return wanted if too_small or length <= wanted < current else current


def size_store(
    db: Database, inventory: Inventory, client: AgentClient, domain: StorageDomain, store: StoreRecord,
    stored: int, length: int, previous: str | None, config: UpdaterConfig, now: datetime,
) -> StoreRecord:  # fmt: skip
    """The store, resized on storage for a tar of `length` bytes if it must be (an event says so), and in
    the inventory. `stored` is its capacity as storage has it, which wins over the inventory's (a resize
    whose answer was lost, an engine stopped before recording it). `previous` is the store's last
    `Last Updated`, kept in its `Updated:false` description."""
    if stored != store.capacity:
        log.warning("store %s: %d bytes on storage, %d recorded; storage wins", store.disk_id, stored, store.capacity)
        inventory.disks.resize_store_disk(store.disk_id, stored)
        store = replace(store, capacity=stored)
    capacity = target_capacity(length, store.capacity, config)
    if capacity == store.capacity:
        return store
    with agent_errors(f"resizing store {store.disk_id} to {capacity} bytes failed"):
        if capacity < store.capacity:  # its tar may be cut: no longer a store to read, before the first change
            client.set_description(
                domain.id, store.disk_id, store.volume_id, description.before_write(domain.id, previous)
            )
        info = client.resize_volume(domain.id, store.disk_id, store.volume_id, capacity)
    inventory.disks.resize_store_disk(store.disk_id, info.capacity)
    grown = info.capacity > store.capacity
    events.record(
        db, now, events.Severity.NORMAL, "ovf_store_grown" if grown else "ovf_store_shrunk",
        f"OVF store {store.disk_id} of domain {domain.name} {'grown' if grown else 'made smaller'} from "
        f"{store.capacity} to {info.capacity} bytes for a tar of {length} bytes (at most {ceiling(config)}, "
        "[updater] store_capacity_max)",
        domain.id,
    )  # fmt: skip
    return replace(store, capacity=info.capacity)

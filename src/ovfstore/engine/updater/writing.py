"""One store written, as docs/FORMATS.md section 2 says: the description `Updated:false`, the bytes
(streamed from the engine, or copied by the agent from a store written before in the same run), durable,
then `Updated:true` with the store's new `Size`. The one place of that protocol, for whole tars and
appended segments alike (a whole tar is the bytes from offset 0)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ovfstore.agent.client import AgentClient, WriteResult
from ovfstore.agent.errors import AgentError
from ovfstore.engine.updater.records import StoreRecord
from ovfstore.store import description


@dataclass(frozen=True, slots=True)
class Bytes:
    """What a store receives: `length` bytes at `offset`, making its `Size` `store_size`. `chunks` streams
    them; `source` (a store of the same run, with the SHA-256 its write returned) has the agent copy them."""

    chunks: Callable[[], Iterable[bytes]]
    length: int
    offset: int
    store_size: int


def write_store(
    client: AgentClient, domain_id: UUID, store: StoreRecord, data: Bytes, source: tuple[StoreRecord, str] | None,
    previous: str | None, now: datetime,
) -> WriteResult:  # fmt: skip
    """Write `data` into `store` (copied from `source` when given); `previous`: the `Last Updated` its
    description had. The agent client has compared the agent's SHA-256 of what reached the disk with what
    was meant; the length is checked here."""
    client.set_description(domain_id, store.disk_id, store.volume_id, description.before_write(domain_id, previous))
    if source is None:
        written = client.upload(
            domain_id, store.disk_id, store.volume_id, data.chunks(), data.length, offset=data.offset
        )
    else:
        first, sha256 = source
        written = client.copy(
            domain_id, store.disk_id, store.volume_id, first.disk_id, first.volume_id, data.length, sha256,
            offset=data.offset,
        )  # fmt: skip
    if written.size != data.length:
        raise AgentError(
            f"the agent reports {written.size} bytes with SHA-256 {written.sha256}, the engine sent {data.length}",
            "transfer_corrupted",
        )
    client.set_description(
        domain_id, store.disk_id, store.volume_id, description.after_write(domain_id, data.store_size, now)
    )
    return written

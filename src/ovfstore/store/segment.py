"""An appended segment of a store: what an incremental update writes after a store's last member.

docs/FORMATS.md section 3 describes the layout: the changed `<id>.ovf` members, `metadata.json` when the
status map changed, `info.json`, and a format-2 manifest that names the previous segment's generation and
the offset where this segment starts, and the entities removed since; then the end-of-archive. The
segment's first header goes where the store's end-of-archive was, so the store's new `Size` is
`offset + length`. As with a whole tar, the length is exact before the first byte is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from uuid import UUID

from ovfstore.store import manifest
from ovfstore.store.javadate import format_java_date
from ovfstore.store.tarstream import (
    BLOCK,
    END_OF_ARCHIVE,
    INFO_NAME,
    MAX_MEMBER,
    METADATA_NAME,
    EntityRef,
    Fetch,
    MemberStream,
    StoreBuildError,
    padded,
    stream_documents,
)


class SegmentTar:
    """One segment appended at `offset` (where the store's end-of-archive starts) of a store whose last
    segment has generation `previous_generation`. `length`: its bytes, end-of-archive included."""

    def __init__(
        self, *, domain_id: UUID, generation: int, previous_generation: int, offset: int, writer: str,
        created: datetime, entities: Sequence[EntityRef], removed: Sequence[UUID], metadata: bytes | None,
        fetch: Fetch,
    ) -> None:  # fmt: skip
        if offset % BLOCK or offset < 0:
            raise StoreBuildError(f"a segment starts on a {BLOCK}-byte block, not at byte {offset}")
        if generation <= previous_generation:
            raise StoreBuildError(f"generation {generation} does not follow {previous_generation}")
        both = {e.id for e in entities} & set(removed)
        if both:
            raise StoreBuildError(f"entity {min(both)} is both written and removed in one segment")
        oversized = [e for e in entities if e.size > MAX_MEMBER]
        if oversized:
            raise StoreBuildError(f"the OVF of {oversized[0].id} is over {MAX_MEMBER} bytes")
        self.generation = generation
        self.previous = manifest.Previous(previous_generation, offset)
        self.offset = offset
        self.writer = writer
        self.created = created.replace(microsecond=0)
        self.entities = entities
        self.removed = sorted(removed)
        self.metadata = metadata
        self._fetch = fetch
        self._mtime = int(self.created.timestamp())
        self.info = json.dumps(
            {"Last Updated": format_java_date(self.created), "Storage Domains": [{"uuid": str(domain_id)}]}
        ).encode()
        listed = [(f"{e.id}.ovf", e.size) for e in entities]
        if metadata is not None:
            listed.append((METADATA_NAME, len(metadata)))
        listed.append((INFO_NAME, len(self.info)))
        self._listed = listed
        manifest_size = manifest.encoded_segment_size(generation, writer, self.created, listed, self.previous, removed)
        self.length = sum(BLOCK + padded(s) for _, s in listed) + BLOCK + padded(manifest_size) + len(END_OF_ARCHIVE)

    @property
    def store_size(self) -> int:
        """The store's `Size` once the segment is written."""
        return self.offset + self.length

    def chunks(self) -> Iterator[bytes]:
        out = MemberStream(self._listed, self._mtime)
        yield from stream_documents(self.entities, self._fetch, out)
        if self.metadata is not None:
            yield from out.member(self.metadata)
        yield from out.member(self.info)
        encoded = manifest.encode_segment(
            self.generation, self.writer, self.created, out.digests(), self.previous, self.removed
        )
        yield from out.finish(encoded, self.length)

"""The writer of appended segments (`store.segment`): exact length, layout, manifest, and a store with
segments read back by Python's tarfile the way oVirt's engine reads it (a map by name, the last wins)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from ovfstore.store.segment import SegmentTar
from ovfstore.store.tarstream import END_OF_ARCHIVE, EntityRef, StoreBuildError, StoreTar, metadata_json

WHEN = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
DOMAIN = UUID(int=7)


def _fetch(docs: dict[UUID, bytes]) -> object:
    def fetch(ids: Sequence[UUID]) -> Iterable[tuple[UUID, bytes]]:
        return [(i, docs[i]) for i in ids]

    return fetch


def _docs(n: int, fill: bytes = b"A") -> dict[UUID, bytes]:
    return {uuid4(): b"<ovf>" + fill * (300 + 37 * i) + b"</ovf>" for i in range(n)}


def _whole(docs: dict[UUID, bytes]) -> bytes:
    tar = StoreTar(
        domain_id=DOMAIN, generation=5, writer="w", created=WHEN,
        entities=[EntityRef(k, len(v)) for k, v in docs.items()], unregistered=[], vm_status={},
        fetch=_fetch(docs),  # type: ignore[arg-type]
    )  # fmt: skip
    data = b"".join(tar.chunks())
    assert len(data) == tar.length
    return data


def _segment(store: bytes, docs: dict[UUID, bytes], previous: int, removed: Sequence[UUID] = (),
             metadata: bytes | None = None) -> SegmentTar:  # fmt: skip
    return SegmentTar(
        domain_id=DOMAIN, generation=previous + 1, previous_generation=previous, offset=len(store) - 1024,
        writer="w", created=WHEN, entities=[EntityRef(k, len(v)) for k, v in sorted(docs.items())], removed=removed,
        metadata=metadata, fetch=_fetch(docs),  # type: ignore[arg-type]
    )  # fmt: skip


def _append(store: bytes, segment: SegmentTar) -> bytes:
    data = b"".join(segment.chunks())
    assert len(data) == segment.length
    assert store[segment.offset :] == END_OF_ARCHIVE
    result = store[: segment.offset] + data
    assert len(result) == segment.store_size
    return result


def _as_ovirt_reads(store: bytes) -> dict[str, bytes]:
    """A map from member name to content, the last member of a name winning: how oVirt reads a store."""
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(store), mode="r:") as tar:
        for member in tar:
            handle = tar.extractfile(member)
            assert handle is not None
            found[member.name] = handle.read()
    return found


def test_a_segment_appended_twice_reads_as_the_latest_state() -> None:
    docs = _docs(5)
    store = _whole(docs)
    first_id, second_id = sorted(docs)[:2]
    changed = {first_id: b"<ovf>changed</ovf>"}
    metadata = metadata_json({second_id: 1})
    segment = _segment(store, changed, 5, metadata=metadata)
    store = _append(store, segment)
    new = {uuid4(): b"<ovf>new</ovf>"}
    store = _append(store, _segment(store, new, 6, removed=[second_id]))

    seen = _as_ovirt_reads(store)
    assert seen[f"{first_id}.ovf"] == b"<ovf>changed</ovf>"
    assert seen[f"{next(iter(new))}.ovf"] == b"<ovf>new</ovf>"
    assert f"{second_id}.ovf" in seen  # oVirt still lists a removed entity until the store is compacted
    assert json.loads(seen["metadata.json"]) == {"VM Status": {str(second_id): 1}}
    manifest = json.loads(seen["manifest.json"])
    assert manifest["format"] == 2
    assert manifest["generation"] == 7
    assert manifest["removed"] == [str(second_id)]
    assert manifest["previous"] == {"generation": 6, "offset": segment.store_size - 1024}
    assert [m["name"] for m in manifest["members"]] == [f"{next(iter(new))}.ovf", "info.json"]


def test_the_segment_names_where_it_starts_and_what_it_follows() -> None:
    store = _whole(_docs(2))
    segment = _segment(store, {}, 5)
    manifest = json.loads(_as_ovirt_reads(_append(store, segment))["manifest.json"])
    assert manifest["previous"] == {"generation": 5, "offset": len(store) - 1024}
    assert [m["name"] for m in manifest["members"]] == ["info.json"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"offset": 100}, "starts on a 512-byte block"),
        ({"generation": 5}, "does not follow"),
    ],
)
def test_bad_segments_are_refused_before_a_byte_is_sent(kwargs: dict[str, int], message: str) -> None:
    args: dict[str, object] = {
        "domain_id": DOMAIN, "generation": 6, "previous_generation": 5, "offset": 1024, "writer": "w",
        "created": WHEN, "entities": [], "removed": [], "metadata": None, "fetch": _fetch({}),
    }  # fmt: skip
    args.update(kwargs)
    with pytest.raises(StoreBuildError, match=message):
        SegmentTar(**args)  # type: ignore[arg-type]


def test_an_entity_both_written_and_removed_is_refused() -> None:
    docs = _docs(1)
    store = _whole(docs)
    with pytest.raises(StoreBuildError, match="both written and removed"):
        _segment(store, docs, 5, removed=list(docs))


def test_a_document_that_changed_size_fails_the_segment() -> None:
    docs = _docs(1)
    store = _whole(docs)
    segment = _segment(store, docs, 5)
    docs[next(iter(docs))] += b"more"
    with pytest.raises(StoreBuildError, match="changed size"):
        b"".join(segment.chunks())

"""Reading stores with appended segments (docs/FORMATS.md section 3), built with `tarfile` and manifests
encoded by hand (`tests/fixtures/segments.py`), independent of ovfstore's writer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from ovfstore.store import manifest as mf
from ovfstore.store.tarread import StoreContents, StoreReadError, read_store, scan_store
from tests.fixtures.segments import SegmentedStore, info, manifest_json, metadata, ovf

A, B, C, D = (UUID(int=i) for i in (0xA, 0xB, 0xC, 0xD))


def base(*, unregistered: dict[UUID, bytes] | None = None) -> SegmentedStore:
    members = [("info.json", info("Mon Jan 01 00:00:00 UTC 2024")), (f"{A}.ovf", ovf(A, 1)), (f"{B}.ovf", ovf(B, 1))]
    members.append(("metadata.json", metadata({A: 1})))
    members += [(f"{k}.ovf", v) for k, v in (unregistered or {}).items()]
    return SegmentedStore().segment(members, generation=5)


def later(*entities: tuple[UUID, int], status: dict[UUID, int] | None = None) -> list[tuple[str, bytes]]:
    members = [(f"{e}.ovf", ovf(e, v)) for e, v in entities]
    if status is not None:
        members.append(("metadata.json", metadata(status)))
    return [*members, ("info.json", info("Tue Jan 02 00:00:00 UTC 2024"))]


def read(data: bytes) -> StoreContents:
    return read_store([data], len(data))


def test_a_whole_store_is_one_segment() -> None:
    data = base().tar()
    contents = read_store([data], len(data))
    assert contents.segments == 1
    assert contents.entity_ids == [A, B]
    assert contents.final_segments == {}, "nothing to remember for a store of one segment"
    assert contents.manifest is not None
    assert (contents.manifest.format, contents.manifest.generation) == (1, 5)


def test_two_segments_a_later_version_wins_and_the_last_metadata_and_info_win() -> None:
    store = base().segment(later((B, 2), (C, 1), status={B: 1, C: 4}), generation=6)
    data = store.tar()
    contents = read_store([data], len(data))
    assert contents.segments == 2
    assert contents.manifest is not None
    assert contents.manifest.generation == 6, "the store's is the last one's"
    assert contents.manifest.previous == mf.Previous(5, store.offsets[1])
    assert contents.entity_ids == [A, B, C], "first-appearance order, each once"
    assert contents.ovfs == {A: ovf(A, 1), B: ovf(B, 2), C: ovf(C, 1)}
    assert contents.vm_status == {B: 1, C: 4}, "the last metadata.json is the complete map: A no longer runs"
    assert contents.info["Last Updated"] == "Tue Jan 02 00:00:00 UTC 2024"
    assert contents.final_segments == {A: 0, B: 1, C: 1}


def test_three_segments_removed_then_added_again() -> None:
    store = base().segment(later((C, 1)), removed=[A]).segment(later((A, 3)), removed=[B, C])
    contents = read_store([store.tar()], len(store.tar()))
    assert contents.segments == 3
    assert contents.manifest is not None
    assert contents.manifest.generation == 7
    assert contents.entity_ids == [A]
    assert contents.ovfs == {A: ovf(A, 3)}
    assert contents.removed_ids == [B, C]
    assert contents.vm_status == {A: 1}, "no later metadata.json: the base one stands"


def test_a_removed_entity_stays_removed_and_an_unregistered_one_updated_becomes_registered() -> None:
    store = base(unregistered={C: ovf(C, 1), D: ovf(D, 1)}).segment(later((C, 2)), removed=[A, D])
    contents = read(store.tar())
    assert contents.entity_ids == [B, C]
    assert contents.unregistered_ids == []
    assert contents.removed_ids == [A, D]
    assert contents.ovfs == {B: ovf(B, 1), C: ovf(C, 2)}
    kept = read(base(unregistered={C: ovf(C, 1)}).segment(later((B, 2))).tar())
    assert (kept.entity_ids, kept.unregistered_ids) == ([A, B], [C]), "unregistered stays so when not rewritten"


def test_final_only_delivery_gives_each_final_entity_once() -> None:
    store = base(unregistered={D: ovf(D, 1)}).segment(later((B, 2), (C, 1)), removed=[A])
    store.segment(later((C, 2), (A, 4)))
    data = store.tar()
    first = scan_store([data], len(data))
    every: list[tuple[UUID, bytes, bool]] = []
    scan_store([data], len(data), lambda i, d, u: every.append((i, d, u)))
    assert [i for i, _, _ in every] == [A, B, D, B, C, C, A], "without final, every occurrence"
    finals: list[tuple[UUID, bytes, bool]] = []
    second = scan_store([data], len(data), lambda i, d, u: finals.append((i, d, u)), final=first)
    assert sorted(finals) == sorted(
        [(B, ovf(B, 2), False), (D, ovf(D, 1), True), (C, ovf(C, 2), False), (A, ovf(A, 4), False)]
    )
    assert second.entity_ids == first.entity_ids == [B, C, A]
    assert second.unregistered_ids == [D]


def test_final_only_delivery_refuses_a_store_that_changed_between_the_reads() -> None:
    store = base().segment(later((B, 2)))
    before = store.tar()
    first = scan_store([before], len(before))
    grown = store.segment(later((C, 1))).tar()
    with pytest.raises(StoreReadError, match="changed since it was first read"):
        scan_store([grown], len(grown), lambda *_: None, final=first)
    rewritten = SegmentedStore().segment([("info.json", info()), (f"{B}.ovf", ovf(B, 9))], generation=9).tar()
    with pytest.raises(StoreReadError, match="changed since it was first read"):
        scan_store([rewritten], len(rewritten), lambda *_: None, final=first)
    whole = base().tar()
    one = scan_store([whole], len(whole))
    with pytest.raises(StoreReadError, match="changed since it was first read"):
        scan_store([before], len(before), lambda *_: None, final=one)


def test_duplicates_are_refused_within_a_segment_but_not_across() -> None:
    twice = base().segment([(f"{C}.ovf", ovf(C, 1)), (f"{C}.ovf", ovf(C, 2)), ("info.json", info())])
    with pytest.raises(StoreReadError, match="appears twice"):
        read(twice.tar())
    assert read(base().segment(later((A, 2))).tar()).entity_ids == [A, B]


def test_a_removed_entity_that_is_also_a_member_of_the_segment_is_refused() -> None:
    with pytest.raises(StoreReadError, match=r"removes entity .* which the segment holds"):
        read(base().segment(later((C, 1)), removed=[C]).tar())


@pytest.mark.parametrize(("generation", "offset"), [(4, 0), (5, -512), (5, 512)], ids=["generation", "before", "after"])
def test_a_broken_chain_is_refused(generation: int, offset: int) -> None:
    start = len(base().data)
    assert read(base().segment(later((C, 1)), previous=(5, start)).tar()).segments == 2, "the right chain reads"
    store = base().segment(later((C, 1)), previous=(generation, start + offset))
    with pytest.raises(StoreReadError, match="not chained to the one before"):
        read(store.tar())


def test_a_generation_not_above_the_previous_one_is_refused() -> None:
    with pytest.raises(StoreReadError, match="not above the previous"):
        read(base().segment(later((C, 1)), generation=5).tar())


def test_a_member_after_the_last_manifest_is_refused() -> None:
    store = base().segment(later((C, 1)), extra=[(f"{D}.ovf", ovf(D, 1))])
    with pytest.raises(StoreReadError, match="follows the last manifest"):
        read(store.tar())


def test_a_format_1_manifest_ending_a_later_segment_is_refused() -> None:
    with pytest.raises(StoreReadError, match="segment 2 ends with a manifest of format 1"):
        read(base().segment(later((C, 1)), fmt=1).tar())


def test_a_format_2_manifest_ending_the_first_segment_is_refused() -> None:
    members = [("info.json", info()), (f"{A}.ovf", ovf(A, 1))]
    alone = SegmentedStore().segment(members, fmt=2, previous=(1, 0), generation=2)
    with pytest.raises(StoreReadError, match="first manifest is of format 2"):
        read(alone.tar())


def test_a_tampered_member_in_a_middle_segment_is_refused() -> None:
    store = base().segment(later((C, 1))).segment(later((D, 1)))
    data = bytearray(store.tar())
    where = data.index(ovf(C, 1))
    data[where + 10] ^= 1
    with pytest.raises(StoreReadError, match="segment 2 of the store does not match its manifest"):
        read(bytes(data))
    listed = base().segment(later((C, 1)), listed=later((C, 2))).segment(later((D, 1)))
    with pytest.raises(StoreReadError, match="does not match its manifest"):
        read(listed.tar())


def test_each_segment_is_checked_against_its_own_manifest_only() -> None:
    """A later manifest lists only its own members: listing the base's too is damage."""
    store = base()
    everything = [("info.json", b"x"), *later((C, 1))]
    with pytest.raises(StoreReadError, match="does not match its manifest"):
        read(store.segment(later((C, 1)), listed=everything).tar())


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("removed", ["not-a-uuid"], "not an entity id"),
        ("removed", [str(B), str(A)], "not sorted and unique"),
        ("removed", [str(A), str(A)], "not sorted and unique"),
        ("removed", [str(A).upper()], "not an entity id"),
        ("removed", "x", "not a list"),
        ("previous", {"generation": 2**64, "offset": 0}, "previous generation"),
        ("previous", {"generation": 1, "offset": -1}, "offset"),
        ("previous", [1, 2], "not an object"),
        ("format", 3, "is not 1 or 2"),
        ("format", True, "is not 1 or 2"),
    ],
)
def test_format_2_fields_are_checked(field: str, value: object, why: str) -> None:
    document = json.loads(manifest_json(2, 9, [("info.json", b"{}")], (8, 1024), [A]))
    document[field] = value
    with pytest.raises(mf.ManifestError, match=why):
        mf.decode(json.dumps(document).encode())


def test_format_2_encoding_has_a_size_known_before_the_hashes_and_reads_back() -> None:
    when = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    members = [("info.json", 120, "ab" * 32), (f"{C}.ovf", 7000, "cd" * 32)]
    previous = mf.Previous(5, 10752)
    encoded = mf.encode_segment(6, "w", when, members, previous, [B, A])
    assert len(encoded) == mf.encoded_segment_size(6, "w", when, [(n, s) for n, s, _ in members], previous, [A, B])
    decoded = mf.decode(encoded)
    assert (decoded.format, decoded.previous, decoded.removed) == (2, previous, (A, B))
    assert decoded.encode() == encoded
    assert encoded.endswith(b"\n"), "newline-terminated, like format 1"
    assert b", " not in encoded, "compact, like format 1"
    assert b'": ' not in encoded, "compact, like format 1"
    assert json.loads(encoded) == {
        "format": 2, "generation": 6, "writer": "w", "created": "Wed Nov 25 12:00:00 UTC 2026",
        "members": [{"name": n, "size": s, "sha256": h} for n, s, h in members],
        "previous": {"generation": 5, "offset": 10752}, "removed": [str(A), str(B)],
    }  # fmt: skip
    assert list(json.loads(encoded)) == ["format", "generation", "writer", "created", "members", "previous", "removed"]
    with pytest.raises(ValueError, match="both removed and a member"):
        mf.encode_segment(6, "w", when, members, previous, [C])
    with pytest.raises(ValueError, match="not above"):
        mf.encode_segment(5, "w", when, members, previous, [])


def test_format_1_encoding_is_unchanged() -> None:
    when = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    encoded = mf.encode(3, "w", when, [("info.json", 10, "0" * 64)])
    assert encoded == (
        b'{"format":1,"generation":3,"writer":"w","created":"Wed Nov 25 12:00:00 UTC 2026",'
        b'"members":[{"name":"info.json","size":10,"sha256":"' + b"0" * 64 + b'"}]}\n'
    )
    assert mf.decode(encoded).previous is None
    assert mf.decode(encoded).removed == ()


def test_a_store_of_random_segments_reads_as_a_map_by_name() -> None:
    """Against a model of oVirt's reading (a map by name, the last one wins) minus the removed ids."""
    import random

    rng = random.Random(18)
    pool = [uuid4() for _ in range(12)]
    store = SegmentedStore().segment([("info.json", info()), *[(f"{e}.ovf", ovf(e, 0)) for e in pool[:6]]])
    model = {e: ovf(e, 0) for e in pool[:6]}
    for version in range(1, 8):
        changed = rng.sample(pool, 3)
        gone = sorted((e for e in rng.sample(pool, 2) if e not in changed), key=str)
        store.segment([*[(f"{e}.ovf", ovf(e, version)) for e in changed], ("info.json", info())], removed=gone)
        model.update({e: ovf(e, version) for e in changed})
        for e in gone:
            model.pop(e, None)
    contents = read(store.tar())
    assert contents.segments == 8
    assert contents.ovfs == model


def test_selection_passes_final_through_and_a_store_grown_between_the_reads_is_refused() -> None:
    from ovfstore.store import description
    from ovfstore.store.selection import StoreVolume, evaluate

    store = base().segment(later((B, 2)))
    first_bytes = store.tar()
    volume = StoreVolume(
        uuid4(), uuid4(), 1 << 20, "OVFS", description.after_write(UUID(int=7), len(first_bytes), datetime.now(UTC))
    )
    first = evaluate(volume, lambda size: [first_bytes[:size]])
    assert first.valid, first.error
    assert first.segments == 2
    got: list[UUID] = []
    again = evaluate(volume, lambda size: [first_bytes[:size]], lambda i, _d, _u: got.append(i), final=first.summary)
    assert again.valid, again.error
    assert sorted(got) == [A, B], "each entity once"
    grown = store.segment(later((C, 1))).tar()
    changed = evaluate(volume, lambda size: [grown[:size]], lambda *_: None, final=first.summary)
    assert changed.error is not None
    assert "changed since it was first read" in changed.error

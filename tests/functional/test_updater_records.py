"""The updater's database side without an agent: store disks and their `ovf_stores` rows, the count of
entities the cache lacks, and the contents of a store tar loaded before the upload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from ovfstore.engine.updater import records
from ovfstore.engine.updater.contents import load_contents
from ovfstore.engine.updater.pool import count_outdated_entities, pool_step
from ovfstore.engine.updater.status import domains_status, entities_pending
from ovfstore.model import DiskContentType, OvfStoreStatus
from ovfstore.ovf import write_ovf
from tests.functional.conftest import World

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _add_store(world: World, status: OvfStoreStatus = OvfStoreStatus.DISABLED) -> records.StoreRecord:
    disk_id, volume_id = uuid4(), uuid4()
    with world.inv.transaction() as tx:
        world.inv.disks.add_store_disk(world.sd1.id, disk_id, volume_id, 1 << 20, NOW)
        records.add(tx.conn, world.sd1.id, disk_id, NOW, status=status, error="not created yet")
    with world.inv.db.read() as conn:
        (record,) = [r for r in records.of_domain(conn, world.sd1.id) if r.disk_id == disk_id]
    return record


def test_a_store_disk_is_an_ovf_store_disk_of_its_domain_and_bumps_nothing(world: World) -> None:
    bumped = world.bumped_by(lambda: _add_store(world))
    assert bumped == set()
    with world.inv.db.read() as conn:
        (record,) = records.of_domain(conn, world.sd1.id)
        assert records.known_disk_ids(conn) == {record.disk_id}
    assert record.capacity == 1 << 20
    assert record.status is OvfStoreStatus.DISABLED
    assert record.last_error == "not created yet"
    disk = world.inv.disks.get(record.disk_id)
    assert disk.content_type is DiskContentType.OVF_STORE
    assert disk.domain_ids == [world.sd1.id]
    assert [v.id for v in disk.volumes] == [record.volume_id]
    assert record.disk_id not in {d.id for d in world.inv.disks.list()}


def _whole(generation: int, size: int, sha256: str, ids: list[UUID]) -> records.Written:
    return records.Written(
        generation=generation, size=size, sha256=sha256, entity_ids=ids, base_size=size, appended=0, segments=1,
        status_sha256="0" * 64, unregistered=0,
    )  # fmt: skip


def test_a_store_goes_through_its_states(world: World) -> None:
    db = world.inv.db
    store = _add_store(world)
    records.mark_created(db, store.disk_id, NOW)
    (status,) = domains_status(db, world.sd1.id)[0].stores
    assert (status.status, status.last_error, status.outdated_since) == (OvfStoreStatus.OUTDATED, None, NOW)
    with db.read() as conn:
        assert world.sd1.id in records.domains_with_work(conn)

    later = NOW + timedelta(minutes=1)
    ids = [world.vm1.id, world.vm2.id]
    records.mark_written(db, store.disk_id, _whole(3, 10240, "ab" * 32, ids), later)
    (status,) = domains_status(db, world.sd1.id)[0].stores
    assert (status.status, status.generation, status.size, status.entity_count) == (OvfStoreStatus.UPDATED, 3, 10240, 2)
    assert status.outdated_since is None
    assert status.last_updated == later
    # A deposed leader's record of the same generation, written after the new leader's, changes nothing.
    records.mark_written(db, store.disk_id, _whole(3, 512, "cd" * 32, []), NOW)
    (status,) = domains_status(db, world.sd1.id)[0].stores
    assert (status.generation, status.size, status.sha256, status.last_updated) == (3, 10240, "ab" * 32, later)

    records.set_domain_error(db, world.sd1.id, "not for an updated store")
    assert domains_status(db, world.sd1.id)[0].stores[0].last_error is None
    with db.write() as conn:
        records.mark_outdated(conn, {world.sd1.id}, later)
    records.set_domain_error(db, world.sd1.id, "the agent is gone")
    (status,) = domains_status(db, world.sd1.id)[0].stores
    assert (status.status, status.last_error, status.outdated_since) == (
        OvfStoreStatus.OUTDATED,
        "the agent is gone",
        later,
    )

    records.mark_missing(db, store.disk_id)
    with db.write() as conn:
        records.mark_outdated(conn, {world.sd1.id}, later)  # a missing store stays out of use
    assert domains_status(db, world.sd1.id)[0].stores[0].status is OvfStoreStatus.DISABLED


def test_the_pending_count_is_what_the_pool_step_regenerates(world: World) -> None:
    db = world.inv.db
    with db.read() as conn:
        pending = count_outdated_entities(conn)
    assert pending == entities_pending(db) > 0
    result = pool_step(db, write_ovf, NOW)
    assert len(result.regenerated) + len(result.locked) == pending
    assert entities_pending(db) == len(result.locked)


def test_the_tar_contents_are_loaded_with_their_documents(world: World) -> None:
    db = world.inv.db
    pool_step(db, write_ovf, NOW)
    with load_contents(db, world.sd1) as contents:
        ids = [e.id for e in contents.entities]
        # vm3 has no disk (it goes to every domain of its data center); vm2 shares only a shareable disk here
        assert set(ids) == {world.template.id, world.vm1.id, world.vm3.id}
        documents = dict(contents.documents.fetch(ids))
        assert all(len(documents[e.id]) == e.size > 0 and e.sha256 for e in contents.entities)
        assert contents.unregistered == []

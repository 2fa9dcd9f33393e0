"""An entity whose OVF is too large for a store: left out, recorded, reported; the rest goes on (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, text, update

from ovfstore.engine import events
from ovfstore.engine.db import schema as s
from ovfstore.engine.inventory import VmChanges
from ovfstore.engine.updater.contents import load_contents
from ovfstore.engine.updater.pool import count_outdated_entities, pool_step
from ovfstore.engine.updater.unstorable import unstorable_entities
from ovfstore.ovf import write_ovf
from ovfstore.store.tarstream import MAX_MEMBER
from tests.functional.conftest import World

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
HUGE = ">" * 3_000_000  # 3 MB of text, 12 MB of OVF: what the inventory now refuses, already in the database


@pytest.fixture
def wide(world: World) -> Iterator[World]:
    """PostgreSQL keeps its column width: widen the description, as a database of another origin might
    have it, and narrow it again after the test (the database serves the whole session)."""
    with world.inv.db.write() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE vm_static ALTER COLUMN description TYPE text"))
    yield world
    with world.inv.db.write() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                update(s.vm_static).where(func.length(s.vm_static.c.description) > 4000).values(description="")
            )
            conn.execute(text("ALTER TABLE vm_static ALTER COLUMN description TYPE varchar(4000)"))


def _force_description(world: World, description: str) -> None:
    """Write straight into the database, as data from before the inventory's limits would be."""
    vm = s.vm_static
    with world.inv.db.write() as conn:
        conn.execute(
            update(vm)
            .where(vm.c.id == world.vm1.id)
            .values(description=description, db_generation=vm.c.db_generation + 1)
        )


def test_a_too_large_ovf_is_left_out_and_reported(wide: World) -> None:
    world = wide
    db = world.inv.db
    pool_step(db, write_ovf, NOW)
    with db.read() as conn:
        stored_generation = (
            conn.execute(s.ovf_cache.select().where(s.ovf_cache.c.entity_id == world.vm1.id)).one().ovf_generation
        )
    _force_description(world, HUGE)

    result = pool_step(db, write_ovf, NOW)

    assert set(result.unstorable) == {world.vm1.id}
    assert result.unstorable[world.vm1.id] > MAX_MEMBER
    assert world.vm1.id not in result.regenerated
    with db.read() as conn:
        (found,) = unstorable_entities(conn, world.sd1.id)
        assert [e.entity_id for e in unstorable_entities(conn, world.sd2.id)] == [world.vm1.id]
        assert unstorable_entities(conn, world.sd3.id) == []  # another data center
        assert count_outdated_entities(conn) == 0  # not rendered again until it changes
    assert (found.name, found.ovf_size, found.stored_generation) == (
        "vm1",
        result.unstorable[world.vm1.id],
        stored_generation,
    )
    assert found.generation == world.generations()[world.vm1.id]
    logged = [e for e in events.recent(db) if e.code == "ovf_too_large"]
    assert {e.domain_id for e in logged} == {world.sd1.id, world.sd2.id}
    assert all(str(world.vm1.id) in e.message and str(found.ovf_size) in e.message for e in logged)
    # The stores keep the previous, storable OVF; nothing in them is over the limit.
    with load_contents(db, world.sd1) as contents:
        assert world.vm1.id in {e.id for e in contents.entities}
        assert all(e.size <= MAX_MEMBER for e in contents.entities)

    assert pool_step(db, write_ovf, NOW).unstorable == {}  # not reported twice

    world.inv.vms.update(world.vm1.id, VmChanges(description="short again"))
    result = pool_step(db, write_ovf, NOW)
    assert world.vm1.id in result.regenerated
    with db.read() as conn:
        assert unstorable_entities(conn, world.sd1.id) == []


def test_an_oversized_ovf_cached_before_the_limit_is_dropped(wide: World) -> None:
    world = wide
    db = world.inv.db
    pool_step(db, write_ovf, NOW)
    c = s.ovf_cache
    with db.write() as conn:  # a cache row written before the limit was enforced
        conn.execute(update(c).where(c.c.entity_id == world.vm1.id).values(ovf_size=MAX_MEMBER + 1))
    with load_contents(db, world.sd1) as contents:  # the writer never gets it
        assert world.vm1.id not in {e.id for e in contents.entities}
    _force_description(world, HUGE)
    result = pool_step(db, write_ovf, NOW)
    assert set(result.unstorable) == {world.vm1.id}
    assert {world.sd1.id, world.sd2.id} <= result.outdated_domains
    with db.read() as conn:
        (found,) = unstorable_entities(conn, world.sd1.id)
    assert found.stored_generation is None  # the stores hold no version of it now

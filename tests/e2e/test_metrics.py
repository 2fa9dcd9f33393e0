"""`/metrics` scraped over HTTP from a running engine while its stores change: the figures move as the
stores on disk do (pending and the recovery point after a VM edit, back to zero after the update; the
generation, bytes written, update count and transfer bytes by what was really written)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ovfstore.engine.config import ApiConfig, UpdaterConfig
from tests.e2e.conftest import ADMIN_PASSWORD, RunningEngine, edit_vm, protected_vm

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
GOLD = (("domain", "gold"),)
UPDATE_ROUTE = "/ovirt-engine/api/storagedomains/{sd}/updateovfstore"
DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def _scrape(client: httpx.Client, families: set[str] | None = None) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    found: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        if families is not None:
            families.add(family.name)
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _get(samples: Samples, name: str, labels: tuple[tuple[str, str], ...] = GOLD) -> float:
    """The sample's value; a sample the engine does not export fails the test (never a silent 0)."""
    assert (name, labels) in samples, f"{name}{dict(labels)} not exported"
    return samples[(name, labels)]


def test_the_figures_follow_the_stores_through_an_update(db_url: str, engines: Callable[..., RunningEngine]) -> None:
    # No automatic run: the edit stays pending until the update asked for below.
    running = engines(db_url, updater=UpdaterConfig(debounce_s=3600, sweep_interval_s=3600))
    gold = protected_vm(running)
    running.engine.updater.update_now(gold, timeout=120)
    api = f"{running.url}/storagedomains/{gold}/updateovfstore"
    with httpx.Client(base_url=running.root, timeout=120) as client:
        before = _scrape(client)
        assert _get(before, "ovfstore_domain_pending_entities") == 0
        assert _get(before, "ovfstore_domain_recovery_point_seconds") == 0
        assert _get(before, "ovfstore_domain_up_to_date") == 1
        assert _get(before, "ovfstore_domain_store_entities") == 1
        generation = _get(before, "ovfstore_domain_store_generation")
        assert generation >= 1

        edit_vm(running, "web", "a change to write")
        time.sleep(1.1)  # the status keeps times to the second
        pending = _scrape(client)
        assert _get(pending, "ovfstore_domain_pending_entities") == 1
        assert _get(pending, "ovfstore_domain_up_to_date") == 0
        assert _get(pending, "ovfstore_domain_behind") == 1  # the default threshold is 0
        assert _get(pending, "ovfstore_domain_recovery_point_seconds") >= 1
        assert _get(pending, "ovfstore_domain_store_generation") == generation

        # The update through the API, scraped all along: every scrape answers, the generation only grows.
        answers: list[int] = []
        update = threading.Thread(
            target=lambda: answers.append(
                httpx.post(api, content=b"<action/>", headers={"Content-Type": "application/xml"},
                           auth=("admin@internal", ADMIN_PASSWORD), timeout=120).status_code
            )
        )  # fmt: skip
        seen = [_get(_scrape(client), "ovfstore_domain_store_generation")]
        update.start()
        while update.is_alive():
            seen.append(_get(_scrape(client), "ovfstore_domain_store_generation"))
        update.join()
        assert answers == [200]

        families: set[str] = set()
        after = _scrape(client, families)
        seen.append(_get(after, "ovfstore_domain_store_generation"))
        assert seen == sorted(seen)  # the generation only grows
        assert (seen[0], seen[-1]) == (generation, generation + 1)  # and it did change between the scrapes
    status = next(st for st in running.engine.updater.status() if st.name == "gold")
    size = status.stores[0].size
    assert size is not None
    assert {store.size for store in status.stores} == {size}
    assert _get(after, "ovfstore_domain_store_generation") == generation + 1
    assert _get(after, "ovfstore_domain_store_generation") == max(st.generation for st in status.stores)
    assert _get(after, "ovfstore_domain_pending_entities") == 0
    assert _get(after, "ovfstore_domain_recovery_point_seconds") == 0
    assert _get(after, "ovfstore_domain_up_to_date") == 1
    assert _get(after, "ovfstore_domain_behind") == 0
    assert _get(after, "ovfstore_domain_store_age_seconds") < 30
    # Both stores written once more: the first uploaded, the second copied by the agent.
    assert _get(after, "ovfstore_domain_bytes_written_total") - _get(before, "ovfstore_domain_bytes_written_total") == (
        2 * size
    )
    for kind in ("upload", "copy"):
        moved = _get(after, "ovfstore_agent_transfer_bytes_total", (("kind", kind),)) - _get(
            before, "ovfstore_agent_transfer_bytes_total", (("kind", kind),)
        )
        assert moved == size
        assert _get(after, "ovfstore_agent_transfer_rate_bytes_per_second", (("kind", kind),)) > 0
    written = (("domain", "gold"), ("outcome", "written"))
    assert (
        _get(after, "ovfstore_domain_updates_total", written)
        == _get(before, "ovfstore_domain_updates_total", written) + 1
    )
    assert _get(after, "ovfstore_domain_update_duration_seconds_count") == (
        _get(before, "ovfstore_domain_update_duration_seconds_count") + 1
    )
    # The API's requests by route template, never by path (no id in any label).
    request = (("method", "POST"), ("route", UPDATE_ROUTE), ("status", "200"))
    assert _get(after, "ovfstore_api_requests_total", request) == 1
    assert str(gold) not in "".join(str(labels) for _, labels in after)

    # Every series the sample Grafana dashboard asks for is one the engine serves.
    exprs = [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]
    asked = {re.sub(r"_(bucket|count|sum|total)$", "", name) for e in exprs for name in re.findall(r"ovfstore_\w+", e)}
    assert len(asked) >= 12
    assert asked <= families, asked - families


def test_the_figures_are_cached_and_a_token_is_required_when_set(
    db_url: str, engines: Callable[..., RunningEngine]
) -> None:
    token = "scrape-secret-1"
    running = engines(
        db_url,
        updater=UpdaterConfig(debounce_s=3600, sweep_interval_s=3600),
        api=ApiConfig(metrics_cache_s=3, metrics_token=token),
    )
    gold = protected_vm(running)
    running.engine.updater.update_now(gold, timeout=120)
    with httpx.Client(base_url=running.root, timeout=60) as anonymous:
        refused = anonymous.get("/metrics")
        assert refused.status_code == 401
        assert "metrics_token" in refused.text
        assert anonymous.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert anonymous.get("/metrics", headers={"Authorization": f"Basic {token}"}).status_code == 401
    with httpx.Client(base_url=running.root, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        assert _get(_scrape(client), "ovfstore_domain_pending_entities") == 0
        started = time.monotonic()
        edit_vm(running, "web", "a change the cache hides for a moment")
        # Within the cache's 3 s the figures are the ones computed before the edit: no new status query.
        cached = _scrape(client)
        assert time.monotonic() - started < 3
        assert _get(cached, "ovfstore_domain_pending_entities") == 0
        time.sleep(3.1)
        assert _get(_scrape(client), "ovfstore_domain_pending_entities") == 1

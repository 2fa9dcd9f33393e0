"""The OVF store updater at scale: N VMs (2 disks and 2 NICs each) over 4 file domains on the local disk.

    python bench/update_bench.py [--vms 10000] [--dir /var/tmp] [--db-url URL] [--json]

Measured, each from the change until every affected store is durable (the agent answers after fsync):
the full first update, an update after 1 VM changed and after 100 VMs changed. Also the engine's peak
RSS (the engine runs in a process of its own; the agent in another), the bytes written into stores,
and, in the same run, `dd` writing the same number of bytes with `conv=fsync` to the same filesystem.

Setting up the inventory is not measured: it is inserted in bulk, not through the inventory commands.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inventory_shape import DOMAINS, open_mac_pool, populate
from ovfstore.agent.client import AgentClient
from ovfstore.agent.process import LocalAgent
from ovfstore.engine.config import AgentAccess, UpdaterConfig
from ovfstore.engine.db.database import Database
from ovfstore.engine.hosts import AgentDirectory
from ovfstore.engine.inventory import Inventory, VmChanges
from ovfstore.engine.updater.service import OvfUpdater
from ovfstore.model import (
    DomainStatus,
    Host,
    StorageDomain,
)

MiB = 1 << 20


@dataclass
class Setup:
    db_url: str
    agent_url: str
    secret: str
    vm_ids: list[uuid.UUID]


def setup(workdir: Path, db_url: str | None, vms: int) -> tuple[Setup, LocalAgent]:
    root = workdir / "storage"
    agent = LocalAgent([root], workdir)
    url, secret = agent.url, agent.secret
    db = Database(db_url or f"sqlite:///{workdir / 'engine.db'}")
    db.migrate()
    inv = Inventory(db)
    inv.bootstrap()
    dc = open_mac_pool(inv)
    cluster = inv.clusters.list()[0]
    inv.hosts.add(Host(name="host1", cluster_id=cluster.id, address=url))
    domains = []
    with AgentClient(url, secret) as client:
        for n in range(DOMAINS):
            domain = StorageDomain(name=f"sd{n}", path=str(root), data_center_id=dc.id, status=DomainStatus.ACTIVE)
            client.create_domain(domain.id, domain.name, parent=str(root))
            client.attach(domain.id, dc.id, master=n == 0)
            domains.append(inv.storage_domains.add(domain))
    ids = populate(db, inv, domains, cluster.id, vms)
    db.dispose()
    return Setup(str(db.url.render_as_string(hide_password=False)), url, secret, ids), agent


def engine_phase(setup: Setup, out: Any) -> None:
    """Runs in its own process, so its peak RSS is the engine's alone."""
    db = Database(setup.db_url)
    inv = Inventory(db)
    agents = AgentDirectory(db, AgentAccess(secret=setup.secret))
    updater = OvfUpdater(db, inv, agents, UpdaterConfig())
    figures: dict[str, float] = {}

    def timed(name: str) -> int:
        start = time.monotonic()
        report = updater.run_once()
        figures[name] = time.monotonic() - start
        failed = {d: r.error for d, r in report.domains.items() if r.error}
        if failed:
            raise SystemExit(f"{name}: domain updates failed: {failed}")
        return sum(r.size * len(r.written) for r in report.domains.values())

    written = timed("full_s")
    start = time.monotonic()
    inv.vms.update(setup.vm_ids[0], VmChanges(description="changed once"))
    written += timed("one_change_s")
    figures["one_change_s"] = time.monotonic() - start
    start = time.monotonic()
    for vm_id in setup.vm_ids[1:101]:
        inv.vms.update(vm_id, VmChanges(description="changed in a batch of 100"))
    commands = time.monotonic() - start
    written += timed("hundred_changes_s")
    figures["hundred_commands_s"] = commands
    figures["bytes_written"] = written
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    agents.close()
    db.dispose()
    out.send(figures)


def dd_same_bytes(directory: Path, size: int) -> float:
    target = directory / "dd.out"
    start = time.monotonic()
    count = max(1, (size + MiB - 1) // MiB)
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={count}", "conv=fsync", "status=none"], check=True
    )
    elapsed = time.monotonic() - start
    target.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--dir", default="/var/tmp", help="a directory on the local disk (not tmpfs)")
    parser.add_argument("--db-url", default=None, help="engine database (default: SQLite in the work directory)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ovfstore-update-bench-", dir=args.dir))
    agent = None
    try:
        if not args.json:
            print(f"setting up {args.vms} VMs over {DOMAINS} domains in {workdir} ...", flush=True)
        prepared, agent = setup(workdir, args.db_url, args.vms)
        receive, send = multiprocessing.Pipe(duplex=False)
        child = multiprocessing.get_context("spawn").Process(target=engine_phase, args=(prepared, send))
        child.start()
        figures = receive.recv()
        child.join()
        dd_s = dd_same_bytes(workdir, int(figures["bytes_written"]))
    finally:
        if agent is not None:
            agent.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    result = {
        "vms": args.vms,
        "full_s": round(figures["full_s"], 3),
        "one_change_s": round(figures["one_change_s"], 3),
        "hundred_changes_s": round(figures["hundred_changes_s"], 3),
        "peak_rss_mib": round(figures["peak_rss_mib"], 1),
        "bytes_written": int(figures["bytes_written"]),
        "dd_same_bytes_s": round(dd_s, 3),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'VMs':<36}{args.vms:>12}")
    print(f"{'full first update (s)':<36}{result['full_s']:>12}  ({args.vms / figures['full_s']:.0f} VMs/s)")
    print(f"{'update after 1 VM changed (s)':<36}{result['one_change_s']:>12}")
    print(f"{'update after 100 VMs changed (s)':<36}{result['hundred_changes_s']:>12}")
    print(f"{'engine peak RSS (MiB)':<36}{result['peak_rss_mib']:>12}")
    print(f"{'bytes written into stores':<36}{result['bytes_written']:>12}")
    print(f"{'dd of the same bytes, fsync (s)':<36}{result['dd_same_bytes_s']:>12}")


if __name__ == "__main__":
    main()

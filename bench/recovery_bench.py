"""Recovery at scale: the time a DR plan promises, from a site's domains to every VM registered again.

    python bench/recovery_bench.py [--vms 10000] [--dir /var/tmp] [--pg URL] [--json]

Not measured (setup): an engine protects the update benchmark's inventory (N VMs, 2 disks and 2 NICs
each, over 4 file domains; `inventory_shape.py`): the inventory is inserted in bulk, the OVF stores are
written (a size they cannot hold, such as 100,000 VMs with 128 MiB stores, stops here with the
updater's error), and every disk's volume is created on storage. Then that engine and its database are
gone.

Measured, in a fresh engine with a new database: importing the 4 domains; attaching them, which reads
them (reading and verifying every store, reading the chosen store again into the database while parsing
its OVFs, recording unknown volumes as unregistered disks); registering everything. In the same run,
the floors: inserting the same inventory in bulk into another fresh database (multi-row inserts through
the engine's schema, one transaction per 1,000 VMs), and `dd` reading the same store bytes
(`iflag=direct`). The ratios printed are the recovery against those floors.

The database is SQLite in the work directory, like the update benchmark's; `--pg URL` (a server URL,
for example postgresql+psycopg://postgres@127.0.0.1:5432/postgres) uses PostgreSQL instead: three
databases of their own are created there and dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text

from inventory_shape import DOMAINS, Rows, batches, insert_rows, open_mac_pool
from ovfstore.agent.client import AgentClient
from ovfstore.agent.process import LocalAgent
from ovfstore.engine.config import AgentAccess, UpdaterConfig
from ovfstore.engine.db.database import Database
from ovfstore.engine.domains import DomainService
from ovfstore.engine.hosts import AgentDirectory
from ovfstore.engine.inventory import Inventory
from ovfstore.engine.recovery import RecoveryService, RegistrationOptions, ScanReport
from ovfstore.engine.updater.service import OvfUpdater
from ovfstore.model import DomainStatus, Host, StorageDomain
from ovfstore.storage.domain import FileDomain

MiB = 1 << 20


class Databases:
    """Fresh, empty databases: SQLite files in the work directory, or PostgreSQL databases of their own."""

    def __init__(self, workdir: Path, pg_url: str | None) -> None:
        self.workdir = workdir
        self.admin = create_engine(pg_url, isolation_level="AUTOCOMMIT") if pg_url else None
        self.prefix = f"ovfstore_recovery_bench_{secrets.token_hex(4)}"
        self.created: list[str] = []

    @property
    def kind(self) -> str:
        return "postgresql" if self.admin is not None else "sqlite"

    def new(self, name: str) -> Database:
        if self.admin is None:
            db = Database(f"sqlite:///{self.workdir / (name + '.db')}")
        else:
            database = f"{self.prefix}_{name}"
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{database}"'))
            self.created.append(database)
            url = make_url(self.admin.url.render_as_string(hide_password=False)).set(database=database)
            db = Database(url.render_as_string(hide_password=False))
        db.migrate()
        return db

    def drop(self) -> None:
        if self.admin is None:
            return
        with self.admin.connect() as conn:
            for database in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        self.admin.dispose()


class Engine:
    """An engine as the service wires it: inventory, agents, updater, domains, recovery."""

    def __init__(self, db: Database, agent: LocalAgent) -> None:
        self.db = db
        self.inv = Inventory(db)
        self.inv.bootstrap()
        self.dc = open_mac_pool(self.inv)
        self.cluster = self.inv.clusters.list()[0]
        self.host = self.inv.hosts.add(Host(name="host1", cluster_id=self.cluster.id, address=agent.url))
        self.agents = AgentDirectory(db, AgentAccess(secret=agent.secret, timeout_s=300))
        self.updater = OvfUpdater(db, self.inv, self.agents, UpdaterConfig())
        self.domains = DomainService(self.inv, self.agents, self.updater)
        self.recovery = RecoveryService(self.inv, self.agents, self.domains)

    def close(self) -> None:
        self.agents.close()
        self.db.dispose()


def _create_volumes(root: Path, rows: Rows, pool: ThreadPoolExecutor) -> None:
    """Every disk's volume on storage, as oVirt describes it (recovery finds disks by their volumes)."""
    domain_of = {row["disk_id"]: row["domain_id"] for row in rows["dd"]}
    alias_of = {row["id"]: row["alias"] for row in rows["disk"]}

    def create(volume: dict[str, Any]) -> None:
        domain_id = domain_of[volume["disk_id"]]
        domain = FileDomain(str(root / str(domain_id)), (str(root),))
        described = json.dumps({"DiskAlias": alias_of[volume["disk_id"]], "DiskDescription": ""})
        domain.create_volume(str(volume["disk_id"]), str(volume["id"]), volume["capacity"], description=described)

    list(pool.map(create, rows["vol"]))


def protect(db: Database, agent: LocalAgent, root: Path, vms: int) -> list[StorageDomain]:
    """The old site: inventory, volumes, stores written. Fails with the updater's error (for example
    stores too small for the domain) rather than measuring a recovery of nothing."""
    old = Engine(db, agent)
    domains = []
    with AgentClient(agent.url, agent.secret) as client:
        for n in range(DOMAINS):
            domain = StorageDomain(name=f"sd{n}", path=str(root), data_center_id=old.dc.id, status=DomainStatus.ACTIVE)
            client.create_domain(domain.id, domain.name, parent=str(root))
            client.attach(domain.id, old.dc.id, master=n == 0)
            domains.append(old.inv.storage_domains.add(domain))
    profile = old.inv.vnic_profiles.list()[0]
    volumes: list[Rows] = []
    for _, rows in batches(domains, old.cluster.id, profile.id, vms):
        insert_rows(db, rows)
        volumes.append({key: rows[key] for key in ("dd", "disk", "vol")})
    # The stores first: the OVFs come from the database, and a size the stores cannot hold fails here,
    # before the long part of the setup.
    report = old.updater.run_once()
    failed = {str(d): r.error for d, r in report.domains.items() if r.error}
    old.close()
    if failed:
        raise SystemExit(f"protecting {vms} VMs failed, nothing to recover: {failed}")
    with ThreadPoolExecutor(8) as pool:
        for rows in volumes:
            _create_volumes(root, rows, pool)
    return domains


@contextmanager
def timed(figures: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    figures[name] = figures.get(name, 0.0) + time.perf_counter() - start


def recover(db: Database, agent: LocalAgent, root: Path, domains: list[StorageDomain]) -> dict[str, Any]:
    """The measured recovery in a fresh engine; every VM must come back registered."""
    fresh = Engine(db, agent)
    scans: list[ScanReport] = []
    scan_through = fresh.recovery.scan_through

    def scan(domain_id: uuid.UUID, client: AgentClient) -> ScanReport:
        scans.append(scan_through(domain_id, client))
        return scans[-1]

    fresh.domains.on_attach = scan
    figures: dict[str, Any] = {}
    with timed(figures, "import_s"):
        imported = [
            fresh.recovery.import_domain(str(root / str(d.id)), host=fresh.host, force_detach=True) for d in domains
        ]
    with timed(figures, "attach_s"):
        for domain in imported:
            fresh.domains.attach(domain.id, fresh.dc.id)
    outcomes: dict[str, int] = {}
    with timed(figures, "register_s"):
        for domain in imported:
            for report in fresh.recovery.register_all(domain.id, RegistrationOptions()):
                outcomes[report.outcome] = outcomes.get(report.outcome, 0) + 1
                if report.outcome != "registered" and "first_refusal" not in figures:
                    figures["first_refusal"] = f"{report.name}: {report.reason}"
    for key in ("list_volumes_s", "read_verify_s", "load_s", "parse_s", "record_s"):
        figures[key] = sum(r.timings.get(key, 0.0) for r in scans)
    figures["bytes_verified"] = sum(r.bytes_verified for r in scans)
    figures["entities_found"] = sum(r.entities for r in scans)
    figures["outcomes"] = outcomes
    figures["registered"] = outcomes.get("registered", 0)
    figures["vms_in_inventory"] = len(fresh.inv.vms.list())
    fresh.close()
    return figures


def bulk_insert(db: Database, domains: list[StorageDomain], vms: int) -> float:
    """The floor for writing the inventory: the same rows inserted in bulk into a fresh database (rows
    built before the clock starts)."""
    inv = Inventory(db)
    inv.bootstrap()
    cluster = inv.clusters.list()[0]
    for domain in domains:
        inv.storage_domains.add(StorageDomain(id=domain.id, name=domain.name, path=domain.path))
    all_rows = [rows for _, rows in batches(domains, cluster.id, inv.vnic_profiles.list()[0].id, vms)]
    start = time.perf_counter()
    for rows in all_rows:
        insert_rows(db, rows)
    elapsed = time.perf_counter() - start
    db.dispose()
    return elapsed


def store_files(root: Path) -> list[tuple[Path, int]]:
    """Every complete store volume on the domains under `root`, with the bytes its tar occupies."""
    found = []
    for domain in root.iterdir():
        fd = FileDomain(str(domain), (str(root),))
        for volume in fd.all_volumes():
            if volume.meta.disk_type != "OVFS":
                continue
            size = json.loads(volume.meta.description).get("Size")
            if isinstance(size, int) and size > 0:
                found.append((Path(fd.volume_path(volume.image, volume.volume)), size))
    return found


def dd_read(files: list[tuple[Path, int]]) -> float:
    """`dd` reading each store's tar bytes, bypassing the page cache where the filesystem allows it."""

    def run(path: Path, size: int, direct: bool) -> None:
        count = (size + MiB - 1) // MiB
        flags = ["iflag=direct"] if direct else []
        subprocess.run(
            ["dd", f"if={path}", "of=/dev/null", "bs=1M", f"count={count}", *flags, "status=none"],
            check=True,
            capture_output=True,
        )

    direct = True
    start = time.perf_counter()
    for path, size in files:
        try:
            run(path, size, direct)
        except subprocess.CalledProcessError:  # O_DIRECT refused (tmpfs): read through the cache
            direct = False
            run(path, size, direct)
    return time.perf_counter() - start


def run(vms: int, workdir: Path, pg_url: str | None) -> dict[str, Any]:
    root = workdir / "storage"
    dbs = Databases(workdir, pg_url)
    agent = LocalAgent([root], workdir)
    try:
        domains = protect(dbs.new("old"), agent, root, vms)
        figures = recover(dbs.new("fresh"), agent, root, domains)
        figures["bulk_insert_s"] = bulk_insert(dbs.new("floor"), domains, vms)
        files = store_files(root)
        figures["dd_bytes"] = sum(size for _, size in files)
        figures["dd_read_s"] = dd_read(files)
    finally:
        agent.stop()
        dbs.drop()
    figures["database"] = dbs.kind
    return figures


def result(vms: int, f: dict[str, Any]) -> dict[str, Any]:
    recovery_s = f["import_s"] + f["attach_s"] + f["register_s"]
    dd_rate = f["dd_bytes"] / f["dd_read_s"]
    read_rate = f["bytes_verified"] / f["read_verify_s"] if f["read_verify_s"] else 0.0
    out: dict[str, Any] = {"vms": vms, "database": f["database"], "load_avg_1m": round(os.getloadavg()[0], 2)}
    phases = ("import_s", "attach_s", "list_volumes_s", "read_verify_s", "load_s", "parse_s", "record_s", "register_s")
    for key in phases:
        out[key] = round(f[key], 3)
    out |= {
        "recovery_s": round(recovery_s, 3),
        "bulk_insert_s": round(f["bulk_insert_s"], 3),
        "bytes_verified": f["bytes_verified"],
        "dd_bytes": f["dd_bytes"],
        "dd_read_s": round(f["dd_read_s"], 3),
        "recovery_vs_bulk_insert": round(recovery_s / f["bulk_insert_s"], 2),
        "read_vs_dd": round(read_rate / dd_rate, 2),
        "entities_found": f["entities_found"],
        "registered": f["registered"],
        "outcomes": f["outcomes"],
        "vms_in_inventory": f["vms_in_inventory"],
    }
    if "first_refusal" in f:
        out["first_refusal"] = f["first_refusal"][:500]
    return out


def show(out: dict[str, Any]) -> None:
    rows: list[tuple[str, Any, Callable[[], str]]] = [
        ("VMs", out["vms"], str),
        ("database", out["database"], str),
        ("import 4 domains (s)", out["import_s"], str),
        ("attach = read them (s)", out["attach_s"], str),
        ("  list the volumes (s)", out["list_volumes_s"], str),
        ("  read and verify every store (s)", out["read_verify_s"], lambda: f"{out['bytes_verified']} bytes"),
        ("  read chosen store into DB (s)", out["load_s"], str),
        ("    of which parsing OVFs (s)", out["parse_s"], str),
        ("  unregistered disks, stores (s)", out["record_s"], str),
        ("register everything (s)", out["register_s"], lambda: f"{out['registered']} registered"),
        ("recovery total (s)", out["recovery_s"], lambda: f"{out['vms'] / out['recovery_s']:.0f} VMs/s"),
        ("floor: bulk insert (s)", out["bulk_insert_s"], lambda: f"recovery {out['recovery_vs_bulk_insert']}x"),
        ("floor: dd read of stores (s)", out["dd_read_s"], lambda: f"reading at {out['read_vs_dd']}x dd"),
        ("load average (1 min)", out["load_avg_1m"], str),
    ]
    for label, value, note in rows:
        extra = note() if note is not str else ""
        print(f"{label:<38}{value!s:>12}  {extra}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--dir", default="/var/tmp", help="a directory on the local disk (not tmpfs)")
    parser.add_argument("--pg", default=None, metavar="URL", help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.vms < 1:
        parser.error("--vms must be at least 1")
    workdir = Path(tempfile.mkdtemp(prefix="ovfstore-recovery-bench-", dir=args.dir))
    try:
        if not args.json:
            print(f"protecting {args.vms} VMs over {DOMAINS} domains in {workdir} ...", flush=True)
        out = result(args.vms, run(args.vms, workdir, args.pg))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(out))
    else:
        show(out)
    if out["registered"] != args.vms:
        raise SystemExit(f"only {out['registered']} of {args.vms} VMs registered: {out.get('first_refusal', '')}")


if __name__ == "__main__":
    main()
